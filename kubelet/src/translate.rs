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

/// The pod's `PodSandboxConfig`, as the kubelet's `generatePodSandboxConfig`.
pub fn sandbox_config(
    pod: &Pod,
    opts: &SandboxOptions,
) -> Result<PodSandboxConfig, TranslateError> {
    let spec = spec(pod)?;
    let host_network = spec.host_network.unwrap_or(false);
    let hostname = if host_network {
        String::new()
    } else {
        let (name, domain) = hostname_and_domain(pod, opts.cluster_domain.as_deref())?;
        kernel_hostname(spec, &name, &domain)?
    };
    Ok(PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: meta_str(&pod.metadata.name).to_owned(),
            uid: meta_str(&pod.metadata.uid).to_owned(),
            namespace: meta_str(&pod.metadata.namespace).to_owned(),
            attempt: opts.attempt,
        }),
        hostname,
        log_directory: opts.log_dir.to_string_lossy().into_owned(),
        dns_config: dns_config(pod, opts)?,
        port_mappings: port_mappings(spec),
        labels: pod_labels(pod).into_iter().collect(),
        annotations: pod
            .metadata
            .annotations
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        linux: Some(sandbox_linux(pod, spec, opts)?),
        ..Default::default()
    })
}

/// The pod's labels plus `io.kubernetes.pod.{name,namespace,uid}` (`newPodLabels`).
pub fn pod_labels(pod: &Pod) -> BTreeMap<String, String> {
    let mut labels = pod.metadata.labels.clone().unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), meta_str(&pod.metadata.name).into());
    labels.insert(
        POD_NAMESPACE_LABEL.into(),
        meta_str(&pod.metadata.namespace).into(),
    );
    labels.insert(POD_UID_LABEL.into(), meta_str(&pod.metadata.uid).into());
    labels
}

/// The pod's hostname and domain (`GeneratePodHostNameAndDomain`): `hostnameOverride`, else
/// `spec.hostname`, else the pod's name cut to 63 characters (without a trailing `-` or `.`);
/// the domain is `<subdomain>.<namespace>.svc.<cluster domain>` when `subdomain` is set and
/// there is a cluster domain, else empty.
pub fn hostname_and_domain(
    pod: &Pod,
    cluster_domain: Option<&str>,
) -> Result<(String, String), TranslateError> {
    let spec = spec(pod)?;
    if let Some(o) = spec.hostname_override.as_deref().filter(|o| !o.is_empty()) {
        return Ok((o.to_owned(), String::new()));
    }
    let hostname = match spec.hostname.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => {
            check_dns_label("spec.hostname", h)?;
            h.to_owned()
        }
        None => truncate_hostname(meta_str(&pod.metadata.name)),
    };
    let domain = match (
        spec.subdomain.as_deref().filter(|s| !s.is_empty()),
        cluster_domain,
    ) {
        (Some(sub), Some(cd)) if !cd.is_empty() => {
            check_dns_label("spec.subdomain", sub)?;
            format!("{sub}.{}.svc.{cd}", meta_str(&pod.metadata.namespace))
        }
        _ => String::new(),
    };
    Ok((hostname, domain))
}

fn truncate_hostname(name: &str) -> String {
    if name.len() <= MAX_HOSTNAME_LEN {
        return name.to_owned();
    }
    let cut = name.get(..MAX_HOSTNAME_LEN).unwrap_or(name);
    cut.trim_end_matches(['-', '.']).to_owned()
}

fn check_dns_label(field: &str, v: &str) -> Result<(), TranslateError> {
    let ok = !v.is_empty()
        && v.len() <= MAX_HOSTNAME_LEN
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !v.starts_with('-')
        && !v.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            v,
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character",
        ))
    }
}

/// `GetNodenameForKernel`: the FQDN with `setHostnameAsFQDN` (at most 64 characters).
fn kernel_hostname(spec: &PodSpec, hostname: &str, domain: &str) -> Result<String, TranslateError> {
    if !spec.set_hostname_as_fqdn.unwrap_or(false) || domain.is_empty() {
        return Ok(hostname.to_owned());
    }
    let fqdn = format!("{hostname}.{domain}");
    if fqdn.len() > 64 {
        return Err(invalid(
            "spec.setHostnameAsFQDN",
            &fqdn,
            format!(
                "FQDN is too long (64 characters is the max, {} characters requested)",
                fqdn.len()
            ),
        ));
    }
    Ok(fqdn)
}

/// Every container port (`MakePortMappings`, a port name used twice in a container counting
/// once), protocol TCP unless UDP or SCTP. Ports without `hostPort` are kept (host port 0), as
/// the kubelet does; Corral's port mapping skips them.
fn port_mappings(spec: &PodSpec) -> Vec<PortMapping> {
    let mut out = Vec::new();
    for c in &spec.containers {
        let mut names = std::collections::HashSet::new();
        for p in c.ports.iter().flatten() {
            if !names.insert(port_key(p)) {
                continue;
            }
            out.push(PortMapping {
                protocol: protocol(p.protocol.as_deref()) as i32,
                container_port: p.container_port,
                host_port: p.host_port.unwrap_or(0),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            });
        }
    }
    out
}

fn port_key(p: &ContainerPort) -> String {
    if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
        return n.to_owned();
    }
    let host_ip = p.host_ip.as_deref().unwrap_or("");
    let family = match host_ip.parse::<std::net::IpAddr>() {
        _ if host_ip.is_empty() => "any",
        Ok(std::net::IpAddr::V6(_)) => "v6",
        _ => "v4",
    };
    format!(
        "{family}-{}-{host_ip}:{}:{}",
        p.protocol.as_deref().unwrap_or("TCP"),
        p.container_port,
        p.host_port.unwrap_or(0)
    )
}

