//! The seam between the server and a transport.
//!
//! The server routes a request, consumes its token, negotiates the subprotocol and answers
//! `101 Switching Protocols`; a transport then owns the upgraded connection. It opens the
//! client's streams and hands them to a [`RemoteCommandSession`] (by role) or a
//! [`PortForwardSession`] (one data/error pair per forwarded connection), which do the rest:
//! calling the [`Backend`], copying, writing the status.
//!
//! The WebSocket transport lives in this crate. The SPDY/3.1 one implements [`SpdyTransport`]
//! on a byte stream: the upgraded connection itself, or a WebSocket tunnelling SPDY
//! ([`websocket::Tunnel`](crate::websocket::Tunnel), port-forward only):
//! for remote commands it accepts the client's streams, feeds their `streamtype` headers into a
//! [`StreamCollector`] until complete (or [`STREAM_CREATION_TIMEOUT`]) and runs the session; for
//! port-forward it feeds each stream's `streamtype`, `port` and `requestid` headers into a
//! [`PairTable`](crate::portforward::PairTable) and calls [`PortForwardSession::forward`] for
//! every complete pair. A transport returns when the connection is done or `shutdown` fires, and
//! drops every stream then.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::backend::{AttachSpec, Backend, BoxStream, BoxWriter, ExecSpec};
use crate::remotecommand::{Protocol, StreamOptions, StreamType};
use crate::session::{self, CommandKind, Outcome, RemoteCommandStreams};

/// The upgraded connection a transport runs on.
pub type UpgradedIo = TokioIo<hyper::upgrade::Upgraded>;

/// How long an SPDY client may take to open a session's streams
/// (`remotecommand.DefaultStreamCreationTimeout`).
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// The stored request a remote command session runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandRequest {
    Exec(ExecSpec),
    Attach(AttachSpec),
}

/// A remote command (exec or attach) whose token was consumed and whose protocol is negotiated;
/// it runs once the transport has the client's streams.
pub struct RemoteCommandSession {
    protocol: Protocol,
    request: CommandRequest,
    backend: Arc<dyn Backend>,
}

impl RemoteCommandSession {
    /// A session for `request` under `protocol` (the server makes these; public for testing a
    /// transport on its own).
    pub fn new(protocol: Protocol, request: CommandRequest, backend: Arc<dyn Backend>) -> Self {
        Self {
            protocol,
            request,
            backend,
        }
    }

    /// The negotiated protocol version.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Which streams the client opens.
    pub fn options(&self) -> StreamOptions {
        match &self.request {
            CommandRequest::Exec(spec) => spec.into(),
            CommandRequest::Attach(spec) => spec.into(),
        }
    }

    /// Starts the process and runs the session to its end (see
    /// [`run_remote_command`](session::run_remote_command)).
    pub async fn run(self, streams: RemoteCommandStreams) -> Outcome {
        let (kind, start) = match self.request {
            CommandRequest::Exec(spec) => (
                CommandKind::Exec {
                    cmd: spec.cmd.clone(),
                },
                self.backend.exec(spec),
            ),
            CommandRequest::Attach(spec) => (CommandKind::Attach, self.backend.attach(spec)),
        };
        session::run_remote_command(streams, self.protocol, kind, start).await
    }
}

/// Why the streams an SPDY client opened do not make a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CollectError {
    #[error("unexpected stream type: {0:?}")]
    UnknownType(String),
    #[error("duplicate {0} stream")]
    Duplicate(&'static str),
    #[error("no error stream")]
    NoErrorStream,
}

/// Gathers an SPDY client's remote command streams by their `streamtype` header
/// (`waitForStreams`): complete when as many distinct streams arrived as
/// [`StreamOptions::expected_spdy_streams`] says.
pub struct StreamCollector {
    expected: usize,
    streams: [Option<BoxStream>; 5],
}

impl StreamCollector {
    /// A collector for `session`'s streams.
    pub fn new(session: &RemoteCommandSession) -> Self {
        Self {
            expected: session.options().expected_spdy_streams(session.protocol()),
            streams: Default::default(),
        }
    }

    /// Adds a stream; an unknown or repeated type is an error the transport logs (and resets
    /// that stream), as the kubelet does.
    pub fn add(&mut self, stream_type: &str, stream: BoxStream) -> Result<(), CollectError> {
        let role = StreamType::from_header(stream_type)
            .ok_or_else(|| CollectError::UnknownType(stream_type.to_owned()))?;
        let slot = &mut self.streams[usize::from(role.channel())];
        if slot.is_some() {
            return Err(CollectError::Duplicate(role.as_str()));
        }
        *slot = Some(stream);
        Ok(())
    }

    /// Whether every expected stream arrived.
    pub fn is_complete(&self) -> bool {
        self.streams.iter().flatten().count() >= self.expected
    }

