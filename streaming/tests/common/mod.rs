//! A fake backend that runs real local processes and connects to real local ports, and a small
//! WebSocket client speaking the channel framing.
#![allow(dead_code, clippy::unwrap_used)] // test helpers: a failed unwrap is a failed test

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use corral_streaming::{
    AttachSpec, Backend, BackendError, BoxReader, BoxStream, BoxWriter, ExecSpec, ProcessIo,
    ServerConfig, StreamingServer,
};
use futures::future::BoxFuture;
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(10);

/// What the fake backend saw.
#[derive(Default)]
pub struct Observed {
    /// Processes started and not yet finished or dropped.
    pub live: AtomicUsize,
    /// Terminal sizes received.
    pub resizes: Mutex<Vec<(u16, u16)>>,
}

/// Exec runs `cmd` directly; attach runs `sh -c <container_id>`; port-forward connects to
/// 127.0.0.1:<port>. Container `missing` and sandbox `missing` do not exist.
#[derive(Clone, Default)]
pub struct FakeBackend {
    pub observed: Arc<Observed>,
}

struct LiveGuard(Arc<Observed>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FakeBackend {
    fn spawn(
        &self,
        argv: Vec<String>,
        stdin: bool,
        stdout: bool,
        stderr: bool,
        tty: bool,
    ) -> Result<ProcessIo, BackendError> {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(if stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(if stderr {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| BackendError::Failed(format!("starting {argv:?}: {e}")))?;
        self.observed.live.fetch_add(1, Ordering::SeqCst);
        let guard = LiveGuard(Arc::clone(&self.observed));
        let resize = tty.then(|| {
            let (tx, mut rx) = mpsc::channel::<(u16, u16)>(4);
            let observed = Arc::clone(&self.observed);
            tokio::spawn(async move {
                while let Some(size) = rx.recv().await {
                    observed.resizes.lock().unwrap().push(size);
                }
            });
            tx
        });
        Ok(ProcessIo {
            stdin: child.stdin.take().map(|s| Box::new(s) as BoxWriter),
            stdout: child.stdout.take().map(|s| Box::new(s) as BoxReader),
            stderr: child.stderr.take().map(|s| Box::new(s) as BoxReader),
            resize,
            exit: Box::pin(async move {
                let _guard = guard;
                let status = child
                    .wait()
                    .await
                    .map_err(|e| BackendError::Failed(e.to_string()))?;
                Ok(status.code().unwrap_or(137))
            }),
        })
    }
}

impl Backend for FakeBackend {
    fn exec(&self, spec: ExecSpec) -> BoxFuture<'static, Result<ProcessIo, BackendError>> {
        let this = self.clone();
        Box::pin(async move {
            if spec.container_id == "missing" {
                return Err(BackendError::ContainerNotFound(spec.container_id));
            }
            this.spawn(spec.cmd, spec.stdin, spec.stdout, spec.stderr, spec.tty)
        })
    }

    fn attach(&self, spec: AttachSpec) -> BoxFuture<'static, Result<ProcessIo, BackendError>> {
        let this = self.clone();
        Box::pin(async move {
            let argv = vec!["sh".to_owned(), "-c".to_owned(), spec.container_id];
            this.spawn(argv, spec.stdin, spec.stdout, spec.stderr, spec.tty)
        })
    }

    fn port_forward(
        &self,
        pod_sandbox_id: &str,
        port: u16,
    ) -> BoxFuture<'static, Result<BoxStream, BackendError>> {
        let sandbox = pod_sandbox_id.to_owned();
        Box::pin(async move {
            if sandbox == "missing" {
                return Err(BackendError::SandboxNotFound(sandbox));
            }
            let stream = TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|source| BackendError::Connect {
                    sandbox,
                    port,
                    source,
                })?;
            Ok(Box::new(stream) as BoxStream)
        })
    }
}

pub async fn start() -> (StreamingServer, FakeBackend) {
    start_with(ServerConfig::default()).await
}

pub async fn start_with(config: ServerConfig) -> (StreamingServer, FakeBackend) {
    let backend = FakeBackend::default();
    let server = StreamingServer::start(config, Arc::new(backend.clone()))
        .await
        .unwrap();
    (server, backend)
}

