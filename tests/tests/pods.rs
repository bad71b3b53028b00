//! Pod sandboxes and containers through the real daemon, shim and runtime, as root.

use crate::common;

use std::time::Duration;

use anyhow::Result;
use common::pod::{env, host_network, parse_log};
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
    let user = s
        .user
        .as_ref()
        .and_then(|u| u.linux.as_ref())
        .map(|l| (l.uid, l.gid));
    assert_eq!(user, Some((0, 0)), "the image runs as root");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_a_pod_share_localhost_hostname_and_ipc() -> Result<()> {
    let mut e = env().await?;
    let pod = e.run_pod("share").await?;
    // An init container runs to completion first, in the same sandbox.
    let init = e
        .start(
            &pod,
            "share",
            "init",
            &["sh", "-c", "echo ready > /dev/shm/init-done"],
        )
        .await?;
    assert_eq!(
        e.wait_exited(&init, Duration::from_secs(10))
            .await?
            .exit_code,
        0
    );
    // A server on the pod's loopback, reached from a second container.
    let server = e
        .start(
            &pod,
            "share",
            "server",
            &["sh", "-c", "echo pong | nc -l -p 8080 127.0.0.1"],
        )
        .await?;
    let client = e
        .start(
            &pod,
            "share",
            "client",
            &[
                "sh",
                "-c",
                "cat /dev/shm/init-done; hostname; for i in $(seq 50); do nc 127.0.0.1 8080 </dev/null && exit 0; sleep 0.1; done; exit 9",
            ],
        )
        .await?;
    let s = e.wait_exited(&client, Duration::from_secs(15)).await?;
    let log = std::fs::read_to_string(e.log_file("client"))?;
    assert_eq!(s.exit_code, 0, "client log: {log}");
    let lines: Vec<String> = parse_log(&log).into_iter().map(|(_, _, t)| t).collect();
    assert_eq!(
        lines,
        ["ready", "share", "pong"],
        "shared /dev/shm, hostname, localhost"
    );
    e.wait_exited(&server, Duration::from_secs(10)).await?;
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oom_kill_is_reported() -> Result<()> {
    let mut e = env().await?;
    let pod = e.run_pod("oom").await?;
    let config = e.oom_hog_config("hog");
    let id = e.create(&pod, "oom", config).await?;
    e.rt.start_container(corral_cri_api::v1::StartContainerRequest {
        container_id: id.clone(),
    })
    .await?;
    let s = e.wait_exited(&id, Duration::from_secs(30)).await?;
    assert_eq!((s.exit_code, s.reason.as_str()), (137, "OOMKilled"));
    let limit = s
        .resources
        .and_then(|r| r.linux)
        .map(|l| l.memory_limit_in_bytes);
    assert_eq!(limit, Some(32 << 20));
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_timeout_update_and_log_reopen() -> Result<()> {
    let mut e = env().await?;
    let pod = e.run_pod("ops").await?;
    let id = e
        .start(
            &pod,
            "ops",
            "talker",
            &["sh", "-c", "while :; do echo tick; sleep 0.2; done"],
        )
        .await?;
    // ExecSync past its timeout: killed, DEADLINE_EXCEEDED.
    let begun = std::time::Instant::now();
    let r =
        e.rt.exec_sync(ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["sleep".into(), "30".into()],
            timeout: 1,
        })
        .await;
    common::assert_status(r, tonic::Code::DeadlineExceeded, &["timed out"]);
    assert!(begun.elapsed() < Duration::from_secs(10));
    let ps =
        e.rt.exec_sync(ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["ps".into(), "-o".into(), "args".into()],
            timeout: 5,
        })
        .await?
        .into_inner();
    let ps = String::from_utf8_lossy(&ps.stdout).to_string();
    assert!(
        !ps.contains("sleep 30"),
        "the timed-out exec was killed: {ps}"
    );

    // UpdateContainerResources reaches the cgroup.
    e.rt.update_container_resources(corral_cri_api::v1::UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(corral_cri_api::v1::LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            cpu_shares: 512,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await?;
    let cg = std::path::Path::new("/sys/fs/cgroup/memory")
        .join(e.d.cgroup_root().trim_start_matches('/'))
        .join(&pod)
        .join(&id)
        .join("memory.limit_in_bytes");
    assert_eq!(
        std::fs::read_to_string(&cg)?.trim(),
        (64u64 << 20).to_string()
    );
    let s = e.status(&id).await?;
    assert_eq!(
        s.resources.and_then(|r| r.linux).map(|l| l.cpu_shares),
        Some(512)
    );

    // Log rotation: rename, reopen, and the new file fills.
    let log = e.log_file("talker");
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated)?;
    e.rt.reopen_container_log(corral_cri_api::v1::ReopenContainerLogRequest {
        container_id: id.clone(),
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let fresh = parse_log(&std::fs::read_to_string(&log)?);
    assert!(
        fresh
            .iter()
            .any(|(s, t, x)| s == "stdout" && t == "F" && x == "tick"),
        "{fresh:?}"
    );
    assert!(!std::fs::read_to_string(&rotated)?.is_empty());
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_modes_and_sysctls() -> Result<()> {
    use corral_cri_api::v1::{
        LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption,
    };
    let mut e = env().await?;
    // A pod-wide PID namespace, and a namespaced sysctl.
    let mut config = e.pod_config("pidpod");
    config.linux = Some(LinuxPodSandboxConfig {
        sysctls: [("net.ipv4.ip_forward".to_owned(), "1".to_owned())].into(),
        security_context: Some(LinuxSandboxSecurityContext {
            namespace_options: Some(NamespaceOption {
                pid: NamespaceMode::Pod as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let pod = e.run_pod_with(config).await?;
    let sleeper = e
        .start(&pod, "pidpod", "sleeper", &["sleep", "1000"])
        .await?;
    let looker = e
        .start(
            &pod,
            "pidpod",
            "looker",
            &[
                "sh",
                "-c",
                "ps -o comm | grep -c sleep; cat /proc/sys/net/ipv4/ip_forward; echo $$",
            ],
        )
        .await?;
    e.wait_exited(&looker, Duration::from_secs(10)).await?;
    let lines: Vec<String> = parse_log(&std::fs::read_to_string(e.log_file("looker"))?)
        .into_iter()
        .map(|(_, _, t)| t)
        .collect();
    assert_eq!(
        lines[..2],
        ["1", "1"],
        "sees the other container's sleep; sysctl set"
    );
    assert_ne!(
        lines[2], "1",
        "the pod's holder is PID 1, not the container"
    );
    assert_eq!(
        e.status(&sleeper).await?.state,
        ContainerState::ContainerRunning as i32
    );

    // Host network: the container is in the host's network namespace.
    let hostpod = e
        .run_pod_with(host_network(e.pod_config("hostnet")))
        .await?;
    let netns = e
        .start(
            &hostpod,
            "hostnet",
            "net",
            &["readlink", "/proc/self/ns/net"],
        )
        .await?;
    e.wait_exited(&netns, Duration::from_secs(10)).await?;
    let seen: Vec<String> = parse_log(&std::fs::read_to_string(e.log_file("net"))?)
        .into_iter()
        .map(|(_, _, t)| t)
        .collect();
    let host_ns = std::fs::read_link("/proc/self/ns/net")?;
    assert_eq!(seen, [host_ns.to_string_lossy().into_owned()]);
    e.remove_pod(&pod).await?;
    e.remove_pod(&hostpod).await?;
    e.assert_clean();
    Ok(())
}
