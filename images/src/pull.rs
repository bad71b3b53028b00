//! Pulling an image: resolve the reference through the configured endpoints, verify every
//! manifest and blob against its digest, and stream each layer from the network into the
//! content store and its snapshot at the same time.
//!
//! Per layer, the async side forwards network chunks over a bounded channel to a blocking
//! thread that writes them to an ingest file (hashing them) and feeds the same bytes to the
//! decompressor and unpacker. Layers run in parallel (each has its own diff directory), bounded
//! by the manager's layer slots. Nothing becomes visible until both the blob digest and the
//! layer's diff ID check out; if the pull is cancelled (deadline, client gone), the channel
//! closes unfinished, the unpacker fails, and the ingest file and staging directory are removed
//! by their guards.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use crate::auth::Credentials;
use crate::digest::{Digest, chain_ids};
use crate::error::{ImageError, Result};
use crate::hosts::Endpoint;
use crate::manager::{ImageManager, Lease};
use crate::reference::ImageRef;
use crate::registry::{FetchError, Target};
use crate::snapshot::{META_VERSION, SnapshotMeta, Staged};
use crate::store::{ConfigSummary, ImageRecord, LayerRecord};
use crate::unpack::{self, Compression};

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// An endpoint with the credentials it gets.
struct Source {
    endpoint: Endpoint,
    credentials: Option<Credentials>,
}

/// What a pull has resolved and verified before it fetches the layers.
struct Fetched {
    top_digest: Digest,
    index: Option<(Digest, Bytes)>,
    manifest_bytes: Bytes,
    manifest_digest: Digest,
    manifest_type: String,
    config: ImageConfiguration,
    config_bytes: Vec<u8>,
    config_digest: Digest,
    layers: Vec<LayerRecord>,
    chains: Vec<Digest>,
}

/// One pull in progress.
struct Pull<'a> {
    mgr: &'a Arc<ImageManager>,
    image: String,
    r: ImageRef,
    sources: Vec<Source>,
}

impl ImageManager {
    /// Pulls `reference` and records it; returns the image record.
    pub async fn pull(
        self: &Arc<Self>,
        reference: &str,
        credentials: Option<Credentials>,
    ) -> Result<ImageRecord> {
        let r = ImageRef::parse(reference)?;
        let image = r.to_string();
        let mut sources = Vec::new();
        for endpoint in self.cfg.hosts.endpoints(&r.registry)? {
            // Credentials given with the request belong to the upstream registry only; a mirror
            // gets what the credentials file holds for its own host.
            let credentials = match (&credentials, endpoint.is_mirror) {
                (Some(c), false) if !c.is_empty() => Some(c.clone()),
                (_, false) => self.cfg.credentials.lookup(&r.registry)?,
                (_, true) => self.cfg.credentials.lookup(endpoint.authority())?,
            };
            sources.push(Source {
                endpoint,
                credentials,
            });
        }
        let pull = Pull {
            mgr: self,
            image,
            r,
            sources,
        };
        pull.run().await
    }
}

