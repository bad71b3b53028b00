//! `logs`, `exec` and `port-forward` take a CRI id (crictl) or a pod name (kubectl). The rule:
//! the argument is a pod name when `-n`/`-c`/`--previous` is given, when it is written
//! `pod/NAME`, or when no container (for `port-forward`: sandbox) id known to the CRI starts
//! with it; otherwise it is that CRI id. A pod name is resolved with KubeService.Get: the
//! container's id from `status.containerStatuses[].containerID` (`corral://<id>`;
//! `--previous`: `lastState.terminated.containerID`), the sandbox by the kubelet's label
//! `io.kubernetes.pod.uid`.

use corral_cri_api::{corral, v1};
use corral_kube::k8s_openapi::api::core::v1::Pod;

use super::kind::Kind;
use super::{KubeError, decode};
use crate::client::{Cri, Deadline};

/// The annotation naming the container kubectl picks without `-c`.
pub const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";
/// The kubelet's label carrying the pod's uid on its sandbox.
pub const POD_UID_LABEL: &str = "io.kubernetes.pod.uid";

/// What an argument names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A CRI container or sandbox id (or prefix).
    Cri(String),
    /// A pod of the pod manager.
    Pod(String),
    /// Unknown to the CRI: a pod if the pod manager has it, else the CRI id.
    Either(String),
}

/// `pod/NAME` (or `pods/`, `po/`) names a pod whatever else is known.
pub fn explicit_pod(arg: &str) -> Option<&str> {
    let (kind, name) = arg.split_once('/')?;
    (Kind::parse(kind).ok() == Some(Kind::Pod) && !name.is_empty()).then_some(name)
}

/// The routing rule (see the module documentation); `known` says whether the CRI knows an id
/// starting with `arg`, and is only asked when it matters.
pub async fn route<F>(arg: &str, pod_flags: bool, known: F) -> anyhow::Result<Target>
where
    F: AsyncFnOnce(&str) -> anyhow::Result<bool>,
{
    if let Some(name) = explicit_pod(arg) {
        return Ok(Target::Pod(name.to_string()));
    }
    if pod_flags {
        return Ok(Target::Pod(arg.to_string()));
    }
    Ok(match known(arg).await {
        Ok(true) => Target::Cri(arg.to_string()),
        // A CRI that cannot list (UNIMPLEMENTED) decides nothing.
        Ok(false) | Err(_) => Target::Either(arg.to_string()),
    })
}

/// The pod a target names: explicit pods must exist; an `Either` that is no pod is `None`.
async fn pod_of(
    cri: &Cri,
    target: &Target,
    namespace: &str,
) -> anyhow::Result<Option<(String, Pod)>> {
    match target {
        Target::Cri(_) => Ok(None),
        Target::Pod(name) => Ok(Some((name.clone(), get_pod(cri, namespace, name).await?))),
        Target::Either(name) => match get_pod(cri, namespace, name).await {
            Ok(pod) => Ok(Some((name.clone(), pod))),
            Err(err) => {
                cri.debug(|| format!("{name:?} is not a pod ({err:#}); using it as a CRI id"));
                Ok(None)
            }
        },
    }
}

fn arg_of(target: &Target) -> String {
    match target {
        Target::Cri(a) | Target::Pod(a) | Target::Either(a) => a.clone(),
    }
}

/// `corral://abc` → `abc`.
pub fn strip_scheme(id: &str) -> &str {
    id.split_once("://").map_or(id, |(_, rest)| rest)
}

/// The container a pod-name command works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picked {
    pub name: String,
    pub id: String,
    /// kubectl's `Defaulted container "a" out of: a, b`, to print on stderr.
    pub defaulted: Option<String>,
}

/// Picks the container (`-c`, the default-container annotation, or the first) and its id.
pub fn pick(pod: &Pod, container: Option<&str>, previous: bool) -> Result<Picked, KubeError> {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let init = spec.init_containers.clone().unwrap_or_default();
    let mut defaulted = None;
    let name = match container {
        Some(c) => c.to_string(),
        None => {
            let annotated = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_CONTAINER))
                .filter(|a| spec.containers.iter().any(|c| &c.name == *a));
            match (annotated, spec.containers.first()) {
                (Some(a), _) => a.clone(),
                (None, Some(first)) => {
                    if spec.containers.len() + init.len() > 1 {
                        let mut all: Vec<String> =
                            spec.containers.iter().map(|c| c.name.clone()).collect();
                        all.extend(init.iter().map(|c| format!("{} (init)", c.name)));
                        defaulted = Some(format!(
                            "Defaulted container \"{}\" out of: {}",
                            first.name,
                            all.join(", ")
                        ));
                    }
                    first.name.clone()
                }
                (None, None) => {
                    return Err(KubeError::local(format!(
                        "pod {pod_name} has no containers"
                    )));
                }
            }
        }
    };
    let status = pod.status.clone().unwrap_or_default();
    let statuses = status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten());
    let known = spec
        .containers
        .iter()
        .chain(init.iter())
        .any(|c| c.name == name);
    if !known {
        return Err(KubeError::local(format!(
            "container {name} is not valid for pod {pod_name}"
        )));
    }
    let cs = statuses.into_iter().find(|s| s.name == name);
    let id = if previous {
        cs.and_then(|s| s.last_state.as_ref())
            .and_then(|l| l.terminated.as_ref())
            .and_then(|t| t.container_id.clone())
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                KubeError::bad_request(format!(
                    "previous terminated container \"{name}\" in pod \"{pod_name}\" not found"
                ))
            })?
    } else {
        match cs
            .and_then(|s| s.container_id.clone())
            .filter(|id| !id.is_empty())
        {
            Some(id) => id,
            None => {
                let reason = cs
                    .and_then(|s| s.state.as_ref())
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.clone())
                    .unwrap_or_else(|| "ContainerCreating".into());
                return Err(KubeError::bad_request(format!(
                    "container \"{name}\" in pod \"{pod_name}\" is waiting to start: {reason}"
                )));
            }
        }
    };
    Ok(Picked {
        name,
        id: strip_scheme(&id).to_string(),
        defaulted,
    })
}

