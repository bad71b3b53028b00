//! ContainerStats, ListContainerStats, PodSandboxStats, ListPodSandboxStats and their Stream
//! variants through the socket, against a real container that burns CPU, allocates page cache
//! and writes to its writable layer, in a pod with its own network.

use crate::common;

use std::time::Duration;

use anyhow::{Context as _, Result};
use common::pod::env;
use corral_cri_api::v1::{
    ContainerStatsFilter, ContainerStatsRequest, ListContainerStatsRequest,
    ListMetricDescriptorsRequest, ListPodSandboxMetricsRequest, ListPodSandboxStatsRequest,
    PodSandboxStatsFilter, PodSandboxStatsRequest, StartContainerRequest,
    StreamContainerStatsRequest, StreamPodSandboxStatsRequest,
};
use futures::StreamExt as _;

fn v(x: &Option<corral_cri_api::v1::UInt64Value>) -> u64 {
    x.as_ref().map(|v| v.value).unwrap_or(0)
}

async fn container_stats(
    e: &mut common::pod::PodEnv,
    id: &str,
) -> Result<corral_cri_api::v1::ContainerStats> {
    e.rt.container_stats(ContainerStatsRequest {
        container_id: id.to_owned(),
    })
    .await?
    .into_inner()
    .stats
    .context("no stats")
}