impl Pull<'_> {
    fn target<'s>(&'s self, s: &'s Source) -> Target<'s> {
        Target {
            endpoint: &s.endpoint,
            repository: &self.r.repository,
            upstream: &self.r.registry,
            credentials: s.credentials.as_ref(),
        }
    }

    /// What a failed fetch of `kind` `name` (a manifest reference, a blob digest) means.
    fn fetch_error(&self, s: &Source, kind: &'static str, name: &str, e: FetchError) -> ImageError {
        let image = self.image.clone();
        match e {
            FetchError::NotFound(detail) => ImageError::RemoteNotFound {
                image,
                what: format!("{kind} {name}"),
                detail,
            },
            FetchError::Unauthorized(detail) => ImageError::Unauthorized { image, detail },
            FetchError::TooLarge(limit) => ImageError::TooLarge {
                image,
                what: "manifest or config",
                size: limit + 1,
                limit,
            },
            FetchError::Mismatch(detail) => ImageError::Verification {
                image,
                what: kind,
                digest: name.to_owned(),
                detail,
            },
            FetchError::Other(detail) => ImageError::Registry {
                image,
                endpoint: s.endpoint.url.clone(),
                detail,
            },
        }
    }

    /// Tries each endpoint with the capability in order; the first success wins.
    async fn manifest(&self, reference: &str, resolve: bool) -> Result<(Bytes, String)> {
        let mut last = None;
        for s in self.sources.iter().filter(|s| {
            if resolve {
                s.endpoint.resolve
            } else {
                s.endpoint.pull
            }
        }) {
            match self.mgr.registry.manifest(&self.target(s), reference).await {
                Ok(m) => {
                    self.check_claimed_digest(reference, m.claimed_digest.as_deref(), &m.bytes)?;
                    return Ok((m.bytes, m.content_type));
                }
                Err(e @ FetchError::TooLarge(_)) => {
                    return Err(self.fetch_error(s, "manifest", reference, e));
                }
                Err(e) => {
                    tracing::debug!(image = %self.image, endpoint = %s.endpoint.url, error = %e, "manifest fetch failed");
                    last = Some(self.fetch_error(s, "manifest", reference, e));
                }
            }
        }
        Err(last.unwrap_or_else(|| ImageError::Registry {
            image: self.image.clone(),
            endpoint: self.r.registry.clone(),
            detail: "no endpoint may resolve or pull (check capabilities in hosts.toml)".into(),
        }))
    }

    /// A registry that names a manifest's digest (`Docker-Content-Digest`, what containerd
    /// resolves a tag to with a HEAD request and then fetches by) must have sent the bytes of
    /// that digest: a tag that moved between two answers, or a proxy that rewrote the body, is
    /// refused rather than half believed. A digest of another algorithm is not checked here;
    /// the bytes are still what the image is built from.
    fn check_claimed_digest(
        &self,
        reference: &str,
        claimed: Option<&str>,
        bytes: &[u8],
    ) -> Result<()> {
        let Some(claimed) = claimed else {
            return Ok(());
        };
        let got = Digest::of(bytes);
        match Digest::parse(claimed) {
            Ok(d) if d != got => Err(ImageError::Verification {
                image: self.image.clone(),
                what: "manifest",
                digest: reference.to_owned(),
                detail: format!(
                    "the registry names it {claimed} (Docker-Content-Digest) but the manifest it sent hashes to {got}"
                ),
            }),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::debug!(image = %self.image, reference, claimed, error = %e, "Docker-Content-Digest not checked");
                Ok(())
            }
        }
    }

    async fn run(self) -> Result<ImageRecord> {
        let (top_bytes, content_type) = self
            .manifest(&self.r.manifest_reference(), self.r.digest.is_none())
            .await?;
        let top_digest = Digest::of(&top_bytes);
        if let Some(wanted) = &self.r.digest
            && *wanted != top_digest
        {
            return Err(self.verification(
                "manifest",
                wanted,
                format!("content hashes to {top_digest}"),
            ));
        }
        let top_type = media_type(&top_bytes, &content_type);
        let (index, manifest_bytes, manifest_digest, manifest_type) =
            if INDEX_TYPES.contains(&top_type.as_str()) {
                let index: ImageIndex =
                    serde_json::from_slice(&top_bytes).map_err(|e| self.malformed("index", e))?;
                let chosen = self.choose(&index)?;
                let (bytes, ct) = self.manifest(&chosen.to_string(), false).await?;
                let got = Digest::of(&bytes);
                if got != chosen {
                    return Err(self.verification(
                        "manifest",
                        &chosen,
                        format!("content hashes to {got}"),
                    ));
                }
                let mt = media_type(&bytes, &ct);
                (Some((top_digest.clone(), top_bytes)), bytes, chosen, mt)
            } else {
                (None, top_bytes, top_digest.clone(), top_type)
            };
        if !MANIFEST_TYPES.contains(&manifest_type.as_str()) {
            return Err(ImageError::Unsupported {
                image: self.image.clone(),
                what: "manifest type",
                detail: format!("{manifest_type:?} (Docker schema 1 and artifacts cannot be run)"),
            });
        }
        let manifest: ImageManifest =
            serde_json::from_slice(&manifest_bytes).map_err(|e| self.malformed("manifest", e))?;

        let config_desc = manifest.config();
        let config_digest = self.digest_of(config_desc.digest().as_ref(), "config")?;
        let config_bytes = self.config_blob(&config_digest, config_desc.size()).await?;
        let config: ImageConfiguration =
            serde_json::from_slice(&config_bytes).map_err(|e| self.malformed("image config", e))?;
        let diff_ids = config
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| self.digest_of(d, "diff ID"))
            .collect::<Result<Vec<_>>>()?;
        if diff_ids.len() != manifest.layers().len() {
            return Err(ImageError::Malformed {
                image: self.image.clone(),
                what: "image config",
                detail: format!(
                    "{} diff IDs for {} layers",
                    diff_ids.len(),
                    manifest.layers().len()
                ),
            });
        }
        let chains = chain_ids(&diff_ids);
        let mut layers = Vec::new();
        for (desc, diff_id) in manifest.layers().iter().zip(&diff_ids) {
            let media_type = desc.media_type().to_string();
            if Compression::from_media_type(&media_type).is_none() {
                return Err(ImageError::Unsupported {
                    image: self.image.clone(),
                    what: "layer media type",
                    detail: media_type,
                });
            }
            layers.push(LayerRecord {
                digest: self.digest_of(desc.digest().as_ref(), "layer")?,
                size: desc.size(),
                media_type,
                diff_id: diff_id.clone(),
            });
        }

        let mut leased: Vec<Digest> = chains.clone();
        leased.extend(layers.iter().map(|l| l.digest.clone()));
        leased.push(config_digest.clone());
        leased.push(manifest_digest.clone());
        leased.extend(index.as_ref().map(|(d, _)| d.clone()));
        let lease = Arc::new(self.mgr.lease(leased));
        let result = self
            .fetch_and_record(
                &lease,
                Fetched {
                    top_digest,
                    index,
                    manifest_bytes,
                    manifest_digest,
                    manifest_type,
                    config,
                    config_bytes,
                    config_digest,
                    layers,
                    chains,
                },
            )
            .await;
        match &result {
            Ok(_) => lease.disarm(),
            // Kept layers would hold the disk full: nothing is kept for a retry.
            Err(e) if e.is_out_of_space() => lease.discard(),
            // The layers completed stay for a retry (the lease hands them over when it ends).
            Err(_) => {}
        }
        result
    }

    /// Makes sure every layer is unpacked, stores manifest, index and config, and records the
    /// image.
    async fn fetch_and_record(&self, lease: &Arc<Lease>, f: Fetched) -> Result<ImageRecord> {
        // When one layer fails, layers already downloading finish (a retry will find them), but
        // no other starts; the first failure is the pull's.
        let stop = AtomicBool::new(false);
        let first_error = std::sync::Mutex::new(None);
        let chains = &f.chains;
        let (stop_ref, first_ref) = (&stop, &first_error);
        let jobs = f.layers.iter().enumerate().map(|(i, layer)| async move {
            let parent = i.checked_sub(1).map(|p| &chains[p]);
            if let Err(e) = self
                .ensure_layer(layer, &chains[i], parent, lease, stop_ref)
                .await
            {
                first_ref
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(e);
                stop_ref.store(true, Ordering::Release);
            }
        });
        futures::future::join_all(jobs).await;
        if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }

        let content = &self.mgr.content;
        content.put(&self.image, &f.config_digest, &f.config_bytes)?;
        content.put(&self.image, &f.manifest_digest, &f.manifest_bytes)?;
        if let Some((d, bytes)) = &f.index {
            content.put(&self.image, d, bytes)?;
        }

        let size = f.layers.iter().map(|l| l.size).sum::<u64>()
            + f.config_bytes.len() as u64
            + f.manifest_bytes.len() as u64;
        let record = ImageRecord {
            version: ImageRecord::new_version(),
            id: f.config_digest,
            repo_tags: self.r.repo_tag().into_iter().collect(),
            repo_digests: vec![self.r.repo_digest(&f.top_digest)],
            manifest_digest: f.manifest_digest,
            manifest_media_type: f.manifest_type,
            index_digest: f.index.map(|(d, _)| d),
            layers: f.layers,
            chain_ids: f.chains,
            size,
            config: summarise(&f.config),
            pulled_at: now(),
            pinned: false,
        };
        let mgr = Arc::clone(self.mgr);
        let tag = self.r.repo_tag();
        let held = Arc::clone(lease);
        tokio::task::spawn_blocking(move || {
            let _lease = held;
            mgr.records.commit_pull(record, tag.as_deref())
        })
        .await
        .map_err(|e| ImageError::Internal(format!("record task: {e}")))?
    }

    /// Picks the host platform's manifest from an index.
    fn choose(&self, index: &ImageIndex) -> Result<Digest> {
        let want = &self.mgr.cfg.platform;
        let mut best: Option<(u8, &oci_spec::image::Descriptor)> = None;
        for m in index.manifests() {
            let Some(p) = m.platform() else { continue };
            if p.os().to_string() != want.os || p.architecture().to_string() != want.architecture {
                continue;
            }
            // An exact variant beats a missing one; a different variant does not match.
            let rank = match (p.variant().as_deref(), want.variant.as_deref()) {
                (Some(a), Some(b)) if a == b => 2,
                (None, _) => 1,
                (Some(_), None) => 1,
                _ => continue,
            };
            if best.is_none_or(|(r, _)| rank > r) {
                best = Some((rank, m));
            }
        }
        let (_, desc) = best.ok_or_else(|| ImageError::RemoteNotFound {
            image: self.image.clone(),
            what: format!("manifest for platform {want}"),
            detail: format!(
                "the index lists {} other manifests",
                index.manifests().len()
            ),
        })?;
        self.digest_of(desc.digest().as_ref(), "manifest")
    }

    async fn config_blob(&self, digest: &Digest, size: u64) -> Result<Vec<u8>> {
        let limit = self.mgr.cfg.max_config_bytes;
        if size > limit {
            return Err(ImageError::TooLarge {
                image: self.image.clone(),
                what: "image config",
                size,
                limit,
            });
        }
        if self.mgr.content.contains(digest) {
            return self.mgr.content.read(digest);
        }
        let mut last = None;
        for s in self.sources.iter().filter(|s| s.endpoint.pull) {
            match self
                .mgr
                .registry
                .small_blob(&self.target(s), digest.as_str(), size)
                .await
            {
                Ok(bytes) => {
                    let got = Digest::of(&bytes);
                    if got != *digest || bytes.len() as u64 != size {
                        return Err(self.verification(
                            "config",
                            digest,
                            format!(
                                "content hashes to {got} ({} bytes, manifest says {size})",
                                bytes.len()
                            ),
                        ));
                    }
                    return Ok(bytes.to_vec());
                }
                Err(e) => last = Some(self.fetch_error(s, "config", digest.as_str(), e)),
            }
        }
        Err(last.unwrap_or_else(|| self.no_pull_endpoint()))
    }

    /// Makes sure the snapshot for one layer exists, fetching and unpacking it when needed.
    async fn ensure_layer(
        &self,
        layer: &LayerRecord,
        chain_id: &Digest,
        parent: Option<&Digest>,
        lease: &Arc<Lease>,
        stop: &AtomicBool,
    ) -> Result<()> {
        let mgr = self.mgr;
        // One flight per blob: a second pull of the same layer waits, then finds it done.
        let flight = mgr.flight(layer.digest.as_str());
        let _guard = flight.lock().await;
        if mgr.snapshots.exists(chain_id) {
            return Ok(());
        }
        let _slot = mgr
            .layer_slots
            .acquire()
            .await
            .map_err(|_| ImageError::Internal("layer slots closed".into()))?;
        if stop.load(Ordering::Acquire) {
            // Another layer failed the pull (its error is the one reported): start no download.
            return Ok(());
        }
        let staged = mgr.snapshots.stage()?;
        let target = staged.fs_dir();
        let limits = mgr.cfg.unpack_limits.clone();
        let compression =
            Compression::from_media_type(&layer.media_type).unwrap_or(Compression::None);

        let (staged, stats) = if mgr.content.contains(&layer.digest) {
            let path = mgr.content.path(&layer.digest);
            let held = Arc::clone(lease);
            let task = tokio::task::spawn_blocking(move || {
                let _lease = held;
                // The staging guard lives in this thread: dropped only once it stops writing.
                let staged = staged;
                let file = std::fs::File::open(&path)
                    .map_err(|e| unpack::UnpackError::from_io("open blob", e))?;
                unpack::unpack_layer(
                    std::io::BufReader::with_capacity(1 << 20, file),
                    compression,
                    &target,
                    &limits,
                )
                .map(|stats| (staged, stats))
            });
            let (staged, stats) = task
                .await
                .map_err(|e| ImageError::Internal(format!("unpack task: {e}")))?
                .map_err(|source| self.unpack_error(layer, source))?;
            if stats.diff_id != layer.diff_id.as_str() {
                return Err(self.diff_id_mismatch(layer, &stats.diff_id));
            }
            (staged, stats)
        } else {
            // Checks the diff ID itself, before the blob is committed.
            self.download_and_unpack(layer, compression, staged, limits, lease)
                .await?
        };
        let meta = SnapshotMeta {
            version: META_VERSION,
            chain_id: chain_id.clone(),
            diff_id: layer.diff_id.clone(),
            parent: parent.cloned(),
            disk_bytes: stats.disk_bytes,
            inodes: stats.inodes,
            created: now(),
        };
        let mgr2 = Arc::clone(mgr);
        let held = Arc::clone(lease);
        tokio::task::spawn_blocking(move || {
            let _lease = held;
            mgr2.snapshots.commit(staged, &meta)
        })
        .await
        .map_err(|e| ImageError::Internal(format!("commit task: {e}")))?
    }

    async fn download_and_unpack(
        &self,
        layer: &LayerRecord,
        compression: Compression,
        staged: Staged,
        limits: unpack::UnpackLimits,
        lease: &Arc<Lease>,
    ) -> Result<(Staged, unpack::UnpackStats)> {
        let mut resp = None;
        let mut last = None;
        let mut endpoint = String::new();
        for s in self.sources.iter().filter(|s| s.endpoint.pull) {
            match self
                .mgr
                .registry
                .blob(&self.target(s), layer.digest.as_str(), layer.size)
                .await
            {
                Ok(r) => {
                    resp = Some(r);
                    endpoint.clone_from(&s.endpoint.url);
                    break;
                }
                Err(e) => last = Some(self.fetch_error(s, "layer", layer.digest.as_str(), e)),
            }
        }
        let resp = resp.ok_or_else(|| last.unwrap_or_else(|| self.no_pull_endpoint()))?;

        let writer =
            self.mgr
                .content
                .writer(&self.image, layer.digest.clone(), Some(layer.size))?;
        // A few chunks of read-ahead per layer: hyper hands out chunks of up to ~400 KiB, so a
        // deeper queue costs memory (times the layers in flight) and buys no speed.
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let finished = Arc::new(AtomicBool::new(false));
        let reader = ChannelReader {
            rx,
            current: Bytes::new(),
            finished: Arc::clone(&finished),
            writer: Some(writer),
        };
        let expected_diff_id = layer.diff_id.clone();
        let lease = Arc::clone(lease);
        let task = tokio::task::spawn_blocking(move || -> std::result::Result<_, LayerFailure> {
            // Held until this thread is done, so a cancelled pull's sweep runs after it, and the
            // staging directory is removed only once nothing writes into it any more.
            let _lease = lease;
            let staged = staged;
            let target = staged.fs_dir();
            let mut reader = reader;
            let stats = unpack::unpack_layer(&mut reader, compression, &target, &limits)
                .map_err(LayerFailure::Unpack)?;
            // Trailing bytes after the compressed stream still count for the blob digest.
            std::io::copy(&mut reader, &mut std::io::sink())
                .map_err(|e| LayerFailure::Unpack(unpack::UnpackError::from_io("read layer", e)))?;
            let writer = reader.writer.take().ok_or(LayerFailure::Internal)?;
            // Both digests are checked before the blob becomes visible.
            if stats.diff_id != expected_diff_id.as_str() {
                return Err(LayerFailure::DiffId(stats.diff_id));
            }
            writer.commit().map_err(LayerFailure::Blob)?;
            Ok((staged, stats))
        });

        let failed = self.forward_body(resp, layer, &endpoint, &tx).await;
        if failed.is_none() {
            finished.store(true, Ordering::Release);
        }
        // Only now: the reader takes a closed channel without `finished` for a cut download.
        drop(tx);
        let outcome = task
            .await
            .map_err(|e| ImageError::Internal(format!("unpack task: {e}")))?;
        if let Some(e) = failed {
            return Err(e);
        }
        match outcome {
            Ok(stats) => Ok(stats),
            Err(LayerFailure::Unpack(source)) => Err(self.unpack_error(layer, source)),
            Err(LayerFailure::Blob(e)) => Err(e),
            Err(LayerFailure::DiffId(got)) => Err(self.diff_id_mismatch(layer, &got)),
            Err(LayerFailure::Internal) => Err(ImageError::Internal("layer writer lost".into())),
        }
    }

    /// Forwards a layer's body to the unpacker, holding the registry to the minimum rate.
    /// `None` when the body ended, or when the unpacker stopped (its own error tells why).
    /// A cut or too slow transfer is the registry's failure (UNAVAILABLE, worth a retry); more
    /// bytes than the manifest names is bad content.
    async fn forward_body(
        &self,
        resp: reqwest::Response,
        layer: &LayerRecord,
        endpoint: &str,
        tx: &tokio::sync::mpsc::Sender<Bytes>,
    ) -> Option<ImageError> {
        let registry = |detail: String| ImageError::Registry {
            image: self.image.clone(),
            endpoint: endpoint.to_owned(),
            detail,
        };
        let mut stream = resp.bytes_stream();
        let mut rate = RateWindow::new(self.mgr.cfg.min_rate);
        let mut received = 0u64;
        loop {
            let next = match rate.deadline() {
                Some(deadline) => match tokio::time::timeout_at(deadline, stream.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        return Some(registry(format!(
                            "layer {}: {}, after {received} bytes",
                            layer.digest,
                            rate.shortfall()
                        )));
                    }
                },
                None => stream.next().await,
            };
            match next {
                // A body that ends cleanly (no Content-Length, or a chunked one) short of the
                // descriptor's size is the wrong blob, not a cut transfer.
                None if received < layer.size => {
                    return Some(self.verification(
                        "layer",
                        &layer.digest,
                        format!(
                            "the registry ended the body after {received} bytes, the manifest names {}",
                            layer.size
                        ),
                    ));
                }
                None => return None,
                Some(Ok(chunk)) => {
                    rate.record(chunk.len() as u64);
                    received += chunk.len() as u64;
                    if received > layer.size {
                        return Some(self.verification(
                            "layer",
                            &layer.digest,
                            format!(
                                "registry sent more than the {} bytes the manifest names",
                                layer.size
                            ),
                        ));
                    }
                    if tx.send(chunk).await.is_err() {
                        return None;
                    }
                }
                Some(Err(e)) => {
                    return Some(registry(format!(
                        "layer {}: download interrupted after {received} bytes: {}",
                        layer.digest,
                        crate::registry::error_chain(&e)
                    )));
                }
            }
        }
    }

    fn diff_id_mismatch(&self, layer: &LayerRecord, got: &str) -> ImageError {
        self.verification(
            "layer",
            &layer.digest,
            format!(
                "uncompressed content hashes to {got}, config says {}",
                layer.diff_id
            ),
        )
    }

    fn unpack_error(&self, layer: &LayerRecord, source: unpack::UnpackError) -> ImageError {
        ImageError::Unpack {
            image: self.image.clone(),
            digest: layer.digest.to_string(),
            source,
        }
    }

    fn verification(&self, what: &'static str, digest: &Digest, detail: String) -> ImageError {
        ImageError::Verification {
            image: self.image.clone(),
            what,
            digest: digest.to_string(),
            detail,
        }
    }

    fn malformed(&self, what: &'static str, e: impl std::fmt::Display) -> ImageError {
        ImageError::Malformed {
            image: self.image.clone(),
            what,
            detail: e.to_string(),
        }
    }

    fn digest_of(&self, s: &str, what: &'static str) -> Result<Digest> {
        Digest::parse(s).map_err(|detail| ImageError::Malformed {
            image: self.image.clone(),
            what,
            detail,
        })
    }

    fn no_pull_endpoint(&self) -> ImageError {
        ImageError::Registry {
            image: self.image.clone(),
            endpoint: self.r.registry.clone(),
            detail: "no endpoint has the pull capability".into(),
        }
    }
}

