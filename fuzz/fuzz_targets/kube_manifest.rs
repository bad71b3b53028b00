//! `apply -f` input: Pod, ConfigMap, Secret and Namespace manifests in YAML (several documents)
//! or JSON, through kube's `manifest::parse` and then `validate::object`, with the parsed
//! ConfigMaps and Secrets as the objects a Pod may refer to.
#![no_main]

use corral_kube::k8s_openapi::api::core::v1::{ConfigMap, Secret};
use corral_kube::{Object, Objects};
use libfuzzer_sys::fuzz_target;

/// The objects of the same input, as `apply -f` sees them.
struct Input<'a>(&'a [Object]);

impl Objects for Input<'_> {
    fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMap> {
        self.0.iter().find_map(|o| match o {
            Object::ConfigMap(c) if o.namespace() == namespace && o.name() == name => Some(c),
            _ => None,
        })
    }
    fn secret(&self, namespace: &str, name: &str) -> Option<&Secret> {
        self.0.iter().find_map(|o| match o {
            Object::Secret(s) if o.namespace() == namespace && o.name() == name => Some(s),
            _ => None,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut objects) = corral_kube::parse(text) else {
        return;
    };
    for o in &mut objects {
        o.normalize();
    }
    for o in &objects {
        let _ = corral_kube::validate::object(o, &Input(&objects));
        let _ = o.to_value();
    }
});
