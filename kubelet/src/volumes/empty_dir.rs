//! The emptyDir plugin: a directory of the asked mode, a tmpfs of its own for
//! `medium: Memory` (sized by `sizeLimit` or the host's memory), grouped for `fsGroup`.

use super::*;

/// An emptyDir: a directory of the asked mode (0777 by default), on a tmpfs of its own for
/// `medium: Memory`, its contents grouped for `fsGroup`.
pub(super) fn prepare_empty_dir(
    name: &str,
    path: &Path,
    ed: &EmptyDirVolumeSource,
    ownership: Option<Ownership>,
) -> Result<(), VolumeError> {
    let mode = ed.mode.map_or(0o777, |m| m as u32 & 0o7777);
    let created = ensure_dir(path, mode).map_err(io_err(name, path))?;
    if ed.medium.as_deref() == Some("Memory") {
        let size = ed
            .size_limit
            .as_ref()
            .and_then(|q| Quantity::parse(&q.0).ok())
            .map(|q| q.value())
            .filter(|b| *b > 0);
        let mode = ed.mode.map(|m| m as u32 & 0o7777);
        ensure_tmpfs(name, path, size, mode)?;
    } else if !created && ed.mode.is_some() {
        // The kubelet keeps the directory's mode as asked.
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err(name, path))?;
    }
    if let Some(own) = ownership {
        set_ownership(path, own, false).map_err(io_err(name, path))?;
    }
    Ok(())
}
