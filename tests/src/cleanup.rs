//! Leaves nothing behind after a test daemon: stops the shims of its pods, unmounts whatever is
//! still mounted under its directory and removes its cgroups. The daemon removes all of it when
//! the test removes its pods; this is the net for tests that fail half-way.

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use corral_shim::proto::{self, Request, Response};

/// Mount points under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    // The daemon's own reader: one mount point that is not UTF-8 elsewhere must not hide the
    // test's mounts (`read_to_string` gave up on the whole table, and left them all).
    let mut out: Vec<PathBuf> = corral_fsutil::mountinfo::mount_points()
        .unwrap_or_default()
        .into_iter()
        .map(|(point, _)| point)
        .filter(|p| p.starts_with(dir))
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    out
}

/// Mounts a tmpfs with `options` (`size=1m,mode=0700`) on `dir`; [`pods`] unmounts it with the
/// daemon's other mounts when it lies under a test daemon's directory.
pub fn mount_tmpfs(dir: &Path, options: &str) -> nix::Result<()> {
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(options),
    )
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

/// Runs CNI DEL for every pod of the daemon rooted at `root` still recorded as attached, so a
/// test that fails half-way leaves no address, veth or iptables rule behind. Runs on a thread
/// of its own (callers may be inside a tokio runtime).
pub fn networks(root: &Path) {
    let mut records = Vec::new();
    if let Ok(entries) = std::fs::read_dir(root.join("pods")) {
        for e in entries.flatten() {
            let Ok(body) = std::fs::read(e.path().join("network.json")) else {
                continue;
            };
            let Ok(rec) = serde_json::from_slice::<serde_json::Value>(&body) else {
                continue;
            };
            if rec["attached"] == true {
                records.push(rec);
            }
        }
    }
    if records.is_empty() {
        return;
    }
    let run = move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        let plugins = corral_cni::Plugins::in_default_dirs(Duration::from_secs(30));
        for rec in records {
            let list =
                corral_cni::NetworkList::from_json(&rec["network"], Path::new("network.json"));
            let att = serde_json::from_value::<corral_cni::Attachment>(rec["attachment"].clone());
            if let (Ok(list), Ok(att)) = (list, att) {
                let _ = rt.block_on(corral_cni::del(&list, &plugins, &att, Some(&rec["result"])));
            }
        }
    };
    let _ = std::thread::spawn(run).join();
}
