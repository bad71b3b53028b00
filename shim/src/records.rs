//! Exit records: `<pod-state-dir>/exits/<container-id>.json`, written atomically by the shim so
//! a reader (the daemon, maybe after a restart, maybe after the shim died) sees the whole record
//! or none.

use std::fs::{self, File};
use std::io::{self, Write};
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

/// Replaces `dest` with `data` atomically: a temporary file beside it, fsync, rename, fsync of
/// the directory. The directory is created if missing.
pub fn write_atomic(dest: &Path, data: &[u8]) -> io::Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    // Unique per call: two threads of one process may replace the same record.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&tmp, dest)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
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
