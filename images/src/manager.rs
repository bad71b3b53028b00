//! The image manager: the one handle the daemon holds. It owns the content store, the
//! snapshots, the image records and the registry client, and answers the questions of the CRI
//! ImageService (pull, list, status, remove, filesystem usage).
//!
//! Garbage collection: removing an image deletes its record, then every blob and snapshot no
//! record references, no pull in progress holds a lease on, and no failed pull retains. The
//! decision is taken under the lease lock, so a pull that is committing cannot lose a snapshot
//! it relies on.
//!
//! Retention: a pull that fails (or is cancelled) keeps the layers it had completed, verified
//! blobs and committed snapshots, for `failed_pull_retention`, so the retry kubelet makes does
//! not fetch them again (containerd keeps them too). Nothing partial is kept: ingest files and
//! staging directories go at once. Retention lives in memory only: the collection that runs
//! when it expires, or at start-up, removes what no image took up meanwhile. A pull that fails
//! for want of disk space drops every retention and collects at once, so kept layers never
//! hold the disk full.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use crate::auth::CredentialsFile;
use crate::content::ContentStore;
use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::hosts::HostsConfig;
use crate::reference::ImageRef;
use crate::registry::RegistryClient;
use crate::snapshot::SnapshotStore;
use crate::store::{ImageRecord, RecordStore};
use crate::unpack::UnpackLimits;

/// The platform images are chosen for from indexes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of this host, in OCI terms.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            "riscv64" => ("riscv64", None),
            "s390x" => ("s390x", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(str::to_owned),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Settings of the image subsystem.
#[derive(Clone, Debug)]
pub struct ImageConfig {
    /// Root of image state: `content/`, `snapshots/`, `images/` go below it.
    pub root: PathBuf,
    pub hosts: HostsConfig,
    pub credentials: CredentialsFile,
    pub platform: Platform,
    /// Layers downloaded and unpacked at once, across all pulls.
    pub max_concurrent_layers: usize,
    pub max_manifest_bytes: u64,
    pub max_config_bytes: u64,
    pub unpack_limits: UnpackLimits,
    /// Image references never removed by RemoveImage (reported as pinned).
    pub pinned: Vec<String>,
    /// A layer download that brings less than `min_rate.bytes_per_sec` over any
    /// `min_rate.window` fails instead of hanging.
    pub min_rate: MinRate,
    /// How long the layers a failed pull completed are kept for a retry (zero: not kept).
    pub failed_pull_retention: std::time::Duration,
    /// Each unpacked layer is written out (`syncfs`) before it is recorded, so a power cut
    /// cannot leave a recorded layer of empty files. Off: faster pulls, no such guarantee.
    pub sync_layers: bool,
}

/// The slowest a registry may send a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MinRate {
    pub bytes_per_sec: u64,
    pub window: std::time::Duration,
}

impl Default for MinRate {
    /// 1 KiB/s over 30 s: a link that slow is a stalled one.
    fn default() -> Self {
        MinRate {
            bytes_per_sec: 1024,
            window: std::time::Duration::from_secs(30),
        }
    }
}

impl ImageConfig {
    pub fn new(root: impl Into<PathBuf>) -> ImageConfig {
        ImageConfig {
            root: root.into(),
            hosts: HostsConfig::default(),
            credentials: CredentialsFile::default(),
            platform: Platform::host(),
            max_concurrent_layers: 6,
            max_manifest_bytes: 4 << 20,
            max_config_bytes: 16 << 20,
            unpack_limits: UnpackLimits::default(),
            pinned: Vec::new(),
            min_rate: MinRate::default(),
            failed_pull_retention: std::time::Duration::from_secs(3600),
            sync_layers: true,
        }
    }
}

/// Disk use of the image filesystem.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub mountpoint: PathBuf,
    pub used_bytes: u64,
    pub inodes_used: u64,
}

/// The image subsystem.
pub struct ImageManager {
    pub(crate) cfg: ImageConfig,
    pub(crate) content: ContentStore,
    pub(crate) snapshots: SnapshotStore,
    pub(crate) records: RecordStore,
    pub(crate) registry: RegistryClient,
    pub(crate) layer_slots: Arc<tokio::sync::Semaphore>,
    flights: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    leases: Mutex<HashMap<Digest, usize>>,
    /// What failed pulls completed (blobs and chain IDs), kept from collection until then.
    retained: Mutex<HashMap<Digest, Instant>>,
    /// `cfg.pinned`, normalised once to repo tags.
    pinned_tags: HashSet<String>,
}

