//! A spare intermediate: a process that already sits in a cgroup of its own, from which a
//! container's intermediate is cloned later, so that on a v1 or hybrid host nothing is moved
//! into the container's cgroup while CreateContainer waits.
//!
//! Moving a process into a cgroup takes the kernel's threadgroup lock for writing, and the first
//! move after a quiet spell waits for an RCU grace period (about 8 ms on a 2-core VM; README,
//! "Container start-up latency"). cgroup v2 has `CLONE_INTO_CGROUP` for this
//! ([`crate::sys::fork_maybe_into`]); v1 hierarchies have no such call, but a v1 cgroup can be
//! renamed within its parent and keeps its processes. So a spare joins
//! `<parent>/corral-spare-<name>` in every v1 hierarchy ahead of time, waiting out the grace
//! period on nobody's request, and a create renames those directories to the container's cgroup
//! and has the spare clone the intermediate there.
//!
//! The spare shares the caller's memory, descriptor table and filesystem context
//! (`CLONE_VM | CLONE_FILES | CLONE_FS`, on a stack of its own): it costs no memory beyond the
//! few pages of that stack it touches. Its exit signal is `SIGCHLD` like a fork's: a process
//! cloned with `CLONE_PARENT` takes its exit signal from the cloning process, not from the
//! flags, and the intermediate and the init after it must signal the caller when they exit. Sharing the memory, it makes raw system calls only: no libc wrapper
//! (which would write the caller's `errno`), no allocation, no lock. When told to go it clones
//! the intermediate with `CLONE_PARENT` (a child of the caller, with fork semantics: a copy of
//! the memory they share) while the caller waits in `poll` for the answer, so that copy is of
//! a caller doing nothing; then it reports the intermediate's PID and exits.
#![allow(unsafe_code)]

use std::ffi::{CString, c_int, c_void};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, Ordering};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;

use crate::{Error, cgroups, sys};

/// The spare's stack: the intermediate and the init cloned from it run on copies of it, so it
/// is as large as a thread's (only the pages touched are ever allocated).
const STACK_SIZE: usize = 8 << 20;

/// How long a create waits for a spare still joining its cgroup before doing without it.
const READY_WAIT_MS: u16 = 1000;

/// The spare cgroup of the pod called `name` under `parent` (a pod's cgroup, where its
/// containers' cgroups go): what [`Spare::spawn`] makes, for a clean-up that finds it left
/// behind (by a shim that was killed).
pub fn cgroups_path(parent: &Path, name: &str) -> PathBuf {
    parent.join(format!("corral-spare-{name}"))
}

/// What the spare reads; lives (boxed) until the spare is reaped.
struct Shared {
    /// `cgroup.procs` of each of the spare's directories.
    procs: Vec<CString>,
    ready_w: RawFd,
    go_r: RawFd,
    ack_w: RawFd,
    /// The caller's PID: the spare ends at once if its parent is already someone else.
    caller: i32,
    /// A `*const &dyn Fn()`: what the intermediate runs, set before "go".
    job: AtomicPtr<c_void>,
}

/// An anonymous mapping for the spare's stack, with a guard page below it.
struct Stack {
    base: *mut c_void,
    len: usize,
}

