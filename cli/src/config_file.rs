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

pub use crate::config_container::ContainerConfig;

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
pub(crate) enum EnumValue {
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

pub(crate) fn resolve(
    value: Option<&EnumValue>,
    what: &str,
    by_name: impl Fn(&str) -> Option<i32>,
) -> anyhow::Result<i32> {
    value.map_or(Ok(0), |v| v.resolve(what, by_name))
}

/// An int64 as a JSON number or a decimal string (protojson writes 64-bit integers as strings).
pub(crate) fn int64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
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

pub(crate) fn int64_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
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
pub(crate) struct Int64Value {
    #[serde(deserialize_with = "int64")]
    value: i64,
}

pub(crate) fn int64_value(v: Option<Int64Value>) -> Option<v1::Int64Value> {
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
pub(crate) struct NamespaceOptions {
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

pub(crate) fn namespaces(
    v: Option<NamespaceOptions>,
) -> anyhow::Result<Option<v1::NamespaceOption>> {
    v.map(NamespaceOptions::into_proto).transpose()
}

/// `LinuxContainerResources`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Resources {
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
    pub(crate) fn into_proto(self) -> v1::LinuxContainerResources {
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

#[cfg(test)]
#[path = "config_file_tests.rs"]
mod tests;