fn protocol(p: Option<&str>) -> Protocol {
    match p {
        Some("UDP") => Protocol::Udp,
        Some("SCTP") => Protocol::Sctp,
        _ => Protocol::Tcp,
    }
}

fn sandbox_linux(
    pod: &Pod,
    spec: &PodSpec,
    opts: &SandboxOptions,
) -> Result<LinuxPodSandboxConfig, TranslateError> {
    let psc = spec.security_context.as_ref();
    let sysctls = psc
        .and_then(|s| s.sysctls.as_ref())
        .into_iter()
        .flatten()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    let security_context = LinuxSandboxSecurityContext {
        namespace_options: Some(namespace_options(spec)?),
        selinux_options: psc.and_then(|s| s.se_linux_options.as_ref()).map(selinux),
        run_as_user: psc.and_then(|s| s.run_as_user).map(int64),
        run_as_group: psc.and_then(|s| s.run_as_group).map(int64),
        readonly_rootfs: false,
        supplemental_groups: pod_supplemental_groups(spec),
        supplemental_groups_policy: supplemental_groups_policy(spec)? as i32,
        privileged: has_privileged_container(spec),
        // The kubelet runs every sandbox RuntimeDefault so a pod-level profile can be strict.
        seccomp: Some(profile(ProfileType::RuntimeDefault, "")),
        ..Default::default()
    };
    Ok(LinuxPodSandboxConfig {
        cgroup_parent: opts.cgroup_parent.clone(),
        security_context: Some(security_context),
        sysctls,
        overhead: Some(overhead_resources(spec)),
        resources: Some(pod_resources(pod)),
    })
}

fn int64(value: i64) -> Int64Value {
    Int64Value { value }
}

fn selinux(o: &SELinuxOptions) -> SeLinuxOption {
    SeLinuxOption {
        user: o.user.clone().unwrap_or_default(),
        role: o.role.clone().unwrap_or_default(),
        r#type: o.type_.clone().unwrap_or_default(),
        level: o.level.clone().unwrap_or_default(),
    }
}

fn profile(t: ProfileType, localhost_ref: &str) -> SecurityProfile {
    SecurityProfile {
        profile_type: t as i32,
        localhost_ref: localhost_ref.to_owned(),
    }
}

/// `NamespacesForPod`: host network, IPC and PID from the spec; PID `POD` with
/// `shareProcessNamespace`, else `CONTAINER`; the host's user namespace.
pub fn namespace_options(spec: &PodSpec) -> Result<NamespaceOption, TranslateError> {
    let node_or = |host: Option<bool>, other: NamespaceMode| {
        if host.unwrap_or(false) {
            NamespaceMode::Node
        } else {
            other
        }
    };
    let pid = if spec.host_pid.unwrap_or(false) {
        NamespaceMode::Node
    } else if spec.share_process_namespace.unwrap_or(false) {
        NamespaceMode::Pod
    } else {
        NamespaceMode::Container
    };
    if spec.host_users == Some(false) {
        return Err(TranslateError::Unsupported {
            field: "spec.hostUsers".into(),
            reason: "user namespaces need ID mappings, which the pod manager does not allocate"
                .into(),
        });
    }
    Ok(NamespaceOption {
        network: node_or(spec.host_network, NamespaceMode::Pod) as i32,
        pid: pid as i32,
        ipc: node_or(spec.host_ipc, NamespaceMode::Pod) as i32,
        target_id: String::new(),
        userns_options: Some(UserNamespace {
            mode: NamespaceMode::Node as i32,
            ..Default::default()
        }),
    })
}

/// `fsGroup` then `supplementalGroups`, as the kubelet appends them.
fn pod_supplemental_groups(spec: &PodSpec) -> Vec<i64> {
    let psc = spec.security_context.as_ref();
    psc.and_then(|s| s.fs_group)
        .into_iter()
        .chain(
            psc.and_then(|s| s.supplemental_groups.clone())
                .into_iter()
                .flatten(),
        )
        .collect()
}

fn supplemental_groups_policy(spec: &PodSpec) -> Result<SupplementalGroupsPolicy, TranslateError> {
    let p = spec
        .security_context
        .as_ref()
        .and_then(|s| s.supplemental_groups_policy.as_deref());
    match p {
        None | Some("Merge") => Ok(SupplementalGroupsPolicy::Merge),
        Some("Strict") => Ok(SupplementalGroupsPolicy::Strict),
        Some(other) => Err(invalid(
            "spec.securityContext.supplementalGroupsPolicy",
            other,
            "supported values: \"Merge\", \"Strict\"",
        )),
    }
}

fn all_containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
}

/// `HasPrivilegedContainer`: any container or init container privileged.
fn has_privileged_container(spec: &PodSpec) -> bool {
    all_containers(spec).any(|c| {
        c.security_context
            .as_ref()
            .and_then(|s| s.privileged)
            .unwrap_or(false)
    })
}

type Amounts = BTreeMap<String, i128>;

fn amounts(m: BTreeMap<String, Quantity>) -> Amounts {
    m.into_iter().map(|(k, q)| (k, q.nanos())).collect()
}

fn add_into(to: &mut Amounts, from: &Amounts) {
    for (k, v) in from {
        *to.entry(k.clone()).or_default() += v;
    }
}

fn max_into(to: &mut Amounts, from: &Amounts) {
    for (k, v) in from {
        let e = to.entry(k.clone()).or_default();
        *e = (*e).max(*v);
    }
}

