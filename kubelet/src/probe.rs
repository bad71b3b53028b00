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

/// A probe worker's state for one container: the timing and the threshold counting of the
/// kubelet's `worker.go`.
///
/// The worker waits [`initial_delay`](Self::initial_delay) after the container started, then
/// probes every [`period`](Self::period) and feeds each [`Outcome`] to
/// [`record`](Self::record). Liveness and readiness probes only run once the container has
/// started (its startup probe, if any, succeeded); a startup probe stops once it succeeded.
/// After a liveness or startup failure the state is on hold (outcomes are ignored) until
/// [`reset`](Self::reset) for the replacement container.
#[derive(Clone, Debug)]
pub struct ProbeState {
    kind: ProbeKind,
    initial_delay: Duration,
    period: Duration,
    success_threshold: u32,
    failure_threshold: u32,
    result: Option<bool>,
    last: Option<bool>,
    run: u32,
    on_hold: bool,
}

fn positive_or(value: Option<i32>, default: u32) -> u32 {
    match value {
        Some(v) if v > 0 => v.unsigned_abs(),
        _ => default,
    }
}

impl ProbeState {
    /// The state of a new worker for `probe` (defaults applied where fields are unset or not
    /// positive, as the API server's defaulting does).
    pub fn new(probe: &Probe, kind: ProbeKind) -> Self {
        ProbeState {
            kind,
            initial_delay: Duration::from_secs(u64::from(positive_or(
                probe.initial_delay_seconds,
                0,
            ))),
            period: Duration::from_secs(u64::from(positive_or(probe.period_seconds, 10))),
            success_threshold: positive_or(probe.success_threshold, 1),
            failure_threshold: positive_or(probe.failure_threshold, 3),
            result: kind.initial(),
            last: None,
            run: 0,
            on_hold: false,
        }
    }

    /// The probe's kind.
    pub fn kind(&self) -> ProbeKind {
        self.kind
    }

    /// How long after the container started the first probe runs (`initialDelaySeconds`).
    pub fn initial_delay(&self) -> Duration {
        self.initial_delay
    }

    /// The time between probes (`periodSeconds`, default 10 s).
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The current result: ready / alive / started. `None` for a startup probe that has not
    /// succeeded yet.
    pub fn result(&self) -> Option<bool> {
        self.result
    }

    /// Whether the worker is waiting for the container to be replaced after a liveness or
    /// startup failure; outcomes are ignored meanwhile.
    pub fn on_hold(&self) -> bool {
        self.on_hold
    }

    /// Counts one probe outcome. Returns `Some(new result)` when the result changes: after
    /// `successThreshold` consecutive successes or `failureThreshold` consecutive failures.
    /// [`Outcome::Unknown`] is not counted. A liveness or startup failure puts the state on
    /// hold.
    pub fn record(&mut self, outcome: &Outcome) -> Option<bool> {
        if self.on_hold {
            return None;
        }
        let ok = match outcome {
            Outcome::Success | Outcome::Warning(_) => true,
            Outcome::Failure(_) => false,
            Outcome::Unknown(_) => return None,
        };
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let threshold = if ok {
            self.success_threshold
        } else {
            self.failure_threshold
        };
        if self.run < threshold {
            return None;
        }
        let changed = self.result != Some(ok);
        self.result = Some(ok);
        if !ok && matches!(self.kind, ProbeKind::Liveness | ProbeKind::Startup) {
            self.on_hold = true;
            self.run = 0;
        }
        changed.then_some(ok)
    }

