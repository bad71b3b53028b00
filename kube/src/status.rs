//! Pod status from observed container states, and the columns `kubectl get pods` prints.
//!
//! [`pod_status`] is the kubelet's side (`generateAPIPodStatus`): per container waiting /
//! running / terminated with `lastState`, `restartCount` and `ready`; the phase by the kubelet's
//! `getPhase` rules (restart policy included); the conditions PodReadyToStartContainers,
//! Initialized, Ready, ContainersReady and PodScheduled with their reasons. [`columns`] is
//! kubectl's side (`printPod`): `READY`, `STATUS` and `RESTARTS` from a stored pod.

mod columns;

pub use columns::{Columns, columns};

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// A container that ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terminated {
    /// The exit code (128+N for signal N).
    pub exit_code: i32,
    /// The signal that killed it, when known.
    pub signal: Option<i32>,
    /// `Completed`, `Error`, `OOMKilled`...; when `None`, `Completed` for exit code 0 and
    /// `Error` otherwise (what the runtime reports).
    pub reason: Option<String>,
    /// A message (e.g. the termination log).
    pub message: Option<String>,
    /// When it started.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// The runtime's container id (`corral://...`).
    pub container_id: Option<String>,
}

/// What a container is doing now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Not running: `ContainerCreating`, `CrashLoopBackOff`, `ErrImagePull`,
    /// `ImagePullBackOff`, `CreateContainerConfigError`...
    Waiting {
        /// The reason.
        reason: String,
        /// A message.
        message: Option<String>,
    },
    /// Running since.
    Running {
        /// When it started.
        started_at: Timestamp,
    },
    /// Ended.
    Terminated(Terminated),
}

/// What the pod manager knows about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerObserved {
    /// The current state.
    pub state: State,
    /// The previous run's end, once it has restarted.
    pub last_terminated: Option<Terminated>,
    /// Restarts so far.
    pub restart_count: i32,
    /// Readiness (probe result; false unless running).
    pub ready: bool,
    /// Whether the startup probe passed (or there is none and it runs).
    pub started: Option<bool>,
    /// The image as resolved (`docker.io/library/nginx:1.27`).
    pub image: Option<String>,
    /// The image's id (digest).
    pub image_id: Option<String>,
    /// The runtime's container id.
    pub container_id: Option<String>,
}

/// What the pod manager observed about a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// Init containers by name (absent: not created yet).
    pub init_containers: BTreeMap<String, ContainerObserved>,
    /// App containers by name.
    pub containers: BTreeMap<String, ContainerObserved>,
    /// Pod IPs, primary first.
    pub pod_ips: Vec<String>,
    /// Host IPs, primary first.
    pub host_ips: Vec<String>,
    /// When the pod manager accepted the pod.
    pub start_time: Option<Timestamp>,
    /// The sandbox exists and its network is set up.
    pub sandbox_ready: bool,
    /// The pod's nodeSelector does not match the node: it stays Pending, unscheduled, with
    /// this message (the scheduler's wording is in [`UNSCHEDULABLE_NODE_SELECTOR`]).
    pub unschedulable: Option<String>,
    /// `activeDeadlineSeconds` passed: the pod failed with reason `DeadlineExceeded`.
    pub deadline_exceeded: bool,
    /// The pod manager has finished with the pod (deleted, or failed for good): its phase is
    /// final even under `restartPolicy: Always`.
    pub terminal: bool,
}

/// The scheduler's message for a nodeSelector that matches no node (one node here).
pub const UNSCHEDULABLE_NODE_SELECTOR: &str = "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";

fn time(t: Timestamp) -> Time {
    Time(t)
}

fn terminated(t: &Terminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        signal: t.signal,
        reason: Some(t.reason.clone().unwrap_or_else(|| {
            if t.exit_code == 0 {
                "Completed"
            } else {
                "Error"
            }
            .to_string()
        })),
        message: t.message.clone(),
        started_at: t.started_at.map(time),
        finished_at: t.finished_at.map(time),
        container_id: t.container_id.clone(),
    }
}

fn state(s: &State) -> ContainerState {
    match s {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        State::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(time(*started_at)),
            }),
            ..Default::default()
        },
        State::Terminated(t) => ContainerState {
            terminated: Some(terminated(t)),
            ..Default::default()
        },
    }
}

