//! Parsing `apply -f` input: multi-document YAML (`---`), `kind: List`, or JSON (one or several
//! objects), into typed v1 objects, with unknown fields rejected as
//! `kubectl apply --validate=strict` does: `unknown field "spec.containers[0].imagee"`.
//!
//! Each document goes YAML → [`serde_json::Value`] → the k8s-openapi type, through
//! `serde_ignored` (collects the paths of fields the type does not have) and
//! `serde_path_to_error` (puts the path on type errors).

use std::fmt;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde_json::Value;

mod error;

pub use error::{Error, Errors, Location};

/// One object of a manifest.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// A `v1` Pod.
    Pod(Box<Pod>),
    /// A `v1` ConfigMap.
    ConfigMap(ConfigMap),
    /// A `v1` Secret (`stringData` is kept as given; [`Object::normalize`] folds it into `data`).
    Secret(Secret),
    /// A `v1` Namespace.
    Namespace(Namespace),
}

impl Object {
    /// The kind: `Pod`, `ConfigMap`, `Secret` or `Namespace`.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Pod(_) => "Pod",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
            Object::Namespace(_) => "Namespace",
        }
    }

    /// The lower-case resource name kubectl prints in `-o name` (`pod`, `configmap`, ...).
    pub fn resource(&self) -> &'static str {
        match self {
            Object::Pod(_) => "pod",
            Object::ConfigMap(_) => "configmap",
            Object::Secret(_) => "secret",
            Object::Namespace(_) => "namespace",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(&self) -> bool {
        !matches!(self, Object::Namespace(_))
    }

    /// The object's metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Pod(p) => &p.metadata,
            Object::ConfigMap(c) => &c.metadata,
            Object::Secret(s) => &s.metadata,
            Object::Namespace(n) => &n.metadata,
        }
    }

    /// The object's metadata, to change.
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::Pod(p) => &mut p.metadata,
            Object::ConfigMap(c) => &mut c.metadata,
            Object::Secret(s) => &mut s.metadata,
            Object::Namespace(n) => &mut n.metadata,
        }
    }

    /// `metadata.name`, or `""`.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or("")
    }

    /// The namespace: `metadata.namespace`, `default` when unset, `""` for a Namespace.
    pub fn namespace(&self) -> &str {
        if !self.namespaced() {
            return "";
        }
        self.metadata()
            .namespace
            .as_deref()
            .unwrap_or(crate::validate::DEFAULT_NAMESPACE)
    }

    /// What the API server does on create: fills in the default namespace and folds a Secret's
    /// `stringData` into `data` (stringData wins) and its `type` default `Opaque`.
    pub fn normalize(&mut self) {
        if self.namespaced() && self.metadata().namespace.is_none() {
            self.metadata_mut().namespace = Some(crate::validate::DEFAULT_NAMESPACE.to_string());
        }
        if let Object::Secret(s) = self {
            if let Some(sd) = s.string_data.take() {
                let data = s.data.get_or_insert_with(Default::default);
                for (k, v) in sd {
                    data.insert(k, k8s_openapi::ByteString(v.into_bytes()));
                }
            }
            if s.type_.is_none() {
                s.type_ = Some("Opaque".to_string());
            }
        }
    }

    /// The object as JSON, with `apiVersion` and `kind`.
    pub fn to_value(&self) -> Value {
        let v = match self {
            Object::Pod(p) => serde_json::to_value(p),
            Object::ConfigMap(c) => serde_json::to_value(c),
            Object::Secret(s) => serde_json::to_value(s),
            Object::Namespace(n) => serde_json::to_value(n),
        };
        // Serializing these types to a Value cannot fail (string keys, no non-finite floats).
        v.unwrap_or(Value::Null)
    }
}

/// Parses `apply -f` input: YAML (several documents separated by `---`) or JSON (one value or
/// several concatenated). Empty documents are skipped; a `kind: List` contributes its items.
pub fn parse(input: &str) -> Result<Vec<Object>, Errors> {
    let docs = documents(input).map_err(|e| Errors(vec![e]))?;
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        let at = Location {
            document: i,
            item: None,
        };
        match decode_document(doc, at) {
            Ok(mut objs) => objects.append(&mut objs),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(objects)
    } else {
        Err(Errors(errors))
    }
}

