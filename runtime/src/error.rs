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
        /// What was being done.
        step: &'static str,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// A step failed in the container's child process before `execve`.
    #[error("container setup failed at {step}: {errno}")]
    Child {
        /// The step that failed (e.g. `mount /proc`).
        step: String,
        /// Its errno.
        errno: nix::Error,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `process.args[0]` has no slash and is not an executable file in any `PATH` directory
    /// (or, with a slash, does not exist).
    #[error("executable file not found: {0}")]
    NotFound(String),
    /// An idmapped mount could not be made (the filesystem may not support them).
    #[error("idmapped mount of {path}: {step}: {errno}")]
    Idmap {
        /// The mount's source.
        path: PathBuf,
        /// The syscall that failed.
        step: String,
        /// Its errno.
        errno: nix::Error,
    },
    /// An OCI hook failed: it exited non-zero, was killed (its timeout), or could not run.
    #[error("{kind} hook {path} failed: {reason}")]
    Hook {
        /// The hook point (`createRuntime`, ...).
        kind: String,
        /// The hook's `path`.
        path: String,
        /// How it failed, with the start of its output.
        reason: String,
    },
    /// The cgroup manager failed.
    #[error("cgroup {path}: {message}")]
    Cgroup {
        /// The cgroup path (as in `linux.cgroupsPath`).
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

impl Error {
    pub(crate) fn sys(step: &'static str) -> impl FnOnce(nix::Error) -> Error {
        move |source| Error::Sys { step, source }
    }
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }
}
