//! An OCI `Process`, prepared in the caller and applied in a forked child right before
//! `execve`: session and stdio, rlimits, user and groups, capabilities, umask, cwd,
//! `no_new_privs`, the `PATH` lookup of `args[0]` and the `execve` itself.

use std::ffi::CString;
use std::os::fd::{OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use nix::errno::Errno;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::sys::stat::Mode;
use nix::unistd::{Gid, Pid, Uid};
use oci_spec::runtime::{Capabilities, LinuxSeccomp, Process};

use crate::Error;
use crate::report::{ChildError, ChildResult, Msg, Step, send};
use crate::seccomp::SeccompPlan;
use crate::sys;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Capability masks (bit n = capability n).
struct CapPlan {
    last_cap: u32,
    bounding: u64,
    effective: u64,
    permitted: u64,
    inheritable: u64,
    ambient: u64,
}

/// Everything the child needs to become `process`, built before the fork.
pub(crate) struct ProcessPlan {
    arg0: String,
    args: Vec<CString>,
    env: Vec<CString>,
    /// Where `args[0]` may be, in `PATH` order (just `args[0]` if it has a slash).
    candidates: Vec<CString>,
    cwd: CString,
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
    umask: Mode,
    caps: Option<CapPlan>,
    rlimits: Vec<(Resource, u64, u64)>,
    no_new_privs: bool,
    pub terminal: bool,
    pub oom_score_adj: Option<i32>,
    seccomp: Option<SeccompPlan>,
    lsm: Option<crate::lsm::LsmExec>,
}

fn cstring(what: &str, s: &str) -> Result<CString, Error> {
    CString::new(s).map_err(|_| Error::InvalidSpec(format!("{what} contains a NUL byte")))
}

impl ProcessPlan {
    /// Validates and prepares `process`.
    pub fn new(process: &Process) -> Result<Self, Error> {
        let lsm = crate::lsm::LsmExec::new(process)?;
        let args_in = process.args().as_deref().unwrap_or_default();
        let Some(arg0) = args_in.first().cloned() else {
            return Err(Error::InvalidSpec("process.args is empty".into()));
        };
        let args = args_in
            .iter()
            .map(|a| cstring("process.args", a))
            .collect::<Result<Vec<_>, _>>()?;
        let env_in = process.env().as_deref().unwrap_or_default();
        let env = env_in
            .iter()
            .map(|e| cstring("process.env", e))
            .collect::<Result<Vec<_>, _>>()?;
        let candidates = if arg0.contains('/') {
            vec![cstring("process.args[0]", &arg0)?]
        } else {
            let path = env_in
                .iter()
                .rev()
                .find_map(|e| e.strip_prefix("PATH="))
                .unwrap_or(DEFAULT_PATH);
            path.split(':')
                .map(|dir| {
                    let dir = if dir.is_empty() { "." } else { dir };
                    cstring("PATH", &format!("{dir}/{arg0}"))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let cwd = process.cwd();
        if !cwd.is_absolute() {
            return Err(Error::InvalidSpec(format!(
                "process.cwd {} is not absolute",
                cwd.display()
            )));
        }
        let cwd = cstring("process.cwd", &cwd.to_string_lossy())?;
        let user = process.user();
        let gid = Gid::from_raw(user.gid());
        let mut groups = vec![gid];
        for g in user.additional_gids().as_deref().unwrap_or_default() {
            let g = Gid::from_raw(*g);
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        let rlimits = match process.rlimits() {
            Some(list) => list
                .iter()
                .map(|r| rlimit(&r.typ(), r.soft(), r.hard()))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let caps = match process.capabilities() {
            None => None,
            Some(c) => {
                let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(40);
                Some(CapPlan {
                    last_cap,
                    bounding: cap_mask(c.bounding()),
                    effective: cap_mask(c.effective()),
                    permitted: cap_mask(c.permitted()),
                    inheritable: cap_mask(c.inheritable()),
                    ambient: cap_mask(c.ambient()),
                })
            }
        };
        Ok(ProcessPlan {
            arg0,
            args,
            env,
            candidates,
            cwd,
            uid: Uid::from_raw(user.uid()),
            gid,
            groups,
            umask: Mode::from_bits_truncate(user.umask().unwrap_or(0o022)),
            caps,
            rlimits,
            no_new_privs: process.no_new_privileges().unwrap_or(false),
            terminal: process.terminal().unwrap_or(false),
            oom_score_adj: process.oom_score_adj(),
            seccomp: None,
            lsm,
        })
    }

    /// Adds a seccomp profile: installed right before `execve` when `no_new_privs` is set,
    /// else before the capabilities are dropped (installing needs `CAP_SYS_ADMIN` then).
    pub fn with_seccomp(mut self, seccomp: Option<&LinuxSeccomp>) -> Result<Self, Error> {
        self.seccomp = seccomp.map(crate::seccomp::build).transpose()?;
        Ok(self)
    }

    /// The working directory (absolute, inside the container).
    pub fn cwd(&self) -> &CString {
        &self.cwd
    }

    /// Child: new session, stdio on 0/1/2, and the controlling terminal when asked.
    pub fn setup_stdio(&self, fds: [RawFd; 3]) -> ChildResult {
        nix::unistd::setsid().step("setsid")?;
        // Move the sources out of the way first so no dup2 clobbers a later source.
        let mut tmp = [0; 3];
        for (t, fd) in tmp.iter_mut().zip(fds) {
            *t = sys::dup_cloexec_above(fd, 3).step("dup stdio")?;
        }
        for (target, t) in tmp.into_iter().enumerate() {
            nix::unistd::dup2(t, target as RawFd).step("dup2 stdio")?;
        }
        if self.terminal {
            sys::set_controlling_tty(0).step("TIOCSCTTY")?;
        }
        Ok(())
    }

    /// Child: rlimits (already clamped by the caller).
    pub fn apply_rlimits(&self) -> ChildResult {
        for (res, soft, hard) in &self.rlimits {
            setrlimit(*res, *soft, *hard).step_with(|| format!("setrlimit {res:?}"))?;
        }
        Ok(())
    }

    /// Child: bounding set, user and groups, the other capability sets, umask (runc's order:
    /// the bounding set is dropped while still privileged, caps survive setuid through
    /// `PR_SET_KEEPCAPS` and are then set explicitly).
    pub fn apply_credentials(&self) -> ChildResult {
        if !self.no_new_privs
            && let Some(s) = &self.seccomp
        {
            s.install()?;
        }
        if let Some(c) = &self.caps {
            for cap in 0..=c.last_cap.min(63) {
                if c.bounding & (1 << cap) == 0 {
                    match sys::capbset_drop(cap) {
                        Ok(()) | Err(Errno::EINVAL) => {}
                        Err(e) => return Err(e).step("drop bounding capability"),
                    }
                }
            }
            nix::sys::prctl::set_keepcaps(true).step("PR_SET_KEEPCAPS")?;
        }
        nix::unistd::setgroups(&self.groups).step("setgroups")?;
        nix::unistd::setresgid(self.gid, self.gid, self.gid).step("setgid")?;
        nix::unistd::setresuid(self.uid, self.uid, self.uid).step("setuid")?;
        if let Some(c) = &self.caps {
            nix::sys::prctl::set_keepcaps(false).step("PR_SET_KEEPCAPS 0")?;
            sys::capset(c.effective, c.permitted, c.inheritable).step("capset")?;
            for cap in 0..=c.last_cap.min(63) {
                if c.ambient & (1 << cap) != 0 {
                    sys::ambient_raise(cap).step("raise ambient capability")?;
                }
            }
        }
        nix::sys::stat::umask(self.umask);
        Ok(())
    }

    /// Child: enters the working directory and checks it lies inside the process's root (as
    /// runc does since CVE-2024-21626: a cwd reached through a leaked host descriptor would
    /// hand the container the host's file system).
    pub fn chdir(&self) -> ChildResult {
        nix::unistd::chdir(self.cwd.as_c_str()).step_with(|| format!("chdir {:?}", self.cwd))?;
        match sys::cwd_inside_root() {
            Ok(true) => Ok(()),
            Ok(false) => Err(Errno::EPERM)
                .step_with(|| format!("cwd {:?} is outside the container's root", self.cwd)),
            Err(e) => Err(e).step("getcwd"),
        }
    }

    /// Child: `no_new_privs`, every inherited descriptor above 2 close-on-exec, `PATH` lookup
    /// and `execve`. Reports a failure on `status` and exits 127.
    pub fn exec(&self, status: &OwnedFd) -> ! {
        self.exec_with(status, || None)
    }

    /// [`exec`](Self::exec), running `before` once the process is confined (credentials,
    /// `no_new_privs`, seccomp) and right before its descriptors are marked close-on-exec: a
    /// message it returns is reported instead of the `execve`.
    pub fn exec_with(&self, status: &OwnedFd, before: impl FnOnce() -> Option<Msg>) -> ! {
        let err = self.try_exec(before);
        send(status, &err);
        sys::exit(127)
    }

    fn try_exec(&self, before: impl FnOnce() -> Option<Msg>) -> Msg {
        // Ignored signals survive execve: the container starts with every one at its default
        // action, as under runc. (Before seccomp, which may not allow rt_sigaction.)
        if let Err(e) = sys::reset_ignored_signals().step("reset signal actions") {
            return Msg::Failed(e);
        }
        if let Some(l) = &self.lsm
            && let Err(e) = l.apply()
        {
            return Msg::Failed(e);
        }
        if self.no_new_privs
            && let Err(e) = nix::sys::prctl::set_no_new_privs().step("PR_SET_NO_NEW_PRIVS")
        {
            return Msg::Failed(e);
        }
        if self.no_new_privs
            && let Some(s) = &self.seccomp
            && let Err(e) = s.install()
        {
            return Msg::Failed(e);
        }
        if let Some(m) = before() {
            return m;
        }
        if let Err(e) = sys::close_range_from(3, true).step("close_range") {
            return Msg::Failed(e);
        }
        // The caller (the shim) blocks the signals it reads through a signalfd; the mask
        // survives execve, so the container must get an empty one back.
        if let Err(e) = nix::sys::signal::SigSet::empty()
            .thread_set_mask()
            .step("sigprocmask")
        {
            return Msg::Failed(e);
        }
        let path = if self.candidates.len() == 1 && self.arg0.contains('/') {
            &self.candidates[0]
        } else {
            match self.candidates.iter().find(|c| is_executable(c)) {
                Some(p) => p,
                None => return Msg::NotFound(self.arg0.clone()),
            }
        };
        match nix::unistd::execve(path, &self.args, &self.env) {
            Err(Errno::ENOENT) => Msg::NotFound(self.arg0.clone()),
            Err(errno) => Msg::Failed(ChildError {
                step: format!("execve {}", self.arg0),
                errno,
            }),
            Ok(never) => match never {},
        }
    }
}

fn is_executable(path: &CString) -> bool {
    let Ok(path) = path.to_str() else {
        return false;
    };
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0 && m.nlink() > 0)
        .unwrap_or(false)
}

fn cap_mask(set: &Option<Capabilities>) -> u64 {
    let mut mask = 0u64;
    for cap in set.iter().flatten() {
        let name = serde_json::to_value(cap)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned));
        match name
            .as_deref()
            .and_then(|n| n.parse::<caps::Capability>().ok())
        {
            Some(c) if c.index() < 64 => mask |= 1 << c.index(),
            _ => tracing::warn!(capability = ?cap, "unknown capability ignored"),
        }
    }
    mask
}

/// Maps an OCI rlimit and clamps its hard limit to the current one (raising it needs
/// `CAP_SYS_RESOURCE`, which the host root here lacks).
fn rlimit(
    typ: &oci_spec::runtime::PosixRlimitType,
    soft: u64,
    hard: u64,
) -> Result<(Resource, u64, u64), Error> {
    let name = serde_json::to_value(typ)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let res = match name.as_str() {
        "RLIMIT_AS" => Resource::RLIMIT_AS,
        "RLIMIT_CORE" => Resource::RLIMIT_CORE,
        "RLIMIT_CPU" => Resource::RLIMIT_CPU,
        "RLIMIT_DATA" => Resource::RLIMIT_DATA,
        "RLIMIT_FSIZE" => Resource::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => Resource::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => Resource::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => Resource::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => Resource::RLIMIT_NICE,
        "RLIMIT_NOFILE" => Resource::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => Resource::RLIMIT_NPROC,
        "RLIMIT_RSS" => Resource::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => Resource::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => Resource::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => Resource::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => Resource::RLIMIT_STACK,
        other => {
            return Err(Error::InvalidSpec(format!(
                "process.rlimits: unknown type {other:?}"
            )));
        }
    };
    let (_, cur_hard) = getrlimit(res).map_err(Error::sys("getrlimit"))?;
    let mut hard = hard;
    if hard > cur_hard {
        tracing::warn!(
            rlimit = name,
            requested = hard,
            allowed = cur_hard,
            "hard limit above the current one, clamped"
        );
        hard = cur_hard;
    }
    Ok((res, soft.min(hard), hard))
}

/// Writes `value` to `/proc/<pid>/oom_score_adj`; a value the host refuses (below the current
/// one without `CAP_SYS_RESOURCE`) is clamped to the current value and logged.
pub(crate) fn set_oom_score_adj(pid: Pid, value: i32) -> Result<(), Error> {
    let path = format!("/proc/{pid}/oom_score_adj");
    match std::fs::write(&path, value.to_string()) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) => {
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            tracing::warn!(
                requested = value,
                current = current.trim(),
                "oom_score_adj below what the host allows, kept the current value"
            );
            Ok(())
        }
        Err(e) => Err(Error::Io {
            path: path.into(),
            source: e,
        }),
    }
}
