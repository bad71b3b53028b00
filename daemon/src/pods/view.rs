//! Pods and containers as the CRI reports them: states derived from the records, list
//! filters, status messages with verbose info.

use std::collections::HashMap;
use std::path::Path;

use corral_cri_api::v1::{
    Container as CriContainer, ContainerFilter, ContainerResources, ContainerState,
    ContainerStatus as CriContainerStatus, ContainerUser, ImageSpec, LinuxContainerResources,
    LinuxContainerUser, LinuxPodSandboxStatus, Namespace, NamespaceMode, NamespaceOption, PodIp,
    PodSandbox, PodSandboxFilter, PodSandboxNetworkStatus, PodSandboxState, PodSandboxStatus,
};
use oci_spec::runtime::Spec;

use super::model::{self, SandboxState};
use super::{Container, Pods, Sandbox, lock};
use crate::event_bus::EventBus;
use crate::metrics::Live;

/// Counts pods, containers, shims and subscribers for the metrics endpoint's gauges.
pub fn live(pods: &Pods, events: &EventBus) -> Live {
    let mut out = Live::default();
    let (mut ready, mut not_ready) = (0, 0);
    for sb in pods.sandboxes() {
        match sb.state() {
            SandboxState::Ready => ready += 1,
            SandboxState::NotReady => not_ready += 1,
        }
    }
    out.pods = vec![("SANDBOX_READY", ready), ("SANDBOX_NOTREADY", not_ready)];
    let mut by_state = [0i64; 4];
    for c in pods.containers() {
        let i = (container_state(&c) as usize).min(3);
        by_state[i] += 1;
    }
    out.containers = vec![
        ("CONTAINER_CREATED", by_state[0]),
        ("CONTAINER_RUNNING", by_state[1]),
        ("CONTAINER_EXITED", by_state[2]),
        ("CONTAINER_UNKNOWN", by_state[3]),
    ];
    out.shims = ready;
    out.subscribers = events.subscribers() as i64;
    out.subscribers_dropped = events.dropped() as i64;
    out
}

/// The CRI state of a container.
pub fn container_state(ctr: &Container) -> ContainerState {
    ctr.status().state()
}

fn sandbox_state(sb: &Sandbox) -> PodSandboxState {
    match sb.state() {
        SandboxState::Ready => PodSandboxState::SandboxReady,
        SandboxState::NotReady => PodSandboxState::SandboxNotready,
    }
}

