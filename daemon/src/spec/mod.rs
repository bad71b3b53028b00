//! Translating CRI requests plus an image's config into an OCI runtime spec.
//!
//! Everything here is a pure function of its inputs and of a few files it reads (the image's
//! `/etc/passwd` and `/etc/group`, confined to the rootfs; the `host_path` of mounts and devices;
//! the host's `/etc/hosts`, `/etc/resolv.conf` and hostname for [`write_pod_files`]). Nothing
//! needs root, nothing is mounted or created except the pod files.
//!
//! The spec follows what containerd's CRI plugin produces, so that images and Kubernetes manifests
//! behave the same under Corral:
//! - [`container_spec`]: the spec of a container (process, user, capabilities, mounts,
//!   namespaces, devices, resources, annotations).
//! - [`exec_process`]: the process of an `ExecSync`/`Exec`, derived from the container's spec.
//! - [`write_pod_files`]: a pod's `hostname`, `resolv.conf` and `hosts` files.
//! - [`stop_signal`]: the signal that stops a container.
//!
//! - [`seccomp`]: the RuntimeDefault profile and Localhost profiles; [`lsm`]: AppArmor and
//!   SELinux labels.
//!
//! Not handled yet (rejected with `InvalidArgument` where silently ignoring would be wrong):
//! image volumes, CDI devices. User namespaces: [`userns`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use corral_cri_api::v1::{ContainerConfig, PodSandboxConfig};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{Root, Spec};

mod linux;
pub mod lsm;
mod mounts;
mod pod_files;
mod process;
mod resources;
pub mod seccomp;
mod signal;
mod user;
pub mod userns;

#[cfg(test)]
mod tests;

pub use pod_files::{PodFiles, pod_hostname, write_pod_files};
pub use process::exec_process;
pub use resources::pod_resources;
pub use signal::stop_signal;

/// Why a spec could not be built. The messages name the request field at fault.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A request field (or the image config) is invalid or asks for something unsupported;
    /// the message names the field, e.g. `mounts[2].host_path: ...`.
    #[error("{0}")]
    InvalidArgument(String),
    /// Something the request refers to does not exist, e.g. a mount's `host_path`.
    #[error("{0}")]
    NotFound(String),
    /// The host cannot do what the request asks, e.g. an AppArmor profile without AppArmor.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl SpecError {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidArgument(msg.into())
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// What the daemon prepared for a pod sandbox, as the containers of the pod see it.
#[derive(Debug, Clone, Copy)]
pub struct PodPaths<'a> {
    /// The pod's pinned network namespace; `None`: the pod uses the host's network.
    pub net: Option<&'a Path>,
    /// The pod's pinned IPC namespace; `None`: the pod uses the host's IPC.
    pub ipc: Option<&'a Path>,
    /// The pod's pinned UTS namespace; `None`: the pod uses the host's UTS (host network).
    pub uts: Option<&'a Path>,
    /// The pod-wide PID namespace (the pod's PID mode is `POD`); joined only by containers whose
    /// own PID mode is `POD`.
    pub pid: Option<&'a Path>,
    /// The pod's `/etc/hosts` (from [`write_pod_files`]).
    pub hosts: &'a Path,
    /// The pod's `/etc/resolv.conf` (from [`write_pod_files`]).
    pub resolv_conf: &'a Path,
    /// The pod's `/etc/hostname` (from [`write_pod_files`]).
    pub hostname: &'a Path,
    /// The pod's `/dev/shm` (a tmpfs directory); `None` with host IPC: the host's `/dev/shm`.
    pub shm: Option<&'a Path>,
}

