//! OCI runtime-spec hooks (config.md "POSIX-platform Hooks", runtime.md "Lifecycle").
//!
//! Where each kind runs:
//! - `prestart` (deprecated) and `createRuntime`: in the caller (the runtime namespace), once
//!   the init made its namespaces and mounts and waits before `pivot_root`;
//! - `createContainer`: in the init, right after those, in the container's namespaces (its
//!   mount namespace still sees the host's paths: `pivot_root` comes after);
//! - `startContainer`: in the init after the start signal, confined like the container's
//!   process (user, capabilities, seccomp), right before `execve`; its path resolves in the
//!   container;
//! - `poststart`: in the caller once `execve` succeeded; a failure is only reported;
//! - `poststop`: in the caller once the container is gone ([`Poststop`]); a failure is only
//!   reported. A create that fails once its hooks began runs them too (lifecycle step 12-13).
//!
//! Each hook gets the container's state JSON on stdin (a sealed copy in a memfd), its own
//! `args` (`[path]` when empty) and `env` (nothing else: the caller's environment is not
//! passed on), its stdout and stderr on a pipe whose first 4 KiB go into the error message,
//! and a time limit: `timeout` seconds, or [`DEFAULT_TIMEOUT`] when it has none (the spec
//! sets no default, and a hook that never ends would block the pod's shim). A hook over its
//! limit is killed with its process group.
//!
//! The hook's process is forked from a single-threaded caller (the shim, or the container's
//! init) and, between the fork and `execve`, makes only async-signal-safe syscalls: it is
//! non-dumpable, keeps only its stdio (every other descriptor is closed), gets every ignored
//! signal back to its default action and an empty signal mask, and leads a process group of
//! its own.

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use oci_spec::runtime::{Hook, Spec};

use crate::Error;
use crate::sys::{self, Forked};

/// The limit of a hook whose spec sets no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How much of a hook's output an error message quotes.
const OUTPUT_MAX: usize = 4096;

/// The hook points of the lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Deprecated; runs with `createRuntime`, before it.
    Prestart,
    /// In the runtime namespace, before `pivot_root`.
    CreateRuntime,
    /// In the container's namespaces, before `pivot_root`.
    CreateContainer,
    /// In the container, before its process is executed.
    StartContainer,
    /// In the runtime namespace, after the process started.
    Poststart,
    /// In the runtime namespace, after the container was deleted.
    Poststop,
}

impl Kind {
    /// The spec's name (`createRuntime`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }
}

/// One hook, ready for a fork.
#[derive(Debug, Clone)]
pub(crate) struct HookPlan {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    timeout: Duration,
}

impl HookPlan {
    fn new(kind: Kind, i: usize, hook: &Hook) -> Result<HookPlan, Error> {
        let field = || format!("hooks.{}[{i}]", kind.name());
        let bad = |what: &str| Error::InvalidSpec(format!("{}: {what}", field()));
        let path = hook.path();
        if !path.is_absolute() {
            return Err(bad(&format!("path {} is not absolute", path.display())));
        }
        let cstr = |s: &str| CString::new(s).map_err(|_| bad("a NUL byte in path, args or env"));
        let path_c = cstr(&path.to_string_lossy())?;
        let mut argv = hook
            .args()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|a| cstr(a))
            .collect::<Result<Vec<_>, _>>()?;
        if argv.is_empty() {
            argv.push(path_c.clone());
        }
        let envp = hook
            .env()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|e| cstr(e))
            .collect::<Result<Vec<_>, _>>()?;
        let timeout = match hook.timeout() {
            None => DEFAULT_TIMEOUT,
            Some(t) if t > 0 => Duration::from_secs(t as u64),
            Some(t) => return Err(bad(&format!("timeout {t} is not greater than zero"))),
        };
        Ok(HookPlan {
            path: path_c,
            argv,
            envp,
            timeout,
        })
    }

    fn display(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }
}

/// Every hook of a spec, validated (absolute paths, no NUL bytes, positive timeouts).
#[derive(Debug, Clone, Default)]
pub struct Hooks {
    pub(crate) prestart: Vec<HookPlan>,
    pub(crate) create_runtime: Vec<HookPlan>,
    pub(crate) create_container: Vec<HookPlan>,
    pub(crate) start_container: Vec<HookPlan>,
    pub(crate) poststart: Vec<HookPlan>,
    pub(crate) poststop: Vec<HookPlan>,
}

impl Hooks {
    /// The spec's `hooks`.
    pub fn of(spec: &Spec) -> Result<Hooks, Error> {
        let Some(h) = spec.hooks() else {
            return Ok(Hooks::default());
        };
        let list = |kind: Kind, hooks: &Option<Vec<Hook>>| -> Result<Vec<HookPlan>, Error> {
            hooks
                .as_deref()
                .unwrap_or_default()
                .iter()
                .enumerate()
                .map(|(i, hook)| HookPlan::new(kind, i, hook))
                .collect()
        };
        Ok(Hooks {
            prestart: list(Kind::Prestart, h.prestart())?,
            create_runtime: list(Kind::CreateRuntime, h.create_runtime())?,
            create_container: list(Kind::CreateContainer, h.create_container())?,
            start_container: list(Kind::StartContainer, h.start_container())?,
            poststart: list(Kind::Poststart, h.poststart())?,
            poststop: list(Kind::Poststop, h.poststop())?,
        })
    }

