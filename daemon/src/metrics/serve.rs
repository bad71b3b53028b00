//! The metrics endpoint: plain HTTP/1.1 on a loopback address, `GET /metrics`.

use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tonic::codegen::http;

use super::{Live, Metrics};
use crate::event_bus::EventBus;
use crate::pods::Pods;

/// Counts pods, containers, shims and subscribers for the gauges.
fn live(pods: &Pods, events: &EventBus) -> Live {
    use crate::pods::view;
    let mut out = Live::default();
    let (mut ready, mut not_ready) = (0, 0);
    for sb in pods.sandboxes() {
        match sb.state() {
            crate::pods::model::SandboxState::Ready => ready += 1,
            crate::pods::model::SandboxState::NotReady => not_ready += 1,
        }
    }
    out.pods = vec![("SANDBOX_READY", ready), ("SANDBOX_NOTREADY", not_ready)];
    let mut by_state = [0i64; 4];
    for c in pods.containers() {
        let i = (view::container_state(&c) as usize).min(3);
        by_state[i] += 1;
    }
    out.containers = vec![
        ("CONTAINER_CREATED", by_state[0]),
        ("CONTAINER_RUNNING", by_state[1]),
        ("CONTAINER_EXITED", by_state[2]),
        ("CONTAINER_UNKNOWN", by_state[3]),
    ];
    out.shims = ready;
    out.subscribers = events.subscribers() as i64;
    out.subscribers_dropped = events.dropped() as i64;
    out
}

/// Serves `/metrics` on `listener` until the task is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    pods: Arc<Pods>,
    events: Arc<EventBus>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (metrics, pods, events) =
            (Arc::clone(&metrics), Arc::clone(&pods), Arc::clone(&events));
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let (metrics, pods, events) =
                    (Arc::clone(&metrics), Arc::clone(&pods), Arc::clone(&events));
                async move {
                    if req.uri().path() == "/metrics" {
                        metrics.set_live(&live(&pods, &events));
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
