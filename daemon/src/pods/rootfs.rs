//! Container root filesystems: an overlay of the image's layer snapshots (read-only lower
//! directories) with the container's own upper and work directories.

use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::{PodError, Result};

/// Mounts the overlay at `target` (created if missing).
pub fn mount_overlay(lowerdirs: &str, upper: &Path, work: &Path, target: &Path) -> Result<()> {
    for dir in [upper, work, target] {
        std::fs::create_dir_all(dir).map_err(|e| PodError::io(dir, e))?;
    }
    let data = format!(
        "lowerdir={lowerdirs},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    // One page of mount options is the kernel's limit.
    if data.len() >= 4096 {
        return Err(PodError::FailedPrecondition(format!(
            "the image has too many layers to mount as one overlay ({} bytes of options)",
            data.len()
        )));
    }
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|e| PodError::Internal(format!("mounting the rootfs at {}: {e}", target.display())))
}

/// Unmounts whatever is mounted at `target` (repeatedly, in case of stacked mounts); a path
/// that is absent or not a mount point is fine.
pub fn unmount(target: &Path) -> Result<()> {
    for _ in 0..8 {
        match umount2(target, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(Errno::EINVAL | Errno::ENOENT) => return Ok(()),
            Err(e) => {
                return Err(PodError::Internal(format!(
                    "unmounting {}: {e}",
                    target.display()
                )));
            }
        }
    }
    Ok(())
}

/// Mounts the pod's private `/dev/shm` (a 64 MiB tmpfs) at `target`.
pub fn mount_shm(target: &Path) -> Result<()> {
    std::fs::create_dir_all(target).map_err(|e| PodError::io(target, e))?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("shm"),
        target,
        Some("tmpfs"),
        flags,
        Some("mode=1777,size=65536k"),
    )
    .map_err(|e| PodError::Internal(format!("mounting /dev/shm at {}: {e}", target.display())))
}

/// Removes a directory tree; absent is fine.
pub fn remove_tree(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(PodError::io(dir, e)),
    }
}
