//! What the daemon persists about pods and containers: per object an immutable `meta.json`
//! written once at creation, and a `status.json` replaced atomically on every change
//! (containerd's metadata/status split). Both carry a format version.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use corral_cri_api::v1::ContainerState;
use prost::Message;
use serde::{Deserialize, Serialize};

use super::PodError;

/// The format version of the records below.
pub const VERSION: u32 = 1;
// A sandbox record embeds the network's record (`network` cannot import this module, which
// imports it), so the two versions move together.
const _: () = assert!(crate::network::RECORD_VERSION == VERSION);

/// A pod sandbox as created (never changes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxMeta {
    pub version: u32,
    pub id: String,
    /// The unique name `<name>_<namespace>_<uid>_<attempt>`.
    pub name: String,
    /// The `PodSandboxConfig` as protobuf, base64.
    pub config: String,
    pub runtime_handler: String,
    pub created_at: i64,
    /// The pod's cgroup (cgroupfs path).
    pub cgroup_parent: String,
    /// Whether the daemon made `cgroup_parent` (and so removes it).
    pub owns_cgroup: bool,
}

impl SandboxMeta {
    /// What of the cgroups is Corral's to remove with the pod: the pod's cgroup when Corral
    /// made it, else only the spare intermediate's cgroup under it, which a shim that was
    /// killed leaves behind (its process died with the shim).
    pub fn cgroup_to_remove(&self) -> std::path::PathBuf {
        let parent = std::path::Path::new(&self.cgroup_parent);
        if self.owns_cgroup {
            parent.to_path_buf()
        } else {
            corral_runtime::container::spare::cgroups_path(parent, &self.id)
        }
    }
}

/// A pod sandbox's changing state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxState {
    Ready,
    NotReady,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxStatus {
    pub version: u32,
    pub state: SandboxState,
}

impl SandboxStatus {
    pub fn new(state: SandboxState) -> SandboxStatus {
        SandboxStatus {
            version: VERSION,
            state,
        }
    }
}

/// A container as created (never changes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerMeta {
    pub version: u32,
    pub id: String,
    pub sandbox_id: String,
    /// The unique name `<name>_<pod name>_<namespace>_<uid>_<attempt>`.
    pub name: String,
    /// The `ContainerConfig` as protobuf, base64.
    pub config: String,
    /// The image as the client named it, and the image ID (config digest).
    pub image: String,
    pub image_id: String,
    /// A digest reference (`repo@sha256:...`) for ContainerStatus.image_ref.
    pub image_ref: String,
    pub log_path: Option<PathBuf>,
    /// IDs of the images mounted as image volumes (RemoveImage refuses them meanwhile).
    #[serde(default)]
    pub image_volumes: Vec<String>,
    pub cgroups_path: String,
    pub stop_signal: i32,
    pub created_at: i64,
    /// The checkpoint archive the container was restored from (CreateContainer named one as
    /// its image); its Start restores CRIU's images instead of running the entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<PathBuf>,
}

/// A container's changing state (the CRI state is derived from the timestamps).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerStatus {
    pub version: u32,
    pub pid: i32,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    /// The state could not be determined (its shim died without an exit record).
    pub unknown: bool,
    /// Resources after UpdateContainerResources (`LinuxContainerResources` protobuf, base64).
    pub resources: Option<String>,
}

impl ContainerStatus {
    pub fn new() -> ContainerStatus {
        ContainerStatus {
            version: VERSION,
            ..ContainerStatus::default()
        }
    }

    /// The CRI state, derived from the timestamps (the one place that derives it).
    pub fn state(&self) -> ContainerState {
        if self.unknown {
            ContainerState::ContainerUnknown
        } else if self.finished_at != 0 {
            ContainerState::ContainerExited
        } else if self.started_at != 0 {
            ContainerState::ContainerRunning
        } else {
            ContainerState::ContainerCreated
        }
    }

    /// Whether the container is done: exited, or lost with its shim.
    pub fn is_over(&self) -> bool {
        matches!(
            self.state(),
            ContainerState::ContainerExited | ContainerState::ContainerUnknown
        )
    }

    /// `Completed`, `Error`, `OOMKilled`, or a reason set when it happened (`StartError`).
    pub fn reason(&self) -> String {
        if self.state() != ContainerState::ContainerExited || !self.reason.is_empty() {
            return self.reason.clone();
        }
        if self.exit_code == 0 {
            "Completed"
        } else {
            "Error"
        }
        .to_owned()
    }
}

/// Encodes a protobuf message for a record.
pub fn encode_pb<M: Message>(msg: &M) -> String {
    STANDARD.encode(msg.encode_to_vec())
}

/// Decodes a protobuf message from a record.
pub fn decode_pb<M: Message + Default>(text: &str, what: &Path) -> Result<M, PodError> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|e| PodError::Corrupt(format!("{}: {e}", what.display())))?;
    M::decode(bytes.as_slice()).map_err(|e| PodError::Corrupt(format!("{}: {e}", what.display())))
}

/// Writes a record atomically, its content on disk before it replaces the old one; its new name
/// reaches the disk with the file system's next commit or write-back
/// ([`corral_fsutil::write_atomic_lazy`]).
/// A power cut before then leaves the previous version, or no record for a new one: the states
/// a daemon crash between two steps leaves too, which start-up recovery settles (everything the
/// records describe died with the host). A daemon crash loses nothing.
pub fn save<T: Serialize>(path: &Path, value: &T) -> Result<(), PodError> {
    write(path, value, corral_fsutil::write_atomic_lazy)
}

/// Writes a record atomically and durably, and with it the names [`save`] wrote before in the
/// same directory (one directory fsync covers them): for a record that alone leads back to
/// something outside Corral's directories after a power cut (the intent of a pod's network
/// attachment, which DEL needs), with the pod record it hangs from.
pub fn save_durable<T: Serialize>(path: &Path, value: &T) -> Result<(), PodError> {
    write(path, value, corral_fsutil::write_atomic)
}

fn write<T: Serialize>(
    path: &Path,
    value: &T,
    replace: fn(&Path, &[u8], u32) -> Result<(), corral_fsutil::atomic::WriteError>,
) -> Result<(), PodError> {
    let body = serde_json::to_vec_pretty(value).map_err(|e| PodError::Internal(e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| PodError::io(path, e))?;
    replace(path, &body, 0o666).map_err(|e| PodError::io(path, e.source))
}

/// Reads a record, checking its version.
pub fn load<T: for<'de> Deserialize<'de> + Versioned>(path: &Path) -> Result<T, PodError> {
    let body = std::fs::read(path).map_err(|e| PodError::io(path, e))?;
    let value: T = serde_json::from_slice(&body)
        .map_err(|e| PodError::Corrupt(format!("{}: {e}", path.display())))?;
    if value.version() != VERSION {
        let msg = format!(
            "{}: format version {} (expected {VERSION})",
            path.display(),
            value.version()
        );
        return Err(PodError::Corrupt(msg));
    }
    Ok(value)
}

/// Records carrying a format version.
pub trait Versioned {
    fn version(&self) -> u32;
}

macro_rules! versioned {
    ($($t:ty),*) => { $(impl Versioned for $t { fn version(&self) -> u32 { self.version } })* };
}
versioned!(
    SandboxMeta,
    SandboxStatus,
    ContainerMeta,
    ContainerStatus,
    crate::network::NetworkRecord
);
