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

/// [`mount_overlay`] for a pod with a user namespace (pinned at `userns`): each lower layer
/// enters as a detached idmapped tree (`/proc/self/fd/N`; overlayfs accepts idmapped layers,
/// not an idmapped overlay), so the image's files appear owned by the IDs they have on disk
/// inside the namespace. The upper and work directories stay plain (the mounter, host root,
/// creates the work files, which an idmapped upper would refuse with EOVERFLOW); `upper` is
/// owned by the namespace's root (`root_ids`, host IDs), so what the container writes is owned
/// on disk by the host IDs it runs as, and `/` is its root's.
pub fn mount_overlay_idmapped(
    lowerdirs: &str,
    upper: &Path,
    work: &Path,
    target: &Path,
    userns: &Path,
    root_ids: (u32, u32),
) -> Result<()> {
    use std::os::fd::{AsFd, AsRawFd};
    for dir in [upper, work, target] {
        std::fs::create_dir_all(dir).map_err(|e| PodError::io(dir, e))?;
    }
    std::os::unix::fs::chown(upper, Some(root_ids.0), Some(root_ids.1))
        .map_err(|e| PodError::io(upper, e))?;
    let ns = std::fs::File::open(userns).map_err(|e| PodError::io(userns, e))?;
    // Dropped once the overlay is mounted: it keeps its own private copies of the layers.
    let trees = lowerdirs
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| corral_runtime::userns::idmapped_tree(Path::new(d), ns.as_fd(), false))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let lower = trees
        .iter()
        .map(|t| format!("/proc/self/fd/{}", t.as_raw_fd()))
        .collect::<Vec<_>>()
        .join(":");
    mount_overlay(&lower, upper, work, target)
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
