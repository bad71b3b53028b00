//! Request handling: `/exec/{token}`, `/attach/{token}`, `/portforward/{token}` (GET or POST),
//! the token lookup (unknown, used or expired: 404), the upgrade answers, and the WebSocket
//! sessions.
//!
//! As in the kubelet's `server.go`, the token is consumed before the upgrade is checked, so a
//! malformed request still uses it up; and the stored CRI request decides the streams: the
//! `command`, `stdin`, `stdout`, `stderr` and `tty` query parameters a kubelet URL carries are
//! ignored. Only a WebSocket port-forward over channels whose CRI request named no port reads
//! `port` from the query (in an SPDY session, tunnelled or not, each stream names its port).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;

use crate::backend::{BoxReader, BoxWriter, PortForwardSpec};
use crate::portforward::{self, port_prefix};
use crate::remotecommand::{Protocol, StreamType};
use crate::server::{Shared, Stored};
use crate::session::RemoteCommandStreams;
use crate::transport::{CommandRequest, PortForwardSession, RemoteCommandSession, UpgradedIo};
use crate::websocket::{self, Channels, Codec, HandshakeError, PortForwardCarrier, Tunnel};

/// `X-Stream-Protocol-Version`, the SPDY subprotocol negotiation header.
pub const STREAM_PROTOCOL_HEADER: &str = "x-stream-protocol-version";
/// Lists the server's protocols when none of the client's is served.
pub const ACCEPTED_STREAM_PROTOCOLS_HEADER: &str = "x-accepted-stream-protocol-versions";
/// The `Upgrade` value of an SPDY request.
pub const SPDY_31: &str = "SPDY/3.1";

/// The WebSocket subprotocols served for exec and attach (for error messages).
const REMOTE_COMMAND_SUBPROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];
/// The WebSocket subprotocols served for port-forward.
const PORT_FORWARD_SUBPROTOCOLS: &[&str] = &[
    portforward::TUNNEL_PROTOCOL_V1,
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
];

type Body = Full<Bytes>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exec,
    Attach,
    PortForward,
}

enum Streaming {
    Command(CommandRequest),
    PortForward(PortForwardSpec),
}

/// Answers one request; an upgrade's session runs on a tracked task.
pub(crate) fn handle(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let Some((kind, token)) = route(req.uri().path()) else {
        return not_found();
    };
    if req.method() != Method::GET && req.method() != Method::POST {
        let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        return resp;
    }
    let Some(stored) = shared.tokens.consume(token, Instant::now()) else {
        return not_found();
    };
    let streaming = match (kind, stored) {
        (Kind::Exec, Stored::Exec(spec)) => Streaming::Command(CommandRequest::Exec(spec)),
        (Kind::Attach, Stored::Attach(spec)) => Streaming::Command(CommandRequest::Attach(spec)),
        (Kind::PortForward, Stored::PortForward(spec)) => Streaming::PortForward(spec),
        _ => return not_found(),
    };
    if websocket::is_websocket_request(req.headers()) {
        websocket_upgrade(shared, req, streaming)
    } else if is_spdy_request(req.headers()) {
        spdy_upgrade(shared, req, streaming)
    } else {
        text(
            StatusCode::BAD_REQUEST,
            "streaming needs a connection upgrade: WebSocket or SPDY/3.1",
        )
    }
}

/// `/<kind>/<token>` → the kind and the token.
fn route(path: &str) -> Option<(Kind, &str)> {
    let rest = path.strip_prefix('/')?;
    let (kind, token) = rest.split_once('/')?;
    let kind = match kind {
        "exec" => Kind::Exec,
        "attach" => Kind::Attach,
        "portforward" => Kind::PortForward,
        _ => return None,
    };
    (!token.is_empty() && !token.contains('/')).then_some((kind, token))
}

fn is_spdy_request(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("spdy/3.1"));
    upgrade && websocket::connection_has_upgrade(headers)
}

fn text(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let mut body = message.into();
    body.push('\n');
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

fn not_found() -> Response<Body> {
    text(StatusCode::NOT_FOUND, "404 page not found")
}

fn switching_protocols(upgrade: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = resp.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static(upgrade));
    resp
}

