//! The SPDY/3.1 client, as client-go's SPDY executor and port forwarder speak it.
//!
//! The connection is an HTTP/1.1 `POST` with `Connection: Upgrade`, `Upgrade: SPDY/3.1` and one
//! `X-Stream-Protocol-Version` header per offered subprotocol; after `101 Switching Protocols`
//! the connection is a SPDY session in which the client opens every stream.
//!
//! - **Remote command** (`remotecommand/v2.go`..`v4.go`): streams are created one after the
//!   other, each waiting for its reply: `error` (its write side closed at once), then `stdin`,
//!   `stdout`, `stderr` and `resize` as requested. Stdin's end half-closes the stdin stream;
//!   terminal sizes go on the resize stream as JSON lines; the error stream carries the v4
//!   status, decoded like the WebSocket client's.
//! - **Port-forward** (`portforward/portforward.go`): one session carries many connections;
//!   each is an `error` stream (write side closed at once) and a `data` stream with headers
//!   `port` and `requestid` (a counter).
//!
//! Only `http://` URLs: `https://` is refused (no TLS for the SPDY client yet). A port-forward
//! session may also run through a WebSocket ([`PortForwarder::connect_websocket`], subprotocol
//! `SPDY/3.1+portforward.k8s.io`, as client-go's tunneling dialer), which takes `https://` too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, DuplexStream};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::{ClientError, CommandIo, Outcome, outcome};
use crate::portforward::{PORT_HEADER, PROTOCOL_V1, REQUEST_ID_HEADER, TUNNEL_PROTOCOL_V1};
use crate::remotecommand::{Protocol, STREAM_TYPE_HEADER};
use crate::spdy::{Headers, Session, Stream};
use crate::websocket::Tunnel;

/// The largest HTTP response head accepted.
const MAX_RESPONSE_HEAD: usize = 16 << 10;
/// The most of a refusal's body kept for the error message.
const MAX_ERROR_BODY: usize = 4 << 10;
/// Bytes copied per read.
const CHUNK: usize = 32 << 10;

/// The parts of an `http://` URL.
struct Target {
    authority: String,
    path: String,
}

fn parse_url(url: &str) -> Result<Target, ClientError> {
    let failed = |message: &str| ClientError::Connect {
        url: url.to_owned(),
        message: message.to_owned(),
    };
    if url.starts_with("https://") {
        return Err(ClientError::Unsupported("SPDY over https://"));
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| failed("not an http:// URL"))?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_owned()),
    };
    if authority.is_empty() || authority.contains(['@', ' ', '\r', '\n']) {
        return Err(failed("bad host"));
    }
    if path.contains([' ', '\r', '\n']) {
        return Err(failed("bad path"));
    }
    Ok(Target {
        authority: authority.to_owned(),
        path,
    })
}

/// Host and port to connect to, from an authority (`host`, `host:port`, `[v6]:port`).
fn socket_addr(authority: &str) -> String {
    let has_port = match authority.rfind(']') {
        Some(end) => authority[end..].contains(':'),
        None => authority.contains(':'),
    };
    if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    }
}

/// Upgrades a connection to `url` to SPDY/3.1 offering `protocols`; returns the client session
/// and the protocol the server chose.
async fn connect(url: &str, protocols: &[&str]) -> Result<(Session, String), ClientError> {
    let target = parse_url(url)?;
    let failed = |message: String| ClientError::Connect {
        url: url.to_owned(),
        message,
    };
    let mut tcp = TcpStream::connect(socket_addr(&target.authority))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: corral-streaming\r\nContent-Length: 0\r\n\
         Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n",
        target.path, target.authority
    );
    for p in protocols {
        request.push_str(&format!("X-Stream-Protocol-Version: {p}\r\n"));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| failed(e.to_string()))?;

    // Read the response head byte by byte: what follows it is the SPDY session's.
    let mut head = Vec::with_capacity(512);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_RESPONSE_HEAD {
            return Err(failed("response head too large".into()));
        }
        match tcp.read(&mut byte).await {
            Ok(0) => return Err(failed("connection closed during the upgrade".into())),
            Ok(_) => head.push(byte[0]),
            Err(e) => return Err(failed(e.to_string())),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line.split(' ').nth(1).unwrap_or_default();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if status != "101" {
        let len = get("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
            .min(MAX_ERROR_BODY);
        let mut body = vec![0u8; len];
        let _ = tcp.read_exact(&mut body).await;
        let body = String::from_utf8_lossy(&body);
        return Err(failed(format!("{status_line}: {}", body.trim())));
    }
    let offered = protocols.join(", ");
    let chosen = get("x-stream-protocol-version")
        .filter(|p| protocols.contains(p))
        .map(str::to_owned)
        .ok_or(ClientError::Protocol { offered })?;
    let (session, _incoming) = Session::client(tcp);
    Ok((session, chosen))
}

fn stream_headers(kind: &str) -> Headers {
    Headers::new().with(STREAM_TYPE_HEADER, kind)
}

async fn open(session: &Session, headers: Headers) -> Result<Stream, ClientError> {
    session
        .open_stream(headers, false)
        .await
        .map_err(|e| ClientError::Session(e.to_string()))
}

/// Copies a remote stream into a local writer until end-of-file (a reset ends it too).
async fn copy_out(mut from: Stream, to: Option<Box<dyn AsyncWrite + Send + Unpin>>) {
    let Some(mut to) = to else {
        // Read and drop, so the stream cannot stall the session.
        let _ = tokio::io::copy(&mut from, &mut tokio::io::sink()).await;
        return;
    };
    let mut buf = vec![0u8; CHUNK];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                let _ = to.flush().await;
            }
        }
    }
    let _ = to.flush().await;
}

