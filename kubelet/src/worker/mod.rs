//! One pod's worker: the kubelet's `SyncPod` for one host.
//!
//! Each sync reads the pod from the store and the pod's sandboxes and containers from the CRI
//! (labelled with the pod's uid and container names, as the kubelet labels them), so a daemon
//! restart loses nothing but back-off timers, probe results and events. Then, in order:
//!
//! 1. deletion (deletionTimestamp set): preStop hooks, StopContainer with the grace period,
//!    StopPodSandbox, RemovePodSandbox, volumes torn down, the pod removed from the store;
//! 2. a nodeSelector that does not match the node's labels: Pending, unschedulable;
//! 3. `activeDeadlineSeconds` passed: containers killed, Failed `DeadlineExceeded`;
//! 4. a ready sandbox (RunPodSandbox with the pod's volumes and `/etc/hosts` prepared first);
//! 5. init containers one after another, each to success (a failure follows the restart
//!    policy, with the crash-loop back-off);
//! 6. app containers: started, restarted per the restart policy and back-off, killed when
//!    their liveness probe fails; probes run in their own tasks (`prober`);
//! 7. the pod's status (`corral_kube::status::pod_status`) written to the store when it
//!    changed; a pod that reached Succeeded or Failed has its sandbox stopped (its containers
//!    stay for their logs).
//!
//! Here: the worker, its loop and the sync's order (steps 1 and 2). The phases, each an
//! `impl Worker` of its own: `running.rs` (steps 3 to 6), `sandbox.rs`, `start.rs` (back-off,
//! restart, CreateContainer/StartContainer), `image.rs` (pulls), `stop.rs` (kills and
//! teardown), `status.rs` (observed states, step 7).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use corral_cri_api::v1::{
    Container as CriContainer, ContainerState as CriState, ContainerStatus as CriStatus,
    PodSandboxConfig, PodSandboxState,
};
use corral_kube::backoff::{self, Backoff, Decision};
use corral_kube::env::PodContext;
use corral_kube::k8s_openapi::api::core::v1::{Container, Pod, Secret};
use corral_kube::k8s_openapi::jiff::{SignedDuration, Timestamp};
use corral_kube::status::{ContainerObserved, Observed, State, Terminated};
use corral_kube::store::Kind;
use tokio::sync::Notify;

use crate::prober::Probes;
use crate::recorder::{EventType, container_path};
use crate::translate::{
    self, CONTAINER_NAME_LABEL, ContainerInputs, ContainerKind, PullPolicy, SandboxOptions,
};
use crate::volumes::{self, PodVolumes};
use crate::{Kubelet, PodKey};

mod image;
mod running;
mod sandbox;
mod start;
mod status;
mod stop;

/// How often a pod is synced when nothing wakes it.
const RESYNC: Duration = Duration::from_secs(2);
/// Grace period when the pod names none (Kubernetes' default).
const DEFAULT_GRACE: i64 = 30;

/// Mode of the pod's directory and its `containers/<name>` directories (the kubelet's 0750).
const POD_DIR_MODE: u32 = 0o750;

/// What a sync asks for next.
enum Next {
    /// Sync again after this long, or sooner when woken.
    After(Duration),
    /// The pod is gone: the worker ends.
    Done,
}

/// A waiting reason the CRI cannot tell (the container does not exist).
#[derive(Clone, Debug)]
struct Waiting {
    reason: String,
    message: String,
}

/// The latest instances of one container name in the pod's sandbox.
#[derive(Default)]
struct Instances {
    /// Newest first (by attempt).
    all: Vec<(CriContainer, CriStatus)>,
}

impl Instances {
    fn latest(&self) -> Option<&(CriContainer, CriStatus)> {
        self.all.first()
    }
    fn previous(&self) -> Option<&(CriContainer, CriStatus)> {
        self.all.get(1)
    }
}

pub(super) struct Worker {
    kubelet: Arc<Kubelet>,
    key: PodKey,
    notify: Arc<Notify>,
    pod_dir: PathBuf,
    sandbox: Option<(String, PodSandboxConfig)>,
    pod_ips: Vec<String>,
    waiting: HashMap<String, Waiting>,
    crash_backoff: Backoff,
    pull_backoff: Backoff,
    /// When each image's last pull failed (the pull back-off counts from there).
    pull_failed: HashMap<String, Timestamp>,
    /// Image references as pulled, by image name in the spec.
    images: HashMap<String, String>,
    /// Containers killed because their spec changed: restarted at once, whatever the policy.
    changed: std::collections::HashSet<String>,
    probes: Probes,
    start_time: Option<Timestamp>,
    terminal: bool,
    deadline_exceeded: bool,
    volumes: Option<PodVolumes>,
    last_status: Option<serde_json::Value>,
}

fn to_timestamp(nanos: i64) -> Option<Timestamp> {
    if nanos <= 0 {
        return None;
    }
    Timestamp::from_nanosecond(i128::from(nanos)).ok()
}

fn now() -> Timestamp {
    crate::now()
}

/// The CRI attempt of a container (its restart count).
fn attempt(c: &CriContainer) -> u32 {
    c.metadata.as_ref().map_or(0, |m| m.attempt)
}

