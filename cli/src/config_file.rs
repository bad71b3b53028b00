//! crictl's config files: a CRI `PodSandboxConfig` or `ContainerConfig` in protobuf JSON (or
//! the same document as YAML), with snake_case or lowerCamelCase keys.
//!
//! prost types have no serde, so the fields crictl users set are mirrored here and converted.
//! Unknown keys are errors that name the key; enums take their proto name or number, and 64-bit
//! integers take a number or a decimal string, as protojson allows.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use corral_cri_api::v1;
use serde::{Deserialize, Deserializer};

type Map = HashMap<String, String>;

/// Reads a `PodSandboxConfig` file.
pub fn load_pod_config(path: &Path) -> anyhow::Result<v1::PodSandboxConfig> {
    let file: PodConfig = load(path)?;
    file.into_proto()
        .with_context(|| format!("pod config {}", path.display()))
}

/// Reads a `ContainerConfig` file.
pub fn load_container_config(path: &Path) -> anyhow::Result<v1::ContainerConfig> {
    let file: ContainerConfig = load(path)?;
    file.into_proto()
        .with_context(|| format!("container config {}", path.display()))
}

fn load<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    parse(&text, path).with_context(|| format!("parsing config file {}", path.display()))
}

/// JSON for `.json` files and for text starting with `{`; YAML otherwise.
pub fn parse<T: for<'de> Deserialize<'de>>(text: &str, path: &Path) -> anyhow::Result<T> {
    let yaml_ext = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    if !yaml_ext && text.trim_start().starts_with('{') {
        Ok(serde_json::from_str(text)?)
    } else {
        Ok(serde_saphyr::from_str(text)?)
    }
}

/// A protobuf enum value: its name (`"NODE"`) or its number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum EnumValue {
    Number(i32),
    Name(String),
}

impl EnumValue {
    fn resolve(&self, what: &str, by_name: impl Fn(&str) -> Option<i32>) -> anyhow::Result<i32> {
        match self {
            EnumValue::Number(n) => Ok(*n),
            EnumValue::Name(name) => match by_name(name) {
                Some(n) => Ok(n),
                None => bail!("invalid {what} {name:?}"),
            },
        }
    }
}

fn resolve(
    value: Option<&EnumValue>,
    what: &str,
    by_name: impl Fn(&str) -> Option<i32>,
) -> anyhow::Result<i32> {
    value.map_or(Ok(0), |v| v.resolve(what, by_name))
}

/// An int64 as a JSON number or a decimal string (protojson writes 64-bit integers as strings).
fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(i64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Number(n) => Ok(n),
        Raw::Text(s) => s.trim().parse().map_err(serde::de::Error::custom),
    }
}

fn int64_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    #[derive(Deserialize)]
    struct One(#[serde(deserialize_with = "int64")] i64);
    Ok(Vec::<One>::deserialize(d)?
        .into_iter()
        .map(|o| o.0)
        .collect())
}

/// `Int64Value`: `{"value": 1000}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Int64Value {
    #[serde(deserialize_with = "int64")]
    value: i64,
}

