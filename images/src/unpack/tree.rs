//! Resolving, creating and clearing paths inside the target, and the final directory pass.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{FileStat, Mode, fchmod, fstat, fstatat, futimens, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, unlinkat};
use tracing::debug;

use super::UnpackError;
use super::layer::Unpacker;
use super::meta::{
    blocks_bytes, invalid, io_err, is_dir, lossy, open_nofollow, own, resolve_error,
};

impl Unpacker<'_> {
    /// Opens `path` (cleaned, relative to the target) with `openat2`, confined to the target.
    pub(super) fn resolve(&self, path: &[u8], flags: OFlag) -> Result<OwnedFd, Errno> {
        let path: &[u8] = if path.is_empty() { b"." } else { path };
        let how = OpenHow::new().flags(flags | OFlag::O_CLOEXEC).resolve(
            ResolveFlag::RESOLVE_IN_ROOT
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
        let mut tries = 0;
        loop {
            match openat2(self.root.as_raw_fd(), path, how) {
                Ok(fd) => return Ok(own(fd)),
                // RESOLVE_IN_ROOT asks for a retry when a rename raced with the lookup.
                Err(Errno::EAGAIN | Errno::EINTR) if tries < 16 => tries += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// The directory an entry goes into, created (0755, root) where the tar did not list it.
    pub(super) fn parent(
        &mut self,
        raw: &[u8],
        comps: &[&[u8]],
    ) -> Result<Rc<OwnedFd>, UnpackError> {
        let path = comps.join(&b'/');
        if let Some((cached, fd)) = &self.cache
            && *cached == path
        {
            return Ok(Rc::clone(fd));
        }
        let fd = match self.resolve(&path, OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => self.create_parents(raw, comps)?,
            Err(e) => return Err(resolve_error(raw, e)),
        };
        let fd = Rc::new(fd);
        self.cache = Some((path, Rc::clone(&fd)));
        Ok(fd)
    }

    pub(super) fn create_parents(
        &mut self,
        raw: &[u8],
        comps: &[&[u8]],
    ) -> Result<OwnedFd, UnpackError> {
        let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
        let mut dir = self
            .resolve(b"", dir_flags)
            .map_err(|e| resolve_error(raw, e))?;
        for i in 0..comps.len() {
            let prefix = comps[..=i].join(&b'/');
            match self.resolve(&prefix, dir_flags) {
                Ok(fd) => {
                    dir = fd;
                    continue;
                }
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(resolve_error(raw, e)),
            }
            let name = OsStr::from_bytes(comps[i]);
            match mkdirat(Some(dir.as_raw_fd()), name, Mode::from_bits_truncate(0o755)) {
                Ok(()) => {}
                Err(Errno::EEXIST) => {
                    return Err(invalid(
                        raw,
                        format!(
                            "parent {:?} is a symlink whose target does not exist in this layer",
                            lossy(&prefix)
                        ),
                    ));
                }
                Err(e) => return Err(io_err(raw, "create parent directory")(e)),
            }
            let child = open_nofollow(dir.as_raw_fd(), name, dir_flags)
                .map_err(io_err(raw, "open parent directory"))?;
            spread(raw, child.as_raw_fd());
            fchown(
                child.as_raw_fd(),
                Some(Uid::from_raw(0)),
                Some(Gid::from_raw(0)),
            )
            .map_err(io_err(raw, "chown parent directory"))?;
            fchmod(child.as_raw_fd(), Mode::from_bits_truncate(0o755))
                .map_err(io_err(raw, "chmod parent directory"))?;
            self.dirs.entry(prefix).or_insert(None);
            dir = child;
        }
        Ok(dir)
    }

    /// Clears `parent/name` for a new entry. Returns whether a directory was kept there
    /// (only when `keep_dir`: directory over directory merges).
    pub(super) fn make_room(
        &mut self,
        raw: &[u8],
        parent: RawFd,
        name: &OsStr,
        key: &[u8],
        keep_dir: bool,
    ) -> Result<bool, UnpackError> {
        let st = match fstatat(Some(parent), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(io_err(raw, "inspect existing path")(e)),
        };
        if is_dir(&st) && keep_dir {
            return Ok(true);
        }
        self.cache = None;
        if is_dir(&st) {
            self.remove_tree(raw, parent, name)?;
        } else {
            self.forget_inode(&st);
            unlinkat(Some(parent), name, UnlinkatFlags::NoRemoveDir)
                .map_err(io_err(raw, "remove replaced file"))?;
        }
        // Forget the directory and everything under it.
        self.dirs.remove(key);
        let mut below = key.to_vec();
        below.push(b'/');
        let stale: Vec<Vec<u8>> = self
            .dirs
            .range(below.clone()..)
            .take_while(|(k, _)| k.starts_with(&below))
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            self.dirs.remove(&k);
        }
        Ok(false)
    }

    /// Removes the directory `parent/name` and its contents without following symlinks,
    /// without recursion and with a bounded number of descriptors (`corral_fsutil`).
    pub(super) fn remove_tree(
        &mut self,
        raw: &[u8],
        parent: RawFd,
        name: &OsStr,
    ) -> Result<(), UnpackError> {
        let name = std::ffi::CString::new(name.as_bytes())
            .map_err(|_| io_err(raw, "remove replaced directory")(Errno::EINVAL))?;
        corral_fsutil::remove_tree_at(parent, &name, std::path::Path::new(&lossy(raw)), |st| {
            self.forget_inode(st)
        })
        .map_err(|e| UnpackError::Io {
            entry: lossy(raw),
            op: "remove replaced directory",
            source: e.into(),
        })
    }

    pub(super) fn count_created(&mut self, st: FileStat) {
        self.disk_bytes += blocks_bytes(&st);
        self.inodes += 1;
    }

    /// Takes back what a removed non-directory counted, once its last link goes.
    pub(super) fn forget_inode(&mut self, st: &FileStat) {
        if st.st_nlink == 1 {
            self.disk_bytes = self.disk_bytes.saturating_sub(blocks_bytes(st));
            self.inodes = self.inodes.saturating_sub(1);
        }
    }

    /// Sets directory mtimes (after all children exist) and counts the directories' blocks.
    pub(super) fn finish_dirs(&mut self) -> Result<(), UnpackError> {
        let mut seen = HashSet::new();
        for (path, mtime) in std::mem::take(&mut self.dirs) {
            let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW;
            let fd = match self.resolve(&path, flags) {
                Ok(fd) => fd,
                Err(e) => {
                    debug!(dir = %lossy(&path), error = %e, "directory gone before its mtime was set");
                    continue;
                }
            };
            let st = fstat(fd.as_raw_fd()).map_err(io_err(&path, "stat directory"))?;
            if !seen.insert((st.st_dev, st.st_ino)) {
                continue;
            }
            self.count_created(st);
            if let Some(t) = mtime {
                futimens(fd.as_raw_fd(), &t, &t).map_err(io_err(&path, "set directory times"))?;
            }
        }
        Ok(())
    }
}

/// Marks a directory the layer made as a top directory (`chattr +T`), so ext4 places each
/// directory made in it by spreading (a flex group with free inodes above the average and
/// the fewest directories) rather than beside it: on ext4 without a journal a tree unpacked
/// beside the inodes of one deleted in the last minutes pays a scan past each of them for
/// every new inode (`crate::fsutil::set_topdir`). Only a placement hint: failures are ignored.
pub(super) fn spread(raw: &[u8], dir: RawFd) {
    if let Err(e) = crate::fsutil::set_topdir_fd(dir) {
        debug!(entry = %lossy(raw), error = %e, "cannot set the top-directory flag");
    }
}