/// Runs a remote command over SPDY/3.1, offering v4 down to v1 like client-go. Pass
/// `io.resize` when the command has a TTY (client-go opens the resize stream only then; a
/// server without a TTY resets it, and its sizes are dropped).
pub async fn remote_command(url: &str, io: CommandIo) -> Result<Outcome, ClientError> {
    let offered: Vec<&str> = Protocol::SPDY.iter().map(|p| p.name()).collect();
    let (session, chosen) = connect(url, &offered).await?;
    let protocol = Protocol::from_name(&chosen).unwrap_or(Protocol::V1);

    let mut error = open(&session, stream_headers("error")).await?;
    // We never write to the error stream.
    let _ = error.shutdown().await;
    let stdin = match io.stdin {
        Some(local) => Some((local, open(&session, stream_headers("stdin")).await?)),
        None => None,
    };
    let stdout = match io.stdout {
        Some(local) => Some((local, open(&session, stream_headers("stdout")).await?)),
        None => None,
    };
    let stderr = match io.stderr {
        Some(local) => Some((local, open(&session, stream_headers("stderr")).await?)),
        None => None,
    };
    // Best effort: a server only expects a resize stream with a TTY, and without one may have
    // finished (and closed the connection) before this stream arrives; the sizes are dropped.
    let resize = match io.resize {
        Some(sizes) if protocol.supports_resize() => open(&session, stream_headers("resize"))
            .await
            .ok()
            .map(|remote| (sizes, remote)),
        _ => None,
    };

    let mut pumps = Vec::new();
    if let Some((mut local, mut remote)) = stdin {
        pumps.push(tokio::spawn(async move {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match local.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if remote.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
            // End of stdin: half-close; the stream stays open for the server's side.
            let _ = remote.shutdown().await;
            std::future::pending::<()>().await;
        }));
    }
    if let Some((mut sizes, mut remote)) = resize {
        pumps.push(tokio::spawn(async move {
            while let Some((width, height)) = sizes.recv().await {
                let size = crate::remotecommand::TerminalSize { width, height };
                let json = format!("{}\n", size.to_json());
                if remote.write_all(json.as_bytes()).await.is_err() {
                    return;
                }
            }
            std::future::pending::<()>().await;
        }));
    }
    let output = async {
        let out = async {
            if let Some((local, remote)) = stdout {
                copy_out(remote, Some(local)).await;
            }
        };
        let err = async {
            if let Some((local, remote)) = stderr {
                copy_out(remote, Some(local)).await;
            }
        };
        tokio::join!(out, err);
    };
    let status = async {
        let mut data = Vec::new();
        let read = error.read_to_end(&mut data).await;
        (read, data)
    };
    let ((), (read, data)) = tokio::join!(output, status);
    for pump in pumps {
        pump.abort();
    }
    session.close();
    match read {
        // A reset after the status was written (the kubelet resets every stream at the end)
        // leaves what was read; an error before anything arrived is a broken session.
        Err(e) if data.is_empty() && !matches!(protocol, Protocol::V1) => {
            Err(ClientError::Session(e.to_string()))
        }
        _ => Ok(outcome(&data)),
    }
}

/// Forwards connections over one SPDY/3.1 port-forward session (`url` from PortForward), as
/// client-go's port forwarder does: every [`open`](Self::open) is a new connection.
pub struct PortForwarder {
    session: Session,
    protocol: String,
    next_request_id: AtomicU64,
}

/// How a forwarded connection ended: `Err` with the message the server wrote on its error
/// stream.
pub type ForwardResult = Result<(), ClientError>;

