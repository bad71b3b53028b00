//! The WebSocket handshake (RFC 6455 §4.2) and the subprotocols served
//! (`kubelet/pkg/cri/streaming/{remotecommand,portforward}/websocket.go`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hyper::HeaderMap;
use hyper::header::{self, HeaderValue};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::Codec;
use crate::portforward::TUNNEL_PROTOCOL_V1;
use crate::remotecommand::Protocol;

/// The remote command subprotocols: the kubelet's (`""`, `channel.k8s.io`,
/// `base64.channel.k8s.io`, `v4.channel.k8s.io`, `v4.base64.channel.k8s.io`), `v5.channel.k8s.io`
/// (which the kubelet serves only behind the API server's translator), and v2/v3, which the
/// kubelet offers on SPDY only and cost nothing here.
pub fn remote_command_subprotocol(name: &str) -> Option<(Protocol, Codec)> {
    Some(match name {
        "" | "channel.k8s.io" => (Protocol::V1, Codec::Binary),
        "base64.channel.k8s.io" => (Protocol::V1, Codec::Base64),
        "v2.channel.k8s.io" => (Protocol::V2, Codec::Binary),
        "v3.channel.k8s.io" => (Protocol::V3, Codec::Binary),
        "v4.channel.k8s.io" => (Protocol::V4, Codec::Binary),
        "v4.base64.channel.k8s.io" => (Protocol::V4, Codec::Base64),
        "v5.channel.k8s.io" => (Protocol::V5, Codec::Binary),
        _ => return None,
    })
}

/// How a port-forward WebSocket carries its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortForwardCarrier {
    /// A data and an error channel per port, one connection each (`portforward/websocket.go`).
    Channels(Codec),
    /// An SPDY/3.1 port-forward session in the binary messages ([`super::tunnel`]).
    SpdyTunnel,
}

/// The port-forward subprotocols: the kubelet's channels (`portforward/websocket.go`), and
/// `SPDY/3.1+portforward.k8s.io`, the SPDY session the API server's `TunnelingHandler` takes
/// from kubectl 1.30+ (and crictl 1.32's `--transport websocket`) and would pass to a kubelet
/// over SPDY.
pub fn port_forward_subprotocol(name: &str) -> Option<PortForwardCarrier> {
    match name {
        "" | "v4.channel.k8s.io" => Some(PortForwardCarrier::Channels(Codec::Binary)),
        "v4.base64.channel.k8s.io" => Some(PortForwardCarrier::Channels(Codec::Base64)),
        TUNNEL_PROTOCOL_V1 => Some(PortForwardCarrier::SpdyTunnel),
        _ => None,
    }
}

/// Whether the request asks for a WebSocket: `Upgrade: websocket` (any case) and a `Connection`
/// header listing `upgrade` (`wsstream.IsWebSocketRequest`).
pub fn is_websocket_request(headers: &HeaderMap) -> bool {
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    upgrade && connection_has_upgrade(headers)
}

/// Whether a `Connection` header lists the `upgrade` token.
pub fn connection_has_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Why a WebSocket handshake was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    #[error("a WebSocket handshake must be a GET request")]
    NotGet,
    #[error("unsupported Sec-WebSocket-Version (this server speaks 13)")]
    Version,
    #[error("missing or malformed Sec-WebSocket-Key")]
    Key,
    /// No requested subprotocol is served here (the kubelet answers 403 Forbidden).
    #[error("requested protocol(s) are not supported: {requested:?}; supports {supported:?}")]
    Subprotocol {
        requested: Vec<String>,
        supported: &'static [&'static str],
    },
}

/// The checked parts of a WebSocket handshake request.
#[derive(Debug)]
pub struct Handshake {
    /// The `Sec-WebSocket-Accept` value to answer with.
    pub accept: HeaderValue,
    /// The client's subprotocols in its order of preference.
    pub requested: Vec<String>,
}

/// Checks a WebSocket handshake request (RFC 6455 §4.2.1).
pub fn check_handshake(
    method: &hyper::Method,
    headers: &HeaderMap,
) -> Result<Handshake, HandshakeError> {
    if method != hyper::Method::GET {
        return Err(HandshakeError::NotGet);
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(HandshakeError::Version);
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| k.as_bytes().trim_ascii())
        .filter(|k| STANDARD.decode(k).is_ok_and(|raw| raw.len() == 16))
        .ok_or(HandshakeError::Key)?;
    let accept = HeaderValue::from_str(&derive_accept_key(key)).map_err(|_| HandshakeError::Key)?;
    let requested = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(Handshake { accept, requested })
}

