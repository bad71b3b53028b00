//! Leaves nothing behind after a test daemon: stops the shims of its pods, unmounts whatever is
//! still mounted under its directory and removes its cgroups. The daemon removes all of it when
//! the test removes its pods; this is the net for tests that fail half-way.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use corral_shim::proto::{self, Request, Response};

/// Mount points under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    out
}

/// Asks the shim in `pod_dir` to shut down (it kills what still runs).
pub fn shutdown_shim(pod_dir: &Path) {
    let Ok((_dir_fd, path)) = proto::socket_path(pod_dir) else {
        return;
    };
    let Ok(mut sock) = UnixStream::connect(path) else {
        return;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_secs(10)));
    if proto::write_frame(&mut sock, &Request::Shutdown).is_ok() {
        let _ = proto::read_frame::<Response>(&mut sock);
    }
}

pub fn pods(dir: &Path, state: &Path, cgroup_root: &str) {
    if let Ok(entries) = std::fs::read_dir(state.join("pods")) {
        for e in entries.flatten() {
            shutdown_shim(&e.path());
        }
    }
    for m in mounts_under(dir) {
        let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
    }
    let _ = corral_runtime::cgroups::kill_and_remove(Path::new(cgroup_root));
}
