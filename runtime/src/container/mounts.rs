//! Child side: the container's mounts, in its own mount namespace. Destinations are resolved
//! inside the rootfs (symlinks included) and the mount is made on an `O_PATH` descriptor
//! obtained with `openat2(RESOLVE_IN_ROOT)`, so nothing in the image can redirect a mount to
//! the host.

use std::collections::VecDeque;
use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::statvfs::{FsFlags, statvfs};

use super::ChildStdio;
use super::devices;
use super::plan::{MountKind, MountPlan, Plan};
use crate::report::{ChildError, ChildResult, Step};
use crate::sys;

const NONE: Option<&str> = None;

/// Resolves `rel` inside `root` the way the container would see it (symlinks are followed
/// with `root` as `/`), returning the resolved path relative to `root`. Missing components
/// are kept as they are.
pub(super) fn resolve_in_root(root: &Path, rel: &Path) -> std::io::Result<PathBuf> {
    let mut pending: VecDeque<OsString> = components(rel);
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(c) = pending.pop_front() {
        if c == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&c);
        let host = root.join(&candidate);
        match std::fs::symlink_metadata(&host) {
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > 255 {
                    return Err(std::io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = std::fs::read_link(&host)?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                let mut next = components(&target);
                next.extend(pending);
                pending = next;
            }
            _ => resolved = candidate,
        }
    }
    Ok(resolved)
}

fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// The container's rootfs as a directory descriptor, plus its host path.
pub(super) struct Root {
    pub path: PathBuf,
    pub fd: OwnedFd,
}

impl Root {
    /// Resolves `rel` in the rootfs, creates what is missing (directories, or an empty file
    /// as the last component when `dir` is false) and opens it `O_PATH` inside the root.
    pub fn prepare(&self, rel: &Path, dir: bool) -> ChildResult<OwnedFd> {
        let show = || format!("prepare {}", Path::new("/").join(rel).display());
        let resolved = resolve_in_root(&self.path, rel).step_with(show)?;
        let host = self.path.join(&resolved);
        if dir {
            std::fs::create_dir_all(&host).step_with(show)?;
        } else {
            if let Some(parent) = host.parent() {
                std::fs::create_dir_all(parent).step_with(show)?;
            }
            if std::fs::symlink_metadata(&host).is_err() {
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&host)
                    .step_with(show)?;
            }
        }
        self.open(&resolved).step_with(show)
    }

    /// Opens `rel` `O_PATH` with every symlink resolved inside the rootfs.
    pub fn open(&self, rel: &Path) -> Result<OwnedFd, Errno> {
        let c = if rel.as_os_str().is_empty() {
            c".".to_owned()
        } else {
            CString::new(rel.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?
        };
        sys::openat2(
            self.fd.as_fd(),
            &c,
            OFlag::O_PATH.bits(),
            libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
        )
    }
}

