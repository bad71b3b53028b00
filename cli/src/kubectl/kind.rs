//! Resource names as kubectl takes them (`pods`, `pod`, `po`, `cm`, `ns`, `pod/web`) and
//! prints them (`pod/web`, `pods "web"`).

use super::KubeError;

/// The kinds the pod manager serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pod,
    ConfigMap,
    Secret,
    Namespace,
}

impl Kind {
    /// Parses a resource name, plural, singular or short, any case.
    pub fn parse(text: &str) -> Result<Kind, KubeError> {
        use corral_kube::store::Kind as K;
        Ok(match K::parse(text) {
            Some(K::Pod) => Kind::Pod,
            Some(K::ConfigMap) => Kind::ConfigMap,
            Some(K::Secret) => Kind::Secret,
            Some(K::Namespace) => Kind::Namespace,
            None => {
                return Err(KubeError::local(format!(
                    "the server doesn't have a resource type \"{text}\""
                )));
            }
        })
    }

    /// Parses `TYPE` or `TYPE/NAME`.
    pub fn parse_ref(text: &str) -> Result<(Kind, Option<String>), KubeError> {
        match text.split_once('/') {
            Some((kind, name)) if !name.is_empty() => Ok((Kind::parse(kind)?, Some(name.into()))),
            Some(_) => Err(KubeError::local(format!(
                "arguments in resource/name form must have a single resource and name: {text:?}"
            ))),
            None => Ok((Kind::parse(text)?, None)),
        }
    }

    /// The `kind` the API uses (and `GetRequest.kind` takes).
    pub fn api_kind(self) -> &'static str {
        match self {
            Kind::Pod => "Pod",
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
            Kind::Namespace => "Namespace",
        }
    }

    /// `pod`, as in `pod/web created`.
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Pod => "pod",
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
            Kind::Namespace => "namespace",
        }
    }

    /// `pods`, as in `pods "web" not found`.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Pod => "pods",
            Kind::ConfigMap => "configmaps",
            Kind::Secret => "secrets",
            Kind::Namespace => "namespaces",
        }
    }

    /// Whether objects of the kind live in a namespace.
    pub fn namespaced(self) -> bool {
        self != Kind::Namespace
    }
}

/// The singular resource name for a kind as the server reports it (`Pod` → `pod`); unknown
/// kinds are lower-cased.
pub fn singular_of(api_kind: &str) -> String {
    Kind::parse(api_kind)
        .map(|k| k.singular().to_string())
        .unwrap_or_else(|_| api_kind.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_short_names() {
        for t in ["pods", "pod", "po", "Pod", "PODS"] {
            assert_eq!(Kind::parse(t).expect(t), Kind::Pod);
        }
        assert_eq!(Kind::parse("cm").expect("cm"), Kind::ConfigMap);
        assert_eq!(Kind::parse("ns").expect("ns"), Kind::Namespace);
        assert_eq!(Kind::parse("secret").expect("secret"), Kind::Secret);
        assert_eq!(
            Kind::parse("deploy").expect_err("deploy").to_string(),
            "error: the server doesn't have a resource type \"deploy\""
        );
        assert_eq!(
            Kind::parse_ref("pod/web").expect("ref"),
            (Kind::Pod, Some("web".into()))
        );
        assert_eq!(Kind::parse_ref("pods").expect("ref"), (Kind::Pod, None));
        assert!(Kind::parse_ref("pod/").is_err());
        assert_eq!(singular_of("ConfigMap"), "configmap");
        assert_eq!(singular_of("Widget"), "widget");
    }
}
