//! The metrics endpoint: plain HTTP/1.1 on a loopback address, `GET /metrics`.

use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tonic::codegen::http;

use super::{Live, Metrics};

/// Serves `/metrics` on `listener` until the task is dropped; `live` takes the counts of
/// the scrape-time gauges (the daemon's wiring passes `pods::view::live`, so that this module,
/// which `pods` and `network` record into, does not import them).
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    live: Arc<dyn Fn() -> Live + Send + Sync>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (metrics, live) = (Arc::clone(&metrics), Arc::clone(&live));
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let (metrics, live) = (Arc::clone(&metrics), Arc::clone(&live));
                async move {
                    if req.uri().path() == "/metrics" {
                        metrics.set_live(&live());
                        http::Response::builder()
                            .header(
                                "content-type",
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )
                            .body(Full::new(Bytes::from(metrics.encode())))
                    } else {
                        http::Response::builder()
                            .status(404)
                            .body(Full::new(Bytes::from_static(b"only /metrics here\n")))
                    }
                }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "metrics connection");
            }
        });
    }
}
