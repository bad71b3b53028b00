//! Failures printed as kubectl prints them: `Error from server (NotFound): pods "x" not found`
//! for the server's answers, `error: ...` for local problems, and the server's own message for
//! INVALID_ARGUMENT (it is already kubectl-shaped: field paths and reasons).

use std::fmt;

use crate::client::RpcError;

use super::kind::Kind;

/// A kubectl-shaped failure; `main` prints its text as it is and exits 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeError {
    /// `Error from server (<reason>): <message>`.
    Server { reason: String, message: String },
    /// Printed as it is (the server's validation message).
    Verbatim(String),
    /// `error: <message>`.
    Local(String),
}

impl KubeError {
    pub fn local(message: impl Into<String>) -> Self {
        KubeError::Local(message.into())
    }

    pub fn not_found(kind: Kind, name: &str) -> Self {
        KubeError::Server {
            reason: "NotFound".into(),
            message: format!("{} \"{name}\" not found", kind.plural()),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        KubeError::Server {
            reason: "BadRequest".into(),
            message: message.into(),
        }
    }

    /// The error of a failed call. `target` is the one object the call was about, when there
    /// is one: NotFound and AlreadyExists then name it as kubectl does whatever the server
    /// wrote; otherwise the server's message is kept.
    pub fn from_rpc(err: RpcError, target: Option<(Kind, &str)>) -> Self {
        let status = match err {
            RpcError::Status(status) => status,
            timed_out @ RpcError::TimedOut(_) => return KubeError::Local(timed_out.to_string()),
        };
        let message = status.message().to_string();
        let server = |reason: &str, message: String| KubeError::Server {
            reason: reason.into(),
            message,
        };
        match status.code() {
            tonic::Code::NotFound => match target {
                Some((kind, name)) => KubeError::not_found(kind, name),
                None => server("NotFound", message),
            },
            tonic::Code::AlreadyExists => match target {
                Some((kind, name)) => server(
                    "AlreadyExists",
                    format!("{} \"{name}\" already exists", kind.plural()),
                ),
                None => server("AlreadyExists", message),
            },
            tonic::Code::InvalidArgument => KubeError::Verbatim(message),
            tonic::Code::Unimplemented => KubeError::Local(format!(
                "the runtime does not serve corral.v1.KubeService (the pod manager); is it corrald? ({message})"
            )),
            tonic::Code::Unavailable => KubeError::Local(format!(
                "the connection to the runtime was refused: {message}"
            )),
            code => server(reason(code), message),
        }
    }
}

/// The Kubernetes status reason closest to a gRPC code.
fn reason(code: tonic::Code) -> &'static str {
    match code {
        tonic::Code::PermissionDenied => "Forbidden",
        tonic::Code::Unauthenticated => "Unauthorized",
        tonic::Code::Aborted => "Conflict",
        tonic::Code::FailedPrecondition => "BadRequest",
        tonic::Code::DeadlineExceeded => "Timeout",
        tonic::Code::ResourceExhausted => "TooManyRequests",
        _ => "InternalError",
    }
}

impl fmt::Display for KubeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KubeError::Server { reason, message } => {
                write!(f, "Error from server ({reason}): {message}")
            }
            KubeError::Verbatim(message) => f.write_str(message.trim_end()),
            KubeError::Local(message) => write!(f, "error: {message}"),
        }
    }
}

impl std::error::Error for KubeError {}

/// A failure already printed (each of several inputs or names reports its own): exit 1 and
/// print nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reported;

impl fmt::Display for Reported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("failed")
    }
}

impl std::error::Error for Reported {}

/// How `main` prints any error of a kubectl-style verb: a [`KubeError`] anywhere in the chain
/// as it is, anything else as `error: <chain>`; nothing for [`Reported`].
pub fn report(err: &anyhow::Error) -> Option<String> {
    if err.chain().any(|e| e.is::<Reported>()) {
        return None;
    }
    Some(
        match err.chain().find_map(|e| e.downcast_ref::<KubeError>()) {
            Some(kube) => kube.to_string(),
            None => format!("error: {err:#}"),
        },
    )
}

/// Whether the chain holds a kubectl-shaped failure (printed without `corralctl:`).
pub fn is_kube(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|e| e.is::<Reported>() || e.is::<KubeError>())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn status(code: tonic::Code, msg: &str) -> RpcError {
        RpcError::Status(tonic::Status::new(code, msg))
    }

    #[test]
    fn server_errors_print_like_kubectl() {
        let e = KubeError::from_rpc(
            status(tonic::Code::NotFound, "no such pod"),
            Some((Kind::Pod, "x")),
        );
        assert_eq!(
            e.to_string(),
            "Error from server (NotFound): pods \"x\" not found"
        );
        let e = KubeError::from_rpc(
            status(tonic::Code::NotFound, "namespaces \"dev\" not found"),
            None,
        );
        assert_eq!(
            e.to_string(),
            "Error from server (NotFound): namespaces \"dev\" not found"
        );
        let e = KubeError::from_rpc(
            status(tonic::Code::AlreadyExists, "exists"),
            Some((Kind::Pod, "web")),
        );
        assert_eq!(
            e.to_string(),
            "Error from server (AlreadyExists): pods \"web\" already exists"
        );
        let msg = "The Pod \"web\" is invalid: spec.containers[0].image: Required value\n";
        let e = KubeError::from_rpc(status(tonic::Code::InvalidArgument, msg), None);
        assert_eq!(e.to_string(), msg.trim_end());
        let e = KubeError::from_rpc(status(tonic::Code::Internal, "boom"), None);
        assert_eq!(e.to_string(), "Error from server (InternalError): boom");
        let e = KubeError::from_rpc(status(tonic::Code::Unimplemented, ""), None);
        assert!(
            e.to_string()
                .starts_with("error: the runtime does not serve")
        );
        let e = KubeError::from_rpc(RpcError::TimedOut(Duration::from_secs(2)), None);
        assert!(e.to_string().starts_with("error: DeadlineExceeded"), "{e}");
    }

    #[test]
    fn reports_find_the_kube_error_in_the_chain() {
        let err = anyhow::Error::new(KubeError::not_found(Kind::Namespace, "dev"));
        assert!(is_kube(&err));
        assert_eq!(
            report(&err).as_deref(),
            Some("Error from server (NotFound): namespaces \"dev\" not found")
        );
        let err = anyhow::anyhow!("reading x").context("loading");
        assert!(!is_kube(&err));
        assert_eq!(report(&err).as_deref(), Some("error: loading: reading x"));
        assert_eq!(report(&anyhow::Error::new(Reported)), None);
    }
}