    /// Starts over for a new container (a restart): the initial result, no counts, no hold.
    pub fn reset(&mut self) {
        self.result = self.kind.initial();
        self.last = None;
        self.run = 0;
        self.on_hold = false;
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

/// Go's `%q` is close enough to Rust's `{:?}` for command lines.
fn quoted(s: &str) -> String {
    format!("{s:?}")
}

fn expand_command(command: &[String], env: &[EnvVar]) -> Vec<String> {
    command
        .iter()
        .map(|arg| {
            corral_kube::env::expand(arg, |name| {
                env.iter()
                    .rev()
                    .find(|var| var.name == name)
                    .map(|var| var.value.clone().unwrap_or_default())
            })
        })
        .collect()
}

fn combined_output(output: &ExecOutput) -> String {
    let mut data = output.stdout.clone();
    data.extend_from_slice(&output.stderr);
    data.truncate(MAX_OUTPUT);
    String::from_utf8_lossy(&data).into_owned()
}

async fn exec_probe(action: &ExecAction, target: &Target<'_>, timeout: Duration) -> Outcome {
    let command = expand_command(action.command.as_deref().unwrap_or_default(), target.env);
    let joined = command.join(" ");
    match target
        .exec
        .exec_sync(target.container_id, command, timeout)
        .await
    {
        Ok(output) if output.exit_code == 0 => Outcome::Success,
        Ok(output) => Outcome::Failure(combined_output(&output)),
        Err(ExecError::TimedOut) => {
            Outcome::Failure(format!("command {} timed out", quoted(&joined)))
        }
        Err(ExecError::Failed(message)) => Outcome::Unknown(message),
    }
}

// ---- ports and hosts ----

/// A probe's or handler's port: a number, a declared port's name, or a number written as a
/// string; 1..=65535.
fn resolve_port(port: &IntOrString, ports: &[ContainerPort]) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => match ports.iter().find(|p| p.name.as_deref() == Some(name)) {
            Some(p) => i64::from(p.container_port),
            None => name
                .parse::<i64>()
                .map_err(|_| format!("port {name} not found (and it is not a port number)"))?,
        },
    };
    u16::try_from(number)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("invalid port number: {number}"))
}

/// `host:port`, brackets around an IPv6 address (Go's `net.JoinHostPort`).
fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn host_or_pod_ip(host: Option<&str>, target: &Target<'_>) -> Result<String, String> {
    match host.filter(|h| !h.is_empty()) {
        Some(h) => Ok(h.to_owned()),
        None => target
            .pod_ip
            .map(|ip| ip.to_string())
            .ok_or_else(|| "the pod has no IP address".to_owned()),
    }
}

/// Go's rendering of a syscall error: `connection refused` rather than Rust's
/// `Connection refused (os error 111)`.
fn io_error_text(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::TimedOut {
        return "i/o timeout".to_owned();
    }
    let text = e.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) if e.raw_os_error().is_some() => text[..at].to_owned(),
        _ => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

fn go_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{d:?}")
    }
}

// ---- tcpSocket ----

async fn tcp_probe(action: &TCPSocketAction, target: &Target<'_>, timeout: Duration) -> Outcome {
    let port = match resolve_port(&action.port, target.ports) {
        Ok(port) => port,
        Err(e) => return Outcome::Unknown(e),
    };
    let host = match host_or_pod_ip(action.host.as_deref(), target) {
        Ok(host) => host,
        Err(e) => return Outcome::Unknown(e),
    };
    let addr = join_host_port(&host, port);
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(stream)) => {
            drop(stream);
            Outcome::Success
        }
        Ok(Err(e)) => Outcome::Failure(format!("dial tcp {addr}: connect: {}", io_error_text(&e))),
        Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
    }
}

// ---- httpGet ----

#[derive(Debug, thiserror::Error)]
#[error("stopped after 10 redirects")]
struct TooManyRedirects;

/// The kubelet's redirect rule for probes: follow redirects to the same host name (any port),
/// at most 10; stop at a redirect elsewhere and return that response.
fn same_host_redirects(attempt: reqwest::redirect::Attempt<'_>) -> reqwest::redirect::Action {
    let first = attempt
        .previous()
        .first()
        .and_then(|u| u.host_str())
        .map(str::to_owned);
    if attempt.url().host_str() != first.as_deref() {
        attempt.stop()
    } else if attempt.previous().len() >= 10 {
        attempt.error(TooManyRedirects)
    } else {
        attempt.follow()
    }
}

/// The HTTP client probes and handlers share: no certificate verification, no proxy, no
/// connection reuse, the kubelet's redirect rule. Timeouts are per request.
fn http_client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .tls_danger_accept_invalid_certs(true)
                .tls_danger_accept_invalid_hostnames(true)
                .no_proxy()
                .pool_max_idle_per_host(0)
                .redirect(reqwest::redirect::Policy::custom(same_host_redirects))
                .build()
                .map_err(|e| format!("building the HTTP client: {}", error_chain(&e)))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The request an httpGet action makes: its URL and headers.
