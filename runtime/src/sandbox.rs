//! A pod's shared namespaces, pinned to files so containers can join them by path.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::Error;
use crate::report::{ChildResult, Msg, Step, recv, send, unexpected};
use crate::sys::{self, Forked};
use crate::userns::IdMappings;

/// What to create for a pod.
pub struct PodNamespaces<'a> {
    /// Create a network namespace (false: the pod uses the host's).
    pub network: bool,
    /// Create an IPC namespace (false: host IPC).
    pub ipc: bool,
    /// Create a UTS namespace and set this hostname in it (None: host UTS).
    pub hostname: Option<&'a str>,
    /// Namespaced sysctls to set inside (`net.*` need `network`, `kernel.shm*`/`kernel.msg*`/
    /// `kernel.sem`/`fs.mqueue.*` need `ipc`); anything else is `InvalidSpec`.
    pub sysctls: &'a [(String, String)],
    /// A user namespace of the pod's own with these mappings (None: the host's). The other
    /// namespaces are then created inside it, so they belong to it.
    pub userns: Option<&'a IdMappings>,
}

/// Files that pin a pod's namespaces (`dir/net`, `dir/ipc`, `dir/uts`, `dir/user`), each
/// bind-mounted from `/proc/<pid>/ns/<kind>` of a short-lived child. In a new network namespace
/// `lo` is up.
pub struct Pinned {
    /// The user namespace pin, if one was created.
    pub user: Option<PathBuf>,
    /// The network namespace pin, if one was created.
    pub net: Option<PathBuf>,
    /// The IPC namespace pin, if one was created.
    pub ipc: Option<PathBuf>,
    /// The UTS namespace pin, if one was created.
    pub uts: Option<PathBuf>,
}

fn sysctl_path(ns: &PodNamespaces<'_>, key: &str) -> Result<PathBuf, Error> {
    let ok = if key.starts_with("net.") {
        ns.network
    } else if key.starts_with("kernel.shm")
        || key.starts_with("kernel.msg")
        || key == "kernel.sem"
        || key.starts_with("fs.mqueue.")
    {
        ns.ipc
    } else {
        false
    };
    if !ok || key.contains('/') || key.split('.').any(|p| p.is_empty() || p == "..") {
        return Err(Error::InvalidSpec(format!(
            "sysctl {key}: not namespaced, or its namespace is not created for the pod"
        )));
    }
    Ok(Path::new("/proc/sys").join(key.replace('.', "/")))
}