/// Picks the client's first subprotocol that `serves` knows; a client that named none gets `""`
/// (`wsstream.handshake`). Returns the name to echo (empty: no `Sec-WebSocket-Protocol` header).
pub fn negotiate<T>(
    requested: &[String],
    supported: &'static [&'static str],
    serves: impl Fn(&str) -> Option<T>,
) -> Result<(String, T), HandshakeError> {
    if requested.is_empty()
        && let Some(t) = serves("")
    {
        return Ok((String::new(), t));
    }
    requested
        .iter()
        .find_map(|p| serves(p).map(|t| (p.clone(), t)))
        .ok_or_else(|| HandshakeError::Subprotocol {
            requested: requested.to_vec(),
            supported,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subprotocol_negotiation_follows_the_client_order() {
        const SUPPORTED: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];
        let requested = vec![
            "v5.channel.k8s.io".to_owned(),
            "v4.channel.k8s.io".to_owned(),
        ];
        let (name, (protocol, codec)) =
            negotiate(&requested, SUPPORTED, remote_command_subprotocol).unwrap();
        assert_eq!(
            (name.as_str(), protocol, codec),
            ("v5.channel.k8s.io", Protocol::V5, Codec::Binary)
        );

        let requested = vec!["bogus".to_owned(), "v4.base64.channel.k8s.io".to_owned()];
        let (name, (protocol, codec)) =
            negotiate(&requested, SUPPORTED, remote_command_subprotocol).unwrap();
        assert_eq!(
            (name.as_str(), protocol, codec),
            ("v4.base64.channel.k8s.io", Protocol::V4, Codec::Base64)
        );

        let (name, _) = negotiate(&[], SUPPORTED, remote_command_subprotocol).unwrap();
        assert_eq!(name, "");
        assert!(matches!(
            negotiate(
                &["v6.channel.k8s.io".to_owned()],
                SUPPORTED,
                remote_command_subprotocol
            ),
            Err(HandshakeError::Subprotocol { .. })
        ));
        assert!(
            negotiate(
                &["v5.channel.k8s.io".to_owned()],
                SUPPORTED,
                port_forward_subprotocol
            )
            .is_err()
        );
    }

    #[test]
    fn port_forward_subprotocols() {
        // client-go's tunneling dialer: `SPDY/3.1+` and the SPDY subprotocol.
        assert_eq!(
            TUNNEL_PROTOCOL_V1,
            format!("SPDY/3.1+{}", crate::portforward::PROTOCOL_V1)
        );
        const SUPPORTED: &[&str] = &[TUNNEL_PROTOCOL_V1, "v4.channel.k8s.io"];
        let requested = vec![
            "SPDY/3.1+v4.channel.k8s.io".to_owned(),
            TUNNEL_PROTOCOL_V1.to_owned(),
            "v4.channel.k8s.io".to_owned(),
        ];
        assert_eq!(
            negotiate(&requested, SUPPORTED, port_forward_subprotocol).unwrap(),
            (
                TUNNEL_PROTOCOL_V1.to_owned(),
                PortForwardCarrier::SpdyTunnel
            )
        );
        assert_eq!(
            negotiate(&[], SUPPORTED, port_forward_subprotocol).unwrap(),
            (String::new(), PortForwardCarrier::Channels(Codec::Binary))
        );
        assert_eq!(
            port_forward_subprotocol("v4.base64.channel.k8s.io"),
            Some(PortForwardCarrier::Channels(Codec::Base64))
        );
        // Remote commands are not tunnelled (kubectl speaks v5 for those).
        assert_eq!(
            remote_command_subprotocol("SPDY/3.1+v4.channel.k8s.io"),
            None
        );
    }

    #[test]
    fn handshake_checks() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("WebSocket"));
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert!(is_websocket_request(&headers));
        assert_eq!(
            check_handshake(&hyper::Method::GET, &headers).unwrap_err(),
            HandshakeError::Version
        );
        headers.insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        headers.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("not base64!"),
        );
        assert_eq!(
            check_handshake(&hyper::Method::GET, &headers).unwrap_err(),
            HandshakeError::Key
        );
        // RFC 6455's example key and answer.
        headers.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        headers.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("a, b"),
        );
        headers.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("c"),
        );
        let hs = check_handshake(&hyper::Method::GET, &headers).unwrap();
        assert_eq!(hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(hs.requested, ["a", "b", "c"]);
        assert_eq!(
            check_handshake(&hyper::Method::POST, &headers).unwrap_err(),
            HandshakeError::NotGet
        );
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        assert!(!is_websocket_request(&headers));
    }
}
