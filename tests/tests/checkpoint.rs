//! CheckpointContainer through the socket: bad requests name the field; a running container
//! gets FAILED_PRECONDITION naming why CRIU cannot run when `criu check` fails on this host
//! (Debian bookworm's CRIU 3.17 and kernels from 6.13 on), UNIMPLEMENTED where CRIU works.

use crate::common;

use anyhow::Result;
use common::assert_status;
use common::pod::{env, host_network};
use corral_cri_api::v1::CheckpointContainerRequest;
use tonic::Code;

/// What `criu check` says here: `None` when it passes, else the reason.
fn criu_problem() -> Option<String> {
    match std::process::Command::new("criu").arg("check").output() {
        Err(_) => Some("not installed".into()),
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stderr).into_owned()
                + &String::from_utf8_lossy(&out.stdout);
            (!out.status.success() || text.lines().any(|l| l.starts_with("Error"))).then_some(text)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_checks_its_request_and_says_why_criu_cannot_run() -> Result<()> {
    let mut e = env().await?;
    let pod = e.run_pod_with(host_network(e.pod_config("ckpt"))).await?;
    let running = e.start(&pod, "ckpt", "sleeper", &["sleep", "1000"]).await?;
    let created = e
        .create(&pod, "ckpt", e.ctr_config("idle", &["true"]))
        .await?;
    let archive = e.logs.path().join("checkpoint.tar");
    let req = |id: &str, location: &str| CheckpointContainerRequest {
        container_id: id.into(),
        location: location.into(),
        timeout: 0,
    };
    let loc = archive.display().to_string();
    assert_status(
        e.rt.checkpoint_container(req("", &loc)).await,
        Code::InvalidArgument,
        &["container_id"],
    );
    assert_status(
        e.rt.checkpoint_container(req(&running, "")).await,
        Code::InvalidArgument,
        &["location"],
    );
    assert_status(
        e.rt.checkpoint_container(req("nope", &loc)).await,
        Code::NotFound,
        &["nope"],
    );
    assert_status(
        e.rt.checkpoint_container(req(&created, &loc)).await,
        Code::FailedPrecondition,
        &["not running"],
    );
    let answer = e.rt.checkpoint_container(req(&running, &loc)).await;
    if let Err(s) = &answer {
        eprintln!(
            "CheckpointContainer of a running container: {:?}: {}",
            s.code(),
            s.message()
        );
    }
    match criu_problem() {
        Some(_) => assert_status(answer, Code::FailedPrecondition, &["CRIU", "criu"]),
        None => assert_status(answer, Code::Unimplemented, &["CRIU works"]),
    }
    assert!(!archive.exists(), "no archive written");
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}
