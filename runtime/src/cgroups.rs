//! A container's cgroup, through libcgroups, on v1, hybrid and v2 hosts (cgroupfs layout).

use std::path::Path;

use oci_spec::runtime::LinuxResources;

use crate::Error;

/// Applies `resources` to the existing cgroup at `cgroups_path` (as in `linux.cgroupsPath`).
pub fn update(cgroups_path: &Path, resources: &LinuxResources) -> Result<(), Error> {
    let _ = (cgroups_path, resources);
    todo!()
}

/// How many processes of the cgroup the kernel's OOM killer killed (v1 `memory.oom_control`
/// `oom_kill`, v2 `memory.events` `oom_kill`); 0 when the memory controller is missing.
pub fn oom_kills(cgroups_path: &Path) -> Result<u64, Error> {
    let _ = cgroups_path;
    todo!()
}

/// PIDs in the cgroup (all hierarchies agree on the set for our cgroups).
pub fn pids(cgroups_path: &Path) -> Result<Vec<i32>, Error> {
    let _ = cgroups_path;
    todo!()
}

/// SIGKILLs every process in the cgroup and removes it; an absent cgroup is fine.
pub fn kill_and_remove(cgroups_path: &Path) -> Result<(), Error> {
    let _ = cgroups_path;
    todo!()
}
