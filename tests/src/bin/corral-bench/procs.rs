//! Processes and their memory, from /proc.

use std::path::{Path, PathBuf};

/// Resident and proportional memory, in KiB.
#[derive(Debug, Default, Clone, Copy)]
pub struct Mem {
    /// `VmRSS` of /proc/<pid>/status: every resident page, shared or not.
    pub rss: u64,
    /// `Pss` of /proc/<pid>/smaps_rollup: shared pages divided among their sharers.
    pub pss: u64,
    /// `VmHWM`: peak RSS.
    pub hwm: u64,
}

impl std::ops::AddAssign for Mem {
    fn add_assign(&mut self, o: Mem) {
        self.rss += o.rss;
        self.pss += o.pss;
        self.hwm += o.hwm;
    }
}

fn field(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn mem(pid: u32) -> Mem {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    Mem {
        rss: field(&status, "VmRSS:"),
        pss: field(&rollup, "Pss:"),
        hwm: field(&status, "VmHWM:"),
    }
}

pub fn sum(pids: &[u32]) -> Mem {
    let mut m = Mem::default();
    for &p in pids {
        m += mem(p);
    }
    m
}

pub fn all() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

pub fn exe(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

pub fn ppid(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(field(&status, "PPid:") as u32)
}

/// Every process below `pid` (not `pid` itself).
pub fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = all()
        .into_iter()
        .filter_map(|p| Some((p, ppid(p)?)))
        .collect();
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for &(child, parent) in &parents {
            if parent == p {
                out.push(child);
                frontier.push(child);
            }
        }
    }
    out
}

/// Processes running `bin` whose command line mentions `needle`.
pub fn running(bin: &Path, needle: &str) -> Vec<u32> {
    let bin = bin.canonicalize().unwrap_or_else(|_| bin.to_path_buf());
    all()
        .into_iter()
        .filter(|&p| exe(p).as_deref() == Some(bin.as_path()) && cmdline(p).contains(needle))
        .collect()
}

/// corral-shim processes of the daemon whose state directory is `state`.
pub fn corral_shims(shim_bin: &Path, state: &Path) -> Vec<u32> {
    running(shim_bin, &state.display().to_string())
}

/// containerd-shim-runc-v2 processes of the containerd listening on `socket`.
pub fn containerd_shims(socket: &Path) -> Vec<u32> {
    let needle = socket.display().to_string();
    all()
        .into_iter()
        .filter(|&p| {
            exe(p).is_some_and(|e| e.ends_with("containerd-shim-runc-v2"))
                && cmdline(p).contains(&needle)
        })
        .collect()
}

pub fn kill(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// The cgroup v1 hierarchies (and the v2 mount), as directories.
pub fn cgroup_controllers() -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}
