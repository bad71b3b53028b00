//! crictl's config files: a CRI `PodSandboxConfig` or `ContainerConfig` in protobuf JSON, or the
//! same document as YAML.
//!
//! The messages deserialize through the serde impls pbjson-build generates from the proto in
//! `corral-cri-api`, so every field of the proto is read, under its proto name (`log_directory`)
//! or its lowerCamelCase JSON name (`logDirectory`); enums take their proto name or number,
//! 64-bit integers a number or a decimal string. Unknown keys are errors that name the key.
//! `null` stands for the default only in message fields (pbjson's limit). README.md lists where
//! crictl reads these files differently.

use std::path::Path;

use anyhow::Context;
use corral_cri_api::v1;
use serde::de::DeserializeOwned;

/// Reads a `PodSandboxConfig` file.
pub fn load_pod_config(path: &Path) -> anyhow::Result<v1::PodSandboxConfig> {
    load(path)
}

/// Reads a `ContainerConfig` file.
pub fn load_container_config(path: &Path) -> anyhow::Result<v1::ContainerConfig> {
    load(path)
}

fn load<T: DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    parse(&text, path).with_context(|| format!("parsing config file {}", path.display()))
}

/// JSON when the text starts with `{` (unless the file is named `.yaml`/`.yml`); YAML otherwise.
/// YAML goes straight into the message, so a plain scalar like `1` is read as the string a
/// string field wants, as crictl's YAML-to-JSON conversion does.
pub fn parse<T: DeserializeOwned>(text: &str, path: &Path) -> anyhow::Result<T> {
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

#[cfg(test)]
mod tests;
