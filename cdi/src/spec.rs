//! A CDI spec file, as vendors write it (JSON or YAML; field names in camelCase).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The spec versions this implementation reads (0.3.0 to 1.1.0: the fields differ only by
/// additions, and an addition it does not apply is refused where it is used).
pub const VERSIONS: [&str; 9] = [
    "0.3.0", "0.4.0", "0.5.0", "0.6.0", "0.7.0", "0.8.0", "1.0.0", "1.0.1", "1.1.0",
];

/// A whole spec file: one vendor/class and its devices.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    pub cdi_version: String,
    pub kind: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub devices: Vec<Device>,
    /// Edits applied once when any device of this spec is used.
    #[serde(default)]
    pub container_edits: ContainerEdits,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub name: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub container_edits: ContainerEdits,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerEdits {
    /// `NAME=value` entries.
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub device_nodes: Vec<DeviceNode>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default)]
    pub hooks: Vec<Hook>,
    #[serde(default, rename = "additionalGIDs", alias = "additionalGids")]
    pub additional_gids: Vec<u32>,
    /// Intel RDT settings (0.7.0): not applied; a device that sets them is refused.
    #[serde(default)]
    pub intel_rdt: Option<serde_json::Value>,
    /// Network devices (1.0.0): not applied; a device that lists any is refused.
    #[serde(default)]
    pub net_devices: Vec<serde_json::Value>,
}

impl ContainerEdits {
    pub fn is_empty(&self) -> bool {
        self.env.is_empty()
            && self.device_nodes.is_empty()
            && self.mounts.is_empty()
            && self.hooks.is_empty()
            && self.additional_gids.is_empty()
            && self.intel_rdt.is_none()
            && self.net_devices.is_empty()
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceNode {
    /// Where the node appears in the container.
    pub path: String,
    /// The host's node (defaults to `path`), stat'ed for what the spec leaves out.
    #[serde(default)]
    pub host_path: Option<String>,
    /// `c`, `b`, `u` or `p`.
    #[serde(default, rename = "type")]
    pub typ: Option<String>,
    #[serde(default)]
    pub major: Option<i64>,
    #[serde(default)]
    pub minor: Option<i64>,
    #[serde(default)]
    pub file_mode: Option<u32>,
    /// Cgroup access: a combination of `r`, `w`, `m` (default `rwm`).
    #[serde(default)]
    pub permissions: Option<String>,
    #[serde(default)]
    pub uid: Option<u32>,
    #[serde(default)]
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    pub host_path: String,
    pub container_path: String,
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default, rename = "type")]
    pub typ: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    /// `prestart`, `createRuntime`, `createContainer`, `startContainer`, `poststart` or
    /// `poststop`.
    pub hook_name: String,
    pub path: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub timeout: Option<i64>,
}

impl Spec {
    /// Parses a spec file's bytes: JSON when `json`, else YAML.
    pub fn parse(bytes: &[u8], json: bool) -> Result<Spec, String> {
        let spec: Spec = if json {
            serde_json::from_slice(bytes).map_err(|e| e.to_string())?
        } else {
            let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
            serde_saphyr::from_str(text).map_err(|e| e.to_string())?
        };
        if !VERSIONS.contains(&spec.cdi_version.as_str()) {
            return Err(format!(
                "cdiVersion {:?} is not one of {}",
                spec.cdi_version,
                VERSIONS.join(", ")
            ));
        }
        if crate::name::parse_kind(&spec.kind).is_none() {
            return Err(format!("kind {:?} is not vendor.com/class", spec.kind));
        }
        for d in &spec.devices {
            if !crate::name::valid_device_name(&d.name) {
                return Err(format!("device name {:?} is not valid", d.name));
            }
        }
        Ok(spec)
    }
}