/// `PodRequests`/`PodLimits` without overhead: the containers' sum, raised to what the init
/// phase needs (each init container plus the sidecars started before it).
fn pod_amounts(spec: &PodSpec, of: fn(&Container) -> BTreeMap<String, Quantity>) -> Amounts {
    let mut total = Amounts::new();
    for c in &spec.containers {
        add_into(&mut total, &amounts(of(c)));
    }
    let mut sidecars = Amounts::new();
    let mut init_peak = Amounts::new();
    for c in spec.init_containers.iter().flatten() {
        let own = amounts(of(c));
        let mut during = sidecars.clone();
        add_into(&mut during, &own);
        if c.restart_policy.as_deref() == Some("Always") {
            add_into(&mut total, &own);
            add_into(&mut sidecars, &own);
        }
        max_into(&mut init_peak, &during);
    }
    max_into(&mut total, &init_peak);
    total
}

const NANO: i128 = 1_000_000_000;

fn milli(a: &Amounts, k: &str) -> Option<i64> {
    a.get(k)
        .map(|n| i64::try_from((n + NANO / 1000 - 1).div_euclid(NANO / 1000)).unwrap_or(i64::MAX))
}

fn units(a: &Amounts, k: &str) -> i64 {
    a.get(k).map_or(0, |n| {
        i64::try_from((n + NANO - 1).div_euclid(NANO)).unwrap_or(i64::MAX)
    })
}

/// `calculateLinuxResources`: shares from the cpu request (or the limit when there is no
/// request), CFS quota from the cpu limit, the memory limit.
fn linux_resources(
    cpu_request: Option<i64>,
    cpu_limit: i64,
    memory_limit: i64,
) -> LinuxContainerResources {
    let shares_from = match cpu_request {
        None if cpu_limit != 0 => cpu_limit,
        r => r.unwrap_or(0),
    };
    LinuxContainerResources {
        cpu_period: quantity::QUOTA_PERIOD,
        cpu_quota: quantity::milli_cpu_to_quota(cpu_limit, quantity::QUOTA_PERIOD),
        cpu_shares: i64::try_from(quantity::milli_cpu_to_shares(shares_from)).unwrap_or(2),
        memory_limit_in_bytes: memory_limit,
        ..Default::default()
    }
}

/// The sandbox's `resources` (`calculateSandboxResources`).
fn pod_resources(pod: &Pod) -> LinuxContainerResources {
    let Some(spec) = pod.spec.as_ref() else {
        return LinuxContainerResources::default();
    };
    let req = pod_amounts(spec, quantity::requests);
    let lim = pod_amounts(spec, quantity::limits);
    linux_resources(
        milli(&req, "cpu"),
        milli(&lim, "cpu").unwrap_or(0),
        units(&lim, "memory"),
    )
}

/// The sandbox's `overhead`: `spec.overhead` as requests equal to limits; empty without one.
fn overhead_resources(spec: &PodSpec) -> LinuxContainerResources {
    let Some(o) = spec.overhead.as_ref() else {
        return LinuxContainerResources::default();
    };
    let parsed: BTreeMap<String, Quantity> = o
        .iter()
        .filter_map(|(k, v)| Quantity::from_k8s(v).ok().map(|q| (k.clone(), q)))
        .collect();
    let a = amounts(parsed);
    let cpu = milli(&a, "cpu").unwrap_or(0);
    linux_resources(Some(cpu), cpu, units(&a, "memory"))
}

// ---------------------------------------------------------------------------------------------
// DNS

/// The pod's DNS (`GetPodDNS`), `None` when Corral's copy of the host's `resolv.conf` is the
/// kubelet's result (`Default` policy without `dnsConfig`).
pub fn dns_config(pod: &Pod, opts: &SandboxOptions) -> Result<Option<DnsConfig>, TranslateError> {
    let spec = spec(pod)?;
    let host_network = spec.host_network.unwrap_or(false);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster = match policy {
        "None" => None,
        "ClusterFirstWithHostNet" => Some(true),
        "ClusterFirst" => Some(!host_network),
        "Default" => Some(false),
        other => {
            return Err(invalid(
                "spec.dnsPolicy",
                other,
                "supported values: \"ClusterFirst\", \"ClusterFirstWithHostNet\", \"Default\", \"None\"",
            ));
        }
    };
    let host = parse_resolv_conf(&opts.host_resolv_conf);
    let mut dns = match cluster {
        None => DnsConfig::default(),
        Some(true) if !opts.cluster_dns.is_empty() => DnsConfig {
            servers: opts.cluster_dns.clone(),
            searches: cluster_searches(host.searches, pod, opts.cluster_domain.as_deref()),
            options: CLUSTER_DNS_OPTIONS.iter().map(|s| s.to_string()).collect(),
        },
        // ClusterFirst without cluster DNS falls back to Default (the kubelet warns with a
        // MissingClusterDNS event).
        Some(_) => match &spec.dns_config {
            None => return Ok(None),
            Some(_) => host,
        },
    };
    if let Some(pc) = &spec.dns_config {
        dns.servers = dedup(
            dns.servers
                .into_iter()
                .chain(pc.nameservers.iter().flatten().cloned()),
        );
        dns.searches = dedup(
            dns.searches
                .into_iter()
                .chain(pc.searches.iter().flatten().cloned()),
        );
        dns.options = merge_dns_options(&dns.options, pc.options.iter().flatten());
    }
    Ok(Some(fit_dns_limits(dns)))
}