/// Creates the namespaces and pins them under `dir` (created if missing). On error nothing is
/// left mounted.
pub fn pin_namespaces(dir: &Path, ns: &PodNamespaces<'_>) -> Result<Pinned, Error> {
    let sysctls = ns
        .sysctls
        .iter()
        .map(|(k, v)| Ok((sysctl_path(ns, k)?, v.clone())))
        .collect::<Result<Vec<_>, Error>>()?;
    let mut kinds = Vec::new();
    let mut flags = CloneFlags::empty();
    if ns.network {
        flags |= CloneFlags::CLONE_NEWNET;
        kinds.push("net");
    }
    if ns.ipc {
        flags |= CloneFlags::CLONE_NEWIPC;
        kinds.push("ipc");
    }
    if ns.hostname.is_some() {
        flags |= CloneFlags::CLONE_NEWUTS;
        kinds.push("uts");
    }
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let mut pinned = Pinned {
        user: None,
        net: None,
        ipc: None,
        uts: None,
    };
    let userns = ns.userns.map(crate::userns::create).transpose()?;
    if let Some(fd) = &userns {
        let target = dir.join("user");
        pin(&format!("/proc/self/fd/{}", fd.as_raw_fd()), &target)?;
        pinned.user = Some(target);
    }
    let unpin_user = |pinned: &Pinned| {
        if let Some(p) = &pinned.user {
            let _ = umount2(p, MntFlags::MNT_DETACH);
            let _ = std::fs::remove_file(p);
        }
    };
    if kinds.is_empty() {
        return Ok(pinned);
    }
    let (status_r, status_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(Error::sys("pipe"))?;
    let (hold_r, hold_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(Error::sys("pipe"))?;
    let child = match sys::fork().map_err(Error::sys("fork"))? {
        Forked::Child => sys::run_child(|| {
            drop(hold_w);
            let r = (|| -> ChildResult {
                if let Some(fd) = &userns {
                    nix::sched::setns(fd, CloneFlags::CLONE_NEWUSER).step("setns user")?;
                    crate::userns::become_root()?;
                }
                nix::sched::unshare(flags).step("unshare")?;
                if let Some(h) = ns.hostname {
                    nix::unistd::sethostname(h).step("sethostname")?;
                }
                if ns.network {
                    sys::interface_up("lo").step("bring lo up")?;
                }
                for (path, value) in &sysctls {
                    std::fs::write(path, value)
                        .step_with(|| format!("write {}", path.display()))?;
                }
                Ok(())
            })();
            if let Err(e) = r {
                send(&status_w, &Msg::Failed(e));
                return 1;
            }
            send(&status_w, &Msg::Ready);
            let mut b = [0u8; 1];
            while let Err(Errno::EINTR) = nix::unistd::read(hold_r.as_raw_fd(), &mut b) {}
            0
        }),
        Forked::Parent(pid) => pid,
    };
    drop((status_w, hold_r));
    let ready = recv(&status_r);
    if !matches!(ready, Ok(Some(Msg::Ready))) {
        let _ = kill(child, Signal::SIGKILL);
        drop(hold_w);
        reap(child);
        unpin_user(&pinned);
        return Err(match ready {
            Ok(m) => unexpected(m, "namespaces"),
            Err(e) => e,
        });
    }
    let mut done: Vec<PathBuf> = Vec::new();
    let mut error = None;
    for kind in &kinds {
        let target = dir.join(kind);
        match pin(&format!("/proc/{child}/ns/{kind}"), &target) {
            Ok(()) => done.push(target),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    drop(hold_w);
    reap(child);
    if let Some(e) = error {
        for p in done {
            let _ = umount2(&p, MntFlags::MNT_DETACH);
            let _ = std::fs::remove_file(&p);
        }
        unpin_user(&pinned);
        return Err(e);
    }
    for p in done {
        match p.file_name().and_then(|n| n.to_str()) {
            Some("net") => pinned.net = Some(p),
            Some("ipc") => pinned.ipc = Some(p),
            _ => pinned.uts = Some(p),
        }
    }
    Ok(pinned)
}

/// Bind-mounts the namespace file `source` onto a new empty file `target`.
fn pin(source: &str, target: &Path) -> Result<(), Error> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(target)
        .map_err(Error::io(target))?;
    if let Err(e) = mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    ) {
        let _ = std::fs::remove_file(target);
        return Err(Error::Sys {
            step: "bind-mount namespace",
            source: e,
        });
    }
    Ok(())
}

/// Unmounts and deletes whatever pins exist under `dir`; absent pins are fine.
pub fn unpin_namespaces(dir: &Path) -> Result<(), Error> {
    for kind in ["net", "ipc", "uts", "pid", "user"] {
        let p = dir.join(kind);
        if std::fs::symlink_metadata(&p).is_err() {
            continue;
        }
        match umount2(&p, MntFlags::MNT_DETACH) {
            Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
            Err(e) => {
                return Err(Error::Sys {
                    step: "unmount namespace pin",
                    source: e,
                });
            }
        }
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Io { path: p, source: e }),
        }
    }
    Ok(())
}

/// Starts the init of a new PID namespace shared by a pod's containers: a forked child that
/// reaps orphans and exits on SIGTERM. Also pins the namespace as `dir/pid`.
pub struct PidHolder {
    /// Host PID of the holder (a child of the caller).
    pub pid: i32,
    /// A pidfd for it.
    pub pidfd: OwnedFd,
}

/// Starts a [`PidHolder`] and pins its PID namespace as `dir/pid` (`dir` is created if
/// missing). On error the holder is killed and reaped and nothing stays mounted.
pub fn spawn_pid_holder(dir: &Path) -> Result<PidHolder, Error> {
    spawn_pid_holder_in(dir, None)
}

