//! kubectl-style output: `get` tables aligned as kubectl's tabwriter aligns them (columns
//! padded by 3 spaces, at least 6 wide, the last column unpadded), ages as `HumanDuration`,
//! `-o name`, and `-o yaml` / `-o json` of stored objects.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::manifest::Object;

/// kubectl's `duration.HumanDuration`: `45s`, `3m2s`, `10m`, `5h3m`, `2d5h`, `30d`, `2y`.
pub fn human_duration(d: SignedDuration) -> String {
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The AGE of an object created at `t` (`<unknown>` without a timestamp).
pub fn age(t: Option<&Time>, now: Timestamp) -> String {
    match t {
        None => "<unknown>".into(),
        Some(t) => human_duration(now.duration_since(t.0)),
    }
}

/// A table: headers and rows of cells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    /// Column headers.
    pub headers: Vec<String>,
    /// Rows, each as long as `headers`.
    pub rows: Vec<Vec<String>>,
}

/// tabwriter's padding.
pub const PADDING: usize = 3;
/// tabwriter's minimum cell width (padding included).
pub const MIN_WIDTH: usize = 6;

impl Table {
    /// Renders the table as kubectl's tabwriter does; every line ends with `\n`.
    pub fn render(&self) -> String {
        let cols = self.headers.len();
        let all = || std::iter::once(&self.headers).chain(self.rows.iter());
        let widths: Vec<usize> = (0..cols)
            .map(|i| {
                let w = all()
                    .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                    .max()
                    .unwrap_or(0);
                (w + PADDING).max(MIN_WIDTH)
            })
            .collect();
        let mut out = String::new();
        for row in all() {
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
}

/// How to print pods.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodOptions {
    /// `-o wide`: IP, NODE, NOMINATED NODE, READINESS GATES.
    pub wide: bool,
    /// `-A`: a NAMESPACE column first.
    pub all_namespaces: bool,
    /// `--show-labels`: a LABELS column last.
    pub show_labels: bool,
}

/// Labels as `--show-labels` prints them: `a=b,c=d`, or `<none>`.
pub fn labels(l: Option<&BTreeMap<String, String>>) -> String {
    match l {
        Some(l) if !l.is_empty() => l
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<none>".into(),
    }
}

/// `kubectl get pods`.
pub fn pods(pods: &[Pod], opts: PodOptions, now: Timestamp) -> Table {
    let mut headers: Vec<&str> = vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
    if opts.all_namespaces {
        headers.insert(0, "NAMESPACE");
    }
    if opts.wide {
        headers.extend(["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]);
    }
    if opts.show_labels {
        headers.push("LABELS");
    }
    let rows = pods
        .iter()
        .map(|p| {
            let c = crate::status::columns(p, now);
            let mut row = vec![];
            if opts.all_namespaces {
                row.push(p.metadata.namespace.clone().unwrap_or_default());
            }
            row.extend([
                p.metadata.name.clone().unwrap_or_default(),
                c.ready,
                c.status,
                c.restarts,
                age(p.metadata.creation_timestamp.as_ref(), now),
            ]);
            if opts.wide {
                let status = p.status.clone().unwrap_or_default();
                let spec = p.spec.clone().unwrap_or_default();
                let ip = status
                    .pod_ips
                    .as_ref()
                    .and_then(|ips| ips.first())
                    .map(|i| i.ip.clone());
                let or_none = |s: Option<String>| {
                    s.filter(|s| !s.is_empty())
                        .unwrap_or_else(|| "<none>".into())
                };
                let gates = match spec.readiness_gates.as_deref() {
                    None | Some([]) => "<none>".to_string(),
                    Some(g) => {
                        let ok =
                            g.iter()
                                .filter(|gate| {
                                    status.conditions.iter().flatten().any(|c| {
                                        c.type_ == gate.condition_type && c.status == "True"
                                    })
                                })
                                .count();
                        format!("{ok}/{}", g.len())
                    }
                };
                row.extend([
                    or_none(ip),
                    or_none(spec.node_name),
                    or_none(status.nominated_node_name),
                    gates,
                ]);
            }
            if opts.show_labels {
                row.push(labels(p.metadata.labels.as_ref()));
            }
            row
        })
        .collect();
    Table {
        headers: headers.into_iter().map(Into::into).collect(),
        rows,
    }
}

fn namespaced_table(
    headers: &[&str],
    all_namespaces: bool,
    rows: impl Iterator<Item = (Option<String>, Vec<String>)>,
) -> Table {
    let mut h: Vec<String> = headers.iter().map(|s| s.to_string()).collect();
    if all_namespaces {
        h.insert(0, "NAMESPACE".into());
    }
    let rows = rows
        .map(|(ns, mut cells)| {
            if all_namespaces {
                cells.insert(0, ns.unwrap_or_default());
            }
            cells
        })
        .collect();
    Table { headers: h, rows }
}

/// `kubectl get namespaces`: NAME STATUS AGE.
pub fn namespaces(list: &[Namespace], now: Timestamp) -> Table {
    let rows = list.iter().map(|n| {
        let phase = n
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Active".into());
        (
            None,
            vec![
                n.metadata.name.clone().unwrap_or_default(),
                phase,
                age(n.metadata.creation_timestamp.as_ref(), now),
            ],
        )
    });
    namespaced_table(&["NAME", "STATUS", "AGE"], false, rows)
}

/// `kubectl get configmaps`: NAME DATA AGE.
pub fn config_maps(list: &[ConfigMap], all_namespaces: bool, now: Timestamp) -> Table {
    let rows = list.iter().map(|c| {
        let n = c.data.as_ref().map_or(0, BTreeMap::len)
            + c.binary_data.as_ref().map_or(0, BTreeMap::len);
        let m = &c.metadata;
        (
            m.namespace.clone(),
            vec![
                m.name.clone().unwrap_or_default(),
                n.to_string(),
                age(m.creation_timestamp.as_ref(), now),
            ],
        )
    });
    namespaced_table(&["NAME", "DATA", "AGE"], all_namespaces, rows)
}

/// `kubectl get secrets`: NAME TYPE DATA AGE.
pub fn secrets(list: &[Secret], all_namespaces: bool, now: Timestamp) -> Table {
    let rows = list.iter().map(|s| {
        let n = s.data.as_ref().map_or(0, BTreeMap::len)
            + s.string_data.as_ref().map_or(0, BTreeMap::len);
        let m = &s.metadata;
        let ty = s.type_.clone().unwrap_or_else(|| "Opaque".into());
        (
            m.namespace.clone(),
            vec![
                m.name.clone().unwrap_or_default(),
                ty,
                n.to_string(),
                age(m.creation_timestamp.as_ref(), now),
            ],
        )
    });
    namespaced_table(&["NAME", "TYPE", "DATA", "AGE"], all_namespaces, rows)
}

/// What kubectl says (on stderr) when a list is empty.
pub fn no_resources(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("No resources found in {ns} namespace."),
        None => "No resources found".into(),
    }
}

/// `-o name`: `pod/nginx`, one per line.
pub fn names(objects: &[Object]) -> String {
    objects
        .iter()
        .map(|o| format!("{}/{}\n", o.resource(), o.name()))
        .collect()
}

/// The value `-o json`/`-o yaml` print: the object itself, or for several a `List`.
pub fn output_value(objects: &[Object]) -> Value {
    if let [one] = objects {
        return one.to_value();
    }
    serde_json::json!({
        "apiVersion": "v1",
        "items": objects.iter().map(Object::to_value).collect::<Vec<_>>(),
        "kind": "List",
        "metadata": {"resourceVersion": ""},
    })
}

/// `-o json`: indented by 4 spaces as kubectl does, with a final newline.
pub fn to_json(objects: &[Object]) -> String {
    let value = output_value(objects);
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    // Serializing a Value into memory cannot fail.
    let _ = serde::Serialize::serialize(&value, &mut ser);
    let mut s = String::from_utf8(buf).unwrap_or_default();
    s.push('\n');
    s
}

/// Why YAML output failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot print YAML: {0}")]
pub struct YamlError(String);

/// `-o yaml`: keys sorted (as kubectl prints them), lists not indented under their key.
pub fn to_yaml(objects: &[Object]) -> Result<String, YamlError> {
    value_to_yaml(&output_value(objects))
}

/// Any JSON value as kubectl-style YAML.
pub fn value_to_yaml(value: &Value) -> Result<String, YamlError> {
    // Multi-line strings as `|` blocks, long single-line strings left on one line.
    let mut opts = serde_saphyr::SerializerOptions::default();
    opts.compact_list_indent = true;
    opts.folded_wrap_chars = 1 << 20;
    serde_saphyr::to_string_with_options(value, opts).map_err(|e| YamlError(e.to_string()))
}

#[cfg(test)]
mod tests;