/// The pod from KubeService.Get.
pub async fn get_pod(cri: &Cri, namespace: &str, name: &str) -> anyhow::Result<Pod> {
    let mut client = cri.kube().await?;
    let req = corral::GetRequest {
        kind: "Pod".into(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        ..Default::default()
    };
    let resp = cri
        .call("Get", Deadline::Call, req, |r| client.get(r))
        .await
        .map_err(|e| KubeError::from_rpc(e, Some((Kind::Pod, name))))?;
    let Some(bytes) = resp.objects.first() else {
        return Err(KubeError::not_found(Kind::Pod, name).into());
    };
    match decode(bytes)? {
        corral_kube::Object::Pod(p) => Ok(*p),
        _ => Err(KubeError::local("the server sent something else than a pod").into()),
    }
}

async fn known_container(cri: &Cri, prefix: &str) -> anyhow::Result<bool> {
    let mut client = cri.runtime().await?;
    let req = v1::ListContainersRequest {
        filter: Some(v1::ContainerFilter {
            id: prefix.to_string(),
            ..Default::default()
        }),
    };
    let resp = cri
        .call("ListContainers", Deadline::Call, req, |r| {
            client.list_containers(r)
        })
        .await?;
    Ok(resp.containers.iter().any(|c| c.id.starts_with(prefix)))
}

async fn known_sandbox(cri: &Cri, prefix: &str) -> anyhow::Result<bool> {
    let mut client = cri.runtime().await?;
    let filter = v1::PodSandboxFilter {
        id: prefix.to_string(),
        ..Default::default()
    };
    let pods = crate::pods::list_pods(cri, &mut client, Some(filter)).await?;
    Ok(pods.iter().any(|p| p.id.starts_with(prefix)))
}

/// The container `logs`/`exec` work on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerTarget {
    /// Its CRI id: the argument, or the pod's container.
    pub id: String,
    /// Named through a pod (kubectl's form), so the command behaves as kubectl's does.
    pub via_pod: bool,
}

/// The container `logs`/`exec` work on: the argument, or the pod's container.
pub async fn container_id(
    cri: &Cri,
    arg: &str,
    namespace: Option<&str>,
    container: Option<&str>,
    previous: bool,
) -> anyhow::Result<ContainerTarget> {
    let flags = namespace.is_some() || container.is_some() || previous;
    let target = route(arg, flags, async |a: &str| known_container(cri, a).await).await?;
    let ns = super::namespace_or_default(namespace);
    match pod_of(cri, &target, &ns).await? {
        None => Ok(ContainerTarget {
            id: arg_of(&target),
            via_pod: false,
        }),
        Some((name, pod)) => {
            let picked = pick(&pod, container, previous)?;
            if let Some(msg) = &picked.defaulted {
                eprintln!("{msg}");
            }
            cri.debug(|| {
                format!(
                    "pod {ns}/{name}: container {} is {}",
                    picked.name, picked.id
                )
            });
            Ok(ContainerTarget {
                id: picked.id,
                via_pod: true,
            })
        }
    }
}

/// The ready sandbox of a pod, newest first, among `sandboxes` (already filtered by uid).
pub fn pick_sandbox(sandboxes: &[v1::PodSandbox]) -> Option<&v1::PodSandbox> {
    let ready = v1::PodSandboxState::SandboxReady as i32;
    sandboxes
        .iter()
        .max_by_key(|s| (s.state == ready, s.created_at))
}