fn http_request(
    action: &HTTPGetAction,
    target: &Target<'_>,
    user_agent: &str,
) -> Result<(reqwest::Url, HeaderMap), String> {
    if let Some(protocol) = action.protocol.as_deref().filter(|p| !p.is_empty())
        && !protocol.eq_ignore_ascii_case("HTTP/1.1")
    {
        return Err(format!("unsupported httpGet protocol {protocol:?}"));
    }
    let scheme = match action.scheme.as_deref().unwrap_or("") {
        "" => "http".to_owned(),
        s => s.to_ascii_lowercase(),
    };
    let port = resolve_port(&action.port, target.ports)?;
    let host = host_or_pod_ip(action.host.as_deref(), target)?;
    let path = action.path.as_deref().unwrap_or("");
    let slash = if path.starts_with('/') { "" } else { "/" };
    let url = format!("{scheme}://{}{slash}{path}", join_host_port(&host, port));
    let url = reqwest::Url::parse(&url).map_err(|e| format!("parse {url:?}: {e}"))?;

    let mut headers = HeaderMap::new();
    for header in action.http_headers.iter().flatten() {
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| format!("invalid HTTP header name {:?}", header.name))?;
        let value = HeaderValue::from_str(&header.value).map_err(|_| {
            format!(
                "invalid HTTP header value for {:?}: {:?}",
                header.name, header.value
            )
        })?;
        headers.append(name, value);
    }
    if !headers.contains_key(USER_AGENT) {
        headers.insert(
            USER_AGENT,
            HeaderValue::from_str(user_agent).map_err(|e| e.to_string())?,
        );
    } else if headers.get(USER_AGENT).is_some_and(|v| v.is_empty()) {
        // Go sends no User-Agent when it is set but empty.
        headers.remove(USER_AGENT);
    }
    if !headers.contains_key(ACCEPT) {
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
    }
    Ok((url, headers))
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = e;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    match innermost.downcast_ref::<std::io::Error>() {
        Some(io) => io_error_text(io),
        None => innermost.to_string(),
    }
}

/// A failed request as Go's `*url.Error` prints it: `Get "http://…": …`.
fn request_error(url: &reqwest::Url, e: &reqwest::Error) -> String {
    let detail = if e.is_timeout() {
        "context deadline exceeded (Client.Timeout exceeded while awaiting headers)".to_owned()
    } else if e.is_connect() {
        let addr = join_host_port(
            url.host_str()
                .unwrap_or("")
                .trim_start_matches('[')
                .trim_end_matches(']'),
            url.port_or_known_default().unwrap_or(0),
        );
        format!("dial tcp {addr}: connect: {}", error_chain(e))
    } else {
        error_chain(e)
    };
    format!("Get {}: {detail}", quoted(url.as_str()))
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while body.len() < MAX_OUTPUT {
        match response.chunk().await? {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => break,
        }
    }
    body.truncate(MAX_OUTPUT);
    Ok(body)
}

async fn http_probe(action: &HTTPGetAction, target: &Target<'_>, timeout: Duration) -> Outcome {
    let (url, headers) = match http_request(action, target, &format!("kube-probe/{KUBE_VERSION}")) {
        Ok(request) => request,
        Err(e) => return Outcome::Unknown(e),
    };
    let client = match http_client() {
        Ok(client) => client,
        Err(e) => return Outcome::Unknown(e),
    };
    let deadline = Instant::now() + timeout;
    let sent = client
        .get(url.clone())
        .headers(headers)
        .timeout(timeout)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) => return Outcome::Failure(request_error(&url, &e)),
    };
    let status = response.status().as_u16();
    let body = match tokio::time::timeout_at(deadline, read_limited(response)).await {
        Ok(Ok(body)) => String::from_utf8_lossy(&body).into_owned(),
        Ok(Err(e)) => return Outcome::Unknown(request_error(&url, &e)),
        Err(_) => {
            return Outcome::Unknown(format!(
                "reading the response of {}: context deadline exceeded",
                quoted(url.as_str())
            ));
        }
    };
    match status {
        200..=299 => Outcome::Success,
        300..=399 => {
            tracing::debug!(%url, status, "probe terminated redirects");
            Outcome::Warning(format!("Probe terminated redirects, Response body: {body}"))
        }
        _ => {
            tracing::debug!(%url, status, %body, "HTTP probe failed");
            // The kubelet keeps the body out of the user-facing message (issue 99425).
            Outcome::Failure(format!("HTTP probe failed with statuscode: {status}"))
        }
    }
}

// ---- grpc ----

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(enumeration = "ServingStatus", tag = "1")]
    status: i32,
}

/// `grpc.health.v1.HealthCheckResponse.ServingStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
enum ServingStatus {
    Unknown = 0,
    Serving = 1,
    NotServing = 2,
    ServiceUnknown = 3,
}

