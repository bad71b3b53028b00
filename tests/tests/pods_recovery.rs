//! Containers outlive the daemon: `kill -9` of corrald, then a restart, reconciles with the
//! shims; a dead shim makes its pod not ready and its containers exited or unknown.

use crate::common;

use std::time::Duration;

use anyhow::Result;
use common::pod::{env, parse_log, shim_pids};
use corral_cri_api::v1::{
    ContainerState, ExecSyncRequest, PodSandboxStatusRequest, StopContainerRequest,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_daemon_keeps_containers_and_recovers_them() -> Result<()> {
    let mut e = env().await?;
    let pod = e.run_pod("rec").await?;
    let ticker = e
        .start(
            &pod,
            "rec",
            "ticker",
            &[
                "sh",
                "-c",
                "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.1; done",
            ],
        )
        .await?;
    let doomed_pod = e.run_pod("doomed").await?;
    let doomed = e
        .start(&doomed_pod, "doomed", "d", &["sleep", "1000"])
        .await?;
    let shims_before = shim_pids(&e.d.state());
    assert_eq!(shims_before.len(), 2);
    let short = e
        .start(&pod, "rec", "short", &["sh", "-c", "sleep 2; exit 5"])
        .await?;
    assert_eq!(
        e.status(&short).await?.state,
        ContainerState::ContainerRunning as i32
    );

    e.d.kill()?;
    let killed_at = corral_fsutil::time::unix_nanos(std::time::SystemTime::now());
    let ticks_at_kill = std::fs::read_to_string(e.log_file("ticker"))?
        .lines()
        .count();
    // One shim dies with the daemon down.
    let doomed_dir = e.d.state().join("pods").join(&doomed_pod);
    let doomed_shim = shim_pids(&e.d.state())
        .into_iter()
        .find(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&doomed_dir.display().to_string()))
                .unwrap_or(false)
        })
        .expect("the doomed pod's shim");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(doomed_shim),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ticks_while_down = std::fs::read_to_string(e.log_file("ticker"))?
        .lines()
        .count();
    assert!(
        ticks_while_down > ticks_at_kill + 5,
        "logs kept growing: {ticks_at_kill} -> {ticks_while_down}"
    );

    e.d.start_again().await?;
    e.rt = e.d.runtime().await?;
    let s = e.status(&ticker).await?;
    assert_eq!(s.state, ContainerState::ContainerRunning as i32);
    let s = e.status(&short).await?;
    assert_eq!(
        (s.state, s.exit_code),
        (ContainerState::ContainerExited as i32, 5)
    );
    assert!(
        s.finished_at > killed_at,
        "finished while the daemon was down"
    );
    let out =
        e.rt.exec_sync(ExecSyncRequest {
            container_id: ticker.clone(),
            cmd: vec!["echo".into(), "back".into()],
            timeout: 5,
        })
        .await?
        .into_inner();
    assert_eq!(out.stdout, b"back\n");
    e.rt.stop_container(StopContainerRequest {
        container_id: ticker.clone(),
        timeout: 1,
    })
    .await?;
    let s = e.status(&ticker).await?;
    assert_eq!(s.state, ContainerState::ContainerExited as i32);
    let log = parse_log(&std::fs::read_to_string(e.log_file("ticker"))?);
    assert!(log.len() > ticks_while_down);

    // The pod whose shim died: not ready, its container not running, the daemon fine.
    let st =
        e.rt.pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: doomed_pod.clone(),
            verbose: false,
        })
        .await?
        .into_inner();
    assert_eq!(st.status.map(|s| s.state), Some(1), "NOTREADY");
    let s = e.status(&doomed).await?;
    assert!(
        s.state == ContainerState::ContainerExited as i32
            || s.state == ContainerState::ContainerUnknown as i32,
        "{s:?}"
    );
    assert!(!std::path::Path::new(&format!("/proc/{doomed_shim}")).exists());

    e.remove_pod(&pod).await?;
    e.remove_pod(&doomed_pod).await?;
    e.assert_clean();
    assert!(shim_pids(&e.d.state()).is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shim_dying_under_a_running_daemon_makes_its_pod_not_ready() -> Result<()> {
    let mut e = env().await?;
    let pod = e.run_pod("fragile").await?;
    let ctr = e.start(&pod, "fragile", "c", &["sleep", "1000"]).await?;
    let shims = shim_pids(&e.d.state());
    assert_eq!(shims.len(), 1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shims[0]),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = e.status(&ctr).await?;
        if s.state == ContainerState::ContainerUnknown as i32 {
            assert!(s.message.contains("not recorded"), "{s:?}");
            break;
        }
        assert!(std::time::Instant::now() < until, "still {s:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st =
        e.rt.pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: false,
        })
        .await?
        .into_inner();
    assert_eq!(st.status.map(|s| s.state), Some(1), "NOTREADY");
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}
