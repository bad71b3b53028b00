//! Thin wrappers over the few syscalls that nix 0.29 does not cover (or covers only as `unsafe`):
//! fork, `clone(CLONE_PARENT)`, `pidfd_open`, `openat2`, `close_range`, capabilities, ioctls.
//!
//! Every function here is only sound because the crate's caller is single-threaded (see the
//! crate documentation); the forked children run in a copy of that single thread.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::unistd::Pid;

/// Which side of a fork we are on.
pub(crate) enum Forked {
    Parent(Pid),
    Child,
}

/// `fork(2)`.
pub(crate) fn fork() -> Result<Forked, Errno> {
    // SAFETY: the crate's contract is that the caller is single-threaded, so the child is a
    // complete copy of the only thread; no lock can be held by a thread that does not exist in
    // the child.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child)),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

/// A fork whose child becomes a child of the calling process's *parent* (`CLONE_PARENT`), and
/// is created in the namespaces the caller prepared for its children (`unshare(CLONE_NEWPID)`,
/// `setns` on a PID namespace). The child gets fork semantics (copy of the address space, same
/// stack). Its exit signal is `SIGCHLD`, delivered to the grandparent.
pub(crate) fn clone_parent() -> Result<Forked, Errno> {
    // SAFETY: the process is single-threaded (crate contract), so the child is a complete copy.
    unsafe { raw_clone(libc::CLONE_PARENT) }
}

/// `struct clone_args` of `clone3(2)`, up to `cgroup` (`CLONE_ARGS_SIZE_VER2`, Linux 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP` (Linux 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// A fork whose child is born in the cgroup2 directory `cgroup` (`clone3` with
/// `CLONE_INTO_CGROUP`, a null stack: fork(2) semantics, exit signal `SIGCHLD`). Unlike a move
/// through `cgroup.procs`, this takes the kernel's cgroup threadgroup lock only for reading, so
/// it never waits for the RCU grace period a move after a quiet spell waits for. Fails on
/// kernels without it (`ENOSYS`, `E2BIG`, `EINVAL`) and on a cgroup that cannot take the
/// process (`EBUSY`, `EOPNOTSUPP`); the caller then forks and moves the child.
pub(crate) fn fork_into_cgroup(cgroup: BorrowedFd<'_>) -> Result<Forked, Errno> {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: `args` is a valid clone_args of the size passed, living across the call; a null
    // stack gives fork semantics; the process is single-threaded (crate contract), so the
    // child is a complete copy.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as i32))),
    }
}

/// A fork whose child is born in the cgroup2 directory `into` when one is given and the kernel
/// can ([`fork_into_cgroup`]), else a plain [`fork`]; `true` when the child was born there (the
/// caller moves it in otherwise).
pub(crate) fn fork_maybe_into(into: Option<BorrowedFd<'_>>) -> Result<(Forked, bool), Errno> {
    if let Some(dir) = into {
        match fork_into_cgroup(dir) {
            Ok(f) => return Ok((f, true)),
            Err(e) => {
                tracing::debug!(error = %e, "clone3 into the cgroup failed; forking and moving instead");
            }
        }
    }
    fork().map(|f| (f, false))
}

/// `clone(flags | SIGCHLD)` with a null stack and no `CLONE_VM`: fork(2) semantics (the child
/// continues on a copy of the stack), plus `flags` (`CLONE_PARENT`, `CLONE_NEW*`).
///
/// # Safety
/// The child is a copy of the calling thread only. Either the caller is single-threaded, or
/// the child makes only async-signal-safe calls (no lock, no allocator) before `_exit`/`execve`.
pub(crate) unsafe fn raw_clone(flags: libc::c_int) -> Result<Forked, Errno> {
    let flags = (flags | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: integer and null-pointer arguments; the contract above covers the child.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_int>(),
            std::ptr::null_mut::<libc::c_int>(),
            0 as libc::c_ulong,
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as i32))),
    }
}