fn serving_status_name(status: i32) -> String {
    match ServingStatus::try_from(status) {
        Ok(ServingStatus::Unknown) => "UNKNOWN".to_owned(),
        Ok(ServingStatus::Serving) => "SERVING".to_owned(),
        Ok(ServingStatus::NotServing) => "NOT_SERVING".to_owned(),
        Ok(ServingStatus::ServiceUnknown) => "SERVICE_UNKNOWN".to_owned(),
        Err(_) => status.to_string(),
    }
}

const HEALTH_CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// A gRPC status code's name as grpc-go prints it.
fn code_name(code: tonic::Code) -> String {
    match code {
        tonic::Code::Ok => "OK".to_owned(),
        tonic::Code::Cancelled => "Canceled".to_owned(),
        other => format!("{other:?}"),
    }
}

async fn grpc_probe(action: &GRPCAction, target: &Target<'_>, timeout: Duration) -> Outcome {
    if let Some(mode) = action.mode.as_deref().filter(|m| !m.is_empty())
        && !mode.eq_ignore_ascii_case("Plaintext")
    {
        return Outcome::Unknown(format!("unsupported grpc probe mode {mode:?}"));
    }
    let Some(ip) = target.pod_ip else {
        return Outcome::Unknown("the pod has no IP address".to_owned());
    };
    let port = match u16::try_from(action.port).ok().filter(|p| *p > 0) {
        Some(port) => port,
        None => return Outcome::Unknown(format!("invalid port number: {}", action.port)),
    };
    let addr = SocketAddr::new(ip, port).to_string();
    let service = action.service.clone().unwrap_or_default();
    let within = go_duration(timeout);
    let deadline = Instant::now() + timeout;

    let endpoint = match tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .and_then(|e| e.user_agent(format!("kube-probe/{KUBE_VERSION}")))
    {
        Ok(endpoint) => endpoint,
        Err(e) => return Outcome::Unknown(format!("grpc endpoint {addr}: {e}")),
    };
    let channel = match tokio::time::timeout_at(deadline, endpoint.connect()).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(e)) => {
            return Outcome::Failure(format!(
                "error: failed to connect service at {}: {}",
                quoted(&addr),
                error_chain(&e)
            ));
        }
        Err(_) => {
            return Outcome::Failure(format!(
                "timeout: failed to connect service {} within {within}: context deadline exceeded",
                quoted(&addr)
            ));
        }
    };

    let mut client = tonic::client::Grpc::new(channel);
    let call = async {
        client
            .ready()
            .await
            .map_err(|e| tonic::Status::unavailable(error_chain(&e)))?;
        let mut request = tonic::Request::new(HealthCheckRequest { service });
        request.set_timeout(deadline.saturating_duration_since(Instant::now()));
        let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
        client
            .unary(
                request,
                tonic::codegen::http::uri::PathAndQuery::from_static(HEALTH_CHECK_PATH),
                codec,
            )
            .await
    };
    let timed_out = format!("timeout: health rpc did not complete within {within}");
    match tokio::time::timeout_at(deadline, call).await {
        Err(_) => Outcome::Failure(timed_out),
        Ok(Err(status)) => match status.code() {
            tonic::Code::Unimplemented => Outcome::Failure(format!(
                "error: this server does not implement the grpc health protocol \
                 (grpc.health.v1.Health): {}",
                status.message()
            )),
            tonic::Code::DeadlineExceeded => Outcome::Failure(timed_out),
            code => Outcome::Failure(format!(
                "error: health rpc probe failed: rpc error: code = {} desc = {}",
                code_name(code),
                status.message()
            )),
        },
        Ok(Ok(response)) => {
            let status = response.into_inner().status;
            if status == ServingStatus::Serving as i32 {
                Outcome::Success
            } else {
                Outcome::Failure(format!(
                    "service unhealthy (responded with {})",
                    quoted(&serving_status_name(status))
                ))
            }
        }
    }
}

// ---- lifecycle handlers ----

/// Why a lifecycle handler failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// The exec handler could not run or exited non-zero.
    #[error("Exec lifecycle hook ({command}) failed - error: {error}, message: {output:?}")]
    Exec {
        /// The command, as Go prints a `[]string`: `[sh -c …]`.
        command: String,
        /// What went wrong (`command '…' exited with 1: …`).
        error: String,
        /// The command's output.
        output: String,
    },
    /// The HTTP request failed (the response's status does not matter).
    #[error("HTTP lifecycle hook ({path}) failed - error: {error}")]
    Http {
        /// The handler's path.
        path: String,
        /// What went wrong.
        error: String,
    },
    /// The handler has no action this kubelet can run (none, or `tcpSocket`).
    #[error("Cannot run handler: {0}")]
    Invalid(String),
}

