//! CreateContainer from a checkpoint archive: when the config's image is an absolute path
//! (CRI-O's convention: an existing file there is a checkpoint archive), the archive is
//! unpacked (untrusted: `checkpoint::archive::unpack`) into a work directory; when it is a
//! local image whose manifest carries CRI-O's or checkpointctl's checkpoint annotation, its
//! one layer (the archive's contents) is copied by the same rules (`archive::copy_dir`). The
//! config to
//! create is made from it and the request (`checkpoint::restore`), and `make_container` then
//! fills the writable layer from the archive's rootfs diff and hands the shim the CRIU images
//! (`CreateRequest.restore`), kept in the container's record directory until it is removed.

use std::path::{Path, PathBuf};

use corral_cri_api::v1::ContainerConfig;

use super::{PodError, Pods, Result};
use crate::checkpoint::{WorkDir, archive, dump, restore, rootfs_diff};

/// Manifest annotations that mark an image as a checkpoint (CRI-O's, checkpointctl's).
const CHECKPOINT_ANNOTATIONS: &[&str] = &[
    "io.kubernetes.cri-o.annotations.checkpoint.name",
    "org.criu.checkpoint.container.name",
];

/// Where an archive's contents come from.
enum Source {
    /// A checkpoint archive file.
    Archive(PathBuf),
    /// A checkpoint image's layer, unpacked.
    Layer(PathBuf),
}

/// An unpacked archive a container is being created from.
pub(super) struct Restore {
    /// Holds the unpacked archive at `archive/`; removed when dropped.
    work: WorkDir,
    /// The archive's path (or checkpoint image) as the client gave it.
    pub archive: PathBuf,
    deleted: Vec<String>,
}

impl Restore {
    fn dir(&self) -> PathBuf {
        self.work.path().join("archive")
    }

    /// Fills `upper` (the new container's empty writable layer; `lowerdirs` the image's, as
    /// overlay's option lists them) from the archive, then moves CRIU's images to `images`.
    pub async fn prepare_rootfs(&self, upper: &Path, lowerdirs: &str, images: &Path) -> Result<()> {
        let dir = self.dir();
        let diff = dir.join(dump::ROOTFS_DIFF);
        let deleted = self.deleted.clone();
        let archive = self.archive.clone();
        let lowers: Vec<PathBuf> = lowerdirs
            .split(':')
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .collect();
        let (upper, images) = (upper.to_path_buf(), images.to_path_buf());
        tokio::task::spawn_blocking(move || -> Result<()> {
            std::fs::create_dir_all(&upper).map_err(|e| PodError::io(&upper, e))?;
            let diff = diff.is_file().then_some(diff.as_path());
            rootfs_diff::apply(diff, &deleted, &upper, &lowers, &archive)?;
            let from = dir.join(dump::CHECKPOINT_DIR);
            std::fs::rename(&from, &images).map_err(|e| PodError::io(&images, e))
        })
        .await
        .map_err(|e| PodError::Internal(e.to_string()))?
    }
}

impl Pods {
    /// `config` as is when its image is not a checkpoint archive; else the config to create
    /// from the archive, and the unpacked archive.
    pub(super) async fn prepare_restore(
        &self,
        config: ContainerConfig,
    ) -> Result<(ContainerConfig, Option<Restore>)> {
        let image = config
            .image
            .as_ref()
            .map_or(String::new(), |i| i.image.clone());
        let Some(path) = restore::archive_path(&image) else {
            return match self.checkpoint_image(&image)? {
                Some(layer) => {
                    self.restore_from(config, image.into(), Source::Layer(layer))
                        .await
                }
                None => Ok((config, None)),
            };
        };
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PodError::NotFound(format!(
                    "checkpoint archive {} not found (an image that is an absolute path names a checkpoint archive)",
                    path.display()
                )));
            }
            Err(e) => return Err(PodError::io(&path, e)),
            Ok(m) if !m.is_file() => {
                return Err(PodError::InvalidArgument(format!(
                    "checkpoint archive {}: not a regular file",
                    path.display()
                )));
            }
            Ok(_) => {}
        }
        self.restore_from(config, path.clone(), Source::Archive(path))
            .await
    }

    /// The layer directory of `image` when it is a local checkpoint image (CRI-O's
    /// `io.kubernetes.cri-o.annotations.checkpoint.name` or checkpointctl's
    /// `org.criu.checkpoint.container.name` manifest annotation, one layer).
    fn checkpoint_image(&self, image: &str) -> Result<Option<PathBuf>> {
        let Some(rec) = self.images.resolve(image) else {
            return Ok(None);
        };
        let Ok(manifest) = self.images.manifest_json(&rec) else {
            return Ok(None);
        };
        let marked = serde_json::from_slice::<serde_json::Value>(&manifest)
            .ok()
            .and_then(|m| m.get("annotations").cloned())
            .is_some_and(|a| CHECKPOINT_ANNOTATIONS.iter().any(|k| a.get(k).is_some()));
        if !marked {
            return Ok(None);
        }
        if rec.chain_ids.len() != 1 {
            return Err(PodError::InvalidArgument(format!(
                "checkpoint image {image}: {} layers (a checkpoint image has one, holding the archive's contents)",
                rec.chain_ids.len()
            )));
        }
        Ok(Some(PathBuf::from(self.images.lowerdirs(&rec))))
    }

    /// Unpacks (or copies) `source` into a work directory and makes the config to create;
    /// `path` is the archive or image as the request named it.
    async fn restore_from(
        &self,
        config: ContainerConfig,
        path: PathBuf,
        source: Source,
    ) -> Result<(ContainerConfig, Option<Restore>)> {
        let work = WorkDir::new(&self.cfg.root)?;
        let archive_path = path.clone();
        let (work, dumps) = tokio::task::spawn_blocking(move || -> Result<_> {
            let dir = work.path().join("archive");
            crate::dirs::create(&dir, crate::dirs::PRIVATE).map_err(|e| PodError::io(&dir, e))?;
            match &source {
                Source::Archive(file) => archive::unpack(file, &dir)?,
                Source::Layer(layer) => archive::copy_dir(layer, &dir, &archive_path)?,
            }
            let dumps = restore::read(&dir, &archive_path)?;
            Ok((work, dumps))
        })
        .await
        .map_err(|e| PodError::Internal(e.to_string()))??;
        let candidates = restore::image_candidates(&dumps.config);
        let Some(found) = candidates.iter().find(|c| self.images.resolve(c).is_some()) else {
            return Err(PodError::NotFound(format!(
                "checkpoint archive {}: its image ({}) is not present here; pull it first",
                path.display(),
                if candidates.is_empty() {
                    "config.dump names none".to_owned()
                } else {
                    candidates.join(", ")
                }
            )));
        };
        let config = restore::container_config(&config, &dumps, found, &path)?;
        tracing::info!(archive = %path.display(), image = %found, "restoring a container from a checkpoint archive");
        Ok((
            config,
            Some(Restore {
                work,
                archive: path,
                deleted: dumps.deleted,
            }),
        ))
    }
}