/// `pidfd_open(pid, 0)`.
pub fn pidfd_open(pid: Pid) -> Result<OwnedFd, Errno> {
    // SAFETY: plain syscall with integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0 as libc::c_uint) };
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: the kernel returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// `openat2(dirfd, path, {flags, mode: 0, resolve})`.
pub(crate) fn openat2(
    dirfd: BorrowedFd<'_>,
    path: &CStr,
    flags: i32,
    resolve: u64,
) -> Result<OwnedFd, Errno> {
    // SAFETY: open_how is a plain C struct; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // SAFETY: `path` is NUL-terminated, `how` lives across the call and its size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: new descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// Borrows a raw descriptor the caller keeps open for the borrow's lifetime.
pub(crate) fn borrow<'a>(fd: RawFd) -> BorrowedFd<'a> {
    // SAFETY: callers pass a descriptor they opened and close only after the borrow ends.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

/// `MOUNT_ATTR_RDONLY` of `<linux/mount.h>`.
pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x1;
/// `MOUNT_ATTR_IDMAP` of `<linux/mount.h>`.
pub(crate) const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `struct mount_attr` of `mount_setattr(2)` (version 0).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | at_flags, {attr_set, userns_fd})`.
pub(crate) fn mount_setattr(
    fd: BorrowedFd<'_>,
    at_flags: libc::c_int,
    attr_set: u64,
    userns_fd: Option<BorrowedFd<'_>>,
) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns_fd.map_or(0, |u| u.as_raw_fd() as u64),
    };
    // SAFETY: the path is a NUL-terminated empty string, `attr` lives across the call and its
    // size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            (libc::AT_EMPTY_PATH | at_flags) as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// The mount at `fd` and every mount below it become read-only.
pub(crate) fn mount_setattr_readonly_recursive(fd: &OwnedFd) -> Result<(), Errno> {
    use std::os::fd::AsFd;
    mount_setattr(fd.as_fd(), libc::AT_RECURSIVE, MOUNT_ATTR_RDONLY, None)
}

/// Whether the kernel has `mount_setattr(2)` (Linux 5.12), which recursive read-only mounts
/// need: probed with an invalid descriptor, which fails with `EBADF` where the call exists.
pub fn has_mount_setattr() -> bool {
    // SAFETY: no pointer is dereferenced by the kernel for an invalid descriptor with a null
    // attribute and size 0.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            std::ptr::null::<libc::c_char>(),
            0,
            std::ptr::null::<MountAttr>(),
            0,
        )
    };
    ret == 0 || Errno::last() != Errno::ENOSYS
}

/// Marks every descriptor from `first` up close-on-exec (`close_range(.., CLOSE_RANGE_CLOEXEC)`),
/// or closes them when `cloexec` is false.
pub(crate) fn close_range_from(first: u32, cloexec: bool) -> Result<(), Errno> {
    let flags = if cloexec {
        libc::CLOSE_RANGE_CLOEXEC
    } else {
        0
    };
    // SAFETY: only called in a forked child that owns its whole fd table; closing descriptors
    // there cannot invalidate an OwnedFd that is used afterwards (the child only uses fds
    // below `first` or ones it marks close-on-exec).
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, flags) };
    if ret < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// Child side: closes every descriptor from 3 up except those in `keep`, which must be sorted
/// ascending (see [`KeepFds`]). No allocation, so it is safe in any forked child.
pub(crate) fn close_all_except(keep: &[RawFd]) -> Result<(), Errno> {
    let mut next: u32 = 3;
    for &fd in keep {
        let Ok(fd) = u32::try_from(fd) else { continue };
        if fd < next {
            continue;
        }
        if fd > next {
            close_range(next, fd - 1)?;
        }
        next = fd + 1;
    }
    close_range(next, u32::MAX)
}

fn close_range(first: u32, last: u32) -> Result<(), Errno> {
    // SAFETY: only called in a forked child that owns its whole fd table; the descriptors it
    // keeps using are exactly the ones `close_all_except` skips.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0 as libc::c_uint) };
    if ret < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// The descriptors a forked child keeps, collected (and sorted) in the caller before the
/// fork, so the child only reads them.
#[derive(Default)]
pub(crate) struct KeepFds(Vec<RawFd>);

impl KeepFds {
    /// Adds descriptors.
    pub fn with(mut self, fds: impl IntoIterator<Item = RawFd>) -> Self {
        self.0.extend(fds);
        self.0.sort_unstable();
        self.0.dedup();
        self
    }
    /// Child side: [`close_all_except`] these.
    pub fn close_others(&self) -> Result<(), Errno> {
        close_all_except(&self.0)
    }
}

/// `PR_SET_DUMPABLE 0`: until `execve` resets it, no process in the container's namespaces can
/// open this process's `/proc/<pid>` files (fd, root, cwd, environ, mem) or ptrace it.
pub(crate) fn set_non_dumpable() -> Result<(), Errno> {
    nix::sys::prctl::set_dumpable(false)
}

/// Sets every signal a process ignores back to its default action. An ignored signal stays
/// ignored across `execve` (a handled one is reset), so whatever the forking process ignores
/// (SIGPIPE in any Rust program, and the two real-time signals the C library keeps for itself,
/// which its `sigaction` refuses to touch) would be ignored in the container too. Raw
/// `rt_sigaction`, so those two are reached; async-signal-safe.
pub(crate) fn reset_ignored_signals() -> Result<(), Errno> {
    // The kernel's `struct sigaction` starts with the handler; 4 words hold every layout.
    const SIGSET_SIZE: usize = 8;
    let default = [0u64; 4]; // SIG_DFL, no flags, empty mask
    // The kernel's highest signal number (the C library's SIGRTMAX is the same).
    for signo in 1..=64 {
        if signo == libc::SIGKILL || signo == libc::SIGSTOP {
            continue;
        }
        let mut old = [0u64; 4];
        // SAFETY: a null new action only writes the current one into `old`, which is large
        // enough for the kernel's structure.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signo,
                std::ptr::null::<u64>(),
                old.as_mut_ptr(),
                SIGSET_SIZE,
            )
        };
        if ret != 0 {
            return Err(Errno::last());
        }
        if old[0] == libc::SIG_IGN as u64 {
            // SAFETY: `default` is a valid kernel `sigaction` for the duration of the call.
            let ret = unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    signo,
                    default.as_ptr(),
                    std::ptr::null_mut::<u64>(),
                    SIGSET_SIZE,
                )
            };
            if ret != 0 {
                return Err(Errno::last());
            }
        }
    }
    Ok(())
}

/// Whether the working directory is reachable from the process's root: `getcwd(2)` prefixes
/// "(unreachable)" to a directory outside it (an inherited host descriptor used as cwd, the
/// CVE-2024-21626 escape). No allocation.
pub(crate) fn cwd_inside_root() -> Result<bool, Errno> {
    let mut buf = [0u8; 4096];
    // SAFETY: `buf` is valid for writes of its length for the duration of the call.
    let ret = unsafe { libc::syscall(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    match ret {
        r if r < 0 => match Errno::last() {
            // Longer than a page: not unreachable (that prefix would fit), just deep.
            Errno::ENAMETOOLONG => Ok(true),
            Errno::ENOENT => Ok(false),
            e => Err(e),
        },
        _ => Ok(buf[0] == b'/'),
    }
}

/// `open_tree(OPEN_TREE_CLONE)`: a detached copy of the mount at `path` (with its submounts when
/// `recursive`), to attach elsewhere with `move_mount`. The path is resolved here, once.
pub(crate) fn open_tree_clone(path: &CStr, recursive: bool) -> Result<OwnedFd, Errno> {
    let rec = if recursive {
        libc::AT_RECURSIVE as libc::c_uint
    } else {
        0
    };
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | rec;
    // SAFETY: `path` is NUL-terminated and outlives the call; integer arguments otherwise.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: open_tree returned a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as RawFd) })
}

/// `F_DUPFD_CLOEXEC` to a descriptor >= `min`, returning the raw number (child-side use).
pub(crate) fn dup_cloexec_above(fd: RawFd, min: RawFd) -> Result<RawFd, Errno> {
    // SAFETY: fcntl with integer arguments.
    let ret = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    if ret < 0 { Err(Errno::last()) } else { Ok(ret) }
}

/// Makes `fd` (a terminal) the controlling terminal of the calling session leader.
pub(crate) fn set_controlling_tty(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an integer argument.
    let ret = unsafe { libc::ioctl(fd, libc::TIOCSCTTY, 0) };
    if ret < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// `prctl(PR_CAPBSET_DROP, cap)`.
pub(crate) fn capbset_drop(cap: u32) -> Result<(), Errno> {
    // SAFETY: integer-only prctl.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
    if ret < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)`.
pub(crate) fn ambient_raise(cap: u32) -> Result<(), Errno> {
    // SAFETY: integer-only prctl.
    let ret = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            cap as libc::c_ulong,
            0,
            0,
        )
    };
    if ret < 0 { Err(Errno::last()) } else { Ok(()) }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `capset(2)` for the calling thread with 64-bit masks.
pub(crate) fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and data are the v3 layout the kernel expects and live across the call.
    let ret =
        unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    if ret < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// Sets `IFF_UP` on the interface `name` in the calling process's network namespace.
pub(crate) fn interface_up(name: &str) -> Result<(), Errno> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    // SAFETY: ifreq is a plain C struct/union; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= req.ifr_name.len() {
        return Err(Errno::EINVAL);
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS fills the flags member of `req`, which outlives the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(Errno::last());
    }
    // SAFETY: reading/writing the union member the previous ioctl initialised.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above, `req` is valid for the duration of the call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// `_exit(2)`: leaves a forked child without running the caller's atexit handlers or
