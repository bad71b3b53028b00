//! Errors of the server's own API (starting it, issuing URLs). Errors on a streaming connection
//! go to the client (HTTP status, error stream) and to the log, never to the caller.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::token::TokenError;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding the streaming server to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS {what} {}", path.display())]
    Tls {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Why a streaming URL was not issued: the CRI handler answers `InvalidArgument` for
/// [`Invalid`](RequestError::Invalid) and `ResourceExhausted` for
/// [`TooManyInFlight`](TokenError::TooManyInFlight), as the kubelet's library does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Token(#[from] TokenError),
}
