//! Requests with fields at absurd sizes and NUL bytes where paths go: each is refused with a
//! code and a message naming the field, the daemon stays up and small, and nothing is stored.

use crate::common;

use std::collections::HashMap;

use anyhow::Result;
use common::pod::{PodEnv, env};
use corral_cri_api::v1::{
    CreateContainerRequest, KeyValue, ListContainersRequest, ListPodSandboxRequest, Mount,
    PodSandboxConfig, RunPodSandboxRequest,
};
use tonic::Code;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn assert_refused(
    what: &str,
    result: Result<impl std::fmt::Debug, tonic::Status>,
    codes: &[Code],
    field: &str,
) {
    let status = result.expect_err(what);
    assert!(
        codes.contains(&status.code()),
        "{what}: {:?} {}",
        status.code(),
        status.message()
    );
    assert!(
        status.message().contains(field),
        "{what}: the message names {field:?}: {}",
        status.message()
    );
}

async fn run_pod(e: &mut PodEnv, config: PodSandboxConfig) -> Result<String, tonic::Status> {
    e.rt.run_pod_sandbox(RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: String::new(),
    })
    .await
    .map(|r| r.into_inner().pod_sandbox_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_requests_are_refused_naming_the_field_and_store_nothing() -> Result<()> {
    let mut e = env().await?;
    let mib = "x".repeat(1 << 20);
    let invalid = [Code::InvalidArgument];
    let too_big = [
        Code::InvalidArgument,
        Code::ResourceExhausted,
        Code::OutOfRange,
    ];

    // Pods.
    let mut config = e.pod_config("big");
    config.labels.insert("big".into(), mib.clone());
    assert_refused(
        "1 MiB label",
        run_pod(&mut e, config).await,
        &invalid,
        "labels",
    );
    let mut config = e.pod_config("big");
    config.annotations.insert("big".into(), mib.clone());
    assert_refused(
        "1 MiB annotation",
        run_pod(&mut e, config).await,
        &invalid,
        "annotations",
    );
    let mut config = e.pod_config("huge");
    config
        .annotations
        .insert("huge".into(), "x".repeat(17 << 20));
    assert_refused(
        "a 17 MiB message",
        run_pod(&mut e, config).await,
        &too_big,
        "message",
    );
    let mut config = e.pod_config("nul");
    config.log_directory = "/var/log/pods/a\0b".into();
    assert_refused(
        "NUL in log_directory",
        run_pod(&mut e, config).await,
        &invalid,
        "log_directory",
    );

    // Containers, in a pod that exists.
    let pod = e.run_pod("ok").await?;
    let base = e.ctr_config("c", &["true"]);
    let mut cases: Vec<(&str, corral_cri_api::v1::ContainerConfig, &str)> = Vec::new();
    let mut c = base.clone();
    c.envs = (0..100_000)
        .map(|i| KeyValue {
            key: format!("VAR_{i}"),
            value: "value".into(),
        })
        .collect();
    cases.push(("100 000 env entries", c, "envs"));
    let mut c = base.clone();
    c.args = (0..100_000).map(|i| format!("argument-{i}")).collect();
    cases.push(("a 100 000-argument command", c, "args"));
    let mut c = base.clone();
    c.labels = HashMap::from([("big".to_string(), mib.clone())]);
    cases.push(("1 MiB container label", c, "labels"));
    let mut c = base.clone();
    c.working_dir = "/tmp\0/etc".into();
    cases.push(("NUL in working_dir", c, "working_dir"));
    let mut c = base.clone();
    c.log_path = "c\0.log".into();
    cases.push(("NUL in log_path", c, "log_path"));
    let mut c = base.clone();
    c.mounts = vec![Mount {
        container_path: "/data".into(),
        host_path: "/tmp\0/etc".into(),
        ..Default::default()
    }];
    cases.push(("NUL in a mount's host_path", c, "mounts[0].host_path"));
    let mut c = base.clone();
    c.command = vec!["sh\0".into()];
    cases.push(("NUL in the command", c, "command[0]"));
    for (what, config, field) in cases {
        let sandbox_config = e.pod_config("ok");
        let r =
            e.rt.create_container(CreateContainerRequest {
                pod_sandbox_id: pod.clone(),
                config: Some(config),
                sandbox_config: Some(sandbox_config),
            })
            .await;
        assert_refused(what, r, &invalid, field);
    }

    // Nothing was stored: one pod (the good one), no container.
    let pods =
        e.rt.list_pod_sandbox(ListPodSandboxRequest::default())
            .await?
            .into_inner()
            .items;
    assert_eq!(pods.len(), 1, "{pods:?}");
    let ctrs =
        e.rt.list_containers(ListContainersRequest::default())
            .await?
            .into_inner()
            .containers;
    assert!(ctrs.is_empty(), "{ctrs:?}");
    // The daemon is still small: the requests were read (16 MiB at most each) and dropped.
    let rss = rss_kib(e.d.pid().unwrap_or(0));
    assert!(rss < 200 << 10, "corrald RSS {rss} KiB after the requests");
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}
