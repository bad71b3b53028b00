//! Container probes (liveness, readiness, startup) and lifecycle handlers (postStart, preStop),
//! as the kubelet runs them (`pkg/probe/{exec,http,tcp,grpc}`, `pkg/kubelet/prober`,
//! `pkg/kubelet/lifecycle/handlers.go`).
//!
//! # API
//!
//! - [`Exec`]: how a probe runs a command in the container (the CRI's `ExecSync`); the pod
//!   manager implements it, tests use a fake.
//! - [`Target`]: the container a probe or handler is aimed at: its ID, the pod's IP (for a
//!   host-network pod, the host's IP, which is what the pod's `status.podIP` says), its declared
//!   ports (for named ports), its `env` (exec probes expand `$(VAR)` against the literal values)
//!   and the [`Exec`].
//! - [`run`] makes one probe attempt within `timeoutSeconds` (default 1) and returns an
//!   [`Outcome`]. An attempt that *errored* (a port name that is not declared, an exec the runtime
//!   could not run, ...) is retried up to three times, as the kubelet does, and then reported as
//!   [`Outcome::Unknown`], which the probe worker throws away.
//! - [`ProbeState`] is the probe worker's counting (`worker.go`): `initialDelaySeconds`,
//!   `periodSeconds` (default 10), `successThreshold` (default 1), `failureThreshold` (default 3),
//!   the initial result (readiness: not ready; liveness: alive; startup: unknown until it has
//!   succeeded), and the hold after a liveness or startup failure until the container is
//!   replaced ([`ProbeState::reset`]).
//! - [`run_handler`] runs a `postStart` or `preStop` handler: exec (no timeout), httpGet (any
//!   HTTP response is success; only a failed request is an error) or sleep. `tcpSocket` is
//!   accepted by the API for compatibility only and fails at run time, as in the kubelet.
//!   Bounding a handler by the termination grace period is the caller's business: drop the
//!   future.
//!
//! # Messages
//!
//! The messages in [`Outcome`] are the kubelet's probe outputs; the caller composes the event
//! text around them: `"{Kind} probe failed: {message}"` (reason `Unhealthy`),
//! `"{Kind} probe warning: {message}"` (reason `ProbeWarning`, for [`Outcome::Warning`]) and
//! `"{Kind} probe errored and resulted in unknown state: {message}"` for [`Outcome::Unknown`].
//! [`HandlerError::event_message`] gives the kubelet's `FailedPostStartHook` /
//! `FailedPreStopHook` text.
//!
//! # Behaviour
//!
//! - exec: exit code 0 is success; any other code is a failure whose message is stdout followed
//!   by stderr (at most 10 KiB); a timeout is a failure `command "…" timed out`.
//! - httpGet: `scheme` HTTP or HTTPS (certificates are not verified), `host` (default the pod
//!   IP), `port` a number or a declared port name, `path` (default `/`), `httpHeaders` (which may
//!   override `Host`, `User-Agent` — default `kube-probe/1.37` — and `Accept` — default `*/*`).
//!   No proxy, no keep-alive. Success for 200 ≤ status < 400. Redirects to the same host name are
//!   followed (at most 10); a redirect elsewhere is not followed and the 3xx response is a
//!   success with a warning. At most 10 KiB of the body is read.
//! - tcpSocket: success when a connection is established within the timeout.
//! - grpc: `grpc.health.v1.Health/Check` with `service` (default empty) over plaintext HTTP/2
//!   to the pod IP; `SERVING` is success, any other status or error a failure.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::Duration;

use corral_kube::k8s_openapi::api::core::v1::{
    ContainerPort, EnvVar, ExecAction, GRPCAction, HTTPGetAction, LifecycleHandler, Probe,
    TCPSocketAction,
};
use corral_kube::k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue, USER_AGENT};
use tokio::time::Instant;

mod exec;
mod grpc;
mod handler;
mod http;
mod net;
mod state;
mod tcp;

use exec::{combined_output, exec_probe, quoted};
use grpc::grpc_probe;
#[cfg(test)]
use grpc::{HEALTH_CHECK_PATH, HealthCheckRequest, HealthCheckResponse, ServingStatus};
pub use handler::{HandlerError, run_handler};
use http::{error_chain, http_client, http_probe, http_request, read_limited, request_error};
use net::{go_duration, host_or_pod_ip, io_error_text, join_host_port, resolve_port};
pub use state::ProbeState;
use state::positive_or;
use tcp::tcp_probe;

#[cfg(test)]
mod tests;

/// The Kubernetes version the probes claim in `User-Agent` (`kube-probe/1.37`), the API version
/// of the types `corral-kube` uses.
pub const KUBE_VERSION: &str = "1.37";

