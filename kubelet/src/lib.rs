//! The pod manager: a kubelet for one host with no API server (issue 8).
//!
//! Kubernetes objects applied through `corral.v1.KubeService` are kept in the `corral-kube`
//! store; a worker per pod drives the pod's sandbox and containers through the CRI (corrald's
//! own services, called in process, or any CRI socket), as a kubelet would, and writes the
//! pod's status back. This crate does not depend on the daemon: the CRI is all it can reach.
//!
//! - `translate`: a Pod into CRI `PodSandboxConfig` and `ContainerConfig`.
//! - `volumes`: a pod's volumes on disk (emptyDir, hostPath, configMap, secret, downwardAPI,
//!   projected) and each container's mounts of them.
//! - `probe`: liveness, readiness and startup probes (exec, httpGet, tcpSocket, grpc).
//! - `cri`: the CRI client; `recorder`: pod events; `prober`: the probe tasks of a
//!   pod; `worker`: one pod's sync loop; `service`: the gRPC service.
//! - Here: the `Kubelet` (its store, config and status writes); `verbs`: the API-server verbs
//!   (apply, get, delete, label, events); `registry`: one worker per pod and the change
//!   broadcast; `capacity`: what the node offers pods.
//!
//! On disk, under `<root>/kubelet/`: `store/` (the object store, `corral_kube::store`) and
//! `pods/<uid>/` (`volumes/`, `logs/` — the sandbox's log directory —, `etc-hosts`).

mod capacity;
mod cri;
pub mod logs;
pub mod node;
pub mod probe;
mod prober;
mod recorder;
mod registry;
mod service;
pub mod translate;
mod verbs;
pub mod volumes;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use corral_kube::k8s_openapi::api::core::v1::{Pod, PodStatus};
use corral_kube::k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use corral_kube::k8s_openapi::jiff::Timestamp;
use corral_kube::objects::{Batch, Layered};
use corral_kube::quantity::Quantity;
use corral_kube::selector::Selector;
use corral_kube::store::{Applied, Kind, Store, StoreError};
use corral_kube::{FieldErrors, Object};
use tokio::sync::{Notify, broadcast};

pub use cri::Cri;
pub use service::KubeApi;

/// The pod manager's settings (`[kubelet]` in corrald.toml).
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// `<root>/kubelet`.
    pub dir: PathBuf,
    /// The node's name (`spec.nodeName`, the NODE column).
    pub node_name: String,
    /// The node's labels, which `nodeSelector` is matched against.
    pub node_labels: BTreeMap<String, String>,
    /// The node's addresses (`status.hostIPs`, and host-network pods' IPs), from
    /// [`node::host_ips`].
    pub node_ips: Vec<String>,
    /// When container logs are rotated.
    pub logs: logs::LogPolicy,
}

/// Why a pod manager call failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeletError {
    /// The manifest does not parse.
    #[error("{0}")]
    Manifest(#[from] corral_kube::manifest::Errors),
    /// Objects that do not validate, each with its field errors.
    #[error("{}", .0.iter().map(|e| format!("The {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<FieldErrors>),
    /// A bad request field.
    #[error("{0}")]
    BadRequest(String),
    /// What the store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The pod manager is not running (the daemon is shutting down).
    #[error("the pod manager is shutting down")]
    Unavailable,
}

/// A pod a worker drives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PodKey {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl std::fmt::Display for PodKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A change of a stored object, for Watch.
#[derive(Debug, Clone)]
pub struct Change {
    /// ADDED, MODIFIED or DELETED.
    pub kind: &'static str,
    /// Shared: each subscriber's copy is a reference count, and each of the channel's slots is
    /// a pointer (with the object itself in them, the 1 024 slots took 0.5 MiB from the start).
    pub object: Arc<Object>,
}

/// A running pod worker: how to wake it and how to stop it.
struct WorkerEntry {
    notify: Arc<Notify>,
    abort: Option<tokio::task::AbortHandle>,
}