enum LayerFailure {
    Unpack(unpack::UnpackError),
    DiffId(String),
    Blob(ImageError),
    Internal,
}

/// Reads the chunks the async side forwards, writing each to the content store on the way.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
    finished: Arc<AtomicBool>,
    writer: Option<crate::content::BlobWriter>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    if let Some(w) = self.writer.as_mut() {
                        w.write(&chunk).map_err(std::io::Error::other)?;
                    }
                    self.current = chunk;
                }
                None if self.finished.load(Ordering::Acquire) => return Ok(0),
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "download aborted before the layer was complete",
                    ));
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// The media type of a manifest: the registry's Content-Type when specific, else the JSON's own.
fn media_type(bytes: &[u8], content_type: &str) -> String {
    if INDEX_TYPES.contains(&content_type) || MANIFEST_TYPES.contains(&content_type) {
        return content_type.to_owned();
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u32>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(Probe {
            media_type: Some(mt),
            ..
        }) => mt,
        Ok(Probe {
            schema_version: Some(1),
            ..
        }) => "application/vnd.docker.distribution.manifest.v1+json".into(),
        Ok(Probe {
            manifests: Some(_), ..
        }) => INDEX_TYPES[0].into(),
        Ok(Probe {
            layers: Some(_), ..
        }) => MANIFEST_TYPES[0].into(),
        _ => content_type.to_owned(),
    }
}

