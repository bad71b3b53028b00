//! A tower layer on the tonic server that times every call until its response headers and
//! counts it by gRPC code. A failed unary call carries its code in the headers
//! (trailers-only); a call without one there succeeded, or is a stream that started (a stream
//! that fails later is counted OK).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tonic::codegen::http;

use super::Metrics;

#[derive(Clone)]
pub struct MetricsLayer {
    pub metrics: Arc<Metrics>,
}

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// `RunPodSandbox` from `/runtime.v1.RuntimeService/RunPodSandbox`.
fn method_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn code_of(headers: &http::HeaderMap) -> tonic::Code {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(tonic::Code::Ok, tonic::Code::from_i32)
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for MetricsService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        // The clone may not be ready: call the one that was polled ready, keep the clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let metrics = Arc::clone(&self.metrics);
        let method = method_of(req.uri().path()).to_owned();
        Box::pin(async move {
            let started = Instant::now();
            let res = inner.call(req).await;
            let code = match &res {
                Ok(r) => code_of(r.headers()),
                Err(_) => tonic::Code::Internal,
            };
            metrics.rpc(&method, code, started.elapsed().as_secs_f64());
            res
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_and_codes() {
        assert_eq!(
            method_of("/runtime.v1.RuntimeService/RunPodSandbox"),
            "RunPodSandbox"
        );
        let mut h = http::HeaderMap::new();
        assert_eq!(code_of(&h), tonic::Code::Ok);
        h.insert("grpc-status", http::HeaderValue::from_static("5"));
        assert_eq!(code_of(&h), tonic::Code::NotFound);
    }
}