/// Runs `run` on the upgraded connection once the `101` answer is out, as a tracked task counted
/// as a session.
fn spawn_upgraded<F, Fut>(shared: &Arc<Shared>, req: &mut Request<Incoming>, run: F)
where
    F: FnOnce(UpgradedIo, CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let on_upgrade = hyper::upgrade::on(req);
    let shutdown = shared.shutdown.clone();
    let live = shared.session();
    shared.tasks.spawn(async move {
        let _live = live;
        let upgraded = tokio::select! {
            upgraded = on_upgrade => upgraded,
            () = shutdown.cancelled() => return,
        };
        match upgraded {
            Ok(upgraded) => run(TokioIo::new(upgraded), shutdown).await,
            Err(e) => tracing::debug!(error = %e, "connection upgrade failed"),
        }
    });
}

fn websocket_upgrade(
    shared: &Arc<Shared>,
    mut req: Request<Incoming>,
    streaming: Streaming,
) -> Response<Body> {
    let handshake = match websocket::check_handshake(req.method(), req.headers()) {
        Ok(handshake) => handshake,
        Err(e @ HandshakeError::Version) => {
            let mut resp = text(StatusCode::UPGRADE_REQUIRED, e.to_string());
            resp.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            return resp;
        }
        Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let backend = Arc::clone(&shared.backend);
    let chosen = match streaming {
        Streaming::Command(request) => {
            let (chosen, (protocol, codec)) = match websocket::negotiate(
                &handshake.requested,
                REMOTE_COMMAND_SUBPROTOCOLS,
                websocket::remote_command_subprotocol,
            ) {
                Ok(chosen) => chosen,
                Err(e) => return text(StatusCode::FORBIDDEN, e.to_string()),
            };
            let session = RemoteCommandSession::new(protocol, request, backend);
            spawn_upgraded(shared, &mut req, move |io, shutdown| async move {
                let ws =
                    WebSocketStream::from_raw_socket(io, Role::Server, Some(websocket::config()))
                        .await;
                websocket_remote_command(ws, codec, session, &shutdown).await;
            });
            chosen
        }
        Streaming::PortForward(spec) => {
            let (chosen, carrier) = match websocket::negotiate(
                &handshake.requested,
                PORT_FORWARD_SUBPROTOCOLS,
                websocket::port_forward_subprotocol,
            ) {
                Ok(chosen) => chosen,
                Err(e) => return text(StatusCode::FORBIDDEN, e.to_string()),
            };
            match carrier {
                PortForwardCarrier::SpdyTunnel => {
                    // Each SPDY stream names its port; the CRI request's ports (if any) bound them.
                    let spdy = Arc::clone(&shared.spdy);
                    let session = Arc::new(PortForwardSession::new(
                        spec.pod_sandbox_id,
                        spec.ports,
                        backend,
                    ));
                    spawn_upgraded(shared, &mut req, move |io, shutdown| async move {
                        let ws = WebSocketStream::from_raw_socket(
                            io,
                            Role::Server,
                            Some(websocket::config()),
                        )
                        .await;
                        let tunnel = Box::new(Tunnel::new(ws));
                        spdy.serve_port_forward(tunnel, session, shutdown).await;
                    });
                }
                PortForwardCarrier::Channels(codec) => {
                    let ports = if spec.ports.is_empty() {
                        match portforward::ports_from_query(req.uri().query()) {
                            Ok(ports) => ports,
                            Err(e) => return text(StatusCode::BAD_REQUEST, e.to_string()),
                        }
                    } else {
                        spec.ports.clone()
                    };
                    let session = PortForwardSession::new(spec.pod_sandbox_id, spec.ports, backend);
                    spawn_upgraded(shared, &mut req, move |io, shutdown| async move {
                        let ws = WebSocketStream::from_raw_socket(
                            io,
                            Role::Server,
                            Some(websocket::config()),
                        )
                        .await;
                        websocket_port_forward(ws, codec, &session, &ports, &shutdown).await;
                    });
                }
            }
            chosen
        }
    };
    let mut resp = switching_protocols("websocket");
    let headers = resp.headers_mut();
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, handshake.accept);
    if !chosen.is_empty() {
        // The client's own value, which was valid header text.
        if let Ok(value) = HeaderValue::from_str(&chosen) {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
        }
    }
    resp
}

