//! Runtime handlers: pods whose RunPodSandbox names a handler configured as an OCI runtime
//! (runc and crun, from Debian's packages) run their containers through that runtime's command
//! line, driven by the pod's shim. Each test checks the runtime really did it: its state
//! directory in the pod's shim directory (`oci/<container-id>/`) holds the container.
//!
//! crun 1.8 refuses to create containers on a hybrid cgroup host whose v2 mount has
//! controllers (this machine's has hugetlb); there its lifecycle runs with the daemon in a mount
//! namespace that shows the same v1 hierarchies without the v2 mount
//! (`DaemonOptions::hide_cgroup_v2`), and the refusal itself is checked on the real view.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common;

use anyhow::{Context as _, Result, bail, ensure};
use common::pod::{PodEnv, env_with, parse_log};
use corral_cri_api::v1::{
    ContainerState, ExecSyncRequest, ListContainersRequest, RunPodSandboxRequest,
    StartContainerRequest, StatusRequest, StopContainerRequest, StopPodSandboxRequest,
};
use corral_streaming::client::{Outcome, Transport};
use corral_tests::daemon::DaemonOptions;

use crate::streaming::{exec_url, run_resized_to_77x33, run_with_stdin};

const RUNC: &str = "/usr/sbin/runc";
const CRUN: &str = "/usr/bin/crun";

fn options() -> DaemonOptions {
    DaemonOptions {
        runtime_config: format!(
            "[runtime.handlers.runc]\npath = {RUNC:?}\n[runtime.handlers.crun]\npath = {CRUN:?}\n[runtime.handlers.ghost]\npath = \"/nonexistent/ghost-runtime\"\n"
        ),
        ..Default::default()
    }
}

async fn run_pod(e: &mut PodEnv, name: &str, handler: &str) -> Result<String, tonic::Status> {
    let config = e.pod_config(name);
    Ok(e.rt
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: handler.to_owned(),
        })
        .await?
        .into_inner()
        .pod_sandbox_id)
}

/// The OCI runtime's state directory of container `id` in pod `pod`.
fn runtime_state(e: &PodEnv, pod: &str, id: &str) -> PathBuf {
    e.d.state().join("pods").join(pod).join("oci").join(id)
}

/// StopPodSandbox, then RemovePodSandbox.
async fn stop_and_remove(e: &mut PodEnv, pod: &str) -> Result<()> {
    e.rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.to_owned(),
    })
    .await?;
    e.remove_pod(pod).await
}

async fn sh(e: &mut PodEnv, id: &str, script: &str) -> Result<(i32, String, String)> {
    let out =
        e.rt.exec_sync(ExecSyncRequest {
            container_id: id.to_owned(),
            cmd: vec!["sh".into(), "-c".into(), script.into()],
            timeout: 10,
        })
        .await?
        .into_inner();
    Ok((
        out.exit_code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

async fn wait_log(e: &PodEnv, name: &str, needle: &str, within: Duration) -> Result<String> {
    let until = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(e.log_file(name)).unwrap_or_default();
        if text.contains(needle) {
            return Ok(text);
        }
        if Instant::now() > until {
            bail!("{name}'s log has no {needle:?} after {within:?}: {text:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn processes_of(root: &Path) -> Vec<String> {
    let needle = root.display().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().parse::<i32>().is_err() {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(&needle) {
            out.push(text);
        }
    }
    out
}

#[tokio::test]
async fn status_lists_each_handler_and_an_unknown_one_is_invalid_argument() -> Result<()> {
    let mut e = env_with(options()).await?;
    let status =
        e.rt.status(StatusRequest { verbose: false })
            .await?
            .into_inner();
    let names: Vec<&str> = status
        .runtime_handlers
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(names, ["", "crun", "ghost", "runc"]);
    let runc = &status.runtime_handlers[3];
    assert!(
        runc.features
            .context("runc features")?
            .recursive_read_only_mounts,
        "runc 1.1 offers rro mounts: {runc:?}"
    );
    // crun 1.8 has no features document, so it is offered nothing optional.
    assert_eq!(
        status.runtime_handlers[1].features,
        Some(Default::default())
    );

    let err = run_pod(&mut e, "unknown", "kata")
        .await
        .expect_err("an unknown handler");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().contains("\"kata\"") && err.message().contains("\"runc\""),
        "names the handler and the known ones: {err:?}"
    );
    let err = run_pod(&mut e, "ghost", "ghost")
        .await
        .expect_err("a handler whose program is missing");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("/nonexistent/ghost-runtime"),
        "names the program: {err:?}"
    );
    // A user-namespaced pod on a handler whose features lack idmapped mounts (runc 1.1).
    use corral_cri_api::v1::{IdMapping, NamespaceMode, NamespaceOption, UserNamespace};
    let map = || {
        vec![IdMapping {
            host_id: 100000,
            container_id: 0,
            length: 65536,
        }]
    };
    let ns = NamespaceOption {
        userns_options: Some(UserNamespace {
            mode: NamespaceMode::Pod as i32,
            uids: map(),
            gids: map(),
        }),
        ..Default::default()
    };
    let config = common::pod::with_pod_ns(e.pod_config("userns"), ns);
    let err =
        e.rt.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: "runc".into(),
        })
        .await
        .expect_err("runc 1.1 offers no idmapped mounts");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("user namespaces"), "{err:?}");
    // The built-in runtime answers to its name too.
    let pod = run_pod(&mut e, "builtin", "corral").await?;
    stop_and_remove(&mut e, &pod).await?;
    e.assert_clean();
    Ok(())
}

