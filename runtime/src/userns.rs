//! User namespaces: ID mappings, making a user namespace that has them, idmapped mount trees,
//! and the probe that tells whether this host supports both.
//!
//! A user namespace is always made *before* the processes that use it: a helper child is born
//! in a new user namespace (`clone(CLONE_NEWUSER)`), the caller (root in the initial user
//! namespace) writes its `uid_map` and `gid_map` and opens `/proc/<helper>/ns/user`, then the
//! helper exits. Everything else joins that descriptor with `setns`. So the pod's pinning child,
//! the pod's PID holder, a container's intermediate process and the idmapped mounts all use one
//! namespace, and the maps are written by a process that is privileged over it. The helper runs
//! only `read(2)` and `_exit(2)` (async-signal-safe), so [`create`] and [`supported`] may be
//! called from a multi-threaded process too.
//!
//! Idmapped mounts ([`idmapped_tree`]) are made by the caller, still privileged in the initial
//! user namespace (`mount_setattr(MOUNT_ATTR_IDMAP)` needs `CAP_SYS_ADMIN` over the
//! filesystem's own user namespace): `open_tree(OPEN_TREE_CLONE)` gives a detached copy of a
//! mount, `mount_setattr` idmaps it with the container's user namespace, and the container's
//! init, already inside that user namespace and its own mount namespace, attaches it with
//! `move_mount`. The detached copy exists only as a descriptor, so nothing is ever mounted on
//! the host and nothing has to be undone there.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxIdMapping;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::report::{ChildResult, Step};

/// Annotation asking the runtime to attach the rootfs through an idmapped mount made with the
/// container's user namespace (value `"true"`), so a rootfs owned by host IDs appears owned by
/// the same IDs inside (a host-root-owned image is root-owned in the container).
pub const ROOTFS_IDMAP_ANNOTATION: &str = "io.corral.rootfs-idmap";

/// The UID and GID mappings of a user namespace (container ID, host ID, size), in OCI form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMappings {
    /// UID mappings.
    pub uids: Vec<LinuxIdMapping>,
    /// GID mappings.
    pub gids: Vec<LinuxIdMapping>,
}

impl IdMappings {
    /// Checks the mappings: each list has 1 to 340 entries, none empty or past 2^32, and
    /// container ID 0 is mapped (the container's root must exist inside). `field` prefixes the
    /// message (e.g. `linux.uidMappings`).
    pub fn validate(&self) -> Result<(), Error> {
        for (field, list) in [
            ("linux.uidMappings", &self.uids),
            ("linux.gidMappings", &self.gids),
        ] {
            if list.is_empty() {
                return Err(Error::InvalidSpec(format!("{field}: empty")));
            }
            if list.len() > 340 {
                return Err(Error::InvalidSpec(format!(
                    "{field}: more than 340 entries"
                )));
            }
            for m in list {
                let end = |start: u32| u64::from(start) + u64::from(m.size());
                if m.size() == 0 || end(m.host_id()) > 1 << 32 || end(m.container_id()) > 1 << 32 {
                    return Err(Error::InvalidSpec(format!(
                        "{field}: {m:?} is empty or overflows 32 bits"
                    )));
                }
            }
            if !list.iter().any(|m| m.container_id() == 0 && m.size() > 0) {
                return Err(Error::InvalidSpec(format!(
                    "{field}: container ID 0 is not mapped"
                )));
            }
        }
        Ok(())
    }

    /// The host ID of container ID `id` under `list`, if mapped.
    pub fn host_of(list: &[LinuxIdMapping], id: u32) -> Option<u32> {
        list.iter().find_map(|m| {
            let off = id.checked_sub(m.container_id())?;
            (off < m.size())
                .then(|| m.host_id().checked_add(off))
                .flatten()
        })
    }
}

impl IdMappings {
    /// The first of `path`'s ancestors from `first_ancestor` up (0: `path` itself) that the
    /// namespace's root (the host IDs container 0 maps to) cannot search, with its mode.
    pub fn unsearchable_ancestor(
        &self,
        path: &Path,
        first_ancestor: usize,
    ) -> Result<Option<(PathBuf, u32)>, Error> {
        use std::os::unix::fs::MetadataExt;
        let uid = Self::host_of(&self.uids, 0);
        let gid = Self::host_of(&self.gids, 0);
        for dir in path.ancestors().skip(first_ancestor) {
            let md = std::fs::metadata(dir).map_err(Error::io(dir))?;
            let mode = md.mode();
            let bit = if Some(md.uid()) == uid {
                0o100
            } else if Some(md.gid()) == gid {
                0o010
            } else {
                0o001
            };
            if mode & bit == 0 {
                return Ok(Some((dir.to_path_buf(), mode & 0o7777)));
            }
        }
        Ok(None)
    }
}

