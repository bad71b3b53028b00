//! A pod's volumes on disk, and each container's CRI mounts of them.
//!
//! [`PodVolumes::prepare`] materializes every volume of a pod under the pod's volume dir
//! (`<root>/kubelet/pods/<uid>/volumes`), laid out as the kubelet does:
//! `<dir>/kubernetes.io~<plugin>/<volume name>`. It is idempotent: after a daemon restart it is
//! called again and finds what is already there (a tmpfs already mounted is not mounted twice,
//! unchanged contents are not rewritten).
//!
//! - `emptyDir`: a directory of mode 0777 (or the alpha `mode`). `medium: Memory` mounts a tmpfs
//!   on it with `size=` from `sizeLimit`, or the host's `MemTotal` (the kubelet uses the node's
//!   allocatable memory). A disk-backed `sizeLimit` is **not enforced**: the kubelet enforces it
//!   by evicting the pod, and Corral has no eviction manager.
//! - `hostPath`: nothing is created except for `DirectoryOrCreate` (`mkdir -p`, 0755) and
//!   `FileOrCreate` (an empty 0644 file; the parent must exist, as with the kubelet); the other
//!   types check what is at the path, with the kubelet's messages.
//! - `configMap`, `secret`, `downwardAPI`, `projected`: files written the way the kubelet's
//!   atomic writer does: the data lives in a `..<timestamp>` directory, `..data` is a symlink to
//!   it, and each visible top-level entry is a symlink into `..data`. An update writes a new
//!   timestamped directory and swaps `..data` with a rename, so readers see either the old or
//!   the new set of files, never a mix. Each of these volumes is a tmpfs of its own mounted
//!   `nosuid,nodev` (secrets never touch the disk, and the container's bind mount keeps those
//!   flags, so a file can never be setuid or a device however its mode was written); modes
//!   are masked to 0777 (validation refuses more). Item paths that are absolute or contain
//!   `..` are refused. `projected` `serviceAccountToken`, `clusterTrustBundle` and
//!   `podCertificate` sources are refused: there is no API server to issue them.
//! - `fsGroup` (pod `securityContext.fsGroup`): as the kubelet's `SetVolumeOwnership`, the
//!   volume's contents get group `fsGroup`, group read (and write for `emptyDir`) bits, and
//!   directories get setgid and group search. Symlinks are re-grouped but never followed, and
//!   the walk opens every entry relative to its parent with `O_NOFOLLOW`, so a symlink planted by
//!   a container cannot redirect it. `fsGroupChangePolicy: OnRootMismatch` skips the walk when
//!   the volume's root already has the right group and bits.
//! - Any other volume type is refused with an error naming it.
//!
//! [`PodVolumes::mounts`] turns a container's `volumeMounts` into CRI mounts: `readOnly`
//! (always for configMap, secret, downwardAPI and projected volumes, as the kubelet does),
//! `recursiveReadOnly`, `mountPropagation`, and `subPath` / `subPathExpr` (expanded against the
//! container's environment). A subPath is resolved once, beneath the volume, to a descriptor
//! (`openat2(RESOLVE_BENEATH)`; a missing part is created as a directory with the mode of the
//! volume's root, one component at a time without following symlinks), and that descriptor is
//! bind-mounted on `<dir>/.subpaths/<volume>/<container>/<n>`, the path handed to the runtime:
//! no container can reach it, so nothing it swaps later changes what is mounted (the kubelet's
//! own fix for CVE-2017-1002101). A file mounted by subPath (a configMap key, say) does not see
//! later updates, as with the kubelet.
//!
//! [`PodVolumes::refresh`] rewrites configMap, secret, downwardAPI and projected contents after
//! their sources changed (the kubelet's periodic remount). [`teardown`] unmounts every mount
//! under the pod's volume dir and removes it; it needs only the path.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Component, Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use corral_cri_api::v1::{Mount, MountPropagation};
use corral_fsutil::mountinfo::mount_points;
#[cfg(test)]
use corral_fsutil::mountinfo::unescape as unescape_mountinfo;
use corral_kube::Objects;
use corral_kube::env::{self, EnvError, Environment, PodContext};
use corral_kube::k8s_openapi::api::core::v1::{
    Container, DownwardAPIVolumeFile, KeyToPath, Pod, Volume, VolumeMount,
};
use corral_kube::quantity::Quantity;
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::mount::{MntFlags, MsFlags};

/// The kubelet's default file mode for configMap, secret, downwardAPI and projected files.
const DEFAULT_FILE_MODE: u32 = 0o644;
/// The symlink to the current timestamped data directory.
const DATA_LINK: &str = "..data";
/// Where the next `..data` symlink is made before it is renamed over `..data`.
const DATA_TMP_LINK: &str = "..data_tmp";
/// The kubelet's limit on an item path.
const MAX_PATH_LEN: usize = 4096;

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

/// What kind of volume was materialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    EmptyDir,
    HostPath,
    ConfigMap,
    Secret,
    DownwardApi,
    Projected,
    /// An image's files (KEP-4639): nothing on disk here, the runtime mounts the image.
    Image,
}

impl Kind {
    /// The kubelet's plugin directory name.
    fn plugin_dir(self) -> &'static str {
        match self {
            Kind::EmptyDir => "kubernetes.io~empty-dir",
            Kind::HostPath => "kubernetes.io~host-path",
            Kind::ConfigMap => "kubernetes.io~configmap",
            Kind::Secret => "kubernetes.io~secret",
            Kind::DownwardApi => "kubernetes.io~downward-api",
            Kind::Projected => "kubernetes.io~projected",
            Kind::Image => "kubernetes.io~image",
        }
    }

    /// Volumes whose contents the kubelet writes (always mounted read-only).
    fn is_api_data(self) -> bool {
        matches!(
            self,
            Kind::ConfigMap | Kind::Secret | Kind::DownwardApi | Kind::Projected
        )
    }

    /// API data volumes kept on a tmpfs of their own (`nosuid,nodev`, which the container's
    /// bind mount keeps): all of them, so no file the pod manager writes from a manifest is
    /// setuid or a device anywhere, whatever its mode.
    fn in_memory(self) -> bool {
        self.is_api_data()
    }
}

