//! `corral.v1.KubeService` on the daemon socket: requests checked and turned into pod manager
//! calls; objects answered as the JSON the Kubernetes API serves.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use corral_cri_api::corral::kube_service_server::KubeService;
use corral_cri_api::corral::{
    ApplyRequest, ApplyResponse, ApplyResult, DeleteRequest, DeleteResponse, EventsRequest,
    EventsResponse, GetRequest, GetResponse, LabelRequest, LabelResponse, ObjectRef, WatchEvent,
    WatchRequest,
};
use corral_kube::Object;
use corral_kube::selector::Selector;
use corral_kube::store::Kind;
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use crate::{Kubelet, KubeletError};

/// The service, over the pod manager.
pub struct KubeApi {
    kubelet: Arc<Kubelet>,
}

impl KubeApi {
    pub fn new(kubelet: Arc<Kubelet>) -> KubeApi {
        KubeApi { kubelet }
    }
}

/// An object a deletion waits for: where it is stored, and which one it was.
struct Awaited {
    kind: Kind,
    namespace: String,
    name: String,
    uid: String,
}

/// Waits until a DELETED change has come for every object of `waiting`. A receiver that fell
/// behind has lost changes, perhaps the very DELETED it waits for: then it keeps only the
/// objects `stored` still finds.
async fn wait_deleted(
    changes: &mut tokio::sync::broadcast::Receiver<crate::Change>,
    mut waiting: Vec<Awaited>,
    stored: impl Fn(&Awaited) -> bool,
) {
    while !waiting.is_empty() {
        match changes.recv().await {
            Ok(c) if c.kind == "DELETED" => {
                let uid = c.object.metadata().uid.clone().unwrap_or_default();
                waiting.retain(|w| w.uid != uid);
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => waiting.retain(&stored),
            Err(RecvError::Closed) => break,
        }
    }
}

/// A kind by any of kubectl's names for it (`pods`, `pod`, `po`, `Pod`...).
pub fn parse_kind(s: &str) -> Result<Kind, Status> {
    if s.is_empty() {
        return Err(Status::invalid_argument("kind: required"));
    }
    Kind::parse(s).ok_or_else(|| {
        Status::invalid_argument(format!(
            "kind: the server doesn't have a resource type \"{s}\" (Corral serves pods, configmaps, secrets and namespaces)"
        ))
    })
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Pod => "Pod",
        Kind::ConfigMap => "ConfigMap",
        Kind::Secret => "Secret",
        Kind::Namespace => "Namespace",
    }
}

fn object_ref(o: &Object) -> ObjectRef {
    ObjectRef {
        kind: o.kind().into(),
        namespace: if o.namespaced() {
            o.namespace().into()
        } else {
            String::new()
        },
        name: o.name().into(),
    }
}

fn json(o: &Object) -> Vec<u8> {
    serde_json::to_vec(&o.to_value()).unwrap_or_default()
}

fn selector(s: &str) -> Result<Option<Selector>, Status> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    Selector::parse(s)
        .map(Some)
        .map_err(|e| Status::invalid_argument(format!("selector: {e}")))
}

fn namespace_or_default(ns: &str) -> &str {
    if ns.is_empty() {
        corral_kube::validate::DEFAULT_NAMESPACE
    } else {
        ns
    }
}

fn err(e: KubeletError) -> Status {
    kubelet_status(e)
}

/// Chooses the gRPC code for a pod manager (`corral.v1.KubeService`) error.
pub fn kubelet_status(e: KubeletError) -> Status {
    use KubeletError as E;
    use corral_kube::store::StoreError as S;
    let message = e.to_string();
    match e {
        E::Manifest(_) | E::Invalid(_) | E::BadRequest(_) => Status::invalid_argument(message),
        E::Store(S::NotFound { .. } | S::NamespaceNotFound(_)) => Status::not_found(message),
        E::Store(S::AlreadyExists { .. }) => Status::already_exists(message),
        E::Store(S::InvalidName(_)) => Status::invalid_argument(message),
        E::Store(S::NamespaceNotEmpty(_)) => Status::failed_precondition(message),
        E::Store(S::Io { .. }) => Status::internal(message),
        E::Unavailable => Status::unavailable(message),
    }
}

