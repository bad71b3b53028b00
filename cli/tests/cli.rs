//! End-to-end: the real `corralctl` binary against an in-process fake CRI server on a Unix
//! socket (`common`). This file covers the image and info commands; `runtime/` covers pods,
//! containers, logs and exec.

use std::time::{Duration, Instant};

mod common;
#[path = "fixtures/expected.rs"]
mod expected;
mod runtime;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn version_and_info() {
    let server = serve(Fake::default()).await;
    let out = run(&server.socket, &["version"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Version:  0.1.0\nRuntimeName:  fake\nRuntimeVersion:  9.9.9\nRuntimeApiVersion:  v1\n"
    );

    let out = run(&server.socket, &["info"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["status"]["conditions"][0]["type"], "RuntimeReady");
    assert_eq!(doc["config"]["root"], "/var/lib/fake");

    let out = run(&server.socket, &["info", "-o", "yaml"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("root: /var/lib/fake"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn list_and_inspect_images() {
    let server = serve(Fake::with_images()).await;
    let out = run(&server.socket, &["images"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "IMAGE                       TAG                 IMAGE ID            SIZE\n\
         docker.io/library/busybox   1.36                3f57d9401f8d4       2.15MB\n\
         registry.k8s.io/pause       3.10                e6f1816883972       320kB\n"
    );

    let out = run(&server.socket, &["images", "-q"]).await;
    assert_eq!(stdout(&out), format!("{BUSYBOX}\n{PAUSE}\n"));

    let out = run(&server.socket, &["images", "-o", "json", "busybox:1.36"]).await;
    let doc = json(&out);
    assert_eq!(doc["images"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        doc["images"][0]["repoTags"][0],
        "docker.io/library/busybox:1.36"
    );
    assert_eq!(doc["images"][0]["size"], "2155000");

    let out = run(&server.socket, &["inspecti", "busybox:1.36"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = json(&out);
    assert_eq!(doc["status"]["id"], BUSYBOX);
    assert_eq!(doc["info"]["chainID"], "sha256:c0ffee");

    let out = run(&server.socket, &["inspecti", BUSYBOX, PAUSE]).await;
    assert_eq!(json(&out).as_array().map(Vec::len), Some(2));

    let out = run(&server.socket, &["inspecti", "nope"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "corralctl: no such image \"nope\" present\n");

    let out = run(&server.socket, &["imagefsinfo"]).await;
    let doc = json(&out);
    let fs = &doc["status"]["imageFilesystems"][0];
    assert_eq!(fs["fsId"]["mountpoint"], "/var/lib/fake");
    assert_eq!(fs["usedBytes"]["value"], "4096");
    assert_eq!(doc["status"]["containerFilesystems"], serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_then_remove() {
    let server = serve(Fake::default()).await;
    let out = run(&server.socket, &["pull", "nginx"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("Image is up to date for {NGINX}\n"));
    assert!(server.fake.find("nginx:latest").is_some());

    let out = run(&server.socket, &["pull", "--creds", "mallory:pw", "nginx"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "corralctl: pulling image \"nginx\": Unauthenticated: bad credentials\n"
    );

    let out = run(&server.socket, &["rmi", "nginx:latest"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Deleted: docker.io/library/nginx:latest\n");
    assert!(server.fake.lock().is_empty());

    let out = run(&server.socket, &["rmi", "ghost"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no such image \"ghost\" present"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_keeps_pinned_images_without_list_containers() {
    let server = serve(Fake::with_images()).await;
    server.fake.rt().no_list_containers = true;
    let out = run(&server.socket, &["rmi", "--prune"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Deleted: docker.io/library/busybox:1.36\n");
    let left: Vec<String> = server.fake.lock().iter().map(|i| i.id.clone()).collect();
    assert_eq!(left, [PAUSE]);

    let out = run(&server.socket, &["rmi", "--all"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(server.fake.lock().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_obeys_an_explicit_timeout() {
    let server = serve(Fake::default()).await;
    let started = Instant::now();
    let out = run(&server.socket, &["-t", "300ms", "pull", "slow"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = stderr(&out);
    assert!(
        err.starts_with("corralctl: pulling image \"slow\": "),
        "{err}"
    );
    assert!(
        err.contains("DeadlineExceeded") || err.contains("Cancelled"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_server_cannot_hang_the_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("silent.sock");
    let listener = tokio::net::UnixListener::bind(&socket).expect("bind");
    // Accept connections and never speak.
    let held = tokio::spawn(async move {
        let mut streams = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            streams.push(stream);
        }
    });
    let started = Instant::now();
    let out = run(&socket, &["-t", "500ms", "images"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(10));
    let err = stderr(&out);
    assert!(err.starts_with("corralctl: "), "{err}");
    assert!(err.contains("500ms"), "{err}");
    assert!(
        err.contains("DeadlineExceeded") || err.contains("cannot connect"),
        "{err}"
    );
    held.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_socket_names_the_endpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("absent.sock");
    let out = run(&socket, &["version"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("unix://{}", socket.display())),
        "{err}"
    );
    assert!(err.contains("--runtime-endpoint"), "{err}");
}
