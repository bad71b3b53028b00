//! The content store: blobs addressed by digest.
//!
//! Layout under its root: `blobs/sha256/<hex>` for committed blobs, `ingest/<random>` for
//! downloads in progress. A blob is written to an ingest file while it is hashed, fsynced,
//! checked against the expected size and digest, and only then renamed into place, so an
//! interrupted or corrupt download never becomes a visible blob. An ingest file whose writer
//! is dropped without commit is deleted; leftovers from a crash are swept at open.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::fsutil;

/// Blob storage rooted at one directory.
#[derive(Debug)]
pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

impl ContentStore {
    /// Opens (creating) the store and deletes unfinished ingest files.
    pub fn open(root: &Path) -> Result<ContentStore> {
        let blobs = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        fsutil::create_private_dir(&blobs)?;
        fsutil::create_private_dir(&ingest)?;
        for entry in fs::read_dir(&ingest).map_err(ImageError::io("read", &ingest))? {
            let entry = entry.map_err(ImageError::io("read", &ingest))?;
            let _ = fsutil::remove_any(&entry.path());
        }
        Ok(ContentStore { blobs, ingest })
    }

    /// Where a committed blob lives.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Reads a whole (small) blob: manifests and configs.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.path(digest);
        fs::read(&path).map_err(ImageError::io("read blob", path))
    }

    /// Size in bytes of a committed blob.
    pub fn size(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.path(digest)).ok().map(|m| m.len())
    }

    /// Stores a blob already held in memory, verifying it against `expected`.
    pub fn put(&self, image: &str, expected: &Digest, data: &[u8]) -> Result<()> {
        if self.contains(expected) {
            return Ok(());
        }
        let mut w = self.writer(image, expected.clone(), Some(data.len() as u64))?;
        w.write(data)?;
        w.commit()
    }

    /// Starts writing a blob expected to have `digest` and, when known, `size`.
    pub fn writer(&self, image: &str, digest: Digest, size: Option<u64>) -> Result<BlobWriter> {
        let tmp = self.ingest.join(fsutil::random_name());
        let file = File::create(&tmp).map_err(ImageError::io("create ingest file", &tmp))?;
        Ok(BlobWriter {
            image: image.to_owned(),
            target: self.path(&digest),
            blobs_dir: self.blobs.clone(),
            tmp,
            file: Some(file),
            hasher: Sha256::new(),
            written: 0,
            expected: digest,
            size,
        })
    }

    /// Deletes a blob; a missing blob is fine.
    pub fn delete(&self, digest: &Digest) -> Result<()> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(ImageError::io("remove blob", path)(e))
            }
            _ => Ok(()),
        }
    }

    /// Every committed blob and the bytes it uses on disk.
    pub fn list(&self) -> Result<Vec<(Digest, u64)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.blobs).map_err(ImageError::io("read", &self.blobs))? {
            let entry = entry.map_err(ImageError::io("read", &self.blobs))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Ok(d) = Digest::parse(&format!("sha256:{name}")) {
                use std::os::unix::fs::MetadataExt;
                let blocks = entry.metadata().map(|m| m.blocks() * 512).unwrap_or(0);
                out.push((d, blocks));
            }
        }
        Ok(out)
    }

    /// Names of ingest files currently present (for tests and diagnostics).
    pub fn ingest_count(&self) -> usize {
        fs::read_dir(&self.ingest).map(|d| d.count()).unwrap_or(0)
    }
}

/// A blob being written. Dropped without [`BlobWriter::commit`], its temporary file is removed.
#[derive(Debug)]
pub struct BlobWriter {
    image: String,
    target: PathBuf,
    blobs_dir: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    hasher: Sha256,
    written: u64,
    expected: Digest,
    size: Option<u64>,
}

impl BlobWriter {
    /// Appends bytes; fails early when more arrive than the expected size.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        self.written += data.len() as u64;
        if let Some(size) = self.size
            && self.written > size
        {
            return Err(self.mismatch(format!("more than the expected {size} bytes")));
        }
        self.hasher.update(data);
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| ImageError::Internal("blob writer used after commit".into()))?;
        file.write_all(data)
            .map_err(ImageError::io("write ingest file", &self.tmp))
    }

    /// Verifies size and digest, makes the blob durable and visible.
    pub fn commit(mut self) -> Result<()> {
        if let Some(size) = self.size
            && self.written != size
        {
            return Err(self.mismatch(format!("{} bytes instead of {size}", self.written)));
        }
        let got = Digest::from_hasher(std::mem::take(&mut self.hasher));
        if got != self.expected {
            return Err(self.mismatch(format!("content hashes to {got}")));
        }
        let file = self
            .file
            .take()
            .ok_or_else(|| ImageError::Internal("blob writer committed twice".into()))?;
        file.sync_all()
            .map_err(ImageError::io("fsync ingest file", &self.tmp))?;
        drop(file);
        fs::rename(&self.tmp, &self.target).map_err(ImageError::io("commit blob", &self.target))?;
        fsutil::sync_dir(&self.blobs_dir)
    }

    fn mismatch(&self, detail: String) -> ImageError {
        ImageError::Verification {
            image: self.image.clone(),
            what: "blob",
            digest: self.expected.to_string(),
            detail,
        }
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // After a successful commit the temporary name no longer exists.
        let _ = fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_blob_becomes_visible() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ContentStore::open(dir.path()).expect("open");
        let d = Digest::of(b"hello");
        store.put("img", &d, b"hello").expect("put");
        assert_eq!(store.read(&d).expect("read"), b"hello");
        assert_eq!(store.ingest_count(), 0);
    }

    #[test]
    fn corrupt_blob_never_becomes_visible() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ContentStore::open(dir.path()).expect("open");
        let d = Digest::of(b"hello");
        let err = store.put("img", &d, b"HELLO").expect_err("mismatch");
        assert!(err.to_string().contains("hashes to"), "{err}");
        assert!(!store.contains(&d));
        assert_eq!(store.ingest_count(), 0);

        let mut w = store.writer("img", d.clone(), Some(5)).expect("writer");
        assert!(w.write(b"hello!").is_err());
        drop(w);
        assert!(!store.contains(&d));
        assert_eq!(store.ingest_count(), 0);
    }

    #[test]
    fn abandoned_writer_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ContentStore::open(dir.path()).expect("open");
        let d = Digest::of(b"hello");
        let mut w = store.writer("img", d.clone(), None).expect("writer");
        w.write(b"hel").expect("write");
        assert_eq!(store.ingest_count(), 1);
        drop(w);
        assert_eq!(store.ingest_count(), 0);
        assert!(!store.contains(&d));
    }
}