fn summarise(config: &ImageConfiguration) -> ConfigSummary {
    let c = config.config().as_ref();
    let list = |v: Option<&Vec<String>>| v.cloned().unwrap_or_default();
    ConfigSummary {
        os: config.os().to_string(),
        architecture: config.architecture().to_string(),
        user: c.and_then(|c| c.user().clone()).unwrap_or_default(),
        env: list(c.and_then(|c| c.env().as_ref())),
        entrypoint: list(c.and_then(|c| c.entrypoint().as_ref())),
        cmd: list(c.and_then(|c| c.cmd().as_ref())),
        working_dir: c.and_then(|c| c.working_dir().clone()).unwrap_or_default(),
        labels: c
            .and_then(|c| c.labels().clone())
            .map(|l| l.into_iter().collect::<BTreeMap<_, _>>())
            .unwrap_or_default(),
        stop_signal: c.and_then(|c| c.stop_signal().clone()).unwrap_or_default(),
        volumes: list(c.and_then(|c| c.volumes().as_ref())),
        exposed_ports: list(c.and_then(|c| c.exposed_ports().as_ref())),
        created: config.created().clone(),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The minimum transfer rate, measured in windows: each window must bring the rate times its
/// length, or the transfer is too slow.
struct RateWindow {
    rate: crate::MinRate,
    need: u64,
    start: tokio::time::Instant,
    got: u64,
}

impl RateWindow {
    fn new(rate: crate::MinRate) -> RateWindow {
        RateWindow {
            rate,
            need: rate
                .bytes_per_sec
                .saturating_mul(rate.window.as_secs().max(1)),
            start: tokio::time::Instant::now(),
            got: 0,
        }
    }

    /// When the current window ends; `None` when the check is off (a rate of 0).
    fn deadline(&self) -> Option<tokio::time::Instant> {
        (self.need > 0).then(|| self.start + self.rate.window)
    }

    fn record(&mut self, bytes: u64) {
        self.got += bytes;
        if self.got >= self.need {
            (self.start, self.got) = (tokio::time::Instant::now(), 0);
        }
    }

    fn shortfall(&self) -> String {
        format!(
            "the registry sent {} bytes in {:?}, under the minimum rate of {} bytes/s (images.min_pull_rate_bytes_per_sec)",
            self.got, self.rate.window, self.rate.bytes_per_sec
        )
    }
}