/// A pod on `handler`: a container's whole life (logs, ExecSync confined like the init, a TTY
/// container, stop with an exit code), a daemon restart in the middle, and nothing left after.
async fn lifecycle(handler: &str, opts: DaemonOptions) -> Result<()> {
    let mut e = env_with(opts).await?;
    let pod = run_pod(&mut e, "p", handler).await?;
    let mut config = e.ctr_config(
        "app",
        &[
            "sh",
            "-c",
            "echo started as $(id -u); trap 'echo bye; exit 3' TERM; while true; do sleep 0.1; done",
        ],
    );
    config.linux = Some(corral_cri_api::v1::LinuxContainerConfig {
        security_context: Some(corral_cri_api::v1::LinuxContainerSecurityContext {
            run_as_user: Some(corral_cri_api::v1::Int64Value { value: 1234 }),
            seccomp: Some(corral_cri_api::v1::SecurityProfile {
                profile_type: corral_cri_api::v1::security_profile::ProfileType::RuntimeDefault
                    as i32,
                localhost_ref: String::new(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let app = e.create(&pod, "p", config).await.context("app")?;
    let state = runtime_state(&e, &pod, &app);
    // runc keeps `state.json` there, crun `status`.
    ensure!(
        state.is_dir() && std::fs::read_dir(&state)?.count() > 0,
        "{handler} holds no state for the created container at {}",
        state.display()
    );
    e.rt.start_container(StartContainerRequest {
        container_id: app.clone(),
    })
    .await?;
    wait_log(&e, "app", "started as 1234", Duration::from_secs(10)).await?;
    if handler == "crun" {
        // crun 1.8 has no checkpoint command: refused before anything is written.
        let err =
            e.rt.checkpoint_container(corral_cri_api::v1::CheckpointContainerRequest {
                container_id: app.clone(),
                location: e.logs.path().join("ckpt.tar").display().to_string(),
                timeout: 10,
            })
            .await
            .expect_err("crun 1.8 cannot checkpoint");
        assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
        assert!(err.message().contains("no checkpoint command"), "{err:?}");
        assert!(!e.logs.path().join("ckpt.tar").exists());
    }

    // ExecSync runs as the init does (its user, its seccomp filter), through the runtime.
    let (code, out, err) = sh(&mut e, &app, "id -u; echo oops >&2; exit 7").await?;
    assert_eq!((code, out.trim(), err.trim()), (7, "1234", "oops"));
    let (_, out, _) = sh(
        &mut e,
        &app,
        "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; grep -E '^(Seccomp|NoNewPrivs):' /proc/1/status",
    )
    .await?;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(lines[..2], lines[2..], "exec confined like the init: {out}");
    assert!(out.contains("Seccomp:\t2"), "a seccomp filter: {out}");

    // Streaming exec: stdin, separate stdout and stderr, the exit code; then a terminal the
    // runtime made, which a resize reaches.
    let url = exec_url(
        &mut e,
        &app,
        &[
            "sh",
            "-c",
            "read l; echo out:$l; echo err:$l >&2; id -u; exit 4",
        ],
        false,
        true,
    )
    .await?;
    let (outcome, out, err) = run_with_stdin(&url, Transport::WebSocket, b"hi\n").await?;
    assert_eq!(
        (outcome, out.as_str(), err.as_str()),
        (Outcome::Exited(4), "out:hi\n1234\n", "err:hi\n")
    );
    let script = "while [ \"$(stty size)\" != \"33 77\" ]; do sleep 0.05; done; tty; stty size";
    let url = exec_url(&mut e, &app, &["sh", "-c", script], true, false).await?;
    let (outcome, text) = run_resized_to_77x33(&url).await?;
    assert_eq!(outcome, Outcome::Exited(0));
    assert!(
        text.contains("/dev/pts/") && text.contains("33 77\r\n"),
        "{text:?}"
    );

    // A container with a terminal: its output is one stream, and it has a tty.
    let mut tty = e.ctr_config("tty", &["sh", "-c", "tty; echo on-a-terminal; sleep 60"]);
    tty.tty = true;
    let tty_id = e.create(&pod, "p", tty).await.context("tty")?;
    e.rt.start_container(StartContainerRequest {
        container_id: tty_id.clone(),
    })
    .await?;
    let log = wait_log(&e, "tty", "on-a-terminal", Duration::from_secs(10)).await?;
    assert!(log.contains("/dev/pts/"), "tty names a terminal: {log}");

    // The daemon restarts; the pod's containers go on and answer.
    e.d.restart().await?;
    e.rt = e.d.runtime().await?;
    let listed =
        e.rt.list_containers(ListContainersRequest::default())
            .await?
            .into_inner()
            .containers;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(
        listed
            .iter()
            .all(|c| c.state == ContainerState::ContainerRunning as i32),
        "{listed:?}"
    );
    let (code, out, _) = sh(&mut e, &app, "echo after-restart").await?;
    assert_eq!((code, out.trim()), (0, "after-restart"));

    // Stop: the trap runs and its exit code is reported.
    e.rt.stop_container(StopContainerRequest {
        container_id: app.clone(),
        timeout: 10,
    })
    .await?;
    let status = e.wait_exited(&app, Duration::from_secs(10)).await?;
    assert_eq!(status.exit_code, 3, "{status:?}");
    let lines = parse_log(&std::fs::read_to_string(e.log_file("app"))?);
    assert!(
        lines.iter().any(|(s, _, t)| s == "stdout" && t == "bye"),
        "{lines:?}"
    );

    // The runtime applied the memory limit, and the OOM kill is reported.
    let hog = e.oom_hog_config("hog");
    let hog = e.create(&pod, "p", hog).await.context("hog")?;
    e.rt.start_container(StartContainerRequest {
        container_id: hog.clone(),
    })
    .await?;
    let status = e.wait_exited(&hog, Duration::from_secs(20)).await?;
    assert_eq!(status.reason, "OOMKilled", "{status:?}");

    stop_and_remove(&mut e, &pod).await?;
    assert!(!state.exists(), "{} left", state.display());
    let left = processes_of(e.d.dir());
    assert!(
        left.iter().all(|p| !p.contains(handler)),
        "{handler} processes left: {left:?}"
    );
    e.assert_clean();
    Ok(())
}

#[tokio::test]
async fn runc_runs_a_pod_through_its_life_and_a_daemon_restart() -> Result<()> {
    lifecycle("runc", options()).await
}

/// A hybrid cgroup host whose v2 mount has controllers (here: hugetlb), where crun 1.8
/// refuses to create any container ("cgroups in hybrid mode not supported").
fn hybrid_with_v2_controllers() -> bool {
    let hybrid = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC);
    let controllers =
        std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers").unwrap_or_default();
    hybrid && !controllers.trim().is_empty()
}

#[tokio::test]
async fn crun_runs_a_pod_through_its_life_and_a_daemon_restart() -> Result<()> {
    if !hybrid_with_v2_controllers() {
        return lifecycle("crun", options()).await;
    }
    // On this host: the whole life with the daemon in a mount namespace that shows the same
    // v1 hierarchies as a legacy host (so its mounts are not in our mount table: the cleanup
    // check covers cgroups, processes and directories).
    lifecycle(
        "crun",
        DaemonOptions {
            hide_cgroup_v2: true,
            ..options()
        },
    )
    .await?;

    // Where crun cannot run containers, CreateContainer says so in crun's words and leaves
    // nothing: no runtime state, no cgroup, no process.
    let mut e = env_with(options()).await?;
    let pod = run_pod(&mut e, "p", "crun").await?;
    let config = e.ctr_config("app", &["sleep", "60"]);
    let err = e
        .create(&pod, "p", config)
        .await
        .expect_err("crun refuses hybrid cgroups with v2 controllers");
    assert!(
        err.message().contains("crun create failed") && err.message().contains("hybrid"),
        "{err:?}"
    );
    let listed =
        e.rt.list_containers(ListContainersRequest::default())
            .await?
            .into_inner()
            .containers;
    assert!(listed.is_empty(), "{listed:?}");
    let oci = e.d.state().join("pods").join(&pod).join("oci");
    let states: Vec<_> = std::fs::read_dir(&oci)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(states.is_empty(), "crun state left: {states:?}");
    stop_and_remove(&mut e, &pod).await?;
    e.assert_clean();
    Ok(())
}

#[tokio::test]
async fn corralctl_runp_takes_a_runtime_handler() -> Result<()> {
    let mut e = env_with(options()).await?;
    let ctl = corral_tests::daemon::corrald_bin().with_file_name("corralctl");
    let config = e.logs.path().join("pod.json");
    std::fs::write(
        &config,
        r#"{"metadata":{"name":"cli","namespace":"test","uid":"cli-uid"},"hostname":"cli"}"#,
    )?;
    let corralctl = |args: &[&str]| {
        std::process::Command::new(&ctl)
            .arg("-r")
            .arg(format!("unix://{}", e.d.socket().display()))
            .args(args)
            .output()
    };
    let cfg = config.display().to_string();
    let out = corralctl(&["runp", "--runtime-handler", "kata", &cfg])?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"kata\""), "{err}");
    let out = corralctl(&["runp", "--runtime-handler", "runc", &cfg])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pod = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let out = corralctl(&["inspectp", &pod])?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(r#""runtimeHandler": "runc""#), "{text}");
    let shim_config =
        std::fs::read_to_string(e.d.state().join("pods").join(&pod).join("shim.json"))?;
    assert!(shim_config.contains(RUNC), "{shim_config}");
    stop_and_remove(&mut e, &pod).await?;
    e.assert_clean();
    Ok(())
}