/// Splits the input into untyped documents.
pub fn documents(input: &str) -> Result<Vec<Value>, Error> {
    let trimmed = input.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let mut docs = Vec::new();
        for v in serde_json::Deserializer::from_str(trimmed).into_iter::<Value>() {
            docs.push(v.map_err(|e| Error::Syntax(e.to_string()))?);
        }
        return Ok(docs);
    }
    serde_saphyr::from_multiple::<Value>(input).map_err(|e| Error::Syntax(e.to_string()))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn decode_document(doc: Value, at: Location) -> Result<Vec<Object>, Vec<Error>> {
    let (api_version, kind) = type_meta(&doc, at).map_err(|e| vec![e])?;
    if api_version == "v1" && kind == "List" {
        let Value::Object(mut map) = doc else {
            return Err(vec![]);
        };
        let items = match map.remove("items") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(vec![Error::Decode {
                    at,
                    kind: "List",
                    path: "items".into(),
                    msg: format!("expected an array, found {}", type_name(&other)),
                }]);
            }
        };
        if let Some(field) = map
            .keys()
            .find(|k| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
        {
            return Err(vec![Error::UnknownFields {
                at,
                kind: "List",
                fields: vec![field.clone()],
            }]);
        }
        let mut objects = Vec::new();
        let mut errors = Vec::new();
        for (j, item) in items.into_iter().enumerate() {
            let at = Location {
                document: at.document,
                item: Some(j),
            };
            let result = type_meta(&item, at).and_then(|(v, k)| {
                if v == "v1" && k == "List" {
                    Err(Error::Unsupported {
                        at,
                        api_version: v,
                        kind: k,
                    })
                } else {
                    decode_object(item, &v, &k, at)
                }
            });
            match result {
                Ok(o) => objects.push(o),
                Err(e) => errors.push(e),
            }
        }
        return if errors.is_empty() {
            Ok(objects)
        } else {
            Err(errors)
        };
    }
    decode_object(doc, &api_version, &kind, at)
        .map(|o| vec![o])
        .map_err(|e| vec![e])
}

fn type_meta(doc: &Value, at: Location) -> Result<(String, String), Error> {
    let Value::Object(map) = doc else {
        return Err(Error::NotAnObject {
            at,
            found: type_name(doc),
        });
    };
    let get = |k: &str| map.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let (v, k) = (get("apiVersion"), get("kind"));
    let mut missing = Vec::new();
    if v.is_none() {
        missing.push("apiVersion");
    }
    if k.is_none() {
        missing.push("kind");
    }
    match (v, k) {
        (Some(v), Some(k)) => Ok((v.to_string(), k.to_string())),
        _ => Err(Error::NotSet { at, missing }),
    }
}

fn decode_object(doc: Value, api_version: &str, kind: &str, at: Location) -> Result<Object, Error> {
    if api_version != "v1" {
        return Err(Error::Unsupported {
            at,
            api_version: api_version.into(),
            kind: kind.into(),
        });
    }
    match kind {
        "Pod" => strict::<Pod>(doc, "Pod", at).map(|p| Object::Pod(Box::new(p))),
        "ConfigMap" => strict(doc, "ConfigMap", at).map(Object::ConfigMap),
        "Secret" => strict(doc, "Secret", at).map(Object::Secret),
        "Namespace" => strict(doc, "Namespace", at).map(Object::Namespace),
        _ => Err(Error::Unsupported {
            at,
            api_version: api_version.into(),
            kind: kind.into(),
        }),
    }
}

/// Decodes one value into `T`, failing on unknown fields (all of them reported) and on type
/// errors (with the path of the bad value).
pub fn strict<T: DeserializeOwned>(
    doc: Value,
    kind: &'static str,
    at: Location,
) -> Result<T, Error> {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(ignored_path(&path));
    let de = serde_ignored::Deserializer::new(doc, &mut record);
    let result: Result<T, _> = serde_path_to_error::deserialize(de);
    match result {
        Err(e) => Err(Error::Decode {
            at,
            kind,
            path: error_path(e.path()),
            msg: e.inner().to_string(),
        }),
        Ok(_) if !unknown.is_empty() => {
            unknown.sort();
            Err(Error::UnknownFields {
                at,
                kind,
                fields: unknown,
            })
        }
        Ok(v) => Ok(v),
    }
}

