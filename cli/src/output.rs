//! Rendering: crictl-style tables, human sizes, and protojson-style JSON/YAML.
//!
//! The JSON builders follow protojson as crictl prints it: camelCase field names, 64-bit
//! integers as strings, default values emitted, and unset message fields as `null`. Objects are
//! `serde_json::Value`s, so keys come out sorted, as they do from crictl's status documents.

use std::collections::HashMap;

use anyhow::Context;
use clap::ValueEnum;
use corral_cri_api::v1;
use serde_json::{Map, Value, json};

/// Output format of commands that print a document (`inspecti`, `imagefsinfo`, `images -o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Yaml,
    Table,
}

/// Length of a truncated image ID, in characters of the hex (crictl's `truncatedIDLen`).
pub const TRUNCATED_ID_LEN: usize = 13;

/// Strips a `sha256:` prefix and keeps the first 13 characters, as crictl does.
pub fn truncate_id(id: &str) -> String {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.chars().take(TRUNCATED_ID_LEN).collect()
}

/// A size in decimal units with three significant digits: `1.24MB`, `742kB`, `0B`
/// (go-units `HumanSizeWithPrecision(size, 3)`, which crictl uses).
pub fn format_size(bytes: u64) -> String {
    human_size(bytes, 3)
}

/// A size in decimal units (powers of 1000) with `precision` significant digits.
pub fn human_size(bytes: u64, precision: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    // Precision loss above 2^53 bytes is irrelevant at three significant digits.
    #[allow(clippy::cast_precision_loss)]
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", format_g(size, precision), UNITS[unit])
}

/// Go's `%.<precision>g` for non-negative numbers: fixed notation unless the exponent is below
/// -4 or at least the precision, trailing zeros removed.
fn format_g(value: f64, precision: usize) -> String {
    let precision = precision.max(1);
    if value == 0.0 {
        return "0".to_owned();
    }
    let scientific = format!("{:.*e}", precision - 1, value);
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return scientific;
    };
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let max_exponent = i32::try_from(precision).unwrap_or(i32::MAX);
    if exponent < -4 || exponent >= max_exponent {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{}e{sign}{:02}",
            trim_fraction(mantissa),
            exponent.unsigned_abs()
        )
    } else {
        let decimals = usize::try_from(max_exponent - 1 - exponent).unwrap_or(0);
        trim_fraction(&format!("{value:.decimals$}")).to_owned()
    }
}

fn trim_fraction(number: &str) -> &str {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    }
}

/// Aligns cells like Go's `tabwriter` as crictl sets it up (minimum width 20, padding 3):
/// every column but the last is padded to `max(20, widest cell + 3)`.
pub fn render_table(rows: &[Vec<String>]) -> String {
    const MIN_WIDTH: usize = 20;
    const PADDING: usize = 3;
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![MIN_WIDTH; columns.saturating_sub(1)];
    for row in rows {
        for (cell, width) in row.iter().zip(widths.iter_mut()) {
            *width = (*width).max(cell.chars().count() + PADDING);
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

/// Which optional columns `images` shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImageColumns {
    pub digests: bool,
    pub pinned: bool,
    pub no_trunc: bool,
}

/// The `images` table: one row per repository tag, like crictl.
pub fn images_table(images: &[v1::Image], columns: ImageColumns) -> String {
    let mut header = vec!["IMAGE", "TAG"];
    if columns.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "SIZE"]);
    if columns.pinned {
        header.push("PINNED");
    }
    let mut rows = vec![header.into_iter().map(str::to_owned).collect::<Vec<_>>()];
    for image in images {
        let (name, mut digest) = repo_digest_pair(&image.repo_digests);
        let mut id = image.id.clone();
        if !columns.no_trunc {
            id = truncate_id(&id);
            digest = truncate_id(&digest);
        }
        let size = format_size(image.size);
        for (repo, tag) in repo_tag_pairs(&image.repo_tags, &name) {
            let mut row = vec![repo, tag];
            if columns.digests {
                row.push(digest.clone());
            }
            row.extend([id.clone(), size.clone()]);
            if columns.pinned {
                row.push(image.pinned.to_string());
            }
            rows.push(row);
        }
    }
    render_table(&rows)
}

