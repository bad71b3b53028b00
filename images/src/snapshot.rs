//! Snapshots: one unpacked layer each, keyed by the layer's chain ID.
//!
//! Layout under its root: `<chain-hex>/fs` is the layer's overlayfs diff directory (whiteouts as
//! 0:0 character devices, opaque directories marked with `trusted.overlay.opaque`), and
//! `<chain-hex>/meta.json` describes it. A layer is unpacked into `.staging/<random>/fs`; only
//! after its digests are verified and its filesystem synced (`syncfs`) is the staging directory
//! renamed to `<chain-hex>`, so a snapshot directory with a `meta.json` is always complete, also
//! after a power loss. Staging leftovers are swept at open.
//! Because every layer has its own diff directory, layers of one image unpack in parallel and a
//! layer shared by several images is stored once.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::fsutil;

const META: &str = "meta.json";
pub const META_VERSION: u32 = 1;

/// What is recorded about a committed snapshot.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotMeta {
    pub version: u32,
    pub chain_id: Digest,
    pub diff_id: Digest,
    pub parent: Option<Digest>,
    /// Bytes the unpacked files use on disk.
    pub disk_bytes: u64,
    pub inodes: u64,
    /// Unix seconds.
    pub created: u64,
}

/// The directory of snapshots.
#[derive(Debug)]
pub struct SnapshotStore {
    root: PathBuf,
    staging: PathBuf,
    /// `syncfs` each layer before its record ([`SnapshotStore::commit`]).
    sync: bool,
}

impl SnapshotStore {
    /// Opens (creating) the store; unfinished staging directories and trees of interrupted
    /// removals are deleted in the background (a big one must not hold up the start). With
    /// `sync`, each layer is written out before it is recorded.
    pub fn open(root: &Path, sync: bool) -> Result<SnapshotStore> {
        let staging = root.join(".staging");
        fsutil::create_private_dir(&staging)?;
        // Each layer's tree is spread to a flex group of its own rather than unpacked beside
        // the files of snapshots deleted moments before (see `fsutil::set_topdir`).
        match fsutil::set_topdir(&staging) {
            Ok(true) => {}
            Ok(false) => tracing::debug!(dir = %staging.display(), "no top-directory flag here"),
            Err(e) => {
                tracing::warn!(dir = %staging.display(), error = %e, "cannot mark the staging directory a top directory")
            }
        }
        let mut leftovers = Vec::new();
        for entry in fs::read_dir(&staging).map_err(ImageError::io("read", &staging))? {
            let entry = entry.map_err(ImageError::io("read", &staging))?;
            leftovers.push(entry.path());
        }
        // Debris of an older daemon's interrupted removal: a directory without its record.
        // Moved into staging first, so the deletion never meets a snapshot committed under
        // the same name meanwhile.
        for entry in fs::read_dir(root).map_err(ImageError::io("read", root))? {
            let entry = entry.map_err(ImageError::io("read", root))?;
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with('.') && !entry.path().join(META).is_file() {
                tracing::info!(dir = %entry.path().display(), "removing a snapshot without its record");
                let trash = staging.join(format!("removed-{}", fsutil::random_name()));
                match fs::rename(entry.path(), &trash) {
                    Ok(()) => leftovers.push(trash),
                    Err(_) => {
                        let _ = fsutil::remove_any(&entry.path());
                    }
                }
            }
        }
        crate::reclaim::in_background(leftovers);
        Ok(SnapshotStore {
            root: root.to_path_buf(),
            staging,
            sync,
        })
    }

    fn dir(&self, chain_id: &Digest) -> PathBuf {
        self.root.join(chain_id.hex())
    }

    /// The diff directory of a committed snapshot.
    pub fn fs_dir(&self, chain_id: &Digest) -> PathBuf {
        self.dir(chain_id).join("fs")
    }

    pub fn exists(&self, chain_id: &Digest) -> bool {
        self.dir(chain_id).join(META).is_file()
    }

    /// Reads a committed snapshot's record.
    pub fn meta(&self, chain_id: &Digest) -> Result<SnapshotMeta> {
        let path = self.dir(chain_id).join(META);
        let data = fs::read(&path).map_err(ImageError::io("read", &path))?;
        serde_json::from_slice(&data).map_err(|e| ImageError::Record {
            path,
            detail: e.to_string(),
        })
    }

    /// A fresh, empty staging directory to unpack into.
    pub fn stage(&self) -> Result<Staged> {
        let dir = self.staging.join(fsutil::random_name());
        fsutil::create_private_dir(&dir.join("fs"))?;
        // The layer's own directories are spread too (the unpacker marks each it makes).
        if let Err(e) = fsutil::set_topdir(&dir.join("fs")) {
            tracing::debug!(dir = %dir.display(), error = %e, "no top-directory flag on the layer root");
        }
        Ok(Staged {
            dir,
            committed: false,
        })
    }

    /// Makes a staged snapshot visible under its chain ID. When another pull committed the same
    /// chain ID first, the staged copy is discarded and that one is kept.
    pub fn commit(&self, mut staged: Staged, meta: &SnapshotMeta) -> Result<()> {
        let target = self.dir(&meta.chain_id);
        // Another pull's copy is kept: this one is neither synced nor recorded.
        if self.exists(&meta.chain_id) {
            return Ok(());
        }
        let data = serde_json::to_vec_pretty(meta)
            .map_err(|e| ImageError::Internal(format!("encode snapshot meta: {e}")))?;
        // The unpacked files reach the disk before the record that calls them complete: after a
        // power loss, ext4's delayed allocation could otherwise leave a committed snapshot of
        // empty files, never unpacked again (containerd's power-loss reports, its opt-in
        // `image_pull_with_sync_fs`, off by default there). Off here only by configuration.
        if self.sync {
            fsutil::sync_filesystem(&staged.dir)?;
        }
        fsutil::write_atomic(&staged.dir.join(META), &data)?;
        // A directory without meta.json is debris from an interrupted removal.
        let _ = fsutil::remove_any(&target);
        fs::rename(&staged.dir, &target).map_err(ImageError::io("commit snapshot", &target))?;
        staged.committed = true;
        fsutil::sync_dir(&self.root)
    }

