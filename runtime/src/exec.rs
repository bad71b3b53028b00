//! Starting an extra process inside a running container.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxSeccomp, Process, Spec};

use crate::container::{ChildStdio, Stdio};
use crate::process::ProcessPlan;
use crate::report::{ChildResult, Msg, Step, recv, send, unexpected};
use crate::sys::{self, Forked, KeepFds};
use crate::{Error, cgroups};

/// A process started by [`spawn`]; a child of the caller.
pub struct Spawned {
    /// Host PID.
    pub pid: i32,
    /// A pidfd for it (reap with `waitid(P_PIDFD)`).
    pub pidfd: OwnedFd,
    /// The controller side of its terminal, for [`Stdio::Terminal`].
    pub terminal: Option<OwnedFd>,
    /// Cloned straight into the container's cgroup (cgroup v2, `CLONE_INTO_CGROUP`) rather
    /// than moved there after the fork.
    pub born_in_cgroup: bool,
}

/// A running container as an exec joins it: its init, its cgroup, and the confinement every
/// process started in it gets (the init's `process` and the spec's `linux.seccomp`), so no
/// caller can start a process in a container that is confined less than its init.
#[derive(Debug, Clone)]
pub struct Target {
    /// Host PID of the container's init.
    pub init_pid: i32,
    /// The container's cgroup (`linux.cgroupsPath`).
    pub cgroups_path: PathBuf,
    init: Process,
    seccomp: Option<LinuxSeccomp>,
}

impl Target {
    /// The container created from `spec` whose init has host PID `init_pid`.
    pub fn of(spec: &Spec, init_pid: i32) -> Result<Target, Error> {
        let linux = spec.linux().as_ref();
        let cgroups_path = linux
            .and_then(|l| l.cgroups_path().clone())
            .ok_or_else(|| Error::InvalidSpec("linux.cgroupsPath missing".into()))?;
        let init = spec
            .process()
            .clone()
            .ok_or_else(|| Error::InvalidSpec("process missing".into()))?;
        Ok(Target {
            init_pid,
            cgroups_path,
            init,
            seccomp: linux.and_then(|l| l.seccomp().clone()),
        })
    }

    /// The process an exec runs: what to run (args, env, cwd, terminal) from `requested`,
    /// every confinement from the init (user, groups, umask, capabilities, `no_new_privs`,
    /// rlimits, AppArmor profile, SELinux label, `oom_score_adj`).
    pub fn confined(&self, requested: &Process) -> Process {
        let mut p = self.init.clone();
        p.set_args(requested.args().clone());
        p.set_command_line(requested.command_line().clone());
        p.set_env(requested.env().clone());
        p.set_cwd(requested.cwd().clone());
        p.set_terminal(requested.terminal());
        p.set_console_size(requested.console_size());
        p
    }
}

/// The namespaces of `pid` that differ from the caller's, in `setns` order.
fn differing_namespaces(pid: i32) -> Result<CloneFlags, Error> {
    let mut flags = CloneFlags::empty();
    for (name, flag) in [
        ("user", CloneFlags::CLONE_NEWUSER),
        ("mnt", CloneFlags::CLONE_NEWNS),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("net", CloneFlags::CLONE_NEWNET),
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
    ] {
        let theirs = format!("/proc/{pid}/ns/{name}");
        let ours = format!("/proc/self/ns/{name}");
        let t = std::fs::metadata(&theirs).map_err(Error::io(&theirs))?;
        let Ok(o) = std::fs::metadata(&ours) else {
            continue;
        };
        if (t.dev(), t.ino()) != (o.dev(), o.ino()) {
            flags |= flag;
        }
    }
    Ok(flags)
}