/// `images --verbose`: a block of `Key: value` lines per image.
pub fn images_verbose(images: &[v1::Image]) -> String {
    let mut out = String::new();
    for image in images {
        out.push_str(&format!("ID: {}\n", image.id));
        for tag in &image.repo_tags {
            out.push_str(&format!("RepoTags: {tag}\n"));
        }
        for digest in &image.repo_digests {
            out.push_str(&format!("RepoDigests: {digest}\n"));
        }
        if image.size != 0 {
            out.push_str(&format!("Size: {}\n", image.size));
        }
        if let Some(uid) = &image.uid {
            out.push_str(&format!("Uid: value:{}\n", uid.value));
        }
        if !image.username.is_empty() {
            out.push_str(&format!("Username: {}\n", image.username));
        }
        if image.pinned {
            out.push_str("Pinned: true\n");
        }
        out.push('\n');
    }
    out
}

/// `images --quiet`: full image IDs, one per line, each once.
pub fn image_ids(images: &[v1::Image]) -> String {
    let mut seen = std::collections::HashSet::new();
    let mut out = String::new();
    for image in images {
        if seen.insert(image.id.as_str()) {
            out.push_str(&image.id);
            out.push('\n');
        }
    }
    out
}

/// Splits the first repo digest into `(name, digest)`; `<none>` when there is none.
fn repo_digest_pair(digests: &[String]) -> (String, String) {
    const NONE: &str = "<none>";
    match digests.first() {
        None => (NONE.to_owned(), NONE.to_owned()),
        Some(first) => match first.split_once('@') {
            Some((name, digest)) if !digest.contains('@') => (name.to_owned(), digest.to_owned()),
            _ => ("errorName".to_owned(), "errorRepoDigest".to_owned()),
        },
    }
}

/// Splits tags into `(repository, tag)`; an untagged image shows its digest name and `<none>`.
fn repo_tag_pairs(tags: &[String], digest_name: &str) -> Vec<(String, String)> {
    const NONE: &str = "<none>";
    if tags.is_empty() {
        return vec![(digest_name.to_owned(), NONE.to_owned())];
    }
    tags.iter()
        .map(|tag| match tag.rsplit_once(':') {
            // A colon inside a registry host:port is not a tag separator.
            Some((repo, tag)) if !tag.contains('/') => {
                let repo = if repo == NONE { digest_name } else { repo };
                (repo.to_owned(), tag.to_owned())
            }
            _ => (tag.clone(), NONE.to_owned()),
        })
        .collect()
}

/// Renders a document as indented JSON or YAML.
pub fn render(value: &Value, format: Format) -> anyhow::Result<String> {
    match format {
        Format::Json => serde_json::to_string_pretty(value).context("encoding JSON"),
        Format::Yaml => {
            // Plain scalars only: folded `>-` blocks would split long digests across lines.
            let options = serde_saphyr::ser_options! { prefer_block_scalars: false };
            let mut yaml =
                serde_saphyr::to_string_with_options(value, options).context("encoding YAML")?;
            if yaml.ends_with('\n') {
                yaml.pop();
            }
            Ok(yaml)
        }
        Format::Table => anyhow::bail!("this document has no table form"),
    }
}

/// Parses one value of a CRI `info` map: JSON when it is JSON, else the text with surrounding
/// quotes removed (crictl's fallback).
pub fn info_value(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.trim_matches('"').to_owned()))
}

/// Builds crictl's status document: the given fields plus every `info` key, parsed.
pub fn status_document(fields: Vec<(&str, Value)>, info: &HashMap<String, String>) -> Value {
    let mut doc = Map::new();
    for (key, value) in fields {
        doc.insert(key.to_owned(), value);
    }
    for (key, raw) in info {
        doc.insert(key.clone(), info_value(raw));
    }
    Value::Object(doc)
}

/// One document prints as an object, several as an array (crictl's "old behavior").
pub fn combine(mut docs: Vec<Value>) -> Value {
    if docs.len() == 1 {
        docs.remove(0)
    } else {
        Value::Array(docs)
    }
}

