//! Pod churn: many pods brought up and torn down with a fixed number of calls in flight, the
//! way a kubelet syncing a node after a deployment does.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use corral_cri_api::v1::{
    CreateContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest,
    StopPodSandboxRequest,
};
use futures::stream::{self, StreamExt as _, TryStreamExt as _};

use crate::pods::Target;
use crate::procs;
use crate::stats::{self, ms};

/// One round's wall-clock times: all pods up (RunPodSandbox + CreateContainer +
/// StartContainer each), then all gone (StopPodSandbox + RemovePodSandbox each); and the CPU
/// time it took, the machine's and the daemon's own.
struct Round {
    up: Duration,
    down: Duration,
    cpu: procs::Cpu,
}

/// Brings `pods` pods up with `parallel` at a time, then tears them down the same way.
async fn round(t: &mut Target, host_net: bool, pods: usize, parallel: usize) -> Result<Round> {
    let configs: Vec<_> = (0..pods)
        .map(|_| {
            let name = t.next_name("churn");
            let pod = t.pod_config(&name, host_net);
            let ctr = t.ctr_config(&name, host_net, &["sleep", "3600"]);
            (name, pod, ctr)
        })
        .collect();
    let who = t.name;
    let rt = t.rt.clone();
    let cpu_before = procs::cpu(t.daemon_pid);
    let started = Instant::now();
    let ids: Vec<String> = stream::iter(configs)
        .map(|(name, pod, ctr)| {
            let mut rt = rt.clone();
            async move {
                let id = rt
                    .run_pod_sandbox(RunPodSandboxRequest {
                        config: Some(pod.clone()),
                        runtime_handler: String::new(),
                    })
                    .await
                    .with_context(|| format!("{who}: RunPodSandbox {name}"))?
                    .into_inner()
                    .pod_sandbox_id;
                let ctr = rt
                    .create_container(CreateContainerRequest {
                        pod_sandbox_id: id.clone(),
                        config: Some(ctr),
                        sandbox_config: Some(pod),
                    })
                    .await
                    .with_context(|| format!("{who}: CreateContainer in {name}"))?
                    .into_inner()
                    .container_id;
                rt.start_container(StartContainerRequest { container_id: ctr })
                    .await
                    .with_context(|| format!("{who}: StartContainer in {name}"))?;
                anyhow::Ok(id)
            }
        })
        .buffer_unordered(parallel)
        .try_collect()
        .await?;
    let up = started.elapsed();
    let started = Instant::now();
    stream::iter(ids)
        .map(|id| {
            let mut rt = rt.clone();
            async move {
                rt.stop_pod_sandbox(StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await
                .with_context(|| format!("{who}: StopPodSandbox {id}"))?;
                rt.remove_pod_sandbox(RemovePodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await
                .with_context(|| format!("{who}: RemovePodSandbox {id}"))?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(parallel)
        .try_collect::<()>()
        .await?;
    let down = started.elapsed();
    Ok(Round {
        up,
        down,
        cpu: procs::cpu(t.daemon_pid) - cpu_before,
    })
}

/// `rounds` rounds of churn on each daemon after one warm-up, alternating which goes first.
/// Prints the table; returns the ratio corral/containerd of the median whole-round times, and
/// containerd's median.
pub async fn compare(
    c: &mut Target,
    d: &mut Target,
    host_net: bool,
    pods: usize,
    parallel: usize,
    rounds: usize,
) -> Result<(f64, Duration)> {
    round(c, host_net, pods, parallel).await?;
    round(d, host_net, pods, parallel).await?;
    let (mut rc, mut rd) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        if i % 2 == 0 {
            rc.push(round(c, host_net, pods, parallel).await?);
            rd.push(round(d, host_net, pods, parallel).await?);
        } else {
            rd.push(round(d, host_net, pods, parallel).await?);
            rc.push(round(c, host_net, pods, parallel).await?);
        }
        let (a, b) = (&rc[i], &rd[i]);
        println!(
            "  round {i}: corral up {:.0} + down {:.0} ms, CPU {:.2} s (corrald {:.2} s)   containerd up {:.0} + down {:.0} ms, CPU {:.2} s (containerd {:.2} s)",
            ms(a.up),
            ms(a.down),
            a.cpu.machine,
            a.cpu.process,
            ms(b.up),
            ms(b.down),
            b.cpu.machine,
            b.cpu.process,
        );
    }
    let col = |v: &[Round], f: fn(&Round) -> Duration| v.iter().map(f).collect::<Vec<_>>();
    let machine = |r: &Round| Duration::from_secs_f64(r.cpu.machine.max(0.0));
    println!(
        "  (CPU: the whole machine's busy time during the round: daemon, shims, runtimes, plugins, kernel)"
    );
    stats::header();
    stats::row(
        &format!("{pods} pods up"),
        &col(&rc, |r| r.up),
        &col(&rd, |r| r.up),
    );
    stats::row(
        &format!("{pods} pods down"),
        &col(&rc, |r| r.down),
        &col(&rd, |r| r.down),
    );
    let theirs = col(&rd, |r| r.up + r.down);
    let total = stats::row("up + down", &col(&rc, |r| r.up + r.down), &theirs);
    stats::row("machine CPU", &col(&rc, machine), &col(&rd, machine));
    Ok((total, stats::median(&theirs)))
}
