//! A container's environment the way the kubelet builds it (`makeEnvironmentVariables`):
//! `envFrom` sources first (with `prefix`; keys that are not valid names are skipped and
//! reported), then `env` in order. A literal `value` expands `$(VAR)` against what is defined
//! so far (`$$` escapes, unknown references stay as written); `valueFrom` reads the downward
//! API, the container's resources, or a ConfigMap or Secret key. Then `command` and `args` are
//! expanded against the finished environment.
//!
//! The kubelet keeps the result in a map (so the runtime sees it in no particular order); here
//! a name keeps the position where it was first defined and takes its last value.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};

use crate::objects::Objects;
use crate::quantity::{self, Quantity};
use crate::validate::{DEFAULT_NAMESPACE, names};

/// What the kubelet knows about where a pod runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodContext {
    /// The pod's IPs, primary first (`status.podIP`, `status.podIPs`).
    pub pod_ips: Vec<String>,
    /// The node's IPs, primary first (`status.hostIP`, `status.hostIPs`).
    pub host_ips: Vec<String>,
    /// The node's name (`spec.nodeName` when the pod names none).
    pub node_name: String,
    /// The node's allocatable resources (`cpu`, `memory`, `ephemeral-storage`): what a
    /// `limits.*` reference gives when the container has no such limit.
    pub node_allocatable: BTreeMap<String, Quantity>,
}

/// Why a container's environment cannot be built (the kubelet then reports
/// `CreateContainerConfigError` with this message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A ConfigMap that is not there and not optional.
    #[error("configmap {name:?} not found")]
    ConfigMapNotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A Secret that is not there and not optional.
    #[error("secret {name:?} not found")]
    SecretNotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A key missing from a ConfigMap.
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Key.
        key: String,
    },
    /// A key missing from a Secret.
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Key.
        key: String,
    },
    /// A `fieldRef.fieldPath` the kubelet does not serve.
    #[error("unsupported fieldPath: {0}")]
    UnsupportedFieldPath(String),
    /// A `resourceFieldRef.resource` the kubelet does not serve.
    #[error("unsupported container resource : {0}")]
    UnsupportedResource(String),
    /// `resourceFieldRef.containerName` names no container of the pod.
    #[error("container {0:?} not found in pod")]
    ContainerNotFound(String),
    /// A divisor that does not parse or is not positive.
    #[error("invalid divisor {0:?}")]
    Divisor(String),
}

/// A built environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// `(name, value)` in definition order.
    pub vars: Vec<(String, String)>,
    /// Warnings for keys of `envFrom` sources skipped as invalid names, one per source, worded
    /// as the kubelet's `InvalidEnvironmentVariableNames` event.
    pub skipped: Vec<String>,
}

impl Environment {
    fn set(&mut self, name: String, value: String) {
        match self.vars.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((name, value)),
        }
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Builds the environment of `container` (one of `pod`'s containers or init containers).
pub fn environment(
    pod: &Pod,
    container: &Container,
    ctx: &PodContext,
    objects: &dyn Objects,
) -> Result<Environment, EnvError> {
    let ns = pod
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(DEFAULT_NAMESPACE);
    let mut env = Environment::default();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        let (kind, name, pairs): (&str, &str, Vec<(String, String)>) =
            if let Some(r) = &from.config_map_ref {
                match objects.config_map(ns, &r.name) {
                    Some(cm) => (
                        "configMap",
                        &r.name,
                        cm.data.clone().unwrap_or_default().into_iter().collect(),
                    ),
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(EnvError::ConfigMapNotFound {
                            namespace: ns.into(),
                            name: r.name.clone(),
                        });
                    }
                }
            } else if let Some(r) = &from.secret_ref {
                match objects.secret(ns, &r.name) {
                    Some(s) => (
                        "secret",
                        &r.name,
                        s.data
                            .iter()
                            .flatten()
                            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
                            .collect(),
                    ),
                    None if r.optional == Some(true) => continue,
                    None => {
                        return Err(EnvError::SecretNotFound {
                            namespace: ns.into(),
                            name: r.name.clone(),
                        });
                    }
                }
            } else {
                continue;
            };
        let mut invalid = Vec::new();
        for (k, v) in pairs {
            let key = format!("{prefix}{k}");
            if !names::env_var_name(&key).is_empty() {
                invalid.push(key);
                continue;
            }
            env.set(key, v);
        }
        if !invalid.is_empty() {
            invalid.sort();
            env.skipped.push(format!(
                "Keys [{}] from the EnvFrom {kind} {ns}/{name} were skipped since they are considered invalid environment variable names.",
                invalid.join(", ")
            ));
        }
    }
    for var in container.env.iter().flatten() {
        if let Some(value) = var_value(var, pod, container, ctx, objects, ns, &env)? {
            env.set(var.name.clone(), value);
        }
    }
    Ok(env)
}