/// Everything [`container_spec`] needs for one `CreateContainer`.
#[derive(Debug, Clone, Copy)]
pub struct ContainerInputs<'a> {
    /// The container's ID (used in log lines only).
    pub id: &'a str,
    /// The ID of the pod sandbox the container belongs to.
    pub sandbox_id: &'a str,
    /// The pod's config, as given to `RunPodSandbox`.
    pub pod: &'a PodSandboxConfig,
    /// The container's config, as given to `CreateContainer`.
    pub config: &'a ContainerConfig,
    /// The image's config blob.
    pub image: &'a ImageConfiguration,
    /// The container's root filesystem: the mounted overlay's merged directory. Its
    /// `/etc/passwd` and `/etc/group` are read (confined to it) to resolve users and groups.
    pub rootfs: &'a Path,
    /// The pod's namespaces and files.
    pub pod_paths: PodPaths<'a>,
    /// The PID namespace of the target container (e.g. `/proc/<pid>/ns/pid` of its init), needed
    /// only when the container's PID mode is `TARGET` (`kubectl debug --target`).
    pub target_pid_ns: Option<&'a Path>,
    /// Absolute cgroupfs path of the container's cgroup (`linux.cgroupsPath`).
    pub cgroups_path: &'a Path,
    /// Where the host's AppArmor and SELinux state is read ([`lsm::LsmHost::HOST`]).
    pub lsm: lsm::LsmHost<'a>,
    /// For each CRI mount naming an image (by index), the host path where that image's root
    /// filesystem (or its `image_sub_path`) is mounted, read-only.
    pub image_volumes: &'a [(usize, PathBuf)],
}

/// Annotation naming the kind of container (`container` or `sandbox`), as containerd sets it.
pub const ANNOTATION_CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
/// Annotation carrying the pod sandbox's ID.
pub const ANNOTATION_SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
/// Annotation carrying the container's name (`metadata.name`).
pub const ANNOTATION_CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
/// Annotation carrying the pod's name.
pub const ANNOTATION_SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
/// Annotation carrying the pod's namespace.
pub const ANNOTATION_SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
/// Annotation carrying the pod's UID.
pub const ANNOTATION_SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";
/// Annotation carrying the image the container was created from (`image.image`).
pub const ANNOTATION_IMAGE_NAME: &str = "io.kubernetes.cri.image-name";