impl PortForwarder {
    /// Connects and upgrades to a `portforward.k8s.io` SPDY session.
    pub async fn connect(url: &str) -> Result<Arc<Self>, ClientError> {
        let (session, protocol) = connect(url, &[PROTOCOL_V1]).await?;
        Ok(Self::new(session, protocol))
    }

    /// Connects with a WebSocket offering `SPDY/3.1+portforward.k8s.io` and runs the SPDY
    /// session in its binary messages (client-go's tunneling dialer, KEP-4006).
    pub async fn connect_websocket(url: &str) -> Result<Arc<Self>, ClientError> {
        let (ws, protocol) = super::websocket::connect(url, &[TUNNEL_PROTOCOL_V1]).await?;
        let (session, _incoming) = Session::client(Tunnel::new(ws));
        Ok(Self::new(session, protocol))
    }

    fn new(session: Session, protocol: String) -> Arc<Self> {
        Arc::new(Self {
            session,
            protocol,
            next_request_id: AtomicU64::new(0),
        })
    }

    /// The subprotocol the server chose: `portforward.k8s.io` (`X-Stream-Protocol-Version`),
    /// or `SPDY/3.1+portforward.k8s.io` (`Sec-WebSocket-Protocol`) through a WebSocket.
    pub fn protocol(&self) -> &str {
        &self.protocol
    }

    /// Opens a connection to `port` in the pod. Returns its local end, and a receiver for how
    /// it ended (sent once the server ends the data stream and the error stream is read).
    pub async fn open(
        self: &Arc<Self>,
        port: u16,
    ) -> Result<(DuplexStream, oneshot::Receiver<ForwardResult>), ClientError> {
        let request_id = self
            .next_request_id
            .fetch_add(1, Ordering::Relaxed)
            .to_string();
        let headers = |kind: &str| {
            Headers::new()
                .with(STREAM_TYPE_HEADER, kind)
                .with(PORT_HEADER, port.to_string())
                .with(REQUEST_ID_HEADER, request_id.clone())
        };
        let mut error = open(&self.session, headers("error")).await?;
        // We never write to the error stream.
        let _ = error.shutdown().await;
        let data = open(&self.session, headers("data")).await?;
        let (local, remote) = tokio::io::duplex(64 << 10);
        let (done_tx, done_rx) = oneshot::channel();
        // The connection holds the session: dropping it sends GOAWAY, which a Go server takes
        // as the end of the connection.
        let session = Arc::clone(self);
        tokio::spawn(async move {
            forward(port, data, error, remote, done_tx).await;
            drop(session);
        });
        Ok((local, done_rx))
    }

    /// Sends GOAWAY: no new connections; open ones run to their end.
    pub fn close(&self) {
        self.session.close();
    }
}

async fn forward(
    port: u16,
    data: Stream,
    mut error: Stream,
    remote: DuplexStream,
    done: oneshot::Sender<ForwardResult>,
) {
    let (mut data_rd, mut data_wr) = tokio::io::split(data);
    let (mut local_rd, mut local_wr) = tokio::io::split(remote);
    let upload = async {
        let _ = tokio::io::copy(&mut local_rd, &mut data_wr).await;
        let _ = data_wr.shutdown().await;
    };
    let download = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match data_rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if local_wr.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = local_wr.shutdown().await;
    };
    let mut message = Vec::new();
    let mut read_failed = None;
    let errors = async {
        if let Err(e) = error.read_to_end(&mut message).await {
            read_failed = Some(e);
        }
    };
    // The connection is done when the server ends the data stream (client-go: `remoteDone`);
    // the upload may still be running then and is dropped.
    tokio::pin!(upload);
    let main = async {
        tokio::join!(download, errors);
    };
    tokio::select! {
        () = main => {}
        () = async { (&mut upload).await; std::future::pending::<()>().await } => {}
    }
    let result = if !message.is_empty() {
        Err(ClientError::Session(format!(
            "an error occurred forwarding to port {port}: {}",
            String::from_utf8_lossy(&message)
        )))
    } else if let Some(e) = read_failed {
        // A refused connection: the server reset its streams.
        Err(ClientError::Session(format!(
            "error reading from error stream for port {port}: {e}"
        )))
    } else {
        Ok(())
    };
    let _ = done.send(result);
}

/// Forwards one connection to `port` over its own SPDY session: the SPDY counterpart of
/// [`websocket::port_forward`](super::websocket::port_forward).
pub async fn port_forward(
    url: &str,
    port: u16,
) -> Result<(DuplexStream, oneshot::Receiver<ForwardResult>), ClientError> {
    let forwarder = PortForwarder::connect(url).await?;
    let (local, done) = forwarder.open(port).await?;
    // The forward task holds the session until the connection ends.
    Ok((local, done))
}
