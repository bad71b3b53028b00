//! Directories and files that are root's alone: created with their mode, and an existing one
//! (made by an older version, or widened by hand) set back to it.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

/// Creates the directory `path` and its missing parents with `mode`, then sets exactly `mode`
/// on `path` whatever the umask (an existing directory gets it too).
pub fn create_dir(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)?;
    restrict(path, mode)
}

/// Creates the file `path` with `mode` and `body`; one already there (a symlink included) is
/// an error, never written through.
pub fn write_new(path: &Path, body: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?
        .write_all(body)
}

/// Sets `mode` on `path` unless it has it already; a symlink there is left alone (never
/// followed).
pub fn restrict(path: &Path, mode: u32) -> io::Result<()> {
    let md = std::fs::symlink_metadata(path)?;
    if md.file_type().is_symlink() || md.mode() & 0o7777 == mode {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}
