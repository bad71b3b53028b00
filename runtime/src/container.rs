//! Creating and starting a container's init process from an OCI runtime spec.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::Spec;

use crate::Error;

/// The stdio the container's process gets. For a TTY all three are the pty's replica side, and
/// the process makes it its controlling terminal (`process.terminal` in the spec).
pub struct Stdio {
    /// `None` means `/dev/null`.
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// A container process that exists, fully set up, and waits to `execve` its entrypoint.
pub struct Container {
    // private: pid, pidfd, start pipe, ...
}

impl Container {
    /// Host PID of the container's init process.
    pub fn pid(&self) -> i32 {
        todo!()
    }
    /// A pidfd for the init process (readable when it exits; reap with `waitid(P_PIDFD)`).
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        todo!()
    }
    /// Lets the process `execve`; returns once `execve` succeeded, or the error it reported.
    pub fn start(&mut self) -> Result<(), Error> {
        todo!()
    }
    /// Gives up the pidfd (the caller owns reaping from then on).
    pub fn into_pidfd(self) -> OwnedFd {
        todo!()
    }
}

/// Creates the container described by `spec` (whose `root.path` is absolute or relative to
/// `bundle`). Namespaces with a `path` are joined, the others are created; the cgroup at
/// `linux.cgroupsPath` is created with `linux.resources` applied; the process is a child of the
/// caller. On error nothing is left behind (no process, no cgroup).
pub fn create(spec: &Spec, bundle: &Path, stdio: Stdio) -> Result<Container, Error> {
    let _ = (spec, bundle, stdio);
    todo!()
}
