//! CheckpointContainer's work on a running container: CRIU's images through the pod's shim,
//! then the archive (see `crate::checkpoint` for its layout) written where the client asked.
//! The container keeps running (the CRI's CheckpointContainer is Kubernetes' forensic
//! checkpoint: `leave_running`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use corral_cri_api::v1::ContainerState;
use corral_fsutil::time::{rfc3339_nano, unix_nanos};
use corral_shim::proto::{CheckpointRequest, Request, Response};

use super::{PodError, Pods, Result};
use crate::checkpoint::dump::{self, ConfigDump};
use crate::checkpoint::{CheckpointError, WorkDir, archive, rootfs_diff};

/// Time the shim gets beyond the dump's own limit to answer.
const ANSWER_SLACK: Duration = Duration::from_secs(30);

impl From<CheckpointError> for PodError {
    fn from(e: CheckpointError) -> PodError {
        match e {
            CheckpointError::Invalid { .. } => PodError::InvalidArgument(e.to_string()),
            CheckpointError::Io { path, source } => PodError::Io { path, source },
        }
    }
}

impl Pods {
    /// Checkpoints running container `id` into an archive at `location` (absolute), giving
    /// the dump `timeout`.
    pub async fn checkpoint_container(
        &self,
        id: &str,
        location: &Path,
        timeout: Duration,
    ) -> Result<()> {
        let ctr = self.container(id)?;
        let sandbox = self.sandbox(&ctr.meta.sandbox_id)?;
        if let Some(why) = self
            .handlers()
            .cannot_checkpoint(&sandbox.meta.runtime_handler)
        {
            return Err(PodError::FailedPrecondition(why));
        }
        let _op = ctr.op.lock().await;
        if ctr.status().state() != ContainerState::ContainerRunning {
            return Err(PodError::FailedPrecondition(format!(
                "container {} is not running",
                ctr.meta.id
            )));
        }
        let work = WorkDir::new(&self.cfg.root)?;
        let contents = work.path().join("archive");
        let images = contents.join(dump::CHECKPOINT_DIR);
        let criu_work = work.path().join("work");
        for d in [&contents, &images, &criu_work] {
            crate::dirs::create(d, crate::dirs::PRIVATE).map_err(|e| PodError::io(d, e))?;
        }
        let spec_path = ctr.bundle.join("config.json");
        let spec = std::fs::read(&spec_path).map_err(|e| PodError::io(&spec_path, e))?;
        write_private(&contents.join(dump::SPEC_DUMP), &spec)?;
        let meta = &ctr.meta;
        let config = ConfigDump {
            id: meta.id.clone(),
            name: meta.name.clone(),
            rootfs_image: meta.image.clone(),
            rootfs_image_ref: meta.image_id.clone(),
            rootfs_image_name: meta.image_ref.clone(),
            runtime: sandbox.meta.runtime_handler.clone(),
            created_time: rfc3339_nano(meta.created_at),
            checkpointed_time: rfc3339_nano(unix_nanos(std::time::SystemTime::now())),
            restored_time: String::new(),
            restored: meta.restored_from.is_some(),
        };
        let body = serde_json::to_vec(&config).map_err(|e| PodError::Internal(e.to_string()))?;
        write_private(&contents.join(dump::CONFIG_DUMP), &body)?;

        let request = Request::Checkpoint(CheckpointRequest {
            id: meta.id.clone(),
            images_dir: images,
            work_dir: criu_work.clone(),
            leave_running: true,
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        });
        match sandbox
            .shim
            .call_within(&request, timeout + ANSWER_SLACK)
            .await?
        {
            Response::Ok => {}
            other => {
                return Err(PodError::Shim(format!(
                    "unexpected answer to Checkpoint: {other:?}"
                )));
            }
        }
        tracing::info!(container = %meta.id, "CRIU dump done; writing the archive");
        let upper = self.container_upper(&meta.id);
        // The image's layers, for what opaque directories of the writable layer hide.
        let lowers: Vec<PathBuf> = self
            .images
            .resolve(&meta.image_id)
            .map(|image| self.images.lowerdirs(&image))
            .unwrap_or_default()
            .split(':')
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .collect();
        let log = meta.log_path.clone();
        let location = location.to_path_buf();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let deleted = rootfs_diff::write(&upper, &lowers, &contents.join(dump::ROOTFS_DIFF))?;
            if !deleted.is_empty() {
                let body =
                    serde_json::to_vec(&deleted).map_err(|e| PodError::Internal(e.to_string()))?;
                write_private(&contents.join(dump::DELETED_FILES), &body)?;
            }
            copy_if_present(
                &criu_work.join(dump::DUMP_LOG),
                &contents.join(dump::DUMP_LOG),
            )?;
            if let Some(log) = &log {
                copy_if_present(log, &contents.join(dump::CONTAINER_LOG))?;
            }
            archive::write(&contents, &location)?;
            // Removed here, off the async threads: it holds the container's memory.
            drop(work);
            Ok(())
        })
        .await
        .map_err(|e| PodError::Internal(e.to_string()))??;
        tracing::info!(container = %id, "checkpoint written");
        Ok(())
    }
}

/// Writes a root-only file.
fn write_private(path: &Path, body: &[u8]) -> Result<()> {
    corral_fsutil::mode::write_new(path, body, 0o600).map_err(|e| PodError::io(path, e))
}

/// Copies the regular file at `from` (not through a symlink at its last component) to `to`;
/// nothing when it is absent.
fn copy_if_present(from: &Path, to: &PathBuf) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut src = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(from)
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        other => other.map_err(|e| PodError::io(from, e))?,
    };
    if !src.metadata().map_err(|e| PodError::io(from, e))?.is_file() {
        return Ok(());
    }
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .map_err(|e| PodError::io(to, e))?;
    std::io::copy(&mut src, &mut dst).map_err(|e| PodError::io(to, e))?;
    Ok(())
}