impl KubeApi {
    /// The objects a Delete names: by name, by selector or by manifest.
    fn delete_targets(&self, r: &DeleteRequest) -> Result<Vec<(Kind, String, String)>, Status> {
        let ns = namespace_or_default(&r.namespace).to_string();
        if !r.manifest.is_empty() {
            let objects =
                corral_kube::parse(&r.manifest).map_err(|e| err(KubeletError::Manifest(e)))?;
            return Ok(objects
                .iter()
                .map(|o| {
                    let ns = o
                        .metadata()
                        .namespace
                        .clone()
                        .filter(|n| !n.is_empty())
                        .unwrap_or_else(|| ns.clone());
                    (Kind::of(o), ns, o.name().to_string())
                })
                .collect());
        }
        let kind = parse_kind(&r.kind)?;
        if !r.names.is_empty() {
            return Ok(r
                .names
                .iter()
                .map(|n| (kind, ns.clone(), n.clone()))
                .collect());
        }
        let Some(sel) = selector(&r.selector)? else {
            return Err(Status::invalid_argument(
                "resource(s) were provided, but no name was specified",
            ));
        };
        Ok(self
            .kubelet
            .get(kind, Some(&ns), "", Some(&sel))
            .map_err(err)?
            .iter()
            .map(|o| (kind, o.namespace().to_string(), o.name().to_string()))
            .collect())
    }
}

#[tonic::async_trait]
impl KubeService for KubeApi {
    async fn apply(&self, req: Request<ApplyRequest>) -> Result<Response<ApplyResponse>, Status> {
        let r = req.into_inner();
        let kubelet = Arc::clone(&self.kubelet);
        // Store writes fsync: keep them off the async workers.
        let results =
            tokio::task::spawn_blocking(move || kubelet.apply(&r.manifest, r.create, &r.namespace))
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(err)?;
        Ok(Response::new(ApplyResponse {
            results: results
                .iter()
                .map(|(o, action)| ApplyResult {
                    object: Some(object_ref(o)),
                    action: action.as_str().into(),
                })
                .collect(),
        }))
    }

    async fn get(&self, req: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let r = req.into_inner();
        let kind = parse_kind(&r.kind)?;
        let ns = (!r.all_namespaces).then(|| namespace_or_default(&r.namespace));
        let sel = selector(&r.selector)?;
        let objects = self
            .kubelet
            .get(kind, ns, &r.name, sel.as_ref())
            .map_err(err)?;
        Ok(Response::new(GetResponse {
            objects: objects.iter().map(json).collect(),
        }))
    }

    async fn delete(
        &self,
        req: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let r = req.into_inner();
        if r.grace_period_seconds.is_some_and(|g| g < 0) {
            return Err(Status::invalid_argument(
                "grace_period_seconds: must be 0 or more",
            ));
        }
        let grace = match (r.force, r.grace_period_seconds) {
            (true, None) => Some(0),
            (_, g) => g,
        };
        let targets = self.delete_targets(&r)?;
        let mut changes = self.kubelet.subscribe();
        let mut deleted = Vec::new();
        let mut waiting = Vec::new();
        let mut longest = 0;
        for (kind, ns, name) in targets {
            match self.kubelet.delete(kind, &ns, &name, grace) {
                Ok(o) => {
                    let awaited = |namespace: &str| Awaited {
                        kind,
                        namespace: namespace.to_owned(),
                        name: name.clone(),
                        uid: o.metadata().uid.clone().unwrap_or_default(),
                    };
                    if let Object::Pod(p) = &o {
                        waiting.push(awaited(&ns));
                        longest =
                            longest.max(p.metadata.deletion_grace_period_seconds.unwrap_or(0));
                    }
                    if let Object::Namespace(_) = &o {
                        // Namespaces are stored without one.
                        waiting.push(awaited(""));
                    }
                    deleted.push(object_ref(&o));
                }
                Err(KubeletError::Store(corral_kube::store::StoreError::NotFound { .. }))
                    if r.ignore_not_found => {}
                Err(e) => return Err(err(e)),
            }
        }
        if r.wait && !waiting.is_empty() {
            let limit = Duration::from_secs(u64::try_from(longest).unwrap_or(0) + 60);
            let stored = |w: &Awaited| {
                self.kubelet
                    .get(w.kind, Some(&w.namespace), &w.name, None)
                    .ok()
                    .and_then(|found| found.into_iter().next())
                    .is_some_and(|o| o.metadata().uid.as_deref() == Some(w.uid.as_str()))
            };
            let wait = wait_deleted(&mut changes, waiting, stored);
            if tokio::time::timeout(limit, wait).await.is_err() {
                return Err(Status::deadline_exceeded(format!(
                    "timed out after {}s waiting for the deletion to finish",
                    limit.as_secs()
                )));
            }
        }
        Ok(Response::new(DeleteResponse { deleted }))
    }