/// A server with the SPDY/3.1 transport.
pub async fn start_spdy() -> (StreamingServer, FakeBackend) {
    let backend = FakeBackend::default();
    let server = StreamingServer::start_with_spdy(
        ServerConfig::default(),
        Arc::new(backend.clone()),
        corral_streaming::spdy_transport(),
    )
    .await
    .unwrap();
    (server, backend)
}

pub fn exec_spec(cmd: &[&str], stdin: bool, stdout: bool, stderr: bool) -> ExecSpec {
    ExecSpec {
        container_id: "c1".to_owned(),
        cmd: cmd.iter().map(|s| (*s).to_owned()).collect(),
        tty: false,
        stdin,
        stdout,
        stderr,
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects to an `http://` streaming URL offering `protocols`; returns the socket and the
/// subprotocol the server chose.
pub async fn connect(
    url: &str,
    protocols: &[&str],
) -> Result<(Ws, Option<String>), tungstenite::Error> {
    let mut request = url.replacen("http://", "ws://", 1).into_client_request()?;
    if !protocols.is_empty() {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            protocols.join(", ").parse().unwrap(),
        );
    }
    let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect timed out")?;
    let chosen = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    Ok((ws, chosen))
}

/// The HTTP status a failed WebSocket connect got.
pub async fn connect_status(url: &str, protocols: &[&str]) -> u16 {
    match connect(url, protocols).await {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("unexpected connect error {e}"),
    }
}

/// Sends `data` on `channel` in binary framing.
pub async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    channel: u8,
    data: &[u8],
) {
    let mut msg = vec![channel];
    msg.extend_from_slice(data);
    ws.send(Message::binary(msg)).await.unwrap();
}

/// Everything the server sent until it closed the connection.
#[derive(Debug, Default)]
pub struct Received {
    /// Messages in order as (channel, payload), decoded.
    pub messages: Vec<(u8, Vec<u8>)>,
    /// Whether a close frame arrived.
    pub closed: bool,
    /// Its code.
    pub close_code: Option<u16>,
}

impl Received {
    pub fn channel(&self, channel: u8) -> Vec<u8> {
        self.messages
            .iter()
            .filter(|(c, _)| *c == channel)
            .flat_map(|(_, d)| d.clone())
            .collect()
    }

    pub fn channel_text(&self, channel: u8) -> String {
        String::from_utf8(self.channel(channel)).unwrap()
    }
}

/// Reads until the server closes; `base64` decodes the text framing.
pub async fn receive_all<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    base64: bool,
) -> Received {
    let mut received = Received::default();
    loop {
        let next = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("server went silent");
        match next {
            None => break,
            Some(Err(tungstenite::Error::ConnectionClosed)) => break,
            Some(Err(e)) => panic!("reading: {e}"),
            Some(Ok(Message::Close(frame))) => {
                received.closed = true;
                received.close_code = frame.map(|f| u16::from(f.code));
            }
            Some(Ok(Message::Binary(data))) => {
                assert!(!base64, "binary message in base64 mode");
                received.messages.push((data[0], data[1..].to_vec()));
            }
            Some(Ok(Message::Text(text))) => {
                assert!(base64, "text message in binary mode");
                let bytes = text.as_bytes();
                let payload = STANDARD.decode(&bytes[1..]).unwrap();
                received.messages.push((bytes[0] - b'0', payload));
            }
            Some(Ok(_)) => {}
        }
    }
    received
}

/// Sends a raw HTTP/1.1 request and returns the status code and the whole response text (head
/// and a `Content-Length` body).
pub async fn raw_request(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&response[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if response.len() >= end + 4 + len {
                    return;
                }
            }
            let n = tcp.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            response.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(WAIT, read).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

/// The path of a streaming URL.
pub fn path_of(url: &str) -> &str {
    let rest = url.split_once("://").unwrap().1;
    &rest[rest.find('/').unwrap()..]
}

/// A TCP echo server on 127.0.0.1 that serves `connections` connections, each until EOF.
pub async fn echo_server(connections: usize) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (mut tcp, _) = listener.accept().await.unwrap();
            tasks.push(tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    (port, handle)
}

/// Polls `f` until it holds or `WAIT` passes.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
