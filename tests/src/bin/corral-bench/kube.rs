//! `corralctl apply` of N pods at once to all Running, against containerd doing the CRI calls
//! a kubelet makes for the same pods (RunPodSandbox, CreateContainer, StartContainer; all pods
//! concurrently). Pod network, busybox already pulled, container `sleep 3600`.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use corral_cri_api::corral::kube_service_client::KubeServiceClient;
use corral_cri_api::corral::{ApplyRequest, DeleteRequest, GetRequest};
use corral_cri_api::v1::{CreateContainerRequest, RunPodSandboxRequest, StartContainerRequest};
use tonic::transport::Channel;

use crate::pods::Target;
use crate::stats;

fn manifest(n: usize, round: usize, image: &str) -> String {
    (0..n)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata: {{name: burst-{round}-{i}}}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: sleep\n    image: {image}\n    imagePullPolicy: IfNotPresent\n    command: [sleep, \"3600\"]\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Apply to all Running on Corral.
async fn corral_round(
    kube: &mut KubeServiceClient<Channel>,
    n: usize,
    round: usize,
    image: &str,
) -> Result<Duration> {
    let t = Instant::now();
    kube.apply(ApplyRequest {
        manifest: manifest(n, round, image),
        ..Default::default()
    })
    .await
    .context("corral: Apply")?;
    let until = t + Duration::from_secs(120);
    loop {
        let objects = kube
            .get(GetRequest {
                kind: "pods".into(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .objects;
        let running = objects
            .iter()
            .filter_map(|o| serde_json::from_slice::<serde_json::Value>(o).ok())
            .filter(|v| v["status"]["phase"] == "Running")
            .count();
        if running == n {
            break;
        }
        if Instant::now() > until {
            bail!("corral: only {running} of {n} pods Running after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = t.elapsed();
    kube.delete(DeleteRequest {
        kind: "pods".into(),
        selector: "!none".into(),
        grace_period_seconds: Some(0),
        wait: true,
        ..Default::default()
    })
    .await
    .context("corral: Delete")?;
    Ok(took)
}

/// The kubelet's three calls per pod, all pods at once, on containerd.
async fn containerd_round(d: &mut Target, n: usize) -> Result<Duration> {
    let mut jobs = Vec::new();
    let t = Instant::now();
    for _ in 0..n {
        let name = d.next_name("burst");
        let config = d.pod_config(&name, false);
        let ctr = d.ctr_config(&name, false, &["sleep", "3600"]);
        let mut rt = d.rt.clone();
        jobs.push(tokio::spawn(async move {
            let pod = rt
                .run_pod_sandbox(RunPodSandboxRequest {
                    config: Some(config.clone()),
                    runtime_handler: String::new(),
                })
                .await?
                .into_inner()
                .pod_sandbox_id;
            let id = rt
                .create_container(CreateContainerRequest {
                    pod_sandbox_id: pod,
                    config: Some(ctr),
                    sandbox_config: Some(config),
                })
                .await?
                .into_inner()
                .container_id;
            rt.start_container(StartContainerRequest { container_id: id })
                .await?;
            Ok::<(), tonic::Status>(())
        }));
    }
    for j in jobs {
        j.await?.context("containerd: pod start")?;
    }
    let took = t.elapsed();
    d.remove_all().await?;
    Ok(took)
}

/// Runs `rounds` rounds of `n` pods on each, alternating which goes first; prints the row and
/// returns the median ratio corral/containerd.
pub async fn burst(
    kube: &mut KubeServiceClient<Channel>,
    image: &str,
    d: &mut Target,
    n: usize,
    rounds: usize,
) -> Result<f64> {
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..rounds + 1 {
        let (c, t) = if round % 2 == 0 {
            let c = corral_round(kube, n, round, image).await?;
            (c, containerd_round(d, n).await?)
        } else {
            let t = containerd_round(d, n).await?;
            (corral_round(kube, n, round, image).await?, t)
        };
        // The first round warms both up.
        if round > 0 {
            ours.push(c);
            theirs.push(t);
        }
    }
    stats::header();
    Ok(stats::row(&format!("{n} pods to Running"), &ours, &theirs))
}
