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

mod errors;
mod layers;
mod manifests;

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
}

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