fn cluster_searches(host: Vec<String>, pod: &Pod, domain: Option<&str>) -> Vec<String> {
    let Some(d) = domain.filter(|d| !d.is_empty()) else {
        return host;
    };
    let ns = meta_str(&pod.metadata.namespace);
    let cluster = [format!("{ns}.svc.{d}"), format!("svc.{d}"), d.to_owned()];
    dedup(cluster.into_iter().chain(host))
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// `mergeDNSOptions`: `name[:value]` entries, the pod's replacing the base's of the same name;
/// kept in first-seen order (the kubelet's order is a Go map's).
fn merge_dns_options<'a>(
    base: &[String],
    pod: impl Iterator<Item = &'a corral_kube::k8s_openapi::api::core::v1::PodDNSConfigOption>,
) -> Vec<String> {
    let mut opts: Vec<(String, String)> = Vec::new();
    let mut set = |name: &str, value: &str| match opts.iter_mut().find(|(n, _)| n == name) {
        Some(slot) => slot.1 = value.to_owned(),
        None => opts.push((name.to_owned(), value.to_owned())),
    };
    for o in base {
        let (n, v) = o.split_once(':').unwrap_or((o, ""));
        set(n, v);
    }
    for o in pod {
        set(
            o.name.as_deref().unwrap_or(""),
            o.value.as_deref().unwrap_or(""),
        );
    }
    opts.into_iter()
        .map(|(n, v)| if v.is_empty() { n } else { format!("{n}:{v}") })
        .collect()
}

/// `formDNSConfigFitsLimits`: 3 nameservers, 32 search domains of at most 253 characters,
/// 2048 characters of search line.
fn fit_dns_limits(mut dns: DnsConfig) -> DnsConfig {
    dns.servers.truncate(MAX_NAMESERVERS);
    dns.searches.truncate(MAX_SEARCHES);
    dns.searches.retain(|s| s.len() <= MAX_SEARCH_DOMAIN_LEN);
    while dns.searches.join(" ").len() > MAX_SEARCH_CHARS {
        dns.searches.pop();
    }
    dns
}

/// The nameservers, search domains and options of a `resolv.conf` as the kubelet reads it (the
/// last `search` line wins, trailing dots go, `#` and `;` start comments).
pub fn parse_resolv_conf(content: &str) -> DnsConfig {
    let mut dns = DnsConfig::default();
    for line in content.lines() {
        if line.starts_with(['#', ';']) {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["nameserver", server, ..] => dns.servers.push((*server).to_owned()),
            ["search", rest @ ..] => {
                dns.searches = rest
                    .iter()
                    .filter(|s| **s != ".")
                    .map(|s| s.trim_end_matches('.').to_owned())
                    .collect();
            }
            ["options", rest @ ..] => {
                for o in rest {
                    let name = o.split(':').next().unwrap_or(o);
                    dns.options.retain(|e| e.split(':').next() != Some(name));
                    dns.options.push((*o).to_owned());
                }
            }
            _ => {}
        }
    }
    dns
}

// ---------------------------------------------------------------------------------------------
// Containers

fn container_field(pod: &Pod, c: &Container, kind: ContainerKind) -> String {
    let spec = pod.spec.as_ref();
    let (list, name) = match kind {
        ContainerKind::Init => (
            spec.and_then(|s| s.init_containers.as_deref())
                .unwrap_or(&[]),
            "initContainers",
        ),
        ContainerKind::Regular => (spec.map_or(&[][..], |s| &s.containers[..]), "containers"),
    };
    let i = list.iter().position(|x| x.name == c.name).unwrap_or(0);
    format!("spec.{name}[{i}]")
}

/// The container's `ContainerConfig`, as the kubelet's `generateContainerConfig`.
pub fn container_config(
    pod: &Pod,
    c: &Container,
    inputs: ContainerInputs<'_>,
) -> Result<ContainerConfig, TranslateError> {
    let field = container_field(pod, c, inputs.kind);
    let (command, args) = command_and_args(c, inputs.env);
    let mut mounts = inputs.mounts.clone();
    if let Some(host) = &inputs.termination_message_file {
        mounts.push(Mount {
            container_path: termination_message_path(c).to_owned(),
            host_path: host.to_string_lossy().into_owned(),
            ..Default::default()
        });
    }
    Ok(ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: c.name.clone(),
            attempt: inputs.attempt,
        }),
        image: Some(ImageSpec {
            image: inputs.image.to_owned(),
            user_specified_image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command,
        args,
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: inputs
            .env
            .vars
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        mounts,
        labels: container_labels(pod, c).into_iter().collect(),
        annotations: container_annotations(pod, c, inputs.attempt)
            .into_iter()
            .collect(),
        log_path: inputs.log_path.clone(),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(LinuxContainerConfig {
            resources: Some(container_resources(pod, c, &inputs)),
            security_context: Some(container_security_context(pod, c, &inputs, &field)?),
        }),
        stop_signal: stop_signal(c, &field)? as i32,
        ..Default::default()
    })
}

/// `terminationMessagePath`, `/dev/termination-log` when unset.
pub fn termination_message_path(c: &Container) -> &str {
    c.termination_message_path
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_TERMINATION_MESSAGE_PATH)
}

fn stop_signal(c: &Container, field: &str) -> Result<Signal, TranslateError> {
    let Some(s) = c.lifecycle.as_ref().and_then(|l| l.stop_signal.as_deref()) else {
        return Ok(Signal::RuntimeDefault);
    };
    match Signal::from_str_name(s) {
        Some(sig) if sig != Signal::RuntimeDefault => Ok(sig),
        _ => Err(invalid(
            format!("{field}.lifecycle.stopSignal"),
            s,
            "not a signal name",
        )),
    }
}

/// `newContainerLabels`: the pod's name, namespace and UID and the container's name.
pub fn container_labels(pod: &Pod, c: &Container) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(POD_NAME_LABEL.into(), meta_str(&pod.metadata.name).into());
    labels.insert(
        POD_NAMESPACE_LABEL.into(),
        meta_str(&pod.metadata.namespace).into(),
    );
    labels.insert(POD_UID_LABEL.into(), meta_str(&pod.metadata.uid).into());
    labels.insert(CONTAINER_NAME_LABEL.into(), c.name.clone());
    labels
}