/// Whether `labels` has every key and value of `selector` (the CRI filters' label selector).
pub(crate) fn labels_match(
    labels: &HashMap<String, String>,
    selector: &HashMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

pub fn pod_sandbox(sb: &Sandbox) -> PodSandbox {
    PodSandbox {
        id: sb.meta.id.clone(),
        metadata: sb.config.metadata.clone(),
        state: sandbox_state(sb) as i32,
        created_at: sb.meta.created_at,
        labels: sb.config.labels.clone(),
        annotations: sb.config.annotations.clone(),
        runtime_handler: sb.meta.runtime_handler.clone(),
    }
}

pub fn container(ctr: &Container) -> CriContainer {
    CriContainer {
        id: ctr.meta.id.clone(),
        pod_sandbox_id: ctr.meta.sandbox_id.clone(),
        metadata: ctr.config.metadata.clone(),
        image: Some(image_spec(ctr)),
        image_ref: ctr.meta.image_ref.clone(),
        state: container_state(ctr) as i32,
        created_at: ctr.meta.created_at,
        labels: ctr.config.labels.clone(),
        annotations: ctr.config.annotations.clone(),
        image_id: ctr.meta.image_id.clone(),
    }
}

fn image_spec(ctr: &Container) -> ImageSpec {
    ImageSpec {
        image: ctr.meta.image.clone(),
        annotations: ctr
            .config
            .image
            .as_ref()
            .map(|i| i.annotations.clone())
            .unwrap_or_default(),
        ..ImageSpec::default()
    }
}

pub fn container_status(ctr: &Container) -> CriContainerStatus {
    let s = ctr.status();
    let resources = s
        .resources
        .as_deref()
        .and_then(|r| model::decode_pb::<LinuxContainerResources>(r, Path::new("status")).ok())
        .or_else(|| ctr.config.linux.as_ref().and_then(|l| l.resources.clone()));
    CriContainerStatus {
        id: ctr.meta.id.clone(),
        metadata: ctr.config.metadata.clone(),
        state: s.state() as i32,
        created_at: ctr.meta.created_at,
        started_at: s.started_at,
        finished_at: s.finished_at,
        exit_code: s.exit_code,
        image: Some(image_spec(ctr)),
        image_ref: ctr.meta.image_ref.clone(),
        reason: s.reason(),
        message: s.message.clone(),
        labels: ctr.config.labels.clone(),
        annotations: ctr.config.annotations.clone(),
        mounts: ctr.config.mounts.clone(),
        log_path: ctr
            .meta
            .log_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        resources: resources.map(|linux| ContainerResources {
            linux: Some(linux),
            ..ContainerResources::default()
        }),
        image_id: ctr.meta.image_id.clone(),
        user: ctr.user.get_or_init(|| user(ctr)).clone(),
        stop_signal: 0,
    }
}

fn user(ctr: &Container) -> Option<ContainerUser> {
    let spec = Spec::load(ctr.bundle.join("config.json")).ok()?;
    let user = spec.process().as_ref()?.user().clone();
    Some(ContainerUser {
        linux: Some(LinuxContainerUser {
            uid: i64::from(user.uid()),
            gid: i64::from(user.gid()),
            supplemental_groups: user
                .additional_gids()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(i64::from)
                .collect(),
        }),
    })
}

/// Verbose info for ContainerStatus: `info` holds a JSON document like containerd's.
pub fn container_info(ctr: &Container) -> HashMap<String, String> {
    let s = ctr.status();
    let spec = std::fs::read(ctr.bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
    let info = serde_json::json!({
        "sandboxID": ctr.meta.sandbox_id,
        "pid": s.pid,
        "bundle": ctr.bundle,
        "cgroupsPath": ctr.meta.cgroups_path,
        "stopSignal": ctr.meta.stop_signal,
        "runtimeSpec": spec,
    });
    HashMap::from([("info".to_owned(), info.to_string())])
}

pub fn sandbox_status(sb: &Sandbox) -> PodSandboxStatus {
    let ns = super::sandbox::pod_namespaces(&sb.config).ok();
    let mode = |host: bool| {
        if host {
            NamespaceMode::Node
        } else {
            NamespaceMode::Pod
        }
    };
    let userns = sb
        .config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
        .and_then(|o| o.userns_options.clone());
    let options = ns.map(|n| NamespaceOption {
        network: mode(n.host_network) as i32,
        ipc: mode(n.host_ipc) as i32,
        pid: if n.pod_pid {
            NamespaceMode::Pod
        } else {
            NamespaceMode::Container
        } as i32,
        userns_options: userns,
        ..NamespaceOption::default()
    });
    PodSandboxStatus {
        id: sb.meta.id.clone(),
        metadata: sb.config.metadata.clone(),
        state: sandbox_state(sb) as i32,
        created_at: sb.meta.created_at,
        network: Some(network_status(sb)),
        linux: Some(LinuxPodSandboxStatus {
            namespaces: Some(Namespace { options }),
        }),
        labels: sb.config.labels.clone(),
        annotations: sb.config.annotations.clone(),
        runtime_handler: sb.meta.runtime_handler.clone(),
    }
}

/// The pod's IPs from its CNI attachment (kept after the pod stops, as containerd does).
fn network_status(sb: &Sandbox) -> PodSandboxNetworkStatus {
    let ips = lock(&sb.network)
        .as_ref()
        .map(|r| r.ips.clone())
        .unwrap_or_default();
    let mut ips = ips.iter().map(ToString::to_string);
    PodSandboxNetworkStatus {
        ip: ips.next().unwrap_or_default(),
        additional_ips: ips.map(|ip| PodIp { ip }).collect(),
    }
}

pub fn sandbox_info(sb: &Sandbox) -> HashMap<String, String> {
    let pins: Vec<String> = ["net", "ipc", "uts", "pid", "user"]
        .iter()
        .filter(|k| sb.dir.join("ns").join(k).exists())
        .map(|k| sb.dir.join("ns").join(k).display().to_string())
        .collect();
    let info = serde_json::json!({
        "stateDir": sb.dir,
        "cgroupParent": sb.meta.cgroup_parent,
        "namespaces": pins,
        "shimLog": sb.dir.join("shim.log"),
        "cniResult": lock(&sb.network).as_ref().map(|r| r.result.clone()),
        "cniAttached": lock(&sb.network).as_ref().is_some_and(|r| r.attached),
    });
    HashMap::from([("info".to_owned(), info.to_string())])
}

impl Pods {
    pub fn list_sandboxes(&self, filter: Option<&PodSandboxFilter>) -> Vec<PodSandbox> {
        let mut out: Vec<PodSandbox> = self
            .sandboxes()
            .iter()
            .filter(|sb| {
                let Some(f) = filter else { return true };
                (f.id.is_empty() || sb.meta.id.starts_with(&f.id))
                    && f.state
                        .as_ref()
                        .is_none_or(|s| s.state == sandbox_state(sb) as i32)
                    && labels_match(&sb.config.labels, &f.label_selector)
            })
            .map(|sb| pod_sandbox(sb))
            .collect();
        out.sort_by_key(|p| std::cmp::Reverse(p.created_at));
        out
    }

    pub fn list_containers(&self, filter: Option<&ContainerFilter>) -> Vec<CriContainer> {
        let mut out: Vec<CriContainer> = self
            .containers()
            .iter()
            .filter(|c| {
                let Some(f) = filter else { return true };
                (f.id.is_empty() || c.meta.id.starts_with(&f.id))
                    && (f.pod_sandbox_id.is_empty()
                        || c.meta.sandbox_id.starts_with(&f.pod_sandbox_id))
                    && f.state
                        .as_ref()
                        .is_none_or(|s| s.state == container_state(c) as i32)
                    && labels_match(&c.config.labels, &f.label_selector)
            })
            .map(|c| container(c))
            .collect();
        out.sort_by_key(|c| std::cmp::Reverse(c.created_at));
        out
    }
}
