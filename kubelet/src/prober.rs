//! The probe workers of one pod (the kubelet's `prober_manager`): one task per running
//! container and probe kind, counting results with the thresholds (`probe::ProbeState`),
//! recording `Unhealthy` events, and telling the pod worker when readiness or startup flips
//! or a liveness (or startup) probe has failed for good. Liveness and readiness probes wait for
//! the startup probe to pass. Also runs lifecycle hooks.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use corral_kube::k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod, Probe};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::probe::{self, Exec, Outcome, ProbeKind, ProbeState, Target};
use super::recorder::{EventType, container_path};
use super::{Kubelet, PodKey};

/// What the probes of one container found so far.
#[derive(Default, Clone)]
struct Results {
    /// Readiness (false until a readiness probe passes; true without one).
    ready: bool,
    /// Whether the startup probe passed (true without one).
    started: bool,
    /// Set once liveness or startup failed for good: the container must be restarted.
    failed: Option<String>,
}

/// The probe tasks of one pod's containers, by container id.
pub(super) struct Probes {
    notify: Arc<Notify>,
    results: Arc<Mutex<HashMap<String, Results>>>,
    tasks: HashMap<String, Vec<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// ExecSync through the CRI, for exec probes and hooks.
struct CriExec {
    kubelet: Arc<Kubelet>,
}

impl Exec for CriExec {
    fn exec_sync(
        &self,
        container_id: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<probe::ExecOutput, probe::ExecError>>
                + Send
                + '_,
        >,
    > {
        let id = container_id.to_string();
        Box::pin(async move {
            self.kubelet
                .cri
                .exec_sync(&id, cmd, timeout)
                .await
                .map(|(exit_code, stdout, stderr)| probe::ExecOutput {
                    exit_code,
                    stdout,
                    stderr,
                })
                .map_err(|e| {
                    if e.code() == tonic::Code::DeadlineExceeded {
                        probe::ExecError::TimedOut
                    } else {
                        probe::ExecError::Failed(e.message().to_string())
                    }
                })
        })
    }
}

fn first_ip(ips: &[String]) -> Option<IpAddr> {
    ips.first().and_then(|ip| ip.parse().ok())
}

/// Runs a postStart or preStop hook.
pub(super) async fn run_hook(
    kubelet: &Arc<Kubelet>,
    handler: &LifecycleHandler,
    container_id: &str,
    c: &Container,
    pod_ips: &[String],
) -> Result<(), String> {
    let exec = CriExec {
        kubelet: Arc::clone(kubelet),
    };
    let ports = c.ports.clone().unwrap_or_default();
    let env = c.env.clone().unwrap_or_default();
    let target = Target {
        container_id,
        pod_ip: first_ip(pod_ips),
        ports: &ports,
        env: &env,
        exec: &exec,
    };
    probe::run_handler(handler, &target)
        .await
        .map_err(|e| e.to_string())
}

impl Probes {
    pub(super) fn new(notify: Arc<Notify>) -> Probes {
        Probes {
            notify,
            results: Arc::default(),
            tasks: HashMap::new(),
        }
    }

    /// Starts the probe tasks of a running container, once.
    pub(super) fn ensure(
        &mut self,
        kubelet: &Arc<Kubelet>,
        key: &PodKey,
        _pod: &Pod,
        c: &Container,
        container_id: &str,
        pod_ips: &[String],
    ) {
        if self.tasks.contains_key(container_id) {
            return;
        }
        lock(&self.results).insert(
            container_id.to_string(),
            Results {
                ready: c.readiness_probe.is_none(),
                started: c.startup_probe.is_none(),
                failed: None,
            },
        );
        let mut handles = Vec::new();
        for (kind, p) in [
            (ProbeKind::Startup, &c.startup_probe),
            (ProbeKind::Liveness, &c.liveness_probe),
            (ProbeKind::Readiness, &c.readiness_probe),
        ] {
            let Some(p) = p.clone() else { continue };
            let task = ProbeTask {
                kubelet: Arc::clone(kubelet),
                uid: key.uid.clone(),
                container: c.clone(),
                container_id: container_id.to_string(),
                pod_ips: pod_ips.to_vec(),
                results: Arc::clone(&self.results),
                notify: Arc::clone(&self.notify),
            };
            handles.push(tokio::spawn(task.run(kind, p)));
        }
        self.tasks.insert(container_id.to_string(), handles);
    }

