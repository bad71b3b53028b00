//! Connections to the CRI endpoints and deadlines for every call.
//!
//! Every unary call gets its deadline twice: as the gRPC `grpc-timeout` header (so the server
//! can give up too) and as a client-side [`tokio::time::timeout`], so a server that never
//! answers cannot hang the process.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use anyhow::{Context, bail};
use corral_cri_api::corral::kube_service_client::KubeServiceClient;
use corral_cri_api::v1::image_service_client::ImageServiceClient;
use corral_cri_api::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

/// Endpoint used when neither `--runtime-endpoint` nor `CONTAINER_RUNTIME_ENDPOINT` is set.
pub const DEFAULT_ENDPOINT: &str = "unix:///run/corral/corral.sock";

/// Deadline of connections and of ordinary calls when `--timeout` is not given (crictl's).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Which deadline a call gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// An ordinary call: `--timeout`, or [`DEFAULT_TIMEOUT`].
    Call,
    /// A long call (image pulls): only an explicit `--timeout`, otherwise none.
    Long,
}

/// The global settings every command talks through.
#[derive(Debug, Clone)]
pub struct Cri {
    runtime_endpoint: String,
    image_endpoint: String,
    timeout: Option<Duration>,
    debug: bool,
}

impl Cri {
    /// `image_endpoint` defaults to the runtime endpoint; `timeout` is `Some` only when the
    /// user gave `--timeout`.
    pub fn new(
        runtime_endpoint: String,
        image_endpoint: Option<String>,
        timeout: Option<Duration>,
        debug: bool,
    ) -> Self {
        let image_endpoint = image_endpoint
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| runtime_endpoint.clone());
        Self {
            runtime_endpoint,
            image_endpoint,
            timeout,
            debug,
        }
    }

    /// The deadline for a call of the given kind; `None` means no deadline.
    pub fn deadline(&self, kind: Deadline) -> Option<Duration> {
        match kind {
            Deadline::Call => Some(self.timeout.unwrap_or(DEFAULT_TIMEOUT)),
            Deadline::Long => self.timeout,
        }
    }

    /// Prints a debug line to stderr when `--debug` is on, like crictl's `DEBU` lines.
    pub fn debug(&self, message: impl FnOnce() -> String) {
        if self.debug {
            eprintln!("DEBU {}", message());
        }
    }

    /// Opens the runtime service (`--runtime-endpoint`).
    pub async fn runtime(&self) -> anyhow::Result<RuntimeServiceClient<Channel>> {
        let channel = self
            .channel(&self.runtime_endpoint, "--runtime-endpoint")
            .await?;
        Ok(RuntimeServiceClient::new(channel))
    }

    /// Opens the image service (`--image-endpoint`, defaulting to the runtime endpoint).
    pub async fn image(&self) -> anyhow::Result<ImageServiceClient<Channel>> {
        let flag = if self.image_endpoint == self.runtime_endpoint {
            "--runtime-endpoint or --image-endpoint"
        } else {
            "--image-endpoint"
        };
        let channel = self.channel(&self.image_endpoint, flag).await?;
        Ok(ImageServiceClient::new(channel))
    }

    /// Opens Corral's pod manager (`corral.v1.KubeService`) on the runtime endpoint.
    pub async fn kube(&self) -> anyhow::Result<KubeServiceClient<Channel>> {
        let channel = self
            .channel(&self.runtime_endpoint, "--runtime-endpoint")
            .await?;
        Ok(KubeServiceClient::new(channel))
    }

    async fn channel(&self, endpoint: &str, flag: &str) -> anyhow::Result<Channel> {
        check_endpoint(endpoint)?;
        self.debug(|| format!("connect using endpoint {endpoint:?}"));
        let limit = self.deadline(Deadline::Call).unwrap_or(DEFAULT_TIMEOUT);
        let hint = format!("is the runtime running? check {flag}");
        match tokio::time::timeout(limit, corral_cri_api::connect(endpoint)).await {
            Ok(Ok(channel)) => Ok(channel),
            Ok(Err(err)) => bail!("cannot connect to {endpoint}: {}; {hint}", root_cause(&err)),
            Err(_) => bail!(
                "cannot connect to {endpoint}: no connection within {}; {hint}",
                format_duration(limit)
            ),
        }
    }

    /// Runs one unary call with its deadline, logging request and response under `--debug`.
    pub async fn call<Req, Resp, Fut>(
        &self,
        rpc: &str,
        kind: Deadline,
        request: Req,
        send: impl FnOnce(tonic::Request<Req>) -> Fut,
    ) -> Result<Resp, RpcError>
    where
        Req: fmt::Debug,
        Resp: fmt::Debug,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        self.debug(|| format!("{rpc}Request: {request:?}"));
        self.call_unlogged(rpc, kind, request, send).await
    }

    /// Like [`Cri::call`] but does not log the request (it may carry credentials).
    pub async fn call_unlogged<Req, Resp, Fut>(
        &self,
        rpc: &str,
        kind: Deadline,
        request: Req,
        send: impl FnOnce(tonic::Request<Req>) -> Fut,
    ) -> Result<Resp, RpcError>
    where
        Resp: fmt::Debug,
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let mut request = tonic::Request::new(request);
        let deadline = self.deadline(kind);
        if let Some(deadline) = deadline {
            request.set_timeout(deadline);
        }
        let reply = match deadline {
            Some(deadline) => tokio::time::timeout(deadline, send(request))
                .await
                .map_err(|_| RpcError::TimedOut(deadline))?,
            None => send(request).await,
        };
        let reply = reply
            .map(tonic::Response::into_inner)
            .map_err(|status| match deadline {
                // tonic enforces `grpc-timeout` itself and reports it as CANCELLED.
                Some(deadline) if is_tonic_timeout(&status) => RpcError::TimedOut(deadline),
                _ => RpcError::Status(status),
            });
        match &reply {
            Ok(resp) => self.debug(|| format!("{rpc}Response: {resp:?}")),
            Err(err) => self.debug(|| format!("{rpc} failed: {err}")),
        }
        reply
    }
}

