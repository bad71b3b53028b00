//! Replacing a file atomically and durably, the one way every store of Corral's does it: a
//! temporary file beside the destination, written and fsynced, renamed over it, then the
//! directory fsynced, so a reader (maybe after a crash) sees the old content or the new one,
//! never a torn file, and the new one survives a power cut once the call returns.
//!
//! [`write_atomic_lazy`] leaves out the directory's fsync: the content is on disk before the
//! rename, so a reader still sees the old content or the new one, whole; only the rename waits
//! for the file system's next commit or write-back (journalled ext4: 5 s by default), so a power
//! cut in between keeps the old file, or none for a new one. The directory fsync is the costly
//! half: about 1.5 ms under load against 0.4 ms for the small file's own fsync (measured on an
//! ext4 without a journal; on a journalled one it commits the whole journal, every directory and
//! mount point made since).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// How the temporary files of [`write_atomic`] begin: one found at start-up is a write a crash
/// interrupted, which a store may remove.
pub const TMP_PREFIX: &str = ".tmp-";

/// The step of [`write_atomic`] that failed and the path it acted on.
#[derive(Debug, thiserror::Error)]
#[error("{step} {}: {source}", path.display())]
pub struct WriteError {
    /// `create`, `write`, `fsync`, `rename into place` or `fsync directory`.
    pub step: &'static str,
    /// The temporary file, the destination or the directory.
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Replaces `path` with `data` atomically and durably. The file is created with `mode` (less
/// the umask); the directory must exist. The temporary file is `.tmp-<name>-<pid>-<n>`, unique
/// per call within the host: two threads of one process may replace the same file at once.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), WriteError> {
    replace(path, data, mode, true)
}

/// [`write_atomic`] without the directory's fsync (see the module's text): for records whose
/// previous version, or absence, is a state their reader handles after a power cut.
pub fn write_atomic_lazy(path: &Path, data: &[u8], mode: u32) -> Result<(), WriteError> {
    replace(path, data, mode, false)
}

fn replace(path: &Path, data: &[u8], mode: u32, durable_name: bool) -> Result<(), WriteError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = dir.join(format!("{TMP_PREFIX}{name}-{}-{n}", std::process::id()));
    let step = |step: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| WriteError { step, path, source }
    };
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(step("create", &tmp))?;
        file.write_all(data).map_err(step("write", &tmp))?;
        file.sync_all().map_err(step("fsync", &tmp))?;
        fs::rename(&tmp, path).map_err(step("rename into place", path))?;
        if durable_name {
            sync_dir(dir).map_err(step("fsync directory", dir))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Fsyncs a directory so that a rename or a new entry inside it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rec.json");
        write_atomic(&path, b"one", 0o600).expect("write");
        write_atomic(&path, b"two", 0o600).expect("write");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path()).expect("read_dir").collect();
        assert_eq!(names.len(), 1, "no temporary file left");
    }

    #[test]
    fn the_lazy_write_replaces_whole_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("status.json");
        write_atomic_lazy(&path, b"first", 0o600).expect("write");
        write_atomic_lazy(&path, b"second", 0o600).expect("write");
        assert_eq!(fs::read(&path).expect("read"), b"second");
        assert_eq!(fs::read_dir(dir.path()).expect("read_dir").count(), 1);
        let e = write_atomic_lazy(&dir.path().join("no/such"), b"x", 0o600).expect_err("no dir");
        assert_eq!(e.step, "create");
    }

    #[test]
    fn threads_replacing_one_file_do_not_collide() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rec");
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..50 {
                        write_atomic(path, &[i; 64], 0o644).expect("write");
                    }
                });
            }
        });
        let data = fs::read(&path).expect("read");
        assert!(data.len() == 64 && data.iter().all(|b| *b == data[0]));
        assert_eq!(fs::read_dir(dir.path()).expect("read_dir").count(), 1);
    }

    #[test]
    fn a_missing_directory_names_the_step_and_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = write_atomic(&dir.path().join("no/such"), b"x", 0o600).expect_err("no dir");
        assert_eq!(e.step, "create");
        assert!(e.path.starts_with(dir.path().join("no")), "{e}");
        assert_eq!(e.source.kind(), io::ErrorKind::NotFound);
    }
}