/// `newContainerAnnotations`, with the API server's defaults for unset fields.
pub fn container_annotations(
    pod: &Pod,
    c: &Container,
    restart_count: u32,
) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    a.insert(CONTAINER_HASH_ANNOTATION.into(), container_hash(c));
    a.insert(RESTART_COUNT_ANNOTATION.into(), restart_count.to_string());
    a.insert(
        TERMINATION_MESSAGE_PATH_ANNOTATION.into(),
        termination_message_path(c).into(),
    );
    a.insert(
        TERMINATION_MESSAGE_POLICY_ANNOTATION.into(),
        c.termination_message_policy
            .clone()
            .unwrap_or_else(|| "File".into()),
    );
    if let Some(g) = pod.metadata.deletion_grace_period_seconds {
        a.insert(DELETION_GRACE_PERIOD_ANNOTATION.into(), g.to_string());
    }
    let grace = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(DEFAULT_TERMINATION_GRACE_PERIOD);
    a.insert(
        TERMINATION_GRACE_PERIOD_ANNOTATION.into(),
        grace.to_string(),
    );
    if let Some(pre_stop) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
        && let Ok(json) = serde_json::to_string(pre_stop)
    {
        a.insert(PRE_STOP_ANNOTATION.into(), json);
    }
    if let Some(ports) = c.ports.as_ref().filter(|p| !p.is_empty()) {
        a.insert(PORTS_ANNOTATION.into(), ports_json(ports));
    }
    a
}

/// The ports as Go's `json.Marshal` writes `[]v1.ContainerPort` (its field order, empty fields
/// left out, protocol defaulted to TCP).
fn ports_json(ports: &[ContainerPort]) -> String {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let items: Vec<String> = ports
        .iter()
        .map(|p| {
            let mut f = Vec::new();
            if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
                f.push(format!("\"name\":{}", q(n)));
            }
            if let Some(h) = p.host_port.filter(|h| *h != 0) {
                f.push(format!("\"hostPort\":{h}"));
            }
            f.push(format!("\"containerPort\":{}", p.container_port));
            f.push(format!(
                "\"protocol\":{}",
                q(p.protocol.as_deref().unwrap_or("TCP"))
            ));
            if let Some(ip) = p.host_ip.as_deref().filter(|i| !i.is_empty()) {
                f.push(format!("\"hostIP\":{}", q(ip)));
            }
            format!("{{{}}}", f.join(","))
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// A stable hash of the whole container spec (FNV-1a 64 over its JSON, in hex): any change to
/// the spec changes it. (The kubelet's own hash covers less and is not reproduced.)
pub fn container_hash(c: &Container) -> String {
    let bytes = serde_json::to_vec(c).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:x}")
}

fn container_resources(
    pod: &Pod,
    c: &Container,
    inputs: &ContainerInputs<'_>,
) -> LinuxContainerResources {
    let r = quantity::linux_resources(pod, c, inputs.memory_capacity);
    LinuxContainerResources {
        cpu_period: r.cpu_period,
        cpu_quota: r.cpu_quota,
        cpu_shares: r.cpu_shares,
        memory_limit_in_bytes: r.memory_limit_in_bytes,
        oom_score_adj: r.oom_score_adj,
        hugepage_limits: hugepage_limits(c, inputs.hugepage_sizes),
        ..Default::default()
    }
}

/// `GetHugepageLimitsFromResources`: every host page size, limited to what the container's
/// `hugepages-<size>` limit says, else 0.
fn hugepage_limits(c: &Container, sizes: &[String]) -> Vec<HugepageLimit> {
    let wanted: HashMap<String, u64> = quantity::limits(c)
        .into_iter()
        .filter_map(|(name, q)| {
            let size = Quantity::parse(name.strip_prefix("hugepages-")?).ok()?;
            let unit = page_size_name(size.value())?;
            Some((unit, u64::try_from(q.value()).unwrap_or(0)))
        })
        .collect();
    sizes
        .iter()
        .map(|s| HugepageLimit {
            page_size: s.clone(),
            limit: wanted.get(s).copied().unwrap_or(0),
        })
        .collect()
}

/// `HugePageUnitSizeFromByteSize`: 2097152 → `2MB`.
fn page_size_name(mut size: i64) -> Option<String> {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    if size <= 0 {
        return None;
    }
    let mut i = 0;
    while size % 1024 == 0 && i < UNITS.len() - 1 {
        size /= 1024;
        i += 1;
    }
    (size <= 1023 || i == UNITS.len() - 1).then(|| format!("{size}{}", UNITS[i]))
}

/// `DetermineEffectiveSecurityContext`: the pod's SELinux options, users and `runAsNonRoot`
/// under the container's fields.
pub fn effective_security_context(pod: &Pod, c: &Container) -> SecurityContext {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let mut sc = SecurityContext {
        se_linux_options: psc.and_then(|p| p.se_linux_options.clone()),
        run_as_user: psc.and_then(|p| p.run_as_user),
        run_as_group: psc.and_then(|p| p.run_as_group),
        run_as_non_root: psc.and_then(|p| p.run_as_non_root),
        ..Default::default()
    };
    let Some(csc) = c.security_context.as_ref() else {
        return sc;
    };
    macro_rules! over {
        ($($f:ident),*) => { $( if csc.$f.is_some() { sc.$f = csc.$f.clone(); } )* };
    }
    over!(
        se_linux_options,
        capabilities,
        privileged,
        run_as_user,
        run_as_group,
        run_as_non_root,
        read_only_root_filesystem,
        allow_privilege_escalation,
        proc_mount
    );
    sc
}

fn container_security_context(
    pod: &Pod,
    c: &Container,
    inputs: &ContainerInputs<'_>,
    field: &str,
) -> Result<LinuxContainerSecurityContext, TranslateError> {
    let spec = spec(pod)?;
    let sc = effective_security_context(pod, c);
    let (apparmor, apparmor_profile) = apparmor(pod, c, field)?;
    let unmasked = sc.proc_mount.as_deref() == Some("Unmasked");
    let paths = |l: &[&str]| {
        if unmasked {
            Vec::new()
        } else {
            l.iter().map(|s| s.to_string()).collect()
        }
    };
    #[allow(deprecated)] // the kubelet still fills the deprecated AppArmor field
    Ok(LinuxContainerSecurityContext {
        capabilities: sc.capabilities.as_ref().map(|caps| Capability {
            add_capabilities: caps.add.clone().unwrap_or_default(),
            drop_capabilities: caps.drop.clone().unwrap_or_default(),
            ..Default::default()
        }),
        privileged: sc.privileged.unwrap_or(false),
        namespace_options: Some(namespace_options(spec)?),
        selinux_options: sc.se_linux_options.as_ref().map(selinux),
        run_as_user: sc.run_as_user.map(int64),
        run_as_group: sc.run_as_group.map(int64),
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups: pod_supplemental_groups(spec),
        supplemental_groups_policy: supplemental_groups_policy(spec)? as i32,
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        masked_paths: paths(&DEFAULT_MASKED_PATHS),
        readonly_paths: paths(&DEFAULT_READONLY_PATHS),
        seccomp: Some(seccomp(pod, c, inputs, field)?),
        apparmor,
        apparmor_profile,
        ..Default::default()
    })
}

/// `getSeccompProfile`: the container's profile, else the pod's, else `Unconfined` (or
/// `RuntimeDefault` with [`ContainerInputs::seccomp_default`]). Localhost profiles are paths
/// under [`ContainerInputs::seccomp_profile_root`].
fn seccomp(
    pod: &Pod,
    c: &Container,
    inputs: &ContainerInputs<'_>,
    field: &str,
) -> Result<SecurityProfile, TranslateError> {
    let from_container = c
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref());
    let from_pod = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.seccomp_profile.as_ref());
    let (p, field): (&SeccompProfile, String) = match (from_container, from_pod) {
        (Some(p), _) => (p, format!("{field}.securityContext.seccompProfile")),
        (None, Some(p)) => (p, "spec.securityContext.seccompProfile".into()),
        (None, None) if inputs.seccomp_default => {
            return Ok(profile(ProfileType::RuntimeDefault, ""));
        }
        (None, None) => return Ok(profile(ProfileType::Unconfined, "")),
    };
    match p.type_.as_str() {
        "RuntimeDefault" => Ok(profile(ProfileType::RuntimeDefault, "")),
        "Localhost" => match p.localhost_profile.as_deref().filter(|l| !l.is_empty()) {
            Some(l) => {
                let path = inputs.seccomp_profile_root.join(l);
                Ok(profile(ProfileType::Localhost, &path.to_string_lossy()))
            }
            None => Err(TranslateError::Invalid {
                field: format!("{field}.localhostProfile"),
                value: String::new(),
                reason: "localhostProfile must be set if seccompProfile type is Localhost".into(),
            }),
        },
        _ => Ok(profile(ProfileType::Unconfined, "")),
    }
}