/// One `env` entry's value; `None` when an optional reference is missing (the variable is
/// then not set at all).
fn var_value(
    var: &EnvVar,
    pod: &Pod,
    container: &Container,
    ctx: &PodContext,
    objects: &dyn Objects,
    ns: &str,
    env: &Environment,
) -> Result<Option<String>, EnvError> {
    if let Some(v) = var.value.as_deref().filter(|v| !v.is_empty()) {
        return Ok(Some(expand(v, |name| env.get(name).map(str::to_string))));
    }
    let Some(from) = &var.value_from else {
        return Ok(Some(String::new()));
    };
    if let Some(f) = &from.field_ref {
        return field_value(&f.field_path, pod, ctx).map(Some);
    }
    if let Some(r) = &from.resource_field_ref {
        let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
            None => container,
            Some(name) => {
                find_container(pod, name).ok_or_else(|| EnvError::ContainerNotFound(name.into()))?
            }
        };
        let divisor = r.divisor.as_ref().map(|d| d.0.as_str());
        return resource_value(&r.resource, divisor, target, ctx).map(Some);
    }
    if let Some(r) = &from.config_map_key_ref {
        let optional = r.optional == Some(true);
        let Some(cm) = objects.config_map(ns, &r.name) else {
            return if optional {
                Ok(None)
            } else {
                Err(EnvError::ConfigMapNotFound {
                    namespace: ns.into(),
                    name: r.name.clone(),
                })
            };
        };
        return match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(EnvError::ConfigMapKeyNotFound {
                namespace: ns.into(),
                name: r.name.clone(),
                key: r.key.clone(),
            }),
        };
    }
    if let Some(r) = &from.secret_key_ref {
        let optional = r.optional == Some(true);
        let Some(s) = objects.secret(ns, &r.name) else {
            return if optional {
                Ok(None)
            } else {
                Err(EnvError::SecretNotFound {
                    namespace: ns.into(),
                    name: r.name.clone(),
                })
            };
        };
        return match s.data.as_ref().and_then(|d| d.get(&r.key)) {
            Some(v) => Ok(Some(String::from_utf8_lossy(&v.0).into_owned())),
            None if optional => Ok(None),
            None => Err(EnvError::SecretKeyNotFound {
                namespace: ns.into(),
                name: r.name.clone(),
                key: r.key.clone(),
            }),
        };
    }
    Ok(Some(String::new()))
}

fn find_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

/// The downward API's value for `fieldPath` (`metadata.name`, `metadata.labels['k']`,
/// `status.podIP`, ...).
pub fn field_value(path: &str, pod: &Pod, ctx: &PodContext) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let from_map = |m: &Option<BTreeMap<String, String>>, k: &str| {
        m.as_ref()
            .and_then(|m| m.get(k))
            .cloned()
            .unwrap_or_default()
    };
    if let Some(k) = crate::validate::subscript(path, "metadata.labels") {
        return Ok(from_map(&meta.labels, k));
    }
    if let Some(k) = crate::validate::subscript(path, "metadata.annotations") {
        return Ok(from_map(&meta.annotations, k));
    }
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.into()),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| ctx.node_name.clone()),
        // The ServiceAccount admission plugin gives every pod `default` when it names none.
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into()),
        "status.podIP" => ctx.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => ctx.pod_ips.join(","),
        "status.hostIP" => ctx.host_ips.first().cloned().unwrap_or_default(),
        "status.hostIPs" => ctx.host_ips.join(","),
        other => return Err(EnvError::UnsupportedFieldPath(other.into())),
    })
}

/// A container's resource as a `resourceFieldRef` gives it: limits fall back to the node's
/// allocatable, requests default to limits; the value divided by `divisor` (default `1`) and
/// rounded up (cpu in millicores first).
pub fn resource_value(
    resource: &str,
    divisor: Option<&str>,
    container: &Container,
    ctx: &PodContext,
) -> Result<String, EnvError> {
    let (which, name) = resource
        .split_once('.')
        .ok_or_else(|| EnvError::UnsupportedResource(resource.into()))?;
    if !matches!(name, "cpu" | "memory" | "ephemeral-storage")
        || !matches!(which, "limits" | "requests")
    {
        return Err(EnvError::UnsupportedResource(resource.into()));
    }
    let mut limits = quantity::limits(container);
    for (k, v) in &ctx.node_allocatable {
        limits.entry(k.clone()).or_insert(*v);
    }
    let value = if which == "limits" {
        limits.get(name).copied()
    } else {
        quantity::requests(container).get(name).copied()
    }
    .unwrap_or_default();
    let divisor_text = divisor.unwrap_or("1");
    let d = Quantity::parse(divisor_text)
        .ok()
        .filter(|d| *d > Quantity::ZERO)
        .ok_or_else(|| EnvError::Divisor(divisor_text.into()))?;
    let (num, den) = if name == "cpu" {
        (value.milli_value(), d.milli_value())
    } else {
        (value.value(), d.value())
    };
    if den == 0 {
        return Err(EnvError::Divisor(divisor_text.into()));
    }
    let q = num / den + i64::from(num % den != 0 && (num > 0) == (den > 0));
    Ok(q.to_string())
}

/// Expands `$(VAR)` in `input` as the kubelet does: `$$` is a literal `$`, `$(NAME)` is
/// replaced by `lookup(NAME)` or left as written when unknown, an unclosed `$(` and a `$`
/// before anything else stay as they are.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let Some(next) = after.chars().next() else {
            out.push('$');
            rest = after;
            break;
        };
        match next {
            '$' => {
                out.push('$');
                rest = &after[1..];
            }
            '(' => match after.find(')') {
                Some(end) => {
                    let name = &after[1..end];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            c => {
                out.push('$');
                out.push(c);
                rest = &after[c.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `command` and `args` with `$(VAR)` expanded against the container's environment.
pub fn command_and_args(container: &Container, env: &Environment) -> (Vec<String>, Vec<String>) {
    let map: BTreeMap<&str, &str> = env
        .vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let lookup = |n: &str| map.get(n).map(|v| v.to_string());
    let all = |v: &Option<Vec<String>>| v.iter().flatten().map(|s| expand(s, lookup)).collect();
    (all(&container.command), all(&container.args))
}

#[cfg(test)]
mod tests;
