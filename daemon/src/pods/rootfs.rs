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

/// Unmounts every mount point under `dir`, deepest first (for a bundle no record describes;
/// a recorded one is taken down by [`unmount_bundle`] without reading the mount table).
pub fn unmount_all_under(dir: &Path) -> Result<()> {
    let mut points: Vec<std::path::PathBuf> = corral_fsutil::mountinfo::mount_points()
        .map_err(|e| PodError::io(Path::new("/proc/self/mountinfo"), e))?
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points.dedup();
    for p in points {
        unmount(&p)?;
    }
    Ok(())
}

/// Unmounts what a container's bundle holds: its image volumes (a sub path's bind before the
/// image under it) and its rootfs.
pub fn unmount_bundle(bundle: &Path) -> Result<()> {
    let volumes = bundle.join(super::image_volumes::DIR);
    if let Ok(entries) = std::fs::read_dir(&volumes) {
        let mut points: Vec<std::path::PathBuf> = entries.flatten().map(|e| e.path()).collect();
        // `<n>.sub` sorts after `<n>`: reversed, each sub path goes before its image.
        points.sort();
        for p in points.iter().rev() {
            unmount(p)?;
        }
    }
    unmount(&bundle.join("rootfs"))
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

/// Where a pod's `hosts`, `resolv.conf` and `hostname` live in its state directory: a tmpfs of
/// its own (see [`mount_pod_files`]).
pub const POD_FILES_DIR: &str = "files";

/// Room left in the pod files' tmpfs beyond what is written there at first.
const POD_FILES_SLACK: u64 = 64 * 1024;

/// Mounts the tmpfs that holds the pod's `hosts`, `resolv.conf` and `hostname` at `target`.
///
/// Containers get these files read-write, as from containerd and CRI-O, and the state
/// directory is on `/run` by default, a tmpfs shared with the host's services: a root
/// container with no memory limit could fill it by writing to `/etc/resolv.conf`. A tmpfs per
/// pod, `size=` what the files need (`needed`: the host's `/etc/hosts` and `/etc/resolv.conf`
/// may be copied in) plus 64 KiB, 16 inodes, bounds what a pod can write there; a full one
/// harms only that pod (its pages are charged to the writer's memory cgroup).
pub fn mount_pod_files(target: &Path, needed: u64) -> Result<()> {
    crate::dirs::create(target, crate::dirs::PRIVATE).map_err(|e| PodError::io(target, e))?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let size = needed.saturating_add(POD_FILES_SLACK);
    let data = format!("mode=0755,size={size},nr_inodes=16");
    mount(
        Some("corral-pod-files"),
        target,
        Some("tmpfs"),
        flags,
        Some(data.as_str()),
    )
    .map_err(|e| {
        PodError::Internal(format!(
            "mounting the pod files' tmpfs at {}: {e}",
            target.display()
        ))
    })
}

/// Removes a directory tree; absent is fine. The tree may be a container's writable layer,
/// shaped by the container (thousands of levels deep): `corral_fsutil` removes it without
/// recursion and with a bounded number of descriptors, and a failure is this container's
/// error, never the daemon's.
pub fn remove_tree(dir: &Path) -> Result<()> {
    corral_fsutil::remove_tree(dir).map_err(|e| PodError::io(dir, e.into()))
}
