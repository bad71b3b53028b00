//! The WebSocket transport: the handshake and subprotocols ([`handshake`]), the channel
//! framing that multiplexes numbered byte streams over one WebSocket ([`mux`], after
//! `wsstream/conn.go`), and the tunnel that carries one byte stream, an SPDY/3.1 connection, in
//! binary messages ([`tunnel`], for `SPDY/3.1+portforward.k8s.io`).
//!
//! Channel framing: a binary message is `[channel, payload...]`; with a `base64.` subprotocol it
//! is a text message `'0'+channel` followed by the payload in standard base64. Under v5 a binary
//! message `[255, channel]` from the client half-closes that channel. Empty messages are ignored,
//! and so are messages for channels the server does not read.

pub mod handshake;
pub mod mux;
pub mod tunnel;

pub use handshake::{
    Handshake, HandshakeError, PortForwardCarrier, check_handshake, connection_has_upgrade,
    is_websocket_request, negotiate, port_forward_subprotocol, remote_command_subprotocol,
};
pub use mux::{ChannelReader, ChannelWriter, Channels, MAX_MESSAGE_SIZE, OutFrame, config, encode};
pub use tunnel::{MAX_TUNNEL_MESSAGE, Tunnel};

/// How channel messages are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Binary messages, the channel as the first byte.
    Binary,
    /// Text messages, the channel as an ASCII digit, the payload in base64.
    Base64,
}