    /// The streams by role. Readers and writers are the same SPDY streams seen from one side.
    pub fn finish(self) -> Result<RemoteCommandStreams, CollectError> {
        let [stdin, stdout, stderr, error, resize] = self.streams;
        let error: BoxWriter = error.ok_or(CollectError::NoErrorStream)?;
        Ok(RemoteCommandStreams {
            stdin: stdin.map(|s| s as _),
            stdout: stdout.map(|s| s as _),
            stderr: stderr.map(|s| s as _),
            error,
            resize: resize.map(|s| s as _),
        })
    }
}

/// A port-forward request whose token was consumed: forwards client connections into the pod.
pub struct PortForwardSession {
    pod_sandbox_id: String,
    ports: Vec<u16>,
    backend: Arc<dyn Backend>,
}

impl PortForwardSession {
    /// A session forwarding into `pod_sandbox_id`; `ports` empty allows any port (the server
    /// makes these; public for testing a transport on its own).
    pub fn new(pod_sandbox_id: String, ports: Vec<u16>, backend: Arc<dyn Backend>) -> Self {
        Self {
            pod_sandbox_id,
            ports,
            backend,
        }
    }

    /// The pod sandbox forwarded into.
    pub fn pod_sandbox_id(&self) -> &str {
        &self.pod_sandbox_id
    }

    /// The ports of the CRI request; empty when the streams name them.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Forwards one client connection (`data`, with `error` for failure messages) to `port`,
    /// until either side closes.
    pub async fn forward<D>(&self, port: u16, data: D, error: BoxWriter)
    where
        D: AsyncRead + AsyncWrite + Send + Unpin,
    {
        let target = self.backend.port_forward(&self.pod_sandbox_id, port).await;
        session::forward_port(target, &self.pod_sandbox_id, port, data, error).await;
    }
}

/// The SPDY/3.1 transport, provided by the `spdy` module and given to
/// [`StreamingServer::start`](crate::StreamingServer::start).
///
/// The server has already checked `Upgrade: SPDY/3.1`, negotiated `X-Stream-Protocol-Version`
/// and sent the `101` answer carrying it (or, for a tunnel, negotiated
/// `SPDY/3.1+portforward.k8s.io` and answered the WebSocket handshake); the transport speaks
/// SPDY on `io`.
pub trait SpdyTransport: Send + Sync + 'static {
    /// Runs a remote command connection: collect the streams, [`RemoteCommandSession::run`].
    fn serve_remote_command(
        &self,
        io: BoxStream,
        session: RemoteCommandSession,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, ()>;

    /// Runs a port-forward connection: pair the streams, [`PortForwardSession::forward`] each.
    fn serve_port_forward(
        &self,
        io: BoxStream,
        session: Arc<PortForwardSession>,
        shutdown: CancellationToken,
    ) -> BoxFuture<'static, ()>;
}

#[cfg(test)]
mod tests {
    use futures::future::BoxFuture;

    use super::*;
    use crate::backend::{BackendError, ProcessIo};

    struct NoBackend;

    impl Backend for NoBackend {
        fn exec(&self, _: ExecSpec) -> BoxFuture<'static, Result<ProcessIo, BackendError>> {
            Box::pin(async { Err(BackendError::Failed("unused".into())) })
        }
        fn attach(&self, _: AttachSpec) -> BoxFuture<'static, Result<ProcessIo, BackendError>> {
            Box::pin(async { Err(BackendError::Failed("unused".into())) })
        }
        fn port_forward(
            &self,
            _: &str,
            _: u16,
        ) -> BoxFuture<'static, Result<BoxStream, BackendError>> {
            Box::pin(async { Err(BackendError::Failed("unused".into())) })
        }
    }

    fn stream() -> BoxStream {
        Box::new(tokio::io::duplex(8).0)
    }

    #[test]
    fn spdy_streams_are_collected_by_type() {
        let session = RemoteCommandSession::new(
            Protocol::V4,
            CommandRequest::Exec(ExecSpec {
                container_id: "c".into(),
                cmd: vec!["sh".into()],
                tty: true,
                stdin: true,
                stdout: true,
                stderr: false,
            }),
            Arc::new(NoBackend),
        );
        let mut collector = StreamCollector::new(&session);
        for t in ["error", "stdin", "stdout"] {
            collector.add(t, stream()).unwrap();
            assert!(!collector.is_complete());
        }
        assert_eq!(
            collector.add("stdout", stream()),
            Err(CollectError::Duplicate("stdout"))
        );
        assert!(matches!(
            collector.add("bogus", stream()),
            Err(CollectError::UnknownType(_))
        ));
        collector.add("resize", stream()).unwrap();
        assert!(collector.is_complete());
        let streams = collector.finish().unwrap();
        assert!(streams.stdin.is_some() && streams.resize.is_some() && streams.stderr.is_none());

        let mut partial = StreamCollector::new(&session);
        partial.add("stdin", stream()).unwrap();
        assert_eq!(partial.finish().err(), Some(CollectError::NoErrorStream));
    }
}