/// Exec or attach over WebSocket: channels 0–4 by role (`createWebSocketStreams`). The resize
/// channel is read even without a TTY, as the kubelet does; the first message is an empty one on
/// the lowest channel the client reads (stdout, else stderr, else error), telling it the
/// connection is up.
async fn websocket_remote_command(
    ws: WebSocketStream<UpgradedIo>,
    codec: Codec,
    session: RemoteCommandSession,
    shutdown: &CancellationToken,
) {
    let options = session.options();
    let protocol = session.protocol();
    let mut channels = Channels::new(StreamType::ALL.len());
    let reader = |channels: &mut Channels, role: StreamType| -> BoxReader {
        Box::new(channels.reader(role.channel()))
    };
    let writer = |channels: &Channels, role: StreamType| -> BoxWriter {
        Box::new(channels.writer(role.channel()))
    };
    let streams = RemoteCommandStreams {
        stdin: options
            .stdin
            .then(|| reader(&mut channels, StreamType::Stdin)),
        stdout: options
            .stdout
            .then(|| writer(&channels, StreamType::Stdout)),
        stderr: options
            .stderr
            .then(|| writer(&channels, StreamType::Stderr)),
        error: writer(&channels, StreamType::Error),
        resize: Some(reader(&mut channels, StreamType::Resize)),
    };
    let first = if options.stdout {
        StreamType::Stdout
    } else if options.stderr {
        StreamType::Stderr
    } else {
        StreamType::Error
    };
    channels.send_first(first.channel(), b"");
    let run = async {
        let outcome = session.run(streams).await;
        tracing::debug!(
            ?outcome,
            protocol = protocol.name(),
            "remote command session ended"
        );
    };
    channels
        .run(ws, codec, protocol.supports_close_signal(), run, shutdown)
        .await;
}

/// Port-forward over WebSocket: for port `i`, channel `2i` is data and `2i+1` errors; both start
/// with the port in little-endian. Each port carries one connection; the WebSocket closes when
/// all of them have ended.
async fn websocket_port_forward(
    ws: WebSocketStream<UpgradedIo>,
    codec: Codec,
    session: &PortForwardSession,
    ports: &[u16],
    shutdown: &CancellationToken,
) {
    let mut channels = Channels::new(ports.len() * 2);
    let mut forwards = Vec::with_capacity(ports.len());
    for (data_channel, &port) in (0u8..).step_by(2).zip(ports) {
        let error_channel = data_channel + 1;
        channels.send_first(data_channel, &port_prefix(port));
        channels.send_first(error_channel, &port_prefix(port));
        let data = tokio::io::join(channels.reader(data_channel), channels.writer(data_channel));
        let error: BoxWriter = Box::new(channels.writer(error_channel));
        forwards.push(session.forward(port, data, error));
    }
    let run = async {
        futures::future::join_all(forwards).await;
    };
    channels.run(ws, codec, false, run, shutdown).await;
}

fn spdy_upgrade(
    shared: &Arc<Shared>,
    mut req: Request<Incoming>,
    streaming: Streaming,
) -> Response<Body> {
    let spdy = Arc::clone(&shared.spdy);
    let server: Vec<&'static str> = match &streaming {
        Streaming::Command(_) => Protocol::SPDY.iter().map(|p| p.name()).collect(),
        Streaming::PortForward(_) => vec![portforward::PROTOCOL_V1],
    };
    let chosen = match negotiate_stream_protocol(req.headers(), &server) {
        Ok(chosen) => chosen,
        Err(e) => return e.response(),
    };
    let backend = Arc::clone(&shared.backend);
    match streaming {
        Streaming::Command(request) => {
            let protocol = Protocol::from_name(chosen).unwrap_or(Protocol::V1);
            let session = RemoteCommandSession::new(protocol, request, backend);
            spawn_upgraded(shared, &mut req, move |io, shutdown| {
                spdy.serve_remote_command(Box::new(io), session, shutdown)
            });
        }
        Streaming::PortForward(spec) => {
            let session = Arc::new(PortForwardSession::new(
                spec.pod_sandbox_id,
                spec.ports,
                backend,
            ));
            spawn_upgraded(shared, &mut req, move |io, shutdown| {
                spdy.serve_port_forward(Box::new(io), session, shutdown)
            });
        }
    }
    let mut resp = switching_protocols(SPDY_31);
    resp.headers_mut()
        .insert(STREAM_PROTOCOL_HEADER, HeaderValue::from_static(chosen));
    resp
}

