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
use super::{Container, PodError, Pods, Result, Sandbox, lock};

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
            if let Err(e) = self.load_sandbox(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "skipping a pod sandbox record");
            }
        }
        for dir in record_dirs(&self.cfg.root.join("containers")) {
            if let Err(e) = self.load_container(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "skipping a container record");
            }
        }
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

    fn load_container(&self, dir: &Path) -> Result<()> {
        let meta: ContainerMeta = model::load(&dir.join("meta.json"))?;
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
        Ok(())
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
            Ok(Response::Info { containers, .. }) => containers,
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