/// The sandbox id `port-forward` works on: the argument, or the pod's sandbox.
pub async fn sandbox_id(cri: &Cri, arg: &str, namespace: Option<&str>) -> anyhow::Result<String> {
    let known = async |a: &str| known_sandbox(cri, a).await;
    let target = route(arg, namespace.is_some(), known).await?;
    let ns = super::namespace_or_default(namespace);
    match pod_of(cri, &target, &ns).await? {
        None => Ok(arg_of(&target)),
        Some((name, pod)) => {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let mut client = cri.runtime().await?;
            let filter = v1::PodSandboxFilter {
                label_selector: [(POD_UID_LABEL.to_string(), uid)].into(),
                ..Default::default()
            };
            let sandboxes = crate::pods::list_pods(cri, &mut client, Some(filter)).await?;
            match pick_sandbox(&sandboxes) {
                Some(s) => Ok(s.id.clone()),
                None => Err(KubeError::bad_request(format!(
                    "pod {name} does not have a host assigned"
                ))
                .into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(json: &str) -> Pod {
        serde_json::from_str(json).expect("pod")
    }

    const TWO: &str = r#"{"metadata":{"name":"web"},
        "spec":{"containers":[{"name":"a"},{"name":"b"}],"initContainers":[{"name":"setup"}]},
        "status":{"containerStatuses":[
            {"name":"a","containerID":"corral://aaa","image":"","imageID":"","ready":true,"restartCount":1,
             "lastState":{"terminated":{"exitCode":1,"containerID":"corral://old"}}},
            {"name":"b","image":"","imageID":"","ready":false,"restartCount":0,
             "state":{"waiting":{"reason":"ImagePullBackOff"}}}]}}"#;

    #[test]
    fn picks_containers_like_kubectl() {
        let p = pod(TWO);
        let got = pick(&p, None, false).expect("first");
        assert_eq!(got.name, "a");
        assert_eq!(got.id, "aaa");
        assert_eq!(
            got.defaulted.as_deref(),
            Some("Defaulted container \"a\" out of: a, b, setup (init)")
        );
        let got = pick(&p, Some("a"), true).expect("previous");
        assert_eq!(got.id, "old");
        assert_eq!(got.defaulted, None);
        assert_eq!(
            pick(&p, Some("b"), false).expect_err("waiting").to_string(),
            "Error from server (BadRequest): container \"b\" in pod \"web\" is waiting to start: ImagePullBackOff"
        );
        assert_eq!(
            pick(&p, Some("b"), true)
                .expect_err("no previous")
                .to_string(),
            "Error from server (BadRequest): previous terminated container \"b\" in pod \"web\" not found"
        );
        assert_eq!(
            pick(&p, Some("zz"), false)
                .expect_err("unknown")
                .to_string(),
            "error: container zz is not valid for pod web"
        );
        let one = pod(
            r#"{"metadata":{"name":"x","annotations":{"kubectl.kubernetes.io/default-container":"b"}},
            "spec":{"containers":[{"name":"a"},{"name":"b"}]},
            "status":{"containerStatuses":[{"name":"b","containerID":"corral://bbb","image":"","imageID":"","ready":true,"restartCount":0}]}}"#,
        );
        let got = pick(&one, None, false).expect("annotated");
        assert_eq!(
            (got.name.as_str(), got.id.as_str(), got.defaulted),
            ("b", "bbb", None)
        );
        assert_eq!(strip_scheme("containerd://x"), "x");
        assert_eq!(strip_scheme("plain"), "plain");
    }

    #[tokio::test]
    async fn routing_rule() {
        let known = async |_: &str| Ok(true);
        let unknown = async |_: &str| Ok(false);
        let never = async |_: &str| -> anyhow::Result<bool> { panic!("CRI asked") };
        assert_eq!(
            route("abc123", false, known).await.expect("r"),
            Target::Cri("abc123".into())
        );
        assert_eq!(
            route("web", false, unknown).await.expect("r"),
            Target::Either("web".into())
        );
        assert_eq!(
            route("abc", true, never).await.expect("r"),
            Target::Pod("abc".into())
        );
        assert_eq!(
            route("pod/abc", false, never).await.expect("r"),
            Target::Pod("abc".into())
        );
        assert_eq!(
            route("po/abc", false, never).await.expect("r"),
            Target::Pod("abc".into())
        );
        let failing = async |_: &str| -> anyhow::Result<bool> { anyhow::bail!("no runtime") };
        assert_eq!(
            route("web", false, failing).await.expect("r"),
            Target::Either("web".into())
        );
    }

    #[test]
    fn sandboxes_prefer_ready_then_newest() {
        let sb = |id: &str, ready: bool, at: i64| v1::PodSandbox {
            id: id.into(),
            state: if ready {
                v1::PodSandboxState::SandboxReady as i32
            } else {
                v1::PodSandboxState::SandboxNotready as i32
            },
            created_at: at,
            ..Default::default()
        };
        let list = [sb("old", true, 1), sb("dead", false, 9), sb("new", true, 5)];
        assert_eq!(pick_sandbox(&list).map(|s| s.id.as_str()), Some("new"));
        assert!(pick_sandbox(&[]).is_none());
    }
}