/// `getAppArmorProfile`: the container's field, else the beta annotation, else the pod's
/// field; the profile and the deprecated string form.
fn apparmor(
    pod: &Pod,
    c: &Container,
    field: &str,
) -> Result<(Option<SecurityProfile>, String), TranslateError> {
    let annotation = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(&format!("{APPARMOR_ANNOTATION_PREFIX}{}", c.name)))
        .and_then(|v| apparmor_from_annotation(v));
    let from_pod = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.app_armor_profile.clone());
    let chosen = c
        .security_context
        .as_ref()
        .and_then(|s| s.app_armor_profile.clone())
        .or(annotation)
        .or(from_pod);
    let Some(p) = chosen else {
        return Ok((None, String::new()));
    };
    let field = format!("{field}.securityContext.appArmorProfile");
    match p.type_.as_str() {
        "RuntimeDefault" => Ok((
            Some(profile(ProfileType::RuntimeDefault, "")),
            "runtime/default".into(),
        )),
        "Unconfined" => Ok((
            Some(profile(ProfileType::Unconfined, "")),
            "unconfined".into(),
        )),
        "Localhost" => match p.localhost_profile.as_deref().filter(|l| !l.is_empty()) {
            Some(l) => Ok((
                Some(profile(ProfileType::Localhost, l)),
                format!("localhost/{l}"),
            )),
            None => Err(invalid(
                format!("{field}.localhostProfile"),
                "",
                "missing localhost apparmor profile name",
            )),
        },
        other => Err(invalid(
            format!("{field}.type"),
            other,
            "unknown apparmor profile type",
        )),
    }
}

fn apparmor_from_annotation(v: &str) -> Option<AppArmorProfile> {
    let (type_, localhost_profile) = match v {
        "runtime/default" => ("RuntimeDefault", None),
        "unconfined" => ("Unconfined", None),
        other => (
            "Localhost",
            Some(other.strip_prefix("localhost/")?.to_owned()),
        ),
    };
    Some(AppArmorProfile {
        type_: type_.into(),
        localhost_profile,
    })
}