/// The pod manager.
pub struct Kubelet {
    config: KubeletConfig,
    store: Mutex<Store>,
    cri: Cri,
    recorder: recorder::Recorder,
    workers: Mutex<HashMap<String, WorkerEntry>>,
    changes: broadcast::Sender<Change>,
    this: Weak<Kubelet>,
    memory_capacity: i64,
    cpus: i64,
    /// The host's huge page sizes ("2MB", "1GB").
    hugepage_sizes: Vec<String>,
    /// The log rotation task, once started.
    log_rotation: Mutex<Option<tokio::task::AbortHandle>>,
}

/// The current time (jiff is built here without its clock, so from `SystemTime`).
pub(crate) fn now() -> Timestamp {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Timestamp::from_nanosecond(i128::try_from(nanos).unwrap_or(0)).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Kubelet {
    /// Opens the store under `config.dir` (creating it); starts no worker yet.
    pub fn open(config: KubeletConfig, cri: Cri) -> Result<Arc<Kubelet>, KubeletError> {
        let store = Store::open(config.dir.join("store"), now())?;
        for (path, why) in store.skipped() {
            tracing::warn!(path = %path.display(), why, "skipped an unreadable stored object");
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as i64);
        Ok(Arc::new_cyclic(|this| Kubelet {
            config,
            store: Mutex::new(store),
            cri,
            recorder: recorder::Recorder::default(),
            workers: Mutex::new(HashMap::new()),
            changes: broadcast::channel(1024).0,
            this: this.clone(),
            memory_capacity: node::mem_total().unwrap_or(0),
            cpus,
            hugepage_sizes: node::hugepage_sizes(),
            log_rotation: Mutex::new(None),
        }))
    }

    /// Starts a worker for every stored pod (after a restart, they adopt their sandboxes).
    pub fn start(&self) {
        let pods: Vec<Pod> = self
            .store()
            .list(Kind::Pod, None, None)
            .into_iter()
            .filter_map(|o| match o {
                Object::Pod(p) => Some((**p).clone()),
                _ => None,
            })
            .collect();
        for p in pods {
            self.spawn_worker(&p);
        }
        let rotation = tokio::spawn(logs::run(self.cri.clone(), self.config.logs));
        *lock(&self.log_rotation) = Some(rotation.abort_handle());
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.config.dir.join("pods").join(uid)
    }

    fn pod(&self, key: &PodKey) -> Option<Pod> {
        match self.store().get(Kind::Pod, &key.namespace, &key.name) {
            Some(Object::Pod(p)) if p.metadata.uid.as_deref() == Some(&key.uid) => {
                Some((**p).clone())
            }
            _ => None,
        }
    }

    fn publish(&self, kind: &'static str, object: Object) {
        let _ = self.changes.send(Change {
            kind,
            object: Arc::new(object),
        });
    }

    fn set_status(&self, key: &PodKey, status: PodStatus) -> bool {
        let mut store = self.store();
        match store.get(Kind::Pod, &key.namespace, &key.name) {
            Some(Object::Pod(p)) if p.metadata.uid.as_deref() == Some(&key.uid) => {}
            _ => return false,
        }
        match store.set_pod_status(&key.namespace, &key.name, status) {
            Ok(o) => {
                drop(store);
                self.publish("MODIFIED", o);
                true
            }
            Err(e) => {
                tracing::warn!(pod = %key, error = %e, "writing a pod's status");
                false
            }
        }
    }

    /// Removes a pod the worker has torn down.
    fn remove_pod(&self, key: &PodKey) {
        let mut store = self.store();
        let Some(Object::Pod(p)) = store.get(Kind::Pod, &key.namespace, &key.name) else {
            return;
        };
        if p.metadata.uid.as_deref() != Some(&key.uid) {
            return;
        }
        match store.delete(Kind::Pod, &key.namespace, &key.name) {
            Ok(o) => {
                drop(store);
                self.recorder.forget(&key.uid);
                self.publish("DELETED", o);
            }
            Err(e) => tracing::warn!(pod = %key, error = %e, "removing a deleted pod"),
        }
    }
}