/// Whether `status` is tonic's own report of an expired `grpc-timeout` (client or server side).
fn is_tonic_timeout(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Cancelled
        && status.message() == tonic::TimeoutExpired(()).to_string()
}

/// Rejects endpoint schemes the Unix-socket connector cannot dial.
fn check_endpoint(endpoint: &str) -> anyhow::Result<()> {
    if endpoint.is_empty() {
        bail!("endpoint is not set; use --runtime-endpoint");
    }
    if let Some((scheme, _)) = endpoint.split_once("://")
        && scheme != "unix"
    {
        bail!("unsupported endpoint {endpoint:?}: only unix:// sockets are supported");
    }
    Ok(())
}

/// The innermost error: for a failed dial, the OS error ("No such file or directory").
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// A failed CRI call: the server's status, or no reply before the deadline.
#[derive(Debug)]
pub enum RpcError {
    Status(tonic::Status),
    TimedOut(Duration),
}

impl RpcError {
    /// The gRPC code; a client-side timeout counts as `DeadlineExceeded`.
    pub fn code(&self) -> tonic::Code {
        match self {
            RpcError::Status(status) => status.code(),
            RpcError::TimedOut(_) => tonic::Code::DeadlineExceeded,
        }
    }
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcError::Status(status) if status.message().is_empty() => {
                write!(f, "{:?}", status.code())
            }
            RpcError::Status(status) => write!(f, "{:?}: {}", status.code(), status.message()),
            RpcError::TimedOut(limit) => write!(
                f,
                "DeadlineExceeded: no reply within {} (raise it with --timeout)",
                format_duration(*limit)
            ),
        }
    }
}

impl std::error::Error for RpcError {}

/// Parses a Go-style duration as crictl takes it (`2s`, `500ms`, `1m30s`, `1.5h`); a bare
/// number means seconds.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    if text.is_empty() {
        bail!("empty duration");
    }
    if let Ok(secs) = text.parse::<f64>() {
        return seconds(secs, text);
    }
    let mut total = 0.0_f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            bail!("invalid duration {text:?}: expected a number before {rest:?}");
        }
        let (number, tail) = rest.split_at(number_len);
        let value: f64 = number
            .parse()
            .with_context(|| format!("invalid duration {text:?}"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => bail!("invalid duration {text:?}: missing unit after {number}"),
            other => bail!("invalid duration {text:?}: unknown unit {other:?}"),
        };
        total += value * scale;
        rest = tail;
    }
    seconds(total, text)
}

fn seconds(secs: f64, text: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(secs).with_context(|| format!("invalid duration {text:?}"))
}

/// Formats a duration the way it was most likely typed (`2s`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{d:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        let ok = |s: &str| parse_duration(s).expect(s);
        assert_eq!(ok("2s"), Duration::from_secs(2));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok("10"), Duration::from_secs(10));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("250us"), Duration::from_micros(250));
        for bad in ["", "s", "5x", "1m30", "-1s", "abc"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn durations_format_back() {
        assert_eq!(format_duration(Duration::from_secs(2)), "2s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn deadlines_follow_the_timeout_flag() {
        let cri = Cri::new("unix:///x.sock".into(), None, None, false);
        assert_eq!(cri.deadline(Deadline::Call), Some(DEFAULT_TIMEOUT));
        assert_eq!(cri.deadline(Deadline::Long), None);
        assert_eq!(cri.image_endpoint, "unix:///x.sock");
        let secs = Duration::from_secs(30);
        let cri = Cri::new("/a".into(), Some("/b".into()), Some(secs), false);
        assert_eq!(cri.deadline(Deadline::Call), Some(secs));
        assert_eq!(cri.deadline(Deadline::Long), Some(secs));
        assert_eq!(cri.image_endpoint, "/b");
    }

    #[test]
    fn only_unix_endpoints_are_accepted() {
        assert!(check_endpoint("unix:///run/x.sock").is_ok());
        assert!(check_endpoint("/run/x.sock").is_ok());
        assert!(check_endpoint("tcp://localhost:1234").is_err());
        assert!(check_endpoint("").is_err());
    }

    #[test]
    fn rpc_errors_show_code_and_message() {
        let err = RpcError::Status(tonic::Status::not_found("image \"x\" not found"));
        assert_eq!(err.to_string(), "NotFound: image \"x\" not found");
        assert_eq!(err.code(), tonic::Code::NotFound);
        assert!(is_tonic_timeout(&tonic::Status::cancelled(
            "Timeout expired"
        )));
        assert!(!is_tonic_timeout(&tonic::Status::cancelled("by user")));
        let err = RpcError::TimedOut(Duration::from_secs(2));
        assert!(
            err.to_string()
                .starts_with("DeadlineExceeded: no reply within 2s")
        );
    }

    #[tokio::test]
    async fn connecting_to_a_missing_socket_names_the_endpoint() {
        let cri = Cri::new(
            "unix:///nonexistent/corralctl-test.sock".into(),
            None,
            None,
            false,
        );
        let err = cri.runtime().await.expect_err("connect must fail");
        let text = format!("{err:#}");
        assert!(
            text.contains("unix:///nonexistent/corralctl-test.sock"),
            "{text}"
        );
        assert!(text.contains("--runtime-endpoint"), "{text}");
    }
}
