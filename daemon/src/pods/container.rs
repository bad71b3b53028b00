//! CreateContainer, StartContainer, StopContainer, RemoveContainer, and following a container
//! until it exits.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use corral_cri_api::v1::{ContainerConfig, ContainerEventType, ContainerState};
use corral_fsutil::time::unix_nanos;
use corral_shim::proto::{CreateRequest, ExitRecord, Request, Response};
use oci_spec::image::ImageConfiguration;

use super::model::{self, ContainerMeta, ContainerStatus, SandboxState, VERSION};
use super::names::new_id;
use super::restore::Restore;
use super::shim_client::ShimClient;
use super::{Container, PodError, Pods, Result, Sandbox, image_volumes, lock, rootfs};
use crate::spec::{self, ContainerInputs, PodPaths};

/// How long to wait for a container to die after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// The log file of a container: the pod's log directory joined with the container's relative
/// log path, which must stay inside it.
fn log_path(dir: &str, rel: &str) -> Result<Option<PathBuf>> {
    if dir.is_empty() || rel.is_empty() {
        return Ok(None);
    }
    let rel_path = Path::new(rel);
    if !rel_path
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
        || rel.contains('\0')
    {
        return Err(PodError::InvalidArgument(format!(
            "container config: log_path {rel:?} must be a relative path inside the pod's log directory"
        )));
    }
    Ok(Some(Path::new(dir).join(rel_path)))
}

impl Pods {
    pub async fn create_container(&self, pod_id: &str, config: ContainerConfig) -> Result<String> {
        let sandbox = self.sandbox(pod_id)?;
        let _pod_op = sandbox.op.lock().await;
        if sandbox.state() != SandboxState::Ready {
            return Err(PodError::FailedPrecondition(format!(
                "pod sandbox {} is not ready",
                sandbox.meta.id
            )));
        }
        // An image that is a checkpoint archive: the config to create comes from it. Only an
        // OCI runtime restores (the built-in runtime has no CRIU integration).
        let (config, restore) = self.prepare_restore(config).await?;
        if restore.is_some() && crate::handlers::is_builtin(&sandbox.meta.runtime_handler) {
            if let Some(r) = restore {
                let _ = tokio::task::spawn_blocking(move || drop(r)).await;
            }
            return Err(PodError::FailedPrecondition(format!(
                "restoring a checkpoint needs a pod on an OCI runtime handler (such as runc); pod {} runs on the built-in runtime",
                sandbox.meta.id
            )));
        }
        let created = self.create_locked(&sandbox, config, restore.as_ref()).await;
        if let Some(r) = restore {
            // The unpacked archive is removed off the async threads (it may be large), and
            // before the answer: nothing of it outlives the call.
            let _ = tokio::task::spawn_blocking(move || drop(r)).await;
        }
        created
    }