/// Formats a `serde_ignored` path as kubectl does: `spec.containers[0].imagee`.
fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", ignored_path(parent)),
        Path::Map { parent, key } => crate::field::child(&ignored_path(parent), key),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => ignored_path(parent),
    }
}

/// Formats a `serde_path_to_error` path the same way.
fn error_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path {
        match seg {
            Segment::Seq { index } => out = format!("{out}[{index}]"),
            Segment::Map { key } => out = crate::field::child(&out, key),
            Segment::Enum { variant } => out = crate::field::child(&out, variant),
            Segment::Unknown => {}
        }
    }
    if out.is_empty() { ".".to_string() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: nginx
    image: nginx:1.27
    ports:
    - containerPort: 80
";

    fn errors(input: &str) -> Vec<Error> {
        match parse(input) {
            Ok(o) => panic!("expected errors, got {o:?}"),
            Err(Errors(e)) => e,
        }
    }

    #[test]
    fn parses_a_pod() {
        let objs = parse(POD).unwrap();
        assert_eq!(objs.len(), 1);
        let Object::Pod(p) = &objs[0] else {
            panic!("not a pod")
        };
        assert_eq!(p.metadata.name.as_deref(), Some("web"));
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.containers[0].image.as_deref(), Some("nginx:1.27"));
        assert_eq!(
            spec.containers[0].ports.as_ref().unwrap()[0].container_port,
            80
        );
        assert_eq!(objs[0].namespace(), "default");
        assert_eq!(objs[0].kind(), "Pod");
    }

    #[test]
    fn unknown_field_path_like_kubectl() {
        let bad = POD.replace("    image:", "    imagee:");
        let e = errors(&bad);
        assert_eq!(e.len(), 1);
        match &e[0] {
            Error::UnknownFields { fields, kind, at } => {
                assert_eq!(fields, &vec!["spec.containers[0].imagee".to_string()]);
                assert_eq!(*kind, "Pod");
                assert_eq!(at.document, 0);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            e[0].to_string(),
            r#"document 0: Pod in version "v1" cannot be handled as a Pod: strict decoding error: unknown field "spec.containers[0].imagee""#
        );
    }

    #[test]
    fn every_unknown_field_is_reported() {
        let bad = format!("{POD}    foo: 1\n  bar: true\nextra: x\n");
        let e = errors(&bad);
        let Error::UnknownFields { fields, .. } = &e[0] else {
            panic!("{e:?}")
        };
        assert_eq!(fields, &["extra", "spec.bar", "spec.containers[0].foo"]);
    }

    #[test]
    fn unknown_metadata_and_nested_fields() {
        let bad = POD.replace("  name: web\n", "  name: web\n  lables: {a: b}\n")
            + "    readinessProbe:\n      httpGet: {path: /, port: 80, hots: x}\n";
        let e = errors(&bad);
        let Error::UnknownFields { fields, .. } = &e[0] else {
            panic!("{e:?}")
        };
        assert_eq!(
            fields,
            &[
                "metadata.lables",
                "spec.containers[0].readinessProbe.httpGet.hots"
            ]
        );
    }

    #[test]
    fn type_errors_carry_their_path() {
        let bad = POD.replace("containerPort: 80", "containerPort: eighty");
        let e = errors(&bad);
        let Error::Decode { path, .. } = &e[0] else {
            panic!("{e:?}")
        };
        assert_eq!(path, "spec.containers[0].ports[0].containerPort");
    }

    #[test]
    fn multi_document_and_list() {
        let input = format!(
            "---\n{POD}---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {{name: cfg}}\n  data: {{a: b}}\n- apiVersion: v1\n  kind: Namespace\n  metadata: {{name: prod}}\n---\n"
        );
        let objs = parse(&input).unwrap();
        let kinds: Vec<_> = objs.iter().map(Object::kind).collect();
        assert_eq!(kinds, ["Pod", "ConfigMap", "Namespace"]);
        assert_eq!(objs[2].namespace(), "");
    }

    #[test]
    fn unsupported_kind_names_version_kind_and_place() {
        let input =
            format!("{POD}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\n");
        let e = errors(&input);
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0],
            Error::Unsupported {
                at: Location {
                    document: 1,
                    item: None
                },
                api_version: "apps/v1".into(),
                kind: "Deployment".into()
            }
        );
        assert!(
            e[0].to_string()
                .contains(r#"no matches for kind "Deployment" in version "apps/v1""#)
        );
        let e = errors(
            "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: s}}\n",
        );
        assert_eq!(
            e[0].location(),
            Some(Location {
                document: 0,
                item: Some(0)
            })
        );
        let e = errors("apiVersion: v2\nkind: Pod\n");
        assert!(matches!(&e[0], Error::Unsupported { api_version, .. } if api_version == "v2"));
    }

    #[test]
    fn missing_type_meta() {
        let e = errors("metadata: {name: x}\n");
        assert_eq!(
            e[0].to_string(),
            "document 0: error validating data: apiVersion and kind not set"
        );
        let e = errors("apiVersion: v1\n");
        assert_eq!(
            e[0].to_string(),
            "document 0: error validating data: kind not set"
        );
        let e = errors("- a\n- b\n");
        assert!(matches!(
            e[0],
            Error::NotAnObject {
                found: "an array",
                ..
            }
        ));
    }

    #[test]
    fn json_single_and_concatenated() {
        let one =
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"},"data":{"k":"v"}}"#;
        let objs = parse(one).unwrap();
        let Object::ConfigMap(c) = &objs[0] else {
            panic!()
        };
        assert_eq!(c.data.as_ref().unwrap()["k"], "v");
        let two = format!("{one}\n{}", one.replace("\"a\"", "\"b\""));
        assert_eq!(parse(&two).unwrap().len(), 2);
        let bad = one.replace("\"data\"", "\"dta\"");
        let e = errors(&bad);
        assert!(matches!(&e[0], Error::UnknownFields { fields, .. } if fields == &["dta"]));
        assert!(matches!(
            parse("{\"a\": ").unwrap_err().0[0],
            Error::Syntax(_)
        ));
    }

    #[test]
    fn secret_data_and_string_data() {
        let input = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  user: YWRtaW4=\nstringData:\n  pass: hunter2\n";
        let mut objs = parse(input).unwrap();
        objs[0].normalize();
        let Object::Secret(s) = &objs[0] else {
            panic!()
        };
        let data = s.data.as_ref().unwrap();
        assert_eq!(data["user"].0, b"admin");
        assert_eq!(data["pass"].0, b"hunter2");
        assert!(s.string_data.is_none());
        assert_eq!(s.type_.as_deref(), Some("Opaque"));
        assert_eq!(objs[0].metadata().namespace.as_deref(), Some("default"));
        let e = errors("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  user: '***'\n");
        assert!(
            matches!(&e[0], Error::Decode { path, .. } if path == "data.user"),
            "{e:?}"
        );
    }

    #[test]
    fn yaml_syntax_error_and_empty_input() {
        assert!(matches!(
            parse("a: [b\n").unwrap_err().0[0],
            Error::Syntax(_)
        ));
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(parse("---\n---\n").unwrap(), vec![]);
    }

    #[test]
    fn all_documents_are_checked() {
        let input = format!(
            "{}---\n{}",
            POD.replace("image:", "imag:"),
            POD.replace("name: nginx", "nme: nginx")
        );
        let e = errors(&input);
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].location().unwrap().document, 1);
    }
}

#[cfg(test)]
mod yaml11_tests {
    use super::*;

    /// kubectl's YAML reader (go-yaml v2) reads `y`, `n`, `yes`, `on` as booleans, so a string
    /// field written that way is refused; serde-saphyr agrees, so the same manifests fail.
    #[test]
    fn yaml_1_1_booleans_are_not_strings() {
        let e = parse("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: yes}\n")
            .unwrap_err();
        assert!(
            matches!(&e.0[0], Error::Decode { path, .. } if path == "data.a"),
            "{e:?}"
        );
        assert!(
            parse("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: 'yes'}\n")
                .is_ok()
        );
    }
}
