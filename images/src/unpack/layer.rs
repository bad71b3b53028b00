//! Creating each entry of the layer.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, fstat, fstatat, futimens, makedev, mkdirat, mknodat};
use nix::sys::stat::{UtimensatFlags, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat};
use tar::EntryType;
use tracing::{debug, warn};

use super::headers::HeaderBudget;
use super::meta::{
    Meta, apply_meta, clean_path, invalid, io_err, is_dir, lossy, open_nofollow, own, owner,
    read_meta, resolve_error, set_xattr, set_xattr_nofollow, xattr_result,
};
use super::{UnpackError, UnpackLimits};

/// What an entry asks for, decided before anything is created.
enum Kind {
    Dir,
    File,
    Symlink(Vec<u8>),
    Hardlink(Vec<u8>),
    Fifo,
    Whiteout,
}

/// Extraction state for one layer.
pub(super) struct Unpacker<'l> {
    pub(super) root: OwnedFd,
    pub(super) limits: &'l UnpackLimits,
    /// The last resolved parent directory. Dropped whenever something is removed, since a
    /// removal can change what a path resolves to. `Rc` so that callers holding the fd keep it
    /// open when the cache lets go of it.
    pub(super) cache: Option<(Vec<u8>, Rc<OwnedFd>)>,
    /// Directories this layer created, by cleaned path, with the mtime to set at the end
    /// (`None` for parents the tar did not list).
    pub(super) dirs: BTreeMap<Vec<u8>, Option<TimeSpec>>,
    /// Logical bytes of regular files written.
    pub(super) written: u64,
    pub(super) disk_bytes: u64,
    pub(super) inodes: u64,
}

impl<'l> Unpacker<'l> {
    pub(super) fn new(root: OwnedFd, limits: &'l UnpackLimits) -> Self {
        Unpacker {
            root,
            limits,
            cache: None,
            dirs: BTreeMap::new(),
            written: 0,
            disk_bytes: 0,
            inodes: 0,
        }
    }

    /// Creates every entry of `archive`. `budget` is armed while the `tar` crate looks for the
    /// next entry (what it buffers there is bounded) and every entry is read to its end before
    /// that, so the crate never skips entry data under the budget.
    pub(super) fn run<R: Read>(
        &mut self,
        archive: &mut tar::Archive<R>,
        budget: &HeaderBudget,
    ) -> Result<(), UnpackError> {
        let mut entries = archive
            .entries()
            .map_err(|source| UnpackError::Stream { source })?;
        let mut count = 0u64;
        loop {
            budget.arm();
            let next = entries.next();
            budget.disarm();
            let Some(entry) = next else { break };
            let mut entry = entry.map_err(|source| UnpackError::Stream { source })?;
            count += 1;
            if count > self.limits.max_entries {
                return Err(UnpackError::TooManyEntries {
                    limit: self.limits.max_entries,
                });
            }
            self.entry(&mut entry)?;
            self.drain(&mut entry)?;
        }
        Ok(())
    }

    /// Reads what `entry` left unread (a skipped entry's data). Counted with the files'
    /// logical bytes: a skipped GNU sparse entry expands to its logical size when read.
    fn drain<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let left = self.limits.max_tar_bytes.saturating_sub(self.written);
        let copied = io::copy(
            &mut (&mut *entry).take(left.saturating_add(1)),
            &mut io::sink(),
        );
        let n = copied.map_err(|source| UnpackError::EntryData {
            entry: lossy(&entry.path_bytes()),
            source,
        })?;
        self.written = self.written.saturating_add(n);
        if self.written > self.limits.max_tar_bytes {
            return Err(UnpackError::TooLarge {
                limit: self.limits.max_tar_bytes,
            });
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let kind = match entry.header().entry_type() {
            EntryType::Directory => Kind::Dir,
            // Old (v7) archives mark directories with a trailing slash on a regular entry.
            EntryType::Regular if raw.ends_with(b"/") && entry.size() == 0 => Kind::Dir,
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => Kind::File,
            EntryType::Symlink | EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                if target.is_empty() {
                    return Err(invalid(&raw, "link entry without a link target"));
                }
                if entry.header().entry_type() == EntryType::Symlink {
                    Kind::Symlink(target)
                } else {
                    Kind::Hardlink(target)
                }
            }
            EntryType::Fifo => Kind::Fifo,
            // A 0:0 character device is already an overlay whiteout (layers made by tarring an
            // overlay upper directory carry them); it is the one device we create.
            EntryType::Char
                if entry.header().device_major().ok().flatten() == Some(0)
                    && entry.header().device_minor().ok().flatten() == Some(0) =>
            {
                Kind::Whiteout
            }
            EntryType::Char | EntryType::Block => {
                warn!(entry = %lossy(&raw), "skipping device node in image layer");
                return Ok(());
            }
            EntryType::XGlobalHeader => return Ok(()),
            other => {
                warn!(entry = %lossy(&raw), kind = ?other, "skipping tar entry of unknown type");
                return Ok(());
            }
        };
        let comps = clean_path(&raw)?;
        // aufs metadata (`.wh..wh.plnk/...`, `.wh..wh.aufs`) is skipped wholesale, as in Docker.
        if comps.len() > 1 && comps[0].starts_with(b".wh..wh.") {
            debug!(entry = %lossy(&raw), "ignoring aufs metadata entry");
            return Ok(());
        }
        let Some((&name, parent_comps)) = comps.split_last() else {
            if matches!(kind, Kind::Dir) {
                debug!("leaving the layer root's own metadata to the caller");
                return Ok(());
            }
            return Err(invalid(&raw, "non-directory entry for the layer root"));
        };

