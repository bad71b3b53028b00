//! 20 000 pod sandboxes and 20 000 containers listed both ways: List (one message) and
//! Stream (batches), through the socket, with the same filters.
//!
//! Running 20 000 real pods, or creating 20 000 containers (each holds a waiting process in the
//! shim until it is stopped: about 35 ms per create and remove here), would take many minutes.
//! So this test makes one real pod and one real container through the daemon, stops them, stops
//! the daemon, and copies the records the daemon itself wrote (`<root>/pods/<id>/{meta,status}.json`,
//! `<root>/containers/<id>/{meta,status}.json`) under new IDs and names: what a node that kept
//! tens of thousands of exited containers looks like to a restarted daemon. The daemon then
//! loads them through its real start-up recovery. The record directories are put on tmpfs for
//! the copies (see `on_tmpfs`).

use crate::common;

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result};
use common::pod::{env, host_network};
use corral_cri_api::v1::{
    ContainerFilter, ContainerState, ContainerStateValue, ListContainersRequest,
    ListPodSandboxRequest, PodSandboxFilter, StopPodSandboxRequest, StreamContainersRequest,
    StreamPodSandboxesRequest,
};

const RECORDS: usize = 20_000;

/// Labels and annotations of the size a kubelet gives its pods (about 1.1 KiB).
type Pairs = Vec<(String, String)>;

fn kubelet_like(name: &str) -> (Pairs, Pairs) {
    let labels = vec![
        ("io.kubernetes.pod.name".into(), name.into()),
        ("io.kubernetes.pod.namespace".into(), "default".into()),
        (
            "io.kubernetes.pod.uid".into(),
            format!("{name}-0000-1111-2222-333333333333"),
        ),
        ("app.kubernetes.io/name".into(), "web-frontend".into()),
        ("pod-template-hash".into(), "7d9c5b8f4d".into()),
    ];
    let annotations = vec![
        (
            "kubernetes.io/config.seen".into(),
            "2026-12-02T04:00:00.123456789Z".into(),
        ),
        ("kubernetes.io/config.source".into(), "api".into()),
        (
            "kubectl.kubernetes.io/last-applied-configuration".into(),
            format!(
                "{{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{{\"annotations\":{{}},\"labels\":{{\"app.kubernetes.io/name\":\"web-frontend\"}},\"name\":\"{name}\",\"namespace\":\"default\"}},\"spec\":{{\"containers\":[{{\"image\":\"registry.example/team/web:1.2.3\",\"name\":\"web\",\"ports\":[{{\"containerPort\":8080}}],\"resources\":{{\"limits\":{{\"cpu\":\"500m\",\"memory\":\"256Mi\"}}}},\"env\":[{{\"name\":\"LOG_LEVEL\",\"value\":\"info\"}},{{\"name\":\"UPSTREAM\",\"value\":\"http://api.default.svc.cluster.local:8080\"}}],\"readinessProbe\":{{\"httpGet\":{{\"path\":\"/healthz\",\"port\":8080}},\"periodSeconds\":10}}}}]}}}}\n"
            ),
        ),
    ];
    (labels, annotations)
}

/// Puts `dir` on a fresh tmpfs, with what it held copied over (records only: `*.json` files
/// one level down).
fn on_tmpfs(dir: &Path) -> Result<()> {
    let aside = dir.with_extension("disk");
    std::fs::rename(dir, &aside)?;
    std::fs::create_dir(dir)?;
    corral_tests::cleanup::mount_tmpfs(dir, "mode=0700")?;
    for rec in std::fs::read_dir(&aside)? {
        let rec = rec?.path();
        let to = dir.join(rec.file_name().context("name")?);
        std::fs::create_dir(&to)?;
        for f in std::fs::read_dir(&rec)? {
            let f = f?.path();
            if f.extension().is_some_and(|x| x == "json") {
                std::fs::copy(&f, to.join(f.file_name().context("name")?))?;
            }
        }
    }
    Ok(())
}

