//! Processes and their memory, from /proc: for the bench and the integration tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Resident and proportional memory, in KiB.
#[derive(Debug, Default, Clone, Copy)]
pub struct Mem {
    /// `VmRSS` of /proc/<pid>/status: every resident page, shared or not.
    pub rss: u64,
    /// `Pss` of /proc/<pid>/smaps_rollup: shared pages divided among their sharers.
    pub pss: u64,
    /// `VmHWM`: peak RSS.
    pub hwm: u64,
    /// `RssAnon`: the heap, stacks and other private memory.
    pub anon: u64,
    /// `RssFile`: mapped files, the program's text first.
    pub file: u64,
    /// `Private_Clean` + `Private_Dirty` of smaps_rollup: pages no other process maps, what
    /// one more such process costs.
    pub private: u64,
}

impl std::ops::AddAssign for Mem {
    fn add_assign(&mut self, o: Mem) {
        self.rss += o.rss;
        self.pss += o.pss;
        self.hwm += o.hwm;
        self.anon += o.anon;
        self.file += o.file;
        self.private += o.private;
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
        anon: field(&status, "RssAnon:"),
        file: field(&status, "RssFile:"),
        private: field(&rollup, "Private_Clean:") + field(&rollup, "Private_Dirty:"),
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

/// The state letter of `/proc/<pid>/stat` (`R`, `S`, `T` for stopped, `Z`...).
pub fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name, which sits in parentheses and may hold spaces.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
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

/// corral-shim processes of the daemon whose state directory is `state` (one per pod: not
/// the spares, which share their shim's memory, see [`without_spares`]).
pub fn corral_shims(shim_bin: &Path, state: &Path) -> Vec<u32> {
    without_spares(running(shim_bin, &state.display().to_string()))
}

/// `pids` less each one whose parent is among them and shares its memory: a shim's spare
/// intermediate (`corral_runtime::container::spare`), which has the shim's command line and
/// memory but is no process of its own to count.
pub fn without_spares(pids: Vec<u32>) -> Vec<u32> {
    pids.iter()
        .copied()
        .filter(|&p| !ppid(p).is_some_and(|parent| pids.contains(&parent) && same_vm(p, parent)))
        .collect()
}

/// `kcmp(KCMP_VM)`: the two processes share one address space.
#[allow(unsafe_code)]
fn same_vm(a: u32, b: u32) -> bool {
    const KCMP_VM: libc::c_int = 1;
    // SAFETY: integer arguments only.
    let r = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            a as libc::pid_t,
            b as libc::pid_t,
            KCMP_VM,
            0,
            0,
        )
    };
    r == 0
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

/// CPU time in seconds: the whole machine's busy time (`/proc/stat`: everything but idle and
/// iowait) and one process's own (user + system, `/proc/<pid>/stat`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Cpu {
    pub machine: f64,
    pub process: f64,
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, o: Cpu) -> Cpu {
        Cpu {
            machine: self.machine - o.machine,
            process: self.process - o.process,
        }
    }
}

/// Clock ticks per second of /proc's CPU times.
fn ticks() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

/// CPU times of a process from `/proc/<pid>/stat` (`pid` may be `self`), all its threads:
/// its own user and system time, and its waited-for children's (`cutime`, `cstime`).
pub struct StatTimes {
    pub user: Duration,
    pub system: Duration,
    pub children: Duration,
}

pub fn stat_times(pid: &str) -> StatTimes {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which sits in parentheses and may hold spaces: `rest`
    // starts at field 3 (state); utime, stime, cutime, cstime are fields 14 to 17.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(4)
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    let secs = |i: usize| Duration::from_secs_f64(f.get(i).copied().unwrap_or(0.0) / ticks());
    StatTimes {
        user: secs(0),
        system: secs(1),
        children: secs(2) + secs(3),
    }
}

/// User + system seconds of this process's waited-for children.
pub fn children_cpu() -> f64 {
    stat_times("self").children.as_secs_f64()
}

pub fn cpu(pid: u32) -> Cpu {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    // cpu user nice system idle iowait irq softirq steal ...
    let all: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let busy: f64 = all
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
        .map(|(_, v)| v)
        .sum();
    let own = stat_times(&pid.to_string());
    Cpu {
        machine: busy / ticks(),
        process: (own.user + own.system).as_secs_f64(),
    }
}
