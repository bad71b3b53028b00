//! Pod validation: the checks the API server makes on create, plus the references to
//! ConfigMaps and Secrets a kubelet would fail on later (checked now, through [`Objects`]).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Volume};

use super::{DEFAULT_NAMESPACE, NameRule, at, each, labels, metadata, names};
use crate::field::{FieldError, index};
use crate::objects::Objects;
use crate::quantity::Quantity;

/// Restart policies.
pub const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
/// DNS policies.
pub const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
/// `hostPath.type` values (`""` means no check).
pub const HOST_PATH_TYPES: &[&str] = &[
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
];
/// Port protocols.
pub const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
/// Pull policies.
pub const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
/// `fieldRef.fieldPath` values besides `metadata.labels['k']` and `metadata.annotations['k']`.
pub const FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
/// `resourceFieldRef.resource` values.
pub const RESOURCE_FIELDS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// Validates a pod; references are looked up in `objects` (the pod's namespace, `default` when
/// unset). Returns every error found.
pub fn pod(pod: &Pod, objects: &dyn Objects) -> Vec<FieldError> {
    let mut errs = Vec::new();
    metadata(&pod.metadata, NameRule::Subdomain, true, &mut errs);
    let ns = pod
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(DEFAULT_NAMESPACE);
    let Some(spec) = pod.spec.as_ref() else {
        errs.push(FieldError::required("spec", ""));
        return errs;
    };
    let mut v = PodCheck {
        spec,
        ns,
        objects,
        errs,
    };
    v.spec();
    v.errs
}

struct PodCheck<'a> {
    spec: &'a PodSpec,
    ns: &'a str,
    objects: &'a dyn Objects,
    errs: Vec<FieldError>,
}

fn count_set(v: &impl serde::Serialize, except: &[&str]) -> Vec<String> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::Object(m)) => m
            .into_iter()
            .filter(|(k, v)| !v.is_null() && !except.contains(&k.as_str()))
            .map(|(k, _)| k)
            .collect(),
        _ => Vec::new(),
    }
}

