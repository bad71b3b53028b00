//! Why a pod's volumes cannot be set up, mounted or torn down: one error type for every
//! plugin, worded as the kubelet's events.

use super::*;

/// Why a pod's volumes cannot be set up or mounted. Messages are worded as the kubelet's
/// events (`MountVolume.SetUp failed for volume "cfg" : configmap "cfg" not found`).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A file system operation failed.
    #[error("MountVolume.SetUp failed for volume {volume:?} : {}: {source}", path.display())]
    Io {
        /// The volume.
        volume: String,
        /// The path operated on.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Mounting or unmounting a tmpfs failed.
    #[error("MountVolume.SetUp failed for volume {volume:?} : mount {}: {source}", path.display())]
    Mount {
        /// The volume.
        volume: String,
        /// The mount point.
        path: PathBuf,
        /// The error.
        source: nix::Error,
    },
    /// A hostPath `type` check failed (`hostPath type check failed: /x is not a directory, ...`).
    #[error("MountVolume.SetUp failed for volume {volume:?} : {message}")]
    HostPathType {
        /// The volume.
        volume: String,
        /// The host path.
        path: PathBuf,
        /// The kubelet's message.
        message: String,
    },
    /// A ConfigMap that is not there and not optional.
    #[error("MountVolume.SetUp failed for volume {volume:?} : configmap {name:?} not found")]
    ConfigMapNotFound {
        /// The volume.
        volume: String,
        /// The volume's directory.
        path: PathBuf,
        /// The ConfigMap's name.
        name: String,
    },
    /// A Secret that is not there and not optional.
    #[error("MountVolume.SetUp failed for volume {volume:?} : secret {name:?} not found")]
    SecretNotFound {
        /// The volume.
        volume: String,
        /// The volume's directory.
        path: PathBuf,
        /// The Secret's name.
        name: String,
    },
    /// An item names a key the ConfigMap does not have.
    #[error(
        "MountVolume.SetUp failed for volume {volume:?} : configmap references non-existent config key: {key}"
    )]
    ConfigMapKeyNotFound {
        /// The volume.
        volume: String,
        /// The volume's directory.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// An item names a key the Secret does not have.
    #[error(
        "MountVolume.SetUp failed for volume {volume:?} : references non-existent secret key: {key}"
    )]
    SecretKeyNotFound {
        /// The volume.
        volume: String,
        /// The volume's directory.
        path: PathBuf,
        /// The key.
        key: String,
    },
    /// An item path that would leave the volume (`invalid path: must not contain '..': a/../b`).
    #[error("MountVolume.SetUp failed for volume {volume:?} : invalid path: {reason}: {path}")]
    InvalidPath {
        /// The volume.
        volume: String,
        /// The item path.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A downwardAPI item cannot be resolved.
    #[error("MountVolume.SetUp failed for volume {volume:?} : {path}: {source}")]
    DownwardApi {
        /// The volume.
        volume: String,
        /// The item path.
        path: String,
        /// Why.
        source: Box<EnvError>,
    },
    /// A volume type Corral does not implement.
    #[error("volume {volume:?}: volume type {kind} is not supported on Corral")]
    Unsupported {
        /// The volume.
        volume: String,
        /// The volume's directory (where it would have been).
        path: PathBuf,
        /// The type (`persistentVolumeClaim`, `nfs`, ...).
        kind: String,
    },
    /// A projected volume source Corral cannot serve.
    #[error(
        "MountVolume.SetUp failed for volume {volume:?} : projected source {kind} is not supported on Corral (there is no API server to issue it)"
    )]
    UnsupportedProjection {
        /// The volume.
        volume: String,
        /// The volume's directory.
        path: PathBuf,
        /// The source (`serviceAccountToken`, `clusterTrustBundle`, `podCertificate`).
        kind: &'static str,
    },
    /// A volumeMount names a volume the pod does not have.
    #[error("cannot find volume {volume:?} to mount into container {container:?}")]
    VolumeNotFound {
        /// The volume.
        volume: String,
        /// The mount path.
        path: String,
        /// The container.
        container: String,
    },
    /// A subPath that is invalid, escapes the volume, or cannot be created.
    #[error(
        "failed to prepare subPath for volumeMount {volume:?} of container {container:?}: {reason}"
    )]
    SubPath {
        /// The volume.
        volume: String,
        /// The subPath.
        path: String,
        /// The container.
        container: String,
        /// What went wrong.
        reason: String,
    },
    /// A `mountPropagation` that is not `None`, `HostToContainer` or `Bidirectional`.
    #[error("invalid mount propagation {propagation:?} for volume {volume:?} at {path}")]
    Propagation {
        /// The volume.
        volume: String,
        /// The mount path.
        path: String,
        /// The value.
        propagation: String,
    },
    /// Something is still mounted under the pod's volume dir after unmounting.
    #[error("cannot remove pod volumes {}: {} is still mounted", dir.display(), path.display())]
    StillMounted {
        /// The pod's volume dir.
        dir: PathBuf,
        /// What is still mounted.
        path: PathBuf,
    },
    /// Tearing down the pod's volume dir failed.
    #[error("cannot remove pod volumes {}: {source}", path.display())]
    Teardown {
        /// The path operated on.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}