/// Why `X-Stream-Protocol-Version` negotiation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum NegotiationError {
    #[error("unable to upgrade: X-Stream-Protocol-Version is required")]
    Missing,
    #[error(
        "unable to upgrade: unable to negotiate protocol: client supports [{}], server accepts [{}]",
        client.join(" "),
        server.join(" ")
    )]
    NoMatch {
        client: Vec<String>,
        server: Vec<&'static str>,
    },
}

impl NegotiationError {
    /// 400 when the header is missing; 403 listing the server's protocols in
    /// `X-Accepted-Stream-Protocol-Versions` when none matches.
    fn response(&self) -> Response<Body> {
        match self {
            NegotiationError::Missing => text(StatusCode::BAD_REQUEST, self.to_string()),
            NegotiationError::NoMatch { server, .. } => {
                let mut resp = text(StatusCode::FORBIDDEN, self.to_string());
                for s in server {
                    resp.headers_mut().append(
                        ACCEPTED_STREAM_PROTOCOLS_HEADER,
                        HeaderValue::from_static(s),
                    );
                }
                resp
            }
        }
    }
}

/// `httpstream.Handshake`: the first of the client's `X-Stream-Protocol-Version` values (all
/// headers, comma-separated) that the server serves.
fn negotiate_stream_protocol(
    headers: &HeaderMap,
    server: &[&'static str],
) -> Result<&'static str, NegotiationError> {
    let client: Vec<&str> = headers
        .get_all(STREAM_PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if client.is_empty() {
        return Err(NegotiationError::Missing);
    }
    client
        .iter()
        .find_map(|c| server.iter().copied().find(|s| s == c))
        .ok_or_else(|| NegotiationError::NoMatch {
            client: client.iter().map(|c| (*c).to_owned()).collect(),
            server: server.to_vec(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/exec/abc"), Some((Kind::Exec, "abc")));
        assert_eq!(route("/attach/abc"), Some((Kind::Attach, "abc")));
        assert_eq!(route("/portforward/abc"), Some((Kind::PortForward, "abc")));
        for bad in ["/", "/exec", "/exec/", "/exec/a/b", "/logs/abc", "exec/abc"] {
            assert_eq!(route(bad), None, "{bad}");
        }
    }

    #[test]
    fn stream_protocol_negotiation() {
        let server = ["v4.channel.k8s.io", "v3.channel.k8s.io"];
        let mut headers = HeaderMap::new();
        let err = negotiate_stream_protocol(&headers, &server).unwrap_err();
        assert_eq!(err, NegotiationError::Missing);
        assert_eq!(err.response().status(), StatusCode::BAD_REQUEST);
        headers.append(
            STREAM_PROTOCOL_HEADER,
            HeaderValue::from_static("v5.channel.k8s.io"),
        );
        headers.append(
            STREAM_PROTOCOL_HEADER,
            HeaderValue::from_static("v3.channel.k8s.io, v4.channel.k8s.io"),
        );
        // The client's order decides.
        assert_eq!(
            negotiate_stream_protocol(&headers, &server).unwrap(),
            "v3.channel.k8s.io"
        );
        let mut headers = HeaderMap::new();
        headers.insert(STREAM_PROTOCOL_HEADER, HeaderValue::from_static("v9"));
        let err = negotiate_stream_protocol(&headers, &server).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unable to upgrade: unable to negotiate protocol: client supports [v9], \
             server accepts [v4.channel.k8s.io v3.channel.k8s.io]"
        );
        let resp = err.response();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            resp.headers()
                .get_all(ACCEPTED_STREAM_PROTOCOLS_HEADER)
                .iter()
                .count(),
            2
        );
    }
}
