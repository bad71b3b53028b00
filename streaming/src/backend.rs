//! What the streaming server needs from the runtime: the [`Backend`] trait the daemon implements,
//! the requests stored with each token, and the handles to a running process.

use std::fmt;

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// A readable byte stream, boxed.
pub type BoxReader = Box<dyn AsyncRead + Send + Unpin>;
/// A writable byte stream, boxed.
pub type BoxWriter = Box<dyn AsyncWrite + Send + Unpin>;

/// A bidirectional byte stream (a TCP connection into a pod, a forwarded port's data stream).
pub trait AsyncReadWrite: AsyncRead + AsyncWrite {}
impl<T: AsyncRead + AsyncWrite + ?Sized> AsyncReadWrite for T {}

/// A bidirectional byte stream, boxed.
pub type BoxStream = Box<dyn AsyncReadWrite + Send + Unpin>;

/// A CRI `Exec` request, kept with its token until the client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    pub container_id: String,
    /// The command and its arguments; never empty.
    pub cmd: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// A CRI `Attach` request, kept with its token until the client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachSpec {
    pub container_id: String,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// A CRI `PortForward` request, kept with its token until the client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForwardSpec {
    pub pod_sandbox_id: String,
    /// The ports of the CRI request. May be empty: then the ports come from the streaming request
    /// (the `port` query parameters of a WebSocket request, the `port` header of each SPDY
    /// stream). When it is not empty, only these ports can be forwarded.
    pub ports: Vec<u16>,
}

/// The streams of a process started (exec) or joined (attach) for a client.
///
/// Dropping it before [`exit`](Self::exit) resolved means the client went away: the backend kills
/// an exec'd process; an attached container is only detached.
pub struct ProcessIo {
    /// The process's stdin; `None` unless stdin was requested. Shut down (then dropped) when the
    /// client closes its stdin; for an attach the backend decides what that means for the
    /// container (CRI `stdin_once`).
    pub stdin: Option<BoxWriter>,
    /// The process's stdout (with a TTY: the terminal's output).
    pub stdout: Option<BoxReader>,
    /// The process's stderr; `None` with a TTY.
    pub stderr: Option<BoxReader>,
    /// Terminal size changes, `(width, height)`; `None` without a TTY.
    pub resize: Option<mpsc::Sender<(u16, u16)>>,
    /// Resolves to the exit code when the process ends (attach: when the container exits).
    pub exit: BoxFuture<'static, Result<i32, BackendError>>,
}

impl fmt::Debug for ProcessIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessIo")
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("resize", &self.resize.is_some())
            .finish_non_exhaustive()
    }
}

/// Why the backend could not serve a request. Its text reaches the client (kubectl prints it),
/// so it names the object and never carries secrets.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("container {0} not found")]
    ContainerNotFound(String),
    #[error("container {0} is not running")]
    ContainerNotRunning(String),
    #[error("pod sandbox {0} not found")]
    SandboxNotFound(String),
    #[error("port {port} in pod sandbox {sandbox}: {source}")]
    Connect {
        sandbox: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
}

/// The runtime side of the streaming server; the daemon implements it.
///
/// Each method returns a `'static` future so the server can run it on its own tasks; the
/// implementation clones what it needs out of `self` first.
pub trait Backend: Send + Sync + 'static {
    /// Starts `spec.cmd` in the container with the requested streams.
    fn exec(&self, spec: ExecSpec) -> BoxFuture<'static, Result<ProcessIo, BackendError>>;
    /// Attaches to the container's main process with the requested streams.
    fn attach(&self, spec: AttachSpec) -> BoxFuture<'static, Result<ProcessIo, BackendError>>;
    /// Opens a TCP connection to `port` inside the pod sandbox's network namespace.
    fn port_forward(
        &self,
        pod_sandbox_id: &str,
        port: u16,
    ) -> BoxFuture<'static, Result<BoxStream, BackendError>>;
}
