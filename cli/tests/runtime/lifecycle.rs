//! runp, create, start, stop, rm, run, stopp, rmp, update, exec.

use corral_cri_api::v1;

use super::sample_configs;
use crate::common::*;

fn calls(server: &Server) -> Vec<String> {
    std::mem::take(&mut server.fake.rt().calls)
}

#[tokio::test(flavor = "multi_thread")]
async fn runp_sends_the_config_and_handler() {
    let server = serve(Fake::default()).await;
    let (_, pod) = sample_configs(&server);
    let out = run(&server.socket, &["runp", "--runtime-handler", "runc", &pod]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let id = format!("{:064x}", 0xb0d_0000);
    assert_eq!(stdout(&out), format!("{id}\n"));
    let rt = server.fake.rt();
    assert_eq!(rt.run_pod.len(), 1);
    let request = &rt.run_pod[0];
    assert_eq!(request.runtime_handler, "runc");
    let config = request.config.clone().expect("config");
    let metadata = config.metadata.expect("metadata");
    assert_eq!(metadata.name, "nginx-sandbox");
    assert_eq!(metadata.namespace, "default");
    assert_eq!(metadata.uid, "hdishd83djaidwnduwk28bcsb");
    assert_eq!(metadata.attempt, 1);
    assert_eq!(config.log_directory, "/tmp");
    assert!(config.linux.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_config_files_fail_before_any_call() {
    let server = serve(Fake::default()).await;
    let pod = write_file(
        &server,
        "pod.json",
        r#"{"metadata":{"name":"x"},"logDir":"/tmp"}"#,
    );
    let out = run(&server.socket, &["runp", &pod]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("unknown field `logDir`"), "{err}");
    assert!(err.contains("pod.json"), "{err}");
    assert!(server.fake.rt().calls.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn create_pulls_a_missing_image_then_creates() {
    let server = serve(Fake::default()).await;
    let (container, pod) = sample_configs(&server);
    let out = run(&server.socket, &["runp", &pod]).await;
    let pod_id = stdout(&out).trim().to_owned();
    calls(&server);

    let out = run(&server.socket, &["create", &pod_id, &container, &pod]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let container_id = format!("{:064x}", 0xc0_0000);
    assert_eq!(stdout(&out), format!("{container_id}\n"));
    assert_eq!(
        calls(&server),
        ["ImageStatus", "PullImage", "CreateContainer"]
    );
    {
        let rt = server.fake.rt();
        let pull = &rt.pulls[0];
        assert_eq!(
            pull.image.as_ref().map(|i| i.image.as_str()),
            Some("busybox")
        );
        let sandbox = pull.sandbox_config.clone().expect("sandbox config");
        assert_eq!(sandbox.metadata.expect("metadata").name, "nginx-sandbox");
        let create = &rt.create[0];
        assert_eq!(create.pod_sandbox_id, pod_id);
        let config = create.config.clone().expect("config");
        assert_eq!(config.command, ["top"]);
        assert_eq!(config.log_path, "busybox.0.log");
        assert_eq!(config.metadata.expect("metadata").name, "busybox");
        assert_eq!(config.image.expect("image").image, "busybox");
        assert_eq!(
            create
                .sandbox_config
                .clone()
                .and_then(|c| c.metadata)
                .map(|m| m.uid),
            Some("hdishd83djaidwnduwk28bcsb".to_owned())
        );
    }

    // Present now: no second pull.
    let out = run(&server.socket, &["create", &pod_id, &container, &pod]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(calls(&server), ["ImageStatus", "CreateContainer"]);

    // --no-pull with a missing image: no pull, and the runtime's error is reported.
    let other = write_file(
        &server,
        "other.yaml",
        "metadata: {name: web}\nimage: {image: 'nginx:2'}\n",
    );
    let out = run(
        &server.socket,
        &["create", "--no-pull", &pod_id, &other, &pod],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(calls(&server), ["CreateContainer"]);
    assert!(
        stderr(&out).contains("FailedPrecondition: image \"nginx:2\" is not present"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn run_does_runp_pull_create_start_in_order() {
    let server = serve(Fake::default()).await;
    let container = write_file(
        &server,
        "c.yaml",
        "metadata:\n  name: web\nimage:\n  image: busybox\nargs: [sleep, '60']\nenvs:\n  - {key: A, value: b}\n",
    );
    let pod = write_file(&server, "p.yaml", "metadata:\n  name: p\n  namespace: ns\n");
    let out = run(
        &server.socket,
        &["run", "--runtime-handler", "kata", &container, &pod],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let container_id = format!("{:064x}", 0xc0_0000);
    assert_eq!(stdout(&out), format!("{container_id}\n"));
    assert_eq!(
        calls(&server),
        [
            "RunPodSandbox",
            "ImageStatus",
            "PullImage",
            "CreateContainer",
            "StartContainer"
        ]
    );
    let rt = server.fake.rt();
    assert_eq!(rt.run_pod[0].runtime_handler, "kata");
    let config = rt.create[0].config.clone().expect("config");
    assert_eq!(config.args, ["sleep", "60"]);
    assert_eq!(
        config.envs,
        [v1::KeyValue {
            key: "A".into(),
            value: "b".into()
        }]
    );
    assert_eq!(rt.create[0].pod_sandbox_id, format!("{:064x}", 0xb0d_0000));
    assert_eq!(
        rt.containers[0].state,
        v1::ContainerState::ContainerRunning as i32
    );
}

/// Every field of both config files reaches the requests, from YAML with camelCase names and
/// from JSON with proto names; the command line still picks the runtime handler.
#[tokio::test(flavor = "multi_thread")]
async fn run_sends_every_field_of_the_config_files() {
    let fixture = |name: &str| format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    for (container, pod) in [
        ("container.yaml", "pod.yaml"),
        ("container.json", "pod.json"),
    ] {
        let server = serve(Fake::default()).await;
        let args = ["run", "--runtime-handler", "kata"];
        let files = [fixture(container), fixture(pod)];
        let args: Vec<&str> = args
            .into_iter()
            .chain(files.iter().map(String::as_str))
            .collect();
        let out = run(&server.socket, &args).await;
        assert!(out.status.success(), "{container}: {}", stderr(&out));
        let rt = server.fake.rt();
        assert_eq!(rt.run_pod[0].runtime_handler, "kata");
        assert_eq!(rt.run_pod[0].config, Some(crate::expected::pod()));
        assert_eq!(rt.pulls[0].image, crate::expected::container().image);
        assert_eq!(rt.create[0].config, Some(crate::expected::container()));
        assert_eq!(rt.create[0].sandbox_config, Some(crate::expected::pod()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn start_stop_rm_and_pod_teardown() {
    let server = serve(Fake::with_images()).await;
    let (container, pod) = sample_configs(&server);
    let out = run(&server.socket, &["run", &container, &pod]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).trim().to_owned();
    let pod_id = format!("{:064x}", 0xb0d_0000);

    let out = run(&server.socket, &["rm", &id]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is running, please stop it first"),
        "{}",
        stderr(&out)
    );

    let out = run(&server.socket, &["stop", "-t", "5", &id]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{id}\n"));
    assert_eq!(server.fake.rt().stops[0].timeout, 5);

    let out = run(&server.socket, &["start", &id, "nope"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), format!("{id}\n"));
    assert!(
        stderr(&out).contains("NotFound: container \"nope\" not found"),
        "{}",
        stderr(&out)
    );

    calls(&server);
    let out = run(&server.socket, &["rm", "-f", &id]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        calls(&server),
        ["ContainerStatus", "StopContainer", "RemoveContainer"]
    );
    assert_eq!(server.fake.rt().stops[1].timeout, 0);
    assert!(server.fake.rt().containers.is_empty());

    let out = run(&server.socket, &["rmp", &pod_id]).await;
    assert_eq!(out.status.code(), Some(1));
    let out = run(&server.socket, &["stopp", &pod_id]).await;
    assert_eq!(stdout(&out), format!("Stopped sandbox {pod_id}\n"));
    let out = run(&server.socket, &["rmp", "-a"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("Removed sandbox {pod_id}\n"));
    assert!(server.fake.rt().pods.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn update_sends_parsed_resources() {
    let server = serve(Fake::default()).await;
    let out = run(
        &server.socket,
        &[
            "update",
            "--memory",
            "512m",
            "--cpu-quota",
            "50000",
            "--cpu-period",
            "100000",
            "--cpu-share",
            "256",
            "--cpuset-cpus",
            "0-1",
            "--cpuset-mems",
            "0",
            "c1",
            "c2",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "c1\nc2\n");
    let updates = server.fake.rt().updates.clone();
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[1].container_id, "c2");
    assert_eq!(
        updates[0].linux,
        Some(v1::LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 256,
            memory_limit_in_bytes: 536_870_912,
            cpuset_cpus: "0-1".into(),
            cpuset_mems: "0".into(),
            ..Default::default()
        })
    );
    let out = run(&server.socket, &["update", "--memory", "lots", "c1"]).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_propagates_output_and_exit_code() {
    let server = serve(Fake::default()).await;
    let out = run(&server.socket, &["exec", "-s", "c1", "exit", "3"]).await;
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "out: exit 3\n");
    assert_eq!(stderr(&out), "err: done\n");

    let out = run(
        &server.socket,
        &["exec", "-s", "--timeout", "5", "c1", "ls", "-la", "/"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out: ls -la /\n");
    {
        let rt = server.fake.rt();
        assert_eq!(rt.execs[1].cmd, ["ls", "-la", "/"]);
        assert_eq!(rt.execs[1].timeout, 5);
        assert_eq!(rt.execs[1].container_id, "c1");
    }

    // Without -s, exec asks for a streaming URL (the fake has no Exec).
    let out = run(&server.socket, &["exec", "-i", "c1", "sh"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Unimplemented"), "{}", stderr(&out));
    let out = run(&server.socket, &["exec", "-s", "-t", "c1", "sh"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = run(
        &server.socket,
        &["exec", "--timeout", "5", "-i", "c1", "sh"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(server.fake.rt().execs.len(), 2);
}
