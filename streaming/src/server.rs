//! The server: configuration, the listener and its connections, the URLs it issues, shutdown.
//! Request handling is in [`routes`](crate::routes).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::{AttachSpec, Backend, ExecSpec, PortForwardSpec};
use crate::error::{Error, RequestError};
use crate::portforward::MAX_PORTS;
use crate::token::TokenCache;
use crate::transport::SpdyTransport;
use crate::{routes, tls};

/// How long a client has for the TLS handshake and for sending its request headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (request line, headers) accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Where and how the server listens, and its token limits.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The address to listen on; port 0 picks a free port. The issued URLs carry the address
    /// actually bound, so bind a specific address (not `0.0.0.0`) when clients are remote.
    pub addr: SocketAddr,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<TlsConfig>,
    /// How long an issued URL stays valid (the kubelet: one minute).
    pub token_ttl: Duration,
    /// Most URLs outstanding at once (the kubelet: 1000).
    pub max_tokens: usize,
    /// Most connections not yet upgraded at once; more are closed at accept.
    pub max_connections: usize,
}

/// PEM files for HTTPS.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            tls: None,
            token_ttl: Duration::from_secs(60),
            max_tokens: 1000,
            max_connections: 1024,
        }
    }
}

/// A stored request, waiting for its client.
#[derive(Debug, Clone)]
pub(crate) enum Stored {
    Exec(ExecSpec),
    Attach(AttachSpec),
    PortForward(PortForwardSpec),
}

/// Live counts, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerStats {
    /// HTTP connections not (yet) upgraded.
    pub connections: usize,
    /// Upgraded streaming sessions.
    pub sessions: usize,
    /// Server tasks alive (connections and sessions; the accept loop is not counted).
    pub tasks: usize,
    /// Tokens issued and not yet used (expired ones until the next issue removes them).
    pub outstanding_tokens: usize,
}

/// What the request handlers share.
pub(crate) struct Shared {
    pub tokens: TokenCache<Stored>,
    pub backend: Arc<dyn Backend>,
    pub spdy: Arc<dyn SpdyTransport>,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    connections: Arc<AtomicUsize>,
    sessions: Arc<AtomicUsize>,
}

/// Decrements a live count when dropped.
pub(crate) struct Live(Arc<AtomicUsize>);

impl Live {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(count))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Shared {
    /// Counts an upgraded session while the guard lives.
    pub fn session(&self) -> Live {
        Live::new(&self.sessions)
    }
}

/// The streaming server. Dropping it stops it without waiting; [`shutdown`](Self::shutdown)
/// waits for every connection and session to end.
pub struct StreamingServer {
    shared: Arc<Shared>,
    local_addr: SocketAddr,
    base_url: String,
    accept_loop: tokio::task::JoinHandle<()>,
}

impl StreamingServer {
    /// Binds and starts serving streaming sessions over WebSocket and SPDY/3.1.
    pub async fn start(config: ServerConfig, backend: Arc<dyn Backend>) -> Result<Self, Error> {
        Self::start_with_spdy(config, backend, crate::spdy_transport()).await
    }

