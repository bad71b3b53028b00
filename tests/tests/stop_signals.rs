//! A stop signal sent right after the start reaches the container, however fast the start was.
//! The kernel drops a signal a PID namespace's init leaves at its default action, so a SIGTERM
//! that arrives while the init is still `sh` (about to exec `top`) or before a program installs
//! its handler would be lost, and the container would die only by SIGKILL at the end of the
//! grace period (critest's "should support removing stopped container" timed out that way).

use crate::common;

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use common::pod::{PodEnv, env};
use corral_cri_api::v1::{
    LinuxContainerConfig, LinuxContainerSecurityContext, NamespaceMode, NamespaceOption,
    RemoveContainerRequest, StartContainerRequest, StopContainerRequest,
};

/// Cycles per program; each ends in well under a second when the signal is not lost.
const CYCLES: usize = 200;
/// The grace period: a lost signal means this long, then SIGKILL (exit 137).
const GRACE: i64 = 10;

/// Starts `cmd` as the init of its own PID namespace, stops it at once, and returns its exit
/// code and how long the stop took.
async fn start_then_stop(
    e: &mut PodEnv,
    pod: &str,
    n: usize,
    cmd: &[&str],
    grace: i64,
) -> Result<(i32, Duration)> {
    let mut config = e.ctr_config(&format!("c{n}"), cmd);
    config.linux = Some(LinuxContainerConfig {
        security_context: Some(LinuxContainerSecurityContext {
            namespace_options: Some(NamespaceOption {
                pid: NamespaceMode::Container as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = e.create(pod, "stop", config).await?;
    e.rt.start_container(StartContainerRequest {
        container_id: id.clone(),
    })
    .await?;
    let began = Instant::now();
    e.rt.stop_container(StopContainerRequest {
        container_id: id.clone(),
        timeout: grace,
    })
    .await?;
    let took = began.elapsed();
    let status = e.status(&id).await?;
    e.rt.remove_container(RemoveContainerRequest { container_id: id })
        .await?;
    Ok((status.exit_code, took))
}

/// Runs the cycles; `want_exit` None accepts any exit but SIGKILL's.
async fn cycles(
    e: &mut PodEnv,
    pod: &str,
    what: &str,
    cmd: &[&str],
    want_exit: Option<i32>,
) -> Result<()> {
    let mut slowest = Duration::ZERO;
    for n in 0..CYCLES {
        let (code, took) = start_then_stop(e, pod, n, cmd, GRACE)
            .await
            .with_context(|| format!("{what}, cycle {n}"))?;
        if code == 137 || want_exit.is_some_and(|want| code != want) {
            bail!("{what}, cycle {n}: exit code {code} after {took:?} (the stop signal was lost?)");
        }
        slowest = slowest.max(took);
    }
    assert!(
        slowest < Duration::from_secs(5),
        "{what}: a stop took {slowest:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_right_after_the_start_is_delivered_not_lost() -> Result<()> {
    let mut e = env().await?;
    let pod = e.run_pod("stop").await?;
    // critest's container: `top` catches SIGTERM, once it has been exec'd.
    cycles(&mut e, &pod, "sh -c top", &["sh", "-c", "top"], None).await?;
    // A program that installs its handler only after a moment.
    cycles(
        &mut e,
        &pod,
        "a late handler",
        &[
            "sh",
            "-c",
            "sleep 0.05; trap 'exit 7' TERM; while true; do sleep 0.01; done",
        ],
        Some(7),
    )
    .await?;
    // An init that never catches SIGTERM is still killed at the end of the grace period.
    let (code, took) = start_then_stop(&mut e, &pod, CYCLES, &["sleep", "1000"], 1).await?;
    assert_eq!(code, 137, "SIGKILL after {took:?}");
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}