    /// Whether any hook runs during create (prestart, createRuntime, createContainer).
    pub(crate) fn any_at_create(&self) -> bool {
        !(self.prestart.is_empty()
            && self.create_runtime.is_empty()
            && self.create_container.is_empty())
    }
}

/// What the state JSON a hook reads says about the container, apart from status and pid.
#[derive(Debug, Clone)]
pub struct State {
    oci_version: String,
    id: String,
    bundle: PathBuf,
    annotations: BTreeMap<String, String>,
}

impl State {
    /// The container `id` of `spec`, whose bundle is `bundle` (made absolute).
    pub fn new(spec: &Spec, id: &str, bundle: &Path) -> State {
        State {
            oci_version: spec.version().clone(),
            id: id.to_owned(),
            bundle: std::path::absolute(bundle).unwrap_or_else(|_| bundle.to_path_buf()),
            annotations: spec
                .annotations()
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// The state as the runtime spec's `state` JSON (state.md).
    pub fn json(&self, status: &str, pid: Option<i32>) -> Vec<u8> {
        let mut m = serde_json::Map::new();
        m.insert("ociVersion".into(), self.oci_version.clone().into());
        m.insert("id".into(), self.id.clone().into());
        m.insert("status".into(), status.into());
        if let Some(pid) = pid {
            m.insert("pid".into(), pid.into());
        }
        m.insert(
            "bundle".into(),
            self.bundle.to_string_lossy().into_owned().into(),
        );
        if !self.annotations.is_empty() {
            let a = self
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone())))
                .collect();
            m.insert("annotations".into(), serde_json::Value::Object(a));
        }
        serde_json::to_vec(&serde_json::Value::Object(m)).unwrap_or_default()
    }

    /// The bundle directory (the working directory of hooks in the runtime namespace).
    pub(crate) fn bundle_cstring(&self) -> Option<CString> {
        CString::new(self.bundle.as_os_str().to_string_lossy().as_bytes()).ok()
    }
}

/// A hook that failed: which, and how.
#[derive(Debug, Clone)]
pub(crate) struct HookFailure {
    pub kind: String,
    pub path: String,
    pub reason: String,
}

impl From<HookFailure> for Error {
    fn from(f: HookFailure) -> Error {
        Error::Hook {
            kind: f.kind,
            path: f.path,
            reason: f.reason,
        }
    }
}

/// Runs `hooks` in turn in the calling process's namespaces, each with `state` on stdin,
/// stopping at the first that fails. `cwd` is their working directory when it exists.
pub(crate) fn run_all(
    kind: Kind,
    hooks: &[HookPlan],
    state: &[u8],
    cwd: Option<&CStr>,
) -> Result<(), HookFailure> {
    for hook in hooks {
        run_one(hook, state, cwd).map_err(|reason| HookFailure {
            kind: kind.name().to_owned(),
            path: hook.display(),
            reason,
        })?;
    }
    Ok(())
}

/// Runs every hook of `hooks` whatever the others do; returns the failures.
pub(crate) fn run_each(
    kind: Kind,
    hooks: &[HookPlan],
    state: &[u8],
    cwd: Option<&CStr>,
) -> Vec<Error> {
    hooks
        .iter()
        .filter_map(|hook| {
            run_one(hook, state, cwd).err().map(|reason| Error::Hook {
                kind: kind.name().to_owned(),
                path: hook.display(),
                reason,
            })
        })
        .collect()
}

/// The poststop hooks of a container and its state, kept by the caller until the container
/// is deleted.
#[derive(Debug, Clone)]
pub struct Poststop {
    pub(crate) hooks: Vec<HookPlan>,
    pub(crate) state: State,
}

impl Poststop {
    /// The poststop hooks of `spec` for container `id`.
    pub fn of(spec: &Spec, id: &str, bundle: &Path) -> Result<Poststop, Error> {
        Ok(Poststop {
            hooks: Hooks::of(spec)?.poststop,
            state: State::new(spec, id, bundle),
        })
    }

    /// Whether there is any hook to run.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Runs every poststop hook (status `stopped`, no pid) in the calling process's
    /// namespaces; returns those that failed, which the spec makes warnings.
    pub fn run(&self) -> Vec<Error> {
        let state = self.state.json("stopped", None);
        let cwd = self.state.bundle_cstring();
        let cwd = cwd.as_deref().filter(|_| self.state.bundle.is_dir());
        run_each(Kind::Poststop, &self.hooks, &state, cwd)
    }
}

fn errno_text(step: &str, e: Errno) -> String {
    format!("{step}: {e}")
}

