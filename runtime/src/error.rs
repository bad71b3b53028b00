//! The crate's error type.

use std::path::PathBuf;

/// What went wrong while setting up or controlling a container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec asks for something invalid or unsupported; the message names the field.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// A syscall failed in the parent (this process).
    #[error("{step}: {source}")]
    Sys {
        step: &'static str,
        #[source]
        source: nix::Error,
    },
    /// A step failed in the container's child process before `execve`.
    #[error("container setup failed at {step}: {errno}")]
    Child { step: String, errno: nix::Error },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The cgroup manager failed.
    #[error("cgroup {path}: {message}")]
    Cgroup { path: PathBuf, message: String },
}
