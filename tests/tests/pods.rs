//! Pod sandboxes and containers through the real daemon, shim and runtime, as root.

mod common;

use std::time::Duration;

use anyhow::Result;
use common::pod::{env, parse_log};
use corral_cri_api::v1::{
    ContainerState, ExecSyncRequest, ListContainersRequest, PodSandboxStatusRequest,
    StopContainerRequest,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_lifecycle_logs_and_exit_codes() -> Result<()> {
    let mut e = env().await?;
    let pod = e.run_pod("life").await?;
    let st =
        e.rt.pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: true,
        })
        .await?
        .into_inner();
    assert_eq!(st.status.as_ref().map(|s| s.state), Some(0), "pod ready");

    let ok = e
        .start(
            &pod,
            "life",
            "ok",
            &["sh", "-c", "echo hello; echo oops >&2; hostname"],
        )
        .await?;
    let s = e.wait_exited(&ok, Duration::from_secs(10)).await?;
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"));
    assert!(s.started_at > 0 && s.finished_at >= s.started_at);
    let log = parse_log(&std::fs::read_to_string(e.log_file("ok"))?);
    assert!(
        log.contains(&("stdout".into(), "F".into(), "hello".into())),
        "{log:?}"
    );
    assert!(
        log.contains(&("stderr".into(), "F".into(), "oops".into())),
        "{log:?}"
    );
    assert!(
        log.contains(&("stdout".into(), "F".into(), "life".into())),
        "hostname: {log:?}"
    );

    let bad = e
        .start(&pod, "life", "bad", &["sh", "-c", "exit 3"])
        .await?;
    let s = e.wait_exited(&bad, Duration::from_secs(10)).await?;
    assert_eq!((s.exit_code, s.reason.as_str()), (3, "Error"));

    let long = e
        .start(
            &pod,
            "life",
            "long",
            &[
                "sh",
                "-c",
                "trap 'exit 42' TERM; while :; do sleep 0.1; done",
            ],
        )
        .await?;
    assert_eq!(
        e.status(&long).await?.state,
        ContainerState::ContainerRunning as i32
    );
    let out =
        e.rt.exec_sync(ExecSyncRequest {
            container_id: long.clone(),
            cmd: vec!["sh".into(), "-c".into(), "echo $CORRAL_TEST; exit 7".into()],
            timeout: 5,
        })
        .await?
        .into_inner();
    assert_eq!(
        (out.stdout.as_slice(), out.exit_code),
        (b"1\n".as_slice(), 7)
    );
    e.rt.stop_container(StopContainerRequest {
        container_id: long.clone(),
        timeout: 5,
    })
    .await?;
    let s = e.status(&long).await?;
    assert_eq!(s.state, ContainerState::ContainerExited as i32);
    assert_eq!(s.exit_code, 42, "the TERM trap ran");

    // PID 1 without a handler ignores SIGTERM: the stop timeout escalates to SIGKILL.
    let stubborn = e
        .start(&pod, "life", "stubborn", &["sleep", "1000"])
        .await?;
    let begun = std::time::Instant::now();
    e.rt.stop_container(StopContainerRequest {
        container_id: stubborn.clone(),
        timeout: 1,
    })
    .await?;
    assert!(
        begun.elapsed() >= Duration::from_secs(1),
        "waited for the timeout"
    );
    let s = e.status(&stubborn).await?;
    assert_eq!(
        (s.state, s.exit_code),
        (ContainerState::ContainerExited as i32, 137)
    );

    let all =
        e.rt.list_containers(ListContainersRequest::default())
            .await?
            .into_inner();
    assert_eq!(all.containers.len(), 4);
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}