impl ImageManager {
    /// Opens the stores under `cfg.root`, sweeping what an interrupted run left behind: ingest
    /// files, staging directories, and blobs or snapshots that no image references.
    pub fn open(cfg: ImageConfig) -> Result<Arc<ImageManager>> {
        let content = ContentStore::open(&cfg.root.join("content"))?;
        let snapshots = SnapshotStore::open(&cfg.root.join("snapshots"), cfg.sync_layers)?;
        let records = RecordStore::open(&cfg.root.join("images"))?;
        let registry = RegistryClient::new(cfg.max_manifest_bytes);
        let layer_slots = Arc::new(tokio::sync::Semaphore::new(
            cfg.max_concurrent_layers.max(1),
        ));
        let mut pinned_tags = HashSet::new();
        for p in &cfg.pinned {
            match ImageRef::parse(p).map(|r| r.repo_tag()) {
                Ok(Some(tag)) => {
                    pinned_tags.insert(tag);
                }
                Ok(None) => tracing::warn!(image = %p, "pinned image names no tag; ignored"),
                Err(e) => tracing::warn!(error = %e, "pinned image ignored"),
            }
        }
        let manager = Arc::new(ImageManager {
            pinned_tags,
            cfg,
            content,
            snapshots,
            records,
            registry,
            layer_slots,
            flights: Mutex::new(HashMap::new()),
            leases: Mutex::new(HashMap::new()),
            retained: Mutex::new(HashMap::new()),
        });
        // A daemon that died mid-pull may have committed layers no image references yet.
        manager.collect_garbage()?;
        Ok(manager)
    }

    pub fn config(&self) -> &ImageConfig {
        &self.cfg
    }

    /// Every image.
    pub fn list(&self) -> Vec<ImageRecord> {
        let mut all = self.records.all();
        for r in &mut all {
            r.pinned |= self.is_pinned(r);
        }
        all.sort_by(|a, b| a.repo_tags.cmp(&b.repo_tags).then(a.id.cmp(&b.id)));
        all
    }

    fn is_pinned(&self, r: &ImageRecord) -> bool {
        r.pinned || r.repo_tags.iter().any(|t| self.pinned_tags.contains(t))
    }

    /// Finds an image by ID (full, bare hex, or a unique prefix of at least 4 hex digits),
    /// by tag, by repo digest, or by a short name such as `busybox`.
    pub fn resolve(&self, spec: &str) -> Option<ImageRecord> {
        let spec = spec.trim();
        if spec.is_empty() {
            return None;
        }
        let hex = spec.strip_prefix("sha256:").unwrap_or(spec);
        let hexlike = hex.len() >= 4
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hexlike {
            let matches: Vec<ImageRecord> = self
                .records
                .all()
                .into_iter()
                .filter(|r| r.id.hex().starts_with(hex))
                .collect();
            if matches.len() == 1 {
                return matches.into_iter().next().map(|r| self.with_pin(r));
            }
            if hex.len() == 64 || spec.starts_with("sha256:") {
                return None;
            }
        }
        let r = ImageRef::parse(spec).ok()?;
        let found = match (&r.digest, r.repo_tag()) {
            (Some(d), _) => {
                let wanted = r.repo_digest(d);
                self.records.find(|rec| rec.repo_digests.contains(&wanted))
            }
            (None, Some(tag)) => self.records.find(|rec| rec.repo_tags.contains(&tag)),
            (None, None) => None,
        };
        found.map(|r| self.with_pin(r))
    }

    fn with_pin(&self, mut r: ImageRecord) -> ImageRecord {
        r.pinned |= self.is_pinned(&r);
        r
    }

    /// The raw image config JSON of an image (for verbose status).
    pub fn config_json(&self, rec: &ImageRecord) -> Result<Vec<u8>> {
        self.content.read(&rec.id)
    }

    /// The raw manifest JSON of an image (its annotations mark a checkpoint image).
    pub fn manifest_json(&self, rec: &ImageRecord) -> Result<Vec<u8>> {
        self.content.read(&rec.manifest_digest)
    }