/// At most this much of an exec's output or an HTTP body is kept (the kubelet's 10 KiB).
const MAX_OUTPUT: usize = 10 * 1024;

/// How often an errored probe attempt is tried before it is reported as unknown.
const MAX_PROBE_RETRIES: usize = 3;

/// The output of a command run in a container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The command's exit code.
    pub exit_code: i32,
    /// What it wrote to standard output.
    pub stdout: Vec<u8>,
    /// What it wrote to standard error.
    pub stderr: Vec<u8>,
}

/// Why a command could not be run to completion in a container.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// The command did not finish within its timeout (the CRI's deadline exceeded).
    #[error("timed out")]
    TimedOut,
    /// The runtime could not run it (no such container, exec failed to start, ...).
    #[error("{0}")]
    Failed(String),
}

/// How probes and handlers run commands in a container: the CRI's `ExecSync`.
pub trait Exec: Send + Sync {
    /// Runs `cmd` in container `container_id` and waits for it, at most `timeout`
    /// (`Duration::ZERO`: no timeout, as lifecycle handlers use).
    fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<ExecOutput, ExecError>> + Send + '_>>;
}

/// The container a probe or a lifecycle handler is aimed at.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    /// The CRI container ID, for exec.
    pub container_id: &'a str,
    /// The pod's IP (`status.podIP`; the host's for a host-network pod): the default host of
    /// httpGet and tcpSocket, and grpc's only host. `None` while the pod has none: network
    /// probes then error (unknown) and HTTP handlers fail.
    pub pod_ip: Option<IpAddr>,
    /// The container's declared ports, for named ports.
    pub ports: &'a [ContainerPort],
    /// The container's `env`; exec probe commands expand `$(VAR)` against the literal values
    /// (`valueFrom` variables expand to the empty string), as the kubelet does.
    pub env: &'a [EnvVar],
    /// Runs commands in the container.
    pub exec: &'a dyn Exec,
}

/// The result of one probe attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The probe succeeded.
    Success,
    /// The probe succeeded with a warning (an HTTP redirect to another host was not followed);
    /// the kubelet records a `ProbeWarning` event with this message.
    Warning(String),
    /// The probe failed, with the kubelet's message (e.g.
    /// `HTTP probe failed with statuscode: 404`).
    Failure(String),
    /// The probe could not be run (misconfiguration, the runtime failed); not counted.
    Unknown(String),
}

impl Outcome {
    /// Success or success with a warning.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Success | Outcome::Warning(_))
    }
}

/// The kind of a probe, which decides its initial result and what a failure does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// `livenessProbe`: a failure restarts the container.
    Liveness,
    /// `readinessProbe`: decides the container's `ready`.
    Readiness,
    /// `startupProbe`: holds the other probes until it succeeds; a failure restarts the
    /// container.
    Startup,
}

impl ProbeKind {
    /// `Liveness`, `Readiness`, `Startup`: how the kubelet's events name the probe.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        }
    }

    fn initial(self) -> Option<bool> {
        match self {
            ProbeKind::Liveness => Some(true),
            ProbeKind::Readiness => Some(false),
            ProbeKind::Startup => None,
        }
    }
}

/// The timeout of one attempt of `probe` (`timeoutSeconds`, default 1 s).
pub fn timeout(probe: &Probe) -> Duration {
    Duration::from_secs(u64::from(positive_or(probe.timeout_seconds, 1)))
}

/// Makes one probe attempt against `target`, within the probe's timeout.
pub async fn run(probe: &Probe, target: &Target<'_>) -> Outcome {
    let timeout = timeout(probe);
    let mut outcome = Outcome::Unknown(String::new());
    for attempt in 0..MAX_PROBE_RETRIES {
        outcome = run_once(probe, target, timeout).await;
        match &outcome {
            Outcome::Unknown(message) => {
                tracing::debug!(container = target.container_id, attempt, %message, "probe errored");
            }
            _ => break,
        }
    }
    outcome
}

async fn run_once(probe: &Probe, target: &Target<'_>, timeout: Duration) -> Outcome {
    if let Some(exec) = &probe.exec {
        exec_probe(exec, target, timeout).await
    } else if let Some(http) = &probe.http_get {
        http_probe(http, target, timeout).await
    } else if let Some(tcp) = &probe.tcp_socket {
        tcp_probe(tcp, target, timeout).await
    } else if let Some(grpc) = &probe.grpc {
        grpc_probe(grpc, target, timeout).await
    } else {
        Outcome::Unknown(format!(
            "missing probe handler for container {}",
            target.container_id
        ))
    }
}

// ---- exec ----

// ---- ports and hosts ----

// ---- tcpSocket ----

// ---- httpGet ----

// ---- grpc ----

// ---- lifecycle handlers ----
