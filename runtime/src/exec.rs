//! Starting an extra process inside a running container.

use std::os::fd::OwnedFd;

use oci_spec::runtime::Process;

use crate::Error;
use crate::container::Stdio;

/// A process started by [`spawn`]; a child of the caller.
pub struct Spawned {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

/// Starts `process` inside the container whose init has host PID `init_pid`: joins every
/// namespace of the init that differs from the caller's (user, mnt, pid, net, ipc, uts, cgroup),
/// joins the cgroup at `cgroups_path`, then applies `process` (cwd, env, user, capabilities,
/// no_new_privs, rlimits, terminal) and execs. Returns once `execve` succeeded.
pub fn spawn(
    init_pid: i32,
    cgroups_path: &std::path::Path,
    process: &Process,
    stdio: Stdio,
) -> Result<Spawned, Error> {
    let _ = (init_pid, cgroups_path, process, stdio);
    todo!()
}