    /// Removes an image. By tag, only that tag goes unless it was the last name; by ID or digest
    /// the whole image goes. Returns false when nothing matched (which CRI counts as success).
    pub async fn remove(self: &Arc<Self>, spec: &str) -> Result<bool> {
        let Some(rec) = self.resolve(spec) else {
            return Ok(false);
        };
        let this = Arc::clone(self);
        let spec = spec.to_owned();
        tokio::task::spawn_blocking(move || this.remove_blocking(&spec, rec))
            .await
            .map_err(|e| ImageError::Internal(format!("remove task: {e}")))?
    }

    fn remove_blocking(&self, spec: &str, mut rec: ImageRecord) -> Result<bool> {
        let by_tag = ImageRef::parse(spec)
            .ok()
            .filter(|r| r.digest.is_none() && !spec.starts_with("sha256:"))
            .and_then(|r| r.repo_tag())
            .filter(|t| rec.repo_tags.contains(t));
        if let Some(tag) = by_tag
            && rec.repo_tags.len() > 1
        {
            rec.repo_tags.retain(|t| *t != tag);
            self.records.update(rec)?;
            return Ok(true);
        }
        self.records.remove(&rec.id)?;
        self.collect_garbage()?;
        Ok(true)
    }

    /// Deletes blobs and snapshots that no image references, no pull holds and no failed pull
    /// retains any more. The snapshots leave the store before this returns; their files are
    /// deleted in the background ([`crate::reclaim`]).
    pub fn collect_garbage(&self) -> Result<()> {
        // Decide and detach under the lease lock (quick renames and unlinks only: pulls take
        // this lock from async code), then delete the detached trees without it.
        let detached = {
            let leases = self.lease_map();
            let mut keep: HashSet<Digest> = leases.keys().cloned().collect();
            {
                let now = Instant::now();
                let mut retained = self.retained_map();
                retained.retain(|_, until| *until > now);
                keep.extend(retained.keys().cloned());
            }
            for rec in self.records.all() {
                keep.extend(rec.blobs());
                keep.extend(rec.chain_ids.iter().cloned());
            }
            let mut detached = Vec::new();
            for meta in self.snapshots.list()? {
                if !keep.contains(&meta.chain_id) {
                    detached.extend(self.snapshots.detach(&meta.chain_id)?);
                }
            }
            for (blob, _) in self.content.list()? {
                if !keep.contains(&blob) {
                    self.content.delete(&blob)?;
                }
            }
            detached
        };
        crate::reclaim::in_background(detached);
        Ok(())
    }

    /// Disk use of images: content blobs plus unpacked snapshots.
    pub fn usage(&self) -> Result<Usage> {
        let mut used_bytes = 0;
        let mut inodes_used = 0;
        for (_, bytes) in self.content.list()? {
            used_bytes += bytes;
            inodes_used += 1;
        }
        for meta in self.snapshots.list()? {
            used_bytes += meta.disk_bytes;
            inodes_used += meta.inodes;
        }
        Ok(Usage {
            mountpoint: self.cfg.root.clone(),
            used_bytes,
            inodes_used,
        })
    }

    /// Leftover temporary state (ingest files, staging directories): zero when idle.
    pub fn temporaries(&self) -> usize {
        self.content.ingest_count() + self.snapshots.staging_count()
    }

    /// Root directory of one committed snapshot's files (for the runtime's overlay mounts).
    pub fn snapshot_dir(&self, chain_id: &Digest) -> PathBuf {
        self.snapshots.fs_dir(chain_id)
    }

    /// The overlay `lowerdir=` option for an image's layer stack.
    pub fn lowerdirs(&self, rec: &ImageRecord) -> String {
        self.snapshots.lowerdirs(&rec.chain_ids)
    }

    pub fn root(&self) -> &Path {
        &self.cfg.root
    }