fn int64_value(v: Option<Int64Value>) -> Option<v1::Int64Value> {
    v.map(|v| v1::Int64Value { value: v.value })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PodConfig {
    metadata: Option<PodMetadata>,
    hostname: String,
    #[serde(alias = "logDirectory")]
    log_directory: String,
    #[serde(alias = "dnsConfig")]
    dns_config: Option<DnsConfig>,
    #[serde(alias = "portMappings")]
    port_mappings: Vec<PortMapping>,
    labels: Map,
    annotations: Map,
    linux: Option<LinuxPodConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct PodMetadata {
    name: String,
    uid: String,
    namespace: String,
    attempt: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct DnsConfig {
    servers: Vec<String>,
    searches: Vec<String>,
    options: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct PortMapping {
    protocol: Option<EnumValue>,
    #[serde(alias = "containerPort")]
    container_port: i32,
    #[serde(alias = "hostPort")]
    host_port: i32,
    #[serde(alias = "hostIp")]
    host_ip: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LinuxPodConfig {
    #[serde(alias = "cgroupParent")]
    cgroup_parent: String,
    #[serde(alias = "securityContext")]
    security_context: Option<SandboxSecurityContext>,
    sysctls: Map,
    overhead: Option<Resources>,
    resources: Option<Resources>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SandboxSecurityContext {
    #[serde(alias = "namespaceOptions")]
    namespace_options: Option<NamespaceOptions>,
    #[serde(alias = "runAsUser")]
    run_as_user: Option<Int64Value>,
    #[serde(alias = "runAsGroup")]
    run_as_group: Option<Int64Value>,
    #[serde(alias = "readonlyRootfs")]
    readonly_rootfs: bool,
    #[serde(alias = "supplementalGroups", deserialize_with = "int64_list")]
    supplemental_groups: Vec<i64>,
    privileged: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct NamespaceOptions {
    network: Option<EnumValue>,
    pid: Option<EnumValue>,
    ipc: Option<EnumValue>,
    #[serde(alias = "targetId")]
    target_id: String,
}

impl NamespaceOptions {
    fn into_proto(self) -> anyhow::Result<v1::NamespaceOption> {
        let mode = |v: Option<&EnumValue>, what| {
            resolve(v, what, |n| {
                v1::NamespaceMode::from_str_name(n).map(|m| m as i32)
            })
        };
        Ok(v1::NamespaceOption {
            network: mode(self.network.as_ref(), "network namespace mode")?,
            pid: mode(self.pid.as_ref(), "pid namespace mode")?,
            ipc: mode(self.ipc.as_ref(), "ipc namespace mode")?,
            target_id: self.target_id,
            userns_options: None,
        })
    }
}

fn namespaces(v: Option<NamespaceOptions>) -> anyhow::Result<Option<v1::NamespaceOption>> {
    v.map(NamespaceOptions::into_proto).transpose()
}

/// `LinuxContainerResources`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Resources {
    #[serde(alias = "cpuPeriod", deserialize_with = "int64")]
    cpu_period: i64,
    #[serde(alias = "cpuQuota", deserialize_with = "int64")]
    cpu_quota: i64,
    #[serde(alias = "cpuShares", deserialize_with = "int64")]
    cpu_shares: i64,
    #[serde(alias = "memoryLimitInBytes", deserialize_with = "int64")]
    memory_limit_in_bytes: i64,
    #[serde(alias = "oomScoreAdj", deserialize_with = "int64")]
    oom_score_adj: i64,
    #[serde(alias = "cpusetCpus")]
    cpuset_cpus: String,
    #[serde(alias = "cpusetMems")]
    cpuset_mems: String,
    unified: Map,
    #[serde(alias = "memorySwapLimitInBytes", deserialize_with = "int64")]
    memory_swap_limit_in_bytes: i64,
}

impl Resources {
    fn into_proto(self) -> v1::LinuxContainerResources {
        v1::LinuxContainerResources {
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            cpu_shares: self.cpu_shares,
            memory_limit_in_bytes: self.memory_limit_in_bytes,
            oom_score_adj: self.oom_score_adj,
            cpuset_cpus: self.cpuset_cpus,
            cpuset_mems: self.cpuset_mems,
            hugepage_limits: Vec::new(),
            unified: self.unified,
            memory_swap_limit_in_bytes: self.memory_swap_limit_in_bytes,
        }
    }
}

impl PodConfig {
    pub fn into_proto(self) -> anyhow::Result<v1::PodSandboxConfig> {
        let port_mappings = self
            .port_mappings
            .into_iter()
            .map(|p| {
                Ok(v1::PortMapping {
                    protocol: resolve(p.protocol.as_ref(), "port protocol", |n| {
                        v1::Protocol::from_str_name(n).map(|p| p as i32)
                    })?,
                    container_port: p.container_port,
                    host_port: p.host_port,
                    host_ip: p.host_ip,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let linux = match self.linux {
            None => None,
            Some(l) => Some(v1::LinuxPodSandboxConfig {
                cgroup_parent: l.cgroup_parent,
                security_context: match l.security_context {
                    None => None,
                    Some(s) => Some(v1::LinuxSandboxSecurityContext {
                        namespace_options: namespaces(s.namespace_options)?,
                        run_as_user: int64_value(s.run_as_user),
                        run_as_group: int64_value(s.run_as_group),
                        readonly_rootfs: s.readonly_rootfs,
                        supplemental_groups: s.supplemental_groups,
                        privileged: s.privileged,
                        ..Default::default()
                    }),
                },
                sysctls: l.sysctls,
                overhead: l.overhead.map(Resources::into_proto),
                resources: l.resources.map(Resources::into_proto),
            }),
        };
        Ok(v1::PodSandboxConfig {
            metadata: self.metadata.map(|m| v1::PodSandboxMetadata {
                name: m.name,
                uid: m.uid,
                namespace: m.namespace,
                attempt: m.attempt,
            }),
            hostname: self.hostname,
            log_directory: self.log_directory,
            dns_config: self.dns_config.map(|d| v1::DnsConfig {
                servers: d.servers,
                searches: d.searches,
                options: d.options,
            }),
            port_mappings,
            labels: self.labels,
            annotations: self.annotations,
            linux,
            windows: None,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainerConfig {
    metadata: Option<ContainerMetadata>,
    image: Option<ImageSpec>,
    command: Vec<String>,
    args: Vec<String>,
    #[serde(alias = "workingDir")]
    working_dir: String,
    envs: Vec<KeyValue>,
    mounts: Vec<Mount>,
    devices: Vec<Device>,
    labels: Map,
    annotations: Map,
    #[serde(alias = "logPath")]
    log_path: String,
    stdin: bool,
    #[serde(alias = "stdinOnce")]
    stdin_once: bool,
    tty: bool,
    linux: Option<LinuxContainerConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ContainerMetadata {
    name: String,
    attempt: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ImageSpec {
    image: String,
    annotations: Map,
    #[serde(alias = "userSpecifiedImage")]
    user_specified_image: String,
    #[serde(alias = "runtimeHandler")]
    runtime_handler: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct KeyValue {
    key: String,
    value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Mount {
    #[serde(alias = "containerPath")]
    container_path: String,
    #[serde(alias = "hostPath")]
    host_path: String,
    readonly: bool,
    #[serde(alias = "selinuxRelabel")]
    selinux_relabel: bool,
    propagation: Option<EnumValue>,
    #[serde(alias = "recursiveReadOnly")]
    recursive_read_only: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Device {
    #[serde(alias = "containerPath")]
    container_path: String,
    #[serde(alias = "hostPath")]
    host_path: String,
    permissions: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LinuxContainerConfig {
    resources: Option<Resources>,
    #[serde(alias = "securityContext")]
    security_context: Option<ContainerSecurityContext>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ContainerSecurityContext {
    capabilities: Option<Capability>,
    privileged: bool,
    #[serde(alias = "namespaceOptions")]
    namespace_options: Option<NamespaceOptions>,
    #[serde(alias = "runAsUser")]
    run_as_user: Option<Int64Value>,
    #[serde(alias = "runAsGroup")]
    run_as_group: Option<Int64Value>,
    #[serde(alias = "runAsUsername")]
    run_as_username: String,
    #[serde(alias = "readonlyRootfs")]
    readonly_rootfs: bool,
    #[serde(alias = "supplementalGroups", deserialize_with = "int64_list")]
    supplemental_groups: Vec<i64>,
    #[serde(alias = "noNewPrivs")]
    no_new_privs: bool,
    #[serde(alias = "maskedPaths")]
    masked_paths: Vec<String>,
    #[serde(alias = "readonlyPaths")]
    readonly_paths: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Capability {
    #[serde(alias = "addCapabilities")]
    add_capabilities: Vec<String>,
    #[serde(alias = "dropCapabilities")]
    drop_capabilities: Vec<String>,
    #[serde(alias = "addAmbientCapabilities")]
    add_ambient_capabilities: Vec<String>,
}

impl ContainerConfig {
    pub fn into_proto(self) -> anyhow::Result<v1::ContainerConfig> {
        let mounts = self
            .mounts
            .into_iter()
            .map(|m| {
                Ok(v1::Mount {
                    container_path: m.container_path,
                    host_path: m.host_path,
                    readonly: m.readonly,
                    selinux_relabel: m.selinux_relabel,
                    propagation: resolve(m.propagation.as_ref(), "mount propagation", |n| {
                        v1::MountPropagation::from_str_name(n).map(|p| p as i32)
                    })?,
                    recursive_read_only: m.recursive_read_only,
                    ..Default::default()
                })
            })
            .collect::<anyhow::Result<_>>()?;
        let linux = match self.linux {
            None => None,
            Some(l) => Some(v1::LinuxContainerConfig {
                resources: l.resources.map(Resources::into_proto),
                security_context: match l.security_context {
                    None => None,
                    Some(s) => Some(v1::LinuxContainerSecurityContext {
                        capabilities: s.capabilities.map(|c| v1::Capability {
                            add_capabilities: c.add_capabilities,
                            drop_capabilities: c.drop_capabilities,
                            add_ambient_capabilities: c.add_ambient_capabilities,
                        }),
                        privileged: s.privileged,
                        namespace_options: namespaces(s.namespace_options)?,
                        run_as_user: int64_value(s.run_as_user),
                        run_as_group: int64_value(s.run_as_group),
                        run_as_username: s.run_as_username,
                        readonly_rootfs: s.readonly_rootfs,
                        supplemental_groups: s.supplemental_groups,
                        no_new_privs: s.no_new_privs,
                        masked_paths: s.masked_paths,
                        readonly_paths: s.readonly_paths,
                        ..Default::default()
                    }),
                },
            }),
        };
        Ok(v1::ContainerConfig {
            metadata: self.metadata.map(|m| v1::ContainerMetadata {
                name: m.name,
                attempt: m.attempt,
            }),
            image: self.image.map(|i| v1::ImageSpec {
                image: i.image,
                annotations: i.annotations,
                user_specified_image: i.user_specified_image,
                runtime_handler: i.runtime_handler,
                image_ref: String::new(),
            }),
            command: self.command,
            args: self.args,
            working_dir: self.working_dir,
            envs: self
                .envs
                .into_iter()
                .map(|e| v1::KeyValue {
                    key: e.key,
                    value: e.value,
                })
                .collect(),
            mounts,
            devices: self
                .devices
                .into_iter()
                .map(|d| v1::Device {
                    container_path: d.container_path,
                    host_path: d.host_path,
                    permissions: d.permissions,
                })
                .collect(),
            labels: self.labels,
            annotations: self.annotations,
            log_path: self.log_path,
            stdin: self.stdin,
            stdin_once: self.stdin_once,
            tty: self.tty,
            linux,
            ..Default::default()
        })
    }
}

#[cfg(test)]
#[path = "config_file_tests.rs"]
mod tests;
