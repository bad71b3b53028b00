//! A pod's shared namespaces, pinned to files so containers can join them by path.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::Error;

/// What to create for a pod.
pub struct PodNamespaces<'a> {
    /// Create a network namespace (false: the pod uses the host's).
    pub network: bool,
    /// Create an IPC namespace (false: host IPC).
    pub ipc: bool,
    /// Create a UTS namespace and set this hostname in it (None: host UTS).
    pub hostname: Option<&'a str>,
    /// Namespaced sysctls to set inside (`net.*` need `network`, `kernel.shm*`/`kernel.msg*`/
    /// `kernel.sem`/`fs.mqueue.*` need `ipc`); anything else is `InvalidSpec`.
    pub sysctls: &'a [(String, String)],
}

/// Files that pin a pod's namespaces (`dir/net`, `dir/ipc`, `dir/uts`), each bind-mounted from
/// `/proc/<pid>/ns/<kind>` of a short-lived child. In a new network namespace `lo` is up.
pub struct Pinned {
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
}

/// Creates the namespaces and pins them under `dir` (created if missing). On error nothing is
/// left mounted.
pub fn pin_namespaces(dir: &Path, ns: &PodNamespaces<'_>) -> Result<Pinned, Error> {
    let _ = (dir, ns);
    todo!()
}

/// Unmounts and deletes whatever pins exist under `dir`; absent pins are fine.
pub fn unpin_namespaces(dir: &Path) -> Result<(), Error> {
    let _ = dir;
    todo!()
}

/// Starts the init of a new PID namespace shared by a pod's containers: a forked child that
/// reaps orphans and exits on SIGTERM. Also pins the namespace as `dir/pid`.
pub struct PidHolder {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

pub fn spawn_pid_holder(dir: &Path) -> Result<PidHolder, Error> {
    let _ = dir;
    todo!()
}