/// One mapping: `size` IDs from `container_id` inside to `host_id` outside.
pub fn mapping(container_id: u32, host_id: u32, size: u32) -> LinuxIdMapping {
    oci_spec::runtime::LinuxIdMappingBuilder::default()
        .container_id(container_id)
        .host_id(host_id)
        .size(size)
        .build()
        .unwrap_or_default()
}

fn map_text(list: &[LinuxIdMapping]) -> String {
    list.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Parses a `uid_map`/`gid_map` file as read from inside the namespace.
pub(crate) fn parse_map(text: &str) -> Option<Vec<(u32, u32, u32)>> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split_whitespace().map(|n| n.parse::<u32>().ok());
            match (it.next(), it.next(), it.next(), it.next()) {
                (Some(Some(c)), Some(Some(h)), Some(Some(s)), None) => Some((c, h, s)),
                _ => None,
            }
        })
        .collect()
}

/// Mappings as sorted `(container ID, host ID, size)` triples.
pub(crate) type Triples = Vec<(u32, u32, u32)>;

/// The maps a joined user namespace must have: UIDs, GIDs.
pub(crate) type ExpectedMaps = (Triples, Triples);

/// The mappings as sorted `(container, host, size)` triples, to compare with [`parse_map`].
pub(crate) fn triples(list: &[LinuxIdMapping]) -> Triples {
    let mut v: Vec<_> = list
        .iter()
        .map(|m| (m.container_id(), m.host_id(), m.size()))
        .collect();
    v.sort_unstable();
    v
}

/// Child side, right after joining a user namespace: checks its maps are `want`
/// (`/proc/self/uid_map` read from inside shows them relative to the parent namespace), then
/// becomes its root (`setgroups([])`, GID 0, UID 0), so files the setup creates belong to the
/// container's root and not to an unmapped ID.
pub(crate) fn enter_checked(want: Option<&ExpectedMaps>) -> ChildResult {
    if let Some((uids, gids)) = want {
        for (file, want) in [("/proc/self/uid_map", uids), ("/proc/self/gid_map", gids)] {
            let text = std::fs::read_to_string(file).step_with(|| format!("read {file}"))?;
            let mut got = parse_map(&text).unwrap_or_default();
            got.sort_unstable();
            if &got != want {
                return Err(Errno::EINVAL).step_with(|| {
                    format!("the joined user namespace's {file} differs from the spec's mappings")
                });
            }
        }
    }
    become_root()
}

/// Child side: the calling process becomes UID 0 / GID 0 of its user namespace, without
/// supplementary groups.
pub(crate) fn become_root() -> ChildResult {
    nix::unistd::setgroups(&[]).step("setgroups [] in the user namespace")?;
    let root_g = nix::unistd::Gid::from_raw(0);
    nix::unistd::setresgid(root_g, root_g, root_g).step("setgid 0 in the user namespace")?;
    let root_u = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresuid(root_u, root_u, root_u).step("setuid 0 in the user namespace")
}

/// A helper process born in a new user namespace; it blocks on a pipe until dropped.
struct Helper {
    pid: Pid,
    hold: Option<OwnedFd>,
}

impl Helper {
    fn spawn() -> Result<Helper, Error> {
        let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(Error::sys("pipe"))?;
        let (r_raw, w_raw) = (r.as_raw_fd(), w.as_raw_fd());
        // SAFETY: the child runs only close(2), read(2) and _exit(2), which are
        // async-signal-safe, so this is sound even when the caller has other threads.
        let forked = unsafe { crate::sys::raw_clone(libc::CLONE_NEWUSER) };
        let pid = match forked {
            Ok(crate::sys::Forked::Child) => {
                // SAFETY: see above; only raw syscalls on descriptors this process owns.
                unsafe {
                    libc::close(w_raw);
                    let mut b = 0u8;
                    while libc::read(r_raw, (&raw mut b).cast(), 1) < 0
                        && *libc::__errno_location() == libc::EINTR
                    {}
                    libc::_exit(0)
                }
            }
            Ok(crate::sys::Forked::Parent(pid)) => pid,
            Err(source) => {
                return Err(Error::Sys {
                    step: "clone a helper in a new user namespace",
                    source,
                });
            }
        };
        drop(r);
        Ok(Helper { pid, hold: Some(w) })
    }

    fn write_maps(&self, m: &IdMappings) -> Result<(), Error> {
        for (file, list) in [("uid_map", &m.uids), ("gid_map", &m.gids)] {
            let path = format!("/proc/{}/{file}", self.pid);
            std::fs::write(&path, map_text(list)).map_err(Error::io(&path))?;
        }
        Ok(())
    }

    fn open_ns(&self) -> Result<OwnedFd, Error> {
        let path = format!("/proc/{}/ns/user", self.pid);
        let fd = nix::fcntl::open(
            path.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::Io {
            path: path.clone().into(),
            source: e.into(),
        })?;
        // SAFETY: open(2) just returned this descriptor; nothing else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        drop(self.hold.take());
        loop {
            match nix::sys::wait::waitpid(self.pid, None) {
                Err(Errno::EINTR) => continue,
                _ => return,
            }
        }
    }
}

