//! Pod and container benchmarks through the CRI RuntimeService of both daemons.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use corral_cri_api::v1::runtime_service_client::RuntimeServiceClient;
use corral_cri_api::v1::security_profile::ProfileType;
use corral_cri_api::v1::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ExecSyncRequest, ImageSpec,
    LinuxContainerConfig, LinuxContainerSecurityContext, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, ListPodSandboxRequest, NamespaceMode, NamespaceOption,
    PodSandboxConfig, PodSandboxMetadata, PodSandboxStatusRequest, RemovePodSandboxRequest,
    RunPodSandboxRequest, SecurityProfile, StartContainerRequest, StopPodSandboxRequest,
};
use tonic::transport::Channel;

use crate::procs::{self, Mem};
use crate::stats::{self, ms};

/// How the benchmark finds a daemon's per-pod processes.
pub enum Kind {
    /// corral-shim processes: this binary, with the daemon's state directory on the command line.
    Corral { shim_bin: PathBuf, state: PathBuf },
    /// containerd-shim-runc-v2 processes naming this socket, plus each pod's pause process.
    Containerd { socket: PathBuf },
}

/// One daemon under test.
pub struct Target {
    pub name: &'static str,
    pub rt: RuntimeServiceClient<Channel>,
    pub image: String,
    pub logs: tempfile::TempDir,
    pub cgroup_parent: String,
    pub daemon_pid: u32,
    pub kind: Kind,
    /// Containers get the RuntimeDefault seccomp profile (a kubelet's `--seccomp-default`).
    pub seccomp_default: bool,
    seq: u32,
}

/// The five lifecycle operations, in order.
pub const OPS: [&str; 5] = [
    "RunPodSandbox",
    "CreateContainer",
    "StartContainer",
    "StopPodSandbox",
    "RemovePodSandbox",
];

fn ns_option(host_net: bool) -> NamespaceOption {
    NamespaceOption {
        network: if host_net {
            NamespaceMode::Node
        } else {
            NamespaceMode::Pod
        } as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

impl Target {
    pub fn new(
        name: &'static str,
        channel: Channel,
        image: &str,
        cgroup_parent: String,
        daemon_pid: u32,
        kind: Kind,
    ) -> Result<Target> {
        Ok(Target {
            name,
            rt: RuntimeServiceClient::new(channel).max_decoding_message_size(16 << 20),
            image: image.to_owned(),
            logs: tempfile::Builder::new()
                .prefix(&format!("corral-bench-logs-{name}-"))
                .tempdir()?,
            cgroup_parent,
            daemon_pid,
            kind,
            seccomp_default: false,
            seq: 0,
        })
    }

    pub fn next_name(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}-{}", self.seq)
    }

    pub fn pod_config(&self, name: &str, host_net: bool) -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_owned(),
                namespace: "bench".into(),
                uid: format!("{name}-uid"),
                attempt: 0,
            }),
            hostname: if host_net {
                String::new()
            } else {
                name.to_owned()
            },
            log_directory: self.logs.path().display().to_string(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent.clone(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(ns_option(host_net)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub fn ctr_config(&self, pod: &str, host_net: bool, command: &[&str]) -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: "sleep".into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: self.image.clone(),
                ..Default::default()
            }),
            command: command.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{pod}-sleep.log"),
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(ns_option(host_net)),
                    seccomp: self.seccomp_default.then(|| SecurityProfile {
                        profile_type: ProfileType::RuntimeDefault as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// RunPodSandbox, CreateContainer (`sleep 3600`), StartContainer; returns the pod id, the
    /// container id and the three durations.
    pub async fn start_pod(&mut self, host_net: bool) -> Result<(String, String, [Duration; 3])> {
        self.start_pod_with(host_net, &["sleep", "3600"]).await
    }

    /// [`Target::start_pod`] with the container running `command`.
    pub async fn start_pod_with(
        &mut self,
        host_net: bool,
        command: &[&str],
    ) -> Result<(String, String, [Duration; 3])> {
        let name = self.next_name("bench");
        let config = self.pod_config(&name, host_net);
        let t = Instant::now();
        let pod = self
            .rt
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .with_context(|| format!("{}: RunPodSandbox {name}", self.name))?
            .into_inner()
            .pod_sandbox_id;
        let run = t.elapsed();
        let t = Instant::now();
        let ctr = self
            .rt
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(self.ctr_config(&name, host_net, command)),
                sandbox_config: Some(config),
            })
            .await
            .with_context(|| format!("{}: CreateContainer in pod {name}", self.name))?
            .into_inner()
            .container_id;
        let create = t.elapsed();
        let t = Instant::now();
        self.rt
            .start_container(StartContainerRequest {
                container_id: ctr.clone(),
            })
            .await
            .with_context(|| format!("{}: StartContainer in pod {name}", self.name))?;
        Ok((pod, ctr, [run, create, t.elapsed()]))
    }

    async fn stop_pod(&mut self, pod: &str) -> Result<Duration> {
        let t = Instant::now();
        self.rt
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: pod.to_owned(),
            })
            .await
            .with_context(|| format!("{}: StopPodSandbox {pod}", self.name))?;
        Ok(t.elapsed())
    }

    async fn remove_pod(&mut self, pod: &str) -> Result<Duration> {
        let t = Instant::now();
        self.rt
            .remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: pod.to_owned(),
            })
            .await
            .with_context(|| format!("{}: RemovePodSandbox {pod}", self.name))?;
        Ok(t.elapsed())
    }

    /// StopPodSandbox and RemovePodSandbox, untimed.
    pub async fn remove_pod_now(&mut self, pod: &str) -> Result<()> {
        self.stop_pod(pod).await?;
        self.remove_pod(pod).await?;
        Ok(())
    }

    /// One pod from scratch to gone: the five operations' durations.
    async fn lifecycle(&mut self, host_net: bool) -> Result<[Duration; 5]> {
        let (pod, _ctr, [run, create, start]) = self.start_pod(host_net).await?;
        let stop = self.stop_pod(&pod).await?;
        let remove = self.remove_pod(&pod).await?;
        Ok([run, create, start, stop, remove])
    }

    /// Stops and removes every pod of the daemon through CRI; returns how many there were.
    pub async fn remove_all(&mut self) -> Result<usize> {
        let pods = self
            .rt
            .list_pod_sandbox(ListPodSandboxRequest::default())
            .await
            .with_context(|| format!("{}: ListPodSandbox", self.name))?
            .into_inner()
            .items;
        for p in &pods {
            self.stop_pod(&p.id).await?;
            self.remove_pod(&p.id).await?;
        }
        Ok(pods.len())
    }

    /// The per-pod processes of the runtime: (shims, pause processes).
    async fn pod_processes(&mut self, pods: &[String]) -> Result<(Vec<u32>, Vec<u32>)> {
        match &self.kind {
            Kind::Corral { shim_bin, state } => Ok((procs::corral_shims(shim_bin, state), vec![])),
            Kind::Containerd { socket } => {
                let shims = procs::containerd_shims(socket);
                let mut pauses = Vec::new();
                for pod in pods {
                    let st = self
                        .rt
                        .pod_sandbox_status(PodSandboxStatusRequest {
                            pod_sandbox_id: pod.clone(),
                            verbose: true,
                        })
                        .await?
                        .into_inner();
                    let info: serde_json::Value = serde_json::from_str(
                        st.info.get("info").map(String::as_str).unwrap_or("{}"),
                    )?;
                    let Some(pid) = info.get("pid").and_then(|p| p.as_u64()) else {
                        bail!("containerd: no pause pid in the verbose status of pod {pod}");
                    };
                    pauses.push(pid as u32);
                    // The pause container's own children, if any.
                    pauses.extend(procs::descendants(pid as u32));
                }
                Ok((shims, pauses))
            }
        }
    }
}