fn container_statuses(
    containers: &[Container],
    observed: &BTreeMap<String, ContainerObserved>,
    default_reason: &str,
) -> Vec<ContainerStatus> {
    containers
        .iter()
        .map(|c| match observed.get(&c.name) {
            Some(o) => ContainerStatus {
                name: c.name.clone(),
                state: Some(state(&o.state)),
                last_state: Some(
                    o.last_terminated
                        .as_ref()
                        .map_or_else(Default::default, |t| ContainerState {
                            terminated: Some(terminated(t)),
                            ..Default::default()
                        }),
                ),
                ready: o.ready && matches!(o.state, State::Running { .. }),
                restart_count: o.restart_count,
                started: Some(
                    o.started
                        .unwrap_or(matches!(o.state, State::Running { .. })),
                ),
                image: o
                    .image
                    .clone()
                    .or_else(|| c.image.clone())
                    .unwrap_or_default(),
                image_id: o.image_id.clone().unwrap_or_default(),
                container_id: o.container_id.clone(),
                ..Default::default()
            },
            None => ContainerStatus {
                name: c.name.clone(),
                state: Some(state(&State::Waiting {
                    reason: default_reason.into(),
                    message: None,
                })),
                last_state: Some(Default::default()),
                ready: false,
                restart_count: 0,
                started: Some(false),
                image: c.image.clone().unwrap_or_default(),
                image_id: String::new(),
                ..Default::default()
            },
        })
        .collect()
}