    /// Like [`start`](Self::start), with this SPDY/3.1 transport (tests shorten its timeouts).
    pub async fn start_with_spdy(
        config: ServerConfig,
        backend: Arc<dyn Backend>,
        spdy: Arc<dyn SpdyTransport>,
    ) -> Result<Self, Error> {
        let acceptor = match &config.tls {
            Some(tls) => Some(tls::acceptor(&tls.cert_path, &tls.key_path)?),
            None => None,
        };
        let bind_err = |source| Error::Bind {
            addr: config.addr,
            source,
        };
        let listener = TcpListener::bind(config.addr).await.map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let base_url = format!("{scheme}://{local_addr}");
        let shared = Arc::new(Shared {
            tokens: TokenCache::new(config.token_ttl, config.max_tokens),
            backend,
            spdy,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            connections: Arc::new(AtomicUsize::new(0)),
            sessions: Arc::new(AtomicUsize::new(0)),
        });
        let limit = Arc::new(Semaphore::new(config.max_connections));
        let accept_loop = tokio::spawn(accept_loop(Arc::clone(&shared), listener, acceptor, limit));
        tracing::info!(url = %base_url, "streaming server listening");
        Ok(Self {
            shared,
            local_addr,
            base_url,
            accept_loop,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http(s)://<addr>:<port>`, the prefix of every issued URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Stores an `Exec` request and returns its URL, `<base>/exec/<token>`.
    pub fn exec_url(&self, spec: ExecSpec) -> Result<String, RequestError> {
        check_streams(
            &spec.container_id,
            spec.tty,
            spec.stdin,
            spec.stdout,
            spec.stderr,
        )?;
        if spec.cmd.is_empty() {
            return Err(RequestError::Invalid("missing required cmd"));
        }
        self.issue("exec", Stored::Exec(spec))
    }

    /// Stores an `Attach` request and returns its URL, `<base>/attach/<token>`.
    pub fn attach_url(&self, spec: AttachSpec) -> Result<String, RequestError> {
        check_streams(
            &spec.container_id,
            spec.tty,
            spec.stdin,
            spec.stdout,
            spec.stderr,
        )?;
        self.issue("attach", Stored::Attach(spec))
    }

    /// Stores a `PortForward` request and returns its URL, `<base>/portforward/<token>`.
    pub fn port_forward_url(&self, spec: PortForwardSpec) -> Result<String, RequestError> {
        if spec.pod_sandbox_id.is_empty() {
            return Err(RequestError::Invalid("missing required pod_sandbox_id"));
        }
        if spec.ports.len() > MAX_PORTS {
            return Err(RequestError::Invalid("too many ports"));
        }
        if spec.ports.contains(&0) {
            return Err(RequestError::Invalid("port 0 cannot be forwarded"));
        }
        self.issue("portforward", Stored::PortForward(spec))
    }

    fn issue(&self, kind: &str, request: Stored) -> Result<String, RequestError> {
        let token = self.shared.tokens.insert(request, Instant::now())?;
        Ok(format!("{}/{kind}/{token}", self.base_url))
    }

    /// Live counts.
    pub fn stats(&self) -> ServerStats {
        ServerStats {
            connections: self.shared.connections.load(Ordering::SeqCst),
            sessions: self.shared.sessions.load(Ordering::SeqCst),
            tasks: self.shared.tasks.len(),
            outstanding_tokens: self.shared.tokens.len(),
        }
    }

    /// Stops accepting, ends every connection and session (exec'd processes are killed by the
    /// backend as their [`ProcessIo`](crate::ProcessIo) is dropped), and waits for that.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        self.shared.tasks.close();
        let _ = (&mut self.accept_loop).await;
        self.shared.tasks.wait().await;
        tracing::info!(url = %self.base_url, "streaming server stopped");
    }
}

impl Drop for StreamingServer {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

/// The kubelet's checks of an exec or attach request (`validateExecRequest`).
fn check_streams(
    container_id: &str,
    tty: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
) -> Result<(), RequestError> {
    if container_id.is_empty() {
        return Err(RequestError::Invalid("missing required container_id"));
    }
    if tty && stderr {
        // With a TTY there is one output stream.
        return Err(RequestError::Invalid("tty and stderr cannot both be true"));
    }
    if !stdin && !stdout && !stderr {
        return Err(RequestError::Invalid(
            "one of stdin, stdout, or stderr must be set",
        ));
    }
    Ok(())
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    limit: Arc<Semaphore>,
) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accepting a streaming connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            tracing::warn!(%peer, "too many streaming connections; closing a new one");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let shared_conn = Arc::clone(&shared);
        let acceptor = acceptor.clone();
        shared
            .tasks
            .spawn(serve_connection(shared_conn, tcp, acceptor, permit));
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    tcp: TcpStream,
    acceptor: Option<TlsAcceptor>,
    _permit: OwnedSemaphorePermit,
) {
    let _live = Live::new(&shared.connections);
    match acceptor {
        None => serve_http(shared, tcp).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
            let tls = tokio::select! {
                () = shared.shutdown.cancelled() => return,
                tls = handshake => tls,
            };
            match tls {
                Ok(Ok(stream)) => serve_http(shared, stream).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        }
    }
}

async fn serve_http<S>(shared: Arc<Shared>, io: S)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let shutdown = shared.shutdown.clone();
    let service = service_fn(move |req| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, std::convert::Infallible>(routes::handle(&shared, req)) }
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "streaming connection");
            }
        }
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
