//! RunPodSandbox, StopPodSandbox, RemovePodSandbox.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use corral_cri_api::v1::{
    ContainerEventType, LinuxContainerResources, NamespaceMode, PodSandboxConfig,
};
use corral_fsutil::time::unix_nanos;
use corral_shim::proto::{CONFIG_FILE, Request, ShimConfig};

use super::model::{self, SandboxMeta, SandboxState, SandboxStatus, VERSION};
use super::names::new_id;
use super::shim_client::ShimClient;
use super::{PodError, Pods, Result, Sandbox, lock, rootfs};
use crate::handlers::Resolve;
use crate::network::{Chosen, NetworkError, NetworkKind, NetworkRecord};
use crate::spec;

/// The pod's CNI attachment record, in its record directory.
pub(super) const NETWORK_FILE: &str = "network.json";

/// How long a shim may take to shut down.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// Unpins the pod's namespaces and unmounts its `/dev/shm` and pod files (whatever of them
/// exists).
pub fn release_pod_namespaces(dir: &Path) -> Result<()> {
    corral_runtime::sandbox::unpin_namespaces(&dir.join("ns"))?;
    rootfs::unmount(&dir.join(rootfs::POD_FILES_DIR))?;
    rootfs::unmount(&dir.join("shm"))
}

/// Writes a new pod's record as NOTREADY, before anything of the pod exists.
fn write_intent(records: &Path, meta: &SandboxMeta) -> Result<()> {
    crate::dirs::create(records, crate::dirs::PRIVATE).map_err(|e| PodError::io(records, e))?;
    model::save(&records.join("meta.json"), meta)?;
    model::save(
        &records.join("status.json"),
        &SandboxStatus::new(SandboxState::NotReady),
    )
}

/// Whether a shim process of the pod directory `dir` exists: one holds `shim.lock` from its
/// first process's start until its last process's exit (see `proto::LOCK_FILE`).
fn shim_alive(dir: &Path) -> bool {
    use nix::fcntl::{Flock, FlockArg};
    let Ok(file) = std::fs::File::open(dir.join(corral_shim::proto::LOCK_FILE)) else {
        return false;
    };
    Flock::lock(file, FlockArg::LockSharedNonblock).is_err()
}

