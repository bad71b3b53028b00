//! Bad input to the pod and container calls: clear gRPC errors, and nothing left behind.

use crate::common;

use anyhow::Result;
use common::assert_status;
use common::pod::{env, shim_pids};
use corral_cri_api::v1::{
    ContainerStatusRequest, Mount, PodSandboxStatusRequest, RemoveContainerRequest,
    RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest, StopContainerRequest,
    StopPodSandboxRequest,
};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_errors_and_leave_nothing() -> Result<()> {
    let mut e = env().await?;
    // Pod sandboxes.
    let mut no_md = e.pod_config("x");
    no_md.metadata = None;
    let r =
        e.rt.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(no_md),
            runtime_handler: String::new(),
        })
        .await;
    assert_status(r, Code::InvalidArgument, &["metadata"]);
    let pod = e.run_pod("bad").await?;
    let r =
        e.rt.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(e.pod_config("bad")),
            runtime_handler: String::new(),
        })
        .await;
    assert_status(r, Code::AlreadyExists, &[&pod]);
    let r =
        e.rt.pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: "0123456789ab".into(),
            verbose: false,
        })
        .await;
    assert_status(r, Code::NotFound, &["0123456789ab"]);
    let r =
        e.rt.container_status(ContainerStatusRequest {
            container_id: "feedbeef".into(),
            verbose: false,
        })
        .await;
    assert_status(r, Code::NotFound, &["feedbeef"]);
    // Absent things stop and remove fine (CRI idempotence).
    e.rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: "nope".into(),
    })
    .await?;
    e.rt.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: "nope".into(),
    })
    .await?;
    e.rt.stop_container(StopContainerRequest {
        container_id: "nope".into(),
        timeout: 1,
    })
    .await?;
    e.rt.remove_container(RemoveContainerRequest {
        container_id: "nope".into(),
    })
    .await?;

    // Containers: each failure leaves no directory, mount, cgroup or process.
    let mounts_before = corral_tests::cleanup::mounts_under(e.d.dir());
    let mut missing_src = e.ctr_config("m", &["true"]);
    missing_src.mounts = vec![Mount {
        container_path: "/data".into(),
        host_path: "/nonexistent/corral-src".into(),
        ..Default::default()
    }];
    assert_status(
        e.create(&pod, "bad", missing_src).await,
        Code::NotFound,
        &["/nonexistent/corral-src"],
    );
    let mut escape = e.ctr_config("l", &["true"]);
    escape.log_path = "../../etc/evil.log".into();
    assert_status(
        e.create(&pod, "bad", escape).await,
        Code::InvalidArgument,
        &["../../etc/evil.log"],
    );
    let mut absent = e.ctr_config("i", &["true"]);
    if let Some(i) = absent.image.as_mut() {
        i.image = "127.0.0.1:1/not/here:v9".into();
    }
    assert_status(
        e.create(&pod, "bad", absent).await,
        Code::NotFound,
        &["127.0.0.1:1/not/here:v9"],
    );
    let mut no_md = e.ctr_config("n", &["true"]);
    no_md.metadata = None;
    assert_status(
        e.create(&pod, "bad", no_md).await,
        Code::InvalidArgument,
        &["metadata"],
    );
    assert_status(
        e.create("0000", "bad", e.ctr_config("z", &["true"])).await,
        Code::NotFound,
        &["0000"],
    );
    assert_eq!(
        corral_tests::cleanup::mounts_under(e.d.dir()),
        mounts_before
    );
    for base in [e.d.root(), e.d.state()] {
        let left: Vec<_> = std::fs::read_dir(base.join("containers"))
            .map(|rd| rd.flatten().map(|x| x.path()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{left:?}");
    }
    assert!(!e.logs.path().join("../etc/evil.log").exists());

    // A duplicate container name names the holder; a missing executable fails StartContainer.
    let first = e
        .create(&pod, "bad", e.ctr_config("dup", &["no-such-binary"]))
        .await?;
    assert_status(
        e.create(&pod, "bad", e.ctr_config("dup", &["true"])).await,
        Code::AlreadyExists,
        &[&first],
    );
    let r =
        e.rt.start_container(StartContainerRequest {
            container_id: first.clone(),
        })
        .await;
    assert_status(r, Code::FailedPrecondition, &["no-such-binary"]);
    let s = e.status(&first).await?;
    assert_eq!(
        (s.state, s.exit_code, s.reason.as_str()),
        (2, 128, "StartError")
    );
    let r =
        e.rt.start_container(StartContainerRequest {
            container_id: first.clone(),
        })
        .await;
    assert_status(r, Code::FailedPrecondition, &["not in the created state"]);

    e.remove_pod(&pod).await?;
    e.assert_clean();
    assert!(shim_pids(&e.d.state()).is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_cycles_leave_nothing_behind() -> Result<()> {
    let mut e = env().await?;
    for i in 0..50 {
        let name = format!("cycle{i}");
        let pod = e.run_pod(&name).await?;
        let id = e.start(&pod, &name, "c", &["sleep", "60"]).await?;
        if i % 2 == 0 {
            e.rt.stop_container(StopContainerRequest {
                container_id: id.clone(),
                timeout: 0,
            })
            .await?;
            e.rt.remove_container(RemoveContainerRequest { container_id: id })
                .await?;
        }
        e.rt.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await?;
        e.remove_pod(&pod).await?;
    }
    e.assert_clean();
    assert!(shim_pids(&e.d.state()).is_empty(), "shims left");
    let all =
        e.rt.list_pod_sandbox(corral_cri_api::v1::ListPodSandboxRequest::default())
            .await?
            .into_inner();
    assert!(all.items.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_in_use_is_not_removed() -> Result<()> {
    let mut e = env().await?;
    let pod = e.run_pod("busy").await?;
    let id = e.create(&pod, "busy", e.ctr_config("c", &["true"])).await?;
    let mut images = e.d.images().await?;
    let r = common::remove(&mut images, &e.image).await;
    assert_status(r, Code::FailedPrecondition, &["in use", &id]);
    e.rt.remove_container(RemoveContainerRequest { container_id: id })
        .await?;
    common::remove(&mut images, &e.image).await?;
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

/// A mount point that is not UTF-8 anywhere in the daemon's mount table (an unprivileged user's
/// FUSE mount can make one) does not stop containers from being made: every reader of the mount
/// table used to fail on it, and with it every CreateContainer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_point_that_is_not_utf8_does_not_stop_containers() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("corral-test-mnt-")
        .tempdir()?;
    let point = format!("{}/$(printf 'fuse\\377')", dir.path().display());
    let mut e = common::pod::env_with(corral_tests::daemon::DaemonOptions {
        mount_setup: Some(format!(
            "mkdir \"{point}\" && mount -t tmpfs -o size=1m none \"{point}\""
        )),
        ..Default::default()
    })
    .await?;
    let pid = e.d.pid().expect("daemon pid");
    let table = std::fs::read(format!("/proc/{pid}/mountinfo"))?;
    assert!(
        table.windows(5).any(|w| w == b"fuse\xff"),
        "the daemon's mount table has no such mount point"
    );
    let pod = e.run_pod("utf8").await?;
    let id = e.start(&pod, "utf8", "c", &["true"]).await?;
    let status = e
        .wait_exited(&id, std::time::Duration::from_secs(10))
        .await?;
    assert_eq!(status.exit_code, 0);
    e.remove_pod(&pod).await?;
    Ok(())
}
