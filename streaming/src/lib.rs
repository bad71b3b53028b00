//! Corral's CRI streaming server: the HTTP server behind the URLs that the CRI `Exec`, `Attach`
//! and `PortForward` RPCs return.
//!
//! The daemon starts a [`StreamingServer`] with a [`Backend`] (which starts, attaches to and
//! connects into containers) and asks it for a URL per RPC ([`StreamingServer::exec_url`] and the
//! like): the CRI request is stored under a random single-use token that expires after a minute,
//! and the URL is `http(s)://<addr>/<exec|attach|portforward>/<token>`. The client (the kubelet
//! proxying kubectl, crictl, corralctl) connects there and upgrades the connection.
//!
//! Layers, each usable on its own:
//! - [`remotecommand`] and [`portforward`]: the protocols' facts (stream roles and channels,
//!   versions, the status JSON, resize messages, port lists, SPDY stream pairing).
//! - [`session`]: running a session over already-open streams: [`session::run_remote_command`]
//!   copies between the client's streams (by role) and a [`ProcessIo`] and writes the status;
//!   [`session::forward_port`] forwards one connection.
//! - [`transport`]: the seam a transport plugs into ([`transport::SpdyTransport`]).
//! - [`websocket`]: the WebSocket transport (channel framing, subprotocols) and the tunnel that
//!   carries an SPDY session in binary messages (`SPDY/3.1+portforward.k8s.io`).
//! - [`spdy`]: SPDY/3.1 framing and a multiplexed session over any async byte stream, wire
//!   compatible with `github.com/moby/spdystream` (what kubectl, the kubelet and crictl use).
//! - [`client`]: the client side of sessions, for corralctl, the tests and the benchmark.
//! - the server: routing, tokens ([`token`]), upgrades, TLS, counters, shutdown.
//!
//! The SPDY/3.1 transport ([`spdy_transport()`], module [`mod@spdy_transport`]) implements
//! [`transport::SpdyTransport`] on the `spdy` session; every server serves it, on upgraded
//! connections and on WebSocket tunnels ([`StreamingServer::start_with_spdy`] takes one with
//! other timeouts, for tests).

pub mod backend;
pub mod client;
pub mod error;
pub mod portforward;
pub mod remotecommand;
mod routes;
mod server;
pub mod session;
pub mod spdy;
pub mod spdy_transport;
mod tls;
pub mod token;
pub mod transport;
pub mod websocket;

pub use backend::{
    AsyncReadWrite, AttachSpec, Backend, BackendError, BoxReader, BoxStream, BoxWriter, ExecSpec,
    PortForwardSpec, ProcessIo,
};
pub use error::{Error, RequestError};
pub use server::{ServerConfig, ServerStats, StreamingServer, TlsConfig};
pub use spdy_transport::spdy_transport;