/// One materialized volume.
#[derive(Debug, Clone)]
struct Prepared {
    name: String,
    kind: Kind,
    /// The host path containers mount (the hostPath itself for hostPath volumes; empty for an
    /// image volume).
    path: PathBuf,
    /// An image volume's reference and pull policy.
    image: Option<(String, Option<String>)>,
}

/// A pod's materialized volumes: the pod's volume dir and where each volume is.
#[derive(Debug, Clone)]
pub struct PodVolumes {
    dir: PathBuf,
    volumes: Vec<Prepared>,
}

/// How a pod wants its volumes owned (`securityContext.fsGroup`).
#[derive(Debug, Clone, Copy)]
struct Ownership {
    gid: u32,
    on_root_mismatch: bool,
}

impl Ownership {
    fn of(pod: &Pod) -> Option<Ownership> {
        let sc = pod.spec.as_ref()?.security_context.as_ref()?;
        let gid = u32::try_from(sc.fs_group?).ok()?;
        Some(Ownership {
            gid,
            on_root_mismatch: sc.fs_group_change_policy.as_deref() == Some("OnRootMismatch"),
        })
    }
}

/// One file of an API data volume.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileData {
    bytes: Vec<u8>,
    mode: u32,
    uid: Option<u32>,
}

/// The files of an API data volume, by relative path.
type Payload = BTreeMap<String, FileData>;

/// What the payload of one volume is built from.
struct Sources<'a> {
    pod: &'a Pod,
    objects: &'a dyn Objects,
    ctx: &'a PodContext,
    namespace: &'a str,
}

impl PodVolumes {
    /// Sets up every volume of `pod` under `dir` (`<root>/kubelet/pods/<uid>/volumes`),
    /// idempotently: called again after a daemon restart, it does not mount a tmpfs twice and
    /// leaves unchanged contents alone.
    pub fn prepare(
        pod: &Pod,
        dir: &Path,
        objects: &dyn Objects,
        ctx: &PodContext,
    ) -> Result<PodVolumes, VolumeError> {
        let mut out = PodVolumes {
            dir: dir.to_path_buf(),
            volumes: Vec::new(),
        };
        let Some(spec) = pod.spec.as_ref() else {
            return Ok(out);
        };
        let sources = Sources::of(pod, objects, ctx);
        let ownership = Ownership::of(pod);
        for volume in spec.volumes.iter().flatten() {
            let prepared = prepare_volume(volume, dir, &sources, ownership)?;
            tracing::debug!(volume = %prepared.name, path = %prepared.path.display(), "volume prepared");
            out.volumes.push(prepared);
        }
        Ok(out)
    }

    /// The pod's volume dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The host path of the volume `name`, if the pod has it.
    pub fn volume_path(&self, name: &str) -> Option<&Path> {
        self.find(name).map(|v| v.path.as_path())
    }

    fn find(&self, name: &str) -> Option<&Prepared> {
        self.volumes.iter().find(|v| v.name == name)
    }

    /// The image volumes `container` mounts: (reference, pull policy), each once.
    pub fn images_for(&self, container: &Container) -> Vec<(String, Option<String>)> {
        let mut out: Vec<(String, Option<String>)> = Vec::new();
        for vm in container.volume_mounts.iter().flatten() {
            if let Some(image) = self.find(&vm.name).and_then(|v| v.image.clone())
                && !out.contains(&image)
            {
                out.push(image);
            }
        }
        out
    }

    /// The CRI mounts of `container`'s `volumeMounts`. `env` is the container's environment,
    /// needed only to expand `subPathExpr` (a reference it does not define is an error, as with
    /// the kubelet; without `env` every reference is undefined).
    pub fn mounts(
        &self,
        container: &Container,
        env: Option<&Environment>,
    ) -> Result<Vec<Mount>, VolumeError> {
        container
            .volume_mounts
            .iter()
            .flatten()
            .enumerate()
            .map(|(index, vm)| self.mount(container, index, vm, env))
            .collect()
    }

    fn mount(
        &self,
        container: &Container,
        index: usize,
        vm: &VolumeMount,
        env: Option<&Environment>,
    ) -> Result<Mount, VolumeError> {
        let volume = self
            .find(&vm.name)
            .ok_or_else(|| VolumeError::VolumeNotFound {
                volume: vm.name.clone(),
                path: vm.mount_path.clone(),
                container: container.name.clone(),
            })?;
        let sub_path_error = |path: &str, reason: String| VolumeError::SubPath {
            volume: vm.name.clone(),
            path: path.to_string(),
            container: container.name.clone(),
            reason,
        };
        let sub_path = match (vm.sub_path.as_deref(), vm.sub_path_expr.as_deref()) {
            (Some(p), _) if !p.is_empty() => p.to_string(),
            (_, Some(expr)) if !expr.is_empty() => {
                expand_sub_path_expr(expr, env).map_err(|r| sub_path_error(expr, r))?
            }
            _ => String::new(),
        };
        if let Some((reference, _)) = &volume.image {
            // The runtime resolves the subPath inside the image (`image_sub_path`).
            return Ok(Mount {
                container_path: vm.mount_path.clone(),
                image: Some(corral_cri_api::v1::ImageSpec {
                    image: reference.clone(),
                    ..Default::default()
                }),
                image_sub_path: sub_path,
                readonly: true,
                ..Default::default()
            });
        }
        let host_path = if sub_path.is_empty() {
            volume.path.clone()
        } else {
            let resolved = resolve_sub_path(&volume.path, &sub_path)
                .map_err(|r| sub_path_error(&sub_path, r))?;
            let target = self
                .dir
                .join(SUBPATHS)
                .join(&vm.name)
                .join(&container.name)
                .join(index.to_string());
            bind_sub_path(&resolved, &target)
                .map_err(|e| sub_path_error(&sub_path, format!("{}: {e}", target.display())))?;
            target
        };
        let propagation = match vm.mount_propagation.as_deref() {
            None | Some("") | Some("None") => MountPropagation::PropagationPrivate,
            Some("HostToContainer") => MountPropagation::PropagationHostToContainer,
            Some("Bidirectional") => MountPropagation::PropagationBidirectional,
            Some(other) => {
                return Err(VolumeError::Propagation {
                    volume: vm.name.clone(),
                    path: vm.mount_path.clone(),
                    propagation: other.to_string(),
                });
            }
        };
        let readonly = vm.read_only == Some(true) || volume.kind.is_api_data();
        let recursive_read_only = readonly
            && matches!(
                vm.recursive_read_only.as_deref(),
                Some("Enabled") | Some("IfPossible")
            );
        Ok(Mount {
            container_path: vm.mount_path.clone(),
            host_path: host_path.to_string_lossy().into_owned(),
            readonly,
            propagation: propagation as i32,
            recursive_read_only,
            ..Default::default()
        })
    }

