//! The error type of the image subsystem.
//!
//! Each variant says which image, blob or file was involved, so the daemon can turn it into a
//! gRPC status whose message names what went wrong.

use std::path::PathBuf;

use crate::unpack::UnpackError;

/// Everything that can go wrong while resolving, pulling, storing or removing images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error("image {0:?} not found")]
    NotFound(String),

    #[error("image {image}: {what} not found in registry ({detail})")]
    RemoteNotFound {
        image: String,
        what: String,
        detail: String,
    },

    #[error("image {image}: registry denied access ({detail})")]
    Unauthorized { image: String, detail: String },

    #[error("image {image}: registry {endpoint}: {detail}")]
    Registry {
        image: String,
        endpoint: String,
        detail: String,
    },

    #[error("image {image}: {what} {digest}: {detail}")]
    Verification {
        image: String,
        what: &'static str,
        digest: String,
        detail: String,
    },

    #[error("image {image}: {what} is {size} bytes, more than the {limit}-byte limit")]
    TooLarge {
        image: String,
        what: &'static str,
        size: u64,
        limit: u64,
    },

    #[error("image {image}: malformed {what}: {detail}")]
    Malformed {
        image: String,
        what: &'static str,
        detail: String,
    },

    #[error("image {image}: unsupported {what}: {detail}")]
    Unsupported {
        image: String,
        what: &'static str,
        detail: String,
    },

    #[error("image {image}: layer {digest}: {source}")]
    Unpack {
        image: String,
        digest: String,
        #[source]
        source: UnpackError,
    },

    #[error("registry configuration {path}: {detail}")]
    HostsConfig { path: PathBuf, detail: String },

    #[error("credentials file {path}: {detail}")]
    Credentials { path: PathBuf, detail: String },

    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("image store record {path}: {detail}")]
    Record { path: PathBuf, detail: String },

    #[error("internal error: {0}")]
    Internal(String),
}

impl ImageError {
    /// Whether a file system ran out of space (or quota) somewhere in the error's chain.
    pub fn is_out_of_space(&self) -> bool {
        corral_fsutil::out_of_space(self)
    }

    /// Wraps an I/O error with the operation and the path it concerned.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ImageError::Io { op, path, source }
    }
}

/// Result alias for the image subsystem.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;