/// Lifecycle timings of one daemon: one list of durations per operation, plus the totals.
#[derive(Default)]
struct Series {
    ops: [Vec<Duration>; 5],
    total: Vec<Duration>,
}

impl Series {
    fn push(&mut self, d: [Duration; 5]) {
        for (v, x) in self.ops.iter_mut().zip(d) {
            v.push(x);
        }
        self.total.push(d.iter().sum());
    }
}

/// Ratios corral/containerd of medians.
pub struct LifecycleRatios {
    pub start: f64,
    /// CreateContainer + StartContainer, summed per iteration.
    pub create_start: f64,
    /// Corral's RunPodSandbox + CreateContainer + StartContainer, median of the per-iteration
    /// sums: pod + container from scratch.
    pub pod_container: Duration,
    pub stop: f64,
    /// StopPodSandbox medians: (corral, containerd).
    pub stop_medians: (Duration, Duration),
}

/// Pod + container from scratch, `n` iterations after `warmups`, alternating which daemon goes
/// first. Prints the table.
pub async fn lifecycle(
    c: &mut Target,
    d: &mut Target,
    host_net: bool,
    warmups: usize,
    n: usize,
) -> Result<LifecycleRatios> {
    for _ in 0..warmups {
        c.lifecycle(host_net).await?;
        d.lifecycle(host_net).await?;
    }
    let (mut sc, mut sd) = (Series::default(), Series::default());
    for i in 0..n {
        if i % 2 == 0 {
            sc.push(c.lifecycle(host_net).await?);
            sd.push(d.lifecycle(host_net).await?);
        } else {
            sd.push(d.lifecycle(host_net).await?);
            sc.push(c.lifecycle(host_net).await?);
        }
    }
    stats::header();
    let ratios: Vec<f64> = OPS
        .iter()
        .enumerate()
        .map(|(i, op)| stats::row(op, &sc.ops[i], &sd.ops[i]))
        .collect();
    // Per iteration, the sum of the operations `ops` (indices into OPS).
    let sums = |s: &Series, ops: &[usize]| -> Vec<Duration> {
        (0..s.total.len())
            .map(|i| ops.iter().map(|&o| s.ops[o][i]).sum())
            .collect()
    };
    let (cs, ds) = (sums(&sc, &[1, 2]), sums(&sd, &[1, 2]));
    let create_start = stats::row("Create + Start", &cs, &ds);
    stats::row("total", &sc.total, &sd.total);
    Ok(LifecycleRatios {
        start: ratios[2],
        create_start,
        pod_container: stats::median(&sums(&sc, &[0, 1, 2])),
        stop: ratios[3],
        stop_medians: (stats::median(&sc.ops[3]), stats::median(&sd.ops[3])),
    })
}

