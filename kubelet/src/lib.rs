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
//! - `cri`: the CRI client; `recorder`: pod events; `probes`: the probe tasks of a
//!   pod; `worker`: one pod's sync loop; `service`: the gRPC service.
//!
//! On disk, under `<root>/kubelet/`: `store/` (the object store, `corral_kube::store`) and
//! `pods/<uid>/` (`volumes/`, `logs/` — the sandbox's log directory —, `etc-hosts`).

mod cri;
pub mod logs;
pub mod node;
pub mod probe;
mod probes;
mod recorder;
mod service;
pub mod translate;
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
    pub object: Object,
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

    fn memory_capacity(&self) -> i64 {
        self.memory_capacity
    }

    fn allocatable(&self) -> BTreeMap<String, Quantity> {
        BTreeMap::from([
            ("cpu".to_string(), Quantity::from_units(self.cpus)),
            (
                "memory".to_string(),
                Quantity::from_units(self.memory_capacity),
            ),
            (
                "ephemeral-storage".to_string(),
                Quantity::from_units(i64::MAX / 1_000_000_000),
            ),
        ])
    }

    /// The node's addresses for `status.hostIP(s)`.
    fn host_ips(&self) -> Vec<String> {
        self.config.node_ips.clone()
    }

    fn unschedulable(&self, pod: &Pod) -> Option<String> {
        let sel = pod.spec.as_ref().and_then(|s| s.node_selector.as_ref());
        (!worker::node_selector_matches(sel, &self.config.node_labels))
            .then(|| corral_kube::status::UNSCHEDULABLE_NODE_SELECTOR.to_string())
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
        let _ = self.changes.send(Change { kind, object });
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

    fn worker_done(&self, key: &PodKey) {
        lock(&self.workers).remove(&key.uid);
    }

    fn spawn_worker(&self, pod: &Pod) {
        let Some(this) = self.this.upgrade() else {
            return;
        };
        let key = PodKey {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        };
        let notify = Arc::new(Notify::new());
        let mut workers = lock(&self.workers);
        if let Some(w) = workers.get(&key.uid) {
            w.notify.notify_one();
            return;
        }
        let uid = key.uid.clone();
        let worker = worker::Worker::new(this, key, Arc::clone(&notify));
        let abort = tokio::spawn(worker.run()).abort_handle();
        workers.insert(
            uid,
            WorkerEntry {
                notify,
                abort: Some(abort),
            },
        );
    }

    fn wake(&self, uid: &str) {
        if let Some(w) = lock(&self.workers).get(uid) {
            w.notify.notify_one();
        }
    }

    /// Wakes every worker (a ConfigMap or Secret changed).
    pub fn wake_all(&self) {
        for w in lock(&self.workers).values() {
            w.notify.notify_one();
        }
    }

    /// Stops every worker (the daemon is shutting down; pods keep running and are adopted at
    /// the next start).
    pub fn shutdown(&self) {
        if let Some(rotation) = lock(&self.log_rotation).take() {
            rotation.abort();
        }
        for (_, w) in lock(&self.workers).drain() {
            if let Some(a) = w.abort {
                a.abort();
            }
        }
    }

    /// Wakes the worker of the pod a CRI container event is about.
    pub fn wake_pod_of(&self, ev: &corral_cri_api::v1::ContainerEventResponse) {
        if let Some(uid) = ev
            .pod_sandbox_status
            .as_ref()
            .and_then(|s| s.metadata.as_ref())
            .map(|m| m.uid.as_str())
        {
            self.wake(uid);
        }
    }

    /// Subscribes to changes of stored objects.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Whether a worker still drives pod `uid`.
    pub fn has_worker(&self, uid: &str) -> bool {
        lock(&self.workers).contains_key(uid)
    }

    /// `kubectl apply -f` / `create -f`: every object valid, or nothing stored.
    pub fn apply(
        &self,
        manifest: &str,
        create: bool,
        namespace: &str,
    ) -> Result<Vec<(Object, Applied)>, KubeletError> {
        let mut objects = corral_kube::parse(manifest)?;
        if objects.is_empty() {
            return Err(KubeletError::BadRequest(
                "no objects passed to apply".into(),
            ));
        }
        for o in &mut objects {
            if o.namespaced() && o.metadata().namespace.as_deref().unwrap_or("").is_empty() {
                if !namespace.is_empty() {
                    o.metadata_mut().namespace = Some(namespace.to_string());
                }
            } else if o.namespaced() && !namespace.is_empty() && o.namespace() != namespace {
                return Err(KubeletError::BadRequest(format!(
                    "the namespace from the provided object \"{}\" does not match the namespace \"{namespace}\". You must pass '--namespace={}' to perform this operation.",
                    o.namespace(),
                    o.namespace()
                )));
            }
            o.normalize();
        }
        let mut batch = Batch::default();
        for o in &objects {
            match o {
                Object::ConfigMap(c) => batch.config_maps.push(c.clone()),
                Object::Secret(s) => batch.secrets.push(s.clone()),
                _ => {}
            }
        }
        let mut store = self.store();
        let mut invalid = Vec::new();
        for o in &objects {
            let layered = Layered {
                top: &batch,
                bottom: &*store,
            };
            if let Err(e) = corral_kube::validate::object(o, &layered) {
                invalid.push(e);
            }
        }
        for o in &objects {
            if let Object::Pod(p) = o {
                invalid.extend(unsupported(p));
            }
        }
        if !invalid.is_empty() {
            return Err(KubeletError::Invalid(invalid));
        }
        let new_namespaces: Vec<String> = objects
            .iter()
            .filter(|o| matches!(o, Object::Namespace(_)))
            .map(|o| o.name().to_string())
            .collect();
        for o in &objects {
            let kind = Kind::of(o);
            if o.namespaced()
                && store.get(Kind::Namespace, "", o.namespace()).is_none()
                && !new_namespaces.iter().any(|n| n == o.namespace())
            {
                return Err(StoreError::NamespaceNotFound(o.namespace().to_string()).into());
            }
            if o.namespaced()
                && let Some(Object::Namespace(ns)) = store.get(Kind::Namespace, "", o.namespace())
                && ns.metadata.deletion_timestamp.is_some()
            {
                return Err(KubeletError::BadRequest(format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                    kind.resource(),
                    o.name(),
                    o.namespace()
                )));
            }
            let existing = store.get(kind, o.namespace(), o.name());
            if let Some(old) = existing {
                if create {
                    return Err(StoreError::AlreadyExists {
                        resource: kind.resource(),
                        name: o.name().to_string(),
                    }
                    .into());
                }
                if let (Object::Pod(old), Object::Pod(new)) = (old, o) {
                    if old.metadata.deletion_timestamp.is_some() {
                        return Err(KubeletError::BadRequest(format!(
                            "pods \"{}\" is being deleted",
                            o.name()
                        )));
                    }
                    pod_update_allowed(old, new)?;
                }
            }
        }
        // Namespaces first, so the rest has somewhere to go.
        let mut order: Vec<&Object> = objects
            .iter()
            .filter(|o| matches!(o, Object::Namespace(_)))
            .collect();
        order.extend(
            objects
                .iter()
                .filter(|o| !matches!(o, Object::Namespace(_))),
        );
        let now = now();
        let mut results = Vec::new();
        for o in order {
            let (stored, action) = if create {
                (store.create(o.clone(), now)?, Applied::Created)
            } else {
                store.apply(o.clone(), now)?
            };
            results.push((stored, action));
        }
        drop(store);
        let mut touched_data = false;
        for (o, action) in &results {
            match action {
                Applied::Unchanged => continue,
                Applied::Created => self.publish("ADDED", o.clone()),
                Applied::Configured => self.publish("MODIFIED", o.clone()),
            }
            match o {
                Object::Pod(p) if *action == Applied::Created => self.spawn_worker(p),
                Object::Pod(p) => self.wake(p.metadata.uid.as_deref().unwrap_or("")),
                Object::ConfigMap(_) | Object::Secret(_) => touched_data = true,
                Object::Namespace(_) => {}
            }
        }
        if touched_data {
            self.wake_all();
        }
        Ok(results)
    }

    /// Objects of `kind`: one by name, or those in `namespace` (all when `None`) matching
    /// `selector`.
    pub fn get(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        name: &str,
        selector: Option<&Selector>,
    ) -> Result<Vec<Object>, KubeletError> {
        let store = self.store();
        if !name.is_empty() {
            let ns = namespace.unwrap_or(corral_kube::validate::DEFAULT_NAMESPACE);
            return store
                .get(kind, ns, name)
                .cloned()
                .map(|o| vec![o])
                .ok_or_else(|| {
                    StoreError::NotFound {
                        resource: kind.resource(),
                        name: name.to_string(),
                    }
                    .into()
                });
        }
        Ok(store
            .list(kind, namespace, selector)
            .into_iter()
            .cloned()
            .collect())
    }

    /// Deletes one object. A pod is marked (deletionTimestamp, grace period) and its worker
    /// tears it down; the returned receiver's DELETED event says when it is gone. A namespace
    /// deletes what it holds first.
    pub fn delete(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        grace: Option<i64>,
    ) -> Result<Object, KubeletError> {
        match kind {
            Kind::Pod => self.delete_pod(namespace, name, grace),
            Kind::Namespace => {
                let inside: Vec<(Kind, String, String)> = {
                    let store = self.store();
                    if store.get(Kind::Namespace, "", name).is_none() {
                        return Err(StoreError::NotFound {
                            resource: "namespaces",
                            name: name.to_string(),
                        }
                        .into());
                    }
                    [Kind::Pod, Kind::ConfigMap, Kind::Secret]
                        .into_iter()
                        .flat_map(|k| {
                            store
                                .list(k, Some(name), None)
                                .into_iter()
                                .map(move |o| (k, o.namespace().to_string(), o.name().to_string()))
                                .collect::<Vec<_>>()
                        })
                        .collect()
                };
                for (k, ns, n) in inside {
                    if let Err(e) = self.delete(k, &ns, &n, grace) {
                        tracing::warn!(namespace = name, object = n, error = %e, "deleting a namespace's object");
                    }
                }
                let ns = self.mark_namespace_terminating(name)?;
                if let Some(this) = self.this.upgrade() {
                    let name = name.to_string();
                    tokio::spawn(async move { this.finish_namespace(&name).await });
                }
                Ok(ns)
            }
            Kind::ConfigMap | Kind::Secret => {
                let o = self.store().delete(kind, namespace, name)?;
                self.publish("DELETED", o.clone());
                Ok(o)
            }
        }
    }

    fn delete_pod(
        &self,
        namespace: &str,
        name: &str,
        grace: Option<i64>,
    ) -> Result<Object, KubeletError> {
        let mut store = self.store();
        let Some(Object::Pod(p)) = store.get(Kind::Pod, namespace, name).cloned() else {
            return Err(StoreError::NotFound {
                resource: "pods",
                name: name.to_string(),
            }
            .into());
        };
        let mut p = *p;
        let spec_grace = p
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        let grace = grace.unwrap_or(spec_grace).max(0);
        // A second delete may only shorten the grace period.
        if let Some(old) = p.metadata.deletion_grace_period_seconds
            && p.metadata.deletion_timestamp.is_some()
            && old <= grace
        {
            return Ok(Object::Pod(Box::new(p)));
        }
        let now = now();
        let at = now
            .checked_add(corral_kube::k8s_openapi::jiff::SignedDuration::from_secs(
                grace,
            ))
            .unwrap_or(now);
        p.metadata.deletion_timestamp = Some(Time(at));
        p.metadata.deletion_grace_period_seconds = Some(grace);
        let uid = p.metadata.uid.clone().unwrap_or_default();
        let o = store.replace(Object::Pod(Box::new(p)))?;
        drop(store);
        self.publish("MODIFIED", o.clone());
        if self.has_worker(&uid) {
            self.wake(&uid);
        } else if let Object::Pod(p) = &o {
            self.spawn_worker(p);
        }
        Ok(o)
    }

    fn mark_namespace_terminating(&self, name: &str) -> Result<Object, KubeletError> {
        let mut store = self.store();
        let Some(Object::Namespace(ns)) = store.get(Kind::Namespace, "", name).cloned() else {
            return Err(StoreError::NotFound {
                resource: "namespaces",
                name: name.to_string(),
            }
            .into());
        };
        let mut ns = ns;
        if ns.metadata.deletion_timestamp.is_none() {
            ns.metadata.deletion_timestamp = Some(Time(now()));
        }
        ns.status.get_or_insert_with(Default::default).phase = Some("Terminating".into());
        let o = store.replace(Object::Namespace(ns))?;
        drop(store);
        self.publish("MODIFIED", o.clone());
        Ok(o)
    }

    /// Removes a terminating namespace once its pods are gone.
    async fn finish_namespace(&self, name: &str) {
        loop {
            let empty = self.store().list(Kind::Pod, Some(name), None).is_empty();
            if empty {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let result = self.store().delete(Kind::Namespace, "", name);
        match result {
            Ok(o) => self.publish("DELETED", o),
            Err(e) => tracing::warn!(namespace = name, error = %e, "removing a namespace"),
        }
    }

    /// Sets and removes labels.
    pub fn label(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        set: &BTreeMap<String, String>,
        remove: &[String],
        overwrite: bool,
    ) -> Result<bool, KubeletError> {
        let mut store = self.store();
        let mut o =
            store
                .get(kind, namespace, name)
                .cloned()
                .ok_or_else(|| StoreError::NotFound {
                    resource: kind.resource(),
                    name: name.to_string(),
                })?;
        let labels = o.metadata_mut().labels.get_or_insert_with(BTreeMap::new);
        let before = labels.clone();
        for (k, v) in set {
            if let Some(old) = labels.get(k)
                && old != v
                && !overwrite
            {
                return Err(KubeletError::BadRequest(format!(
                    "'{k}' already has a value ({old}), and --overwrite is false"
                )));
            }
            labels.insert(k.clone(), v.clone());
        }
        for k in remove {
            labels.remove(k);
        }
        if *labels == before {
            return Ok(false);
        }
        let candidate = o.clone();
        if let Err(e) = corral_kube::validate::object(&candidate, &*store) {
            return Err(KubeletError::Invalid(vec![e]));
        }
        let o = store.replace(o)?;
        drop(store);
        self.publish("MODIFIED", o.clone());
        if let Object::Pod(p) = &o {
            self.wake(p.metadata.uid.as_deref().unwrap_or(""));
        }
        Ok(true)
    }

    /// The events of pod `uid`.
    pub fn events(&self, uid: &str) -> Vec<corral_cri_api::corral::Event> {
        self.recorder.events(uid)
    }
}

/// What a valid pod may ask that this pod manager cannot do, as field errors.
fn unsupported(p: &Pod) -> Option<FieldErrors> {
    let spec = p.spec.as_ref()?;
    let errors: Vec<corral_kube::FieldError> = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, c)| c.restart_policy.as_deref() == Some("Always"))
        .map(|(i, _)| {
            corral_kube::FieldError::forbidden(
                &format!("spec.initContainers[{i}].restartPolicy"),
                "sidecar containers (restartPolicy: Always) are not supported by Corral's pod manager",
            )
        })
        .collect();
    (!errors.is_empty()).then(|| FieldErrors {
        kind: "Pod".into(),
        name: p.metadata.name.clone().unwrap_or_default(),
        errors,
    })
}

/// The API server's rule for pod updates: only images, `activeDeadlineSeconds` and
/// tolerations (additions) may change.
fn pod_update_allowed(old: &Pod, new: &Pod) -> Result<(), KubeletError> {
    let strip = |p: &Pod| {
        let mut spec = p.spec.clone().unwrap_or_default();
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            c.image = None;
        }
        spec.active_deadline_seconds = None;
        spec.tolerations = None;
        serde_json::to_value(spec).unwrap_or_default()
    };
    if strip(old) == strip(new) {
        return Ok(());
    }
    Err(KubeletError::Invalid(vec![FieldErrors {
        kind: "Pod".into(),
        name: new.metadata.name.clone().unwrap_or_default(),
        errors: vec![corral_kube::FieldError::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        )],
    }]))
}
