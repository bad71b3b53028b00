//! pods, ps, inspect, inspectp: filters sent, client-side filters, output.

use std::collections::HashMap;

use corral_cri_api::v1;

use crate::common::*;

const POD_A: &str = "aaaa1111bbbb2222cccc3333dddd4444";
const POD_B: &str = "bbbb1111bbbb2222cccc3333dddd4444";
const CTR_1: &str = "1111aaaa2222bbbb3333cccc4444dddd";
const CTR_2: &str = "2222aaaa2222bbbb3333cccc4444dddd";

fn now_nanos() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    i64::try_from(since.as_nanos()).expect("fits")
}

fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn canned() -> Fake {
    let fake = Fake::default();
    let now = now_nanos();
    let minute = 60_000_000_000;
    let mut rt = fake.rt();
    rt.pods = vec![
        v1::PodSandbox {
            id: POD_A.into(),
            metadata: Some(v1::PodSandboxMetadata {
                name: "web-pod".into(),
                uid: "u1".into(),
                namespace: "default".into(),
                attempt: 0,
            }),
            state: v1::PodSandboxState::SandboxReady as i32,
            created_at: now - 2 * minute,
            labels: labels(&[("app", "web")]),
            ..Default::default()
        },
        v1::PodSandbox {
            id: POD_B.into(),
            metadata: Some(v1::PodSandboxMetadata {
                name: "db-pod".into(),
                uid: "u2".into(),
                namespace: "kube-system".into(),
                attempt: 3,
            }),
            state: v1::PodSandboxState::SandboxNotready as i32,
            created_at: now - 5 * minute,
            runtime_handler: "kata".into(),
            ..Default::default()
        },
    ];
    rt.containers = vec![
        v1::Container {
            id: CTR_1.into(),
            pod_sandbox_id: POD_A.into(),
            metadata: Some(v1::ContainerMetadata {
                name: "nginx".into(),
                attempt: 1,
            }),
            image: Some(v1::ImageSpec {
                image: "docker.io/library/nginx:latest".into(),
                ..Default::default()
            }),
            state: v1::ContainerState::ContainerRunning as i32,
            created_at: now - 3 * minute,
            labels: labels(&[("tier", "front")]),
            ..Default::default()
        },
        v1::Container {
            id: CTR_2.into(),
            pod_sandbox_id: POD_B.into(),
            metadata: Some(v1::ContainerMetadata {
                name: "postgres".into(),
                attempt: 0,
            }),
            image: Some(v1::ImageSpec {
                image: "postgres:16".into(),
                ..Default::default()
            }),
            state: v1::ContainerState::ContainerExited as i32,
            created_at: now - minute,
            ..Default::default()
        },
    ];
    drop(rt);
    fake
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_table_and_filters() {
    let server = serve(canned()).await;
    let out = run(&server.socket, &["pods"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "POD ID              CREATED             STATE               NAME                NAMESPACE           ATTEMPT             RUNTIME\n\
         aaaa1111bbbb2       2 minutes ago       Ready               web-pod             default             0                   (default)\n\
         bbbb1111bbbb2       5 minutes ago       NotReady            db-pod              kube-system         3                   kata\n"
    );
    assert_eq!(server.fake.rt().list_pods[0].filter, None);

    let out = run(
        &server.socket,
        &[
            "pods", "--id", "aaaa", "--state", "Ready", "--label", "app=web", "-q",
        ],
    )
    .await;
    assert_eq!(stdout(&out), format!("{POD_A}\n"));
    let filter = server.fake.rt().list_pods[1]
        .filter
        .clone()
        .expect("filter");
    assert_eq!(filter.id, "aaaa");
    assert_eq!(
        filter.state.map(|s| s.state),
        Some(v1::PodSandboxState::SandboxReady as i32)
    );
    assert_eq!(filter.label_selector, labels(&[("app", "web")]));

    let out = run(&server.socket, &["pods", "--state", "notready", "-q"]).await;
    assert_eq!(stdout(&out), format!("{POD_B}\n"));
    let out = run(&server.socket, &["pods", "--name", "^db-", "-q"]).await;
    assert_eq!(stdout(&out), format!("{POD_B}\n"));
    let out = run(&server.socket, &["pods", "--namespace", "default", "-q"]).await;
    assert_eq!(stdout(&out), format!("{POD_A}\n"));
    let out = run(&server.socket, &["pods", "--latest", "-q"]).await;
    assert_eq!(stdout(&out), format!("{POD_A}\n"));
    let out = run(&server.socket, &["pods", "--last", "2", "-q", "--no-trunc"]).await;
    assert_eq!(stdout(&out), format!("{POD_A}\n{POD_B}\n"));

    let out = run(&server.socket, &["pods", "-o", "json", "--name", "web"]).await;
    let doc = json(&out);
    assert_eq!(doc["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(doc["items"][0]["state"], "SANDBOX_READY");
    assert_eq!(doc["items"][0]["metadata"]["namespace"], "default");

    let out = run(&server.socket, &["pods", "-o", "yaml", "--name", "db"]).await;
    assert!(
        stdout(&out).contains("runtimeHandler: kata"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ps_table_and_filters() {
    let server = serve(canned()).await;
    let out = run(&server.socket, &["ps"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "CONTAINER           IMAGE                            CREATED             STATE               NAME                ATTEMPT             POD ID              POD\n\
         1111aaaa2222b       docker.io/library/nginx:latest   3 minutes ago       Running             nginx               1                   aaaa1111bbbb2       web-pod\n"
    );
    let filter = server.fake.rt().list_containers[0]
        .filter
        .clone()
        .expect("filter");
    assert_eq!(
        filter.state.map(|s| s.state),
        Some(v1::ContainerState::ContainerRunning as i32)
    );

    let out = run(&server.socket, &["ps", "-a", "-q"]).await;
    assert_eq!(stdout(&out), format!("{CTR_2}\n{CTR_1}\n"));
    assert_eq!(server.fake.rt().list_containers[1].filter, None);

    let out = run(
        &server.socket,
        &[
            "ps",
            "-a",
            "--pod",
            POD_A,
            "--id",
            "1111",
            "--label",
            "tier=front",
            "-q",
        ],
    )
    .await;
    assert_eq!(stdout(&out), format!("{CTR_1}\n"));
    let filter = server.fake.rt().list_containers[2]
        .filter
        .clone()
        .expect("filter");
    assert_eq!(filter.pod_sandbox_id, POD_A);
    assert_eq!(filter.id, "1111");
    assert_eq!(filter.state, None);
    assert_eq!(filter.label_selector, labels(&[("tier", "front")]));

    let out = run(&server.socket, &["ps", "--state", "exited", "-q"]).await;
    assert_eq!(stdout(&out), format!("{CTR_2}\n"));
    let out = run(&server.socket, &["ps", "-a", "--name", "^post", "-q"]).await;
    assert_eq!(stdout(&out), format!("{CTR_2}\n"));
    let out = run(&server.socket, &["ps", "-a", "--image", "nginx", "-q"]).await;
    assert_eq!(stdout(&out), format!("{CTR_1}\n"));
    let out = run(&server.socket, &["ps", "-l", "-q"]).await;
    assert_eq!(stdout(&out), format!("{CTR_2}\n"));

    let out = run(&server.socket, &["ps", "-a", "-o", "json"]).await;
    let doc = json(&out);
    assert_eq!(doc["containers"][0]["id"], CTR_2);
    assert_eq!(doc["containers"][0]["state"], "CONTAINER_EXITED");
    assert_eq!(
        doc["containers"][1]["image"]["image"],
        "docker.io/library/nginx:latest"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn inspect_and_inspectp_documents() {
    let server = serve(canned()).await;
    server
        .fake
        .rt()
        .log_paths
        .insert(CTR_1.into(), "/var/log/c1.log".into());
    let out = run(&server.socket, &["inspect", CTR_1]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["status"]["id"], CTR_1);
    assert_eq!(doc["status"]["state"], "CONTAINER_RUNNING");
    assert_eq!(doc["status"]["logPath"], "/var/log/c1.log");
    assert_eq!(doc["info"]["pid"], 77);

    let out = run(&server.socket, &["inspect", "-q", CTR_1, CTR_2]).await;
    let doc = json(&out);
    assert_eq!(doc.as_array().map(Vec::len), Some(2));
    assert_eq!(doc[0].get("info"), None);

    let out = run(&server.socket, &["inspect", "-o", "yaml", CTR_2]).await;
    assert!(
        stdout(&out).contains("state: CONTAINER_EXITED"),
        "{}",
        stdout(&out)
    );

    let out = run(&server.socket, &["inspect", "ghost"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));

    let out = run(&server.socket, &["inspectp", POD_B]).await;
    let doc = json(&out);
    assert_eq!(doc["status"]["metadata"]["name"], "db-pod");
    assert_eq!(doc["status"]["network"]["ip"], "10.88.0.7");
    assert_eq!(doc["status"]["runtimeHandler"], "kata");
    assert_eq!(doc["info"]["pid"], 4242);
}
