//! Container output a shim could not write to its log (a full or failing log disk) made visible
//! from the daemon: a warning in the daemon's log when a container starts losing output and
//! when its log is written again, and the `corral_container_log_dropped_bytes_total` counter.
//!
//! The shim drops whole records while the log cannot be written and writes a marker when it
//! can again (`corral_shim::crilog`); the daemon keeps one `LogDrops` request waiting per
//! pod, which the shim answers when a run of losses begins or ends, with each container's
//! total (`corral_shim::proto::Request::LogDrops`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use corral_shim::proto::{LogDrops, Request, Response};

use super::shim_client::ShimClient;
use super::{Pods, Sandbox};
use crate::metrics::Metrics;

/// Shortest time between two reports of one pod (a log that fills and frees in a loop).
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// What the daemon has seen of one container's losses.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    bytes: u64,
    dropping: bool,
}

impl Pods {
    /// Follows the pod's shim for lost log output until the shim goes away (the pod stopped,
    /// or a shim older than the request).
    pub(super) fn watch_log_drops(&self, sandbox: &Sandbox) {
        let shim = sandbox.shim.clone();
        let metrics = Arc::clone(&self.metrics);
        let pod = sandbox.meta.id.clone();
        tokio::spawn(async move { watch(shim, metrics, pod).await });
    }
}

async fn watch(shim: ShimClient, metrics: Arc<Metrics>, pod: String) {
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut since = 0;
    loop {
        match shim.call(&Request::LogDrops { since }).await {
            Ok(Response::LogDrops { seq, containers }) => {
                since = seq;
                for c in &containers {
                    report(&pod, &metrics, seen.entry(c.id.clone()).or_default(), c);
                }
            }
            Ok(other) => {
                tracing::debug!(%pod, ?other, "unexpected answer to LogDrops");
                return;
            }
            Err(e) => {
                tracing::debug!(%pod, error = %e, "no longer following the pod's log losses");
                return;
            }
        }
        tokio::time::sleep(MIN_INTERVAL).await;
    }
}

/// Counts and logs what changed for one container.
fn report(pod: &str, metrics: &Metrics, seen: &mut Seen, now: &LogDrops) {
    let new_bytes = now.bytes.saturating_sub(seen.bytes);
    metrics.log_dropped(new_bytes);
    match &now.error {
        Some(error) if !seen.dropping => tracing::warn!(
            pod,
            container = %now.id,
            log = %now.path.display(),
            %error,
            dropped_bytes = now.bytes,
            "dropping the container's output: its log cannot be written"
        ),
        None if seen.dropping || new_bytes > 0 => tracing::warn!(
            pod,
            container = %now.id,
            log = %now.path.display(),
            dropped_bytes = now.bytes,
            "the container's log is written again; output was dropped meanwhile (a marker in the log says how much)"
        ),
        _ => {}
    }
    *seen = Seen {
        bytes: now.bytes.max(seen.bytes),
        dropping: now.error.is_some(),
    };
}