impl PodCheck<'_> {
    fn push(&mut self, e: FieldError) {
        self.errs.push(e);
    }

    fn spec(&mut self) {
        let spec = self.spec;
        let volumes = self.volumes();
        self.pod_security(spec.security_context.as_ref());
        if spec.containers.is_empty() {
            self.push(FieldError::required("spec.containers", ""));
        }
        let mut seen = BTreeSet::new();
        for (i, c) in spec.init_containers.iter().flatten().enumerate() {
            self.container(
                c,
                &index("spec.initContainers", i),
                &volumes,
                &mut seen,
                true,
            );
        }
        for (i, c) in spec.containers.iter().enumerate() {
            self.container(c, &index("spec.containers", i), &volumes, &mut seen, false);
        }
        if let Some(p) = spec.restart_policy.as_deref()
            && !RESTART_POLICIES.contains(&p)
        {
            self.push(FieldError::not_supported(
                "spec.restartPolicy",
                p,
                RESTART_POLICIES,
            ));
        }
        match spec.dns_policy.as_deref() {
            Some(p) if !DNS_POLICIES.contains(&p) => {
                self.push(FieldError::not_supported("spec.dnsPolicy", p, DNS_POLICIES));
            }
            Some("None") if spec.dns_config.is_none() => self.push(FieldError::required(
                "spec.dnsConfig",
                "must provide `dnsConfig` when `dnsPolicy` is None",
            )),
            Some("None") => {
                let n = spec
                    .dns_config
                    .as_ref()
                    .and_then(|d| d.nameservers.as_ref())
                    .map_or(0, Vec::len);
                if n == 0 {
                    self.push(FieldError::required(
                        "spec.dnsConfig.nameservers",
                        "must provide at least one DNS nameserver when `dnsPolicy` is None",
                    ));
                }
            }
            _ => {}
        }
        if let Some(d) = &spec.dns_config {
            let n = d.nameservers.as_ref().map_or(0, Vec::len);
            if n > 3 {
                self.push(FieldError::invalid(
                    "spec.dnsConfig.nameservers",
                    n.to_string(),
                    "must not have more than 3 nameservers",
                ));
            }
            for (i, s) in d.nameservers.iter().flatten().enumerate() {
                if s.parse::<std::net::IpAddr>().is_err() {
                    self.push(FieldError::invalid(
                        &index("spec.dnsConfig.nameservers", i),
                        s,
                        "must be a valid IP address",
                    ));
                }
            }
        }
        if let Some(a) = spec.active_deadline_seconds
            && !(1..=i64::from(i32::MAX)).contains(&a)
        {
            self.push(FieldError::invalid(
                "spec.activeDeadlineSeconds",
                a,
                "must be between 1 and 2147483647, inclusive",
            ));
        }
        if let Some(g) = spec.termination_grace_period_seconds
            && g < 0
        {
            self.push(FieldError::invalid(
                "spec.terminationGracePeriodSeconds",
                g,
                "must be greater than or equal to 0",
            ));
        }
        labels(
            spec.node_selector.as_ref(),
            "spec.nodeSelector",
            &mut self.errs,
        );
        if let Some(h) = spec.hostname.as_deref() {
            each(&mut self.errs, "spec.hostname", h, names::dns1123_label(h));
        }
        if let Some(s) = spec.subdomain.as_deref() {
            each(&mut self.errs, "spec.subdomain", s, names::dns1123_label(s));
        }
        for (i, s) in spec.image_pull_secrets.iter().flatten().enumerate() {
            if s.name.is_empty() {
                self.push(FieldError::required(
                    &at(&index("spec.imagePullSecrets", i), "name"),
                    "",
                ));
            }
        }
    }

    /// Checks the volumes and returns their names.
    fn volumes(&mut self) -> BTreeSet<String> {
        let mut names_seen = BTreeSet::new();
        for (i, v) in self.spec.volumes.iter().flatten().enumerate() {
            let path = index("spec.volumes", i);
            if v.name.is_empty() {
                self.push(FieldError::required(&at(&path, "name"), ""));
            } else {
                each(
                    &mut self.errs,
                    &at(&path, "name"),
                    &v.name,
                    names::dns1123_label(&v.name),
                );
                if !names_seen.insert(v.name.clone()) {
                    self.push(FieldError::duplicate(&at(&path, "name"), &v.name));
                }
            }
            self.volume_source(v, &path);
            self.volume_files(v, &path);
        }
        names_seen
    }

    fn volume_source(&mut self, v: &Volume, path: &str) {
        let set = count_set(v, &["name"]);
        match set.len() {
            0 => self.push(FieldError::required(path, "must specify a volume type")),
            1 => {}
            _ => self.push(FieldError::forbidden(
                &at(path, &set[1]),
                "may not specify more than 1 volume type",
            )),
        }
        if let Some(h) = &v.host_path {
            let p = at(path, "hostPath");
            if h.path.is_empty() {
                self.push(FieldError::required(&at(&p, "path"), ""));
            }
            if let Some(t) = h.type_.as_deref()
                && !HOST_PATH_TYPES.contains(&t)
            {
                self.push(FieldError::not_supported(
                    &at(&p, "type"),
                    t,
                    HOST_PATH_TYPES,
                ));
            }
        }
        if let Some(e) = &v.empty_dir {
            let p = at(path, "emptyDir");
            if let Some(m) = e.medium.as_deref()
                && !["", "Memory"].contains(&m)
                && !m.starts_with("HugePages")
            {
                self.push(FieldError::not_supported(
                    &at(&p, "medium"),
                    m,
                    &["", "Memory"],
                ));
            }
            if let Some(q) = &e.size_limit {
                self.quantity(&q.0, &at(&p, "sizeLimit"));
            }
        }
        if let Some(c) = &v.config_map {
            let p = at(path, "configMap");
            let name = c.name.as_str();
            let keys: Vec<&str> = c.items.iter().flatten().map(|i| i.key.as_str()).collect();
            self.volume_ref(&p, name, &keys, c.optional == Some(true), false);
        }
        if let Some(s) = &v.secret {
            let p = at(path, "secret");
            let name = s.secret_name.as_deref().unwrap_or("");
            let keys: Vec<&str> = s.items.iter().flatten().map(|i| i.key.as_str()).collect();
            self.volume_ref(&p, name, &keys, s.optional == Some(true), true);
        }
    }

    fn volume_ref(&mut self, path: &str, name: &str, keys: &[&str], optional: bool, secret: bool) {
        let name_field = at(path, if secret { "secretName" } else { "name" });
        if name.is_empty() {
            self.push(FieldError::required(&name_field, ""));
            return;
        }
        let known = self.keys_of(name, secret);
        match known {
            None if !optional => {
                let kind = if secret { "secret" } else { "configmap" };
                self.push(FieldError {
                    detail: format!("{kind} {name:?} not found in namespace {:?}", self.ns),
                    ..FieldError::not_found(&name_field, name)
                });
            }
            Some(known) if !optional => {
                for (i, k) in keys.iter().enumerate() {
                    if !known.contains(*k) {
                        self.push(FieldError::not_found(
                            &at(&index(&at(path, "items"), i), "key"),
                            *k,
                        ));
                    }
                }
            }
            _ => {}
        }
    }

    fn keys_of(&self, name: &str, secret: bool) -> Option<BTreeSet<String>> {
        if secret {
            let s = self.objects.secret(self.ns, name)?;
            Some(
                s.data
                    .iter()
                    .flatten()
                    .map(|(k, _)| k.clone())
                    .chain(s.string_data.iter().flatten().map(|(k, _)| k.clone()))
                    .collect(),
            )
        } else {
            let c = self.objects.config_map(self.ns, name)?;
            Some(
                c.data
                    .iter()
                    .flatten()
                    .map(|(k, _)| k.clone())
                    .chain(c.binary_data.iter().flatten().map(|(k, _)| k.clone()))
                    .collect(),
            )
        }
    }

    fn container(
        &mut self,
        c: &Container,
        path: &str,
        volumes: &BTreeSet<String>,
        seen: &mut BTreeSet<String>,
        init: bool,
    ) {
        let name_path = at(path, "name");
        if c.name.is_empty() {
            self.push(FieldError::required(&name_path, ""));
        } else {
            each(
                &mut self.errs,
                &name_path,
                &c.name,
                names::dns1123_label(&c.name),
            );
            if !seen.insert(c.name.clone()) {
                self.push(FieldError::duplicate(&name_path, &c.name));
            }
        }
        if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
            self.push(FieldError::required(&at(path, "image"), ""));
        }
        if let Some(p) = c.image_pull_policy.as_deref()
            && !PULL_POLICIES.contains(&p)
        {
            self.push(FieldError::not_supported(
                &at(path, "imagePullPolicy"),
                p,
                PULL_POLICIES,
            ));
        }
        self.ports(c, path);
        self.container_security(c, path);
        self.container_files(c, path);
        self.env(c, path);
        self.resources(c, path);
        self.mounts(c, path, volumes);
        let probes = [
            ("livenessProbe", &c.liveness_probe, true),
            ("readinessProbe", &c.readiness_probe, false),
            ("startupProbe", &c.startup_probe, true),
        ];
        for (field, probe, must_be_one) in probes {
            if let Some(p) = probe {
                let pp = at(path, field);
                if init && c.restart_policy.as_deref() != Some("Always") {
                    self.push(FieldError::forbidden(
                        &pp,
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                    continue;
                }
                self.probe(p, &pp, must_be_one);
            }
        }
    }

    fn quantity(&mut self, q: &str, path: &str) -> Option<Quantity> {
        match Quantity::parse(q) {
            Err(e) => {
                self.push(FieldError::invalid(path, q, &e.to_string()));
                None
            }
            Ok(v) if v < Quantity::ZERO => {
                self.push(FieldError::invalid(
                    path,
                    q,
                    "must be greater than or equal to 0",
                ));
                None
            }
            Ok(v) => Some(v),
        }
    }
}

/// `metadata.labels['app']` → `Some("app")` for `prefix` `metadata.labels`.
pub fn subscript<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    let inner = rest.strip_prefix("['")?.strip_suffix("']")?;
    Some(inner)
}

mod container;
mod files;
mod security;

#[cfg(test)]
mod tests;