/// [`spawn_pid_holder`] with the PID namespace created inside the user namespace pinned at
/// `userns` (so the pod's containers, in that user namespace, can mount its `/proc`); the
/// holder is that namespace's root.
pub fn spawn_pid_holder_in(dir: &Path, userns: Option<&Path>) -> Result<PidHolder, Error> {
    std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
    let userns = userns
        .map(|p| {
            nix::fcntl::open(
                p,
                OFlag::O_RDONLY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map(owned)
            .map_err(|e| Error::Io {
                path: p.to_path_buf(),
                source: e.into(),
            })
        })
        .transpose()?;
    let null = crate::container::open_dev_null()?;
    let (status_r, status_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(Error::sys("pipe"))?;
    let a = match sys::fork().map_err(Error::sys("fork"))? {
        Forked::Child => sys::run_child(|| {
            let r = (|| -> ChildResult<Pid> {
                // Blocked before the holder exists, so no signal can reach the caller's
                // handlers (inherited by the holder) in the window before it waits.
                SigSet::all().thread_block().step("block signals")?;
                // The holder never execs: it stays non-dumpable for its whole life, so the
                // pod's processes cannot open its /proc files (its root is the host's).
                sys::set_non_dumpable().step("PR_SET_DUMPABLE")?;
                if let Some(fd) = &userns {
                    nix::sched::setns(fd, CloneFlags::CLONE_NEWUSER).step("setns user")?;
                    crate::userns::become_root()?;
                }
                nix::sched::unshare(CloneFlags::CLONE_NEWPID).step("unshare pid")?;
                // The caller, which the holder must not outlive (see `holder`).
                let caller = sys::pidfd_open(nix::unistd::getppid()).step("pidfd_open caller")?;
                match sys::clone_parent().step("clone holder")? {
                    Forked::Child => holder(null.as_raw_fd(), caller.as_raw_fd()),
                    Forked::Parent(pid) => Ok(pid),
                }
            })();
            match r {
                Ok(pid) => {
                    send(&status_w, &Msg::Pid(pid.as_raw()));
                    0
                }
                Err(e) => {
                    send(&status_w, &Msg::Failed(e));
                    1
                }
            }
        }),
        Forked::Parent(pid) => pid,
    };
    drop((status_w, null));
    let msg = recv(&status_r);
    reap(a);
    let h = match msg? {
        Some(Msg::Pid(pid)) => Pid::from_raw(pid),
        other => return Err(unexpected(other, "the holder's pid")),
    };
    let kill_h = |e: Error| {
        let _ = kill(h, Signal::SIGKILL);
        reap(h);
        e
    };
    let pidfd = sys::pidfd_open(h).map_err(|e| {
        kill_h(Error::Sys {
            step: "pidfd_open",
            source: e,
        })
    })?;
    pin(&format!("/proc/{h}/ns/pid"), &dir.join("pid")).map_err(kill_h)?;
    Ok(PidHolder {
        pid: h.as_raw(),
        pidfd,
    })
}

/// The holder: PID 1 of the new namespace. Never returns. It dies with the caller (a shim
/// killed with SIGKILL would otherwise leave it, and the pod's PID namespace, behind): the
/// kernel kills it when its parent dies, and `caller`, a pidfd of that parent taken before the
/// clone, tells whether the parent died before that was set up.
fn holder(null: i32, caller: i32) -> ! {
    sys::run_child(|| {
        if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() {
            return 1;
        }
        // Open until `close_range_from` below.
        let mut fds = [nix::poll::PollFd::new(
            sys::borrow(caller),
            nix::poll::PollFlags::POLLIN,
        )];
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).unwrap_or(0) > 0 {
            return 0;
        }
        let _ = nix::unistd::setsid();
        for fd in 0..3 {
            let _ = nix::unistd::dup2(null, fd);
        }
        let _ = sys::close_range_from(3, false);
        let mut set = SigSet::empty();
        set.add(Signal::SIGCHLD);
        set.add(Signal::SIGTERM);
        set.add(Signal::SIGINT);
        loop {
            match set.wait() {
                Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => return 0,
                _ => loop {
                    match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                        Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => break,
                        Err(Errno::EINTR) | Ok(_) => continue,
                        Err(_) => break,
                    }
                },
            }
        }
    })
}

#[allow(unsafe_code)]
fn owned(fd: std::os::fd::RawFd) -> OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` was just returned by open(2) and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn reap(pid: Pid) {
    loop {
        match waitpid(pid, None) {
            Err(Errno::EINTR) => continue,
            _ => return,
        }
    }
}