/// A record directory's `meta.json` (parsed) and `status.json` (as is).
fn read_record(dir: &Path) -> Result<(serde_json::Value, Vec<u8>)> {
    let meta = serde_json::from_slice(&std::fs::read(dir.join("meta.json"))?)?;
    Ok((meta, std::fs::read(dir.join("status.json"))?))
}

/// Writes a copy of a record with `meta.json` fields changed.
fn write_record(
    dir: &Path,
    (meta, status): &(serde_json::Value, Vec<u8>),
    fields: &[(&str, serde_json::Value)],
) -> Result<()> {
    let mut meta = meta.clone();
    for (k, v) in fields {
        meta[*k] = v.clone();
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("meta.json"), serde_json::to_vec(&meta)?)?;
    std::fs::write(dir.join("status.json"), status)?;
    Ok(())
}

fn id(kind: u8, i: usize) -> String {
    format!("{kind:02x}{i:062x}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_pods_and_containers_list_and_stream() -> Result<()> {
    let mut e = env().await?;
    let mut config = host_network(e.pod_config("many"));
    let (labels, annotations) = kubelet_like("many");
    config.labels = labels.into_iter().collect();
    config.annotations = annotations.into_iter().collect();
    let pod = e.run_pod_with(config).await?;
    let mut ctr_config = e.ctr_config("web", &["true"]);
    ctr_config.labels = [
        ("io.kubernetes.container.name".to_owned(), "web".to_owned()),
        ("io.kubernetes.pod.name".into(), "many".into()),
        ("io.kubernetes.pod.namespace".into(), "default".into()),
    ]
    .into();
    ctr_config.annotations = [
        (
            "io.kubernetes.container.hash".to_owned(),
            "9a2bd53f".to_owned(),
        ),
        ("io.kubernetes.container.restartCount".into(), "0".into()),
        (
            "io.kubernetes.container.terminationMessagePath".into(),
            "/dev/termination-log".into(),
        ),
        (
            "io.kubernetes.container.terminationMessagePolicy".into(),
            "File".into(),
        ),
        (
            "io.kubernetes.pod.terminationGracePeriod".into(),
            "30".into(),
        ),
    ]
    .into();
    let ctr = e.create(&pod, "many", ctr_config).await?;
    e.rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await?;
    e.d.stop()?;

    let root = e.d.root();
    let begun = Instant::now();
    // The copies live on tmpfs mounts over the record directories: on this machine's disk
    // (ext4 with online discard) creating 80 000 small files takes ~15 s and unlinking them
    // ~3 minutes. The harness unmounts whatever is left under the daemon's directory.
    for sub in ["pods", "containers"] {
        on_tmpfs(&root.join(sub))?;
    }
    let pod_record = read_record(&root.join("pods").join(&pod))?;
    let ctr_record = read_record(&root.join("containers").join(&ctr))?;
    for i in 1..RECORDS {
        let (pod_id, ctr_id) = (id(0xaa, i), id(0xcc, i));
        write_record(
            &root.join("pods").join(&pod_id),
            &pod_record,
            &[
                ("id", pod_id.clone().into()),
                ("name", format!("many-{i}_test_many-uid_0").into()),
                ("owns_cgroup", false.into()),
            ],
        )?;
        write_record(
            &root.join("containers").join(&ctr_id),
            &ctr_record,
            &[
                ("id", ctr_id.into()),
                ("sandbox_id", pod_id.into()),
                ("name", format!("web_many-{i}_test_many-uid_0").into()),
            ],
        )?;
    }
    let written = begun.elapsed();
    let begun = Instant::now();
    e.d.start_again().await?;
    let recovered = begun.elapsed();
    let mut rt = e.d.runtime().await?;

    // All pods: about 20 MiB in one message, over the limit; the stream carries them.
    let begun = Instant::now();
    let listed = rt.list_pod_sandbox(ListPodSandboxRequest::default()).await;
    let list_time = begun.elapsed();
    let status = match listed {
        Ok(r) => anyhow::bail!(
            "20 000 kubelet-sized pods fit one message: {} items",
            r.into_inner().items.len()
        ),
        Err(status) => status,
    };
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("StreamPodSandboxes"),
        "{status:?}"
    );
    assert!(
        status.message().contains("20000 pod sandboxes"),
        "{status:?}"
    );
    let begun = Instant::now();
    let mut stream = rt
        .stream_pod_sandboxes(StreamPodSandboxesRequest::default())
        .await?
        .into_inner();
    let (mut pods, mut batches) = (HashSet::new(), 0);
    while let Some(batch) = stream.message().await? {
        assert!(!batch.pod_sandboxes.is_empty(), "no empty batch");
        batches += 1;
        for p in batch.pod_sandboxes {
            assert!(pods.insert(p.id), "a pod sandbox sent twice");
        }
    }
    let stream_time = begun.elapsed();
    assert_eq!(pods.len(), RECORDS);
    assert!(pods.contains(&pod));

    // A filter applies to both the same way, and a small answer still fits one message.
    let filter = PodSandboxFilter {
        id: id(0xaa, 0x100)[..63].to_owned(),
        ..Default::default()
    };
    let listed: HashSet<String> = rt
        .list_pod_sandbox(ListPodSandboxRequest {
            filter: Some(filter.clone()),
        })
        .await?
        .into_inner()
        .items
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(listed.len(), 16, "an ID prefix shared by 16 pods");
    let mut streamed = HashSet::new();
    let mut stream = rt
        .stream_pod_sandboxes(StreamPodSandboxesRequest {
            filter: Some(filter),
        })
        .await?
        .into_inner();
    while let Some(batch) = stream.message().await? {
        streamed.extend(batch.pod_sandboxes.into_iter().map(|p| p.id));
    }
    assert_eq!(listed, streamed);

    // All containers: smaller records, about 11 MiB: List still fits, and both agree.
    let begun = Instant::now();
    let listed: Vec<String> = rt
        .list_containers(ListContainersRequest::default())
        .await?
        .into_inner()
        .containers
        .into_iter()
        .map(|c| c.id)
        .collect();
    let ctr_list_time = begun.elapsed();
    assert_eq!(listed.len(), RECORDS);
    let mut streamed = Vec::new();
    let mut stream = rt
        .stream_containers(StreamContainersRequest::default())
        .await?
        .into_inner();
    while let Some(batch) = stream.message().await? {
        streamed.extend(batch.containers.into_iter().map(|c| c.id));
    }
    assert_eq!(listed, streamed, "the same containers in the same order");
    let exited = ContainerFilter {
        state: Some(ContainerStateValue {
            state: ContainerState::ContainerExited as i32,
        }),
        pod_sandbox_id: id(0xaa, 7),
        ..Default::default()
    };
    let mut stream = rt
        .stream_containers(StreamContainersRequest {
            filter: Some(exited),
        })
        .await?
        .into_inner();
    let batch = stream.message().await?.context("one batch")?;
    assert_eq!(batch.containers.len(), 1);
    assert_eq!(batch.containers[0].id, id(0xcc, 7));
    assert!(stream.message().await?.is_none());

    eprintln!(
        "{RECORDS} pods + containers: records written in {written:?}, daemon restarted in \
         {recovered:?}; ListPodSandbox refused in {list_time:?}; StreamPodSandboxes \
         {batches} batches in {stream_time:?}; ListContainers in {ctr_list_time:?}"
    );
    // The one real pod goes the ordinary way; the copies have nothing live to clean up and
    // go with the daemon's directory.
    let begun = Instant::now();
    e.remove_pod(&pod).await?;
    let removed = begun.elapsed();
    e.d.stop()?;
    let stopped = begun.elapsed();
    drop(e);
    eprintln!(
        "pod removed in {removed:?}, daemon stopped at {stopped:?}, directories gone at {:?}",
        begun.elapsed()
    );
    Ok(())
}