/// Runs one hook to its end or its time limit. The error is why it failed, output included.
fn run_one(hook: &HookPlan, state: &[u8], cwd: Option<&CStr>) -> Result<(), String> {
    let input = state_memfd(state).map_err(|e| errno_text("state memfd", e))?;
    let (out_r, out_w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| errno_text("output pipe", e))?;
    fcntl(out_r.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
        .map_err(|e| errno_text("output pipe", e))?;
    // Everything the child uses is built here: it only makes syscalls.
    let argv: Vec<*const libc::c_char> = hook
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = hook
        .envp
        .iter()
        .map(|e| e.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let child = ChildArgs {
        stdin: input.as_raw_fd(),
        output: out_w.as_raw_fd(),
        cwd,
        path: &hook.path,
        argv: &argv,
        envp: &envp,
    };
    let pid = match sys::fork().map_err(|e| errno_text("fork", e))? {
        Forked::Child => hook_child(&child),
        Forked::Parent(pid) => pid,
    };
    // Its own process group, from both sides, so a timeout can kill what it started.
    let _ = nix::unistd::setpgid(pid, pid);
    drop((input, out_w));
    let mut output = Output::default();
    let deadline = Instant::now() + hook.timeout;
    let mut open = true;
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => {}
            Ok(WaitStatus::Exited(_, code)) => {
                output.drain(&out_r, &mut open);
                return match code {
                    0 => Ok(()),
                    code => Err(format!("exited with status {code}{}", output.quote())),
                };
            }
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                output.drain(&out_r, &mut open);
                return Err(format!("killed by {sig}{}", output.quote()));
            }
            Ok(_) => {}
            Err(e) => return Err(errno_text("waitpid", e)),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let _ = kill(Pid::from_raw(-pid.as_raw()), Signal::SIGKILL);
            let _ = kill(pid, Signal::SIGKILL);
            while let Err(Errno::EINTR) = waitpid(pid, None) {}
            output.drain(&out_r, &mut open);
            return Err(format!(
                "killed after its timeout of {} s{}",
                hook.timeout.as_secs(),
                output.quote()
            ));
        }
        let wait = left.min(Duration::from_millis(20));
        let ms = u16::try_from(wait.as_millis()).unwrap_or(20);
        if open {
            let mut fds = [nix::poll::PollFd::new(
                out_r.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
            output.drain(&out_r, &mut open);
        } else {
            std::thread::sleep(wait);
        }
    }
}

/// The first [`OUTPUT_MAX`] bytes a hook wrote; the rest is read and dropped.
#[derive(Default)]
struct Output(Vec<u8>);

impl Output {
    /// Reads what is there now; `open` turns false at EOF.
    fn drain(&mut self, fd: &OwnedFd, open: &mut bool) {
        let mut buf = [0u8; 4096];
        while *open {
            match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
                Ok(0) => *open = false,
                Ok(n) => {
                    let room = OUTPUT_MAX.saturating_sub(self.0.len());
                    self.0.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }

    fn quote(&self) -> String {
        let text = String::from_utf8_lossy(&self.0);
        let text = text.trim();
        if text.is_empty() {
            String::new()
        } else {
            format!("; output: {text}")
        }
    }
}

/// A sealed memfd holding `state`, at offset 0.
fn state_memfd(state: &[u8]) -> Result<OwnedFd, Errno> {
    let fd = sys::memfd_sealable(c"oci-hook-state")?;
    let mut done = 0;
    while done < state.len() {
        match nix::unistd::write(&fd, &state[done..]) {
            Ok(n) => done += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    nix::unistd::lseek(fd.as_raw_fd(), 0, nix::unistd::Whence::SeekSet)?;
    sys::seal_all(fd.as_fd())?;
    Ok(fd)
}

struct ChildArgs<'a> {
    stdin: RawFd,
    output: RawFd,
    cwd: Option<&'a CStr>,
    path: &'a CStr,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
}

/// The hook's process between the fork and `execve`: syscalls only, no allocation.
fn hook_child(a: &ChildArgs<'_>) -> ! {
    sys::run_child(|| {
        let _ = sys::set_non_dumpable();
        // Above 2 first, so no dup2 below clobbers a source.
        let (Ok(input), Ok(output)) = (
            sys::dup_cloexec_above(a.stdin, 3),
            sys::dup_cloexec_above(a.output, 3),
        ) else {
            return 126;
        };
        for (from, to) in [(input, 0), (output, 1), (output, 2)] {
            if nix::unistd::dup2(from, to).is_err() {
                return 126;
            }
        }
        // Only stdio goes on: nothing of the shim (or of the init) reaches the hook.
        if sys::close_range_from(3, false).is_err() {
            return 126;
        }
        if sys::reset_ignored_signals().is_err()
            || nix::sys::signal::SigSet::empty().thread_set_mask().is_err()
        {
            return 126;
        }
        let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
        if let Some(cwd) = a.cwd {
            let _ = nix::unistd::chdir(cwd);
        }
        let e = sys::execve_prepared(a.path, a.argv, a.envp);
        for part in [
            b"cannot execute the hook: ".as_slice(),
            e.desc().as_bytes(),
            b"\n",
        ] {
            sys::write_all_raw(2, part);
        }
        127
    })
}
