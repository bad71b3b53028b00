//! Creating and starting a container's init process from an OCI runtime spec.
//!
//! `create` forks an intermediate process, puts it into the container's cgroup, lets it join
//! and create the namespaces, and it clones the init as a child of the caller
//! (`CLONE_PARENT`). The init sets up the rootfs, `pivot_root`s, drops privileges and waits on
//! a "start" pipe; [`Container::start`] releases it.

mod child;
mod devices;
mod mounts;
mod plan;
pub mod spare;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use crate::report::{Msg, recv, unexpected};
use crate::sys::{self, Forked, KeepFds};
use crate::{Error, cgroups, hooks, process, terminal};
pub use spare::Spare;

/// The stdio the container's process gets.
pub enum Stdio {
    /// These descriptors. With `process.terminal` they are a pty's replica side, and the process
    /// makes it its controlling terminal.
    Fds {
        /// `None` means `/dev/null`.
        stdin: Option<OwnedFd>,
        /// Standard output.
        stdout: OwnedFd,
        /// Standard error.
        stderr: OwnedFd,
    },
    /// A new terminal that the process makes in the container's own devpts (`/dev/ptmx` as the
    /// container sees it), its stdio and controlling terminal; the caller gets the controller
    /// side ([`Container::take_terminal`], [`crate::exec::Spawned::terminal`]).
    Terminal,
}

/// What the children of `create` and `spawn` get for stdio.
pub(crate) enum ChildStdio {
    Fds([RawFd; 3]),
    /// Make a terminal and send its controller side over this socket.
    Terminal(RawFd),
}

impl ChildStdio {
    /// The descriptors the child must keep open until its stdio is in place.
    pub(crate) fn fds(&self) -> Vec<RawFd> {
        match self {
            ChildStdio::Fds(fds) => fds.to_vec(),
            ChildStdio::Terminal(socket) => vec![*socket],
        }
    }
}

/// [`Stdio`] made ready for a fork: what the child uses, and what keeps it open in the caller
/// until the fork (then [`Prepared::after_fork`]).
pub(crate) struct Prepared {
    pub child: ChildStdio,
    keep: Vec<OwnedFd>,
    console: Option<terminal::ConsoleSocket>,
}

impl Prepared {
    /// Parent, after the fork: closes the child's descriptors; returns the console socket's
    /// parent end for a terminal.
    pub(crate) fn after_fork(self) -> Option<OwnedFd> {
        drop(self.keep);
        self.console.map(|c| c.parent)
    }
}

impl Stdio {
    /// The descriptors, with `/dev/null` opened for a missing stdin, or a console socket pair
    /// for a terminal.
    pub(crate) fn prepare(self) -> Result<Prepared, Error> {
        match self {
            Stdio::Fds {
                stdin,
                stdout,
                stderr,
            } => {
                let stdin = match stdin {
                    Some(fd) => fd,
                    None => open_dev_null()?,
                };
                let raw = [stdin.as_raw_fd(), stdout.as_raw_fd(), stderr.as_raw_fd()];
                Ok(Prepared {
                    child: ChildStdio::Fds(raw),
                    keep: vec![stdin, stdout, stderr],
                    console: None,
                })
            }
            Stdio::Terminal => {
                let console = terminal::ConsoleSocket::new()?;
                Ok(Prepared {
                    child: ChildStdio::Terminal(console.child.as_raw_fd()),
                    keep: Vec::new(),
                    console: Some(console),
                })
            }
        }
    }
}

pub(crate) fn open_dev_null() -> Result<OwnedFd, Error> {
    let fd = nix::fcntl::open(
        "/dev/null",
        OFlag::O_RDWR | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| Error::Io {
        path: "/dev/null".into(),
        source: e.into(),
    })?;
    Ok(sys_owned(fd))
}