/// flushing its stdio buffers (which belong to the caller).
pub(crate) fn exit(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no user-space state.
    unsafe { libc::_exit(code) }
}

/// Runs the body of a forked child and `_exit`s with its code; a panic exits 125 instead of
/// unwinding into the caller's (copied) stack frames.
pub(crate) fn run_child(body: impl FnOnce() -> i32) -> ! {
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(125);
    exit(code)
}

#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const seccompiler::sock_filter,
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, 0, prog)`, without touching `no_new_privs`.
pub(crate) fn seccomp_install(prog: &[seccompiler::sock_filter]) -> Result<(), Errno> {
    let len = libc::c_ushort::try_from(prog.len()).map_err(|_| Errno::E2BIG)?;
    let fprog = SockFprog {
        len,
        filter: prog.as_ptr(),
    };
    // SAFETY: `fprog` points to `prog`, which outlives the call; the kernel copies the program.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_ulong,
            &fprog as *const SockFprog,
        )
    };
    if ret < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)`.
pub(crate) fn memfd_sealable(name: &CStr) -> Result<OwnedFd, Errno> {
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: `name` is NUL-terminated and outlives the call.
    let ret = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    if ret < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

/// Seals a memfd against any change (`F_ADD_SEALS`: seal, shrink, grow, write).
pub(crate) fn seal_all(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl with integer arguments.
    let ret = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) };
    if ret < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// `execve(path, argv, envp)` with arrays the caller built before forking (NULL-terminated),
/// so the child allocates nothing. Returns only on failure, with its errno.
pub(crate) fn execve_prepared(
    path: &CStr,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
) -> Errno {
    if argv.last().is_none_or(|p| !p.is_null()) || envp.last().is_none_or(|p| !p.is_null()) {
        return Errno::EINVAL;
    }
    // SAFETY: `path` is NUL-terminated; argv and envp are NULL-terminated (checked above)
    // arrays of pointers to NUL-terminated strings the caller keeps alive.
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Errno::last()
}

/// `write(2)` of a whole small buffer, best effort (a child's last words).
pub(crate) fn write_all_raw(fd: RawFd, bytes: &[u8]) {
    // SAFETY: `bytes` is valid for reads of its length.
    let _ = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
}
