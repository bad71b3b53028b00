//! Exit records: `<pod-state-dir>/exits/<container-id>.json`, written atomically by the shim so
//! a reader (the daemon, maybe after a restart, maybe after the shim died) sees the whole record
//! or none.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::proto::{EXITS_DIR, ExitRecord};

/// Where the record of container `id` lives under the pod's state directory `dir`.
pub fn path(dir: &Path, id: &str) -> PathBuf {
    dir.join(EXITS_DIR).join(format!("{id}.json"))
}

/// Writes the record atomically.
pub fn write(dir: &Path, id: &str, record: &ExitRecord) -> io::Result<()> {
    let body = serde_json::to_vec(record).map_err(io::Error::other)?;
    write_atomic(&path(dir, id), &body)
}

/// Reads the record; `None` when there is none (or it cannot be parsed).
pub fn read(dir: &Path, id: &str) -> Option<ExitRecord> {
    let body = fs::read(path(dir, id)).ok()?;
    serde_json::from_slice(&body).ok()
}

/// Deletes the record; an absent one is fine.
pub fn remove(dir: &Path, id: &str) {
    let _ = fs::remove_file(path(dir, id));
}

/// Replaces `dest` with `data` atomically and durably ([`corral_fsutil::write_atomic`]); the
/// directory is created if missing.
pub fn write_atomic(dest: &Path, data: &[u8]) -> io::Result<()> {
    fs::create_dir_all(dest.parent().unwrap_or(Path::new(".")))?;
    corral_fsutil::write_atomic(dest, data, 0o666).map_err(|e| e.source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let rec = ExitRecord {
            exit_code: 137,
            signal: Some(9),
            finished_at: 42,
            oom_killed: true,
        };
        assert_eq!(read(dir.path(), "c1"), None);
        write(dir.path(), "c1", &rec).unwrap();
        assert_eq!(read(dir.path(), "c1"), Some(rec));
        let names: Vec<_> = fs::read_dir(dir.path().join(EXITS_DIR)).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left");
        remove(dir.path(), "c1");
        assert_eq!(read(dir.path(), "c1"), None);
    }
}
