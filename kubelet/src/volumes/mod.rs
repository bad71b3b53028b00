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
    Container, DownwardAPIVolumeFile, EmptyDirVolumeSource, KeyToPath, Pod, Volume, VolumeMount,
};
use corral_kube::quantity::Quantity;
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::mount::{MntFlags, MsFlags};

mod api_data;
mod empty_dir;
mod error;
mod host_path;
mod mounts;
mod ownership;
mod subpath;
mod writer;

use api_data::{payload, prepare_api_data};
use empty_dir::prepare_empty_dir;
pub use error::VolumeError;
use host_path::check_host_path;
use mounts::ensure_tmpfs;
pub use mounts::teardown;
use ownership::{fd_path, set_ownership, set_ownership_shallow};
use subpath::{SUBPATHS, bind_sub_path, expand_sub_path_expr, resolve_sub_path};
use writer::write_payload;

/// The kubelet's default file mode for configMap, secret, downwardAPI and projected files.
const DEFAULT_FILE_MODE: u32 = 0o644;
/// The symlink to the current timestamped data directory.
const DATA_LINK: &str = "..data";
/// Where the next `..data` symlink is made before it is renamed over `..data`.
const DATA_TMP_LINK: &str = "..data_tmp";
/// The kubelet's limit on an item path.
const MAX_PATH_LEN: usize = 4096;

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
        prepare_empty_dir(name, &path, ed, ownership)?;
    } else {
        prepare_api_data(volume, kind, &path, sources, ownership)?;
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

#[cfg(test)]
mod tests;
