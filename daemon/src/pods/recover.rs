//! Start-up recovery: load the records, ask each live shim what happened while the daemon was
//! away, and settle what cannot be asked. It never fails the daemon's start: a record that
//! cannot be read is logged and skipped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use corral_cri_api::v1::{ContainerConfig, ContainerEventType, PodSandboxConfig};
use corral_shim::proto::{ContainerInfo, Request, Response};

use super::model::{
    self, ContainerMeta, ContainerStatus, SandboxMeta, SandboxState, SandboxStatus,
};
use super::{Container, PodError, Pods, Result, Sandbox, lock, rootfs};

/// How long one shim may take to answer during recovery.
const INFO_TIMEOUT: Duration = Duration::from_secs(5);

fn record_dirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

impl Pods {
    /// Loads every pod and container and reconciles them with their shims.
    pub async fn recover(self: &Arc<Self>) {
        for dir in record_dirs(&self.cfg.root.join("pods")) {
            if !dir.join("meta.json").exists() {
                // A RunPodSandbox that a crash stopped before its first record (nothing else
                // of the pod was made yet), or a removal after it was removed.
                self.discard_leftover(&dir);
            } else if let Err(e) = self.load_sandbox(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "skipping a pod sandbox record");
            }
        }
        for dir in record_dirs(&self.cfg.root.join("containers")) {
            if !dir.join("meta.json").exists() {
                // Creation stopped before its first record, or removal after it was removed.
                self.discard_leftover(&dir);
                continue;
            }
            match self.load_container(&dir) {
                Ok(None) => {}
                Ok(Some(meta)) => self.discard_half_made(meta).await,
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "skipping a container record")
                }
            }
        }
        self.discard_unrecorded_state().await;
        // Grouped once: asking for each pod's containers in turn is quadratic, minutes with
        // tens of thousands of records.
        let mut by_pod: HashMap<String, Vec<Arc<Container>>> = HashMap::new();
        for ctr in self.containers() {
            by_pod
                .entry(ctr.meta.sandbox_id.clone())
                .or_default()
                .push(ctr);
        }
        let tasks: Vec<_> = self
            .sandboxes()
            .into_iter()
            .map(|sb| {
                let pods = Arc::clone(self);
                let ctrs = by_pod.remove(&sb.meta.id).unwrap_or_default();
                tokio::spawn(async move { pods.reconcile(&sb, ctrs).await })
            })
            .collect();
        for task in tasks {
            let _ = task.await;
        }
        tracing::info!(
            pods = self.sandboxes().len(),
            containers = self.containers().len(),
            "recovered pod sandboxes and containers"
        );
    }

    fn load_sandbox(&self, dir: &Path) -> Result<()> {
        let meta: SandboxMeta = model::load(&dir.join("meta.json"))?;
        let status: SandboxStatus = model::load(&dir.join("status.json"))
            .unwrap_or(SandboxStatus::new(SandboxState::NotReady));
        let config: PodSandboxConfig = model::decode_pb(&meta.config, dir)?;
        let network_file = dir.join(super::sandbox::NETWORK_FILE);
        let network = if network_file.exists() {
            match model::load(&network_file) {
                Ok(rec) => Some(rec),
                Err(e) => {
                    tracing::error!(pod = %meta.id, error = %e, "network record unreadable: CNI DEL cannot run for this pod");
                    None
                }
            }
        } else {
            None
        };
        self.pod_names.insert(&meta.name, &meta.id);
        self.add_sandbox(meta, config, status.state, network);
        Ok(())
    }

    /// Loads a container; a creation that a crash interrupted (no status record yet) is
    /// returned for discarding instead.
    fn load_container(&self, dir: &Path) -> Result<Option<ContainerMeta>> {
        let meta: ContainerMeta = model::load(&dir.join("meta.json"))?;
        if !dir.join("status.json").exists() {
            return Ok(Some(meta));
        }
        let status: ContainerStatus = match model::load(&dir.join("status.json")) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(container = %meta.id, error = %e, "status unreadable; state unknown");
                let mut s = ContainerStatus::new();
                s.unknown = true;
                s.message = format!("the status record could not be read: {e}");
                s
            }
        };
        if self.sandbox(&meta.sandbox_id).is_err() {
            return Err(PodError::Corrupt(format!(
                "its pod sandbox {} is gone",
                meta.sandbox_id
            )));
        }
        let config: ContainerConfig = model::decode_pb(&meta.config, dir)?;
        self.ctr_names.insert(&meta.name, &meta.id);
        self.add_container(meta, config, status);
        Ok(None)
    }

    /// Undoes a CreateContainer that never answered: its process in the shim, cgroup, rootfs
    /// and directories.
    async fn discard_half_made(&self, meta: ContainerMeta) {
        tracing::info!(container = %meta.id, "discarding a container whose creation was interrupted");
        let Ok(sb) = self.sandbox(&meta.sandbox_id) else {
            tracing::warn!(container = %meta.id, "a half-made container of a pod that is gone");
            return;
        };
        let (bundle, records) = (self.ctr_bundle(&meta.id), self.ctr_record_dir(&meta.id));
        if let Err(e) = self
            .discard_container(&sb.shim, &meta, &bundle, &records)
            .await
        {
            tracing::warn!(container = %meta.id, error = %e, "discarding a half-made container");
        }
    }

    /// Removes a record directory that holds no record (a creation a crash interrupted before
    /// its first record was written).
    fn discard_leftover(&self, dir: &Path) {
        tracing::info!(dir = %dir.display(), "removing a record directory without a record");
        if let Err(e) = rootfs::remove_tree(dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "removing a leftover directory");
        }
    }

    /// State directories no record owns: torn down (shim, namespaces, mounts) and removed.
    async fn discard_unrecorded_state(&self) {
        for dir in record_dirs(&self.cfg.state.join("pods")) {
            let id = dir.file_name().unwrap_or_default().to_string_lossy();
            if !self.pod_record_dir(&id).exists() {
                tracing::warn!(dir = %dir.display(), "tearing down a pod directory without a record");
                if let Err(e) = self.discard_pod_state(&dir).await {
                    tracing::warn!(dir = %dir.display(), error = %e, "tearing down an unrecorded pod");
                }
            }
        }
        for dir in record_dirs(&self.cfg.state.join("containers")) {
            let id = dir.file_name().unwrap_or_default().to_string_lossy();
            if !self.ctr_record_dir(&id).exists() {
                tracing::warn!(dir = %dir.display(), "removing a container bundle without a record");
                let removed =
                    rootfs::unmount_all_under(&dir).and_then(|()| rootfs::remove_tree(&dir));
                if let Err(e) = removed {
                    tracing::warn!(dir = %dir.display(), error = %e, "removing an unrecorded bundle");
                }
            }
        }
    }

    /// Reconciles one pod with its shim.
    async fn reconcile(self: &Arc<Self>, sb: &Sandbox, ctrs: Vec<Arc<Container>>) {
        if sb.state() != SandboxState::Ready {
            for ctr in &ctrs {
                self.settle_without_shim(ctr, &sb.dir, "the pod sandbox was stopped");
            }
            return;
        }
        let info = match sb.shim.call_within(&Request::Info, INFO_TIMEOUT).await {
            Ok(Response::Info {
                containers,
                shim_pid,
                ..
            }) => {
                self.watch_shim(&sb.meta.id, shim_pid);
                containers
            }
            other => {
                let why = match other {
                    Err(e) => e.to_string(),
                    Ok(r) => format!("unexpected answer {r:?}"),
                };
                tracing::warn!(pod = %sb.meta.id, %why, "the pod's shim is gone; pod not ready");
                self.sandbox_lost(sb, &why);
                for ctr in &ctrs {
                    self.settle_without_shim(ctr, &sb.dir, &why);
                }
                return;
            }
        };
        self.watch_log_drops(sb);
        for ctr in ctrs {
            let seen = info.iter().find(|i| i.id == ctr.meta.id);
            self.reconcile_container(sb, ctr, seen);
        }
    }

    fn reconcile_container(
        self: &Arc<Self>,
        sb: &Sandbox,
        ctr: Arc<Container>,
        seen: Option<&ContainerInfo>,
    ) {
        let status = ctr.status();
        if status.finished_at != 0 {
            return;
        }
        let Some(info) = seen else {
            self.settle_without_shim(&ctr, &sb.dir, "the shim no longer knows the container");
            return;
        };
        if let Some(exit) = &info.exit {
            if let Err(e) = self.record_exit(&ctr, exit) {
                tracing::warn!(container = %ctr.meta.id, error = %e, "recording an exit");
            }
            return;
        }
        if let Some(started_at) = info.started_at {
            if status.started_at == 0 {
                let _ = self.update_status(&ctr, |s| {
                    s.started_at = started_at;
                    s.pid = info.pid;
                });
            }
            self.follow(sb.shim.clone(), ctr);
        }
    }

    /// Watches a READY pod's shim process (through a pidfd): when it dies with no stop asked,
    /// the pod is marked not ready and its containers settled at once, even with no container
    /// being followed.
    pub(super) fn watch_shim(self: &Arc<Self>, sandbox_id: &str, pid: i32) {
        let pods = Arc::clone(self);
        let id = sandbox_id.to_owned();
        let pidfd = corral_runtime::pidfd_open(nix::unistd::Pid::from_raw(pid));
        tokio::spawn(async move {
            match pidfd.map(exited) {
                Ok(exit) => {
                    if let Err(e) = exit.await {
                        tracing::warn!(pod = %id, error = %e, "cannot watch the shim");
                        return;
                    }
                }
                Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => {
                    tracing::warn!(pod = %id, error = %e, "cannot watch the shim");
                    return;
                }
            }
            pods.shim_lost(&id, "the shim exited").await;
        });
    }

    /// A follower lost its shim: if the shim really is gone (it does not answer Info), the pod
    /// is marked not ready and each of its containers settled.
    pub(super) async fn shim_lost(&self, sandbox_id: &str, why: &str) {
        let Ok(sb) = self.sandbox(sandbox_id) else {
            return;
        };
        let _op = sb.op.lock().await;
        if sb.state() != SandboxState::Ready {
            return;
        }
        if sb
            .shim
            .call_within(&Request::Info, INFO_TIMEOUT)
            .await
            .is_ok()
        {
            return;
        }
        tracing::warn!(pod = %sb.meta.id, %why, "the pod's shim died; pod not ready");
        self.sandbox_lost(&sb, why);
        for ctr in self.containers_of(&sb.meta.id) {
            self.settle_without_shim(&ctr, &sb.dir, why);
        }
    }

    /// Marks a pod whose shim died as not ready and releases its namespaces, unless its
    /// network is still attached: CNI DEL needs the namespace (the bridge plugin finds the
    /// pod's addresses there to remove their masquerade rules), so StopPodSandbox releases it
    /// after DEL.
    pub(super) fn sandbox_lost(&self, sb: &Sandbox, why: &str) {
        if let Err(e) = self.set_sandbox_state(sb, SandboxState::NotReady) {
            tracing::warn!(pod = %sb.meta.id, error = %e, %why, "persisting a lost pod");
        }
        if lock(&sb.network).as_ref().is_some_and(|r| r.attached) {
            return;
        }
        if let Err(e) = super::sandbox::release_pod_namespaces(&sb.dir) {
            tracing::warn!(pod = %sb.meta.id, error = %e, "releasing a lost pod's namespaces");
        }
    }

    /// Settles a container its shim cannot report on: the shim's exit record if there is one;
    /// otherwise whatever still runs in its cgroup is killed and the state is UNKNOWN.
    pub(super) fn settle_without_shim(&self, ctr: &Container, pod_dir: &Path, why: &str) {
        let status = ctr.status();
        if status.is_over() {
            return;
        }
        if let Some(record) = corral_shim::records::read(pod_dir, &ctr.meta.id) {
            if let Err(e) = self.record_exit(ctr, &record) {
                tracing::warn!(container = %ctr.meta.id, error = %e, "recording an exit");
            }
            return;
        }
        if status.started_at == 0 && status.pid == 0 {
            return;
        }
        let cgroup = PathBuf::from(&ctr.meta.cgroups_path);
        if let Err(e) = corral_runtime::cgroups::kill_and_remove(&cgroup) {
            tracing::warn!(container = %ctr.meta.id, error = %e, "killing an orphaned container");
        }
        let message = format!("the container's exit was not recorded: {why}");
        tracing::warn!(container = %ctr.meta.id, %message, "container state unknown");
        let _ = self.update_status(ctr, |s| {
            s.unknown = true;
            s.reason = "Unknown".into();
            s.message = message;
        });
        self.emit_for(
            &ctr.meta.id,
            &ctr.meta.sandbox_id,
            ContainerEventType::ContainerStoppedEvent,
        );
    }
}

/// Waits until the process behind `pidfd` exits (a pidfd turns readable then).
#[allow(unsafe_code)]
async fn exited(pidfd: std::os::fd::OwnedFd) -> std::io::Result<()> {
    // SAFETY: the `AsyncFd` owns `pidfd` from here on; nothing else closes or replaces it.
    let fd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)?
    };
    let _ = fd.readable().await?;
    Ok(())
}