/// `/proc/self/fd/N` of an open descriptor: a mount target that is exactly that object.
pub(super) fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Sets the rootfs propagation, binds the rootfs onto itself, makes the mounts and the
/// devices, the terminal ([`ChildStdio::Terminal`]: in the container's devpts, as stdio) and
/// the console, runs `before_pivot` (the create-time hooks), and `pivot_root`s into it.
pub(super) fn setup_rootfs(
    plan: &Plan,
    stdio: &ChildStdio,
    before_pivot: impl FnOnce() -> ChildResult,
) -> ChildResult {
    mount(NONE, "/", NONE, plan.root_propagation, NONE).step("rootfs propagation")?;
    make_parent_mount_private(&plan.rootfs)?;
    match &plan.rootfs_tree {
        // The idmapped copy goes on top of the rootfs (in this mount namespace only).
        Some(tree) => {
            let at = nix::fcntl::open(
                &plan.rootfs,
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .step("open rootfs")?;
            let at = owned(at);
            crate::userns::attach_tree(tree.as_fd(), at.as_fd()).step("attach idmapped rootfs")?;
        }
        None => mount(
            Some(&plan.rootfs),
            &plan.rootfs,
            NONE,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            NONE,
        )
        .step("bind rootfs")?,
    }
    let fd = nix::fcntl::open(
        &plan.rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .step("open rootfs")?;
    let root = Root {
        path: plan.rootfs.clone(),
        fd: owned(fd),
    };
    for m in &plan.mounts {
        mount_one(&root, m)?;
    }
    devices::create(&root, plan)?;
    if let ChildStdio::Terminal(socket) = stdio {
        let ptmx = sys::openat2(
            root.fd.as_fd(),
            c"dev/ptmx",
            crate::terminal::PTMX_FLAGS.bits(),
            libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
        )
        .step("open /dev/ptmx")?;
        let replica = crate::terminal::make(ptmx, *socket)?;
        let fd = replica.as_raw_fd();
        plan.process.setup_stdio([fd, fd, fd])?;
    }
    if plan.process.terminal {
        // The replica's path in this (copied) mount namespace: a descriptor's own mount
        // belongs to the caller's namespace and cannot be a bind source here.
        let replica = std::fs::read_link("/proc/self/fd/0").step("readlink the console replica")?;
        let console = root.prepare(Path::new("dev/console"), false)?;
        mount(
            Some(&replica),
            &fd_path(&console),
            NONE,
            MsFlags::MS_BIND,
            NONE,
        )
        .step("bind /dev/console")?;
    }
    drop(root);
    before_pivot()?;
    pivot(&plan.rootfs)
}

/// Makes the mount holding `rootfs` private (runc's `rootfsParentMountPrivate`): with a
/// shared `/` (an `rshared` rootfs propagation, or a host whose mounts are all shared),
/// `pivot_root` refuses a new root whose parent mount is shared. Only that one mount changes,
/// so a Bidirectional volume bound below the rootfs still propagates both ways.
fn make_parent_mount_private(rootfs: &Path) -> ChildResult {
    let mut at = Some(rootfs);
    while let Some(p) = at {
        match mount(NONE, p, NONE, MsFlags::MS_PRIVATE, NONE) {
            Ok(()) => return Ok(()),
            // Not a mount point: try the directory above it.
            Err(Errno::EINVAL) => at = p.parent(),
            Err(e) => {
                return Err(e).step_with(|| format!("make {} private", p.display()));
            }
        }
    }
    Ok(())
}

#[allow(unsafe_code)]
fn owned(fd: std::os::fd::RawFd) -> OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` was just returned by open(2) and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

const CHANGE_FLAGS: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NOATIME)
    .union(MsFlags::MS_NODIRATIME)
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME);

fn mount_one(root: &Root, m: &MountPlan) -> ChildResult {
    let show = |what: &str| format!("{what} /{}", m.dest.display());
    match &m.kind {
        MountKind::Bind {
            source,
            recursive,
            dir,
            tree,
        } => {
            let target = root.prepare(&m.dest, *dir)?;
            let mut flags = MsFlags::MS_BIND;
            if *recursive {
                flags |= MsFlags::MS_REC;
            }
            match tree {
                Some(tree) => {
                    crate::userns::attach_tree(tree.as_fd(), target.as_fd()).step_with(|| {
                        format!("attach {} on /{}", source.display(), m.dest.display())
                    })?
                }
                None => mount(Some(source), &fd_path(&target), NONE, flags, NONE)
                    .step_with(|| format!("bind {} on /{}", source.display(), m.dest.display()))?,
            }
            if m.flags.intersects(CHANGE_FLAGS) {
                remount(root, m, m.flags & CHANGE_FLAGS)?;
            }
            if m.recursive_readonly {
                let t = root.open(&m.dest).step_with(|| show("reopen"))?;
                sys::mount_setattr_readonly_recursive(&t)
                    .step_with(|| show("make recursively read-only"))?;
            }
        }
        MountKind::Fs { fstype, source } => {
            let target = root.prepare(&m.dest, true)?;
            mount(
                Some(source.as_str()),
                &fd_path(&target),
                Some(fstype.as_str()),
                m.flags,
                m.data.as_deref(),
            )
            .step_with(|| show(&format!("mount {fstype} on")))?;
        }
        MountKind::CgroupV1 { binds } => {
            let target = root.prepare(&m.dest, true)?;
            let flags = m.flags & !MsFlags::MS_RDONLY;
            mount(
                Some("tmpfs"),
                &fd_path(&target),
                Some("tmpfs"),
                flags,
                Some("mode=755"),
            )
            .step_with(|| show("mount cgroup tmpfs on"))?;
            for (name, host) in binds {
                if !host.is_dir() {
                    continue;
                }
                let sub = root.prepare(&m.dest.join(name), true)?;
                mount(Some(host), &fd_path(&sub), NONE, MsFlags::MS_BIND, NONE)
                    .step_with(|| show(&format!("bind cgroup {name} under")))?;
                let sub = root.open(&m.dest.join(name)).step_with(|| show("reopen"))?;
                let f = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | (m.flags & CHANGE_FLAGS);
                mount(NONE, &fd_path(&sub), NONE, f, NONE).step_with(|| show("remount cgroup"))?;
            }
            if m.flags.contains(MsFlags::MS_RDONLY) {
                let t = root.open(&m.dest).step_with(|| show("reopen"))?;
                let f = MsFlags::MS_REMOUNT | (m.flags & CHANGE_FLAGS);
                mount(NONE, &fd_path(&t), NONE, f, NONE).step_with(|| show("remount ro"))?;
            }
        }
    }
    for p in &m.propagation {
        let t = root.open(&m.dest).step_with(|| show("reopen"))?;
        mount(NONE, &fd_path(&t), NONE, *p, NONE).step_with(|| show("set propagation of"))?;
    }
    Ok(())
}

/// Remounts the bind at `m.dest` with `flags` (read-only binds need this second step).
fn remount(root: &Root, m: &MountPlan, flags: MsFlags) -> ChildResult {
    let t = root
        .open(&m.dest)
        .step_with(|| format!("reopen /{}", m.dest.display()))?;
    let path = fd_path(&t);
    let keep = locked_flags(&path);
    mount(
        NONE,
        &path,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags | keep,
        NONE,
    )
    .step_with(|| format!("remount /{}", m.dest.display()))
}

/// The per-mount flags a bind remount must keep (`nosuid`, `nodev`, `noexec` of the source).
fn locked_flags(path: &Path) -> MsFlags {
    let Ok(st) = statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    out
}

fn pivot(rootfs: &Path) -> ChildResult {
    let old_root = nix::fcntl::open(
        "/",
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .step("open old root")?;
    let old_root = owned(old_root);
    nix::unistd::chdir(rootfs).step("chdir rootfs")?;
    nix::unistd::pivot_root(".", ".").step("pivot_root")?;
    // The old root is now stacked on the new one. Enter it explicitly (as runc does): "." of a
    // cwd that was the new root names the new root's mount, and making *that* rslave would
    // turn every Bidirectional mount of the container into a one-way slave.
    nix::unistd::fchdir(old_root.as_raw_fd()).step("enter old root")?;
    drop(old_root);
    mount(NONE, ".", NONE, MsFlags::MS_SLAVE | MsFlags::MS_REC, NONE)
        .step("make old root rslave")?;
    umount2(".", MntFlags::MNT_DETACH).step("unmount old root")?;
    nix::unistd::chdir("/").step("chdir /")
}

/// After `pivot_root`: `readonlyPaths`, `maskedPaths`, and the read-only root.
pub(super) fn finalize(plan: &Plan) -> ChildResult {
    for p in &plan.readonly_paths {
        match mount(Some(p), p, NONE, MsFlags::MS_BIND | MsFlags::MS_REC, NONE) {
            Err(Errno::ENOENT) => continue,
            r => r.step_with(|| format!("bind readonly path {}", p.display()))?,
        }
        let f = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_REC
            | locked_flags(p);
        mount(NONE, p, NONE, f, NONE)
            .step_with(|| format!("remount readonly path {}", p.display()))?;
    }
    for p in &plan.masked {
        let md = match std::fs::metadata(p) {
            Ok(md) => md,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).step_with(|| format!("stat masked path {}", p.display())),
        };
        let r = if md.is_dir() {
            mount(Some("tmpfs"), p, Some("tmpfs"), MsFlags::MS_RDONLY, NONE)
        } else {
            mount(Some("/dev/null"), p, NONE, MsFlags::MS_BIND, NONE)
        };
        r.step_with(|| format!("mask {}", p.display()))?;
    }
    if plan.root_readonly {
        let f = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | locked_flags(Path::new("/"));
        mount(NONE, "/", NONE, f, NONE).step("remount / read-only")?;
    }
    Ok(())
}

/// Creates `cwd` (absolute, after `pivot_root`) if missing, like runc.
pub(super) fn create_cwd(cwd: &CString) -> ChildResult {
    let p = Path::new(std::ffi::OsStr::from_bytes(cwd.as_bytes()));
    match std::fs::create_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) => Err(ChildError {
            step: format!("create cwd {}", p.display()),
            errno: e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;
    use std::path::Path;

    use super::resolve_in_root;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).expect("mkdir");
        symlink("/etc", root.join("abs")).expect("symlink");
        symlink("../../../../..", root.join("a/up")).expect("symlink");
        symlink("b", root.join("a/rel")).expect("symlink");
        symlink("loop", root.join("loop")).expect("symlink");
        let r = |p: &str| resolve_in_root(root, Path::new(p)).expect("resolve");
        assert_eq!(r("abs/passwd"), Path::new("etc/passwd"));
        assert_eq!(r("a/up/x"), Path::new("x"));
        assert_eq!(r("a/rel/c"), Path::new("a/b/c"));
        assert_eq!(r("../../a/./b"), Path::new("a/b"));
        assert!(resolve_in_root(root, Path::new("loop/x")).is_err());
    }
}