/// Starts `requested` inside `target`, confined exactly like the container's init (see
/// [`Target`]; the seccomp filter too, as runc does for `exec`): joins every namespace of the
/// init that differs from the caller's (user, mnt, pid, net, ipc, uts, cgroup), joins the
/// cgroup, applies the process (cwd, env, user, capabilities, no_new_privs, rlimits, terminal)
/// and execs. Returns once `execve` succeeded.
pub fn spawn(target: &Target, requested: &Process, stdio: Stdio) -> Result<Spawned, Error> {
    let init_pid = target.init_pid;
    let cgroups_path = target.cgroups_path.as_path();
    let plan =
        ProcessPlan::new(&target.confined(requested))?.with_seccomp(target.seccomp.as_ref())?;
    let init_pidfd =
        sys::pidfd_open(Pid::from_raw(init_pid)).map_err(Error::sys("pidfd_open init"))?;
    let flags = differing_namespaces(init_pid)?;
    let stdio = stdio.prepare()?;
    let (status_r, status_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(Error::sys("pipe"))?;
    let (sync_r, sync_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(Error::sys("pipe"))?;

    // Each child keeps only what it uses (see `container::create`).
    let keep = Keep {
        intermediate: KeepFds::default()
            .with([
                init_pidfd.as_raw_fd(),
                sync_r.as_raw_fd(),
                status_w.as_raw_fd(),
            ])
            .with(stdio.child.fds()),
        process: KeepFds::default()
            .with([status_w.as_raw_fd()])
            .with(stdio.child.fds()),
        exec: KeepFds::default().with([status_w.as_raw_fd()]),
    };
    // Born in the container's cgroup on a cgroup v2 host, else moved there after the fork.
    let into = cgroups::open_v2(cgroups_path);
    let forked = sys::fork_maybe_into(into.as_ref().map(AsFd::as_fd));
    drop(into);
    let (a, born_in_cgroup) = match forked.map_err(Error::sys("fork"))? {
        (Forked::Child, _) => sys::run_child(|| {
            let r = intermediate(
                &plan,
                &init_pidfd,
                flags,
                &sync_r,
                &status_w,
                &stdio.child,
                &keep,
            );
            match r {
                Ok(()) => 0,
                Err(e) => {
                    send(&status_w, &Msg::Failed(e));
                    1
                }
            }
        }),
        (Forked::Parent(pid), born_in) => (pid, born_in),
    };
    drop((status_w, sync_r));
    let console = stdio.after_fork();
    let abort_a = |e: Error| {
        let _ = kill(a, Signal::SIGKILL);
        reap(a);
        e
    };
    if !born_in_cgroup {
        cgroups::join(cgroups_path, a).map_err(abort_a)?;
    }
    nix::unistd::write(&sync_w, &[1]).map_err(|e| {
        abort_a(Error::Sys {
            step: "write sync pipe",
            source: e,
        })
    })?;
    drop(sync_w);
    let msg = crate::report::recv_pid(&status_r, "the process's pid");
    reap(a);
    let (b, early) = msg?;
    let pidfd = match sys::pidfd_open(b) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = kill(b, Signal::SIGKILL);
            reap(b);
            return Err(Error::Sys {
                step: "pidfd_open",
                source: e,
            });
        }
    };
    // The process may have failed before the intermediate sent its pid.
    let result = match early {
        Some(m) => Ok(Some(m)),
        None => recv(&status_r),
    };
    if let (Ok(None), Some(adj)) = (&result, plan.oom_score_adj)
        && let Err(e) = crate::process::set_oom_score_adj(b, adj)
    {
        tracing::warn!(error = %e, "setting oom_score_adj of an exec'd process");
    }
    let terminal = match (result, &console) {
        (Ok(None), Some(socket)) => crate::terminal::receive(socket).map(Some),
        (Ok(None), None) => Ok(None),
        (Ok(m), _) => Err(unexpected(m, "execve")),
        (Err(e), _) => Err(e),
    };
    match terminal {
        Ok(terminal) => Ok(Spawned {
            pid: b.as_raw(),
            pidfd,
            terminal,
            born_in_cgroup,
        }),
        Err(err) => {
            let _ = kill(b, Signal::SIGKILL);
            reap(b);
            Err(err)
        }
    }
}

/// The descriptors each forked process keeps.
struct Keep {
    /// The intermediate: the init's pidfd (for `setns`), the pipes, stdio.
    intermediate: KeepFds,
    /// The new process, born in the container's PID namespace: its status pipe and stdio.
    process: KeepFds,
    /// The new process once its stdio is in place: the status pipe (close-on-exec).
    exec: KeepFds,
}

fn intermediate(
    plan: &ProcessPlan,
    init_pidfd: &OwnedFd,
    flags: CloneFlags,
    sync: &OwnedFd,
    status: &OwnedFd,
    stdio: &ChildStdio,
    keep: &Keep,
) -> ChildResult {
    // Non-dumpable before it joins anything (the new process inherits it until execve).
    sys::set_non_dumpable().step("PR_SET_DUMPABLE")?;
    keep.intermediate
        .close_others()
        .step("close inherited descriptors")?;
    let mut b = [0u8; 1];
    match nix::unistd::read(sync.as_raw_fd(), &mut b) {
        Ok(1) => {}
        Ok(_) => return Err(Errno::ECANCELED).step("wait for cgroup"),
        Err(e) => return Err(e).step("wait for cgroup"),
    }
    if !flags.is_empty() {
        nix::sched::setns(init_pidfd, flags).step("setns into the container")?;
    }
    keep.process.close_others().step("close the init's pidfd")?;
    match sys::clone_parent().step("clone")? {
        Forked::Child => sys::run_child(|| {
            let r = (|| {
                match stdio {
                    ChildStdio::Fds(fds) => plan.setup_stdio(*fds)?,
                    ChildStdio::Terminal(socket) => {
                        // The container's /dev/ptmx: setns put us in its mount namespace.
                        let ptmx = nix::fcntl::open(
                            "/dev/ptmx",
                            crate::terminal::PTMX_FLAGS,
                            nix::sys::stat::Mode::empty(),
                        )
                        .step("open /dev/ptmx")?;
                        // SAFETY: `ptmx` was just returned by open(2); nobody else owns it.
                        #[allow(unsafe_code)]
                        let ptmx =
                            unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(ptmx) };
                        let replica = crate::terminal::make(ptmx, *socket)?;
                        let fd = replica.as_raw_fd();
                        plan.setup_stdio([fd, fd, fd])?
                    }
                }
                keep.exec.close_others().step("close descriptors")?;
                plan.apply_rlimits()?;
                plan.apply_credentials()?;
                plan.chdir()
            })();
            match r {
                Ok(()) => plan.exec(status),
                Err(e) => {
                    send(status, &Msg::Failed(e));
                    1
                }
            }
        }),
        Forked::Parent(pid) => {
            send(status, &Msg::Pid(pid.as_raw()));
            Ok(())
        }
    }
}

fn reap(pid: Pid) {
    loop {
        match nix::sys::wait::waitpid(pid, None) {
            Err(Errno::EINTR) => continue,
            _ => return,
        }
    }
}