    /// Takes a snapshot out of the store with one quick operation (its directory renamed into
    /// staging) and returns the directory for the caller to delete
    /// without holding any lock. Staging is swept at start, so a crash before the deletion
    /// leaves nothing visible. `None` when the snapshot was not there.
    pub fn detach(&self, chain_id: &Digest) -> Result<Option<PathBuf>> {
        let dir = self.dir(chain_id);
        // One rename, with its record inside: a crash leaves the snapshot whole or in staging
        // (removing the record first left debris no listing saw).
        let trash = self
            .staging
            .join(format!("removed-{}", fsutil::random_name()));
        match fs::rename(&dir, &trash) {
            Ok(()) => Ok(Some(trash)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ImageError::io("detach snapshot", dir)(e)),
        }
    }

    /// Every committed snapshot.
    pub fn list(&self) -> Result<Vec<SnapshotMeta>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(ImageError::io("read", &self.root))? {
            let entry = entry.map_err(ImageError::io("read", &self.root))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if let Ok(d) = Digest::parse(&format!("sha256:{name}"))
                && let Ok(meta) = self.meta(&d)
            {
                out.push(meta);
            }
        }
        Ok(out)
    }

    /// Number of staging directories present (for tests and diagnostics).
    pub fn staging_count(&self) -> usize {
        fs::read_dir(&self.staging).map(|d| d.count()).unwrap_or(0)
    }

    /// Overlay `lowerdir=` value for a layer stack given bottom first: upper layers first.
    pub fn lowerdirs(&self, chain_ids: &[Digest]) -> String {
        chain_ids
            .iter()
            .rev()
            .map(|c| self.fs_dir(c).to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// A staging directory; removed on drop unless committed.
#[derive(Debug)]
pub struct Staged {
    dir: PathBuf,
    committed: bool,
}

impl Staged {
    /// The directory the layer is unpacked into.
    pub fn fs_dir(&self) -> PathBuf {
        self.dir.join("fs")
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fsutil::remove_any(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::fd::AsRawFd;

    use super::*;

    /// Of `path`'s pages in the page cache, how many are dirty (not yet written to the disk):
    /// the file is mapped, each page touched, and its frame's flags read from
    /// `/proc/kpageflags` (root only, as the daemon runs). Unsafe only for the mapping.
    #[allow(unsafe_code)]
    fn dirty_pages(path: &Path) -> (usize, usize) {
        const PAGE: usize = 4096;
        const KPF_DIRTY: u64 = 1 << 4;
        let file = fs::File::open(path).expect("open");
        let len = file.metadata().expect("stat").len() as usize;
        // SAFETY: a fresh read-only shared mapping of a file this test owns; unmapped below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED, "mmap");
        let pagemap = fs::File::open("/proc/self/pagemap").expect("pagemap");
        let flags = fs::File::open("/proc/kpageflags").expect("kpageflags");
        let (mut pages, mut dirty) = (0, 0);
        for off in (0..len).step_by(PAGE) {
            // SAFETY: `off` is inside the mapping; a volatile read makes the page present.
            unsafe { std::ptr::read_volatile((base as *const u8).add(off)) };
            let mut entry = [0u8; 8];
            let vpn = (base as usize + off) / PAGE;
            std::os::unix::fs::FileExt::read_exact_at(&pagemap, &mut entry, (vpn * 8) as u64)
                .expect("pagemap entry");
            let pfn = u64::from_le_bytes(entry) & ((1 << 55) - 1);
            assert_ne!(pfn, 0, "no frame number: the test needs root");
            let mut word = [0u8; 8];
            std::os::unix::fs::FileExt::read_exact_at(&flags, &mut word, pfn * 8)
                .expect("kpageflags entry");
            pages += 1;
            if u64::from_le_bytes(word) & KPF_DIRTY != 0 {
                dirty += 1;
            }
        }
        // SAFETY: the mapping made above, not used after this.
        unsafe { libc::munmap(base, len) };
        (pages, dirty)
    }

    /// A committed snapshot's files are on the disk, not only in the page cache: its record says
    /// it is complete, so a power loss must not leave it with empty files.
    #[test]
    fn a_committed_snapshot_is_written_out_before_its_record() {
        let root = tempfile::tempdir().expect("tempdir");
        let store = SnapshotStore::open(root.path(), true).expect("open");
        let staged = store.stage().expect("stage");
        let data: Vec<u8> = (0..4u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut f = fs::File::create(staged.fs_dir().join("big")).expect("create");
        f.write_all(&data).expect("write");
        drop(f);
        let diff_id = Digest::of(&data);
        let meta = SnapshotMeta {
            version: META_VERSION,
            chain_id: diff_id.clone(),
            diff_id,
            parent: None,
            disk_bytes: data.len() as u64,
            inodes: 2,
            created: 0,
        };
        store.commit(staged, &meta).expect("commit");
        let (pages, dirty) = dirty_pages(&store.fs_dir(&meta.chain_id).join("big"));
        assert_eq!(pages, 1024);
        assert_eq!(
            dirty, 0,
            "{dirty} of {pages} pages of a committed layer not written out"
        );
    }
}
