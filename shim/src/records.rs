//! Exit records: `<pod-state-dir>/exits/<container-id>.json`, written atomically so a reader
//! (the daemon, maybe after a restart) sees the whole record or none.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use corral_shim::proto::{EXITS_DIR, ExitRecord};

use crate::server::Error;

pub fn path(dir: &Path, id: &str) -> PathBuf {
    dir.join(EXITS_DIR).join(format!("{id}.json"))
}

/// Writes the record: temporary file, fsync, rename, fsync of the directory.
pub fn write(dir: &Path, id: &str, record: &ExitRecord) -> Result<(), Error> {
    let exits = dir.join(EXITS_DIR);
    fs::create_dir_all(&exits).map_err(|e| Error::io(&exits, e))?;
    let tmp = exits.join(format!(".{id}.tmp"));
    let body = serde_json::to_vec(record).map_err(|e| Error::Protocol(e.to_string()))?;
    let mut file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(&body)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    let dest = path(dir, id);
    fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))?;
    File::open(&exits)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(&exits, e))?;
    Ok(())
}

/// Deletes the record; an absent one is fine.
pub fn remove(dir: &Path, id: &str) {
    let _ = fs::remove_file(path(dir, id));
}
