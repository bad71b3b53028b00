//! The `ContainerConfig` half of crictl's config files (see [`crate::config_file`]).

use std::collections::HashMap;

use corral_cri_api::v1;
use serde::Deserialize;

use crate::config_file::{
    EnumValue, Int64Value, NamespaceOptions, Resources, int64_list, int64_value, namespaces,
    resolve,
};

type Map = HashMap<String, String>;

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
