//! The API-server verbs of `corral.v1.KubeService` over the store: apply (parse, normalize,
//! validate against the batch and the store, the update rules of a pod, namespaces first),
//! get, delete (pods marked and torn down by their worker; a namespace Terminating until its
//! pods are gone), label, events.

use super::*;

impl Kubelet {
    /// `kubectl apply -f` / `create -f`: every object valid, or nothing stored.
    pub fn apply(
        &self,
        manifest: &str,
        create: bool,
        namespace: &str,
    ) -> Result<Vec<(Object, Applied)>, KubeletError> {
        let mut objects = corral_kube::parse(manifest)?;
        if objects.is_empty() {
            return Err(KubeletError::BadRequest(
                "no objects passed to apply".into(),
            ));
        }
        for o in &mut objects {
            if o.namespaced() && o.metadata().namespace.as_deref().unwrap_or("").is_empty() {
                if !namespace.is_empty() {
                    o.metadata_mut().namespace = Some(namespace.to_string());
                }
            } else if o.namespaced() && !namespace.is_empty() && o.namespace() != namespace {
                return Err(KubeletError::BadRequest(format!(
                    "the namespace from the provided object \"{}\" does not match the namespace \"{namespace}\". You must pass '--namespace={}' to perform this operation.",
                    o.namespace(),
                    o.namespace()
                )));
            }
            o.normalize();
        }
        let mut batch = Batch::default();
        for o in &objects {
            match o {
                Object::ConfigMap(c) => batch.config_maps.push(c.clone()),
                Object::Secret(s) => batch.secrets.push(s.clone()),
                _ => {}
            }
        }
        let mut store = self.store();
        let mut invalid = Vec::new();
        for o in &objects {
            let layered = Layered {
                top: &batch,
                bottom: &*store,
            };
            if let Err(e) = corral_kube::validate::object(o, &layered) {
                invalid.push(e);
            }
        }
        for o in &objects {
            if let Object::Pod(p) = o {
                invalid.extend(unsupported(p));
            }
        }
        if !invalid.is_empty() {
            return Err(KubeletError::Invalid(invalid));
        }
        let new_namespaces: Vec<String> = objects
            .iter()
            .filter(|o| matches!(o, Object::Namespace(_)))
            .map(|o| o.name().to_string())
            .collect();
        for o in &objects {
            let kind = Kind::of(o);
            if o.namespaced()
                && store.get(Kind::Namespace, "", o.namespace()).is_none()
                && !new_namespaces.iter().any(|n| n == o.namespace())
            {
                return Err(StoreError::NamespaceNotFound(o.namespace().to_string()).into());
            }
            if o.namespaced()
                && let Some(Object::Namespace(ns)) = store.get(Kind::Namespace, "", o.namespace())
                && ns.metadata.deletion_timestamp.is_some()
            {
                return Err(KubeletError::BadRequest(format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                    kind.resource(),
                    o.name(),
                    o.namespace()
                )));
            }
            let existing = store.get(kind, o.namespace(), o.name());
            if let Some(old) = existing {
                if create {
                    return Err(StoreError::AlreadyExists {
                        resource: kind.resource(),
                        name: o.name().to_string(),
                    }
                    .into());
                }
                if let (Object::Pod(old), Object::Pod(new)) = (old, o) {
                    if old.metadata.deletion_timestamp.is_some() {
                        return Err(KubeletError::BadRequest(format!(
                            "pods \"{}\" is being deleted",
                            o.name()
                        )));
                    }
                    pod_update_allowed(old, new)?;
                }
            }
        }
        // Namespaces first, so the rest has somewhere to go.
        let mut order: Vec<&Object> = objects
            .iter()
            .filter(|o| matches!(o, Object::Namespace(_)))
            .collect();
        order.extend(
            objects
                .iter()
                .filter(|o| !matches!(o, Object::Namespace(_))),
        );
        let now = now();
        let mut results = Vec::new();
        for o in order {
            let (stored, action) = if create {
                (store.create(o.clone(), now)?, Applied::Created)
            } else {
                store.apply(o.clone(), now)?
            };
            results.push((stored, action));
        }
        drop(store);
        let mut touched_data = false;
        for (o, action) in &results {
            match action {
                Applied::Unchanged => continue,
                Applied::Created => self.publish("ADDED", o.clone()),
                Applied::Configured => self.publish("MODIFIED", o.clone()),
            }
            match o {
                Object::Pod(p) if *action == Applied::Created => self.spawn_worker(p),
                Object::Pod(p) => self.wake(p.metadata.uid.as_deref().unwrap_or("")),
                Object::ConfigMap(_) | Object::Secret(_) => touched_data = true,
                Object::Namespace(_) => {}
            }
        }
        if touched_data {
            self.wake_all();
        }
        Ok(results)
    }

    /// Objects of `kind`: one by name, or those in `namespace` (all when `None`) matching
    /// `selector`.
    pub fn get(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        name: &str,
        selector: Option<&Selector>,
    ) -> Result<Vec<Object>, KubeletError> {
        let store = self.store();
        if !name.is_empty() {
            let ns = namespace.unwrap_or(corral_kube::validate::DEFAULT_NAMESPACE);
            return store
                .get(kind, ns, name)
                .cloned()
                .map(|o| vec![o])
                .ok_or_else(|| {
                    StoreError::NotFound {
                        resource: kind.resource(),
                        name: name.to_string(),
                    }
                    .into()
                });
        }
        Ok(store
            .list(kind, namespace, selector)
            .into_iter()
            .cloned()
            .collect())
    }

    /// Deletes one object. A pod is marked (deletionTimestamp, grace period) and its worker
    /// tears it down; the returned receiver's DELETED event says when it is gone. A namespace
    /// deletes what it holds first.
    pub fn delete(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        grace: Option<i64>,
    ) -> Result<Object, KubeletError> {
        match kind {
            Kind::Pod => self.delete_pod(namespace, name, grace),
            Kind::Namespace => {
                let inside: Vec<(Kind, String, String)> = {
                    let store = self.store();
                    if store.get(Kind::Namespace, "", name).is_none() {
                        return Err(StoreError::NotFound {
                            resource: "namespaces",
                            name: name.to_string(),
                        }
                        .into());
                    }
                    [Kind::Pod, Kind::ConfigMap, Kind::Secret]
                        .into_iter()
                        .flat_map(|k| {
                            store
                                .list(k, Some(name), None)
                                .into_iter()
                                .map(move |o| (k, o.namespace().to_string(), o.name().to_string()))
                                .collect::<Vec<_>>()
                        })
                        .collect()
                };
                for (k, ns, n) in inside {
                    if let Err(e) = self.delete(k, &ns, &n, grace) {
                        tracing::warn!(namespace = name, object = n, error = %e, "deleting a namespace's object");
                    }
                }
                let ns = self.mark_namespace_terminating(name)?;
                if let Some(this) = self.this.upgrade() {
                    let name = name.to_string();
                    tokio::spawn(async move { this.finish_namespace(&name).await });
                }
                Ok(ns)
            }
            Kind::ConfigMap | Kind::Secret => {
                let o = self.store().delete(kind, namespace, name)?;
                self.publish("DELETED", o.clone());
                Ok(o)
            }
        }
    }

    pub(super) fn delete_pod(
        &self,
        namespace: &str,
        name: &str,
        grace: Option<i64>,
    ) -> Result<Object, KubeletError> {
        let mut store = self.store();
        let Some(Object::Pod(p)) = store.get(Kind::Pod, namespace, name).cloned() else {
            return Err(StoreError::NotFound {
                resource: "pods",
                name: name.to_string(),
            }
            .into());
        };
        let mut p = *p;
        let spec_grace = p
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        let grace = grace.unwrap_or(spec_grace).max(0);
        // A second delete may only shorten the grace period.
        if let Some(old) = p.metadata.deletion_grace_period_seconds
            && p.metadata.deletion_timestamp.is_some()
            && old <= grace
        {
            return Ok(Object::Pod(Box::new(p)));
        }
        let now = now();
        let at = now
            .checked_add(corral_kube::k8s_openapi::jiff::SignedDuration::from_secs(
                grace,
            ))
            .unwrap_or(now);
        p.metadata.deletion_timestamp = Some(Time(at));
        p.metadata.deletion_grace_period_seconds = Some(grace);
        let uid = p.metadata.uid.clone().unwrap_or_default();
        let o = store.replace(Object::Pod(Box::new(p)))?;
        drop(store);
        self.publish("MODIFIED", o.clone());
        if self.has_worker(&uid) {
            self.wake(&uid);
        } else if let Object::Pod(p) = &o {
            self.spawn_worker(p);
        }
        Ok(o)
    }

    pub(super) fn mark_namespace_terminating(&self, name: &str) -> Result<Object, KubeletError> {
        let mut store = self.store();
        let Some(Object::Namespace(ns)) = store.get(Kind::Namespace, "", name).cloned() else {
            return Err(StoreError::NotFound {
                resource: "namespaces",
                name: name.to_string(),
            }
            .into());
        };
        let mut ns = ns;
        if ns.metadata.deletion_timestamp.is_none() {
            ns.metadata.deletion_timestamp = Some(Time(now()));
        }
        ns.status.get_or_insert_with(Default::default).phase = Some("Terminating".into());
        let o = store.replace(Object::Namespace(ns))?;
        drop(store);
        self.publish("MODIFIED", o.clone());
        Ok(o)
    }

    /// Removes a terminating namespace once its pods are gone.
    pub(super) async fn finish_namespace(&self, name: &str) {
        loop {
            let empty = self.store().list(Kind::Pod, Some(name), None).is_empty();
            if empty {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        let result = self.store().delete(Kind::Namespace, "", name);
        match result {
            Ok(o) => self.publish("DELETED", o),
            Err(e) => tracing::warn!(namespace = name, error = %e, "removing a namespace"),
        }
    }

    /// Sets and removes labels.
    pub fn label(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        set: &BTreeMap<String, String>,
        remove: &[String],
        overwrite: bool,
    ) -> Result<bool, KubeletError> {
        let mut store = self.store();
        let mut o =
            store
                .get(kind, namespace, name)
                .cloned()
                .ok_or_else(|| StoreError::NotFound {
                    resource: kind.resource(),
                    name: name.to_string(),
                })?;
        let labels = o.metadata_mut().labels.get_or_insert_with(BTreeMap::new);
        let before = labels.clone();
        for (k, v) in set {
            if let Some(old) = labels.get(k)
                && old != v
                && !overwrite
            {
                return Err(KubeletError::BadRequest(format!(
                    "'{k}' already has a value ({old}), and --overwrite is false"
                )));
            }
            labels.insert(k.clone(), v.clone());
        }
        for k in remove {
            labels.remove(k);
        }
        if *labels == before {
            return Ok(false);
        }
        let candidate = o.clone();
        if let Err(e) = corral_kube::validate::object(&candidate, &*store) {
            return Err(KubeletError::Invalid(vec![e]));
        }
        let o = store.replace(o)?;
        drop(store);
        self.publish("MODIFIED", o.clone());
        if let Object::Pod(p) = &o {
            self.wake(p.metadata.uid.as_deref().unwrap_or(""));
        }
        Ok(true)
    }

    /// The events of pod `uid`.
    pub fn events(&self, uid: &str) -> Vec<corral_cri_api::corral::Event> {
        self.recorder.events(uid)
    }
}

/// What a valid pod may ask that this pod manager cannot do, as field errors.
pub(super) fn unsupported(p: &Pod) -> Option<FieldErrors> {
    let spec = p.spec.as_ref()?;
    let errors: Vec<corral_kube::FieldError> = spec
        .init_containers
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, c)| c.restart_policy.as_deref() == Some("Always"))
        .map(|(i, _)| {
            corral_kube::FieldError::forbidden(
                &format!("spec.initContainers[{i}].restartPolicy"),
                "sidecar containers (restartPolicy: Always) are not supported by Corral's pod manager",
            )
        })
        .collect();
    (!errors.is_empty()).then(|| FieldErrors {
        kind: "Pod".into(),
        name: p.metadata.name.clone().unwrap_or_default(),
        errors,
    })
}

/// The API server's rule for pod updates: only images, `activeDeadlineSeconds` and
/// tolerations (additions) may change.
pub(super) fn pod_update_allowed(old: &Pod, new: &Pod) -> Result<(), KubeletError> {
    let strip = |p: &Pod| {
        let mut spec = p.spec.clone().unwrap_or_default();
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            c.image = None;
        }
        spec.active_deadline_seconds = None;
        spec.tolerations = None;
        serde_json::to_value(spec).unwrap_or_default()
    };
    if strip(old) == strip(new) {
        return Ok(());
    }
    Err(KubeletError::Invalid(vec![FieldErrors {
        kind: "Pod".into(),
        name: new.metadata.name.clone().unwrap_or_default(),
        errors: vec![corral_kube::FieldError::forbidden(
            "spec",
            "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
        )],
    }]))
}
