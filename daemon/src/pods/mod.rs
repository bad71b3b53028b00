//! Pod sandboxes and containers: the daemon's side of the RuntimeService.
//!
//! Each pod has a shim (`corral-shim`, started fresh, detached) that pins the pod's namespaces
//! and runs its containers; the daemon keeps the records, prepares rootfs, bundle and log path,
//! and talks to the shim over its socket. See ARCHITECTURE.md for the layout on disk.

mod checkpoint;
mod container;
mod container_events;
mod exec;
mod image_volumes;
mod log_drops;
pub mod model;
mod names;
mod recover;
mod restore;
mod rootfs;
mod sandbox;
pub mod shim_client;
pub mod streams;
mod userns;
pub mod view;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use corral_cri_api::v1::{ContainerConfig, PodSandboxConfig};
use corral_images::ImageManager;

use self::model::{ContainerMeta, ContainerStatus, SandboxMeta, SandboxState, SandboxStatus};
use self::names::Names;
use self::shim_client::ShimClient;
use crate::event_bus::EventBus;
use crate::metrics::Metrics;
use crate::network::{Network, NetworkRecord};
use crate::spec::SpecError;

/// Why a pod or container operation failed; `crate::status` picks the gRPC code.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    DeadlineExceeded(String),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    #[error("shim: {0}")]
    Shim(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Runtime(#[from] corral_runtime::Error),
    #[error(transparent)]
    Image(#[from] corral_images::ImageError),
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    #[error("{0}")]
    Internal(String),
}

impl PodError {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> PodError {
        PodError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
}

pub type Result<T, E = PodError> = std::result::Result<T, E>;

/// Where pods live and what runs them.
#[derive(Debug, Clone)]
pub struct PodsConfig {
    /// Durable records: `<root>/pods/<id>/`, `<root>/containers/<id>/`.
    pub root: PathBuf,
    /// Volatile state: `<state>/pods/<id>/` (the shim's directory), `<state>/containers/<id>/`
    /// (bundle and rootfs mount point).
    pub state: PathBuf,
    /// The `corral-shim` program.
    pub shim: PathBuf,
    /// Parent cgroup of pods that name none.
    pub cgroup_root: String,
    /// CDI spec directories, lowest priority first.
    pub cdi_spec_dirs: Vec<PathBuf>,
    /// The runtime handlers pods may name.
    pub handlers: Arc<crate::handlers::Handlers>,
}

/// A pod sandbox in memory.
pub struct Sandbox {
    pub meta: SandboxMeta,
    pub config: PodSandboxConfig,
    pub status: Mutex<SandboxStatus>,
    /// Serialises lifecycle operations on this pod.
    pub op: tokio::sync::Mutex<()>,
    pub shim: ShimClient,
    /// The shim's directory `<state>/pods/<id>`.
    pub dir: PathBuf,
    /// The pod's CNI attachment (none with host networking).
    pub network: Mutex<Option<NetworkRecord>>,
}

/// A container in memory.
pub struct Container {
    pub meta: ContainerMeta,
    pub config: ContainerConfig,
    pub status: Mutex<ContainerStatus>,
    /// Serialises lifecycle operations on this container.
    pub op: tokio::sync::Mutex<()>,
    /// Held while an exit is recorded and its event published, so whoever sees the exit
    /// recorded (a stop, a remove) acts only after the STOPPED event went out.
    pub exit: Mutex<()>,
    /// `<state>/containers/<id>`: `config.json` and the `rootfs` mount point.
    pub bundle: PathBuf,
    /// The process user from the bundle's spec, read once (ContainerStatus reports it).
    pub user: std::sync::OnceLock<Option<corral_cri_api::v1::ContainerUser>>,
}

impl Sandbox {
    pub fn state(&self) -> model::SandboxState {
        lock(&self.status).state
    }
}

impl Container {
    pub fn status(&self) -> ContainerStatus {
        lock(&self.status).clone()
    }
}

pub use crate::sync::lock;

/// The pod and container subsystem.
pub struct Pods {
    cfg: PodsConfig,
    images: Arc<ImageManager>,
    network: Arc<Network>,
    events: Arc<EventBus>,
    metrics: Arc<Metrics>,
    sandboxes: RwLock<HashMap<String, Arc<Sandbox>>>,
    containers: RwLock<HashMap<String, Arc<Container>>>,
    pod_names: Names,
    ctr_names: Names,
    /// [`Pods::userns_supported`], probed at first use.
    userns_supported: std::sync::OnceLock<bool>,
}

impl Pods {
    /// The runtime handlers pods may name.
    pub fn handlers(&self) -> &crate::handlers::Handlers {
        &self.cfg.handlers
    }
}

impl Pods {
    pub fn new(
        cfg: PodsConfig,
        images: Arc<ImageManager>,
        network: Arc<Network>,
        events: Arc<EventBus>,
        metrics: Arc<Metrics>,
    ) -> Pods {
        Pods {
            cfg,
            images,
            network,
            events,
            metrics,
            sandboxes: RwLock::default(),
            containers: RwLock::default(),
            pod_names: Names::default(),
            ctr_names: Names::default(),
            userns_supported: std::sync::OnceLock::new(),
        }
    }

    fn pod_record_dir(&self, id: &str) -> PathBuf {
        self.cfg.root.join("pods").join(id)
    }
    fn pod_state_dir(&self, id: &str) -> PathBuf {
        self.cfg.state.join("pods").join(id)
    }
    fn ctr_record_dir(&self, id: &str) -> PathBuf {
        self.cfg.root.join("containers").join(id)
    }
    fn ctr_bundle(&self, id: &str) -> PathBuf {
        self.cfg.state.join("containers").join(id)
    }

    /// The pod with `id` (a full id or a unique prefix).
    pub fn sandbox(&self, id: &str) -> Result<Arc<Sandbox>> {
        find(&self.sandboxes, id)
            .ok_or_else(|| PodError::NotFound(format!("pod sandbox {id} not found")))
    }

    /// The container with `id` (a full id or a unique prefix).
    pub fn container(&self, id: &str) -> Result<Arc<Container>> {
        find(&self.containers, id)
            .ok_or_else(|| PodError::NotFound(format!("container {id} not found")))
    }

    pub fn sandboxes(&self) -> Vec<Arc<Sandbox>> {
        self.sandboxes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The writable layer (overlay upper directory) of container `id`.
    pub fn container_upper(&self, id: &str) -> PathBuf {
        self.ctr_record_dir(id).join("upper")
    }

    pub fn containers(&self) -> Vec<Arc<Container>> {
        self.containers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Makes a pod known (just created, or loaded at start-up).
    fn add_sandbox(
        &self,
        meta: SandboxMeta,
        config: PodSandboxConfig,
        state: SandboxState,
        network: Option<NetworkRecord>,
    ) {
        let dir = self.pod_state_dir(&meta.id);
        let sandbox = Sandbox {
            network: Mutex::new(network),
            config,
            status: Mutex::new(SandboxStatus::new(state)),
            op: tokio::sync::Mutex::new(()),
            shim: ShimClient::new(&dir),
            dir,
            meta,
        };
        write(&self.sandboxes).insert(sandbox.meta.id.clone(), Arc::new(sandbox));
    }

    /// Makes a container known (just created, or loaded at start-up).
    fn add_container(&self, meta: ContainerMeta, config: ContainerConfig, status: ContainerStatus) {
        let ctr = Container {
            config,
            status: Mutex::new(status),
            op: tokio::sync::Mutex::new(()),
            exit: Mutex::new(()),
            user: std::sync::OnceLock::new(),
            bundle: self.ctr_bundle(&meta.id),
            meta,
        };
        write(&self.containers).insert(ctr.meta.id.clone(), Arc::new(ctr));
    }

    /// Forgets a removed pod and frees its name.
    fn forget_sandbox(&self, sandbox: &Sandbox) {
        write(&self.sandboxes).remove(&sandbox.meta.id);
        self.pod_names.release(&sandbox.meta.name);
    }

    /// Forgets a removed container and frees its name.
    fn forget_container(&self, ctr: &Container) {
        write(&self.containers).remove(&ctr.meta.id);
        self.ctr_names.release(&ctr.meta.name);
    }

    fn containers_of(&self, sandbox_id: &str) -> Vec<Arc<Container>> {
        self.containers()
            .into_iter()
            .filter(|c| c.meta.sandbox_id == sandbox_id)
            .collect()
    }
}

fn write<T>(
    map: &RwLock<HashMap<String, Arc<T>>>,
) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<T>>> {
    map.write().unwrap_or_else(|e| e.into_inner())
}

/// Looks an id up, accepting a unique prefix (as crictl users type them).
fn find<T>(map: &RwLock<HashMap<String, Arc<T>>>, id: &str) -> Option<Arc<T>> {
    if id.is_empty() {
        return None;
    }
    let map = map.read().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = map.get(id) {
        return Some(Arc::clone(v));
    }
    let mut hits = map.iter().filter(|(k, _)| k.starts_with(id));
    match (hits.next(), hits.next()) {
        (Some((_, v)), None) => Some(Arc::clone(v)),
        _ => None,
    }
}
