//! Small durable-file helpers shared by the stores.

use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::{ImageError, Result};

/// Writes `data` to `path` atomically and durably ([`corral_fsutil::write_atomic`], mode 0666
/// less the umask).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    corral_fsutil::write_atomic(path, data, 0o666)
        .map_err(|e| ImageError::io(e.step, &e.path)(e.source))
}

/// Fsyncs a directory so a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    corral_fsutil::sync_dir(dir).map_err(ImageError::io("fsync directory", dir))
}

/// Writes out everything cached for the filesystem holding `dir` (`syncfs(2)`): one call for a
/// whole unpacked layer, where an fsync per file would cost a journal commit each.
pub fn sync_filesystem(dir: &Path) -> Result<()> {
    let d = std::fs::File::open(dir).map_err(ImageError::io("open for syncfs", dir))?;
    nix::unistd::syncfs(d.as_raw_fd()).map_err(|e| ImageError::io("syncfs", dir)(e.into()))
}

/// Creates a directory and its parents with mode 0700 (exactly, whatever the umask) for the leaf.
pub fn create_private_dir(path: &Path) -> Result<()> {
    corral_fsutil::mode::create_dir(path, 0o700).map_err(ImageError::io("create directory", path))
}

/// Removes a path of any kind; a missing path is not an error. Snapshots hold what a layer
/// shaped, so the removal never recurses and holds few descriptors (`corral_fsutil`).
pub fn remove_any(path: &Path) -> std::io::Result<()> {
    corral_fsutil::remove_tree(path).map_err(std::io::Error::from)
}

/// A random name for temporary entries.
pub fn random_name() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Linux's `FS_TOPDIR_FL` (`chattr +T`): the inode flag `libc` does not name.
const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;

/// Marks `dir` as the top of directory hierarchies (`chattr +T`), so that ext4 places each
/// directory made in it as it places those made in the filesystem's root: in a flex group with
/// free inodes above the average and the fewest directories (the Orlov allocator's spreading),
/// instead of next to its parent. Other filesystems ignore or refuse the flag; `Ok(false)` then.
///
/// Why the unpacker wants it: on ext4 without a journal, inode allocation skips every free inode
/// deleted in the last minute (five more while its inode table block is dirty; the kernel's
/// `recently_deleted`), scanning past each from the start of the group for every new inode. A
/// layer unpacked next to the files of a snapshot deleted moments before paid that scan for
/// each of its thousands of files (55-65 % of the daemon's CPU in `find_inode_bit` and
/// `recently_deleted`).
pub fn set_topdir(dir: &Path) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(dir)?;
    set_topdir_fd(file.as_raw_fd())
}

/// [`set_topdir`] on an open directory.
#[allow(unsafe_code)]
pub fn set_topdir_fd(fd: std::os::fd::RawFd) -> std::io::Result<bool> {
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int through the pointer, which points at `flags`, live
    // for the call; the caller holds `fd` open.
    if unsafe { libc::ioctl(fd, libc::FS_IOC_GETFLAGS, &mut flags) } != 0 {
        return unsupported(std::io::Error::last_os_error());
    }
    if flags & FS_TOPDIR_FL != 0 {
        return Ok(true);
    }
    flags |= FS_TOPDIR_FL;
    // SAFETY: FS_IOC_SETFLAGS reads one int through the pointer, which points at `flags`, live
    // for the call; the caller holds `fd` open.
    if unsafe { libc::ioctl(fd, libc::FS_IOC_SETFLAGS, &flags) } != 0 {
        return unsupported(std::io::Error::last_os_error());
    }
    Ok(true)
}

/// A filesystem without inode flags (tmpfs, overlayfs) or without this one is not an error.
fn unsupported(e: std::io::Error) -> std::io::Result<bool> {
    match e.raw_os_error() {
        Some(libc::ENOTTY | libc::EOPNOTSUPP | libc::EINVAL) => Ok(false),
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topdir_flag_is_set_where_the_filesystem_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let supported = set_topdir(dir.path()).unwrap();
        // lsattr reads the flags where the filesystem has them (ext4 here); there the flag
        // must be set, and it must be `T`, not some other bit.
        let out = std::process::Command::new("lsattr")
            .arg("-d")
            .arg(dir.path())
            .output();
        if let Some(out) = out.ok().filter(|o| o.status.success()) {
            let attrs = String::from_utf8_lossy(&out.stdout);
            let flags = attrs.split_whitespace().next().unwrap_or_default();
            assert!(supported, "lsattr works here but the flag was not set");
            assert!(flags.contains('T'), "lsattr: {attrs}");
            assert!(!flags.contains('j'), "lsattr: {attrs}");
        }
        // Setting it again is a no-op.
        assert_eq!(set_topdir(dir.path()).unwrap(), supported);
    }
}