/// The kubelet's `verifyRunAsNonRoot`, with the image's user as `ImageStatus` gives it: its
/// numeric `image_uid`, else its `image_user` name; neither means root. A name that the image
/// `User` parser refuses (ImageStatus reports those whole) is refused naming the problem.
pub fn verify_run_as_non_root(
    pod: &Pod,
    c: &Container,
    image_uid: Option<i64>,
    image_user: &str,
) -> Result<(), String> {
    let sc = effective_security_context(pod, c);
    if sc.run_as_non_root != Some(true) {
        return Ok(());
    }
    let who = format!(
        "pod: \"{}_{}({})\", container: {}",
        meta_str(&pod.metadata.name),
        meta_str(&pod.metadata.namespace),
        meta_str(&pod.metadata.uid),
        c.name
    );
    if let Some(uid) = sc.run_as_user {
        if uid == 0 {
            return Err(format!(
                "container's runAsUser breaks non-root policy ({who})"
            ));
        }
        return Ok(());
    }
    match (image_uid, image_user) {
        (Some(0), _) | (None, "") => Err(format!(
            "container has runAsNonRoot and image will run as root ({who})"
        )),
        (None, name) => match corral_images::user::parse_user(name) {
            // ImageStatus reports a `User` its parser refuses whole, as a name.
            Err(e) => Err(format!(
                "container has runAsNonRoot and image has an invalid user: {e} ({who})"
            )),
            Ok(_) => Err(format!(
                "container has runAsNonRoot and image has non-numeric user ({name}), cannot \
                 verify user is non-root ({who})"
            )),
        },
        (Some(uid), _) if u32::try_from(uid).map_or(true, |u| u > corral_images::user::MAX_ID) => {
            Err(format!(
                "container has runAsNonRoot and image has an invalid uid {uid} ({who})"
            ))
        }
        (Some(_), _) => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Images

/// An image reference split as the Docker reference grammar normalizes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    /// The registry host (`docker.io` for Docker Hub).
    pub domain: String,
    /// The repository path (`library/nginx`).
    pub path: String,
    /// The tag, if any.
    pub tag: Option<String>,
    /// The digest, if any.
    pub digest: Option<String>,
}

impl ImageName {
    /// `domain/path`, what the kubelet looks credentials up with.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }
}

/// Splits `image` (`nginx`, `localhost:5000/x:1`, `quay.io/a/b@sha256:...`).
pub fn parse_image_name(image: &str) -> ImageName {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d.to_owned())),
        None => (image, None),
    };
    let (name, tag) = match rest.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t.to_owned())),
        _ => (rest, None),
    };
    let (mut domain, mut path) = match name.split_once('/') {
        Some((d, p)) if d.contains(['.', ':']) || d == "localhost" || d.to_lowercase() != d => {
            (d.to_owned(), p.to_owned())
        }
        _ => ("docker.io".to_owned(), name.to_owned()),
    };
    if domain == "index.docker.io" {
        domain = "docker.io".into();
    }
    if domain == "docker.io" && !path.contains('/') {
        path = format!("library/{path}");
    }
    ImageName {
        domain,
        path,
        tag,
        digest,
    }
}

/// The container's pull policy: `imagePullPolicy`, else (the API server's default) `Always`
/// for a `latest` tag or no tag and no digest, `IfNotPresent` otherwise.
pub fn pull_policy(c: &Container) -> PullPolicy {
    match c.image_pull_policy.as_deref() {
        Some("Always") => return PullPolicy::Always,
        Some("IfNotPresent") => return PullPolicy::IfNotPresent,
        Some("Never") => return PullPolicy::Never,
        _ => {}
    }
    let name = parse_image_name(c.image.as_deref().unwrap_or(""));
    let tag = match (&name.tag, &name.digest) {
        (Some(t), _) => t.as_str(),
        (None, None) => "latest",
        (None, Some(_)) => "",
    };
    if tag == "latest" {
        PullPolicy::Always
    } else {
        PullPolicy::IfNotPresent
    }
}

/// One credential of a keyring, under its key (`host[:port][/path]`).
struct KeyringEntry {
    key: String,
    auth: AuthConfig,
}

/// The credentials from `pull_secrets` (`kubernetes.io/dockerconfigjson` and
/// `kubernetes.io/dockercfg`) that match `image`, most specific first, as the kubelet's keyring
/// looks them up: keys match by host glob (`*.example.com`), port and path prefix; Docker Hub
/// images also match `index.docker.io` (`https://index.docker.io/v1/`) keys. Each is tried in
/// turn; none means an anonymous pull.
pub fn auth_for(image: &str, pull_secrets: &[Secret]) -> Result<Vec<AuthConfig>, TranslateError> {
    let mut entries = Vec::new();
    for s in pull_secrets {
        entries.extend(secret_entries(s)?);
    }
    // Reverse-sorted keys: `quay.io/coreos` before `quay.io`.
    entries.sort_by(|a, b| b.key.cmp(&a.key));
    let target = parse_image_name(image).repository();
    let matched: Vec<AuthConfig> = entries
        .iter()
        .filter(|e| urls_match(&e.key, &target))
        .map(|e| e.auth.clone())
        .collect();
    if !matched.is_empty() || !is_default_registry(&target) {
        return Ok(matched);
    }
    Ok(entries
        .into_iter()
        .filter(|e| e.key == "index.docker.io")
        .map(|e| e.auth)
        .collect())
}

fn secret_data(s: &Secret, key: &str) -> Option<Vec<u8>> {
    if let Some(v) = s.string_data.as_ref().and_then(|d| d.get(key)) {
        return Some(v.clone().into_bytes());
    }
    s.data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| b.0.clone())
}

fn secret_entries(s: &Secret) -> Result<Vec<KeyringEntry>, TranslateError> {
    let name = meta_str(&s.metadata.name).to_owned();
    let err = |reason: String| TranslateError::PullSecret {
        secret: name.clone(),
        reason,
    };
    let (bytes, json_form) = match s.type_.as_deref() {
        Some("kubernetes.io/dockerconfigjson") => (secret_data(s, ".dockerconfigjson"), true),
        Some("kubernetes.io/dockercfg") => (secret_data(s, ".dockercfg"), false),
        _ => (None, false),
    };
    let Some(bytes) = bytes.filter(|b| !b.is_empty()) else {
        return Ok(Vec::new());
    };
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| err(format!("invalid JSON: {e}")))?;
    let auths = if json_form { &value["auths"] } else { &value };
    let Some(auths) = auths.as_object() else {
        return Ok(Vec::new());
    };
    auths
        .iter()
        .filter_map(|(loc, entry)| {
            let key = keyring_key(loc)?;
            Some(
                config_entry(entry)
                    .map(|auth| KeyringEntry { key, auth })
                    .map_err(&err),
            )
        })
        .collect()
}

