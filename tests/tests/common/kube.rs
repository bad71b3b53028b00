//! Helpers for pod manager tests: a daemon with busybox pulled, the `corral.v1.KubeService`
//! client, manifests naming the test image, waits on pod status, and a check that deleted pods
//! left nothing behind.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use corral_cri_api::corral::kube_service_client::KubeServiceClient;
use corral_cri_api::corral::{
    ApplyRequest, DeleteRequest, Event, EventsRequest, GetRequest, ObjectRef,
};
use corral_cri_api::v1::{ExecSyncRequest, ListPodSandboxRequest};
use corral_kube::k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use tonic::transport::Channel;

use corral_tests::daemon::DaemonOptions;

use super::pod::{PodEnv, env_with};

pub type Kube = KubeServiceClient<Channel>;

/// A daemon with busybox pulled, and its KubeService client.
pub struct KubeEnv {
    pub kube: Kube,
    pub pods: PodEnv,
}

pub async fn kube_env() -> Result<KubeEnv> {
    kube_env_with(DaemonOptions::default()).await
}

/// [`kube_env`] with a daemon started with `opts`.
pub async fn kube_env_with(opts: DaemonOptions) -> Result<KubeEnv> {
    let pods = env_with(opts).await?;
    let kube = KubeServiceClient::new(pods.d.channel().await?);
    Ok(KubeEnv { kube, pods })
}

/// `IMAGE` in `yaml` becomes the test image (pulled already; policy IfNotPresent).
pub fn manifest(yaml: &str, image: &str) -> String {
    yaml.replace("IMAGE", image)
}

impl KubeEnv {
    pub fn image(&self) -> &str {
        &self.pods.image
    }

    pub async fn apply(&mut self, yaml: &str) -> Result<Vec<(String, String)>, tonic::Status> {
        let manifest = manifest(yaml, &self.pods.image);
        let r = self
            .kube
            .apply(ApplyRequest {
                manifest,
                ..Default::default()
            })
            .await?
            .into_inner();
        Ok(r.results
            .into_iter()
            .map(|r| {
                let o = r.object.unwrap_or_default();
                (format!("{}/{}", o.kind.to_lowercase(), o.name), r.action)
            })
            .collect())
    }

    pub async fn pods(&mut self) -> Result<Vec<Pod>> {
        let r = self
            .kube
            .get(GetRequest {
                kind: "pods".into(),
                all_namespaces: true,
                ..Default::default()
            })
            .await?
            .into_inner();
        r.objects
            .iter()
            .map(|o| serde_json::from_slice(o).context("pod JSON"))
            .collect()
    }