    /// Rewrites the contents of the pod's configMap, secret, downwardAPI and projected volumes
    /// from `pod` (labels, annotations) and `objects` (ConfigMaps, Secrets), atomically for
    /// readers. A volume whose new contents cannot be built keeps its old contents; the first
    /// such error is returned after the others were refreshed.
    pub fn refresh(
        &self,
        pod: &Pod,
        objects: &dyn Objects,
        ctx: &PodContext,
    ) -> Result<(), VolumeError> {
        let sources = Sources::of(pod, objects, ctx);
        let ownership = Ownership::of(pod);
        let mut first = None;
        let specs = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
        for prepared in self.volumes.iter().filter(|v| v.kind.is_api_data()) {
            let Some(volume) = specs.and_then(|v| v.iter().find(|v| v.name == prepared.name))
            else {
                continue;
            };
            let result = payload(volume, &prepared.path, &sources).and_then(|p| {
                write_payload(&prepared.name, &prepared.path, &p, ownership).map(|_| ())
            });
            if let Err(e) = result {
                tracing::warn!(volume = %prepared.name, error = %e, "volume refresh failed");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl<'a> Sources<'a> {
    fn of(pod: &'a Pod, objects: &'a dyn Objects, ctx: &'a PodContext) -> Self {
        Sources {
            pod,
            objects,
            ctx,
            namespace: pod.metadata.namespace.as_deref().unwrap_or("default"),
        }
    }
}

/// The volume type's name as a manifest spells it (the one field besides `name`).
fn volume_type(volume: &Volume) -> String {
    serde_json::to_value(volume)
        .ok()
        .and_then(|v| {
            v.as_object()
                .and_then(|o| o.keys().find(|k| *k != "name").cloned())
        })
        .unwrap_or_else(|| "<none>".into())
}

fn kind_of(volume: &Volume) -> Option<Kind> {
    Some(if volume.empty_dir.is_some() {
        Kind::EmptyDir
    } else if volume.host_path.is_some() {
        Kind::HostPath
    } else if volume.config_map.is_some() {
        Kind::ConfigMap
    } else if volume.secret.is_some() {
        Kind::Secret
    } else if volume.downward_api.is_some() {
        Kind::DownwardApi
    } else if volume.projected.is_some() {
        Kind::Projected
    } else if volume.image.is_some() {
        Kind::Image
    } else {
        return None;
    })
}

fn io_err(volume: &str, path: &Path) -> impl FnOnce(io::Error) -> VolumeError + use<> {
    let (volume, path) = (volume.to_string(), path.to_path_buf());
    move |source| VolumeError::Io {
        volume,
        path,
        source,
    }
}

/// Sets up one volume and says where it is.
fn prepare_volume(
    volume: &Volume,
    dir: &Path,
    sources: &Sources,
    ownership: Option<Ownership>,
) -> Result<Prepared, VolumeError> {
    let name = volume.name.as_str();
    let Some(kind) = kind_of(volume) else {
        return Err(VolumeError::Unsupported {
            volume: name.into(),
            path: dir.join(&volume.name),
            kind: volume_type(volume),
        });
    };
    if let Some(hp) = &volume.host_path {
        let path = PathBuf::from(&hp.path);
        check_host_path(&path, hp.type_.as_deref().unwrap_or("")).map_err(|message| {
            VolumeError::HostPathType {
                volume: name.into(),
                path: path.clone(),
                message,
            }
        })?;
        return Ok(Prepared {
            name: name.into(),
            kind,
            path,
            image: None,
        });
    }
    if let Some(iv) = &volume.image {
        let reference = iv
            .reference
            .clone()
            .filter(|r| !r.trim().is_empty())
            .ok_or_else(|| VolumeError::Unsupported {
                volume: name.into(),
                path: dir.join(name),
                kind: "image without a reference".into(),
            })?;
        return Ok(Prepared {
            name: name.into(),
            kind,
            path: PathBuf::new(),
            image: Some((reference, iv.pull_policy.clone())),
        });
    }
    let plugin = dir.join(kind.plugin_dir());
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(&plugin)
        .map_err(io_err(name, &plugin))?;
    let path = plugin.join(name);
    if let Some(ed) = &volume.empty_dir {
        let mode = ed.mode.map_or(0o777, |m| m as u32 & 0o7777);
        let created = ensure_dir(&path, mode).map_err(io_err(name, &path))?;
        if ed.medium.as_deref() == Some("Memory") {
            let size = ed
                .size_limit
                .as_ref()
                .and_then(|q| Quantity::parse(&q.0).ok())
                .map(|q| q.value())
                .filter(|b| *b > 0);
            let mode = ed.mode.map(|m| m as u32 & 0o7777);
            ensure_tmpfs(name, &path, size, mode)?;
        } else if !created && ed.mode.is_some() {
            // The kubelet keeps the directory's mode as asked.
            fs::set_permissions(&path, fs::Permissions::from_mode(mode))
                .map_err(io_err(name, &path))?;
        }
        if let Some(own) = ownership {
            set_ownership(&path, own, false).map_err(io_err(name, &path))?;
        }
    } else {
        ensure_dir(&path, 0o755).map_err(io_err(name, &path))?;
        if kind.in_memory() {
            ensure_tmpfs(name, &path, None, None)?;
        }
        let files = payload(volume, &path, sources)?;
        write_payload(name, &path, &files, ownership)?;
    }
    Ok(Prepared {
        name: name.into(),
        kind,
        path,
        image: None,
    })
}

/// Creates `path` with exactly `mode` unless it exists; says whether it was created.
fn ensure_dir(path: &Path, mode: u32) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => return Ok(false),
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a directory",
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::DirBuilder::new().mode(mode).create(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(true)
}

// ---- hostPath ----

/// The kubelet's hostPath `type` check (`checkType`), creating for the `OrCreate` types.
fn check_host_path(path: &Path, ty: &str) -> Result<(), String> {
    let shown = path.display();
    let exists = fs::metadata(path).is_ok();
    let (expected, description) = match ty {
        "" => return Ok(()),
        "DirectoryOrCreate" | "Directory" => {
            if ty == "DirectoryOrCreate" && !exists {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(path)
                    .map_err(|e| format!("mkdir {shown}: {e}"))?;
            }
            ("Directory", "directory")
        }
        "FileOrCreate" | "File" => {
            if ty == "FileOrCreate" && !exists {
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o644)
                    .open(path)
                    .map_err(|e| format!("open {shown}: {e}"))?;
            }
            ("File", "file")
        }
        "Socket" => ("Socket", "socket file"),
        "CharDevice" => ("CharDevice", "character device"),
        "BlockDevice" => ("BlockDevice", "block device"),
        other => return Err(format!("{other} is an invalid volume type")),
    };
    let meta = fs::metadata(path).map_err(|_| format!("hostPath {shown} doesn't exist"))?;
    let ft = meta.file_type();
    let actual = if ft.is_dir() {
        "Directory"
    } else if ft.is_file() {
        "File"
    } else if ft.is_socket() {
        "Socket"
    } else if ft.is_char_device() {
        "CharDevice"
    } else if ft.is_block_device() {
        "BlockDevice"
    } else {
        return Err(format!(
            "hostPath type check failed, {shown} is not a {description}, unable to determine its type: only recognise file, directory, socket, block device and character device"
        ));
    };
    if actual != expected {
        return Err(format!(
            "hostPath type check failed: {shown} is not a {description}, it's a {actual}"
        ));
    }
    Ok(())
}

// ---- payloads ----

/// The kubelet's checks on an item path (`validatePath` of the atomic writer).
fn check_item_path(volume: &str, path: &str) -> Result<(), VolumeError> {
    let reason = if path.is_empty() {
        Some("must not be empty")
    } else if path.len() > MAX_PATH_LEN {
        Some("must be less than or equal to 4096 characters")
    } else if Path::new(path).is_absolute() {
        Some("must be relative path")
    } else if path.split('/').any(|c| c == "..") {
        Some("must not contain '..'")
    } else if path.starts_with("..") {
        Some("must not start with '..'")
    } else if path.split('/').any(|c| c.len() > 255) {
        Some("each path component must be at most 255 characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(VolumeError::InvalidPath {
            volume: volume.into(),
            path: path.into(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A file mode from a manifest: permission bits only (the API server refuses anything above
/// 0777; setuid, setgid and sticky bits are dropped should one get here).
fn mode_bits(mode: Option<i32>, default: u32) -> u32 {
    mode.map_or(default, |m| m as u32 & 0o777)
}

fn uid_of(user: Option<i64>) -> Option<u32> {
    user.and_then(|u| u32::try_from(u).ok())
}

/// The files of an API data volume (`path` is its directory, for errors).
fn payload(volume: &Volume, path: &Path, sources: &Sources) -> Result<Payload, VolumeError> {
    let name = volume.name.as_str();
    let mut files = Payload::new();
    if let Some(cm) = &volume.config_map {
        let defaults = (
            mode_bits(cm.default_mode, DEFAULT_FILE_MODE),
            uid_of(cm.default_user),
        );
        let target = KeyedSource {
            object: &cm.name,
            items: cm.items.as_deref(),
            optional: cm.optional == Some(true),
        };
        config_map_files(name, path, &target, defaults, sources, &mut files)?;
    } else if let Some(s) = &volume.secret {
        let defaults = (
            mode_bits(s.default_mode, DEFAULT_FILE_MODE),
            uid_of(s.default_user),
        );
        let target = KeyedSource {
            object: s.secret_name.as_deref().unwrap_or(""),
            items: s.items.as_deref(),
            optional: s.optional == Some(true),
        };
        secret_files(name, path, &target, defaults, sources, &mut files)?;
    } else if let Some(d) = &volume.downward_api {
        let defaults = (
            mode_bits(d.default_mode, DEFAULT_FILE_MODE),
            uid_of(d.default_user),
        );
        downward_files(name, d.items.as_deref(), defaults, sources, &mut files)?;
    } else if let Some(p) = &volume.projected {
        let defaults = (
            mode_bits(p.default_mode, DEFAULT_FILE_MODE),
            uid_of(p.default_user),
        );
        for source in p.sources.iter().flatten() {
            let unsupported = |kind| VolumeError::UnsupportedProjection {
                volume: name.into(),
                path: path.to_path_buf(),
                kind,
            };
            if source.service_account_token.is_some() {
                return Err(unsupported("serviceAccountToken"));
            }
            if source.cluster_trust_bundle.is_some() {
                return Err(unsupported("clusterTrustBundle"));
            }
            if source.pod_certificate.is_some() {
                return Err(unsupported("podCertificate"));
            }
            if let Some(cm) = &source.config_map {
                let target = KeyedSource {
                    object: &cm.name,
                    items: cm.items.as_deref(),
                    optional: cm.optional == Some(true),
                };
                config_map_files(name, path, &target, defaults, sources, &mut files)?;
            }
            if let Some(s) = &source.secret {
                let target = KeyedSource {
                    object: &s.name,
                    items: s.items.as_deref(),
                    optional: s.optional == Some(true),
                };
                secret_files(name, path, &target, defaults, sources, &mut files)?;
            }
            if let Some(d) = &source.downward_api {
                downward_files(name, d.items.as_deref(), defaults, sources, &mut files)?;
            }
        }
    }
    Ok(files)
}

/// A ConfigMap or Secret reference of a volume or projection.
struct KeyedSource<'a> {
    object: &'a str,
    items: Option<&'a [KeyToPath]>,
    optional: bool,
}

/// Default mode and owner of a volume's files.
type Defaults = (u32, Option<u32>);

fn config_map_files(
    volume: &str,
    path: &Path,
    src: &KeyedSource,
    defaults: Defaults,
    sources: &Sources,
    files: &mut Payload,
) -> Result<(), VolumeError> {
    let Some(cm) = sources.objects.config_map(sources.namespace, src.object) else {
        if src.optional {
            return Ok(());
        }
        return Err(VolumeError::ConfigMapNotFound {
            volume: volume.into(),
            path: path.to_path_buf(),
            name: src.object.into(),
        });
    };
    let mut data: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        data.insert(k.clone(), v.0.clone());
    }
    keyed_files(volume, src, &data, defaults, files, |key| {
        VolumeError::ConfigMapKeyNotFound {
            volume: volume.into(),
            path: path.to_path_buf(),
            key,
        }
    })
}

fn secret_files(
    volume: &str,
    path: &Path,
    src: &KeyedSource,
    defaults: Defaults,
    sources: &Sources,
    files: &mut Payload,
) -> Result<(), VolumeError> {
    let Some(secret) = sources.objects.secret(sources.namespace, src.object) else {
        if src.optional {
            return Ok(());
        }
        return Err(VolumeError::SecretNotFound {
            volume: volume.into(),
            path: path.to_path_buf(),
            name: src.object.into(),
        });
    };
    let mut data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    // The API server merges `stringData` into `data`; objects applied here may still have it.
    for (k, v) in secret.string_data.iter().flatten() {
        data.insert(k.clone(), v.clone().into_bytes());
    }
    keyed_files(volume, src, &data, defaults, files, |key| {
        VolumeError::SecretKeyNotFound {
            volume: volume.into(),
            path: path.to_path_buf(),
            key,
        }
    })
}

/// Every key as a file, or the listed `items` at their paths.
fn keyed_files(
    volume: &str,
    src: &KeyedSource,
    data: &BTreeMap<String, Vec<u8>>,
    (mode, uid): Defaults,
    files: &mut Payload,
    missing: impl Fn(String) -> VolumeError,
) -> Result<(), VolumeError> {
    let Some(items) = src.items else {
        for (key, bytes) in data {
            check_item_path(volume, key)?;
            let file = FileData {
                bytes: bytes.clone(),
                mode,
                uid,
            };
            files.insert(key.clone(), file);
        }
        return Ok(());
    };
    for item in items {
        let Some(bytes) = data.get(&item.key) else {
            if src.optional {
                continue;
            }
            return Err(missing(item.key.clone()));
        };
        check_item_path(volume, &item.path)?;
        let file = FileData {
            bytes: bytes.clone(),
            mode: mode_bits(item.mode, mode),
            uid: uid_of(item.user).or(uid),
        };
        files.insert(item.path.clone(), file);
    }
    Ok(())
}

fn downward_files(
    volume: &str,
    items: Option<&[DownwardAPIVolumeFile]>,
    (mode, uid): Defaults,
    sources: &Sources,
    files: &mut Payload,
) -> Result<(), VolumeError> {
    for item in items.into_iter().flatten() {
        check_item_path(volume, &item.path)?;
        let value = downward_value(item, sources).map_err(|source| VolumeError::DownwardApi {
            volume: volume.into(),
            path: item.path.clone(),
            source: Box::new(source),
        })?;
        let file = FileData {
            bytes: value.into_bytes(),
            mode: mode_bits(item.mode, mode),
            uid: uid_of(item.user).or(uid),
        };
        files.insert(item.path.clone(), file);
    }
    Ok(())
}

/// One downwardAPI file's contents: whole `metadata.labels` / `metadata.annotations` as
/// `key="value"` lines, anything else through the environment's downward API helpers.
fn downward_value(item: &DownwardAPIVolumeFile, sources: &Sources) -> Result<String, EnvError> {
    let pod = sources.pod;
    if let Some(f) = &item.field_ref {
        return match f.field_path.as_str() {
            "metadata.labels" => Ok(format_map(pod.metadata.labels.as_ref())),
            "metadata.annotations" => Ok(format_map(pod.metadata.annotations.as_ref())),
            path => env::field_value(path, pod, sources.ctx),
        };
    }
    if let Some(r) = &item.resource_field_ref {
        let name = r.container_name.as_deref().unwrap_or("");
        let spec = pod.spec.as_ref();
        let container = spec
            .into_iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .find(|c| c.name == name)
            .ok_or_else(|| EnvError::ContainerNotFound(name.into()))?;
        let divisor = r.divisor.as_ref().map(|d| d.0.as_str());
        return env::resource_value(&r.resource, divisor, container, sources.ctx);
    }
    Ok(String::new())
}

/// The kubelet's `fieldpath.FormatMap`: `key="value"` lines in key order, values quoted as Go's
/// `%q` does, no trailing newline.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---- the atomic writer ----

/// Writes `files` into the volume at `root` the way the kubelet's atomic writer does; does
/// nothing when the current contents are already `files`. Says whether it wrote.
fn write_payload(
    volume: &str,
    root: &Path,
    files: &Payload,
    ownership: Option<Ownership>,
) -> Result<bool, VolumeError> {
    let err = |p: &Path| io_err(volume, p);
    let data_link = root.join(DATA_LINK);
    let old = fs::read_link(&data_link).ok();
    if let Some(old) = &old
        && matches_payload(&root.join(old), files, ownership).unwrap_or(false)
    {
        link_visible(root, files).map_err(err(root))?;
        return Ok(false);
    }
    let ts = new_timestamp_dir(root).map_err(err(root))?;
    let ts_path = root.join(&ts);
    for (rel, file) in files {
        write_file(&ts_path, rel, file).map_err(err(&ts_path.join(rel)))?;
    }
    if let Some(own) = ownership {
        set_ownership(&ts_path, own, true).map_err(err(&ts_path))?;
        set_ownership_shallow(root, own, true).map_err(err(root))?;
    }
    let tmp = root.join(DATA_TMP_LINK);
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(err(&tmp)(e)),
        _ => {}
    }
    std::os::unix::fs::symlink(&ts, &tmp).map_err(err(&tmp))?;
    fs::rename(&tmp, &data_link).map_err(err(&data_link))?;
    link_visible(root, files).map_err(err(root))?;
    unlink_stale(root, files).map_err(err(root))?;
    if let Some(old) = old.filter(|o| *o != Path::new(&ts)) {
        let old = root.join(old);
        if old.parent() == Some(root) {
            fs::remove_dir_all(&old).map_err(err(&old))?;
        }
    }
    tracing::debug!(volume, dir = %ts_path.display(), files = files.len(), "volume contents written");
    Ok(true)
}

/// `..2006_01_02_15_04_05.<random>` under `root`, mode 0755.
fn new_timestamp_dir(root: &Path) -> io::Result<String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(io::Error::other)?;
    let secs = now.as_secs();
    let (y, mo, d) = corral_fsutil::time::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let stamp = format!(
        "..{y:04}_{mo:02}_{d:02}_{:02}_{:02}_{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    loop {
        let name = format!("{stamp}.{}", rand::random::<u32>());
        let path = root.join(&name);
        match fs::DirBuilder::new().mode(0o755).create(&path) {
            Ok(()) => {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
                return Ok(name);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Creates `rel` (already validated) in the fresh directory `ts`, never following symlinks.
fn write_file(ts: &Path, rel: &str, file: &FileData) -> io::Result<()> {
    let path = ts.join(rel);
    if let Some(parent) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)?;
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(file.mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)?;
    f.write_all(&file.bytes)?;
    f.set_permissions(fs::Permissions::from_mode(file.mode))?;
    if let Some(uid) = file.uid {
        std::os::unix::fs::fchown(&f, Some(uid), None)?;
    }
    Ok(())
}

/// Whether the data directory `ts` holds exactly `files` (contents, modes, group).
fn matches_payload(ts: &Path, files: &Payload, ownership: Option<Ownership>) -> io::Result<bool> {
    let mut found = BTreeSet::new();
    collect_files(ts, ts, &mut found)?;
    if found.len() != files.len() || !files.keys().all(|k| found.contains(Path::new(k))) {
        return Ok(false);
    }
    for (rel, file) in files {
        let path = ts.join(rel);
        let meta = fs::symlink_metadata(&path)?;
        let mut mode = file.mode;
        if let Some(own) = ownership {
            mode |= 0o440;
            if meta.gid() != own.gid {
                return Ok(false);
            }
        }
        if meta.mode() & 0o7777 != mode
            || file.uid.is_some_and(|u| u != meta.uid())
            || fs::read(&path)? != file.bytes
        {
            return Ok(false);
        }
    }
    Ok(true)
}

fn collect_files(base: &Path, dir: &Path, out: &mut BTreeSet<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let ft = entry.file_type()?;
        if ft.is_dir() {
            collect_files(base, &entry.path(), out)?;
        } else if let Ok(rel) = entry.path().strip_prefix(base) {
            out.insert(rel.to_path_buf());
        }
    }
    Ok(())
}

/// The top-level names of `files` (what the volume shows besides `..*`).
fn visible_names(files: &Payload) -> BTreeSet<&str> {
    files
        .keys()
        .filter_map(|k| k.split('/').find(|c| !c.is_empty() && *c != "."))
        .collect()
}

/// Makes each top-level name a symlink into `..data`.
fn link_visible(root: &Path, files: &Payload) -> io::Result<()> {
    for name in visible_names(files) {
        let link = root.join(name);
        match fs::symlink_metadata(&link) {
            Ok(m) if m.file_type().is_symlink() => continue,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a symlink", link.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::os::unix::fs::symlink(Path::new(DATA_LINK).join(name), &link)?;
    }
    Ok(())
}

/// Removes the visible symlinks of names no longer in `files`.
fn unlink_stale(root: &Path, files: &Payload) -> io::Result<()> {
    let keep = visible_names(files);
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("..") || keep.contains(name.as_ref()) {
            continue;
        }
        if entry.file_type()?.is_symlink() {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

// ---- ownership (fsGroup) ----

/// `/proc/self/fd/N`: reaches exactly the file `f` refers to, whatever its path now is.
fn fd_path(f: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()))
}

/// Opens `path` as an `O_PATH` handle without following a symlink at its last component.
fn open_path(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// The mode bits fsGroup adds to a file or directory.
fn fs_group_mask(is_dir: bool, read_only: bool) -> u32 {
    let mut mask = if read_only { 0o440 } else { 0o660 };
    if is_dir {
        mask |= 0o2000 | 0o110;
    }
    mask
}

/// The kubelet's `SetVolumeOwnership` on the tree at `root`: group `gid`, the group mask and
/// setgid directories; symlinks only re-grouped. Every entry is opened relative to its parent's
/// handle with `O_NOFOLLOW`, so symlinks in the tree are never followed.
fn set_ownership(root: &Path, own: Ownership, read_only: bool) -> io::Result<()> {
    let dir = open_path(root)?;
    let meta = dir.metadata()?;
    if own.on_root_mismatch {
        let mask = fs_group_mask(true, read_only);
        if meta.gid() == own.gid && meta.mode() & mask == mask {
            tracing::debug!(path = %root.display(), "fsGroup ownership already set");
            return Ok(());
        }
    }
    apply_group(&dir, &meta, own.gid, read_only)?;
    walk_ownership(root, own.gid, read_only)
}

/// fsGroup on `root` itself only.
fn set_ownership_shallow(root: &Path, own: Ownership, read_only: bool) -> io::Result<()> {
    let dir = open_path(root)?;
    let meta = dir.metadata()?;
    apply_group(&dir, &meta, own.gid, read_only)
}

/// fsGroup on everything below `root`. The tree is the pod's (an emptyDir can be thousands of
/// levels deep): `corral_fsutil::walk` goes through it without recursion, with a bounded
/// number of descriptors and without following symlinks; each entry is opened `O_PATH |
/// O_NOFOLLOW` through its directory's descriptor and changed through that handle.
fn walk_ownership(root: &Path, gid: u32, read_only: bool) -> io::Result<()> {
    struct Group {
        gid: u32,
        read_only: bool,
    }
    impl corral_fsutil::Visitor for Group {
        fn entry(&mut self, e: &corral_fsutil::Entry<'_>) -> io::Result<()> {
            let path = e.proc_path();
            let child = open_path(&path)?;
            let meta = child.metadata()?;
            if meta.file_type().is_symlink() {
                return std::os::unix::fs::lchown(&path, None, Some(self.gid));
            }
            apply_group(&child, &meta, self.gid, self.read_only)
        }
    }
    corral_fsutil::walk(root, &mut Group { gid, read_only }).map_err(io::Error::from)
}

fn apply_group(f: &File, meta: &fs::Metadata, gid: u32, read_only: bool) -> io::Result<()> {
    let path = fd_path(f);
    std::os::unix::fs::chown(&path, None, Some(gid))?;
    let mode = (meta.mode() & 0o7777) | fs_group_mask(meta.is_dir(), read_only);
    fs::set_permissions(&path, fs::Permissions::from_mode(mode))
}

// ---- subPath ----

/// Expands `$(VAR)` in a `subPathExpr`; an undefined or empty variable is an error.
fn expand_sub_path_expr(expr: &str, env: Option<&Environment>) -> Result<String, String> {
    let missing = std::cell::RefCell::new(BTreeSet::new());
    let out = env::expand(expr, |name| {
        match env.and_then(|e| e.get(name)).filter(|v| !v.is_empty()) {
            Some(v) => Some(v.to_string()),
            None => {
                missing.borrow_mut().insert(name.to_string());
                Some(String::new())
            }
        }
    });
    let missing = missing.into_inner();
    if !missing.is_empty() {
        return Err(format!(
            "missing value for {}",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(out)
}

/// Resolves `sub` beneath the volume at `root` once, to an `O_PATH` descriptor: the existing
/// part in one `openat2(RESOLVE_BENEATH)` (symlinks are followed only while they stay inside
/// the volume), then each missing directory created (with the root's mode) and opened relative
/// to its parent without following any symlink. Refuses absolute paths, `..` and anything that
/// resolves outside the volume. The descriptor, not a path, is what gets mounted
/// ([`bind_sub_path`]): a container that swaps a directory for a symlink afterwards changes
/// nothing (CVE-2017-1002101, CVE-2021-25741).
fn resolve_sub_path(root: &Path, sub: &str) -> Result<File, String> {
    let rel = Path::new(sub);
    if rel.is_absolute() {
        return Err(format!("subPath {sub:?} must not be an absolute path"));
    }
    if rel.components().any(|c| c == Component::ParentDir) {
        return Err(format!("subPath {sub:?} must not contain '..'"));
    }
    let root_fd = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(root)
        .map_err(|e| format!("{}: {e}", root.display()))?;
    let escapes = || {
        format!(
            "subpath {sub:?} not within volume path {:?}",
            root.display().to_string()
        )
    };
    let parts: Vec<_> = rel
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    // The longest prefix that exists, resolved beneath the root.
    let mut existing = parts.len();
    let mut dir = loop {
        let prefix: PathBuf = parts[..existing].iter().collect();
        let prefix = if existing == 0 {
            PathBuf::from(".")
        } else {
            prefix
        };
        let resolve = ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS;
        match open_beneath(&root_fd, &prefix, OFlag::empty(), resolve) {
            Ok(f) => break f,
            Err(Errno::ENOENT) if existing > 0 => existing -= 1,
            Err(Errno::EXDEV | Errno::ELOOP) => return Err(escapes()),
            Err(e) => return Err(format!("{sub}: {e}")),
        }
    };
    if existing == parts.len() {
        return Ok(dir);
    }
    let mode = root_fd
        .metadata()
        .map(|m| m.mode() & 0o7777)
        .map_err(|e| e.to_string())?;
    for part in &parts[existing..] {
        let name = Path::new(part.as_os_str());
        let created = match nix::sys::stat::mkdirat(
            Some(dir.as_raw_fd()),
            name,
            nix::sys::stat::Mode::from_bits_truncate(mode),
        ) {
            Ok(()) => true,
            Err(Errno::EEXIST) => false,
            Err(e) => return Err(format!("{sub}: {e}")),
        };
        dir = match open_beneath(&dir, name, OFlag::O_DIRECTORY, no_symlinks()) {
            Ok(f) => f,
            Err(Errno::ENOTDIR) => {
                return Err(format!("subPath {sub:?}: {part:?} is not a directory"));
            }
            Err(Errno::ELOOP | Errno::EXDEV) => return Err(escapes()),
            Err(e) => return Err(format!("{sub}: {e}")),
        };
        if created {
            // The exact mode, whatever the umask took away.
            fs::set_permissions(fd_path(&dir), fs::Permissions::from_mode(mode))
                .map_err(|e| format!("{sub}: {e}"))?;
        }
    }
    Ok(dir)
}

fn no_symlinks() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS
}

/// `openat2(dir, path, O_PATH | flags, resolve)`.
fn open_beneath(dir: &File, path: &Path, flags: OFlag, resolve: ResolveFlag) -> nix::Result<File> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | flags)
        .resolve(resolve);
    let fd = nix::fcntl::openat2(dir.as_raw_fd(), path, how)?;
    // SAFETY: openat2 returned a new descriptor that nobody else owns.
    #[allow(unsafe_code)]
    Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Where the subPath mounts of a pod's containers are bound (`<volumes>/.subpaths/<volume>/
/// <container>/<index of the volumeMount>`): under the pod's volume dir, which no container
/// reaches, so the runtime resolving this path again cannot be redirected. [`teardown`]
/// unmounts them with the rest.
const SUBPATHS: &str = ".subpaths";

/// Binds the file or directory `resolved` refers to on `target` (created as a file or a
/// directory to match; an older bind there is detached first), from the descriptor.
fn bind_sub_path(resolved: &File, target: &Path) -> io::Result<()> {
    let is_dir = resolved.metadata()?.is_dir();
    if let Some(parent) = target.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    // A container restarted: its earlier bind is detached (the old container keeps its own
    // copy of the mount in its namespace).
    for _ in 0..8 {
        if nix::mount::umount2(target, MntFlags::MNT_DETACH).is_err() {
            break;
        }
    }
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() == is_dir && !m.file_type().is_symlink() => {}
        Ok(m) if m.is_dir() => fs::remove_dir(target)?,
        Ok(_) => fs::remove_file(target)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if is_dir {
        match fs::DirBuilder::new().mode(0o700).create(target) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    } else {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(target)?;
    }
    nix::mount::mount(
        Some(&fd_path(resolved)),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(io::Error::from)
}

// ---- tmpfs and mounts ----

/// The host's `MemTotal` in bytes (also the pod manager's memory capacity).
pub(super) fn mem_total() -> Option<i64> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Mounts a tmpfs on `path` unless one is mounted there already.
fn ensure_tmpfs(
    volume: &str,
    path: &Path,
    size: Option<i64>,
    mode: Option<u32>,
) -> Result<(), VolumeError> {
    let canonical = fs::canonicalize(path).map_err(io_err(volume, path))?;
    let mounted = mount_points()
        .map_err(io_err(volume, Path::new("/proc/self/mountinfo")))?
        .iter()
        .any(|(p, t)| *p == canonical && t == "tmpfs");
    if mounted {
        return Ok(());
    }
    let mut options = Vec::new();
    if let Some(bytes) = size.or_else(mem_total) {
        options.push(format!("size={bytes}"));
    }
    if let Some(mode) = mode {
        options.push(format!("mode={mode:o}"));
    }
    let data = options.join(",");
    nix::mount::mount(
        Some("tmpfs"),
        &canonical,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .map_err(|source| VolumeError::Mount {
        volume: volume.into(),
        path: canonical.clone(),
        source,
    })?;
    tracing::debug!(volume, path = %canonical.display(), options = %data, "tmpfs mounted");
    Ok(())
}

/// Unmounts every mount under `dir` (tmpfs emptyDir, secret and projected volumes) and removes
/// `dir`. Needs only the path, so it works after a restart; a missing `dir` is not an error.
/// Nothing is removed while anything is still mounted under `dir`.
pub fn teardown(dir: &Path) -> Result<(), VolumeError> {
    let teardown_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| VolumeError::Teardown { path, source }
    };
    let canonical = match fs::canonicalize(dir) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(teardown_err(dir)(e)),
    };
    let under = || -> Result<Vec<PathBuf>, VolumeError> {
        let mut points: Vec<PathBuf> = mount_points()
            .map_err(teardown_err(Path::new("/proc/self/mountinfo")))?
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| p.starts_with(&canonical))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        Ok(points)
    };
    // Stacked mounts show up once per layer; a few rounds peel them all.
    for _ in 0..8 {
        let points = under()?;
        if points.is_empty() {
            break;
        }
        for point in points {
            let result = nix::mount::umount2(&point, MntFlags::empty()).or_else(|e| {
                if e == nix::errno::Errno::EBUSY {
                    nix::mount::umount2(&point, MntFlags::MNT_DETACH)
                } else {
                    Err(e)
                }
            });
            match result {
                Ok(()) => tracing::debug!(path = %point.display(), "unmounted"),
                Err(nix::errno::Errno::EINVAL) => {}
                Err(e) => tracing::warn!(path = %point.display(), error = %e, "unmount failed"),
            }
        }
    }
    if let Some(path) = under()?.into_iter().next() {
        return Err(VolumeError::StillMounted {
            dir: dir.to_path_buf(),
            path,
        });
    }
    // emptyDirs are container-shaped trees: removed without recursion (`corral_fsutil`).
    corral_fsutil::remove_tree(&canonical).map_err(|e| teardown_err(&canonical)(e.into()))?;
    tracing::debug!(dir = %canonical.display(), "pod volumes removed");
    Ok(())
}

#[cfg(test)]
mod tests;