    fn lease_map(&self) -> MutexGuard<'_, HashMap<Digest, usize>> {
        self.leases.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn retained_map(&self) -> MutexGuard<'_, HashMap<Digest, Instant>> {
        self.retained.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps what a failed pull completed (of `digests`, the blobs and snapshots that exist) for
    /// `failed_pull_retention`, and schedules on `runtime` the collection that removes it then
    /// if no image took it up. A successful pull ends the retention of what it references.
    fn retain_for_retry(self: &Arc<Self>, digests: &[Digest], runtime: &tokio::runtime::Handle) {
        let keep_for = self.cfg.failed_pull_retention;
        // Only what the pull completed: a digest it never stored must not protect what a later
        // pull stores under it.
        let done: Vec<&Digest> = digests
            .iter()
            .filter(|d| self.content.contains(d) || self.snapshots.exists(d))
            .collect();
        if done.is_empty() {
            return;
        }
        let until = Instant::now() + keep_for;
        {
            let mut retained = self.retained_map();
            for d in &done {
                retained.insert((*d).clone(), until);
            }
        }
        tracing::debug!(
            kept = done.len(),
            ?keep_for,
            "keeping what a failed pull completed for its retry"
        );
        let manager = Arc::downgrade(self);
        runtime.spawn(async move {
            tokio::time::sleep(keep_for).await;
            let Some(m) = manager.upgrade() else { return };
            let collected = tokio::task::spawn_blocking(move || m.collect_garbage()).await;
            if let Ok(Err(e)) = collected {
                tracing::warn!(error = %e, "collecting layers kept after a failed pull");
            }
        });
    }

    /// Ends every retention: the disk is needed.
    fn discard_retained(&self) {
        self.retained_map().clear();
    }

    /// Protects digests (blobs or chain IDs) from garbage collection until the guard drops.
    pub(crate) fn lease(self: &Arc<Self>, digests: Vec<Digest>) -> Lease {
        let mut map = self.lease_map();
        for d in &digests {
            *map.entry(d.clone()).or_default() += 1;
        }
        Lease {
            manager: Arc::downgrade(self),
            digests,
            outcome: AtomicU8::new(Lease::RETAIN),
        }
    }

    /// A lock per key, so one piece of work (a layer) is done once while others wait for it.
    pub(crate) fn flight(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        flights.retain(|_, w| w.strong_count() > 0);
        if let Some(lock) = flights.get(key).and_then(Weak::upgrade) {
            return lock;
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        flights.insert(key.to_owned(), Arc::downgrade(&lock));
        lock
    }
}

/// Keeps digests out of garbage collection while held. A pull shares its lease with every
/// blocking task it starts, so the lease ends only when the last of them is done. A lease that
/// ends without [`Lease::disarm`] (the pull failed or was cancelled) hands what the pull
/// completed over to retention (see the module documentation); partial state is gone already,
/// removed by its own guards. [`Lease::discard`] (the pull ran out of disk space) collects at
/// once instead, and ends every other retention too.
pub(crate) struct Lease {
    manager: Weak<ImageManager>,
    digests: Vec<Digest>,
    outcome: AtomicU8,
}

impl Lease {
    const RETAIN: u8 = 0;
    const DISARMED: u8 = 1;
    const DISCARD: u8 = 2;

    /// The pull succeeded: its image references what it committed.
    pub(crate) fn disarm(&self) {
        self.outcome.store(Lease::DISARMED, Ordering::Release);
    }

    /// The pull failed for want of disk space: keep nothing for a retry.
    pub(crate) fn discard(&self) {
        self.outcome.store(Lease::DISCARD, Ordering::Release);
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(m) = self.manager.upgrade() else {
            return;
        };
        let outcome = self.outcome.load(Ordering::Acquire);
        let runtime = tokio::runtime::Handle::try_current();
        let retain = match &runtime {
            Ok(h) if outcome == Lease::RETAIN && !m.cfg.failed_pull_retention.is_zero() => Some(h),
            _ => None,
        };
        // Retained before the lease lets go, so no collection runs in between.
        if let Some(h) = retain {
            m.retain_for_retry(&self.digests, h);
        }
        {
            let mut map = m.lease_map();
            for d in &self.digests {
                if let Some(n) = map.get_mut(d) {
                    *n -= 1;
                    if *n == 0 {
                        map.remove(d);
                    }
                }
            }
        }
        if outcome == Lease::DISARMED {
            // An image references all of it now: a retention has done its work.
            let mine: HashSet<&Digest> = self.digests.iter().collect();
            m.retained_map().retain(|d, _| !mine.contains(d));
            return;
        }
        if retain.is_some() {
            return;
        }
        if outcome == Lease::DISCARD {
            m.discard_retained();
        }
        let sweep = move || {
            if let Err(e) = m.collect_garbage() {
                tracing::warn!(error = %e, "cleaning up after a failed pull");
            }
        };
        match runtime {
            Ok(h) => drop(h.spawn_blocking(sweep)),
            Err(_) => sweep(),
        }
    }
}
