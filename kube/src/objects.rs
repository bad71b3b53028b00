//! Looking up the ConfigMaps and Secrets a pod refers to.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};

/// Answers reference lookups for validation and environment building. The apply batch (objects
/// in the same file count) and the store both implement it; [`Layered`] puts one over the other.
pub trait Objects {
    /// The ConfigMap `namespace/name`, if it exists.
    fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMap>;
    /// The Secret `namespace/name`, if it exists.
    fn secret(&self, namespace: &str, name: &str) -> Option<&Secret>;
}

/// No objects at all.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObjects;

impl Objects for NoObjects {
    fn config_map(&self, _: &str, _: &str) -> Option<&ConfigMap> {
        None
    }
    fn secret(&self, _: &str, _: &str) -> Option<&Secret> {
        None
    }
}

/// ConfigMaps and Secrets held in memory, e.g. the objects of one `apply -f` batch.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// The ConfigMaps.
    pub config_maps: Vec<ConfigMap>,
    /// The Secrets.
    pub secrets: Vec<Secret>,
}

fn matches(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    ns: &str,
    name: &str,
) -> bool {
    meta.name.as_deref() == Some(name) && meta.namespace.as_deref().unwrap_or("default") == ns
}

impl Objects for Batch {
    fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMap> {
        self.config_maps
            .iter()
            .find(|c| matches(&c.metadata, namespace, name))
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<&Secret> {
        self.secrets
            .iter()
            .find(|s| matches(&s.metadata, namespace, name))
    }
}

/// Looks in `top` first, then in `bottom` (the batch over the store).
#[derive(Debug, Clone, Copy)]
pub struct Layered<'a, A: ?Sized, B: ?Sized> {
    /// Asked first.
    pub top: &'a A,
    /// Asked when `top` does not know the object.
    pub bottom: &'a B,
}

impl<A: Objects + ?Sized, B: Objects + ?Sized> Objects for Layered<'_, A, B> {
    fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMap> {
        self.top
            .config_map(namespace, name)
            .or_else(|| self.bottom.config_map(namespace, name))
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<&Secret> {
        self.top
            .secret(namespace, name)
            .or_else(|| self.bottom.secret(namespace, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn cm(ns: Option<&str>, name: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: ns.map(Into::into),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn batch_defaults_namespace_and_layers() {
        let top = Batch {
            config_maps: vec![cm(None, "a")],
            secrets: vec![],
        };
        let bottom = Batch {
            config_maps: vec![cm(Some("prod"), "b")],
            secrets: vec![],
        };
        assert!(top.config_map("default", "a").is_some());
        assert!(top.config_map("prod", "a").is_none());
        let both = Layered {
            top: &top,
            bottom: &bottom,
        };
        assert!(both.config_map("prod", "b").is_some());
        assert!(both.config_map("default", "a").is_some());
        assert!(both.secret("default", "a").is_none());
        assert!(NoObjects.config_map("default", "a").is_none());
    }
}