/// Tells the pod's shim, if one runs, to shut down. A shim still starting (it holds its lock
/// but does not listen yet: a RunPodSandbox that a crash, a timeout or a killed first process
/// interrupted) is waited for and told once it listens; a call that fails while it still
/// holds its lock is repeated (its socket's file exists a moment before it listens).
async fn shut_down_shim(shim: &ShimClient, dir: &Path) {
    let started = std::time::Instant::now();
    loop {
        if dir.join(corral_shim::proto::SOCKET_FILE).exists() {
            match shim.call_within(&Request::Shutdown, SHUTDOWN_TIMEOUT).await {
                Ok(_) => return,
                Err(e) => tracing::debug!(dir = %dir.display(), error = %e, "shim shutdown"),
            }
        }
        if !shim_alive(dir) {
            return;
        }
        if started.elapsed() > SHUTDOWN_TIMEOUT {
            tracing::warn!(dir = %dir.display(), "a shim that holds its lock never shut down");
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The namespace choices of a pod.
pub struct PodNamespaces {
    pub host_network: bool,
    pub host_ipc: bool,
    pub pod_pid: bool,
}

pub fn pod_namespaces(config: &PodSandboxConfig) -> Result<PodNamespaces> {
    let opts = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref());
    let mode = |m: i32| NamespaceMode::try_from(m).unwrap_or(NamespaceMode::Pod);
    let (network, ipc, pid) = opts.map_or(
        (
            NamespaceMode::Pod,
            NamespaceMode::Pod,
            NamespaceMode::Container,
        ),
        |o| (mode(o.network), mode(o.ipc), mode(o.pid)),
    );
    for (field, m) in [("network", network), ("ipc", ipc)] {
        if m == NamespaceMode::Container || m == NamespaceMode::Target {
            return Err(PodError::InvalidArgument(format!(
                "pod sandbox config: linux.security_context.namespace_options.{field}: {} is not valid for a pod",
                m.as_str_name()
            )));
        }
    }
    if pid == NamespaceMode::Target {
        return Err(PodError::InvalidArgument(
            "pod sandbox config: linux.security_context.namespace_options.pid: TARGET is only valid for containers".into(),
        ));
    }
    Ok(PodNamespaces {
        host_network: network == NamespaceMode::Node,
        host_ipc: ipc == NamespaceMode::Node,
        pod_pid: pid == NamespaceMode::Pod,
    })
}

/// Checks the pod's sysctls against the namespaces it gets.
fn pod_sysctls(config: &PodSandboxConfig, ns: &PodNamespaces) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let Some(linux) = &config.linux else {
        return Ok(out);
    };
    let mut keys: Vec<_> = linux.sysctls.iter().collect();
    keys.sort();
    for (key, value) in keys {
        let ipc_key = key.starts_with("kernel.shm")
            || key.starts_with("kernel.msg")
            || key == "kernel.sem"
            || key.starts_with("fs.mqueue.");
        let bad = |why: &str| {
            PodError::InvalidArgument(format!("pod sandbox config: linux.sysctls[{key:?}]: {why}"))
        };
        if key.is_empty() || key.contains(['/', '\0', '\n']) || value.contains(['\0', '\n']) {
            return Err(bad("malformed"));
        }
        if key.starts_with("net.") {
            if ns.host_network {
                return Err(bad("net.* sysctls cannot be set with host networking"));
            }
        } else if ipc_key {
            if ns.host_ipc {
                return Err(bad("IPC sysctls cannot be set with host IPC"));
            }
        } else {
            return Err(bad("not a namespaced sysctl"));
        }
        out.push((key.clone(), value.clone()));
    }
    Ok(out)
}

/// The pod's cgroup: the one the client names, or one of ours under `cgroup_root`.
fn cgroup_parent(config: &PodSandboxConfig, root: &str, id: &str) -> Result<(String, bool)> {
    let parent = config
        .linux
        .as_ref()
        .map(|l| l.cgroup_parent.as_str())
        .unwrap_or("");
    if parent.is_empty() {
        return Ok((format!("{}/{id}", root.trim_end_matches('/')), true));
    }
    if !parent.starts_with('/') || parent.split('/').any(|c| c == "..") || parent.contains('\0') {
        return Err(PodError::InvalidArgument(format!(
            "pod sandbox config: linux.cgroup_parent {parent:?} must be an absolute cgroupfs path (the systemd driver is not used)"
        )));
    }
    Ok((parent.trim_end_matches('/').to_owned(), false))
}

impl Pods {
    pub async fn run_sandbox(
        self: &Arc<Self>,
        config: PodSandboxConfig,
        handler: String,
    ) -> Result<String> {
        let md = config.metadata.as_ref().ok_or_else(|| {
            PodError::InvalidArgument("pod sandbox config: metadata is missing".into())
        })?;
        if md.name.is_empty() {
            return Err(PodError::InvalidArgument(
                "pod sandbox config: metadata.name is empty".into(),
            ));
        }
        let runtime = match self.cfg.handlers.resolve(&handler) {
            Ok(r) => r,
            Err(Resolve::Unknown(why)) => return Err(PodError::InvalidArgument(why)),
            Err(Resolve::Unusable(why)) => return Err(PodError::FailedPrecondition(why)),
        };
        let name = format!("{}_{}_{}_{}", md.name, md.namespace, md.uid, md.attempt);
        let id = new_id();
        let reservation = self.pod_names.reserve(&name, &id).map_err(|existing| {
            PodError::AlreadyExists(format!(
                "pod sandbox name {name:?} is already in use by {existing}"
            ))
        })?;
        let ns = pod_namespaces(&config)?;
        let userns = spec::userns::pod_userns(&config)?;
        if let Some(m) = &userns {
            self.check_userns(m)?;
            if let Some((h, _)) = &runtime
                && !h.features.user_namespaces
            {
                return Err(PodError::FailedPrecondition(format!(
                    "runtime handler {:?} does not support user namespaces (its features document does not offer idmapped mounts)",
                    h.name
                )));
            }
        }
        let sysctls = pod_sysctls(&config, &ns)?;
        let network = if ns.host_network {
            None
        } else {
            self.network.check(&config)?;
            Some(self.network.ready().map_err(NetworkError::NotReady)?)
        };
        let (cgroup_parent, owns_cgroup) = cgroup_parent(&config, &self.cfg.cgroup_root, &id)?;
        let linux = config.linux.as_ref();
        let pod_limits = spec::pod_resources(
            linux.and_then(|l| l.resources.as_ref()),
            linux.and_then(|l| l.overhead.as_ref()),
        )?;
        let hostname = if ns.host_network {
            None
        } else {
            Some(spec::pod_hostname(&config)?)
        };
        let dir = self.pod_state_dir(&id);
        let meta = SandboxMeta {
            version: VERSION,
            id: id.clone(),
            name,
            config: model::encode_pb(&config),
            runtime_handler: handler,
            created_at: unix_nanos(std::time::SystemTime::now()),
            cgroup_parent,
            owns_cgroup,
        };
        let shim_config = ShimConfig {
            pod_id: id.clone(),
            network: !ns.host_network,
            ipc: !ns.host_ipc,
            hostname,
            pid: ns.pod_pid,
            sysctls,
            userns,
            // The built-in runtime keeps a spare intermediate under the pod's cgroup.
            cgroup_parent: runtime.is_none().then(|| meta.cgroup_parent.clone()),
            oci_runtime: runtime.map(|(_, rt)| rt),
        };
        let records = self.pod_record_dir(&id);
        let prepared = self
            .prepare_pod(
                &config,
                &dir,
                &ns,
                &shim_config,
                &meta,
                pod_limits,
                network.as_ref(),
            )
            .await;
        let (attachment, shim_pid) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                tracing::warn!(pod = %id, error = %e, "RunPodSandbox failed; cleaning up");
                if let Err(ce) = self.teardown_pod_state(&dir).await {
                    tracing::warn!(pod = %id, error = %ce, "cleanup after a failed RunPodSandbox");
                }
                let _ = rootfs::remove_tree(&dir);
                let path = meta.cgroup_to_remove();
                let _ = tokio::task::spawn_blocking(move || {
                    corral_runtime::cgroups::kill_and_remove(&path)
                })
                .await;
                // Last: until it is gone, a restart finds the pod and lists it.
                let _ = rootfs::remove_tree(&records);
                return Err(e);
            }
        };
        self.add_sandbox(meta, config, SandboxState::Ready, attachment);
        self.watch_shim(&id, shim_pid);
        reservation.commit();
        tracing::info!(pod = %id, "pod sandbox ready");
        if let Ok(sb) = self.sandbox(&id) {
            self.watch_log_drops(&sb);
            self.emit(&id, Some(&sb), ContainerEventType::ContainerCreatedEvent);
            self.emit(&id, Some(&sb), ContainerEventType::ContainerStartedEvent);
        }
        Ok(id)
    }

    /// Applies pod-level limits to the pod's cgroup when Corral made it (a kubelet that names
    /// its own `cgroup_parent` limits that cgroup itself).
    async fn limit_pod(
        &self,
        meta: &SandboxMeta,
        limits: Option<oci_spec::runtime::LinuxResources>,
    ) -> Result<()> {
        let Some(limits) = limits else { return Ok(()) };
        if !meta.owns_cgroup {
            tracing::debug!(pod = %meta.id, "pod resources left to the owner of cgroup_parent");
            return Ok(());
        }
        let path = PathBuf::from(&meta.cgroup_parent);
        tokio::task::spawn_blocking(move || corral_runtime::cgroups::ensure(&path, &limits))
            .await
            .map_err(|e| PodError::Internal(e.to_string()))??;
        Ok(())
    }

    /// UpdatePodSandboxResources: the pod's new total and overhead, applied to its cgroup.
    pub async fn update_sandbox_resources(
        &self,
        id: &str,
        overhead: Option<LinuxContainerResources>,
        resources: Option<LinuxContainerResources>,
    ) -> Result<()> {
        let sandbox = self.sandbox(id)?;
        let _op = sandbox.op.lock().await;
        if lock(&sandbox.status).state != SandboxState::Ready {
            return Err(PodError::FailedPrecondition(format!(
                "pod sandbox {} is not ready",
                sandbox.meta.id
            )));
        }
        let limits = spec::pod_resources(resources.as_ref(), overhead.as_ref())?;
        self.limit_pod(&sandbox.meta, limits).await
    }

    /// Creates the pod: state directory, `/dev/shm`, shim (which makes and pins the
    /// namespaces), its records, the pod cgroup's `limits`, the CNI attachment on `network` and
    /// the pod's files. A failure after the attachment detaches it; the caller removes the rest.
    #[allow(clippy::too_many_arguments)]
    async fn prepare_pod(
        &self,
        config: &PodSandboxConfig,
        dir: &Path,
        ns: &PodNamespaces,
        shim_config: &ShimConfig,
        meta: &SandboxMeta,
        limits: Option<oci_spec::runtime::LinuxResources>,
        network: Option<&Chosen>,
    ) -> Result<(Option<NetworkRecord>, i32)> {
        crate::dirs::create(dir, crate::dirs::PRIVATE).map_err(|e| PodError::io(dir, e))?;
        if !ns.host_ipc {
            rootfs::mount_shm(&dir.join("shm"))?;
        }
        let body =
            serde_json::to_vec(shim_config).map_err(|e| PodError::Internal(e.to_string()))?;
        let cfg_path = dir.join(CONFIG_FILE);
        std::fs::write(&cfg_path, body).map_err(|e| PodError::io(&cfg_path, e))?;
        let records = self.pod_record_dir(&meta.id);
        let netns = dir.join("ns").join("net");
        // Recorded before anything of the attachment is made, so a crash after it (a power cut
        // too) still leads to DEL; the pod's meta.json, in the same directory, is made durable
        // with it.
        let intent = |chosen: &Chosen| -> Result<NetworkRecord> {
            let rec = self.network.intent(chosen, &meta.id, &netns, config)?;
            model::save_durable(&records.join(NETWORK_FILE), &rec)?;
            Ok(rec)
        };
        // Never on the state directory's own filesystem (`/run`): a tmpfs of the pod's.
        let files = dir.join(rootfs::POD_FILES_DIR);
        let write_files = |pod_ip: Option<std::net::IpAddr>| -> Result<()> {
            let host_len = |p: &str| std::fs::metadata(p).map_or(0, |m| m.len());
            rootfs::mount_pod_files(
                &files,
                host_len("/etc/hosts") + host_len("/etc/resolv.conf"),
            )?;
            spec::write_pod_files(config, &files, pod_ip)?;
            Ok(())
        };
        // Done while the shim starts, as they need no namespace. First the pod's records, as
        // NOTREADY: whatever a crash interrupts from there is found by them after a restart
        // and listed, so the kubelet stops and removes it (containerd's way); a state
        // directory (and shim) without records is torn down at start-up. Then the pod
        // cgroup's limits, the built-in network's record and address reservation (CNI plugins
        // get the namespace from the start), and the pod's files once their address is known
        // (built-in or host network). An error here has nothing reserved; the files' error
        // comes with the reservation, to be undone.
        let early = async {
            write_intent(&records, meta)?;
            self.limit_pod(meta, limits).await?;
            let rec = match network {
                Some(chosen @ Chosen::Builtin(_)) => {
                    let mut rec = intent(chosen)?;
                    self.network.reserve(&mut rec).await?;
                    Some(rec)
                }
                _ => None,
            };
            let written = (network.is_none() || rec.is_some())
                .then(|| write_files(rec.as_ref().and_then(|r| r.ips.first().copied())));
            Ok((rec, written))
        };
        // The shim first: its process starts at the first poll.
        let (pid, early) = tokio::join!(ShimClient::spawn(&self.cfg.shim, dir), early);
        let early: Result<(Option<NetworkRecord>, Option<Result<()>>)> = early;
        let failed = matches!((&pid, &early), (Err(_), _) | (_, Ok((_, Some(Err(_))))));
        if failed
            && let Ok((Some(rec), _)) = &early
            && let Err(de) = self.network.undo(rec).await
        {
            tracing::warn!(pod = %meta.id, error = %de, "network DEL after a failed RunPodSandbox");
        }
        let pid = pid?;
        tracing::debug!(pod = %meta.id, shim = pid, "shim ready");
        let (early_rec, written) = early?;
        let written = written.transpose()?.is_some();
        let attachment = match network {
            Some(chosen) => {
                let mut rec = match early_rec {
                    Some(rec) => rec,
                    None => intent(chosen)?,
                };
                // A failed ADD has run DEL itself.
                self.network.add(&mut rec).await?;
                Some(rec)
            }
            None => None,
        };
        let saved = (|| {
            // Lost to a power cut, the intent above stands in: DEL releases by container ID.
            if let Some(rec) = &attachment {
                model::save(&records.join(NETWORK_FILE), rec)?;
            }
            if !written {
                write_files(attachment.as_ref().and_then(|r| r.ips.first().copied()))?;
            }
            model::save(
                &records.join("status.json"),
                &SandboxStatus::new(SandboxState::Ready),
            )
        })();
        if let Err(e) = saved {
            if let Some(rec) = &attachment
                && let Err(de) = self.network.undo(rec).await
            {
                tracing::warn!(pod = %meta.id, error = %de, "network DEL after a failed RunPodSandbox");
            }
            return Err(e);
        }
        Ok((attachment, pid))
    }

    /// Tears down what a pod's state directory holds (its shim, namespaces and mounts) and
    /// removes it; for a directory no record owns.
    pub(super) async fn discard_pod_state(&self, dir: &Path) -> Result<()> {
        self.teardown_pod_state(dir).await?;
        // The shim's spare may have made cgroups before the pod had records: `shim.json` says
        // where. Removed before the directory, so a crash in between finds them again.
        if let Some(path) = self.unrecorded_cgroup(dir) {
            tokio::task::spawn_blocking(move || corral_runtime::cgroups::kill_and_remove(&path))
                .await
                .map_err(|e| PodError::Internal(e.to_string()))??;
        }
        rootfs::remove_tree(dir)
    }

    /// The cgroup to remove with a pod state directory no record owns: the pod's cgroup when
    /// it is the one Corral makes for a pod without `cgroup_parent`, else the spare's alone.
    fn unrecorded_cgroup(&self, dir: &Path) -> Option<PathBuf> {
        let raw = std::fs::read(dir.join(CONFIG_FILE)).ok()?;
        let config: ShimConfig = serde_json::from_slice(&raw).ok()?;
        let parent = config.cgroup_parent?;
        let (own, _) = cgroup_parent(
            &PodSandboxConfig::default(),
            &self.cfg.cgroup_root,
            &config.pod_id,
        )
        .ok()?;
        Some(if parent == own {
            PathBuf::from(parent)
        } else {
            corral_runtime::container::spare::cgroups_path(Path::new(&parent), &config.pod_id)
        })
    }

    /// Runs CNI DEL for the pod if it is attached, and records that it no longer is. After a
    /// failure the attachment stays recorded, so a retried stop runs DEL again.
    async fn detach_network(&self, sandbox: &Sandbox) -> Result<()> {
        let current = lock(&sandbox.network).clone();
        let Some(mut rec) = current.filter(|r| r.attached) else {
            return Ok(());
        };
        self.network.detach(&rec).await?;
        rec.attached = false;
        // Lost to a power cut, the attachment is detached again at start-up: DEL may run twice.
        model::save(
            &self.pod_record_dir(&sandbox.meta.id).join(NETWORK_FILE),
            &rec,
        )?;
        *lock(&sandbox.network) = Some(rec);
        Ok(())
    }

    /// Stops the pod's shim (if it still runs) and releases its namespaces and `/dev/shm`.
    async fn teardown_pod_state(&self, dir: &Path) -> Result<()> {
        shut_down_shim(&ShimClient::new(dir), dir).await;
        let dir = dir.to_path_buf();
        tokio::task::spawn_blocking(move || release_pod_namespaces(&dir))
            .await
            .map_err(|e| PodError::Internal(e.to_string()))?
    }

    /// Persists the pod's new state, then shows it.
    pub(super) fn set_sandbox_state(&self, sandbox: &Sandbox, state: SandboxState) -> Result<()> {
        let status = SandboxStatus::new(state);
        model::save(
            &self.pod_record_dir(&sandbox.meta.id).join("status.json"),
            &status,
        )?;
        let before = std::mem::replace(&mut *lock(&sandbox.status), status);
        if before.state == SandboxState::Ready && state == SandboxState::NotReady {
            self.emit(
                &sandbox.meta.id,
                Some(sandbox),
                ContainerEventType::ContainerStoppedEvent,
            );
        }
        Ok(())
    }

    pub async fn stop_sandbox(&self, id: &str) -> Result<()> {
        let Ok(sandbox) = self.sandbox(id) else {
            return Ok(());
        };
        let _op = sandbox.op.lock().await;
        self.stop_sandbox_locked(&sandbox).await
    }

    async fn stop_sandbox_locked(&self, sandbox: &Sandbox) -> Result<()> {
        for ctr in self.containers_of(&sandbox.meta.id) {
            let _cop = ctr.op.lock().await;
            self.stop_container_locked(&sandbox.shim, &ctr, 0).await?;
        }
        // Namespaces (and a pod whose shim died keeps them) stay until CNI DEL has run: the
        // plugins work inside them. The built-in network's DEL works on the host's side only
        // (the veth's host end, address files, iptables), so it runs alongside the shim's
        // shutdown. A NOTREADY pod may still have a shim: one whose RunPodSandbox a crash
        // interrupted.
        let builtin = lock(&sandbox.network)
            .as_ref()
            .is_some_and(|r| r.attached && r.kind == NetworkKind::Builtin);
        if builtin {
            let (detached, torn_down) = tokio::join!(
                self.detach_network(sandbox),
                self.teardown_pod_state(&sandbox.dir)
            );
            detached?;
            torn_down?;
        } else {
            self.detach_network(sandbox).await?;
            self.teardown_pod_state(&sandbox.dir).await?;
        }
        if sandbox.state() == SandboxState::NotReady {
            return Ok(());
        }
        self.set_sandbox_state(sandbox, SandboxState::NotReady)?;
        tracing::info!(pod = %sandbox.meta.id, "pod sandbox stopped");
        Ok(())
    }

    pub async fn remove_sandbox(&self, id: &str) -> Result<()> {
        let Ok(sandbox) = self.sandbox(id) else {
            return Ok(());
        };
        let _op = sandbox.op.lock().await;
        self.stop_sandbox_locked(&sandbox).await?;
        for ctr in self.containers_of(&sandbox.meta.id) {
            let _cop = ctr.op.lock().await;
            self.remove_container_locked(&sandbox, &ctr).await?;
        }
        let path = sandbox.meta.cgroup_to_remove();
        tokio::task::spawn_blocking(move || corral_runtime::cgroups::kill_and_remove(&path))
            .await
            .map_err(|e| PodError::Internal(e.to_string()))??;
        rootfs::remove_tree(&sandbox.dir)?;
        rootfs::remove_tree(&self.pod_record_dir(&sandbox.meta.id))?;
        self.forget_sandbox(&sandbox);
        tracing::info!(pod = %sandbox.meta.id, "pod sandbox removed");
        // The last status goes with it: the kubelet reads the pod's UID from it.
        self.emit(
            &sandbox.meta.id,
            Some(&sandbox),
            ContainerEventType::ContainerDeletedEvent,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_shim::proto::{self, LOCK_FILE, Response, SOCKET_FILE};
    use nix::fcntl::{Flock, FlockArg};
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, listen, socket,
    };
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    /// A starting shim: it holds its lock and its socket's file exists, but it listens only
    /// 50 ms later. It is told to shut down once it listens; the fake answers and gives up
    /// its lock, and returns what it was asked (None: nobody called within 2 s).
    #[tokio::test]
    async fn a_starting_shim_is_told_to_shut_down_once_it_listens() {
        let dir = tempfile::tempdir().unwrap();
        let lock = std::fs::File::create(dir.path().join(LOCK_FILE)).unwrap();
        let lock = Flock::lock(lock, FlockArg::LockExclusiveNonblock).unwrap();
        let sock = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        bind(
            sock.as_raw_fd(),
            &UnixAddr::new(&dir.path().join(SOCKET_FILE)).unwrap(),
        )
        .unwrap();
        let fake = std::thread::spawn(move || -> Option<Request> {
            std::thread::sleep(Duration::from_millis(50));
            listen(&sock, Backlog::new(4).unwrap()).unwrap();
            let listener = std::os::unix::net::UnixListener::from(sock);
            listener.set_nonblocking(true).unwrap();
            let until = std::time::Instant::now() + Duration::from_secs(2);
            let mut conn = loop {
                match listener.accept() {
                    Ok((conn, _)) => break conn,
                    Err(_) if std::time::Instant::now() < until => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => return None,
                }
            };
            conn.set_nonblocking(false).unwrap();
            let mut header = [0u8; 4];
            conn.read_exact(&mut header).unwrap();
            let mut body = vec![0u8; proto::frame_len(header).unwrap()];
            conn.read_exact(&mut body).unwrap();
            conn.write_all(&proto::encode(&Response::Ok).unwrap())
                .unwrap();
            drop(lock);
            Some(serde_json::from_slice(&body).unwrap())
        });
        shut_down_shim(&ShimClient::new(dir.path()), dir.path()).await;
        let asked = fake.join().unwrap();
        assert!(matches!(asked, Some(Request::Shutdown)), "{asked:?}");
    }
}