    pub async fn pod(&mut self, name: &str) -> Result<Pod> {
        let r = self
            .kube
            .get(GetRequest {
                kind: "pod".into(),
                name: name.into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let o = r.objects.first().context("no object")?;
        Ok(serde_json::from_slice(o)?)
    }

    /// Waits until `pred` holds for pod `name`; the last pod seen is in the error.
    pub async fn wait_pod(
        &mut self,
        name: &str,
        within: Duration,
        what: &str,
        pred: impl Fn(&Pod) -> bool,
    ) -> Result<Pod> {
        let until = Instant::now() + within;
        loop {
            let p = self.pod(name).await?;
            if pred(&p) {
                return Ok(p);
            }
            if Instant::now() > until {
                bail!(
                    "pod {name}: not {what} after {within:?}; status: {}",
                    serde_json::to_string_pretty(&p.status).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_phase(&mut self, name: &str, phase: &str, within: Duration) -> Result<Pod> {
        self.wait_pod(name, within, phase, |p| self::phase(p) == phase)
            .await
    }

    pub async fn events(&mut self, name: &str) -> Result<Vec<Event>> {
        Ok(self
            .kube
            .events(EventsRequest {
                object: Some(ObjectRef {
                    kind: "Pod".into(),
                    namespace: String::new(),
                    name: name.into(),
                }),
            })
            .await?
            .into_inner()
            .events)
    }

    pub async fn delete(&mut self, name: &str, grace: Option<i64>) -> Result<(), tonic::Status> {
        self.kube
            .delete(DeleteRequest {
                kind: "pods".into(),
                names: vec![name.into()],
                grace_period_seconds: grace,
                wait: true,
                ..Default::default()
            })
            .await?;
        Ok(())
    }

    /// ExecSync in a pod's container, by name.
    pub async fn exec(
        &mut self,
        pod: &str,
        container: &str,
        cmd: &[&str],
    ) -> Result<(i32, String)> {
        let p = self.pod(pod).await?;
        let id = container_id(&p, container).context("no container id")?;
        let r = self
            .pods
            .rt
            .exec_sync(ExecSyncRequest {
                container_id: id,
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout: 10,
            })
            .await?
            .into_inner();
        Ok((r.exit_code, String::from_utf8_lossy(&r.stdout).into_owned()))
    }

    /// The text of a container's current log (from the CRI log file).
    pub async fn log(&mut self, pod: &str, container: &str) -> Result<String> {
        let p = self.pod(pod).await?;
        let id = container_id(&p, container).context("no container id")?;
        let st = self.pods.status(&id).await?;
        let text = std::fs::read_to_string(&st.log_path)
            .with_context(|| format!("reading {}", st.log_path))?;
        Ok(super::pod::parse_log(&text)
            .into_iter()
            .map(|(_, _, t)| t + "\n")
            .collect())
    }

    /// Every pod sandbox the daemon has.
    pub async fn sandboxes(&mut self) -> Result<Vec<corral_cri_api::v1::PodSandbox>> {
        Ok(self
            .pods
            .rt
            .list_pod_sandbox(ListPodSandboxRequest::default())
            .await?
            .into_inner()
            .items)
    }

    /// Deletes every pod, then checks nothing is left: no sandboxes, no pod directories, and
    /// the daemon-wide checks (mounts, cgroups, network).
    pub async fn delete_all_and_assert_clean(&mut self) -> Result<()> {
        self.kube
            .delete(DeleteRequest {
                kind: "pods".into(),
                selector: "!nonexistent-label".into(),
                grace_period_seconds: Some(0),
                wait: true,
                ..Default::default()
            })
            .await?;
        let left = self.pods().await?;
        assert!(left.is_empty(), "pods left in the store: {}", left.len());
        let sandboxes = self.sandboxes().await?;
        assert!(sandboxes.is_empty(), "sandboxes left: {sandboxes:?}");
        let dirs: Vec<_> = std::fs::read_dir(self.pods.d.root().join("kubelet/pods"))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(dirs.is_empty(), "pod directories left: {dirs:?}");
        self.pods.assert_clean();
        Ok(())
    }
}

pub fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

pub fn container_status<'a>(p: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    let s = p.status.as_ref()?;
    s.container_statuses
        .iter()
        .flatten()
        .chain(s.init_container_statuses.iter().flatten())
        .find(|c| c.name == name)
}

pub fn container_id(p: &Pod, name: &str) -> Option<String> {
    container_status(p, name)?
        .container_id
        .as_deref()
        .map(|id| id.trim_start_matches("corral://").to_string())
}

pub fn condition(p: &Pod, kind: &str) -> Option<String> {
    p.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
}

pub fn running(p: &Pod, name: &str) -> bool {
    container_status(p, name)
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some())
}

/// The reason a container is waiting, if it is.
pub fn waiting_reason<'a>(p: &'a Pod, name: &str) -> Option<&'a str> {
    container_status(p, name)?
        .state
        .as_ref()?
        .waiting
        .as_ref()?
        .reason
        .as_deref()
}

/// The message of a waiting container ("" when it is not waiting).
pub fn waiting_message(p: &Pod, name: &str) -> String {
    container_status(p, name)
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.message.clone())
        .unwrap_or_default()
}

pub fn restarts(p: &Pod, name: &str) -> i32 {
    container_status(p, name).map_or(0, |c| c.restart_count)
}