fn is_restartable(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// The kubelet's `getPhase`. `init` and `app` are the statuses of `spec`'s init and app
/// containers (any order); `terminal` is whether the pod manager is done with the pod.
pub fn phase(
    spec: &PodSpec,
    init: &[ContainerStatus],
    app: &[ContainerStatus],
    terminal: bool,
) -> &'static str {
    let find =
        |list: &'_ [ContainerStatus], name: &str| list.iter().find(|s| s.name == name).cloned();
    let st = |s: &ContainerStatus| s.state.clone().unwrap_or_default();
    let last_term = |s: &ContainerStatus| s.last_state.as_ref().and_then(|l| l.terminated.clone());
    let (mut pending_init, mut failed_init) = (0, 0);
    for c in spec.init_containers.iter().flatten() {
        if is_restartable(c) {
            continue;
        }
        let Some(s) = find(init, &c.name) else {
            pending_init += 1;
            continue;
        };
        let now = st(&s);
        if now.running.is_some() {
            pending_init += 1;
        } else if let Some(t) = &now.terminated {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if now.waiting.is_some() {
            match last_term(&s) {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in &spec.containers {
        let Some(s) = find(app, &c.name) else {
            unknown += 1;
            continue;
        };
        let now = st(&s);
        if now.running.is_some() {
            running += 1;
        } else if let Some(t) = &now.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if now.waiting.is_some() {
            if last_term(&s).is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    if failed_init > 0 && policy == "Never" {
        return "Failed";
    }
    let any_started = app.iter().any(|s| {
        let now = st(s);
        now.running.is_some() || now.terminated.is_some() || last_term(s).is_some()
    });
    if (pending_init > 0 && !any_started) || waiting > 0 {
        return "Pending";
    }
    if running > 0 && unknown == 0 {
        return "Running";
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if terminal {
            return if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        if policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

fn condition(kind: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: kind.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.map(Into::into),
        message,
        ..Default::default()
    }
}

/// The kubelet's condition message: "containers with unknown status: [a], containers with
/// <what> status: [b]", or `None` when both lists are empty.
fn not_all_message(unknown: &[&str], what: &str, others: &[&str]) -> Option<String> {
    let mut msgs = Vec::new();
    if !unknown.is_empty() {
        msgs.push(format!(
            "containers with unknown status: {}",
            names_list(unknown)
        ));
    }
    if !others.is_empty() {
        msgs.push(format!(
            "containers with {what} status: {}",
            names_list(others)
        ));
    }
    (!msgs.is_empty()).then(|| msgs.join(", "))
}

fn names_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

/// The pod's status as the kubelet would report it. Conditions keep their previous
/// `lastTransitionTime` (from `pod.status`) while their status does not change; others get
/// `now`.
pub fn pod_status(pod: &Pod, observed: &Observed, now: Timestamp) -> PodStatus {
    let default_spec = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&default_spec);
    let inits = spec.init_containers.as_deref().unwrap_or(&[]);
    let default_reason = if inits.is_empty() {
        "ContainerCreating"
    } else {
        "PodInitializing"
    };
    let qos = crate::quantity::qos_class(pod).as_str().to_string();
    let mut status = PodStatus {
        qos_class: Some(qos),
        start_time: observed.start_time.map(time),
        ..Default::default()
    };
    if let Some(msg) = &observed.unschedulable {
        status.phase = Some("Pending".into());
        status.conditions = Some(vec![condition(
            "PodScheduled",
            false,
            Some("Unschedulable"),
            Some(msg.clone()),
        )]);
        keep_transition_times(pod, &mut status, now);
        return status;
    }
    let init = container_statuses(inits, &observed.init_containers, default_reason);
    let app = container_statuses(&spec.containers, &observed.containers, default_reason);
    let mut phase = phase(spec, &init, &app, observed.terminal);
    if observed.deadline_exceeded {
        phase = "Failed";
        status.reason = Some("DeadlineExceeded".into());
        status.message =
            Some("Pod was active on the node longer than the specified deadline".into());
    }
    status.phase = Some(phase.into());

    // Initialized.
    let mut unknown = Vec::new();
    let mut incomplete = Vec::new();
    for c in inits {
        match observed.init_containers.get(&c.name) {
            None => unknown.push(c.name.as_str()),
            Some(o) if is_restartable(c) => {
                if o.started != Some(true) {
                    incomplete.push(c.name.as_str());
                }
            }
            Some(o) => {
                if !matches!(&o.state, State::Terminated(t) if t.exit_code == 0) {
                    incomplete.push(c.name.as_str());
                }
            }
        }
    }
    let app_started = app.iter().any(|s| {
        let st = s.state.clone().unwrap_or_default();
        st.running.is_some() || st.terminated.is_some()
    }) || observed
        .containers
        .values()
        .any(|o| o.last_terminated.is_some());
    let initialized = if phase == "Succeeded" && unknown.is_empty() {
        condition("Initialized", true, Some("PodCompleted"), None)
    } else if app_started {
        condition("Initialized", true, None, None)
    } else {
        match not_all_message(&unknown, "incomplete", &incomplete) {
            None => condition("Initialized", true, None, None),
            Some(msg) => condition(
                "Initialized",
                false,
                Some("ContainersNotInitialized"),
                Some(msg),
            ),
        }
    };

    // ContainersReady and Ready.
    let mut unknown = Vec::new();
    let mut unready = Vec::new();
    for c in inits.iter().filter(|c| is_restartable(c)) {
        match init.iter().find(|s| s.name == c.name) {
            Some(s) if !s.ready => unready.push(c.name.as_str()),
            _ => {}
        }
    }
    for c in &spec.containers {
        match observed.containers.get(&c.name) {
            None => unknown.push(c.name.as_str()),
            Some(_) => {
                if !app.iter().any(|s| s.name == c.name && s.ready) {
                    unready.push(c.name.as_str());
                }
            }
        }
    }
    let ready = if phase == "Succeeded" && unknown.is_empty() {
        condition("ContainersReady", false, Some("PodCompleted"), None)
    } else if phase == "Failed" {
        condition("ContainersReady", false, Some("PodFailed"), None)
    } else {
        match not_all_message(&unknown, "unready", &unready) {
            None => condition("ContainersReady", true, None, None),
            Some(msg) => condition(
                "ContainersReady",
                false,
                Some("ContainersNotReady"),
                Some(msg),
            ),
        }
    };
    let pod_ready = PodCondition {
        type_: "Ready".into(),
        ..ready.clone()
    };
    status.conditions = Some(vec![
        condition(
            "PodReadyToStartContainers",
            observed.sandbox_ready,
            None,
            None,
        ),
        initialized,
        pod_ready,
        ready,
        condition("PodScheduled", true, None, None),
    ]);
    status.pod_ip = observed.pod_ips.first().cloned();
    status.pod_ips = (!observed.pod_ips.is_empty()).then(|| {
        observed
            .pod_ips
            .iter()
            .map(|ip| PodIP { ip: ip.clone() })
            .collect()
    });
    status.host_ip = observed.host_ips.first().cloned();
    status.host_ips = (!observed.host_ips.is_empty()).then(|| {
        observed
            .host_ips
            .iter()
            .map(|ip| HostIP { ip: ip.clone() })
            .collect()
    });
    status.init_container_statuses = (!init.is_empty()).then_some(init);
    status.container_statuses = Some(app);
    keep_transition_times(pod, &mut status, now);
    status
}

fn keep_transition_times(pod: &Pod, status: &mut PodStatus, now: Timestamp) {
    let previous = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    for c in status.conditions.iter_mut().flatten() {
        let before = previous.and_then(|p| p.iter().find(|o| o.type_ == c.type_));
        c.last_transition_time = match before {
            Some(b) if b.status == c.status => b.last_transition_time.clone(),
            _ => Some(time(now)),
        };
    }
}

#[cfg(test)]
mod tests;