#[allow(unsafe_code)]
fn sys_owned(fd: std::os::fd::RawFd) -> OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` was just returned by open(2) and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A container process that exists, fully set up, and waits to `execve` its entrypoint.
///
/// Dropping it without [`Container::start`] makes the init exit (status 0) instead of
/// `execve`ing; the caller still reaps it and removes the cgroup
/// ([`crate::cgroups::kill_and_remove`]).
pub struct Container {
    pid: Pid,
    pidfd: OwnedFd,
    start: Option<OwnedFd>,
    status: OwnedFd,
    cgroups_path: PathBuf,
    born_in_cgroup: bool,
    terminal: Option<OwnedFd>,
    poststart: Vec<hooks::HookPlan>,
    poststop: hooks::Poststop,
    state: hooks::State,
}

impl Container {
    /// The controller side of the terminal the init made ([`Stdio::Terminal`]), once.
    pub fn take_terminal(&mut self) -> Option<OwnedFd> {
        self.terminal.take()
    }
    /// The container's processes were not moved into its cgroup: they were cloned straight
    /// into it (cgroup v2, `CLONE_INTO_CGROUP`) or from a spare whose cgroup was renamed to it
    /// (v1 and hybrid hosts, [`Spare`]).
    pub fn born_in_cgroup(&self) -> bool {
        self.born_in_cgroup
    }

    /// Host PID of the container's init process.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }
    /// A pidfd for the init process (readable when it exits; reap with `waitid(P_PIDFD)`).
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }
    /// The poststop hooks and state, for the caller to run once the container is deleted
    /// ([`hooks::Poststop::run`]).
    pub fn poststop(&self) -> hooks::Poststop {
        self.poststop.clone()
    }
    /// Lets the process `execve` (the init runs the startContainer hooks first); returns once
    /// `execve` succeeded, or the error it reported. On error the process has exited and been
    /// reaped, and the cgroup is removed. Once it started, the poststart hooks run here; those
    /// that failed are returned (the spec makes them warnings, not errors).
    pub fn start(&mut self) -> Result<Vec<Error>, Error> {
        let Some(start) = self.start.take() else {
            return Err(Error::Sys {
                step: "start: already started",
                source: nix::Error::EALREADY,
            });
        };
        let written = nix::unistd::write(&start, &[1]);
        drop(start);
        let result = written
            .map_err(Error::sys("write start pipe"))
            .and_then(|_| recv(&self.status));
        match result {
            Ok(None) => {
                let state = self.state.json("running", Some(self.pid.as_raw()));
                let cwd = self.state.bundle_cstring();
                Ok(hooks::run_each(
                    hooks::Kind::Poststart,
                    &self.poststart,
                    &state,
                    cwd.as_deref(),
                ))
            }
            Ok(msg) => {
                let err = unexpected(msg, "execve");
                reap(self.pid);
                let _ = cgroups::kill_and_remove(&self.cgroups_path);
                Err(err)
            }
            Err(e) => {
                let _ = kill(self.pid, Signal::SIGKILL);
                reap(self.pid);
                let _ = cgroups::kill_and_remove(&self.cgroups_path);
                Err(e)
            }
        }
    }
    /// Gives up the pidfd (the caller owns reaping from then on).
    pub fn into_pidfd(self) -> OwnedFd {
        self.pidfd
    }
}

fn reap(pid: Pid) {
    loop {
        match nix::sys::wait::waitpid(pid, None) {
            Err(nix::Error::EINTR) => continue,
            _ => return,
        }
    }
}

/// Creates the container `id` described by `spec` (whose `root.path` is absolute or relative to
/// `bundle`). Namespaces with a `path` are joined, the others are created; the cgroup at
/// `linux.cgroupsPath` is created with `linux.resources` applied; the process is a child of the
/// caller. The spec's prestart, createRuntime and createContainer hooks run on the way
/// ([`crate::hooks`]). On error nothing is left behind (no process, no cgroup); once those
/// hooks began, a failed create runs the poststop hooks too (the lifecycle's delete), and a
/// failure of theirs is added to the error.
pub fn create(spec: &Spec, bundle: &Path, id: &str, stdio: Stdio) -> Result<Container, Error> {
    create_with(spec, bundle, id, stdio, &mut None)
}

/// [`create`], taking the intermediate from `spare` when it has one whose cgroup can become
/// the container's ([`Spare::fits`]); a spare that was tried is used up either way.
pub fn create_with(
    spec: &Spec,
    bundle: &Path,
    id: &str,
    stdio: Stdio,
    spare: &mut Option<Spare>,
) -> Result<Container, Error> {
    let plan = plan::build(spec, bundle, id)?;
    let stdio = stdio.prepare()?;
    let (status_r, status_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(Error::sys("pipe"))?;
    let (sync_r, sync_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(Error::sys("pipe"))?;
    let (start_r, start_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(Error::sys("pipe"))?;

    // Each child keeps only what it uses; everything else the caller holds (other containers'
    // logs and pipes, the shim's sockets, libraries' cached handles) is closed before the
    // process can be seen from the container.
    let pipes = [status_w.as_raw_fd(), start_r.as_raw_fd()];
    let keep_init = KeepFds::default()
        .with(pipes)
        .with(stdio.child.fds())
        .with(plan.init_fds());
    let keep_intermediate = KeepFds::default()
        .with(pipes)
        .with([sync_r.as_raw_fd()])
        .with(stdio.child.fds())
        .with(plan.init_fds())
        .with(plan.namespace_fds());
    let keep_exec = KeepFds::default().with(pipes);
    let fds = child::ChildFds {
        status: &status_w,
        sync: &sync_r,
        start: &start_r,
        stdio: &stdio.child,
        keep_intermediate: &keep_intermediate,
        keep_init: &keep_init,
        keep_exec: &keep_exec,
    };
    // On a v1 or hybrid host, from a spare whose cgroup becomes the container's; else forked.
    let mut from_spare = None;
    if let Some(mut s) = spare.take_if(|s| s.fits(&plan.cgroups_path)) {
        match s.launch(&plan.cgroups_path, &|| {
            child::intermediate(&plan, &fds);
        }) {
            Ok(pid) => from_spare = Some(pid),
            Err((e, false)) => tracing::debug!(error = %e, "the spare was not used"),
            Err((e, true)) => {
                drop(s);
                let _ = cgroups::kill_and_remove(&plan.cgroups_path);
                return Err(e);
            }
        }
    }
    let (a, born_in_cgroup) = match from_spare {
        Some(a) => {
            if let Err(e) = cgroups::apply_adopted(&plan.cgroups_path, &plan.resources, a) {
                let _ = kill(a, Signal::SIGKILL);
                reap(a);
                let _ = cgroups::kill_and_remove(&plan.cgroups_path);
                return Err(e);
            }
            (a, true)
        }
        None => fork_intermediate(&plan, &fds)?,
    };
    drop((status_w, sync_r, start_r));
    let console = stdio.after_fork();

    // Set once the init reached its create-time hooks: from then on a failure is the
    // lifecycle's delete, poststop hooks included.
    let mut hooks_began = false;
    let fail = |init: Option<Pid>, err: Error, hooks_began: bool| -> Error {
        if let Some(b) = init {
            let _ = kill(b, Signal::SIGKILL);
            reap(b);
        }
        if let Err(e) = cgroups::kill_and_remove(&plan.cgroups_path) {
            tracing::warn!(error = %e, "cleaning up the cgroup of a failed container");
        }
        if !hooks_began || plan.hooks.poststop.is_empty() {
            return err;
        }
        let poststop = hooks::Poststop {
            hooks: plan.hooks.poststop.clone(),
            state: plan.state.clone(),
        };
        with_poststop_failures(err, poststop.run())
    };
    if let Err(e) = nix::unistd::write(&sync_w, &[1]) {
        let _ = kill(a, Signal::SIGKILL);
        reap(a);
        return Err(fail(
            None,
            Error::Sys {
                step: "write sync pipe",
                source: e,
            },
            false,
        ));
    }
    drop(sync_w);
    let msg = crate::report::recv_pid(&status_r, "the init's pid");
    reap(a);
    let (b, early) = match msg {
        Ok(got) => got,
        Err(e) => return Err(fail(None, e, false)),
    };
    let pidfd = match sys::pidfd_open(b) {
        Ok(fd) => fd,
        Err(e) => {
            return Err(fail(
                Some(b),
                Error::Sys {
                    step: "pidfd_open",
                    source: e,
                },
                false,
            ));
        }
    };
    // The init may have reported before the intermediate sent its pid.
    let mut setup = match early {
        Some(m) => Ok(Some(m)),
        None => recv(&status_r),
    };
    if let Ok(Some(Msg::Hooks)) = setup {
        hooks_began = true;
        let state = plan.state.json("creating", Some(b.as_raw()));
        let cwd = plan.bundle_c.as_deref();
        let ran = hooks::run_all(hooks::Kind::Prestart, &plan.hooks.prestart, &state, cwd)
            .and_then(|()| {
                hooks::run_all(
                    hooks::Kind::CreateRuntime,
                    &plan.hooks.create_runtime,
                    &state,
                    cwd,
                )
            });
        if let Err(f) = ran {
            return Err(fail(Some(b), f.into(), true));
        }
        if let Err(e) = nix::unistd::write(&start_w, &[1]) {
            let e = Error::Sys {
                step: "write start pipe (resume after createRuntime)",
                source: e,
            };
            return Err(fail(Some(b), e, true));
        }
        setup = recv(&status_r);
    }
    match setup {
        Ok(Some(Msg::Ready)) => {}
        Ok(other) => return Err(fail(Some(b), unexpected(other, "setup"), hooks_began)),
        Err(e) => return Err(fail(Some(b), e, hooks_began)),
    }
    let terminal = match console.as_ref().map(terminal::receive).transpose() {
        Ok(t) => t,
        Err(e) => return Err(fail(Some(b), e, hooks_began)),
    };
    if let Some(adj) = plan.process.oom_score_adj
        && let Err(e) = process::set_oom_score_adj(b, adj)
    {
        return Err(fail(Some(b), e, hooks_began));
    }
    Ok(Container {
        pid: b,
        pidfd,
        start: Some(start_w),
        status: status_r,
        cgroups_path: plan.cgroups_path,
        born_in_cgroup,
        terminal,
        poststart: plan.hooks.poststart,
        poststop: hooks::Poststop {
            hooks: plan.hooks.poststop,
            state: plan.state.clone(),
        },
        state: plan.state,
    })
}

/// Forks the intermediate into the container's cgroup: on a cgroup v2 host born in it, made
/// beforehand; elsewhere (or on a kernel without `CLONE_INTO_CGROUP`) moved in after the fork,
/// the cgroup made with its limits. Returns its PID and whether it was born there.
fn fork_intermediate(plan: &plan::Plan, fds: &child::ChildFds<'_>) -> Result<(Pid, bool), Error> {
    let into = cgroups::prepare_v2(&plan.cgroups_path, &plan.resources);
    let forked = sys::fork_maybe_into(into.as_ref().map(AsFd::as_fd));
    drop(into);
    let (a, born_in) = match forked {
        Ok((Forked::Child, _)) => child::intermediate(plan, fds),
        Ok((Forked::Parent(pid), born_in)) => (pid, born_in),
        Err(e) => {
            let _ = cgroups::kill_and_remove(&plan.cgroups_path);
            return Err(Error::Sys {
                step: "fork",
                source: e,
            });
        }
    };
    if !born_in && let Err(e) = cgroups::create(&plan.cgroups_path, &plan.resources, a) {
        let _ = kill(a, Signal::SIGKILL);
        reap(a);
        return Err(e);
    }
    Ok((a, born_in))
}

/// Adds the poststop hooks that failed while a failed create was undone to its error.
fn with_poststop_failures(err: Error, failures: Vec<Error>) -> Error {
    if failures.is_empty() {
        return err;
    }
    let also: Vec<String> = failures.iter().map(ToString::to_string).collect();
    match err {
        Error::Hook { kind, path, reason } => Error::Hook {
            kind,
            path,
            reason: format!("{reason} (then {})", also.join("; ")),
        },
        other => {
            for f in &also {
                tracing::warn!(error = %f, "poststop hook of a failed create");
            }
            other
        }
    }
}
