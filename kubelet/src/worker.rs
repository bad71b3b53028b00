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
//!    their liveness probe fails; probes run in their own tasks (`probes`);
//! 7. the pod's status (`corral_kube::status::pod_status`) written to the store when it
//!    changed; a pod that reached Succeeded or Failed has its sandbox stopped (its containers
//!    stay for their logs).

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

use super::probes::Probes;
use super::recorder::{EventType, container_path};
use super::translate::{
    self, CONTAINER_NAME_LABEL, ContainerInputs, ContainerKind, PullPolicy, SandboxOptions,
};
use super::volumes::{self, PodVolumes};
use super::{Kubelet, PodKey};

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
    super::now()
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

    /// Steps 3 to 6, filling `observed`.
    async fn sync_running(&mut self, pod: &Pod, observed: &mut Observed) -> Result<Next, String> {
        let spec = pod.spec.clone().unwrap_or_default();
        if !self.terminal && self.deadline_passed(pod) {
            self.event(
                "",
                EventType::Normal,
                "DeadlineExceeded",
                "Pod was active on the node longer than the specified deadline",
            );
            self.deadline_exceeded = true;
            self.terminal = true;
            self.kill_containers(pod, 0).await;
        }
        if !self.terminal && self.sandbox.is_none() {
            self.ensure_sandbox(pod).await?;
        }
        let Some((sandbox_id, sandbox_config)) = self.sandbox.clone() else {
            return Ok(Next::After(RESYNC));
        };
        observed.sandbox_ready = !self.terminal;
        observed.pod_ips = self.pod_ips.clone();
        observed.deadline_exceeded = self.deadline_exceeded;
        let instances = self.instances(&sandbox_id).await?;
        let restart_policy = spec
            .restart_policy
            .as_deref()
            .unwrap_or("Always")
            .to_string();
        let mut next = RESYNC;

        // Init containers, one after another.
        let inits = spec.init_containers.clone().unwrap_or_default();
        let mut inits_done = true;
        for c in &inits {
            let inst = instances.get(&c.name);
            observed
                .init_containers
                .extend(self.observe(c, inst).map(|o| (c.name.clone(), o)));
            if self.terminal {
                continue;
            }
            let latest = inst.and_then(Instances::latest);
            match latest.map(|(_, s)| s.state()) {
                None => {
                    inits_done = false;
                    self.start(pod, c, ContainerKind::Init, 0, &sandbox_id, &sandbox_config)
                        .await;
                    break;
                }
                Some(CriState::ContainerCreated | CriState::ContainerRunning) => {
                    inits_done = false;
                    break;
                }
                Some(CriState::ContainerExited) | Some(CriState::ContainerUnknown) => {
                    let Some((_, st)) = latest else { break };
                    if st.exit_code == 0 && st.state() == CriState::ContainerExited {
                        continue;
                    }
                    inits_done = false;
                    if restart_policy == "Never" {
                        self.terminal = true;
                        break;
                    }
                    if let Some(wait) = self.backoff_wait(c, true, st) {
                        next = next.min(wait);
                    } else {
                        self.restart(pod, c, ContainerKind::Init, &instances).await;
                    }
                    break;
                }
            }
        }

        // App containers.
        let mut any_will_run = false;
        for c in &spec.containers {
            let inst = instances.get(&c.name);
            if !self.terminal && inits_done {
                let latest = inst.and_then(Instances::latest);
                match latest {
                    None => {
                        any_will_run = true;
                        self.start(
                            pod,
                            c,
                            ContainerKind::Regular,
                            0,
                            &sandbox_id,
                            &sandbox_config,
                        )
                        .await;
                    }
                    Some((cc, st)) => match st.state() {
                        CriState::ContainerRunning
                            if cc
                                .annotations
                                .get(translate::CONTAINER_HASH_ANNOTATION)
                                .is_some_and(|h| *h != translate::container_hash(c)) =>
                        {
                            // The spec changed (a new image): kill it; it starts again at once.
                            any_will_run = true;
                            if self.changed.insert(st.id.clone()) {
                                self.kill_for_restart(pod, c, &st.id, "definition changed");
                            }
                        }
                        CriState::ContainerRunning => {
                            any_will_run = true;
                            self.probes.ensure(
                                &self.kubelet,
                                &self.key,
                                pod,
                                c,
                                &st.id,
                                &self.pod_ips,
                            );
                            if let Some(why) = self.probes.liveness_failed(&st.id) {
                                self.kill_for_restart(pod, c, &st.id, &format!("failed {why}"));
                            }
                        }
                        CriState::ContainerCreated => any_will_run = true,
                        CriState::ContainerExited | CriState::ContainerUnknown
                            if self.changed.contains(&st.id) =>
                        {
                            any_will_run = true;
                            self.changed.remove(&st.id);
                            self.waiting.remove(&c.name);
                            self.restart(pod, c, ContainerKind::Regular, &instances)
                                .await;
                        }
                        CriState::ContainerExited | CriState::ContainerUnknown => {
                            self.probes.forget(&st.id);
                            let restart = match restart_policy.as_str() {
                                "Never" => false,
                                "OnFailure" => st.exit_code != 0,
                                _ => true,
                            };
                            if restart {
                                any_will_run = true;
                                if let Some(wait) = self.backoff_wait(c, false, st) {
                                    next = next.min(wait);
                                } else {
                                    self.restart(pod, c, ContainerKind::Regular, &instances)
                                        .await;
                                }
                            }
                        }
                    },
                }
            } else if !inits_done && !self.terminal {
                any_will_run = true;
            }
            let inst = instances.get(&c.name);
            let mut o = self.observe(c, inst);
            if let Some(o) = &mut o
                && matches!(o.state, State::Running { .. })
            {
                let id = o.container_id.clone().unwrap_or_default();
                let id = id.trim_start_matches("corral://");
                let (ready, started) = self.probes.status(id, c);
                o.ready = ready;
                o.started = Some(started);
            }
            observed.containers.extend(o.map(|o| (c.name.clone(), o)));
        }
        if !any_will_run && inits_done && !spec.containers.is_empty() {
            self.terminal = true;
        }
        if self.terminal {
            observed.terminal = true;
            observed.sandbox_ready = false;
            self.probes.stop_all();
            if let Err(e) = self.kubelet.cri.stop_sandbox(&sandbox_id).await {
                tracing::warn!(pod = %self.key, error = %e, "stopping a finished pod's sandbox");
            }
            return Ok(Next::After(RESYNC * 5));
        }
        Ok(Next::After(next))
    }

    /// After a restart: a pod the store says has finished stays finished (its containers are
    /// not run again); its newest sandbox is where its containers are.
    async fn adopt_finished(&mut self, pod: &Pod) {
        let status = pod.status.as_ref();
        if !matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        ) {
            return;
        }
        self.terminal = true;
        self.deadline_exceeded =
            status.and_then(|s| s.reason.as_deref()) == Some("DeadlineExceeded");
        self.pod_ips = status
            .and_then(|s| s.pod_ips.as_ref())
            .map(|ips| ips.iter().map(|i| i.ip.clone()).collect())
            .unwrap_or_default();
        if let Ok(list) = self.kubelet.cri.sandboxes(&self.key.uid).await
            && let Some(s) = list.last()
        {
            self.sandbox = Some((s.id.clone(), PodSandboxConfig::default()));
        }
    }

    fn deadline_passed(&self, pod: &Pod) -> bool {
        let (Some(secs), Some(start)) = (
            pod.spec.as_ref().and_then(|s| s.active_deadline_seconds),
            self.start_time,
        ) else {
            return false;
        };
        now().duration_since(start) >= SignedDuration::from_secs(secs)
    }

    /// What the status shows of one container.
    fn observe(&self, c: &Container, inst: Option<&Instances>) -> Option<ContainerObserved> {
        let latest = inst.and_then(Instances::latest);
        let image = self.images.get(c.image.as_deref().unwrap_or("")).cloned();
        let Some((cc, st)) = latest else {
            return self.waiting.get(&c.name).map(|w| ContainerObserved {
                state: State::Waiting {
                    reason: w.reason.clone(),
                    message: Some(w.message.clone()),
                },
                last_terminated: None,
                restart_count: 0,
                ready: false,
                started: Some(false),
                image,
                image_id: None,
                container_id: None,
            });
        };
        let mut state = match st.state() {
            CriState::ContainerCreated => State::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
            CriState::ContainerRunning => State::Running {
                started_at: to_timestamp(st.started_at).unwrap_or_else(now),
            },
            CriState::ContainerExited | CriState::ContainerUnknown => {
                State::Terminated(terminated_of(st))
            }
        };
        let mut last_terminated = inst
            .and_then(Instances::previous)
            .map(|(_, s)| terminated_of(s));
        let restart_count = i32::try_from(attempt(cc)).unwrap_or(i32::MAX);
        // A container waiting for its restart shows the back-off (or image/config error).
        if let (State::Terminated(t), Some(w)) = (&state, self.waiting.get(&c.name)) {
            last_terminated = Some(t.clone());
            state = State::Waiting {
                reason: w.reason.clone(),
                message: Some(w.message.clone()),
            };
        }
        Some(ContainerObserved {
            state,
            last_terminated,
            restart_count,
            ready: false,
            started: None,
            image: image.or_else(|| Some(st.image_ref.clone()).filter(|s| !s.is_empty())),
            image_id: Some(st.image_ref.clone()).filter(|s| !s.is_empty()),
            container_id: Some(format!("corral://{}", st.id)),
        })
    }

    /// Whether the container must wait before restarting; records the BackOff state.
    fn backoff_wait(&mut self, c: &Container, init: bool, st: &CriStatus) -> Option<Duration> {
        let key = backoff::key(&self.key.uid, &c.name);
        let finished = to_timestamp(st.finished_at).unwrap_or_else(now);
        match self.crash_backoff.decide(&key, finished, now()) {
            Decision::Start { .. } => {
                self.waiting.remove(&c.name);
                None
            }
            Decision::Wait { remaining, delay } => {
                let message = backoff::crash_loop_message(
                    delay,
                    &c.name,
                    &self.key.name,
                    &self.key.namespace,
                    &self.key.uid,
                );
                if !matches!(self.waiting.get(&c.name), Some(w) if w.reason == "CrashLoopBackOff") {
                    self.event(
                        &container_path(init, &c.name),
                        EventType::Warning,
                        "BackOff",
                        "Back-off restarting failed container",
                    );
                }
                self.waiting.insert(
                    c.name.clone(),
                    Waiting {
                        reason: "CrashLoopBackOff".into(),
                        message,
                    },
                );
                Some(Duration::from_millis(
                    u64::try_from(remaining.as_millis()).unwrap_or(0).max(100),
                ))
            }
        }
    }

    /// Sets up the pod's directory, volumes and sandbox.
    async fn ensure_sandbox(&mut self, pod: &Pod) -> Result<(), String> {
        let sandboxes = self
            .kubelet
            .cri
            .sandboxes(&self.key.uid)
            .await
            .map_err(|e| e.message().to_string())?;
        let ready = sandboxes
            .iter()
            .rev()
            .find(|s| s.state() == PodSandboxState::SandboxReady);
        let attempt = sandboxes
            .iter()
            .filter_map(|s| s.metadata.as_ref().map(|m| m.attempt + 1))
            .max()
            .unwrap_or(0);
        let logs = self.pod_dir.join("logs");
        let opts = SandboxOptions {
            attempt: ready
                .and_then(|s| s.metadata.as_ref().map(|m| m.attempt))
                .unwrap_or(attempt),
            log_dir: logs.clone(),
            cgroup_parent: String::new(),
            cluster_domain: None,
            cluster_dns: Vec::new(),
            host_resolv_conf: std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        };
        let config = translate::sandbox_config(pod, &opts).map_err(|e| e.to_string())?;
        let ctx = self.context(pod);
        let volumes = {
            let pod = pod.clone();
            let dir = self.pod_dir.join("volumes");
            let kubelet = Arc::clone(&self.kubelet);
            let ctx = ctx.clone();
            let pod_dir = self.pod_dir.clone();
            tokio::task::spawn_blocking(move || {
                // 0750 as the kubelet makes it: no host user reaches the pod's volumes, logs or
                // termination-log files (which are 0666 for the container's user).
                corral_fsutil::mode::create_dir(&pod_dir, POD_DIR_MODE)
                    .map_err(|e| format!("{}: {e}", pod_dir.display()))?;
                std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
                let store = kubelet.store();
                PodVolumes::prepare(&pod, &dir, &*store, &ctx).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())?
        };
        let volumes = match volumes {
            Ok(v) => v,
            Err(e) => {
                self.event("", EventType::Warning, "FailedMount", &e);
                return Err(e);
            }
        };
        self.volumes = Some(volumes);
        let id = match ready {
            Some(s) => s.id.clone(),
            None => {
                // Old sandboxes (host reboot, a crashed shim) go before a new one is made.
                for s in &sandboxes {
                    let _ = self.kubelet.cri.stop_sandbox(&s.id).await;
                    let _ = self.kubelet.cri.remove_sandbox(&s.id).await;
                }
                match self.kubelet.cri.run_sandbox(config.clone()).await {
                    Ok(id) => id,
                    Err(e) => {
                        let msg = format!("Failed to create pod sandbox: {}", e.message());
                        self.event("", EventType::Warning, "FailedCreatePodSandBox", &msg);
                        return Err(msg);
                    }
                }
            }
        };
        let status = self
            .kubelet
            .cri
            .sandbox_status(&id)
            .await
            .map_err(|e| e.message().to_string())?;
        self.pod_ips = status
            .network
            .map(|n| {
                std::iter::once(n.ip)
                    .chain(n.additional_ips.into_iter().map(|i| i.ip))
                    .filter(|ip| !ip.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if self.pod_ips.is_empty() && pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
            self.pod_ips = self.kubelet.host_ips();
        }
        let hosts = if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
            let host = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
            translate::etc_hosts_host_network(pod, &host)
        } else {
            let (hostname, domain) =
                translate::hostname_and_domain(pod, None).map_err(|e| e.to_string())?;
            translate::etc_hosts(pod, &self.pod_ips, &hostname, &domain)
        };
        let hosts_path = self.pod_dir.join("etc-hosts");
        std::fs::write(&hosts_path, hosts).map_err(|e| format!("{}: {e}", hosts_path.display()))?;
        self.sandbox = Some((id, config));
        Ok(())
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

    /// Restarts a container: removes instances older than the latest (the latest stays for
    /// `logs --previous`), then starts the next attempt.
    async fn restart(
        &mut self,
        pod: &Pod,
        c: &Container,
        kind: ContainerKind,
        instances: &HashMap<String, Instances>,
    ) {
        let Some((sandbox_id, sandbox_config)) = self.sandbox.clone() else {
            return;
        };
        let inst = instances.get(&c.name);
        let next = inst
            .and_then(Instances::latest)
            .map_or(0, |(cc, _)| attempt(cc) + 1);
        for (old, _) in inst.into_iter().flat_map(|i| i.all.iter().skip(1)) {
            let _ = self.kubelet.cri.remove_container(&old.id).await;
        }
        self.start(pod, c, kind, next, &sandbox_id, &sandbox_config)
            .await;
    }

    /// Stops a running container in the background (its grace period may be long) so that
    /// the next sync restarts it: a Killing event saying why, its probes stopped.
    fn kill_for_restart(&mut self, pod: &Pod, c: &Container, id: &str, why: &str) {
        self.event(
            &container_path(false, &c.name),
            EventType::Normal,
            "Killing",
            &format!("Container {} {why}, will be restarted", c.name),
        );
        self.probes.forget(id);
        let cri = self.kubelet.cri.clone();
        let (id, grace) = (id.to_string(), grace_of(pod));
        let notify = Arc::clone(&self.notify);
        tokio::spawn(async move {
            let _ = cri.stop_container(&id, grace).await;
            notify.notify_one();
        });
    }

    /// Pulls (per the pull policy), creates and starts one container; failures become the
    /// container's waiting reason and an event.
    async fn start(
        &mut self,
        pod: &Pod,
        c: &Container,
        kind: ContainerKind,
        attempt: u32,
        sandbox_id: &str,
        sandbox_config: &PodSandboxConfig,
    ) {
        let init = matches!(kind, ContainerKind::Init);
        let path = container_path(init, &c.name);
        let Some((image, record)) = self.ensure_image(pod, c, &path, sandbox_config).await else {
            return;
        };
        // Image volumes are pulled like the container's image, by their own pull policy.
        let volume_images = self
            .volumes
            .as_ref()
            .map(|v| v.images_for(c))
            .unwrap_or_default();
        for (reference, policy) in volume_images {
            let as_container = Container {
                name: c.name.clone(),
                image: Some(reference),
                image_pull_policy: policy,
                ..Default::default()
            };
            if self
                .ensure_image(pod, &as_container, &path, sandbox_config)
                .await
                .is_none()
            {
                return;
            }
        }
        // runAsNonRoot against the image's user, as the kubelet checks it before creating.
        if let Some(img) = record {
            let uid = img.uid.map(|u| u.value);
            if let Err(msg) = translate::verify_run_as_non_root(pod, c, uid, &img.username) {
                self.config_error(&path, &c.name, &msg);
                return;
            }
        }
        let ctx = self.context(pod);
        let env = {
            let store = self.kubelet.store();
            corral_kube::env::environment(pod, c, &ctx, &*store)
        };
        let env = match env {
            Ok(env) => env,
            Err(e) => {
                self.config_error(&path, &c.name, &e.to_string());
                return;
            }
        };
        let mut mounts = match self.volumes.as_ref().map(|v| v.mounts(c, Some(&env))) {
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                self.config_error(&path, &c.name, &e.to_string());
                return;
            }
            None => Vec::new(),
        };
        let hosts = self.pod_dir.join("etc-hosts");
        if translate::mounts_etc_hosts(c, &self.pod_ips)
            && !mounts.iter().any(|m| m.container_path == "/etc/hosts")
        {
            mounts.push(corral_cri_api::v1::Mount {
                container_path: "/etc/hosts".into(),
                host_path: hosts.to_string_lossy().into_owned(),
                ..Default::default()
            });
        }
        let termination_log = match self.termination_log(&c.name, attempt) {
            Ok(p) => p,
            Err(e) => {
                self.config_error(&path, &c.name, &e);
                return;
            }
        };
        let seccomp_root = self.kubelet.config.dir.join("seccomp");
        let inputs = ContainerInputs {
            kind,
            attempt,
            image: &image,
            env: &env,
            mounts,
            termination_message_file: Some(termination_log),
            memory_capacity: self.kubelet.memory_capacity(),
            hugepage_sizes: &self.kubelet.hugepage_sizes,
            seccomp_profile_root: &seccomp_root,
            seccomp_default: false,
            log_path: format!("{}/{attempt}.log", c.name),
        };
        let config = match translate::container_config(pod, c, inputs) {
            Ok(cfg) => cfg,
            Err(e) => {
                self.config_error(&path, &c.name, &e.to_string());
                return;
            }
        };
        let cri = &self.kubelet.cri;
        let id = match cri
            .create_container(sandbox_id, config, sandbox_config.clone())
            .await
        {
            Ok(id) => id,
            Err(e) => {
                self.start_failed(&path, &c.name, "CreateContainerError", e.message());
                return;
            }
        };
        self.event(
            &path,
            EventType::Normal,
            "Created",
            &format!("Created container: {}", c.name),
        );
        if let Err(e) = cri.start_container(&id).await {
            self.start_failed(&path, &c.name, "RunContainerError", e.message());
            return;
        }
        self.waiting.remove(&c.name);
        self.event(
            &path,
            EventType::Normal,
            "Started",
            &format!("Started container {}", c.name),
        );
        if let Some(h) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let target_ips = self.pod_ips.clone();
            if let Err(msg) = super::probes::run_hook(&self.kubelet, h, &id, c, &target_ips).await {
                self.event(
                    &path,
                    EventType::Warning,
                    "FailedPostStartHook",
                    &format!("PostStartHook failed: {msg}"),
                );
                let _ = cri.stop_container(&id, grace_of(pod)).await;
            }
        }
    }

    /// The host file behind a container's `terminationMessagePath`: world-writable, as the
    /// kubelet makes it, so any container user can write it through its bind mount, inside
    /// 0750 directories (the pod's and the container's), so no host user can.
    fn termination_log(&self, name: &str, attempt: u32) -> Result<PathBuf, String> {
        use std::os::unix::fs::PermissionsExt;
        // The pod's directory is made 0750 with its volumes; the missing ones here get it too.
        let dir = self.pod_dir.join("containers").join(name);
        corral_fsutil::mode::create_dir(&dir, POD_DIR_MODE)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let file = dir.join(format!("{attempt}-termination-log"));
        std::fs::write(&file, b"").map_err(|e| format!("{}: {e}", file.display()))?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666))
            .map_err(|e| format!("{}: {e}", file.display()))?;
        Ok(file)
    }

    fn config_error(&mut self, path: &str, name: &str, msg: &str) {
        self.start_failed(path, name, "CreateContainerConfigError", msg);
    }

    /// A container that could not be started: a Failed event and its waiting reason.
    fn start_failed(&mut self, path: &str, name: &str, reason: &str, msg: &str) {
        self.event(path, EventType::Warning, "Failed", &format!("Error: {msg}"));
        self.waiting.insert(
            name.into(),
            Waiting {
                reason: reason.into(),
                message: msg.into(),
            },
        );
    }

    /// The image reference to create the container from, pulling it when the policy says so,
    /// and its ImageStatus record.
    async fn ensure_image(
        &mut self,
        pod: &Pod,
        c: &Container,
        path: &str,
        sandbox_config: &PodSandboxConfig,
    ) -> Option<(String, Option<corral_cri_api::v1::Image>)> {
        let image = c.image.clone().unwrap_or_default();
        let cri = self.kubelet.cri.clone();
        let present = cri.image_present(&image).await.ok().flatten();
        let policy = translate::pull_policy(c);
        let must_pull = match policy {
            PullPolicy::Always => true,
            PullPolicy::IfNotPresent => present.is_none(),
            PullPolicy::Never => false,
        };
        if !must_pull {
            return match present {
                Some(record) => {
                    self.event(
                        path,
                        EventType::Normal,
                        "Pulled",
                        &format!("Container image \"{image}\" already present on machine"),
                    );
                    self.images.insert(image.clone(), image.clone());
                    Some((image, Some(record)))
                }
                None => {
                    let msg = format!(
                        "Container image \"{image}\" is not present with pull policy of Never"
                    );
                    self.event(path, EventType::Warning, "ErrImageNeverPull", &msg);
                    self.waiting.insert(
                        c.name.clone(),
                        Waiting {
                            reason: "ErrImageNeverPull".into(),
                            message: msg,
                        },
                    );
                    None
                }
            };
        }
        let key = format!("{}/{image}", self.key.uid);
        let last_failure = self.pull_failed.get(&key).copied();
        if last_failure.is_some_and(|at| {
            self.pull_backoff
                .in_backoff_since(&key, at, now())
                .is_some()
        }) {
            self.event(
                path,
                EventType::Normal,
                "BackOff",
                &format!("Back-off pulling image \"{image}\""),
            );
            self.waiting.insert(
                c.name.clone(),
                Waiting {
                    reason: "ImagePullBackOff".into(),
                    message: backoff::image_pull_message(&image),
                },
            );
            return None;
        }
        self.event(
            path,
            EventType::Normal,
            "Pulling",
            &format!("Pulling image \"{image}\""),
        );
        let secrets = self.pull_secrets(pod);
        let auth = match translate::auth_for(&image, &secrets) {
            Ok(a) => a.into_iter().next(),
            Err(e) => {
                let msg = format!("Failed to pull image \"{image}\": {e}");
                self.event(path, EventType::Warning, "Failed", &msg);
                self.waiting.insert(
                    c.name.clone(),
                    Waiting {
                        reason: "ErrImagePull".into(),
                        message: msg,
                    },
                );
                return None;
            }
        };
        let begun = std::time::Instant::now();
        match cri.pull(&image, auth, Some(sandbox_config.clone())).await {
            Ok(pulled) => {
                let took = begun.elapsed();
                self.event(
                    path,
                    EventType::Normal,
                    "Pulled",
                    &format!(
                        "Successfully pulled image \"{image}\" in {took:.3?} ({took:.3?} including waiting). Image size: {} bytes.",
                        pulled.image.as_ref().map_or(0, |i| i.size)
                    ),
                );
                self.pull_backoff.reset(&key);
                self.pull_failed.remove(&key);
                self.images.insert(image.clone(), pulled.image_ref.clone());
                Some((image, pulled.image))
            }
            Err(e) => {
                let msg = format!("Failed to pull image \"{image}\": {}", e.message());
                self.event(path, EventType::Warning, "Failed", &msg);
                self.event(path, EventType::Warning, "Failed", "Error: ErrImagePull");
                let at = now();
                self.pull_backoff.next(&key, at, at);
                self.pull_failed.insert(key.clone(), at);
                self.waiting.insert(
                    c.name.clone(),
                    Waiting {
                        reason: "ErrImagePull".into(),
                        message: msg,
                    },
                );
                None
            }
        }
    }

    fn pull_secrets(&self, pod: &Pod) -> Vec<Secret> {
        let store = self.kubelet.store();
        pod.spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.as_ref())
            .into_iter()
            .flatten()
            .filter_map(
                |r| match store.get(Kind::Secret, &self.key.namespace, &r.name) {
                    Some(corral_kube::Object::Secret(s)) => Some(s.clone()),
                    _ => None,
                },
            )
            .collect()
    }

    /// Stops every running container (preStop hooks first) within `grace` seconds.
    async fn kill_containers(&mut self, pod: &Pod, grace: i64) {
        self.probes.stop_all();
        let Some((sandbox_id, _)) = self.sandbox.clone() else {
            return;
        };
        let Ok(list) = self.kubelet.cri.containers(&sandbox_id).await else {
            return;
        };
        let spec = pod.spec.clone().unwrap_or_default();
        let grace = Duration::from_secs(u64::try_from(grace).unwrap_or(0));
        let deadline = tokio::time::Instant::now() + grace;
        let mut tasks = Vec::new();
        for cc in list {
            if cc.state() != CriState::ContainerRunning && cc.state() != CriState::ContainerCreated
            {
                continue;
            }
            let name = cc
                .labels
                .get(CONTAINER_NAME_LABEL)
                .cloned()
                .unwrap_or_default();
            let init = !spec.containers.iter().any(|c| c.name == name);
            let container = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .find(|c| c.name == name)
                .cloned();
            self.event(
                &container_path(init, &name),
                EventType::Normal,
                "Killing",
                &format!("Stopping container {name}"),
            );
            let kubelet = Arc::clone(&self.kubelet);
            let ips = self.pod_ips.clone();
            tasks.push(tokio::spawn(async move {
                if let Some(c) = &container
                    && let Some(h) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
                {
                    let hook = super::probes::run_hook(&kubelet, h, &cc.id, c, &ips);
                    if tokio::time::timeout_at(deadline, hook).await.is_err() {
                        tracing::info!(container = %cc.id, "preStop hook outlived the grace period");
                    }
                }
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                if let Err(e) = kubelet.cri.stop_container(&cc.id, left).await {
                    tracing::warn!(container = %cc.id, error = %e, "stopping a container");
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Kills the pod's containers and removes its sandboxes, volumes and directory.
    async fn terminate(&mut self, pod: Option<&Pod>, grace: i64) -> Result<(), String> {
        // After a restart the worker may not know its sandbox yet: the newest one.
        if self.sandbox.is_none()
            && let Ok(list) = self.kubelet.cri.sandboxes(&self.key.uid).await
            && let Some(s) = list.last()
        {
            self.sandbox = Some((s.id.clone(), PodSandboxConfig::default()));
        }
        if let Some(pod) = pod {
            self.kill_containers(pod, grace).await;
        }
        let sandboxes = self
            .kubelet
            .cri
            .sandboxes(&self.key.uid)
            .await
            .map_err(|e| e.message().to_string())?;
        for s in sandboxes {
            self.kubelet
                .cri
                .stop_sandbox(&s.id)
                .await
                .map_err(|e| e.message().to_string())?;
            self.kubelet
                .cri
                .remove_sandbox(&s.id)
                .await
                .map_err(|e| e.message().to_string())?;
        }
        let dir = self.pod_dir.clone();
        tokio::task::spawn_blocking(move || {
            volumes::teardown(&dir.join("volumes")).map_err(|e| e.to_string())?;
            // Iterative and descriptor-bounded: what is left here may be container-shaped.
            corral_fsutil::remove_tree(&dir).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        self.sandbox = None;
        Ok(())
    }

    /// Writes the pod's status when it changed.
    fn write_status(&mut self, pod: &Pod, observed: &Observed) {
        let mut status = corral_kube::status::pod_status(pod, observed, now());
        status.host_ip = self.kubelet.host_ips().first().cloned();
        let value = serde_json::to_value(&status).unwrap_or_default();
        if self.last_status.as_ref() == Some(&value) {
            return;
        }
        if pod
            .status
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            == Some(value.clone())
        {
            self.last_status = Some(value);
            return;
        }
        if self.kubelet.set_status(&self.key, status) {
            self.last_status = Some(value);
        }
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
