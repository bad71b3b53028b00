//! The WebSocket client: `v5.channel.k8s.io` (or `v4`) for remote commands, `v4.channel.k8s.io`
//! for port-forward. One writer task owns the socket's sending half; readers and pumps feed it.
//! SPDY tunnelled through a WebSocket is
//! [`PortForwarder::connect_websocket`](super::spdy::PortForwarder::connect_websocket).

use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use super::{ClientError, CommandIo, Outcome, outcome};
use crate::remotecommand::{CLOSE_SIGNAL_CHANNEL, Protocol, StreamType, TerminalSize};

const V5: &str = Protocol::V5.name();
const V4: &str = Protocol::V4.name();
const STDIN: u8 = StreamType::Stdin.channel();
const STDOUT: u8 = StreamType::Stdout.channel();
const STDERR: u8 = StreamType::Stderr.channel();
const ERROR: u8 = StreamType::Error.channel();
const RESIZE: u8 = StreamType::Resize.channel();
/// Bytes read from a local stream per message.
const CHUNK: usize = 32 << 10;

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket to `url` (`http(s)://` becomes `ws(s)://`) offering `protocols`; returns
/// it and the subprotocol the server chose, which must be one of them.
pub(crate) async fn connect(url: &str, protocols: &[&str]) -> Result<(Ws, String), ClientError> {
    let failed = |message: String| ClientError::Connect {
        url: url.to_owned(),
        message,
    };
    let ws_url = if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else {
        url.replacen("http://", "ws://", 1)
    };
    let mut request = ws_url
        .into_client_request()
        .map_err(|e| failed(e.to_string()))?;
    let offered = protocols.join(", ");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        offered
            .parse()
            .map_err(|_| failed("bad subprotocol".into()))?,
    );
    let (ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let chosen = response
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .filter(|p| protocols.contains(&p.as_str()))
        .ok_or(ClientError::Protocol { offered })?;
    Ok((ws, chosen))
}

fn framed(channel: u8, data: &[u8]) -> Message {
    let mut msg = Vec::with_capacity(data.len() + 1);
    msg.push(channel);
    msg.extend_from_slice(data);
    Message::binary(msg)
}

/// Runs a remote command over WebSocket.
pub async fn remote_command(url: &str, io: CommandIo) -> Result<Outcome, ClientError> {
    let (ws, protocol) = connect(url, &[V5, V4]).await?;
    let v5 = protocol == V5;
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(16);
    let writer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            if sink.send(msg).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut pumps = Vec::new();
    if let Some(mut stdin) = io.stdin {
        let tx = tx.clone();
        pumps.push(tokio::spawn(async move {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match stdin.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(framed(STDIN, &buf[..n])).await.is_err() {
                            return;
                        }
                    }
                }
            }
            if v5 {
                let _ = tx
                    .send(Message::binary(vec![CLOSE_SIGNAL_CHANNEL, STDIN]))
                    .await;
            }
        }));
    }
    if let Some(mut sizes) = io.resize {
        let tx = tx.clone();
        pumps.push(tokio::spawn(async move {
            while let Some((width, height)) = sizes.recv().await {
                let json = TerminalSize { width, height }.to_json();
                if tx.send(framed(RESIZE, json.as_bytes())).await.is_err() {
                    return;
                }
            }
        }));
    }
    let (mut stdout, mut stderr) = (io.stdout, io.stderr);
    let mut error = Vec::new();
    let result = loop {
        let Some(msg) = stream.next().await else {
            break Ok(());
        };
        let data = match msg {
            Ok(Message::Binary(data)) => data,
            Ok(Message::Close(_)) => break Ok(()),
            Ok(_) => continue,
            Err(e) => break Err(ClientError::Session(e.to_string())),
        };
        let Some((&channel, payload)) = data.split_first() else {
            continue;
        };
        let out = match channel {
            STDOUT => stdout.as_mut(),
            STDERR => stderr.as_mut(),
            ERROR => {
                error.extend_from_slice(payload);
                continue;
            }
            _ => continue,
        };
        if let Some(out) = out
            && !payload.is_empty()
        {
            let _ = out.write_all(payload).await;
            let _ = out.flush().await;
        }
    };
    for pump in pumps {
        pump.abort();
    }
    drop(tx);
    let _ = writer.await;
    result.map(|()| outcome(&error))
}

/// Forwards one connection to `port` over WebSocket (`url` from PortForward; each URL serves
/// one connection). Returns the local end of the connection; the task ends with the error the
/// server reported on the port's error channel, if any.
pub async fn port_forward(
    url: &str,
    port: u16,
) -> Result<
    (
        DuplexStream,
        tokio::task::JoinHandle<Result<(), ClientError>>,
    ),
    ClientError,
> {
    let sep = if url.contains('?') { '&' } else { '?' };
    let (ws, _) = connect(&format!("{url}{sep}port={port}"), &[V4]).await?;
    let (local, remote) = tokio::io::duplex(64 << 10);
    let task = tokio::spawn(async move {
        let (mut sink, mut stream) = ws.split();
        let (mut read_half, mut write_half) = tokio::io::split(remote);
        // The upload ends at the local end of file; the session ends when the server closes.
        let upload = tokio::spawn(async move {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match read_half.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if sink.send(framed(0, &buf[..n])).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = sink.close().await;
        });
        let mut seen = [false; 2];
        let mut error = Vec::new();
        while let Some(msg) = stream.next().await {
            let data = match msg {
                Ok(Message::Binary(data)) => data,
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            let Some((&channel, mut payload)) = data.split_first() else {
                continue;
            };
            let Some(first) = seen.get_mut(usize::from(channel)) else {
                continue;
            };
            // The server's first message on each channel is the port number.
            if !*first {
                *first = true;
                payload = payload.get(2..).unwrap_or_default();
            }
            if channel == 0 {
                if write_half.write_all(payload).await.is_err() {
                    break;
                }
            } else {
                error.extend_from_slice(payload);
            }
        }
        let _ = write_half.shutdown().await;
        upload.abort();
        if error.is_empty() {
            Ok(())
        } else {
            Err(ClientError::Session(
                String::from_utf8_lossy(&error).into_owned(),
            ))
        }
    });
    Ok((local, task))
}
