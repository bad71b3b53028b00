//! Small durable-file helpers shared by the stores.

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
