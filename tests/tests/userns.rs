//! User namespaces through the socket: a pod with its own user namespace (mode POD, 0 →
//! 100000, 65536 IDs), seen from inside its containers (maps, IDs, owners of the rootfs and of a
//! host-path volume) and from the host; ExecSync joins it; Status advertises it; every refused
//! request is INVALID_ARGUMENT naming the field and leaves nothing behind.

use crate::common;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use anyhow::Result;
use common::assert_status;
use common::pod::{PodEnv, env, with_pod_ns};
use corral_cri_api::v1::{
    ContainerConfig, ExecSyncRequest, IdMapping, LinuxContainerConfig,
    LinuxContainerSecurityContext, ListContainersRequest, Mount, NamespaceMode, NamespaceOption,
    PodSandboxStatusRequest, RunPodSandboxRequest, StatusRequest, UserNamespace,
};
use tonic::Code;

const HOST: u32 = 100000;

fn m(host_id: u32, container_id: u32, length: u32) -> IdMapping {
    IdMapping {
        host_id,
        container_id,
        length,
    }
}

fn userns(mode: NamespaceMode, uids: Vec<IdMapping>, gids: Vec<IdMapping>) -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        userns_options: Some(UserNamespace {
            mode: mode as i32,
            uids,
            gids,
        }),
        ..Default::default()
    }
}

/// The kubelet's options for a `hostUsers: false` pod, with a pod-wide PID namespace (its
/// holder is made inside the user namespace too).
fn pod_mapping() -> NamespaceOption {
    let mut o = userns(
        NamespaceMode::Pod,
        vec![m(HOST, 0, 65536)],
        vec![m(HOST, 0, 65536)],
    );
    o.pid = NamespaceMode::Pod as i32;
    o
}

fn with_ctr_ns(mut config: ContainerConfig, ns: NamespaceOption) -> ContainerConfig {
    config.linux = Some(LinuxContainerConfig {
        security_context: Some(LinuxContainerSecurityContext {
            namespace_options: Some(ns),
            ..Default::default()
        }),
        ..Default::default()
    });
    config
}

fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The text of a container's log records.
fn log_text(e: &PodEnv, name: &str) -> Result<Vec<String>> {
    let raw = std::fs::read_to_string(e.log_file(name))?;
    Ok(common::pod::parse_log(&raw)
        .into_iter()
        .map(|(_, _, t)| words(&t))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_user_namespace_from_inside_and_outside() -> Result<()> {
    let mut e = env().await?;
    let status =
        e.rt.status(StatusRequest { verbose: false })
            .await?
            .into_inner();
    let handler = status.runtime_handlers.first().expect("a runtime handler");
    assert_eq!(handler.name, "");
    assert!(handler.features.expect("features").user_namespaces);

    let vol = tempfile::Builder::new().prefix("corral-vol-").tempdir()?;
    std::fs::write(vol.path().join("owned"), "x")?;
    std::os::unix::fs::chown(vol.path().join("owned"), Some(1000), Some(1001))?;
    let config = with_pod_ns(e.pod_config("userns"), pod_mapping());
    let pod = e.run_pod_with(config).await?;

    let st =
        e.rt.pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: pod.clone(),
            verbose: false,
        })
        .await?
        .into_inner()
        .status
        .expect("status");
    let echoed = st
        .linux
        .and_then(|l| l.namespaces)
        .and_then(|n| n.options)
        .and_then(|o| o.userns_options)
        .expect("userns_options echoed");
    assert_eq!(echoed.mode, NamespaceMode::Pod as i32);
    assert_eq!(echoed.uids, vec![m(HOST, 0, 65536)]);

    let cmd = "cat /proc/self/uid_map; cat /proc/self/gid_map; id -u; id -g; \
               stat -c %u:%g / /bin /etc/hosts /vol/owned; touch /made /vol/made; \
               readlink /proc/self/ns/user";
    let mut config = with_ctr_ns(e.ctr_config("first", &["sh", "-c", cmd]), pod_mapping());
    // With the pod's mappings, as the kubelet sends a user namespace pod's volumes.
    config.mounts.push(Mount {
        container_path: "/vol".into(),
        host_path: vol.path().display().to_string(),
        uid_mappings: vec![m(HOST, 0, 65536)],
        gid_mappings: vec![m(HOST, 0, 65536)],
        ..Default::default()
    });
    let first = e.create(&pod, "userns", config).await?;
    e.rt.start_container(corral_cri_api::v1::StartContainerRequest {
        container_id: first.clone(),
    })
    .await?;
    let exited = e.wait_exited(&first, Duration::from_secs(20)).await?;
    let lines = log_text(&e, "first")?;
    assert_eq!(exited.exit_code, 0, "{lines:?}");
    assert_eq!(
        &lines[..8],
        &[
            "0 100000 65536",
            "0 100000 65536",
            "0",
            "0",
            "0:0",
            "0:0",
            "0:0",
            "1000:1001"
        ]
    );
    let userns_link = lines.get(8).cloned().unwrap_or_default();
    assert!(userns_link.starts_with("user:["), "{lines:?}");
    // On the host: written through the idmapped volume as the container's root, owned by the
    // on-disk ID 0; in the writable layer (not idmapped) by the host ID the container's root
    // is, while the image's files stay host root's.
    let made = std::fs::metadata(vol.path().join("made"))?;
    assert_eq!((made.uid(), made.gid()), (0, 0));
    let ctr_dir = e.d.root().join("containers").join(&first);
    let made = std::fs::metadata(ctr_dir.join("upper/made"))?;
    assert_eq!((made.uid(), made.gid()), (HOST, HOST));

    // A second container shares the pod's user namespace; ExecSync joins it.
    let long = e.start(&pod, "userns", "long", &["sleep", "3600"]).await?;
    let out =
        e.rt.exec_sync(ExecSyncRequest {
            container_id: long.clone(),
            cmd: vec![
                "sh".into(),
                "-c".into(),
                "cat /proc/self/uid_map; id -u; readlink /proc/self/ns/user; stat -c %u /proc/1; cat /proc/1/comm"
                    .into(),
            ],
            timeout: 10,
        })
        .await?
        .into_inner();
    let text = String::from_utf8_lossy(&out.stdout);
    let got: Vec<String> = text.lines().map(words).collect();
    assert_eq!(
        out.exit_code,
        0,
        "{got:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // PID 1 is the pod's PID holder (the shim's fork), root of the pod's user namespace.
    assert_eq!(
        got,
        [
            "0 100000 65536",
            "0",
            userns_link.as_str(),
            "0",
            "corral-shim"
        ]
    );
    // Seen from the host, the container's processes run as host ID 100000.
    let pid = {
        let s = e.status(&long).await?;
        let info =
            e.rt.container_status(corral_cri_api::v1::ContainerStatusRequest {
                container_id: long.clone(),
                verbose: true,
            })
            .await?
            .into_inner()
            .info;
        let v: serde_json::Value = serde_json::from_str(&info["info"])?;
        assert_eq!(
            s.state,
            corral_cri_api::v1::ContainerState::ContainerRunning as i32
        );
        v["pid"].as_i64().expect("pid")
    };
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let uid = proc_status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap_or("");
    assert_eq!(words(uid), "Uid: 100000 100000 100000 100000");

    // The container survives a crash of the daemon; ExecSync still joins its user namespace.
    e.d.kill()?;
    e.d.start_again().await?;
    e.rt = e.d.runtime().await?;
    let out =
        e.rt.exec_sync(ExecSyncRequest {
            container_id: long.clone(),
            cmd: vec!["cat".into(), "/proc/self/uid_map".into()],
            timeout: 10,
        })
        .await?
        .into_inner();
    assert_eq!(
        words(&String::from_utf8_lossy(&out.stdout)),
        "0 100000 65536"
    );

    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_user_namespaces_leave_nothing() -> Result<()> {
    let mut e = env().await?;
    let ok = || vec![m(HOST, 0, 65536)];
    let mut host_net = pod_mapping();
    host_net.network = NamespaceMode::Node as i32;
    let cases = [
        (
            userns(NamespaceMode::Container, vec![], vec![]),
            "userns_options.mode: CONTAINER",
        ),
        (
            userns(NamespaceMode::Target, vec![], vec![]),
            "userns_options.mode: TARGET",
        ),
        (
            userns(
                NamespaceMode::Pod,
                vec![m(HOST, 0, 1000), m(HOST + 1000, 1000, 1000)],
                ok(),
            ),
            "userns_options.uids: exactly one mapping",
        ),
        (
            userns(NamespaceMode::Pod, ok(), vec![m(HOST, 1, 65536)]),
            "userns_options.gids[0].container_id",
        ),
        (
            userns(NamespaceMode::Pod, vec![m(HOST, 0, 0)], ok()),
            "userns_options.uids[0].length",
        ),
        (
            userns(NamespaceMode::Pod, vec![m(u32::MAX - 5, 0, 65536)], ok()),
            "overflows",
        ),
        (
            userns(NamespaceMode::Node, ok(), ok()),
            "userns_options: mode NODE takes no",
        ),
        (host_net, "namespace_options.network: NODE cannot"),
    ];
    for (i, (ns, want)) in cases.into_iter().enumerate() {
        let config = with_pod_ns(e.pod_config(&format!("bad{i}")), ns);
        let r =
            e.rt.run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await;
        assert_status(r, Code::InvalidArgument, &["pod sandbox config", want]);
        e.assert_clean();
    }

    // A container whose options differ from its pod's.
    let pod = e
        .run_pod_with(with_pod_ns(e.pod_config("good"), pod_mapping()))
        .await?;
    let other = userns(
        NamespaceMode::Pod,
        vec![m(200000, 0, 65536)],
        vec![m(200000, 0, 65536)],
    );
    for (ns, want) in [
        (other, "userns_options: differs from the pod sandbox's"),
        (
            userns(NamespaceMode::Node, vec![], vec![]),
            "userns_options: differs from the pod sandbox's",
        ),
        (
            userns(NamespaceMode::Container, vec![], vec![]),
            "userns_options.mode: CONTAINER",
        ),
    ] {
        let config = with_ctr_ns(e.ctr_config("c", &["true"]), ns);
        let r = e.create(&pod, "good", config).await;
        assert_status(r, Code::InvalidArgument, &["container config", want]);
    }
    // A volume with mappings other than the pod's.
    let mut config = with_ctr_ns(e.ctr_config("foreign", &["true"]), pod_mapping());
    config.mounts.push(Mount {
        container_path: "/v".into(),
        host_path: "/tmp".into(),
        uid_mappings: vec![m(300000, 0, 65536)],
        gid_mappings: vec![m(300000, 0, 65536)],
        ..Default::default()
    });
    let r = e.create(&pod, "good", config).await;
    assert_status(
        r,
        Code::InvalidArgument,
        &["mounts[0].uid_mappings/gid_mappings: only the pod's"],
    );
    // A volume on a filesystem that cannot be idmapped (sysfs): refused, nothing left.
    let mut config = with_ctr_ns(e.ctr_config("sysfs", &["true"]), pod_mapping());
    config.mounts.push(Mount {
        container_path: "/k".into(),
        host_path: "/sys/kernel".into(),
        ..Default::default()
    });
    let r = e.create(&pod, "good", config).await;
    assert_status(
        r,
        Code::FailedPrecondition,
        &["idmapped mount of /sys/kernel", "mount_setattr"],
    );
    let ids =
        e.rt.list_containers(ListContainersRequest::default())
            .await?
            .into_inner();
    assert!(ids.containers.is_empty(), "{:?}", ids.containers);
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}