impl Stack {
    fn new(len: usize) -> Result<Stack, Error> {
        let page = 4096;
        // SAFETY: a fresh private anonymous mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len + page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Error::sys("mmap spare stack")(Errno::last()));
        }
        let stack = Stack {
            base,
            len: len + page,
        };
        // SAFETY: the lowest page of the mapping just made.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            return Err(Error::sys("mprotect spare stack guard")(Errno::last()));
        }
        Ok(stack)
    }

    fn top(&self) -> *mut c_void {
        // The stack grows down from the end of the mapping (page-aligned, so 16-byte aligned).
        self.base.wrapping_byte_add(self.len)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; its user (the spare) has been reaped.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Is a raw system call's return value an error (`-4095..=-1`)?
fn failed(ret: usize) -> bool {
    ret > usize::MAX - 4095
}

/// The spare's whole life. Raw system calls only (see the module's documentation).
extern "C" fn spare_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Shared` the caller keeps alive until it has reaped this process.
    let sh = unsafe { &*(arg as *const Shared) };
    let call = |nr: libc::c_long, a: usize, b: usize, c: usize| -> usize {
        // SAFETY: plain system calls on integers and on pointers into `Shared` or this stack,
        // which outlive them.
        unsafe { syscalls::raw::syscall3(nr as usize, a, b, c) }
    };
    call(
        libc::SYS_prctl,
        libc::PR_SET_PDEATHSIG as usize,
        libc::SIGKILL as usize,
        0,
    );
    // SAFETY: no arguments.
    if unsafe { syscalls::raw::syscall0(libc::SYS_getppid as usize) } != sh.caller as usize {
        return 1;
    }
    let mut ok: u8 = 1;
    for procs in &sh.procs {
        // `openat(AT_FDCWD, ..)`: x86_64's `open` does not exist on every architecture.
        // SAFETY: a NUL-terminated path in `Shared`.
        let fd = unsafe {
            syscalls::raw::syscall4(
                libc::SYS_openat as usize,
                libc::AT_FDCWD as usize,
                procs.as_ptr() as usize,
                (libc::O_WRONLY | libc::O_CLOEXEC) as usize,
                0,
            )
        };
        if failed(fd) {
            ok = 0;
            break;
        }
        // "0" moves the writer.
        let wrote = call(libc::SYS_write, fd, b"0".as_ptr() as usize, 1);
        call(libc::SYS_close, fd, 0, 0);
        if failed(wrote) {
            ok = 0;
            break;
        }
    }
    call(
        libc::SYS_write,
        sh.ready_w as usize,
        &ok as *const u8 as usize,
        1,
    );
    if ok == 0 {
        return 1;
    }
    let mut go: u8 = 0;
    loop {
        let r = call(
            libc::SYS_read,
            sh.go_r as usize,
            &mut go as *mut u8 as usize,
            1,
        );
        if r == (-libc::EINTR) as usize {
            continue;
        }
        if r != 1 {
            return 0;
        }
        break;
    }
    let job = sh.job.load(Ordering::Acquire) as *const &dyn Fn();
    if job.is_null() {
        return 1;
    }
    // Fork semantics (null stack, no CLONE_VM), the caller's child, born in this cgroup.
    // SAFETY: integer arguments; the child continues on a copy of this stack.
    let pid = unsafe {
        syscalls::raw::syscall5(
            libc::SYS_clone as usize,
            (libc::CLONE_PARENT | libc::SIGCHLD) as usize,
            0,
            0,
            0,
            0,
        )
    };
    if pid == 0 {
        // The intermediate: a process of its own now, with a copy of the caller's memory taken
        // while the caller waited in `poll`, so it may use everything as a forked child does.
        // SAFETY: the caller stored a pointer to a `&dyn Fn()` that lives across its `poll`.
        let job: &dyn Fn() = unsafe { *job };
        job();
        sys::exit(125);
    }
    let answer: i32 = if failed(pid) {
        -((pid as isize).unsigned_abs() as i32)
    } else {
        pid as i32
    };
    call(
        libc::SYS_write,
        sh.ack_w as usize,
        &answer as *const i32 as usize,
        4,
    );
    0
}

/// A spare intermediate waiting in its cgroup (see the module's documentation).
pub struct Spare {
    pid: Pid,
    pidfd: OwnedFd,
    /// Reaped already (or never to be waited for again).
    reaped: bool,
    /// Its cgroup (cgroupfs path) and that cgroup's directory in each v1 hierarchy.
    path: PathBuf,
    dirs: Vec<(PathBuf, PathBuf)>,
    /// The directories were renamed to a container's cgroup: nothing of the spare to remove.
    renamed: bool,
    ready_r: OwnedFd,
    go_w: OwnedFd,
    ack_r: OwnedFd,
    /// The spare's ends, kept open for it (the descriptor table is shared).
    _theirs: [OwnedFd; 3],
    // Dropped after the spare is reaped (field order: `Drop::drop` reaps first).
    shared: Box<Shared>,
    _stack: Stack,
}

impl std::fmt::Debug for Spare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spare")
            .field("pid", &self.pid)
            .field("path", &self.path)
            .finish()
    }
}

impl Spare {
    /// Starts a spare in `cgroups_path(parent, name)`, made in every v1 hierarchy; `None` on a
    /// cgroup v2 host, which needs none. The spare joins the cgroup on its own: the caller does
    /// not wait for that. The caller must be single-threaded (the crate's contract).
    pub fn spawn(parent: &Path, name: &str) -> Result<Option<Spare>, Error> {
        let path = cgroups_path(parent, name);
        // One left by a shim that was killed: its spare died with it.
        if cgroups::exists(&path)? {
            cgroups::kill_and_remove(&path)?;
        }
        let dirs = match cgroups::make_spare(&path) {
            Ok(d) if d.is_empty() => return Ok(None),
            Ok(d) => d,
            Err(e) => {
                let _ = cgroups::kill_and_remove(&path);
                return Err(e);
            }
        };
        let started = Self::start(path.clone(), dirs);
        if started.is_err() {
            let _ = cgroups::kill_and_remove(&path);
        }
        started.map(Some)
    }

    fn start(path: PathBuf, dirs: Vec<(PathBuf, PathBuf)>) -> Result<Spare, Error> {
        let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(Error::sys("pipe"));
        let (ready_r, ready_w) = pipe()?;
        let (go_r, go_w) = pipe()?;
        let (ack_r, ack_w) = pipe()?;
        let procs = dirs
            .iter()
            .map(|(_, d)| {
                CString::new(d.join("cgroup.procs").as_os_str().as_bytes())
                    .map_err(|_| Error::InvalidSpec(format!("{}: NUL in path", d.display())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let shared = Box::new(Shared {
            procs,
            ready_w: ready_w.as_raw_fd(),
            go_r: go_r.as_raw_fd(),
            ack_w: ack_w.as_raw_fd(),
            caller: std::process::id() as i32,
            job: AtomicPtr::new(std::ptr::null_mut()),
        });
        let stack = Stack::new(STACK_SIZE)?;
        let flags = libc::CLONE_VM | libc::CLONE_FILES | libc::CLONE_FS | libc::SIGCHLD;
        // SAFETY: `spare_main` touches only `shared` and its own stack, both kept alive until
        // it is reaped (`Drop`) or the process exits (`abandon`).
        let pid = unsafe {
            libc::clone(
                spare_main,
                stack.top(),
                flags,
                &*shared as *const Shared as *mut c_void,
            )
        };
        if pid == -1 {
            return Err(Error::sys("clone spare")(Errno::last()));
        }
        let pid = Pid::from_raw(pid);
        let pidfd = match sys::pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::__WALL);
                return Err(Error::sys("pidfd_open spare")(e));
            }
        };
        Ok(Spare {
            pid,
            pidfd,
            reaped: false,
            path,
            dirs,
            renamed: false,
            ready_r,
            go_w,
            ack_r,
            _theirs: [ready_w, go_r, ack_w],
            shared,
            _stack: stack,
        })
    }

    /// Whether the spare's cgroup can become `cgroups_path`: a rename stays in one parent.
    pub(crate) fn fits(&self, cgroups_path: &Path) -> bool {
        self.path.parent() == cgroups_path.parent()
    }

    /// Renames the spare's cgroup to `cgroups_path` and has the spare clone a process that
    /// runs `job` (which must not return) in it, a child of the caller. `Err((e, false))`:
    /// nothing was renamed or started, do without the spare. `Err((e, true))`: the cgroup was
    /// renamed and a process may have started in it: the create fails.
    pub(crate) fn launch(
        &mut self,
        cgroups_path: &Path,
        job: &dyn Fn(),
    ) -> Result<Pid, (Error, bool)> {
        let ready = self.wait_readable(&self.ready_r, READY_WAIT_MS);
        let mut byte = [0u8; 1];
        match ready {
            Ok(true)
                if nix::unistd::read(self.ready_r.as_raw_fd(), &mut byte) == Ok(1)
                    && byte[0] == 1 => {}
            Ok(_) => {
                return Err((
                    Error::Cgroup {
                        path: self.path.clone(),
                        message: "the spare did not join its cgroup".into(),
                    },
                    false,
                ));
            }
            Err(e) => return Err((e, false)),
        }
        cgroups::rename_spare(&self.dirs, cgroups_path).map_err(|e| (e, false))?;
        self.renamed = true;
        let job_ref: &dyn Fn() = job;
        self.shared.job.store(
            &job_ref as *const &dyn Fn() as *mut c_void,
            Ordering::Release,
        );
        // From "go" until the answer the caller only waits in `poll`: the spare clones the
        // intermediate meanwhile, as a copy of this process (see the module's documentation).
        let mut fds = [
            PollFd::new(self.ack_r.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN),
        ];
        let sent = nix::unistd::write(&self.go_w, &[1]);
        let polled = match sent {
            Ok(1) => loop {
                match poll(&mut fds, PollTimeout::NONE) {
                    Err(Errno::EINTR) => continue,
                    other => break other,
                }
            },
            Ok(_) => Err(Errno::EIO),
            Err(e) => Err(e),
        };
        let answered = fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN));
        let mut answer = [0u8; 4];
        let got = match polled {
            // Only when readable: the spare's end is this process's too, so no EOF comes.
            Ok(_) if answered => nix::unistd::read(self.ack_r.as_raw_fd(), &mut answer),
            Ok(_) => Ok(0),
            Err(e) => Err(e),
        }
        .map_err(Error::sys("spare answer"));
        if !matches!(got, Ok(4)) {
            let _ = kill(self.pid, Signal::SIGKILL);
        }
        self.reap();
        match got {
            Ok(4) => match i32::from_ne_bytes(answer) {
                pid if pid > 0 => Ok(Pid::from_raw(pid)),
                err => Err((
                    Error::sys("clone intermediate")(Errno::from_raw(-err)),
                    true,
                )),
            },
            Ok(_) => Err((
                Error::Cgroup {
                    path: cgroups_path.to_owned(),
                    message: "the spare ended without an answer".into(),
                },
                true,
            )),
            Err(e) => Err((e, true)),
        }
    }

    /// `fd` becomes readable within `ms` (the spare's exit also ends the wait).
    fn wait_readable(&self, fd: &OwnedFd, ms: u16) -> Result<bool, Error> {
        let mut fds = [
            PollFd::new(fd.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN),
        ];
        loop {
            match poll(&mut fds, PollTimeout::from(ms)) {
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("poll spare")(e)),
                Ok(_) => {
                    let ready =
                        |f: &PollFd| f.revents().is_some_and(|r| r.contains(PollFlags::POLLIN));
                    return Ok(ready(&fds[0]));
                }
            }
        }
    }

    /// Kills the spare without waiting for it, for a caller about to exit: the spare may be
    /// in its cgroup join, whose grace period a SIGKILL does not cut short. Its stack and the
    /// state it reads are left mapped (the process's exit frees them), and its cgroup is left
    /// to the owner of the parent (`cgroups_path` says where).
    pub fn abandon(self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        std::mem::forget(self);
    }

    fn reap(&mut self) {
        if self.reaped {
            return;
        }
        let _ = waitid(
            Id::PIDFd(self.pidfd.as_fd()),
            WaitPidFlag::WEXITED | WaitPidFlag::__WALL,
        );
        self.reaped = true;
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = kill(self.pid, Signal::SIGKILL);
            self.reap();
        }
        if !self.renamed {
            let _ = cgroups::kill_and_remove(&self.path);
        }
        // `shared` and `stack` go after this, the spare gone.
    }
}