fn string_map(map: &HashMap<String, String>) -> Value {
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// `ImageSpec` in protojson.
pub fn image_spec_json(spec: &v1::ImageSpec) -> Value {
    json!({
        "image": spec.image,
        "annotations": string_map(&spec.annotations),
        "userSpecifiedImage": spec.user_specified_image,
        "runtimeHandler": spec.runtime_handler,
        "imageRef": spec.image_ref,
    })
}

/// `Image` in protojson: `size` and `uid.value` are 64-bit, hence strings.
pub fn image_json(image: &v1::Image) -> Value {
    json!({
        "id": image.id,
        "repoTags": image.repo_tags,
        "repoDigests": image.repo_digests,
        "size": image.size.to_string(),
        "uid": image.uid.as_ref().map(|uid| json!({ "value": uid.value.to_string() })),
        "username": image.username,
        "spec": image.spec.as_ref().map(image_spec_json),
        "pinned": image.pinned,
    })
}

/// `ListImagesResponse` in protojson.
pub fn list_images_json(response: &v1::ListImagesResponse) -> Value {
    json!({ "images": response.images.iter().map(image_json).collect::<Vec<_>>() })
}

fn uint64_value_json(value: Option<&v1::UInt64Value>) -> Value {
    value.map_or(Value::Null, |v| json!({ "value": v.value.to_string() }))
}

/// `FilesystemUsage` in protojson.
pub fn filesystem_usage_json(usage: &v1::FilesystemUsage) -> Value {
    json!({
        "timestamp": usage.timestamp.to_string(),
        "fsId": usage.fs_id.as_ref().map(|id| json!({ "mountpoint": id.mountpoint })),
        "usedBytes": uint64_value_json(usage.used_bytes.as_ref()),
        "inodesUsed": uint64_value_json(usage.inodes_used.as_ref()),
    })
}

/// `ImageFsInfoResponse` in protojson.
pub fn image_fs_info_json(response: &v1::ImageFsInfoResponse) -> Value {
    let list =
        |fs: &[v1::FilesystemUsage]| fs.iter().map(filesystem_usage_json).collect::<Vec<_>>();
    json!({
        "imageFilesystems": list(&response.image_filesystems),
        "containerFilesystems": list(&response.container_filesystems),
    })
}

/// `RuntimeStatus` in protojson.
pub fn runtime_status_json(status: &v1::RuntimeStatus) -> Value {
    let conditions: Vec<Value> = status
        .conditions
        .iter()
        .map(|c| {
            json!({
                "type": c.r#type,
                "status": c.status,
                "reason": c.reason,
                "message": c.message,
            })
        })
        .collect();
    json!({ "conditions": conditions })
}

/// Runtime handlers as crictl prints them (Go `encoding/json` of the generated structs, so
/// snake_case names and empty values left out); scripts read `crictl info` this way.
pub fn runtime_handlers_json(handlers: &[v1::RuntimeHandler]) -> Value {
    let handlers: Vec<Value> = handlers
        .iter()
        .map(|h| {
            let mut obj = Map::new();
            if !h.name.is_empty() {
                obj.insert("name".into(), Value::String(h.name.clone()));
            }
            if let Some(f) = &h.features {
                let mut features = Map::new();
                flag(
                    &mut features,
                    "recursive_read_only_mounts",
                    f.recursive_read_only_mounts,
                );
                flag(&mut features, "user_namespaces", f.user_namespaces);
                obj.insert("features".into(), Value::Object(features));
            }
            Value::Object(obj)
        })
        .collect();
    Value::Array(handlers)
}

/// Runtime features as crictl prints them (see [`runtime_handlers_json`]).
pub fn runtime_features_json(features: &v1::RuntimeFeatures) -> Value {
    let mut obj = Map::new();
    flag(
        &mut obj,
        "supplemental_groups_policy",
        features.supplemental_groups_policy,
    );
    flag(
        &mut obj,
        "user_namespaces_host_network",
        features.user_namespaces_host_network,
    );
    Value::Object(obj)
}

fn flag(obj: &mut Map<String, Value>, name: &str, set: bool) {
    if set {
        obj.insert(name.to_owned(), Value::Bool(true));
    }
}

#[cfg(test)]
mod tests;