impl HandlerError {
    /// The kubelet's event message for a failed hook of `container` in `pod` (the pod as the
    /// kubelet formats it, `name_namespace(uid)`).
    pub fn event_message(&self, container: &str, pod: &str) -> String {
        match self {
            HandlerError::Exec {
                command,
                error,
                output,
            } => format!(
                "Exec lifecycle hook ({command}) for Container {} in Pod {} failed - error: \
                 {error}, message: {}",
                quoted(container),
                quoted(pod),
                quoted(output)
            ),
            HandlerError::Http { path, error } => format!(
                "HTTP lifecycle hook ({path}) for Container {} in Pod {} failed - error: {error}",
                quoted(container),
                quoted(pod)
            ),
            HandlerError::Invalid(_) => self.to_string(),
        }
    }
}

/// Runs a `postStart` or `preStop` handler to completion. Exec has no timeout and HTTP no
/// deadline, as in the kubelet: bound it by dropping the future.
pub async fn run_handler(h: &LifecycleHandler, target: &Target<'_>) -> Result<(), HandlerError> {
    if let Some(exec) = &h.exec {
        exec_handler(exec, target).await
    } else if let Some(http) = &h.http_get {
        http_handler(http, target).await
    } else if let Some(sleep) = &h.sleep {
        tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0).unsigned_abs())).await;
        Ok(())
    } else if h.tcp_socket.is_some() {
        Err(HandlerError::Invalid(
            "invalid handler: tcpSocket is not supported as a lifecycle handler".to_owned(),
        ))
    } else {
        Err(HandlerError::Invalid(
            "invalid handler: no action".to_owned(),
        ))
    }
}

async fn exec_handler(action: &ExecAction, target: &Target<'_>) -> Result<(), HandlerError> {
    let command = action.command.clone().unwrap_or_default();
    let joined = command.join(" ");
    let printed = format!("[{joined}]");
    match target
        .exec
        .exec_sync(target.container_id, command, Duration::ZERO)
        .await
    {
        Ok(output) if output.exit_code == 0 => Ok(()),
        Ok(output) => Err(HandlerError::Exec {
            command: printed,
            error: format!(
                "command '{joined}' exited with {}: {}",
                output.exit_code,
                String::from_utf8_lossy(&output.stderr)
            ),
            output: combined_output(&output),
        }),
        Err(e) => Err(HandlerError::Exec {
            command: printed,
            error: match e {
                ExecError::TimedOut => format!("command {} timed out", quoted(&joined)),
                ExecError::Failed(message) => message,
            },
            output: String::new(),
        }),
    }
}

/// Whether an HTTPS request failed because the server answered in plain HTTP (rustls reads
/// the HTTP response as a record of an invalid content type).
fn is_plain_http_answer(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        let text = err.to_string();
        if text.contains("InvalidContentType") || text.contains("HTTP response to HTTPS") {
            return true;
        }
        source = err.source();
    }
    false
}

async fn http_handler(action: &HTTPGetAction, target: &Target<'_>) -> Result<(), HandlerError> {
    let path = action.path.clone().unwrap_or_default();
    let fail = |error: String| HandlerError::Http {
        path: path.clone(),
        error,
    };
    if action.host.as_deref().is_none_or(str::is_empty) && target.pod_ip.is_none() {
        return Err(fail("failed to find networking container".to_owned()));
    }
    let (url, headers) =
        http_request(action, target, &format!("kube-lifecycle/{KUBE_VERSION}")).map_err(&fail)?;
    let client = http_client().map_err(&fail)?;
    let sent = client
        .get(url.clone())
        .headers(headers.clone())
        .send()
        .await;
    match sent {
        Ok(response) => {
            let _ = read_limited(response).await;
            Ok(())
        }
        Err(e) if url.scheme() == "https" && is_plain_http_answer(&e) => {
            let mut plain = url.clone();
            // Always valid: switching between two special schemes.
            let _ = plain.set_scheme("http");
            let mut headers = headers;
            headers.remove(reqwest::header::AUTHORIZATION);
            tracing::warn!(
                host = url.host_str().unwrap_or(""),
                "HTTPS request to lifecycle hook got HTTP response, retrying with HTTP"
            );
            match client.get(plain).headers(headers).send().await {
                Ok(response) => {
                    let _ = read_limited(response).await;
                    Ok(())
                }
                Err(_) => Err(fail(request_error(&url, &e))),
            }
        }
        Err(e) => Err(fail(request_error(&url, &e))),
    }
}