    async fn create_locked(
        &self,
        sandbox: &Sandbox,
        config: ContainerConfig,
        restore: Option<&Restore>,
    ) -> Result<String> {
        let md = config.metadata.as_ref().ok_or_else(|| {
            PodError::InvalidArgument("container config: metadata is missing".into())
        })?;
        if md.name.is_empty() {
            return Err(PodError::InvalidArgument(
                "container config: metadata.name is empty".into(),
            ));
        }
        let pod_md = sandbox.config.metadata.clone().unwrap_or_default();
        let name = format!(
            "{}_{}_{}_{}_{}",
            md.name, pod_md.name, pod_md.namespace, pod_md.uid, md.attempt
        );
        let id = new_id();
        let reservation = self.ctr_names.reserve(&name, &id).map_err(|existing| {
            PodError::AlreadyExists(format!(
                "container name {name:?} is already in use by {existing}"
            ))
        })?;
        let image_name = config
            .image
            .as_ref()
            .map(|i| i.image.as_str())
            .unwrap_or("");
        if image_name.is_empty() {
            return Err(PodError::InvalidArgument(
                "container config: image.image is empty".into(),
            ));
        }
        let image = self
            .images
            .resolve(image_name)
            .ok_or_else(|| PodError::NotFound(format!("image {image_name:?} not found")))?;
        let log_path = log_path(&sandbox.config.log_directory, &config.log_path)?;
        let volumes = image_volumes::resolve(&self.images, &config)?;
        // Before anything is made: a request at odds with the pod's user namespace is refused.
        spec::userns::container_userns(&sandbox.config, &config)?;
        let bundle = self.ctr_bundle(&id);
        let records = self.ctr_record_dir(&id);
        let cgroups_path = format!("{}/{id}", sandbox.meta.cgroup_parent);
        let image_config: ImageConfiguration = {
            let raw = self.images.config_json(&image)?;
            serde_json::from_slice(&raw)
                .map_err(|e| PodError::Internal(format!("image {} config: {e}", image.id)))?
        };
        let meta = ContainerMeta {
            version: VERSION,
            id: id.clone(),
            sandbox_id: sandbox.meta.id.clone(),
            name,
            config: model::encode_pb(&config),
            image: image_name.to_owned(),
            image_id: image.id.to_string(),
            image_ref: image
                .repo_digests
                .first()
                .cloned()
                .unwrap_or_else(|| image.id.to_string()),
            log_path,
            image_volumes: volumes.iter().map(|(_, r)| r.id.to_string()).collect(),
            cgroups_path,
            stop_signal: spec::stop_signal(&config, &image_config)?,
            created_at: unix_nanos(std::time::SystemTime::now()),
            restored_from: restore.map(|r| r.archive.clone()),
        };
        let lowerdirs = self.images.lowerdirs(&image);
        let made = self
            .make_container(
                sandbox,
                &config,
                &meta,
                &image_config,
                &lowerdirs,
                &volumes,
                &bundle,
                &records,
                restore,
            )
            .await;
        if let Err(e) = made {
            tracing::warn!(container = %id, error = %e, "CreateContainer failed; cleaning up");
            if let Err(ce) = self
                .discard_container(&sandbox.shim, &meta, &bundle, &records)
                .await
            {
                tracing::warn!(container = %id, error = %ce, "cleanup after a failed CreateContainer");
            }
            return Err(e);
        }
        self.add_container(meta, config, made?);
        reservation.commit();
        self.emit(
            &id,
            Some(sandbox),
            ContainerEventType::ContainerCreatedEvent,
        );
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    async fn make_container(
        &self,
        sandbox: &Sandbox,
        config: &ContainerConfig,
        meta: &ContainerMeta,
        image: &ImageConfiguration,
        lowerdirs: &str,
        volumes: &[(usize, corral_images::ImageRecord)],
        bundle: &Path,
        records: &Path,
        restore: Option<&Restore>,
    ) -> Result<ContainerStatus> {
        if let Some(parent) = meta.log_path.as_deref().and_then(Path::parent) {
            std::fs::create_dir_all(parent).map_err(|e| PodError::io(parent, e))?;
        }
        let rootfs_dir = bundle.join("rootfs");
        let dir = &sandbox.dir;
        let ns = dir.join("ns");
        let userns = spec::userns::container_userns(&sandbox.config, config)?;
        let (upper, work) = (records.join("upper"), records.join("work"));
        let root_ids = userns.as_ref().map(|m| {
            let root = |l: &[oci_spec::runtime::LinuxIdMapping]| {
                corral_runtime::userns::IdMappings::host_of(l, 0).unwrap_or(0)
            };
            (root(&m.uids), root(&m.gids))
        });
        if restore.is_some() && root_ids.is_some() {
            return Err(PodError::FailedPrecondition(
                "restoring a checkpoint into a pod with its own user namespace is not supported"
                    .into(),
            ));
        }
        // Root's alone (see `dirs`): the writable layer and its records, and the bundle with
        // the rootfs mount point. A user-namespaced container's init (the pod's root, a host
        // UID) sets its rootfs up by path, so its bundle belongs to that UID instead.
        crate::dirs::create(records, crate::dirs::PRIVATE).map_err(|e| PodError::io(records, e))?;
        // First, so a restart after a crash from here on finds what to undo (a container
        // without `status.json` is discarded then).
        model::save(&records.join("meta.json"), meta)?;
        crate::dirs::create(bundle, crate::dirs::PRIVATE).map_err(|e| PodError::io(bundle, e))?;
        if let Some((uid, gid)) = root_ids {
            std::os::unix::fs::chown(bundle, Some(uid), Some(gid))
                .map_err(|e| PodError::io(bundle, e))?;
        }
        // The checkpointed writable layer goes in before the overlay is mounted.
        let restore_images = records.join(crate::checkpoint::dump::CHECKPOINT_DIR);
        if let Some(r) = restore {
            r.prepare_rootfs(&upper, lowerdirs, &restore_images).await?;
        }
        match root_ids {
            None => rootfs::mount_overlay(lowerdirs, &upper, &work, &rootfs_dir)?,
            Some(ids) => rootfs::mount_overlay_idmapped(
                lowerdirs,
                &upper,
                &work,
                &rootfs_dir,
                &ns.join("user"),
                ids,
            )?,
        }
        let volume_sources = image_volumes::mount_all(&self.images, config, volumes, bundle)?;
        let pod_ns = super::sandbox::pod_namespaces(&sandbox.config)?;
        let pin = |kind: &str| {
            let p = ns.join(kind);
            p.exists().then_some(p)
        };
        let (net, ipc, uts, pid) = (pin("net"), pin("ipc"), pin("uts"), pin("pid"));
        let shm = dir.join("shm");
        // The pod files' tmpfs; a pod made by an older daemon has them in its directory.
        let files = match dir.join(rootfs::POD_FILES_DIR) {
            f if f.is_dir() => f,
            _ => dir.clone(),
        };
        let cgroups_path = PathBuf::from(&meta.cgroups_path);
        let inputs = ContainerInputs {
            id: &meta.id,
            sandbox_id: &meta.sandbox_id,
            pod: &sandbox.config,
            config,
            image,
            rootfs: &rootfs_dir,
            pod_paths: PodPaths {
                net: net.as_deref(),
                ipc: ipc.as_deref(),
                uts: uts.as_deref(),
                pid: pid.as_deref(),
                hosts: &files.join("hosts"),
                resolv_conf: &files.join("resolv.conf"),
                hostname: &files.join("hostname"),
                shm: (!pod_ns.host_ipc).then_some(shm.as_path()),
            },
            target_pid_ns: None,
            cgroups_path: &cgroups_path,
            lsm: spec::lsm::LsmHost::HOST,
            image_volumes: &volume_sources,
        };
        let mut spec = spec::container_spec(&inputs)?;
        self.inject_cdi_devices(config, &mut spec)?;
        if let Some(m) = &userns {
            spec::userns::apply(&mut spec, m, &ns.join("user"));
        }
        let spec_path = bundle.join("config.json");
        let body =
            serde_json::to_vec_pretty(&spec).map_err(|e| PodError::Internal(e.to_string()))?;
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            // The spec carries the container's environment: root's alone.
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&spec_path)
                .and_then(|mut f| f.write_all(&body))
                .map_err(|e| PodError::io(&spec_path, e))?;
        }
        let request = Request::Create(CreateRequest {
            id: meta.id.clone(),
            bundle: bundle.to_path_buf(),
            log_path: meta.log_path.clone(),
            stdin: config.stdin,
            stdin_once: config.stdin_once,
            tty: config.tty,
            restore: restore.map(|_| restore_images),
        });
        let pid = match sandbox.shim.call(&request).await? {
            Response::Created { pid } => pid,
            other => {
                return Err(PodError::Shim(format!(
                    "unexpected answer to Create: {other:?}"
                )));
            }
        };
        let mut status = ContainerStatus::new();
        status.pid = pid;
        model::save(&records.join("status.json"), &status)?;
        Ok(status)
    }

    /// Applies the CDI devices the container names (`CDI_devices`, and `cdi.k8s.io/*`
    /// annotations holding comma-separated names) from the spec directories, read afresh.
    fn inject_cdi_devices(
        &self,
        config: &ContainerConfig,
        spec: &mut oci_spec::runtime::Spec,
    ) -> Result<()> {
        let mut names: Vec<&str> = config.cdi_devices.iter().map(|d| d.name.as_str()).collect();
        let mut keys: Vec<&String> = config
            .annotations
            .keys()
            .filter(|k| k.starts_with(corral_cdi::ANNOTATION_PREFIX))
            .collect();
        keys.sort();
        for k in keys {
            names.extend(
                config.annotations[k]
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty()),
            );
        }
        if names.is_empty() {
            return Ok(());
        }
        let registry = corral_cdi::Registry::load(&self.cfg.cdi_spec_dirs);
        registry
            .resolve(names)
            .and_then(|edits| edits.apply(spec))
            .map_err(|e| PodError::InvalidArgument(format!("container config: CDI_devices: {e}")))
    }

    /// Undoes whatever a container creation did: the shim's process, the cgroup, the rootfs
    /// mount, the directories.
    pub(super) async fn discard_container(
        &self,
        shim: &ShimClient,
        meta: &ContainerMeta,
        bundle: &Path,
        records: &Path,
    ) -> Result<()> {
        let removed = shim
            .call(&Request::Remove {
                id: meta.id.clone(),
            })
            .await;
        if let Err(e) = removed {
            tracing::debug!(container = %meta.id, error = %e, "shim remove");
        }
        let cgroups = PathBuf::from(&meta.cgroups_path);
        let (bundle, records) = (bundle.to_path_buf(), records.to_path_buf());
        tokio::task::spawn_blocking(move || -> Result<()> {
            corral_runtime::cgroups::kill_and_remove(&cgroups)?;
            rootfs::unmount_bundle(&bundle)?;
            rootfs::remove_tree(&bundle)?;
            rootfs::remove_tree(&records)
        })
        .await
        .map_err(|e| PodError::Internal(e.to_string()))?
    }

    pub async fn start_container(self: &Arc<Self>, id: &str) -> Result<()> {
        let ctr = self.container(id)?;
        let sandbox = self.sandbox(&ctr.meta.sandbox_id)?;
        let _op = ctr.op.lock().await;
        let status = ctr.status();
        if status.state() != ContainerState::ContainerCreated {
            return Err(PodError::FailedPrecondition(format!(
                "container {} is not in the created state",
                ctr.meta.id
            )));
        }
        let started = sandbox
            .shim
            .call(&Request::Start {
                id: ctr.meta.id.clone(),
            })
            .await;
        match started {
            Ok(Response::Started { pid, started_at }) => {
                self.update_status(&ctr, |s| {
                    s.pid = pid;
                    s.started_at = started_at;
                })?;
                self.follow(sandbox.shim.clone(), Arc::clone(&ctr));
                tracing::info!(container = %ctr.meta.id, "container started");
                self.emit(
                    &ctr.meta.id,
                    Some(&sandbox),
                    ContainerEventType::ContainerStartedEvent,
                );
                Ok(())
            }
            Ok(other) => Err(PodError::Shim(format!(
                "unexpected answer to Start: {other:?}"
            ))),
            Err(e) => {
                let now = unix_nanos(std::time::SystemTime::now());
                let message = e.to_string();
                self.update_status(&ctr, |s| {
                    s.started_at = now;
                    s.finished_at = now;
                    s.exit_code = 128;
                    s.reason = "StartError".into();
                    s.message = message.clone();
                })?;
                Err(e)
            }
        }
    }

    /// Follows a running container until it exits, recording the exit.
    pub(super) fn follow(self: &Arc<Self>, shim: ShimClient, ctr: Arc<Container>) {
        let pods = Arc::clone(self);
        tokio::spawn(async move {
            let id = ctr.meta.id.clone();
            match shim.call(&Request::Wait { id: id.clone() }).await {
                Ok(Response::Exited(record)) => {
                    if let Err(e) = pods.record_exit(&ctr, &record) {
                        tracing::warn!(container = %id, error = %e, "recording an exit");
                    }
                }
                Ok(other) => tracing::warn!(container = %id, ?other, "unexpected answer to Wait"),
                Err(e) => {
                    // The shim went away: the pod is lost; exit records, where the shim wrote
                    // them, tell the rest.
                    pods.shim_lost(&ctr.meta.sandbox_id, &e.to_string()).await;
                }
            }
        });
    }

    /// Records an exit (once: later calls keep the first record) and publishes its STOPPED
    /// event. A second caller (the stop and the follower both see the exit) returns only once the
    /// first one has published, so no later event can overtake it.
    pub(super) fn record_exit(&self, ctr: &Container, record: &ExitRecord) -> Result<()> {
        let _exit = lock(&ctr.exit);
        if ctr.status().finished_at != 0 {
            return Ok(());
        }
        self.update_status(ctr, |s| {
            s.finished_at = record.finished_at;
            s.exit_code = record.exit_code;
            if record.oom_killed {
                s.reason = "OOMKilled".into();
            }
        })?;
        if record.oom_killed {
            self.metrics.oom_kill();
        }
        tracing::info!(container = %ctr.meta.id, exit_code = record.exit_code, oom = record.oom_killed, "container exited");
        self.emit_for(
            &ctr.meta.id,
            &ctr.meta.sandbox_id,
            ContainerEventType::ContainerStoppedEvent,
        );
        Ok(())
    }

    /// Applies `change` to the container's status and persists it.
    pub(super) fn update_status(
        &self,
        ctr: &Container,
        change: impl FnOnce(&mut ContainerStatus),
    ) -> Result<()> {
        let mut status = lock(&ctr.status);
        let mut next = status.clone();
        change(&mut next);
        model::save(
            &self.ctr_record_dir(&ctr.meta.id).join("status.json"),
            &next,
        )?;
        *status = next;
        Ok(())
    }

    pub async fn stop_container(&self, id: &str, timeout: i64) -> Result<()> {
        let Ok(ctr) = self.container(id) else {
            return Ok(());
        };
        let sandbox = self.sandbox(&ctr.meta.sandbox_id)?;
        let _op = ctr.op.lock().await;
        self.stop_container_locked(&sandbox.shim, &ctr, timeout)
            .await
    }

    /// Sends the stop signal, waits up to `timeout` seconds, then SIGKILL.
    pub(super) async fn stop_container_locked(
        &self,
        shim: &ShimClient,
        ctr: &Container,
        timeout: i64,
    ) -> Result<()> {
        let status = {
            // An exit being recorded right now is published before this stop reports done.
            let _exit = lock(&ctr.exit);
            ctr.status()
        };
        if status.is_over() {
            return Ok(());
        }
        let id = ctr.meta.id.clone();
        let wait = Request::Wait { id: id.clone() };
        if status.started_at != 0 && timeout > 0 {
            shim.call(&Request::Signal {
                id: id.clone(),
                signal: ctr.meta.stop_signal,
            })
            .await?;
            let limit = Duration::from_secs(timeout.unsigned_abs());
            if let Ok(Ok(Response::Exited(record))) =
                tokio::time::timeout(limit, shim.call(&wait)).await
            {
                return self.record_exit(ctr, &record);
            }
            tracing::info!(container = %id, ?limit, "stop timeout expired; killing");
        }
        shim.call(&Request::Signal {
            id: id.clone(),
            signal: libc::SIGKILL,
        })
        .await?;
        match shim.call_within(&wait, KILL_WAIT).await? {
            Response::Exited(record) => self.record_exit(ctr, &record),
            other => Err(PodError::Shim(format!(
                "unexpected answer to Wait: {other:?}"
            ))),
        }
    }

    pub async fn remove_container(&self, id: &str) -> Result<()> {
        let Ok(ctr) = self.container(id) else {
            return Ok(());
        };
        let sandbox = self.sandbox(&ctr.meta.sandbox_id)?;
        let _op = ctr.op.lock().await;
        self.remove_container_locked(&sandbox, &ctr).await
    }

    pub(super) async fn remove_container_locked(
        &self,
        sandbox: &Sandbox,
        ctr: &Container,
    ) -> Result<()> {
        if sandbox.state() == SandboxState::Ready {
            self.stop_container_locked(&sandbox.shim, ctr, 0).await?;
        }
        let records = self.ctr_record_dir(&ctr.meta.id);
        self.discard_container(&sandbox.shim, &ctr.meta, &ctr.bundle, &records)
            .await?;
        self.forget_container(ctr);
        tracing::info!(container = %ctr.meta.id, "container removed");
        self.emit(
            &ctr.meta.id,
            Some(sandbox),
            ContainerEventType::ContainerDeletedEvent,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_paths_stay_in_the_log_directory() {
        assert_eq!(
            log_path("/var/log/pods/x", "c/0.log").unwrap(),
            Some(PathBuf::from("/var/log/pods/x/c/0.log"))
        );
        assert_eq!(log_path("", "c/0.log").unwrap(), None);
        assert_eq!(log_path("/d", "").unwrap(), None);
        for bad in ["../x.log", "/etc/passwd", "a/../../b", "./a"] {
            let err = log_path("/d", bad).unwrap_err();
            assert!(matches!(err, PodError::InvalidArgument(_)), "{bad}: {err}");
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
}