async fn exec_true(t: &mut Target, ctr: &str) -> Result<Duration> {
    let started = Instant::now();
    let out =
        t.rt.exec_sync(ExecSyncRequest {
            container_id: ctr.to_owned(),
            cmd: vec!["true".into()],
            timeout: 5,
        })
        .await
        .with_context(|| format!("{}: ExecSync true", t.name))?
        .into_inner();
    let took = started.elapsed();
    if out.exit_code != 0 {
        bail!(
            "{}: ExecSync true exited {}: {}",
            t.name,
            out.exit_code,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}

/// ExecSync `true` (timeout 5 s) on a running container of a host-network pod, `calls` times
/// alternating, after 2 warm-up calls each. Prints the row; returns the ratio of medians.
pub async fn exec(c: &mut Target, d: &mut Target, calls: usize) -> Result<f64> {
    let (cpod, cctr, _) = c.start_pod(true).await?;
    let (dpod, dctr, _) = d.start_pod(true).await?;
    for _ in 0..2 {
        exec_true(c, &cctr).await?;
        exec_true(d, &dctr).await?;
    }
    let (mut vc, mut vd) = (Vec::new(), Vec::new());
    for i in 0..calls {
        if i % 2 == 0 {
            vc.push(exec_true(c, &cctr).await?);
            vd.push(exec_true(d, &dctr).await?);
        } else {
            vd.push(exec_true(d, &dctr).await?);
            vc.push(exec_true(c, &cctr).await?);
        }
    }
    stats::header();
    let r = stats::row("ExecSync true", &vc, &vd);
    c.remove_pod_now(&cpod).await?;
    d.remove_pod_now(&dpod).await?;
    Ok(r)
}

/// Memory of one daemon's pods at one pod count.
#[derive(Debug, Default, Clone, Copy)]
pub struct PodMem {
    pub pods: usize,
    pub shims: usize,
    pub pauses: usize,
    /// Sums over all pods.
    pub shim: Mem,
    pub pause: Mem,
    pub daemon: Mem,
}

impl PodMem {
    pub fn per_pod(&self, m: Mem) -> (f64, f64) {
        let n = self.pods.max(1) as f64;
        (m.rss as f64 / n, m.pss as f64 / n)
    }

    /// Private memory (no other process maps it) per pod.
    pub fn private_per_pod(&self, m: Mem) -> f64 {
        m.private as f64 / self.pods.max(1) as f64
    }
}

/// How long a daemon is left alone before its idle memory is read.
const IDLE: Duration = Duration::from_secs(15);

/// Daemon memory at 0 pods (after [`IDLE`]), then per-pod process memory and daemon memory with `small` and
/// `large` pods (host network, one `sleep` container each); removes them all.
pub async fn density(t: &mut Target, small: usize, large: usize) -> Result<(Mem, PodMem, PodMem)> {
    // Idle: long enough after the last call for what a daemon does once work stops (Corral
    // trims its heap 2-4 s after the last call; tokio's blocking threads exit after 10 s).
    tokio::time::sleep(IDLE).await;
    let idle = procs::mem(t.daemon_pid);
    // For finding where idle memory goes: a copy of the daemon's mappings at this moment.
    if let Some(dir) = std::env::var_os("CORRAL_BENCH_SMAPS_DIR") {
        let to = std::path::Path::new(&dir).join(format!("{}-idle.smaps", t.name));
        std::fs::copy(format!("/proc/{}/smaps", t.daemon_pid), &to)
            .with_context(|| format!("copying smaps to {}", to.display()))?;
    }
    let mut pods = Vec::new();
    let mut at = Vec::new();
    for target in [small, large] {
        while pods.len() < target {
            let (pod, _, _) = t.start_pod(true).await?;
            pods.push(pod);
        }
        // Let the shims finish whatever they do after a start before reading their memory.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (shims, pauses) = t.pod_processes(&pods).await?;
        at.push(PodMem {
            pods: pods.len(),
            shims: shims.len(),
            pauses: pauses.len(),
            shim: procs::sum(&shims),
            pause: procs::sum(&pauses),
            daemon: procs::mem(t.daemon_pid),
        });
    }
    let started = Instant::now();
    let removed = t.remove_all().await?;
    eprintln!(
        "  {}: removed {removed} pods in {:.0} ms",
        t.name,
        ms(started.elapsed())
    );
    Ok((idle, at[0], at[1]))
}
