//! Prometheus metrics, served in the text exposition format on an optional loopback HTTP
//! endpoint (`[metrics] address`): per-RPC latency and calls by gRPC code (`layer.rs`, a tower
//! layer on the tonic server), image pulls, CNI calls, OOM kills, container output dropped for
//! want of log space, and at scrape time live pods,
//! containers and shims (`serve.rs`).

mod layer;
mod serve;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use layer::MetricsLayer;
pub use serve::serve;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    pub method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub method: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CniLabels {
    /// `ADD` or `DEL`.
    pub command: String,
    /// `ok` or `error`.
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// 1 ms to about 65 s.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every metric of the daemon. Recording is lock-free; share it behind an `Arc`.
pub struct Metrics {
    registry: Registry,
    rpc_seconds: Histograms<MethodLabels>,
    rpc_calls: Family<CallLabels, Counter>,
    pull_seconds: Histogram,
    pulled_bytes: Counter,
    pull_failures: Counter,
    cni_seconds: Histograms<CniLabels>,
    oom_kills: Counter,
    log_dropped_bytes: Counter,
    pods: Family<StateLabels, Gauge>,
    containers: Family<StateLabels, Gauge>,
    shims: Gauge,
    event_subscribers: Gauge,
    event_subscribers_dropped: Gauge,
    /// Calls answered since start, for [`Metrics::answered`].
    answered: std::sync::atomic::AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("corral");
        let m = Metrics {
            rpc_seconds: Family::new_with_constructor(latency),
            rpc_calls: Family::default(),
            pull_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            pulled_bytes: Counter::default(),
            pull_failures: Counter::default(),
            cni_seconds: Family::new_with_constructor(latency),
            oom_kills: Counter::default(),
            log_dropped_bytes: Counter::default(),
            pods: Family::default(),
            containers: Family::default(),
            shims: Gauge::default(),
            event_subscribers: Gauge::default(),
            event_subscribers_dropped: Gauge::default(),
            answered: Default::default(),
            registry: Registry::default(),
        };
        registry.register(
            "grpc_request_duration_seconds",
            "CRI call latency until the response headers, by method",
            m.rpc_seconds.clone(),
        );
        registry.register(
            "grpc_requests",
            "CRI calls by method and gRPC code (code OK for streams that started)",
            m.rpc_calls.clone(),
        );
        registry.register(
            "image_pull_duration_seconds",
            "Duration of successful PullImage calls",
            m.pull_seconds.clone(),
        );
        registry.register(
            "image_pulled_bytes",
            "Sizes of the images successful pulls produced, as ImageStatus reports them",
            m.pulled_bytes.clone(),
        );
        registry.register(
            "image_pull_failures",
            "PullImage calls that failed",
            m.pull_failures.clone(),
        );
        registry.register(
            "cni_duration_seconds",
            "CNI ADD and DEL over a pod's plugin chain",
            m.cni_seconds.clone(),
        );
        registry.register(
            "oom_kills",
            "Containers that exited with an OOM kill in their cgroup",
            m.oom_kills.clone(),
        );
        registry.register(
            "container_log_dropped_bytes",
            "Container output the shims could not write to the containers' logs (a full or failing log disk), since start",
            m.log_dropped_bytes.clone(),
        );
        registry.register("pods", "Pod sandboxes by state", m.pods.clone());
        registry.register("containers", "Containers by state", m.containers.clone());
        registry.register(
            "shims",
            "Running shims (one per ready pod)",
            m.shims.clone(),
        );
        registry.register(
            "event_subscribers",
            "GetContainerEvents streams open",
            m.event_subscribers.clone(),
        );
        registry.register(
            "event_subscribers_dropped",
            "GetContainerEvents subscribers dropped for falling behind, since start",
            m.event_subscribers_dropped.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn rpc(&self, method: &str, code: tonic::Code, seconds: f64) {
        self.answered
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let method = method.to_owned();
        self.rpc_seconds
            .get_or_create(&MethodLabels {
                method: method.clone(),
            })
            .observe(seconds);
        self.rpc_calls
            .get_or_create(&CallLabels {
                method,
                code: format!("{code:?}"),
            })
            .inc();
    }

    pub fn pull(&self, result: Result<u64, ()>, seconds: f64) {
        match result {
            Ok(bytes) => {
                self.pull_seconds.observe(seconds);
                self.pulled_bytes.inc_by(bytes);
            }
            Err(()) => {
                self.pull_failures.inc();
            }
        }
    }

    pub fn cni(&self, command: &str, ok: bool, seconds: f64) {
        self.cni_seconds
            .get_or_create(&CniLabels {
                command: command.to_owned(),
                result: if ok { "ok" } else { "error" }.to_owned(),
            })
            .observe(seconds);
    }

    /// How many gRPC calls were answered since start.
    pub fn answered(&self) -> u64 {
        self.answered.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn oom_kill(&self) {
        self.oom_kills.inc();
    }

    pub fn log_dropped(&self, bytes: u64) {
        self.log_dropped_bytes.inc_by(bytes);
    }

    /// Sets the gauges that are counted at scrape time.
    pub fn set_live(&self, live: &Live) {
        for (state, n) in &live.pods {
            self.pods
                .get_or_create(&StateLabels {
                    state: (*state).to_owned(),
                })
                .set(*n);
        }
        for (state, n) in &live.containers {
            self.containers
                .get_or_create(&StateLabels {
                    state: (*state).to_owned(),
                })
                .set(*n);
        }
        self.shims.set(live.shims);
        self.event_subscribers.set(live.subscribers);
        self.event_subscribers_dropped.set(live.subscribers_dropped);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        out
    }
}

/// Counts taken at scrape time.
#[derive(Debug, Default)]
pub struct Live {
    pub pods: Vec<(&'static str, i64)>,
    pub containers: Vec<(&'static str, i64)>,
    pub shims: i64,
    pub subscribers: i64,
    pub subscribers_dropped: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_values_are_exposed() {
        let m = Metrics::new();
        m.rpc("Version", tonic::Code::Ok, 0.002);
        m.rpc("ContainerStatus", tonic::Code::NotFound, 0.001);
        m.cni("ADD", true, 0.03);
        m.oom_kill();
        m.log_dropped(4096);
        m.set_live(&Live {
            pods: vec![("SANDBOX_READY", 2)],
            shims: 2,
            ..Live::default()
        });
        let text = m.encode();
        for line in [
            "corral_grpc_requests_total{method=\"ContainerStatus\",code=\"NotFound\"} 1",
            "corral_grpc_request_duration_seconds_count{method=\"Version\"} 1",
            "corral_cni_duration_seconds_count{command=\"ADD\",result=\"ok\"} 1",
            "corral_oom_kills_total 1",
            "corral_container_log_dropped_bytes_total 4096",
            "corral_pods{state=\"SANDBOX_READY\"} 2",
            "corral_shims 2",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