    async fn label(&self, req: Request<LabelRequest>) -> Result<Response<LabelResponse>, Status> {
        let r = req.into_inner();
        let o = r
            .object
            .ok_or_else(|| Status::invalid_argument("object: required"))?;
        let kind = parse_kind(&o.kind)?;
        let set: BTreeMap<String, String> = r.set.into_iter().collect();
        let changed = self
            .kubelet
            .label(
                kind,
                namespace_or_default(&o.namespace),
                &o.name,
                &set,
                &r.remove,
                r.overwrite,
            )
            .map_err(err)?;
        Ok(Response::new(LabelResponse {
            action: if changed { "labeled" } else { "not labeled" }.into(),
        }))
    }

    async fn events(
        &self,
        req: Request<EventsRequest>,
    ) -> Result<Response<EventsResponse>, Status> {
        let r = req.into_inner();
        let o = r
            .object
            .ok_or_else(|| Status::invalid_argument("object: required"))?;
        let kind = parse_kind(&o.kind)?;
        let objects = self
            .kubelet
            .get(
                kind,
                Some(namespace_or_default(&o.namespace)),
                &o.name,
                None,
            )
            .map_err(err)?;
        let uid = objects
            .first()
            .and_then(|o| o.metadata().uid.clone())
            .unwrap_or_default();
        Ok(Response::new(EventsResponse {
            events: self.kubelet.events(&uid),
        }))
    }

    async fn watch(
        &self,
        req: Request<WatchRequest>,
    ) -> Result<Response<BoxStream<WatchEvent>>, Status> {
        let r = req.into_inner();
        let kind = parse_kind(&r.kind)?;
        let sel = selector(&r.selector)?;
        let ns = (!r.all_namespaces).then(|| namespace_or_default(&r.namespace).to_string());
        let mut changes = self.kubelet.subscribe();
        let current = self
            .kubelet
            .get(kind, ns.as_deref(), &r.name, sel.as_ref())
            .map_err(err)?;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let name = r.name;
        tokio::spawn(async move {
            for o in current {
                let ev = WatchEvent {
                    r#type: "ADDED".into(),
                    object: json(&o),
                };
                if tx.send(Ok(ev)).await.is_err() {
                    return;
                }
            }
            loop {
                let c = match changes.recv().await {
                    Ok(c) => c,
                    Err(RecvError::Lagged(n)) => {
                        let _ = tx
                            .send(Err(Status::resource_exhausted(format!(
                                "the watch fell {n} changes behind; watch again"
                            ))))
                            .await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                };
                let o = &c.object;
                if kind_name(kind) != o.kind()
                    || ns
                        .as_deref()
                        .is_some_and(|n| o.namespaced() && o.namespace() != n)
                    || (!name.is_empty() && o.name() != name)
                    || sel.as_ref().is_some_and(|s| {
                        !s.matches(o.metadata().labels.as_ref().unwrap_or(&BTreeMap::new()))
                    })
                {
                    continue;
                }
                let ev = WatchEvent {
                    r#type: c.kind.into(),
                    object: json(o),
                };
                if tx.send(Ok(ev)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

#[cfg(test)]
mod wait_tests {
    use super::*;
    use corral_kube::k8s_openapi::api::core::v1::Pod;

    fn change(kind: &'static str, uid: &str) -> crate::Change {
        let mut pod = Pod::default();
        pod.metadata.uid = Some(uid.to_owned());
        crate::Change {
            kind,
            object: Arc::new(Object::Pod(Box::new(pod))),
        }
    }

    fn awaited(uid: &str) -> Awaited {
        Awaited {
            kind: Kind::Pod,
            namespace: "default".into(),
            name: uid.into(),
            uid: uid.into(),
        }
    }

    /// `a`'s DELETED is among the changes a lagging receiver lost; the store no longer has
    /// `a`, so the wait ends with `b`'s DELETED instead of at its time limit.
    #[tokio::test]
    async fn a_lost_deleted_change_is_found_missing_from_the_store() {
        let (tx, mut rx) = tokio::sync::broadcast::channel(2);
        tx.send(change("DELETED", "a")).unwrap();
        for _ in 0..3 {
            tx.send(change("MODIFIED", "x")).unwrap();
        }
        let later = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = later.send(change("DELETED", "b"));
        });
        let waited = tokio::time::timeout(
            Duration::from_secs(2),
            wait_deleted(&mut rx, vec![awaited("a"), awaited("b")], |w| w.uid == "b"),
        )
        .await;
        assert!(waited.is_ok(), "still waiting for a deletion it missed");
        drop(tx);
    }
}