    /// Why the container must be restarted ("liveness probe", "startup probe"), once.
    pub(super) fn liveness_failed(&mut self, container_id: &str) -> Option<String> {
        lock(&self.results)
            .get_mut(container_id)
            .and_then(|r| r.failed.take())
    }

    /// (ready, started) of a running container.
    pub(super) fn status(&self, container_id: &str, c: &Container) -> (bool, bool) {
        lock(&self.results).get(container_id).map_or(
            (c.readiness_probe.is_none(), c.startup_probe.is_none()),
            |r| (r.ready && r.started, r.started),
        )
    }

    /// Stops the probes of a container that ended.
    pub(super) fn forget(&mut self, container_id: &str) {
        if let Some(handles) = self.tasks.remove(container_id) {
            for h in handles {
                h.abort();
            }
        }
        lock(&self.results).remove(container_id);
    }

    pub(super) fn stop_all(&mut self) {
        let ids: Vec<String> = self.tasks.keys().cloned().collect();
        for id in ids {
            self.forget(&id);
        }
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        self.stop_all();
    }
}

struct ProbeTask {
    kubelet: Arc<Kubelet>,
    uid: String,
    container: Container,
    container_id: String,
    pod_ips: Vec<String>,
    results: Arc<Mutex<HashMap<String, Results>>>,
    notify: Arc<Notify>,
}

fn kind_name(kind: ProbeKind) -> &'static str {
    match kind {
        ProbeKind::Startup => "Startup",
        ProbeKind::Liveness => "Liveness",
        ProbeKind::Readiness => "Readiness",
    }
}

impl ProbeTask {
    fn started(&self) -> bool {
        lock(&self.results)
            .get(&self.container_id)
            .is_some_and(|r| r.started)
    }

    async fn run(self, kind: ProbeKind, p: Probe) {
        let mut state = ProbeState::new(&p, kind);
        let exec = CriExec {
            kubelet: Arc::clone(&self.kubelet),
        };
        let ports = self.container.ports.clone().unwrap_or_default();
        let env = self.container.env.clone().unwrap_or_default();
        tokio::time::sleep(state.initial_delay()).await;
        let path = container_path(false, &self.container.name);
        loop {
            if kind != ProbeKind::Startup && !self.started() {
                tokio::time::sleep(state.period()).await;
                continue;
            }
            let target = Target {
                container_id: &self.container_id,
                pod_ip: first_ip(&self.pod_ips),
                ports: &ports,
                env: &env,
                exec: &exec,
            };
            let outcome = probe::run(&p, &target).await;
            if let Outcome::Failure(msg) | Outcome::Unknown(msg) = &outcome {
                self.kubelet.recorder.record(
                    &self.uid,
                    &path,
                    EventType::Warning,
                    "Unhealthy",
                    &format!("{} probe failed: {msg}", kind_name(kind)),
                );
            }
            if let Some(result) = state.record(&outcome) {
                let mut results = lock(&self.results);
                let Some(r) = results.get_mut(&self.container_id) else {
                    return;
                };
                match (kind, result) {
                    (ProbeKind::Readiness, ready) => r.ready = ready,
                    (ProbeKind::Startup, true) => r.started = true,
                    (ProbeKind::Startup, false) => r.failed = Some("startup probe".into()),
                    (ProbeKind::Liveness, false) => r.failed = Some("liveness probe".into()),
                    (ProbeKind::Liveness, true) => {}
                }
                drop(results);
                self.notify.notify_one();
                if (kind == ProbeKind::Startup && result) || !result && kind != ProbeKind::Readiness
                {
                    return;
                }
            }
            tokio::time::sleep(state.period()).await;
        }
    }
}
