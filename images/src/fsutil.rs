//! Small durable-file helpers shared by the stores.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{ImageError, Result};

/// Writes `data` to `path` atomically: a temporary file beside it, fsync, rename, fsync of the
/// directory. A reader sees the old content or the new one, never a torn file.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = parent(path)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        rand::random::<u64>()
    ));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(ImageError::io("create", &tmp))?;
        f.write_all(data).map_err(ImageError::io("write", &tmp))?;
        f.sync_all().map_err(ImageError::io("fsync", &tmp))?;
        fs::rename(&tmp, path).map_err(ImageError::io("rename into place", path))?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Fsyncs a directory so a rename inside it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ImageError::io("fsync directory", dir))
}

fn parent(path: &Path) -> Result<PathBuf> {
    path.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| ImageError::Internal(format!("{} has no parent directory", path.display())))
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
