//! Kubernetes-style validation before anything is created: every field error is collected, not
//! just the first, and each is formatted as the API server formats it
//! (`spec.containers[1].name: Duplicate value: "web"`).
//!
//! References to ConfigMaps and Secrets (env, envFrom, volumes) that are not `optional` are
//! checked through [`Objects`], so objects in the same apply batch count.

mod data;
pub mod names;
mod pod;

pub use data::{config_map, namespace, secret};
pub use pod::{pod, subscript};

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::field::{FieldError, FieldErrors, child};
use crate::manifest::Object;
use crate::objects::Objects;

/// The namespace of objects that name none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Most bytes of all annotations of one object.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// Validates any object; `Err` carries all of its field errors.
pub fn object(obj: &Object, objects: &dyn Objects) -> Result<(), FieldErrors> {
    let errors = match obj {
        Object::Pod(p) => pod(p, objects),
        Object::ConfigMap(c) => config_map(c),
        Object::Secret(s) => secret(s),
        Object::Namespace(n) => namespace(n),
    };
    if errors.is_empty() {
        Ok(())
    } else {
        Err(FieldErrors {
            kind: obj.kind().to_string(),
            name: obj.name().to_string(),
            errors,
        })
    }
}

/// Which name rule `metadata.name` follows.
#[derive(Clone, Copy)]
pub(crate) enum NameRule {
    Subdomain,
    Label,
}

/// `metadata`: name, namespace (for namespaced kinds), labels, annotations.
pub(crate) fn metadata(
    meta: &ObjectMeta,
    rule: NameRule,
    namespaced: bool,
    errs: &mut Vec<FieldError>,
) {
    match meta.name.as_deref() {
        None | Some("") => errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )),
        Some(name) => {
            let msgs = match rule {
                NameRule::Subdomain => names::dns1123_subdomain(name),
                NameRule::Label => names::dns1123_label(name),
            };
            for m in msgs {
                errs.push(FieldError::invalid("metadata.name", name, &m));
            }
        }
    }
    if namespaced {
        if let Some(ns) = meta.namespace.as_deref().filter(|n| !n.is_empty()) {
            for m in names::dns1123_label(ns) {
                errs.push(FieldError::invalid("metadata.namespace", ns, &m));
            }
        }
    } else if meta.namespace.as_deref().is_some_and(|n| !n.is_empty()) {
        errs.push(FieldError::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    labels(meta.labels.as_ref(), "metadata.labels", errs);
    annotations(meta.annotations.as_ref(), "metadata.annotations", errs);
}

/// Label keys (qualified names) and values.
pub(crate) fn labels(
    map: Option<&BTreeMap<String, String>>,
    path: &str,
    errs: &mut Vec<FieldError>,
) {
    for (k, v) in map.into_iter().flatten() {
        for m in names::qualified_name(k) {
            errs.push(FieldError::invalid(path, k, &m));
        }
        for m in names::label_value(v) {
            errs.push(FieldError::invalid(path, v, &m));
        }
    }
}

fn annotations(map: Option<&BTreeMap<String, String>>, path: &str, errs: &mut Vec<FieldError>) {
    let mut total = 0;
    for (k, v) in map.into_iter().flatten() {
        for m in names::qualified_name(&k.to_lowercase()) {
            errs.push(FieldError::invalid(path, k, &m));
        }
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
}

/// Pushes one `Invalid value` error per message.
pub(crate) fn each(errs: &mut Vec<FieldError>, path: &str, value: &str, msgs: Vec<String>) {
    for m in msgs {
        errs.push(FieldError::invalid(path, value, &m));
    }
}

/// `path.name`.
pub(crate) fn at(path: &str, name: &str) -> String {
    child(path, name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::parse;
    use crate::objects::NoObjects;

    #[test]
    fn metadata_errors_are_all_collected() {
        let objs = parse(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Foo_\n  namespace: Prod\n  labels: {'a b': 'c d'}\n  annotations: {'x/y/z': v}\n",
        )
        .unwrap();
        let e = object(&objs[0], &NoObjects).unwrap_err();
        let text: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 5, "{text:#?}");
        assert!(text[0].starts_with(r#"metadata.name: Invalid value: "Foo_": a lowercase RFC 1123 subdomain must consist of"#));
        assert!(text[1].starts_with(
            r#"metadata.namespace: Invalid value: "Prod": a lowercase RFC 1123 label"#
        ));
        assert!(
            text[2].starts_with(r#"metadata.labels: Invalid value: "a b": name part must consist"#)
        );
        assert!(
            text[3].starts_with(r#"metadata.labels: Invalid value: "c d": a valid label must be"#)
        );
        assert!(
            text[4]
                .starts_with(r#"metadata.annotations: Invalid value: "x/y/z": a qualified name"#)
        );
        assert!(
            e.to_string()
                .starts_with(r#"ConfigMap "Foo_" is invalid: [metadata.name: "#)
        );
    }

    #[test]
    fn missing_name_and_big_annotations() {
        let mut errs = Vec::new();
        let meta = ObjectMeta {
            annotations: Some([("a".to_string(), "x".repeat(TOTAL_ANNOTATION_SIZE_LIMIT))].into()),
            ..Default::default()
        };
        metadata(&meta, NameRule::Subdomain, true, &mut errs);
        assert_eq!(
            errs[0].to_string(),
            "metadata.name: Required value: name or generateName is required"
        );
        assert_eq!(
            errs[1].to_string(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
    }
}
