//! A Pod into the CRI requests the kubelet would send for it: pure functions, no I/O.
//!
//! - [`sandbox_config`]: `RunPodSandbox`'s `PodSandboxConfig` (kubelet's
//!   `generatePodSandboxConfig`): metadata, hostname ([`hostname_and_domain`]), DNS by
//!   `dnsPolicy` ([`dns_config`]), port mappings, labels and annotations, and the Linux part
//!   (cgroup parent, sysctls, namespaces, users and groups, SELinux, seccomp `RuntimeDefault` as
//!   the kubelet forces for the sandbox, pod-level resources and overhead).
//! - [`container_config`]: `CreateContainer`'s `ContainerConfig` (`generateContainerConfig` and
//!   `generateLinuxContainerConfig`): command and args, env, mounts plus the termination-message
//!   file, the `io.kubernetes.*` labels and annotations, resources, and the effective security
//!   context (pod fields merged under the container's, as `DetermineEffectiveSecurityContext`).
//! - [`verify_run_as_non_root`]: the kubelet's `runAsNonRoot` check against the image's user.
//! - [`pull_policy`] and [`auth_for`]: image pull policy defaulting and the credentials of
//!   `imagePullSecrets` matching an image (the kubelet's credential keyring).
//! - [`etc_hosts`] and [`etc_hosts_host_network`]: the kubelet-managed `/etc/hosts`.
//! - [`container_hash`]: a stable hash of a container's spec, to notice it changed.
//!
//! Where Corral differs from what a kubelet talks to, the choice is made here so that Corral
//! produces the kubelet's result:
//! - `dnsPolicy: Default` (and `ClusterFirst` without cluster DNS, which the kubelet turns into
//!   `Default`) with no `dnsConfig` gives no `dns_config`: Corral then copies the host's
//!   `resolv.conf`, which is what the kubelet would have put there. Any merge reads the host's
//!   file from [`SandboxOptions::host_resolv_conf`].
//! - A container's user is left to Corral (which reads the image) unless the security context
//!   sets one; the kubelet would copy the image's numeric user in, to the same effect.
//! - `hostUsers: false` is refused: user namespace mappings come from an allocator this module
//!   does not have.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use corral_cri_api::v1::{
    AuthConfig, Capability, ContainerConfig, ContainerMetadata, DnsConfig, HugepageLimit,
    ImageSpec, Int64Value, KeyValue, LinuxContainerConfig, LinuxContainerResources,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, Mount,
    NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata, PortMapping, Protocol,
    SeLinuxOption, SecurityProfile, Signal, SupplementalGroupsPolicy, UserNamespace,
    security_profile::ProfileType,
};
use corral_kube::env::{Environment, command_and_args};
use corral_kube::k8s_openapi::api::core::v1::{
    AppArmorProfile, Container, ContainerPort, Pod, PodSpec, SELinuxOptions, SeccompProfile,
    Secret, SecurityContext,
};
use corral_kube::quantity::{self, Quantity};

mod container;
mod dns;
mod hosts;
mod image;
mod keyring;
mod resources;
mod sandbox;
mod security;

pub use container::{
    container_annotations, container_config, container_hash, container_labels,
    termination_message_path,
};
pub use dns::{dns_config, parse_resolv_conf};
pub use hosts::{etc_hosts, etc_hosts_host_network, mounts_etc_hosts};
pub use image::{ImageName, parse_image_name, pull_policy};
pub use keyring::auth_for;
use resources::{container_resources, overhead_resources, pod_resources};
pub use sandbox::{hostname_and_domain, namespace_options, pod_labels, sandbox_config};
use sandbox::{int64, pod_supplemental_groups, profile, selinux, supplemental_groups_policy};
use security::container_security_context;
pub use security::{effective_security_context, verify_run_as_non_root};

/// Label: the pod's name.
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
/// Label: the pod's namespace.
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// Label: the pod's UID.
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";
/// Label: the container's name.
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
/// Annotation: [`container_hash`].
pub const CONTAINER_HASH_ANNOTATION: &str = "io.kubernetes.container.hash";
/// Annotation: the restart count.
pub const RESTART_COUNT_ANNOTATION: &str = "io.kubernetes.container.restartCount";
/// Annotation: `terminationMessagePath`.
pub const TERMINATION_MESSAGE_PATH_ANNOTATION: &str =
    "io.kubernetes.container.terminationMessagePath";
/// Annotation: `terminationMessagePolicy`.
pub const TERMINATION_MESSAGE_POLICY_ANNOTATION: &str =
    "io.kubernetes.container.terminationMessagePolicy";
/// Annotation: `terminationGracePeriodSeconds`.
pub const TERMINATION_GRACE_PERIOD_ANNOTATION: &str = "io.kubernetes.pod.terminationGracePeriod";
/// Annotation: `metadata.deletionGracePeriodSeconds`.
pub const DELETION_GRACE_PERIOD_ANNOTATION: &str = "io.kubernetes.pod.deletionGracePeriod";
/// Annotation: the `preStop` handler as JSON.
pub const PRE_STOP_ANNOTATION: &str = "io.kubernetes.container.preStopHandler";
/// Annotation: the container's ports as JSON.
pub const PORTS_ANNOTATION: &str = "io.kubernetes.container.ports";

