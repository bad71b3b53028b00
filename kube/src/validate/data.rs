//! ConfigMap, Secret and Namespace validation.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};

use super::{NameRule, each, metadata, names};
use crate::field::{FieldError, key};

/// Most bytes of data in one ConfigMap or Secret.
pub const MAX_DATA_SIZE: usize = 1024 * 1024;

/// A ConfigMap: name, keys of `data` and `binaryData` (valid, not in both), total size.
pub fn config_map(cm: &ConfigMap) -> Vec<FieldError> {
    let mut errs = Vec::new();
    metadata(&cm.metadata, NameRule::Subdomain, true, &mut errs);
    let mut size = 0;
    for (k, v) in cm.data.iter().flatten() {
        each(&mut errs, "data", k, names::config_map_key(k));
        size += v.len();
    }
    for (k, v) in cm.binary_data.iter().flatten() {
        each(&mut errs, "binaryData", k, names::config_map_key(k));
        if cm.data.as_ref().is_some_and(|d| d.contains_key(k)) {
            errs.push(FieldError::invalid(
                &key("data", k),
                k,
                "duplicate of key present in binaryData",
            ));
        }
        size += v.0.len();
    }
    if size > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("data", MAX_DATA_SIZE));
    }
    errs
}

/// Secret types with required keys.
const TYPED_KEYS: &[(&str, &[&str])] = &[
    ("kubernetes.io/dockerconfigjson", &[".dockerconfigjson"]),
    ("kubernetes.io/dockercfg", &[".dockercfg"]),
    ("kubernetes.io/tls", &["tls.crt", "tls.key"]),
    ("kubernetes.io/ssh-auth", &["ssh-privatekey"]),
];

/// A Secret: name, keys of `data` and `stringData`, total size, the keys its `type` requires.
pub fn secret(s: &Secret) -> Vec<FieldError> {
    let mut errs = Vec::new();
    metadata(&s.metadata, NameRule::Subdomain, true, &mut errs);
    let mut size = 0;
    for (k, v) in s.data.iter().flatten() {
        each(&mut errs, &key("data", k), k, names::config_map_key(k));
        size += v.0.len();
    }
    for (k, v) in s.string_data.iter().flatten() {
        each(
            &mut errs,
            &key("stringData", k),
            k,
            names::config_map_key(k),
        );
        size += v.len();
    }
    if size > MAX_DATA_SIZE {
        errs.push(FieldError::too_long("data", MAX_DATA_SIZE));
    }
    let ty = s.type_.as_deref().unwrap_or("Opaque");
    if let Some((_, required)) = TYPED_KEYS.iter().find(|(t, _)| *t == ty) {
        for k in *required {
            let has = s.data.as_ref().is_some_and(|d| d.contains_key(*k))
                || s.string_data.as_ref().is_some_and(|d| d.contains_key(*k));
            if !has {
                errs.push(FieldError::required(&key("data", k), ""));
            }
        }
    }
    if ty == "kubernetes.io/basic-auth" {
        let has = |k: &str| {
            s.data.as_ref().is_some_and(|d| d.contains_key(k))
                || s.string_data.as_ref().is_some_and(|d| d.contains_key(k))
        };
        if !has("username") && !has("password") {
            errs.push(FieldError::required(&key("data", "username"), ""));
        }
    }
    errs
}

/// A Namespace: its name is a DNS-1123 label.
pub fn namespace(ns: &Namespace) -> Vec<FieldError> {
    let mut errs = Vec::new();
    metadata(&ns.metadata, NameRule::Label, false, &mut errs);
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Object, parse};

    fn one(yaml: &str) -> Vec<String> {
        let objs = parse(yaml).unwrap();
        let errs = match &objs[0] {
            Object::ConfigMap(c) => config_map(c),
            Object::Secret(s) => secret(s),
            Object::Namespace(n) => namespace(n),
            Object::Pod(_) => panic!(),
        };
        errs.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn config_map_keys() {
        assert!(
            one("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\ndata: {a.b: x, C_D: z}\n")
                .is_empty()
        );
        let e = one(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {'bad key': x, k: v}\nbinaryData: {k: eA==}\n",
        );
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].starts_with(r#"data: Invalid value: "bad key": a valid config key must consist"#)
        );
        assert_eq!(
            e[1],
            r#"data[k]: Invalid value: "k": duplicate of key present in binaryData"#
        );
    }

    #[test]
    fn secret_keys_and_types() {
        let e = one("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {'a/b': x}\n");
        assert!(
            e[0].starts_with(r#"stringData[a/b]: Invalid value: "a/b""#),
            "{e:?}"
        );
        let e = one(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\nstringData: {tls.crt: x}\n",
        );
        assert_eq!(e, vec!["data[tls.key]: Required value"]);
        let e = one(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/dockerconfigjson\n",
        );
        assert_eq!(e, vec!["data[.dockerconfigjson]: Required value"]);
    }

    #[test]
    fn namespace_names_are_labels() {
        assert!(one("apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n").is_empty());
        let e = one("apiVersion: v1\nkind: Namespace\nmetadata: {name: a.b}\n");
        assert!(
            e[0].starts_with(r#"metadata.name: Invalid value: "a.b": a lowercase RFC 1123 label"#)
        );
    }
}