#[tokio::test]
async fn stats_of_a_busy_container_and_its_pod() -> Result<()> {
    let mut e = env().await?;
    let mut pod_config = e.pod_config("stats");
    pod_config.labels.insert("app".into(), "stats".into());
    let pod = e.run_pod_with(pod_config).await?;
    let script = "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; \
                  dd if=/dev/zero of=/blob bs=1M count=8 2>/dev/null; echo ready; sleep 3600";
    let mut config = e.ctr_config("busy", &["sh", "-c", script]);
    config.labels.insert("role".into(), "busy".into());
    let ctr = e.create(&pod, "stats", config).await?;
    e.rt.start_container(StartContainerRequest {
        container_id: ctr.clone(),
    })
    .await?;
    let log = e.log_file("busy");
    for _ in 0..300 {
        if std::fs::read_to_string(&log).is_ok_and(|t| t.contains("ready")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let first = container_stats(&mut e, &ctr).await?;
    let attrs = first.attributes.as_ref().context("attributes")?;
    assert_eq!(attrs.id, ctr);
    assert_eq!(attrs.labels.get("role").map(String::as_str), Some("busy"));
    let cpu = first.cpu.as_ref().context("cpu")?;
    assert!(cpu.timestamp > 0);
    // The loop took tens of milliseconds of CPU at least.
    assert!(v(&cpu.usage_core_nano_seconds) > 10_000_000, "{cpu:?}");
    let mem = first.memory.as_ref().context("memory")?;
    assert!(v(&mem.usage_bytes) >= v(&mem.working_set_bytes), "{mem:?}");
    assert!(v(&mem.working_set_bytes) > 0, "{mem:?}");
    assert!(v(&mem.page_faults) > 0, "{mem:?}");
    let layer = first.writable_layer.as_ref().context("writable layer")?;
    assert!(v(&layer.used_bytes) >= 8 << 20, "{layer:?}");
    assert!(v(&layer.inodes_used) >= 1, "{layer:?}");

    // A second sample has a rate.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = container_stats(&mut e, &ctr).await?;
    let cpu2 = second.cpu.as_ref().context("cpu")?;
    assert!(cpu2.usage_nano_cores.is_some(), "{cpu2:?}");
    assert!(v(&cpu2.usage_core_nano_seconds) >= v(&cpu.usage_core_nano_seconds));

    // Filters: by pod, by label; a selector nobody matches gives nothing.
    let list = |filter: ContainerStatsFilter| ListContainerStatsRequest {
        filter: Some(filter),
    };
    let by_pod =
        e.rt.list_container_stats(list(ContainerStatsFilter {
            pod_sandbox_id: pod.clone(),
            ..Default::default()
        }))
        .await?
        .into_inner()
        .stats;
    assert_eq!(by_pod.len(), 1);
    let none =
        e.rt.list_container_stats(list(ContainerStatsFilter {
            label_selector: [("role".to_owned(), "idle".to_owned())].into(),
            ..Default::default()
        }))
        .await?
        .into_inner()
        .stats;
    assert!(none.is_empty(), "{none:?}");
    let mut stream =
        e.rt.stream_container_stats(StreamContainerStatsRequest {
            filter: Some(ContainerStatsFilter {
                label_selector: [("role".to_owned(), "busy".to_owned())].into(),
                ..Default::default()
            }),
        })
        .await?
        .into_inner();
    let mut streamed = Vec::new();
    while let Some(batch) = stream.next().await {
        streamed.extend(batch?.container_stats);
    }
    assert_eq!(streamed.len(), 1);
    assert_eq!(
        streamed[0].attributes.as_ref().map(|a| a.id.clone()),
        Some(ctr.clone())
    );

    // The pod: its cgroup, its processes, its network interface, its container.
    let pod_stats =
        e.rt.pod_sandbox_stats(PodSandboxStatsRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await?
        .into_inner()
        .stats
        .context("no pod stats")?;
    let linux = pod_stats.linux.as_ref().context("linux")?;
    assert!(
        v(&linux
            .cpu
            .as_ref()
            .context("pod cpu")?
            .usage_core_nano_seconds)
            > 10_000_000
    );
    assert!(
        v(&linux
            .memory
            .as_ref()
            .context("pod memory")?
            .working_set_bytes)
            > 0
    );
    let procs = v(&linux.process.as_ref().context("process")?.process_count);
    assert!(procs >= 1, "{procs}");
    let net = linux.network.as_ref().context("network")?;
    let eth0 = net
        .default_interface
        .as_ref()
        .context("default interface")?;
    assert_eq!(eth0.name, "eth0");
    assert!(eth0.rx_bytes.is_some() && eth0.tx_bytes.is_some());
    assert_eq!(linux.containers.len(), 1);

    let listed =
        e.rt.list_pod_sandbox_stats(ListPodSandboxStatsRequest {
            filter: Some(PodSandboxStatsFilter {
                label_selector: [("app".to_owned(), "stats".to_owned())].into(),
                ..Default::default()
            }),
        })
        .await?
        .into_inner()
        .stats;
    assert_eq!(listed.len(), 1);
    let mut stream =
        e.rt.stream_pod_sandbox_stats(StreamPodSandboxStatsRequest {
            filter: Some(PodSandboxStatsFilter {
                id: "no-such-pod".into(),
                ..Default::default()
            }),
        })
        .await?
        .into_inner();
    let mut streamed = 0;
    while let Some(batch) = stream.next().await {
        streamed += batch?.pod_sandbox_stats.len();
    }
    assert_eq!(streamed, 0);

    // The same under cAdvisor's names, as the kubelet's /metrics/cadvisor reads them.
    let descriptors =
        e.rt.list_metric_descriptors(ListMetricDescriptorsRequest {})
            .await?
            .into_inner()
            .descriptors;
    assert!(
        descriptors
            .iter()
            .any(|d| d.name == "container_cpu_usage_seconds_total")
    );
    let metrics =
        e.rt.list_pod_sandbox_metrics(ListPodSandboxMetricsRequest {})
            .await?
            .into_inner()
            .pod_metrics;
    let ours = metrics
        .iter()
        .find(|m| m.pod_sandbox_id == pod)
        .context("the pod's metrics")?;
    assert!(
        ours.metrics
            .iter()
            .any(|m| m.name == "container_network_receive_bytes_total"
                && m.label_values.contains(&"eth0".to_owned())),
        "{ours:?}"
    );
    let ctr_metrics = &ours.container_metrics[0];
    assert_eq!(ctr_metrics.container_id, ctr);
    let working_set = ctr_metrics
        .metrics
        .iter()
        .find(|m| m.name == "container_memory_working_set_bytes")
        .context("working set metric")?;
    assert!(v(&working_set.value) > 0);
    assert!(
        ctr_metrics
            .metrics
            .iter()
            .chain(&ours.metrics)
            .all(|m| descriptors
                .iter()
                .any(|d| d.name == m.name && d.label_keys.len() == m.label_values.len())),
        "{ours:?}"
    );

    // Bad input.
    let missing =
        e.rt.container_stats(ContainerStatsRequest {
            container_id: "no-such-container".into(),
        })
        .await
        .expect_err("stats of a missing container");
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");
    let empty =
        e.rt.pod_sandbox_stats(PodSandboxStatsRequest::default())
            .await
            .expect_err("stats of no pod");
    assert_eq!(empty.code(), tonic::Code::InvalidArgument, "{empty:?}");
    assert!(empty.message().contains("pod_sandbox_id"), "{empty:?}");

    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}
