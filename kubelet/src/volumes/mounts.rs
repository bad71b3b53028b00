//! The host side of the volumes: each in-memory volume's tmpfs (`nosuid,nodev`), and
//! [`teardown`](super::teardown), which unmounts everything under a pod's volume dir and
//! removes it.

use super::*;

/// Mounts a tmpfs on `path` unless one is mounted there already.
pub(super) fn ensure_tmpfs(
    volume: &str,
    path: &Path,
    size: Option<i64>,
    mode: Option<u32>,
) -> Result<(), VolumeError> {
    let canonical = fs::canonicalize(path).map_err(io_err(volume, path))?;
    let mounted = mount_points()
        .map_err(io_err(volume, Path::new("/proc/self/mountinfo")))?
        .iter()
        .any(|(p, t)| *p == canonical && t == "tmpfs");
    if mounted {
        return Ok(());
    }
    let mut options = Vec::new();
    if let Some(bytes) = size.or_else(crate::node::mem_total) {
        options.push(format!("size={bytes}"));
    }
    if let Some(mode) = mode {
        options.push(format!("mode={mode:o}"));
    }
    let data = options.join(",");
    nix::mount::mount(
        Some("tmpfs"),
        &canonical,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(|source| VolumeError::Mount {
        volume: volume.into(),
        path: canonical.clone(),
        source,
    })?;
    tracing::debug!(volume, path = %canonical.display(), options = %data, "tmpfs mounted");
    Ok(())
}

/// Unmounts every mount under `dir` (tmpfs emptyDir, secret and projected volumes) and removes
/// `dir`. Needs only the path, so it works after a restart; a missing `dir` is not an error.
/// Nothing is removed while anything is still mounted under `dir`.
pub fn teardown(dir: &Path) -> Result<(), VolumeError> {
    let teardown_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| VolumeError::Teardown { path, source }
    };
    let canonical = match fs::canonicalize(dir) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(teardown_err(dir)(e)),
    };
    let under = || -> Result<Vec<PathBuf>, VolumeError> {
        let mut points: Vec<PathBuf> = mount_points()
            .map_err(teardown_err(Path::new("/proc/self/mountinfo")))?
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| p.starts_with(&canonical))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        Ok(points)
    };
    // Stacked mounts show up once per layer; a few rounds peel them all.
    for _ in 0..8 {
        let points = under()?;
        if points.is_empty() {
            break;
        }
        for point in points {
            let result = nix::mount::umount2(&point, MntFlags::empty()).or_else(|e| {
                if e == nix::errno::Errno::EBUSY {
                    nix::mount::umount2(&point, MntFlags::MNT_DETACH)
                } else {
                    Err(e)
                }
            });
            match result {
                Ok(()) => tracing::debug!(path = %point.display(), "unmounted"),
                Err(nix::errno::Errno::EINVAL) => {}
                Err(e) => tracing::warn!(path = %point.display(), error = %e, "unmount failed"),
            }
        }
    }
    if let Some(path) = under()?.into_iter().next() {
        return Err(VolumeError::StillMounted {
            dir: dir.to_path_buf(),
            path,
        });
    }
    // emptyDirs are container-shaped trees: removed without recursion (`corral_fsutil`).
    corral_fsutil::remove_tree(&canonical).map_err(|e| teardown_err(&canonical)(e.into()))?;
    tracing::debug!(dir = %canonical.display(), "pod volumes removed");
    Ok(())
}