        if let Some(hidden) = name.strip_prefix(b".wh.") {
            return self.whiteout(entry.header(), &raw, parent_comps, hidden);
        }
        if matches!(kind, Kind::Whiteout) {
            return self.whiteout_device(entry.header(), &raw, parent_comps, name);
        }

        let meta = read_meta(entry, &raw)?;
        let parent_fd = self.parent(&raw, parent_comps)?;
        let parent = parent_fd.as_raw_fd();
        let key = comps.join(&b'/');
        let name = OsStr::from_bytes(name);
        match kind {
            Kind::Dir => self.directory(&raw, parent, name, &key, meta),
            Kind::File => self.file(entry, &raw, parent, name, &key, &meta),
            Kind::Symlink(target) => self.symlink(&raw, parent, name, &key, &target, &meta),
            Kind::Hardlink(target) => self.hardlink(&raw, parent, name, &key, &target),
            Kind::Fifo => self.fifo(&raw, parent, name, &key, &meta),
            Kind::Whiteout => Ok(()),
        }
    }

    /// `.wh..wh..opq` marks the parent opaque, `.wh.<name>` becomes a 0:0 character device at
    /// `<name>`, other `.wh..wh.*` names are aufs bookkeeping and are ignored.
    fn whiteout(
        &mut self,
        header: &tar::Header,
        raw: &[u8],
        parent_comps: &[&[u8]],
        hidden: &[u8],
    ) -> Result<(), UnpackError> {
        if hidden == b".wh..opq" {
            let parent = self.parent(raw, parent_comps)?;
            return set_xattr(parent.as_raw_fd(), c"trusted.overlay.opaque", b"y")
                .map_err(io_err(raw, "mark directory opaque"));
        }
        if hidden.starts_with(b".wh.") {
            debug!(entry = %lossy(raw), "ignoring aufs metadata entry");
            return Ok(());
        }
        if hidden.is_empty() || hidden == b"." || hidden == b".." {
            return Err(invalid(raw, "malformed whiteout name"));
        }
        self.whiteout_device(header, raw, parent_comps, hidden)
    }

    /// Creates the overlay whiteout (a 0:0 character device) for `parent_comps/hidden`.
    fn whiteout_device(
        &mut self,
        header: &tar::Header,
        raw: &[u8],
        parent_comps: &[&[u8]],
        hidden: &[u8],
    ) -> Result<(), UnpackError> {
        let (uid, gid) = owner(header, raw)?;
        let parent_fd = self.parent(raw, parent_comps)?;
        let parent = parent_fd.as_raw_fd();
        let mut key = parent_comps.join(&b'/');
        if !key.is_empty() {
            key.push(b'/');
        }
        key.extend_from_slice(hidden);
        let name = OsStr::from_bytes(hidden);
        self.make_room(raw, parent, name, &key, false)?;
        mknodat(
            Some(parent),
            name,
            SFlag::S_IFCHR,
            Mode::empty(),
            makedev(0, 0),
        )
        .map_err(io_err(raw, "create whiteout device"))?;
        fchownat(
            Some(parent),
            name,
            Some(uid),
            Some(gid),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(io_err(raw, "chown whiteout device"))?;
        self.inodes += 1;
        Ok(())
    }

    fn directory(
        &mut self,
        raw: &[u8],
        parent: RawFd,
        name: &OsStr,
        key: &[u8],
        meta: Meta,
    ) -> Result<(), UnpackError> {
        let kept = self.make_room(raw, parent, name, key, true)?;
        if !kept {
            mkdirat(Some(parent), name, Mode::from_bits_truncate(0o700))
                .map_err(io_err(raw, "create directory"))?;
        }
        let fd = open_nofollow(parent, name, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .map_err(io_err(raw, "open directory"))?;
        if !kept {
            super::tree::spread(raw, fd.as_raw_fd());
        }
        apply_meta(raw, fd.as_raw_fd(), &meta)?;
        self.dirs.insert(key.to_vec(), Some(meta.mtime));
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw: &[u8],
        parent: RawFd,
        name: &OsStr,
        key: &[u8],
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        self.written = self.written.saturating_add(entry.size());
        if self.written > self.limits.max_tar_bytes {
            return Err(UnpackError::TooLarge {
                limit: self.limits.max_tar_bytes,
            });
        }
        self.make_room(raw, parent, name, key, false)?;
        let fd = openat(
            Some(parent),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map(own)
        .map_err(io_err(raw, "create file"))?;
        let mut file = File::from(fd);
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(UnpackError::EntryData {
                        entry: lossy(raw),
                        source,
                    });
                }
            };
            file.write_all(&buf[..n])
                .map_err(|source| UnpackError::Io {
                    entry: lossy(raw),
                    op: "write file",
                    source,
                })?;
        }
        let fd = file.as_raw_fd();
        apply_meta(raw, fd, meta)?;
        futimens(fd, &meta.mtime, &meta.mtime).map_err(io_err(raw, "set file times"))?;
        self.count_created(fstat(fd).map_err(io_err(raw, "stat file"))?);
        Ok(())
    }

    fn symlink(
        &mut self,
        raw: &[u8],
        parent: RawFd,
        name: &OsStr,
        key: &[u8],
        target: &[u8],
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        self.make_room(raw, parent, name, key, false)?;
        symlinkat(target, Some(parent), name).map_err(io_err(raw, "create symlink"))?;
        fchownat(
            Some(parent),
            name,
            Some(meta.uid),
            Some(meta.gid),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(io_err(raw, "chown symlink"))?;
        for (xname, value) in &meta.xattrs {
            xattr_result(raw, xname, set_xattr_nofollow(parent, name, xname, value))?;
        }
        utimensat(
            Some(parent),
            name,
            &meta.mtime,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(io_err(raw, "set symlink times"))?;
        let st = fstatat(Some(parent), name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(io_err(raw, "stat symlink"))?;
        self.count_created(st);
        Ok(())
    }

    fn hardlink(
        &mut self,
        raw: &[u8],
        parent: RawFd,
        name: &OsStr,
        key: &[u8],
        target: &[u8],
    ) -> Result<(), UnpackError> {
        let reject = |reason| UnpackError::Hardlink {
            entry: lossy(raw),
            target: lossy(target),
            reason,
        };
        let tcomps = match clean_path(target) {
            Ok(c) => c,
            Err(UnpackError::PathEscape { .. }) => {
                return Err(reject("target is outside the layer"));
            }
            Err(UnpackError::PathTooLong { .. }) => return Err(reject("target is too long")),
            Err(_) => return Err(reject("target is not a valid path")),
        };
        let Some((&tname, tparent)) = tcomps.split_last() else {
            return Err(reject("target is the layer root"));
        };
        let tdir = match self.resolve(&tparent.join(&b'/'), OFlag::O_RDONLY | OFlag::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR) => {
                return Err(reject("target does not exist in this layer"));
            }
            Err(e) => return Err(resolve_error(raw, e)),
        };
        let tname = OsStr::from_bytes(tname);
        match fstatat(Some(tdir.as_raw_fd()), tname, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if is_dir(&st) => return Err(reject("target is a directory")),
            Ok(_) => {}
            Err(Errno::ENOENT) => return Err(reject("target does not exist in this layer")),
            Err(e) => return Err(io_err(raw, "stat hard link target")(e)),
        }
        self.make_room(raw, parent, name, key, false)?;
        match linkat(
            Some(tdir.as_raw_fd()),
            tname,
            Some(parent),
            name,
            AtFlags::empty(),
        ) {
            Ok(()) => Ok(()),
            // The target was the entry's own old path, just removed.
            Err(Errno::ENOENT) => Err(reject("target does not exist in this layer")),
            Err(e) => Err(io_err(raw, "create hard link")(e)),
        }
    }

    fn fifo(
        &mut self,
        raw: &[u8],
        parent: RawFd,
        name: &OsStr,
        key: &[u8],
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        self.make_room(raw, parent, name, key, false)?;
        mknodat(
            Some(parent),
            name,
            SFlag::S_IFIFO,
            Mode::from_bits_truncate(0o600),
            0,
        )
        .map_err(io_err(raw, "create fifo"))?;
        // A non-blocking read-only open of a FIFO succeeds at once and gives an fd for chmod.
        let fd = open_nofollow(parent, name, OFlag::O_RDONLY | OFlag::O_NONBLOCK)
            .map_err(io_err(raw, "open fifo"))?;
        apply_meta(raw, fd.as_raw_fd(), meta)?;
        futimens(fd.as_raw_fd(), &meta.mtime, &meta.mtime)
            .map_err(io_err(raw, "set fifo times"))?;
        self.count_created(fstat(fd.as_raw_fd()).map_err(io_err(raw, "stat fifo"))?);
        Ok(())
    }
}
