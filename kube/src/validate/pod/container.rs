//! Per-container checks: ports, env and envFrom, resources, volume mounts, probes.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, EnvVar, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{FIELD_PATHS, PROTOCOLS, PodCheck, RESOURCE_FIELDS, count_set, subscript};
use crate::field::{FieldError, index, key};
use crate::quantity::Quantity;
use crate::validate::{at, each, names};

impl PodCheck<'_> {
    pub(super) fn ports(&mut self, c: &Container, path: &str) {
        let mut names_seen = BTreeSet::new();
        for (i, p) in c.ports.iter().flatten().enumerate() {
            let pp = index(&at(path, "ports"), i);
            if let Some(n) = p.name.as_deref() {
                each(&mut self.errs, &at(&pp, "name"), n, names::iana_svc_name(n));
                if !names_seen.insert(n.to_string()) {
                    self.push(FieldError::duplicate(&at(&pp, "name"), n));
                }
            }
            if !(1..=65535).contains(&p.container_port) {
                self.push(FieldError::invalid(
                    &at(&pp, "containerPort"),
                    p.container_port,
                    "must be between 1 and 65535, inclusive",
                ));
            }
            if let Some(h) = p.host_port.filter(|h| *h != 0) {
                if !(1..=65535).contains(&h) {
                    self.push(FieldError::invalid(
                        &at(&pp, "hostPort"),
                        h,
                        "must be between 1 and 65535, inclusive",
                    ));
                } else if self.spec.host_network == Some(true) && h != p.container_port {
                    self.push(FieldError::invalid(
                        &at(&pp, "hostPort"),
                        h,
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
            if let Some(proto) = p.protocol.as_deref()
                && !PROTOCOLS.contains(&proto)
            {
                self.push(FieldError::not_supported(
                    &at(&pp, "protocol"),
                    proto,
                    PROTOCOLS,
                ));
            }
        }
    }

    pub(super) fn env(&mut self, c: &Container, path: &str) {
        for (i, e) in c.env_from.iter().flatten().enumerate() {
            let ep = index(&at(path, "envFrom"), i);
            if let Some(prefix) = e.prefix.as_deref().filter(|p| !p.is_empty()) {
                each(
                    &mut self.errs,
                    &at(&ep, "prefix"),
                    prefix,
                    names::env_var_name(prefix),
                );
            }
            match (&e.config_map_ref, &e.secret_ref) {
                (None, None) => self.push(FieldError::invalid(
                    &ep,
                    "",
                    "must specify one of: `configMapRef` or `secretRef`",
                )),
                (Some(_), Some(_)) => self.push(FieldError::invalid(
                    &ep,
                    "",
                    "may not have more than one field specified at a time",
                )),
                (Some(r), None) => self.volume_ref(
                    &at(&ep, "configMapRef"),
                    &r.name,
                    &[],
                    r.optional == Some(true),
                    false,
                ),
                (None, Some(r)) => {
                    let p = at(&ep, "secretRef");
                    if r.name.is_empty() {
                        self.push(FieldError::required(&at(&p, "name"), ""));
                    } else if r.optional != Some(true)
                        && self.objects.secret(self.ns, &r.name).is_none()
                    {
                        self.push(FieldError {
                            detail: format!(
                                "secret {:?} not found in namespace {:?}",
                                r.name, self.ns
                            ),
                            ..FieldError::not_found(&at(&p, "name"), &r.name)
                        });
                    }
                }
            }
        }
        for (i, e) in c.env.iter().flatten().enumerate() {
            self.env_var(e, &index(&at(path, "env"), i), c);
        }
    }

    pub(super) fn env_var(&mut self, e: &EnvVar, path: &str, c: &Container) {
        if e.name.is_empty() {
            self.push(FieldError::required(&at(path, "name"), ""));
        } else {
            each(
                &mut self.errs,
                &at(path, "name"),
                &e.name,
                names::env_var_name(&e.name),
            );
        }
        let Some(from) = &e.value_from else { return };
        let vp = at(path, "valueFrom");
        if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
            self.push(FieldError::invalid(
                &vp,
                "",
                "may not be specified when `value` is not empty",
            ));
        }
        let set = count_set(from, &[]);
        if set.is_empty() {
            self.push(FieldError::invalid(&vp, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"));
            return;
        }
        if set.len() > 1 {
            self.push(FieldError::invalid(
                &vp,
                "",
                "may not have more than one field specified at a time",
            ));
            return;
        }
        if let Some(f) = &from.field_ref {
            let fp = at(&at(&vp, "fieldRef"), "fieldPath");
            if f.api_version.as_deref().is_some_and(|v| v != "v1") {
                self.push(FieldError::not_supported(
                    &at(&at(&vp, "fieldRef"), "apiVersion"),
                    f.api_version.as_deref().unwrap_or(""),
                    &["v1"],
                ));
            }
            let path = f.field_path.as_str();
            if let Some(k) = subscript(path, "metadata.labels")
                .or_else(|| subscript(path, "metadata.annotations"))
            {
                each(
                    &mut self.errs,
                    &fp,
                    k,
                    names::qualified_name(&k.to_lowercase()),
                );
            } else if path.is_empty() {
                self.push(FieldError::required(&fp, ""));
            } else if !FIELD_PATHS.contains(&path) {
                let mut supported: Vec<&str> = vec!["metadata.annotations", "metadata.labels"];
                supported.extend_from_slice(FIELD_PATHS);
                self.push(FieldError::not_supported(&fp, path, &supported));
            }
        }
        if let Some(r) = &from.resource_field_ref {
            let rp = at(&vp, "resourceFieldRef");
            if !RESOURCE_FIELDS.contains(&r.resource.as_str()) {
                self.push(FieldError::not_supported(
                    &at(&rp, "resource"),
                    &r.resource,
                    RESOURCE_FIELDS,
                ));
            }
            if let Some(name) = r
                .container_name
                .as_deref()
                .filter(|n| !n.is_empty() && *n != c.name)
            {
                let all = self
                    .spec
                    .containers
                    .iter()
                    .chain(self.spec.init_containers.iter().flatten());
                if !all.into_iter().any(|c| c.name == name) {
                    self.push(FieldError::not_found(&at(&rp, "containerName"), name));
                }
            }
            if let Some(d) = &r.divisor {
                match Quantity::parse(&d.0) {
                    Err(e) => self.push(FieldError::invalid(
                        &at(&rp, "divisor"),
                        &d.0,
                        &e.to_string(),
                    )),
                    Ok(q) if q <= Quantity::ZERO => {
                        self.push(FieldError::invalid(
                            &at(&rp, "divisor"),
                            &d.0,
                            "must be greater than 0",
                        ));
                    }
                    Ok(_) => {}
                }
            }
        }
        if let Some(r) = &from.config_map_key_ref {
            self.key_ref(
                &at(&vp, "configMapKeyRef"),
                &r.name,
                &r.key,
                r.optional == Some(true),
                false,
            );
        }
        if let Some(r) = &from.secret_key_ref {
            self.key_ref(
                &at(&vp, "secretKeyRef"),
                &r.name,
                &r.key,
                r.optional == Some(true),
                true,
            );
        }
    }

    pub(super) fn key_ref(
        &mut self,
        path: &str,
        name: &str,
        k: &str,
        optional: bool,
        secret: bool,
    ) {
        if name.is_empty() {
            self.push(FieldError::required(&at(path, "name"), ""));
        }
        if k.is_empty() {
            self.push(FieldError::required(&at(path, "key"), ""));
            return;
        }
        each(
            &mut self.errs,
            &at(path, "key"),
            k,
            names::config_map_key(k),
        );
        if name.is_empty() || optional {
            return;
        }
        let (kind, title) = if secret {
            ("secret", "Secret")
        } else {
            ("configmap", "ConfigMap")
        };
        match self.keys_of(name, secret) {
            None => self.push(FieldError {
                detail: format!("{kind} {name:?} not found in namespace {:?}", self.ns),
                ..FieldError::not_found(&at(path, "name"), name)
            }),
            Some(keys) if !keys.contains(k) => self.push(FieldError {
                detail: format!("couldn't find key {k} in {title} {}/{name}", self.ns),
                ..FieldError::not_found(&at(path, "key"), k)
            }),
            Some(_) => {}
        }
    }

    pub(super) fn resources(&mut self, c: &Container, path: &str) {
        let Some(r) = &c.resources else { return };
        let rp = at(path, "resources");
        let mut parsed = |m: Option<
            &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
        >,
                          field: &str| {
            let mut out = BTreeMap::new();
            for (name, q) in m.into_iter().flatten() {
                let fp = key(&at(&rp, field), name);
                if let Some(v) = self.quantity(&q.0, &fp) {
                    out.insert(name.clone(), (v, q.0.clone()));
                }
            }
            out
        };
        let limits = parsed(r.limits.as_ref(), "limits");
        let requests = parsed(r.requests.as_ref(), "requests");
        for (name, (req, text)) in &requests {
            if let Some((lim, lim_text)) = limits.get(name)
                && req > lim
            {
                self.push(FieldError::invalid(
                    &key(&at(&rp, "requests"), name),
                    text,
                    &format!("must be less than or equal to {name} limit of {lim_text}"),
                ));
            }
        }
    }

    pub(super) fn mounts(&mut self, c: &Container, path: &str, volumes: &BTreeSet<String>) {
        let mut paths = BTreeSet::new();
        for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
            let mp = index(&at(path, "volumeMounts"), i);
            if m.name.is_empty() {
                self.push(FieldError::required(&at(&mp, "name"), ""));
            } else if !volumes.contains(&m.name) {
                self.push(FieldError::not_found(&at(&mp, "name"), &m.name));
            }
            if m.mount_path.is_empty() {
                self.push(FieldError::required(&at(&mp, "mountPath"), ""));
            } else if !paths.insert(m.mount_path.clone()) {
                self.push(FieldError::invalid(
                    &at(&mp, "mountPath"),
                    &m.mount_path,
                    "must be unique",
                ));
            }
            for (field, sub) in [("subPath", &m.sub_path), ("subPathExpr", &m.sub_path_expr)] {
                if let Some(s) = sub.as_deref().filter(|s| !s.is_empty()) {
                    if s.starts_with('/') {
                        self.push(FieldError::invalid(
                            &at(&mp, field),
                            s,
                            "must be a relative path",
                        ));
                    }
                    if s.split('/').any(|p| p == "..") {
                        self.push(FieldError::invalid(
                            &at(&mp, field),
                            s,
                            "must not contain '..'",
                        ));
                    }
                }
            }
            if m.sub_path.as_deref().is_some_and(|s| !s.is_empty())
                && m.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty())
            {
                self.push(FieldError::invalid(
                    &at(&mp, "subPathExpr"),
                    m.sub_path_expr.as_deref().unwrap_or(""),
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
        }
    }

    pub(super) fn probe(&mut self, p: &Probe, path: &str, success_must_be_one: bool) {
        let handlers: Vec<&str> = [
            ("exec", p.exec.is_some()),
            ("httpGet", p.http_get.is_some()),
            ("tcpSocket", p.tcp_socket.is_some()),
            ("grpc", p.grpc.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, set)| set.then_some(n))
        .collect();
        match handlers.len() {
            0 => self.push(FieldError::required(path, "must specify a handler type")),
            1 => {}
            _ => self.push(FieldError::forbidden(
                &at(path, handlers[1]),
                "may not specify more than 1 handler type",
            )),
        }
        for (field, v) in [
            ("initialDelaySeconds", p.initial_delay_seconds),
            ("timeoutSeconds", p.timeout_seconds),
            ("periodSeconds", p.period_seconds),
            ("successThreshold", p.success_threshold),
            ("failureThreshold", p.failure_threshold),
        ] {
            if let Some(v) = v.filter(|v| *v < 0) {
                self.push(FieldError::invalid(
                    &at(path, field),
                    v,
                    "must be greater than or equal to 0",
                ));
            }
        }
        if success_must_be_one && let Some(s) = p.success_threshold.filter(|s| *s != 1 && *s > 0) {
            self.push(FieldError::invalid(
                &at(path, "successThreshold"),
                s,
                "must be 1",
            ));
        }
        if let Some(g) = p.termination_grace_period_seconds.filter(|g| *g <= 0) {
            self.push(FieldError::invalid(
                &at(path, "terminationGracePeriodSeconds"),
                g,
                "must be greater than 0",
            ));
        }
        if let Some(e) = &p.exec
            && e.command.as_ref().is_none_or(Vec::is_empty)
        {
            self.push(FieldError::required(&at(&at(path, "exec"), "command"), ""));
        }
        if let Some(h) = &p.http_get {
            self.probe_port(&h.port, &at(&at(path, "httpGet"), "port"));
            if let Some(s) = h.scheme.as_deref()
                && s != "HTTP"
                && s != "HTTPS"
            {
                self.push(FieldError::not_supported(
                    &at(&at(path, "httpGet"), "scheme"),
                    s,
                    &["HTTP", "HTTPS"],
                ));
            }
        }
        if let Some(t) = &p.tcp_socket {
            self.probe_port(&t.port, &at(&at(path, "tcpSocket"), "port"));
        }
        if let Some(g) = &p.grpc
            && !(1..=65535).contains(&g.port)
        {
            self.push(FieldError::invalid(
                &at(&at(path, "grpc"), "port"),
                g.port,
                "must be between 1 and 65535, inclusive",
            ));
        }
    }

    pub(super) fn probe_port(&mut self, port: &IntOrString, path: &str) {
        match port {
            IntOrString::Int(n) if !(1..=65535).contains(n) => {
                self.push(FieldError::invalid(
                    path,
                    *n,
                    "must be between 1 and 65535, inclusive",
                ));
            }
            IntOrString::String(s) => each(&mut self.errs, path, s, names::iana_svc_name(s)),
            IntOrString::Int(_) => {}
        }
    }
}
