//! logs: read, tail, since, timestamps and follow across a rotation, on handwritten files.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use corral_cri_api::v1;

use crate::common::*;

const LOG: &str = "\
2024-05-01T10:00:00.000000001Z stdout F hello
2024-05-01T10:00:01Z stderr F warning: low disk
2024-05-01T10:00:02Z stdout P a long
2024-05-01T10:00:02.5Z stdout P  line in
2024-05-01T10:00:03Z stdout F  three parts
2024-05-01T10:00:04Z stdout F bye
";

fn with_container(state: v1::ContainerState, log: &str) -> (Fake, tempfile::TempDir, String) {
    let fake = Fake::default();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.log");
    std::fs::write(&path, log).expect("write log");
    let path = path.display().to_string();
    let mut rt = fake.rt();
    rt.containers.push(v1::Container {
        id: "c1".into(),
        state: state as i32,
        ..Default::default()
    });
    rt.log_paths.insert("c1".into(), path.clone());
    drop(rt);
    (fake, dir, path)
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_split_streams_join_partials_and_filter() {
    let (fake, _dir, _) = with_container(v1::ContainerState::ContainerExited, LOG);
    let server = serve(fake).await;
    let out = run(&server.socket, &["logs", "c1"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello\na long line in three parts\nbye\n");
    assert_eq!(stderr(&out), "warning: low disk\n");

    let out = run(&server.socket, &["logs", "--tail", "2", "c1"]).await;
    assert_eq!(stdout(&out), "a long line in three parts\nbye\n");
    assert_eq!(stderr(&out), "");

    let out = run(
        &server.socket,
        &["logs", "--since", "2024-05-01T10:00:01Z", "c1"],
    )
    .await;
    assert_eq!(stdout(&out), "a long line in three parts\nbye\n");
    assert_eq!(stderr(&out), "warning: low disk\n");

    // Relative: everything in the file is older than an hour.
    let out = run(&server.socket, &["logs", "--since", "1h", "c1"]).await;
    assert_eq!(stdout(&out), "");

    let out = run(
        &server.socket,
        &["logs", "--timestamps", "--tail", "3", "c1"],
    )
    .await;
    assert_eq!(
        stdout(&out),
        "2024-05-01T10:00:02Z a long line in three parts\n2024-05-01T10:00:04Z bye\n"
    );
    assert_eq!(stderr(&out), "2024-05-01T10:00:01Z warning: low disk\n");

    let out = run(&server.socket, &["logs", "ghost"]).await;
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_log_lines_are_errors() {
    let (fake, _dir, _) = with_container(v1::ContainerState::ContainerExited, "not a log\n");
    let server = serve(fake).await;
    let out = run(&server.socket, &["logs", "c1"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unexpected log format"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn follow_survives_rotation_and_stops_with_the_container() {
    let (fake, dir, path) = with_container(
        v1::ContainerState::ContainerRunning,
        "2024-05-01T10:00:00Z stdout F before\n",
    );
    let server = serve(fake).await;
    let endpoint = format!("unix://{}", server.socket.display());
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_corralctl"))
        .args(["-r", &endpoint, "logs", "-f", "c1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The client opens the file right after asking for the container's status.
    let asked = tokio::time::timeout(Duration::from_secs(10), async {
        while !server
            .fake
            .rt()
            .calls
            .iter()
            .any(|c| c == "ContainerStatus")
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    asked.await.expect("logs -f asks for the container status");
    tokio::time::sleep(Duration::from_millis(300)).await;
    {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        file.write_all(b"2024-05-01T10:00:01Z stdout P grow")
            .expect("append");
        file.write_all(b"ing\n2024-05-01T10:00:01Z stdout F  line\n")
            .expect("append");
        file.write_all(b"2024-05-01T10:00:02Z stderr F to stderr\n")
            .expect("append");
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    std::fs::rename(&path, dir.path().join("c.log.1")).expect("rotate");
    std::fs::write(&path, "2024-05-01T10:00:03Z stdout F after rotation\n").expect("new file");
    tokio::time::sleep(Duration::from_millis(400)).await;
    {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        file.write_all(b"2024-05-01T10:00:04Z stdout F last\n")
            .expect("append");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.fake.rt().containers[0].state = v1::ContainerState::ContainerExited as i32;
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("logs -f exits once the container stops")
        .expect("wait");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "before\ngrowing line\nafter rotation\nlast\n");
    assert_eq!(stderr(&out), "to stderr\n");
}