/// `terminationMessagePath` when unset (the API server's default).
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// `terminationGracePeriodSeconds` when unset (the API server's default).
pub const DEFAULT_TERMINATION_GRACE_PERIOD: i64 = 30;
/// `ndots:5`, the options of a `ClusterFirst` pod.
const CLUSTER_DNS_OPTIONS: [&str; 1] = ["ndots:5"];
/// The kubelet's limits on what goes in a pod's `resolv.conf`.
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;
const MAX_SEARCH_DOMAIN_LEN: usize = 253;
/// Hostnames are cut to this many characters (`truncatePodHostnameIfNeeded`).
const MAX_HOSTNAME_LEN: usize = 63;
/// The masked and read-only paths for `procMount: Default` (the kubelet's lists are moby's;
/// Corral's runtime defaults are the same paths).
pub use corral_cri_api::paths::{DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS};
const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// Why a pod cannot be translated, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The pod has no `spec`.
    #[error("spec: Required value")]
    NoSpec,
    /// A value the kubelet refuses, e.g. a hostname that is not a DNS label.
    #[error("{field}: Invalid value {value:?}: {reason}")]
    Invalid {
        /// The field, as `spec.hostname`.
        field: String,
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// Something this translation does not support.
    #[error("{field}: Unsupported: {reason}")]
    Unsupported {
        /// The field.
        field: String,
        /// What is missing.
        reason: String,
    },
    /// An image pull secret whose content does not parse.
    #[error("secret {secret:?}: {reason}")]
    PullSecret {
        /// The secret's name.
        secret: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(field: impl Into<String>, value: &str, reason: impl Into<String>) -> TranslateError {
    TranslateError::Invalid {
        field: field.into(),
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// What [`sandbox_config`] needs besides the pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxOptions {
    /// The sandbox attempt (0, then one more each time the sandbox is recreated).
    pub attempt: u32,
    /// The pod's log directory (the kubelet's `/var/log/pods/<ns>_<name>_<uid>`).
    pub log_dir: PathBuf,
    /// The pod's cgroup parent; empty for the runtime's default.
    pub cgroup_parent: String,
    /// The cluster domain (`cluster.local`); `None` when there is none.
    pub cluster_domain: Option<String>,
    /// Cluster DNS servers; none on Corral by default, so `ClusterFirst` falls back to `Default`.
    pub cluster_dns: Vec<String>,
    /// The host's `resolv.conf` content, the base of `Default` DNS merged with `dnsConfig` and
    /// of `ClusterFirst` searches.
    pub host_resolv_conf: String,
}

/// Which list of the pod a container is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    /// `spec.initContainers`.
    Init,
    /// `spec.containers`.
    Regular,
}

/// What [`container_config`] needs besides the pod and the container.
#[derive(Debug, Clone)]
pub struct ContainerInputs<'a> {
    /// Which list the container is in (for field names in errors).
    pub kind: ContainerKind,
    /// The attempt: the container's restart count.
    pub attempt: u32,
    /// What `CreateContainer` gets as the image: the reference or ID as pulled.
    pub image: &'a str,
    /// The container's environment (`corral_kube::env::environment`).
    pub env: &'a Environment,
    /// The container's volume mounts, `/etc/hosts` included when mounted.
    pub mounts: Vec<Mount>,
    /// The host file mounted at the container's `terminationMessagePath` (created by the
    /// caller, mode 0666, unique per container instance); `None` for no such mount.
    pub termination_message_file: Option<PathBuf>,
    /// The node's memory in bytes (for `oom_score_adj`).
    pub memory_capacity: i64,
    /// The host's huge page sizes (`2MB`, `1GB`): each gets a limit, 0 unless the container
    /// asks for `hugepages-<size>`.
    pub hugepage_sizes: &'a [String],
    /// Where `Localhost` seccomp profiles are (the kubelet's `<root>/seccomp`).
    pub seccomp_profile_root: &'a Path,
    /// The kubelet's `--seccomp-default`: `RuntimeDefault` instead of `Unconfined` when neither
    /// the pod nor the container sets a profile.
    pub seccomp_default: bool,
    /// The log path relative to the sandbox's log directory: `<container>/<attempt>.log`.
    pub log_path: String,
}

/// An image pull policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull every time a container starts.
    Always,
    /// Pull when the image is not present.
    IfNotPresent,
    /// Never pull.
    Never,
}

fn spec(pod: &Pod) -> Result<&PodSpec, TranslateError> {
    pod.spec.as_ref().ok_or(TranslateError::NoSpec)
}

fn meta_str(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

// ---------------------------------------------------------------------------------------------
// Sandbox

// ---------------------------------------------------------------------------------------------
// DNS

// ---------------------------------------------------------------------------------------------
// Containers

// ---------------------------------------------------------------------------------------------
// Images

// ---------------------------------------------------------------------------------------------
// /etc/hosts

#[cfg(test)]
mod tests;
