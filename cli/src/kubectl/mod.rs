//! kubectl-style verbs for Corral's pod manager (`corral.v1.KubeService` on the daemon
//! socket): `apply`, `create -f`, `run NAME --image`, `get`, `describe`, `delete`, `label`, and
//! the pod-name forms of `logs`, `exec` and `port-forward`.
//!
//! One idea per module: [`kind`] names resources, [`errors`] prints failures as kubectl does,
//! [`files`] collects `-f` inputs, [`route`] tells the crictl and kubectl forms of `create` and
//! `run` apart, [`pod_target`] turns a pod name into container and sandbox ids, [`tabwriter`]
//! aligns `describe`, and one module per verb.

pub mod apply;
pub mod delete;
pub mod describe;
pub mod errors;
pub mod files;
pub mod get;
pub mod kind;
pub mod label;
pub mod pod_target;
pub mod route;
pub mod tabwriter;

use corral_kube::Object;
use corral_kube::k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use corral_kube::k8s_openapi::jiff::Timestamp;

pub use errors::KubeError;

/// The namespace `-n` means when not given.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The current time, for ages.
pub fn now() -> Timestamp {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(since.as_secs()).unwrap_or(i64::MAX);
    Timestamp::new(secs, 0).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Decodes one object as the server sends it (Kubernetes JSON), by its `kind`; unknown fields
/// are ignored, as kubectl ignores them when printing.
pub fn decode(bytes: &[u8]) -> Result<Object, KubeError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        KubeError::local(format!("the server sent an object that is not JSON: {e}"))
    })?;
    let kind = value
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or_default()
        .to_string();
    let bad = |e: serde_json::Error| {
        KubeError::local(format!(
            "the server sent a {kind} that does not decode: {e}"
        ))
    };
    Ok(match kind.as_str() {
        "Pod" => Object::Pod(Box::new(serde_json::from_value::<Pod>(value).map_err(bad)?)),
        "ConfigMap" => Object::ConfigMap(serde_json::from_value::<ConfigMap>(value).map_err(bad)?),
        "Secret" => Object::Secret(serde_json::from_value::<Secret>(value).map_err(bad)?),
        "Namespace" => Object::Namespace(serde_json::from_value::<Namespace>(value).map_err(bad)?),
        other => {
            return Err(KubeError::local(format!(
                "the server sent an object of unknown kind {other:?}"
            )));
        }
    })
}

/// The namespace a command works in: `-n`, or `default`.
pub fn namespace_or_default(ns: Option<&str>) -> String {
    ns.filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_by_kind_and_ignores_unknown_fields() {
        let pod =
            decode(br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"extra":1}"#)
                .expect("pod");
        assert_eq!(pod.name(), "web");
        assert_eq!(pod.kind(), "Pod");
        let ns = decode(br#"{"kind":"Namespace","metadata":{"name":"dev"}}"#).expect("ns");
        assert_eq!(ns.kind(), "Namespace");
        assert!(decode(br#"{"kind":"Deployment"}"#).is_err());
        assert!(decode(b"not json").is_err());
    }
}