/// Builds the OCI runtime spec of a container.
///
/// The process (args, env, cwd, user, capabilities, `no_new_privileges`, `oomScoreAdj`, terminal)
/// comes from the CRI config merged with the image config by the Kubernetes rules; mounts are
/// containerd's defaults, the pod's files, then the CRI mounts (sorted parents first); the
/// namespaces join the pod's pinned ones according to the container's namespace options.
pub fn container_spec(input: &ContainerInputs<'_>) -> Result<Spec, SpecError> {
    let config = input.config;
    let name = match &config.metadata {
        Some(m) if !m.name.is_empty() => m.name.as_str(),
        _ => {
            return Err(SpecError::invalid(
                "container config: metadata.name is empty",
            ));
        }
    };
    check_no_nul("container config: metadata.name", name)?;
    let sc = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref());
    let privileged = sc.is_some_and(|s| s.privileged);
    if privileged
        && !input
            .pod
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .is_some_and(|s| s.privileged)
    {
        return Err(SpecError::invalid(
            "security_context.privileged: the pod sandbox is not privileged \
             (linux.security_context.privileged of its RunPodSandbox request)",
        ));
    }
    // Checked against the pod's; the caller adds the pod's user namespace (`userns::apply`).
    userns::container_userns(input.pod, config)?;
    if !input.cgroups_path.is_absolute() {
        return Err(SpecError::invalid(format!(
            "cgroups path {:?} is not absolute",
            input.cgroups_path
        )));
    }

    let hostname = pod_hostname(input.pod)?;
    let plan = linux::NsPlan::new(input, sc)?;
    let mut process = process::build(input, sc, &hostname, privileged)?;
    let (mounts, rootfs_propagation) = mounts::build(input, sc, &plan, privileged)?;
    let (mut linux, oom_score_adj) = linux::build(input, sc, &plan, rootfs_propagation)?;
    process.set_oom_score_adj(Some(oom_score_adj));
    let bounding = process
        .capabilities()
        .as_ref()
        .and_then(|c| c.bounding().as_ref())
        .map(|set| {
            let mut names: Vec<String> = set
                .iter()
                .filter_map(|c| serde_json::to_value(c).ok()?.as_str().map(String::from))
                .collect();
            names.sort();
            names
        })
        .unwrap_or_default();
    linux.set_seccomp(seccomp::profile(sc, privileged, &bounding)?);
    process.set_apparmor_profile(lsm::apparmor(&input.lsm, sc, privileged)?);
    process.set_selinux_label(lsm::selinux(
        &input.lsm,
        sc.and_then(|s| s.selinux_options.as_ref()),
        privileged,
    )?);

    let mut annotations: HashMap<String, String> = config.annotations.clone();
    annotations.insert(ANNOTATION_CONTAINER_TYPE.into(), "container".into());
    annotations.insert(ANNOTATION_SANDBOX_ID.into(), input.sandbox_id.into());
    annotations.insert(ANNOTATION_CONTAINER_NAME.into(), name.into());
    if let Some(m) = &input.pod.metadata {
        annotations.insert(ANNOTATION_SANDBOX_NAME.into(), m.name.clone());
        annotations.insert(ANNOTATION_SANDBOX_NAMESPACE.into(), m.namespace.clone());
        annotations.insert(ANNOTATION_SANDBOX_UID.into(), m.uid.clone());
    }
    if let Some(image) = &config.image {
        annotations.insert(ANNOTATION_IMAGE_NAME.into(), image.image.clone());
    }

    let mut root = Root::default();
    root.set_path(input.rootfs.to_path_buf());
    root.set_readonly(Some(sc.is_some_and(|s| s.readonly_rootfs)));

    let mut spec = Spec::default();
    spec.set_version(oci_spec::runtime::VERSION.to_string());
    spec.set_root(Some(root));
    // Only meaningful (and only settable) with a UTS namespace of the pod's own.
    spec.set_hostname(plan.has_own_uts().then_some(hostname));
    spec.set_mounts(Some(mounts));
    spec.set_process(Some(process));
    spec.set_linux(Some(linux));
    spec.set_annotations(Some(annotations));
    tracing::debug!(container = input.id, name, "built the OCI spec");
    Ok(spec)
}

/// `InvalidArgument` if `value` contains a NUL byte (it could not reach the kernel intact).
pub(crate) fn check_no_nul(field: &str, value: &str) -> Result<(), SpecError> {
    if value.contains('\0') {
        return Err(SpecError::invalid(format!("{field}: contains a NUL byte")));
    }
    Ok(())
}

/// Cleans an absolute container path (`//`, `.` and trailing `/` removed); `..`, NUL, relative
/// paths and `/` itself are `InvalidArgument`.
pub(crate) fn clean_container_path(field: &str, value: &str) -> Result<String, SpecError> {
    check_no_nul(field, value)?;
    if !value.starts_with('/') {
        return Err(SpecError::invalid(format!(
            "{field}: {value:?} is not an absolute path"
        )));
    }
    let mut out = String::with_capacity(value.len());
    for part in value.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(SpecError::invalid(format!(
                    "{field}: {value:?} must not contain \"..\""
                )));
            }
            p => {
                out.push('/');
                out.push_str(p);
            }
        }
    }
    if out.is_empty() {
        return Err(SpecError::invalid(format!(
            "{field}: {value:?} is the root"
        )));
    }
    Ok(out)
}

/// The OCI form of CRI container resources (UpdateContainerResources); `oom_score_adj` is a
/// process attribute and is not changed by an update.
pub fn linux_resources(
    r: &corral_cri_api::v1::LinuxContainerResources,
) -> Result<oci_spec::runtime::LinuxResources, SpecError> {
    resources::resources(r).map(|(resources, _oom_score_adj)| resources)
}