fn terminated_of(s: &CriStatus) -> Terminated {
    let exit_code = s.exit_code;
    Terminated {
        exit_code,
        signal: None,
        reason: (!s.reason.is_empty()).then(|| s.reason.clone()),
        message: (!s.message.is_empty()).then(|| s.message.clone()),
        started_at: to_timestamp(s.started_at),
        finished_at: to_timestamp(s.finished_at),
        container_id: Some(format!("corral://{}", s.id)),
    }
}

impl Worker {
    pub(super) fn new(kubelet: Arc<Kubelet>, key: PodKey, notify: Arc<Notify>) -> Worker {
        let pod_dir = kubelet.pod_dir(&key.uid);
        let probes = Probes::new(Arc::clone(&notify));
        Worker {
            kubelet,
            key,
            notify,
            pod_dir,
            sandbox: None,
            pod_ips: Vec::new(),
            waiting: HashMap::new(),
            crash_backoff: Backoff::crash_loop(),
            pull_backoff: Backoff::image_pull(),
            pull_failed: HashMap::new(),
            images: HashMap::new(),
            changed: std::collections::HashSet::new(),
            probes,
            start_time: None,
            terminal: false,
            deadline_exceeded: false,
            volumes: None,
            last_status: None,
        }
    }

    /// Syncs until the pod is gone.
    pub(super) async fn run(mut self) {
        loop {
            let next = match self.sync().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(pod = %self.key, error = %e, "pod sync failed");
                    Next::After(RESYNC)
                }
            };
            match next {
                Next::Done => break,
                Next::After(d) => {
                    tokio::select! {
                        () = self.notify.notified() => {}
                        () = tokio::time::sleep(d) => {}
                    }
                }
            }
        }
        self.probes.stop_all();
        self.kubelet.worker_done(&self.key);
    }

    fn pod(&self) -> Option<Pod> {
        self.kubelet.pod(&self.key)
    }

    fn event(&self, field_path: &str, kind: EventType, reason: &str, message: &str) {
        self.kubelet
            .recorder
            .record(&self.key.uid, field_path, kind, reason, message);
    }

    async fn sync(&mut self) -> Result<Next, String> {
        let Some(pod) = self.pod() else {
            // Removed from the store without us (namespace deletion): tear down anyway.
            self.terminate(None, 0).await?;
            return Ok(Next::Done);
        };
        if pod.metadata.deletion_timestamp.is_some() {
            let grace = pod
                .metadata
                .deletion_grace_period_seconds
                .or_else(|| {
                    pod.spec
                        .as_ref()
                        .and_then(|s| s.termination_grace_period_seconds)
                })
                .unwrap_or(DEFAULT_GRACE);
            self.terminate(Some(&pod), grace).await?;
            self.kubelet.remove_pod(&self.key);
            return Ok(Next::Done);
        }
        if self.start_time.is_none() {
            self.start_time = Some(
                pod.status
                    .as_ref()
                    .and_then(|s| s.start_time.as_ref())
                    .map_or_else(now, |t| t.0),
            );
        }
        if self.sandbox.is_none() && !self.terminal {
            self.adopt_finished(&pod).await;
        }
        let mut observed = Observed {
            start_time: self.start_time,
            ..Default::default()
        };
        if let Some(msg) = self.kubelet.unschedulable(&pod) {
            observed.unschedulable = Some(msg);
            self.write_status(&pod, &observed);
            return Ok(Next::After(RESYNC * 5));
        }
        let next = self.sync_running(&pod, &mut observed).await?;
        self.write_status(&pod, &observed);
        Ok(next)
    }

    fn context(&self, _pod: &Pod) -> PodContext {
        PodContext {
            pod_ips: self.pod_ips.clone(),
            host_ips: self.kubelet.host_ips(),
            node_name: self.kubelet.config.node_name.clone(),
            node_allocatable: self.kubelet.allocatable(),
        }
    }

    /// The pod's containers by name, newest attempt first.
    async fn instances(&self, sandbox_id: &str) -> Result<HashMap<String, Instances>, String> {
        let list = self
            .kubelet
            .cri
            .containers(sandbox_id)
            .await
            .map_err(|e| e.message().to_string())?;
        let mut by_name: HashMap<String, Instances> = HashMap::new();
        for c in list {
            let Some(name) = c.labels.get(CONTAINER_NAME_LABEL).cloned() else {
                continue;
            };
            let Ok(st) = self.kubelet.cri.container_status(&c.id).await else {
                continue;
            };
            by_name.entry(name).or_default().all.push((c, st));
        }
        for i in by_name.values_mut() {
            i.all.sort_by_key(|(c, _)| std::cmp::Reverse(attempt(c)));
        }
        Ok(by_name)
    }
}

fn grace_of(pod: &Pod) -> Duration {
    let secs = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(DEFAULT_GRACE);
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// The node's labels, as `nodeSelector` is matched against them.
pub(super) fn node_selector_matches(
    selector: Option<&BTreeMap<String, String>>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.is_none_or(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}