/// Makes a user namespace with `mappings` (validated first) and returns a descriptor for it
/// (keep it, or bind-mount `/proc/self/fd/<fd>`, to keep the namespace alive).
pub fn create(mappings: &IdMappings) -> Result<OwnedFd, Error> {
    mappings.validate()?;
    let helper = Helper::spawn()?;
    helper.write_maps(mappings)?;
    let fd = helper.open_ns()?;
    drop(helper);
    tracing::debug!(uids = ?mappings.uids, gids = ?mappings.gids, "user namespace created");
    Ok(fd)
}

/// A detached copy of the mount at `path` (with its submounts when `recursive`), idmapped with
/// the user namespace `userns`: a file owned by ID N on disk appears owned by the host ID that
/// container ID N maps to, so inside that namespace it shows as N again.
pub fn idmapped_tree(
    path: &Path,
    userns: BorrowedFd<'_>,
    recursive: bool,
) -> Result<OwnedFd, Error> {
    let fail = |step: &str, errno: Errno| Error::Idmap {
        path: path.to_path_buf(),
        step: step.to_owned(),
        errno,
    };
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| fail("path", Errno::EINVAL))?;
    let tree = crate::sys::open_tree_clone(&c, recursive).map_err(|e| fail("open_tree", e))?;
    let at = if recursive { libc::AT_RECURSIVE } else { 0 };
    let ret =
        crate::sys::mount_setattr(tree.as_fd(), at, crate::sys::MOUNT_ATTR_IDMAP, Some(userns));
    if let Err(errno) = ret {
        let step = if errno == Errno::EINVAL {
            "mount_setattr(MOUNT_ATTR_IDMAP) (does the filesystem support idmapped mounts?)"
        } else {
            "mount_setattr(MOUNT_ATTR_IDMAP)"
        };
        return Err(fail(step, errno));
    }
    Ok(tree)
}

/// Child side: attaches a detached tree from [`idmapped_tree`] on `target` (an `O_PATH`
/// descriptor) in the caller's mount namespace.
pub(crate) fn attach_tree(tree: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), Errno> {
    let flags = libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH;
    // SAFETY: empty NUL-terminated paths, descriptors owned by the caller.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            flags,
        )
    };
    if ret < 0 { Err(Errno::last()) } else { Ok(()) }
}

/// Whether user namespaces with idmapped mounts work here: `user.max_user_namespaces` is above
/// zero, a user namespace with a mapping can be made, and a mount of `dir`'s filesystem can be
/// idmapped with it. The error says what failed.
pub fn probe(dir: &Path) -> Result<(), Error> {
    let max = "/proc/sys/user/max_user_namespaces";
    let text = std::fs::read_to_string(max).map_err(Error::io(max))?;
    if text.trim().parse::<u64>().unwrap_or(0) == 0 {
        return Err(Error::InvalidSpec(format!("{max} is 0")));
    }
    let fd = create(&IdMappings {
        uids: vec![mapping(0, 65534, 1)],
        gids: vec![mapping(0, 65534, 1)],
    })?;
    let tree = idmapped_tree(dir, std::os::fd::AsFd::as_fd(&fd), false)?;
    drop(tree);
    Ok(())
}

/// [`probe`] as a yes/no, logging why not.
pub fn supported(dir: &Path) -> bool {
    match probe(dir) {
        Ok(()) => true,
        Err(e) => {
            tracing::info!(dir = %dir.display(), error = %e, "user namespaces are not supported");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::mapping as m;

    #[test]
    fn mappings_are_checked() {
        let ok = IdMappings {
            uids: vec![m(0, 100000, 65536)],
            gids: vec![m(0, 100000, 65536)],
        };
        assert!(ok.validate().is_ok());
        assert_eq!(IdMappings::host_of(&ok.uids, 1000), Some(101000));
        assert_eq!(IdMappings::host_of(&ok.uids, 65536), None);
        for (uids, why) in [
            (vec![], "empty"),
            (vec![m(1, 100000, 10)], "container ID 0"),
            (vec![m(0, 100000, 0)], "overflows"),
            (vec![m(0, u32::MAX, 2)], "overflows"),
        ] {
            let bad = IdMappings {
                uids,
                gids: ok.gids.clone(),
            };
            let e = bad.validate().expect_err(why).to_string();
            assert!(e.contains("linux.uidMappings") && e.contains(why), "{e}");
        }
    }

    #[test]
    fn maps_parse() {
        assert_eq!(
            parse_map("         0     100000      65536\n"),
            Some(vec![(0, 100000, 65536)])
        );
        assert_eq!(parse_map("0 1\n"), None);
        assert_eq!(
            triples(&[m(5, 6, 7), m(0, 1, 2)]),
            vec![(0, 1, 2), (5, 6, 7)]
        );
    }
}
