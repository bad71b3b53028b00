//! Streaming exec and port-forward through a real streaming server (WebSocket and SPDY).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::common::*;

async fn streaming_server() -> Server {
    let fake = Fake::default();
    *fake.streaming.lock().expect("lock") = Some(streaming::start().await);
    serve(fake).await
}

fn corralctl(server: &Server, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_corralctl"));
    cmd.arg("-r")
        .arg(format!("unix://{}", server.socket.display()))
        .args(args)
        .kill_on_drop(true);
    cmd
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_streams_stdin_stdout_and_exit_code() {
    let server = streaming_server().await;
    let mut child = corralctl(
        &server,
        &["exec", "-i", "--transport", "websocket", "c1", "cat"],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"hello\n").await.expect("write");
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("in time")
        .expect("output");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello\n");

    let mut cmd = corralctl(
        &server,
        &[
            "exec",
            "--transport",
            "websocket",
            "c1",
            "sh",
            "-c",
            "echo oops >&2; exit 4",
        ],
    );
    let out = cmd.output().await.expect("output");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(stderr(&out), "oops\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn port_forward_carries_connections_over_spdy() {
    port_forward_carries_connections("spdy").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn port_forward_carries_connections_over_websocket() {
    port_forward_carries_connections("websocket").await;
}

/// Two connections, one after the other, reach an echo server and come back.
async fn port_forward_carries_connections(transport: &str) {
    let server = streaming_server().await;
    // The "pod": an echo server.
    let pod = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let remote = pod.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = pod.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let local = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        probe.local_addr().expect("addr").port()
    };
    let spec = format!("{local}:{remote}");
    let args = ["port-forward", "--transport", transport, "p1", &spec];
    let mut child = corralctl(&server, &args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().expect("stdout");
    let mut line = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), out.read(&mut line))
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(
        String::from_utf8_lossy(&line[..n]),
        format!("Forwarding from 127.0.0.1:{local} -> {remote}\n")
    );
    for round in 0..3 {
        let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", local))
            .await
            .expect("connect");
        let message = format!("ping {round}");
        conn.write_all(message.as_bytes()).await.expect("write");
        let mut back = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut back))
            .await
            .expect("in time")
            .expect("read");
        assert_eq!(back, message.as_bytes());
    }
    child.kill().await.expect("kill");
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_with_a_tty_over_spdy_without_a_local_terminal_runs() {
    // stdin is not a terminal here: no raw mode and no sizes, but the session still opens the
    // resize stream a SPDY server waits for with a TTY.
    let server = streaming_server().await;
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        corralctl(&server, &["exec", "-t", "c1", "echo", "hi"])
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("in time")
    .expect("output");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hi\n");
}
