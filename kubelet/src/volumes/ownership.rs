//! `fsGroup`: the kubelet's `SetVolumeOwnership`, a walk that opens every entry relative to
//! its parent and never follows a symlink, or only the root for `OnRootMismatch`.

use super::*;

/// `/proc/self/fd/N`: reaches exactly the file `f` refers to, whatever its path now is.
pub(super) fn fd_path(f: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()))
}

/// Opens `path` as an `O_PATH` handle without following a symlink at its last component.
pub(super) fn open_path(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// The mode bits fsGroup adds to a file or directory.
pub(super) fn fs_group_mask(is_dir: bool, read_only: bool) -> u32 {
    let mut mask = if read_only { 0o440 } else { 0o660 };
    if is_dir {
        mask |= 0o2000 | 0o110;
    }
    mask
}

/// The kubelet's `SetVolumeOwnership` on the tree at `root`: group `gid`, the group mask and
/// setgid directories; symlinks only re-grouped. Every entry is opened relative to its parent's
/// handle with `O_NOFOLLOW`, so symlinks in the tree are never followed.
pub(super) fn set_ownership(root: &Path, own: Ownership, read_only: bool) -> io::Result<()> {
    let dir = open_path(root)?;
    let meta = dir.metadata()?;
    if own.on_root_mismatch {
        let mask = fs_group_mask(true, read_only);
        if meta.gid() == own.gid && meta.mode() & mask == mask {
            tracing::debug!(path = %root.display(), "fsGroup ownership already set");
            return Ok(());
        }
    }
    apply_group(&dir, &meta, own.gid, read_only)?;
    walk_ownership(root, own.gid, read_only)
}

/// fsGroup on `root` itself only.
pub(super) fn set_ownership_shallow(
    root: &Path,
    own: Ownership,
    read_only: bool,
) -> io::Result<()> {
    let dir = open_path(root)?;
    let meta = dir.metadata()?;
    apply_group(&dir, &meta, own.gid, read_only)
}

/// fsGroup on everything below `root`. The tree is the pod's (an emptyDir can be thousands of
/// levels deep): `corral_fsutil::walk` goes through it without recursion, with a bounded
/// number of descriptors and without following symlinks; each entry is opened `O_PATH |
/// O_NOFOLLOW` through its directory's descriptor and changed through that handle.
pub(super) fn walk_ownership(root: &Path, gid: u32, read_only: bool) -> io::Result<()> {
    struct Group {
        gid: u32,
        read_only: bool,
    }
    impl corral_fsutil::Visitor for Group {
        fn entry(&mut self, e: &corral_fsutil::Entry<'_>) -> io::Result<()> {
            let path = e.proc_path();
            let child = open_path(&path)?;
            let meta = child.metadata()?;
            if meta.file_type().is_symlink() {
                return std::os::unix::fs::lchown(&path, None, Some(self.gid));
            }
            apply_group(&child, &meta, self.gid, self.read_only)
        }
    }
    corral_fsutil::walk(root, &mut Group { gid, read_only }).map_err(io::Error::from)
}

pub(super) fn apply_group(
    f: &File,
    meta: &fs::Metadata,
    gid: u32,
    read_only: bool,
) -> io::Result<()> {
    let path = fd_path(f);
    std::os::unix::fs::chown(&path, None, Some(gid))?;
    let mode = (meta.mode() & 0o7777) | fs_group_mask(meta.is_dir(), read_only);
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))
}