/// A docker config entry's credentials; `auth` (base64 `user:password`) wins over the fields.
fn config_entry(entry: &serde_json::Value) -> Result<AuthConfig, String> {
    let s = |k: &str| entry[k].as_str().unwrap_or("").to_owned();
    let auth = s("auth");
    if auth.is_empty() {
        return Ok(AuthConfig {
            username: s("username"),
            password: s("password"),
            ..Default::default()
        });
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.as_bytes())
        .map_err(|e| format!("auth: not base64: {e}"))?;
    let text = String::from_utf8_lossy(&decoded);
    let (user, pass) = text.split_once(':').ok_or_else(|| {
        "unable to parse auth field, must be formatted as base64(username:password)".to_owned()
    })?;
    Ok(AuthConfig {
        username: user.to_owned(),
        password: pass.trim_matches('\0').to_owned(),
        ..Default::default()
    })
}

/// A keyring key from a config location: scheme dropped, `/v1/` and `/v2/` paths meaning the
/// host alone.
fn keyring_key(loc: &str) -> Option<String> {
    let rest = loc
        .strip_prefix("https://")
        .or_else(|| loc.strip_prefix("http://"))
        .unwrap_or(loc);
    let (host, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if host.is_empty() {
        return None;
    }
    let path = match path {
        p if p.starts_with("/v1/") || p.starts_with("/v2/") => &p[3..],
        p => p,
    };
    Some(if path.is_empty() || path == "/" {
        host.to_owned()
    } else {
        format!("{host}{path}")
    })
}

fn split_host(url: &str) -> (&str, &str, &str) {
    let (host, path) = match url.find('/') {
        Some(i) => url.split_at(i),
        None => (url, ""),
    };
    match host.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => (h, p, path),
        _ => (host, "", path),
    }
}

/// `URLsMatch`: same port, same number of host parts each matching its glob, path prefix.
fn urls_match(glob: &str, target: &str) -> bool {
    let (gh, gp, gpath) = split_host(glob);
    let (th, tp, tpath) = split_host(target);
    let gparts: Vec<&str> = gh.split('.').collect();
    let tparts: Vec<&str> = th.split('.').collect();
    gp == tp
        && gparts.len() == tparts.len()
        && tpath.starts_with(gpath)
        && gparts.iter().zip(&tparts).all(|(g, t)| glob_match(g, t))
}

/// `*` (any run) and `?` (one character) globbing of one host part.
fn glob_match(glob: &str, s: &str) -> bool {
    let (g, s): (Vec<char>, Vec<char>) = (glob.chars().collect(), s.chars().collect());
    let (mut gi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match g.get(gi) {
            Some('*') => {
                star = Some((gi, si));
                gi += 1;
            }
            Some(c) if *c == '?' || *c == s[si] => {
                gi += 1;
                si += 1;
            }
            _ => match star {
                Some((sg, ss)) => {
                    gi = sg + 1;
                    si = ss + 1;
                    star = Some((sg, ss + 1));
                }
                None => return false,
            },
        }
    }
    g[gi..].iter().all(|c| *c == '*')
}

/// `isDefaultRegistryMatch` on a normalized repository.
fn is_default_registry(repo: &str) -> bool {
    match repo.split_once('/') {
        None => !repo.is_empty(),
        Some((first, _)) => {
            first == "docker.io"
                || first == "index.docker.io"
                || (!first.is_empty() && !first.contains(['.', ':']) && first != "localhost")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// /etc/hosts

const MANAGED_HOSTS_HEADER: &str = "# Kubernetes-managed hosts file.\n";
const MANAGED_HOSTS_HEADER_HOST_NETWORK: &str = "# Kubernetes-managed hosts file (host network).\n";

/// Whether the kubelet mounts its managed `/etc/hosts` into `c`: the pod has an IP and the
/// container does not mount something of its own there.
pub fn mounts_etc_hosts(c: &Container, pod_ips: &[String]) -> bool {
    !pod_ips.is_empty()
        && !c
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == "/etc/hosts")
}

/// The kubelet's managed `/etc/hosts` of a pod with its own network (`managedHostsFileContent`):
/// the header, localhost entries, a line per pod IP (`<ip>\t<host>.<domain>\t<host>` when there
/// is a domain) and the `hostAliases`.
pub fn etc_hosts(pod: &Pod, pod_ips: &[String], hostname: &str, domain: &str) -> String {
    let mut out = String::from(MANAGED_HOSTS_HEADER);
    out.push_str(
        "127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    for ip in pod_ips {
        if domain.is_empty() {
            out.push_str(&format!("{ip}\t{hostname}\n"));
        } else {
            out.push_str(&format!("{ip}\t{hostname}.{domain}\t{hostname}\n"));
        }
    }
    out.push_str(&host_aliases(pod));
    out
}

/// The kubelet's `/etc/hosts` of a host-network pod (`nodeHostsFileContent`): a header, the
/// host's file and the `hostAliases`.
pub fn etc_hosts_host_network(pod: &Pod, host_hosts: &str) -> String {
    format!(
        "{MANAGED_HOSTS_HEADER_HOST_NETWORK}{host_hosts}{}",
        host_aliases(pod)
    )
}

fn host_aliases(pod: &Pod) -> String {
    let aliases = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_aliases.as_deref())
        .unwrap_or(&[]);
    if aliases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for a in aliases {
        let names = a.hostnames.as_deref().unwrap_or(&[]).join("\t");
        out.push_str(&format!("{}\t{names}\n", a.ip));
    }
    out
}

#[cfg(test)]
mod tests;
