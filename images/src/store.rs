//! Image records: what Corral knows about each image, one JSON file per image ID.
//!
//! Layout: `<root>/<config-hex>.json`, written atomically. Tags and digests are fields of the
//! record; the in-memory map is rebuilt from the files at open, so a restart keeps every image.
//! A record that cannot be read is logged and left on disk (not deleted), never a failed start.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::fsutil;

const RECORD_VERSION: u32 = 1;

/// One layer of an image as the manifest describes it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerRecord {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
    pub diff_id: Digest,
}

/// The parts of the image config the runtime uses.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConfigSummary {
    pub os: String,
    pub architecture: String,
    pub user: String,
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: String,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: String,
    pub volumes: Vec<String>,
    pub exposed_ports: Vec<String>,
    pub created: Option<String>,
}

/// Everything recorded about one image (keyed by its config digest, the image ID).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageRecord {
    pub version: u32,
    pub id: Digest,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub manifest_digest: Digest,
    pub manifest_media_type: String,
    pub index_digest: Option<Digest>,
    pub layers: Vec<LayerRecord>,
    pub chain_ids: Vec<Digest>,
    /// Bytes of manifest, config and compressed layers, as containerd reports image size.
    pub size: u64,
    pub config: ConfigSummary,
    /// Unix seconds of the last pull.
    pub pulled_at: u64,
    #[serde(default)]
    pub pinned: bool,
}

impl ImageRecord {
    pub fn new_version() -> u32 {
        RECORD_VERSION
    }

    /// Every blob this image holds in the content store.
    pub fn blobs(&self) -> Vec<Digest> {
        let mut out = vec![self.id.clone(), self.manifest_digest.clone()];
        out.extend(self.index_digest.clone());
        out.extend(self.layers.iter().map(|l| l.digest.clone()));
        out
    }
}

/// The set of records, on disk and in memory.
#[derive(Debug)]
pub struct RecordStore {
    dir: PathBuf,
    records: Mutex<HashMap<Digest, ImageRecord>>,
}

impl RecordStore {
    /// Loads every readable record under `dir`.
    pub fn open(dir: &Path) -> Result<RecordStore> {
        fsutil::create_private_dir(dir)?;
        let mut records = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(ImageError::io("read", dir))? {
            let path = entry.map_err(ImageError::io("read", dir))?.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            match load(&path) {
                Ok(rec) => {
                    records.insert(rec.id.clone(), rec);
                }
                Err(e) => tracing::warn!(error = %e, "skipping unreadable image record"),
            }
        }
        Ok(RecordStore {
            dir: dir.to_path_buf(),
            records: Mutex::new(records),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Digest, ImageRecord>> {
        // A panic while holding the lock cannot leave a half-updated map: every update is a
        // single insert or remove after the file write succeeded.
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path(&self, id: &Digest) -> PathBuf {
        self.dir.join(format!("{}.json", id.hex()))
    }

    fn persist(&self, rec: &ImageRecord) -> Result<()> {
        let data = serde_json::to_vec_pretty(rec)
            .map_err(|e| ImageError::Internal(format!("encode record: {e}")))?;
        fsutil::write_atomic(&self.path(&rec.id), &data)
    }

    pub fn all(&self) -> Vec<ImageRecord> {
        self.lock().values().cloned().collect()
    }

    pub fn get(&self, id: &Digest) -> Option<ImageRecord> {
        self.lock().get(id).cloned()
    }

    /// Finds a record by a predicate.
    pub fn find(&self, pred: impl Fn(&ImageRecord) -> bool) -> Option<ImageRecord> {
        self.lock().values().find(|r| pred(r)).cloned()
    }

    /// Stores a freshly pulled image: merges names into an existing record with the same ID,
    /// and moves `tag` away from any other image that had it. Blocking (fsync).
    pub fn commit_pull(&self, mut rec: ImageRecord, tag: Option<&str>) -> Result<ImageRecord> {
        let mut records = self.lock();
        if let Some(tag) = tag {
            let others: Vec<Digest> = records
                .values()
                .filter(|r| r.id != rec.id && r.repo_tags.iter().any(|t| t == tag))
                .map(|r| r.id.clone())
                .collect();
            for id in others {
                if let Some(mut other) = records.get(&id).cloned() {
                    other.repo_tags.retain(|t| t != tag);
                    self.persist(&other)?;
                    records.insert(id, other);
                }
            }
        }
        if let Some(existing) = records.get(&rec.id) {
            for t in &existing.repo_tags {
                if !rec.repo_tags.contains(t) {
                    rec.repo_tags.push(t.clone());
                }
            }
            for d in &existing.repo_digests {
                if !rec.repo_digests.contains(d) {
                    rec.repo_digests.push(d.clone());
                }
            }
            rec.pinned |= existing.pinned;
        }
        rec.repo_tags.sort();
        rec.repo_digests.sort();
        self.persist(&rec)?;
        records.insert(rec.id.clone(), rec.clone());
        Ok(rec)
    }

    /// Replaces a record's names (used to untag).
    pub fn update(&self, rec: ImageRecord) -> Result<()> {
        let mut records = self.lock();
        self.persist(&rec)?;
        records.insert(rec.id.clone(), rec);
        Ok(())
    }

    /// Deletes a record; a missing one is fine.
    pub fn remove(&self, id: &Digest) -> Result<()> {
        let mut records = self.lock();
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(ImageError::io("remove record", path)(e));
            }
            _ => {}
        }
        fsutil::sync_dir(&self.dir)?;
        records.remove(id);
        Ok(())
    }
}

fn load(path: &Path) -> Result<ImageRecord> {
    let data = std::fs::read(path).map_err(ImageError::io("read", path))?;
    let rec: ImageRecord = serde_json::from_slice(&data).map_err(|e| ImageError::Record {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    if rec.version != RECORD_VERSION {
        return Err(ImageError::Record {
            path: path.to_path_buf(),
            detail: format!("unknown record version {}", rec.version),
        });
    }
    Ok(rec)
}
