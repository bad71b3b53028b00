//! The client side of streaming sessions, for `corralctl`, the tests and the benchmark: run a
//! remote command (exec or attach) or forward a port through the URL a CRI runtime returned.
//! Both Corral's server and other runtimes' (containerd, CRI-O) are reachable.

pub mod spdy;
pub mod websocket;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// Which protocol carries the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// SPDY/3.1 (what kubectl and crictl speak; the only one containerd and CRI-O serve).
    Spdy,
    /// WebSocket with the `v5`/`v4.channel.k8s.io` subprotocols.
    WebSocket,
}

/// The local ends of a remote command.
pub struct CommandIo {
    /// Copied to the process's stdin; at its end, the process's stdin is closed (v5).
    pub stdin: Option<Box<dyn AsyncRead + Send + Unpin>>,
    pub stdout: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// `None` with a TTY.
    pub stderr: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Terminal sizes `(width, height)` to send (TTY sessions).
    pub resize: Option<mpsc::Receiver<(u16, u16)>>,
}

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit code (0 for success).
    Exited(i32),
    /// The server reported a failure that is not an exit code.
    Failed(String),
}

/// Why a session could not run.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {url}: {message}")]
    Connect { url: String, message: String },
    #[error("the server chose no supported subprotocol (offered {offered})")]
    Protocol { offered: String },
    #[error("session: {0}")]
    Session(String),
    #[error("{0} is not supported by this client yet")]
    Unsupported(&'static str),
}

/// Decodes what a v4+ server wrote on the error channel.
pub(crate) fn outcome(error_channel: &[u8]) -> Outcome {
    if error_channel.is_empty() {
        return Outcome::Exited(0);
    }
    match serde_json::from_slice::<crate::remotecommand::Status>(error_channel) {
        Ok(status) if status.is_success() => Outcome::Exited(0),
        Ok(status) => match status.exit_code() {
            Some(code) => Outcome::Exited(code),
            None => Outcome::Failed(status.message),
        },
        Err(_) => Outcome::Failed(String::from_utf8_lossy(error_channel).into_owned()),
    }
}

/// Runs a remote command at `url` (from Exec or Attach).
pub async fn remote_command(
    url: &str,
    transport: Transport,
    io: CommandIo,
) -> Result<Outcome, ClientError> {
    match transport {
        Transport::WebSocket => websocket::remote_command(url, io).await,
        Transport::Spdy => spdy::remote_command(url, io).await,
    }
}
