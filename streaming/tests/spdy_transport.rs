//! The SPDY/3.1 transport and client end to end over loopback: our client (speaking as
//! client-go does) against our server with the fake backend running real `sh` processes.
#![allow(clippy::unwrap_used)] // helpers too: a failed unwrap is a failed test

mod common;

use std::io::Cursor;

use common::*;
use corral_streaming::PortForwardSpec;
use corral_streaming::client::{self, ClientError, CommandIo, Outcome, Transport};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::sync::mpsc;

/// A local writer and the end to read what it got.
fn capture() -> (Box<DuplexStream>, DuplexStream) {
    let (w, r) = tokio::io::duplex(1 << 20);
    (Box::new(w), r)
}

async fn all(mut r: DuplexStream) -> String {
    let mut s = String::new();
    tokio::time::timeout(WAIT, r.read_to_string(&mut s))
        .await
        .unwrap()
        .unwrap();
    s
}

async fn run(url: &str, io: CommandIo) -> Outcome {
    tokio::time::timeout(WAIT, client::remote_command(url, Transport::Spdy, io))
        .await
        .expect("session timed out")
        .unwrap()
}

#[tokio::test]
async fn exec_stdin_round_trip() {
    let (server, backend) = start_spdy().await;
    let url = server
        .exec_url(exec_spec(&["cat"], true, true, false))
        .unwrap();
    let (out, out_r) = capture();
    let input = b"hello over spdy\n".repeat(10_000);
    let io = CommandIo {
        stdin: Some(Box::new(Cursor::new(input.clone()))),
        stdout: Some(out),
        stderr: None,
        resize: None,
    };
    let (outcome, got) = tokio::join!(run(&url, io), all(out_r));
    assert_eq!(outcome, Outcome::Exited(0));
    assert_eq!(got.as_bytes(), input.as_slice());
    eventually("process to end", || {
        backend
            .observed
            .live
            .load(std::sync::atomic::Ordering::SeqCst)
            == 0
    })
    .await;
    eventually("session to end", || server.stats().sessions == 0).await;
}

#[tokio::test]
async fn stdout_and_stderr_are_separate_and_exit_codes_come_back() {
    let (server, _backend) = start_spdy().await;
    let url = server
        .exec_url(exec_spec(
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            false,
            true,
            true,
        ))
        .unwrap();
    let (out, out_r) = capture();
    let (err, err_r) = capture();
    let io = CommandIo {
        stdin: None,
        stdout: Some(out),
        stderr: Some(err),
        resize: None,
    };
    let (outcome, out, err) = tokio::join!(run(&url, io), all(out_r), all(err_r));
    assert_eq!(outcome, Outcome::Exited(3));
    assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
}

#[tokio::test]
async fn missing_container_is_a_failure() {
    let (server, _backend) = start_spdy().await;
    let mut spec = exec_spec(&["true"], false, true, false);
    spec.container_id = "missing".into();
    let url = server.exec_url(spec).unwrap();
    let (out, _out_r) = capture();
    let io = CommandIo {
        stdin: None,
        stdout: Some(out),
        stderr: None,
        resize: None,
    };
    assert!(matches!(run(&url, io).await, Outcome::Failed(m) if m.contains("missing")));
}

#[tokio::test]
async fn resize_without_a_tty_is_ignored_and_with_one_is_forwarded() {
    let (server, backend) = start_spdy().await;
    // Without a TTY the server expects no resize stream: the one the client opens is reset.
    let url = server
        .exec_url(exec_spec(&["sh", "-c", "echo ok"], false, true, false))
        .unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send((80, 24)).await.unwrap();
    let (out, out_r) = capture();
    let io = CommandIo {
        stdin: None,
        stdout: Some(out),
        stderr: None,
        resize: Some(rx),
    };
    let (outcome, out) = tokio::join!(run(&url, io), all(out_r));
    assert_eq!((outcome, out.as_str()), (Outcome::Exited(0), "ok\n"));
    assert!(backend.observed.resizes.lock().unwrap().is_empty());

    let mut spec = exec_spec(&["sh", "-c", "sleep 0.3"], false, true, false);
    spec.tty = true;
    let url = server.exec_url(spec).unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send((100, 40)).await.unwrap();
    let (out, _out_r) = capture();
    let io = CommandIo {
        stdin: None,
        stdout: Some(out),
        stderr: None,
        resize: Some(rx),
    };
    assert_eq!(run(&url, io).await, Outcome::Exited(0));
    assert_eq!(*backend.observed.resizes.lock().unwrap(), vec![(100, 40)]);
}

#[tokio::test]
async fn refused_upgrade_is_a_connect_error() {
    let (server, _backend) = start_spdy().await;
    let url = format!("{}/exec/nosuchtoken", server.base_url());
    let io = CommandIo {
        stdin: None,
        stdout: None,
        stderr: None,
        resize: None,
    };
    let err = client::remote_command(&url, Transport::Spdy, io)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
}

#[tokio::test]
async fn port_forward_two_concurrent_connections_over_one_session() {
    let (echo_port, echo) = echo_server(2).await;
    let (server, _backend) = start_spdy().await;
    let url = server
        .port_forward_url(PortForwardSpec {
            pod_sandbox_id: "sandbox".into(),
            ports: vec![echo_port],
        })
        .unwrap();
    let forwarder = tokio::time::timeout(WAIT, client::spdy::PortForwarder::connect(&url))
        .await
        .unwrap()
        .unwrap();
    let (mut a, a_done) = forwarder.open(echo_port).await.unwrap();
    let (mut b, b_done) = forwarder.open(echo_port).await.unwrap();
    let big = vec![b'x'; 300_000];
    let big2 = big.clone();
    let ta = tokio::spawn(async move {
        let (mut r, mut w) = tokio::io::split(&mut a);
        let send = async {
            w.write_all(&big2).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let mut got = Vec::new();
        let recv = r.read_to_end(&mut got);
        let ((), n) = tokio::join!(send, recv);
        n.unwrap();
        got
    });
    b.write_all(b"from b").await.unwrap();
    let mut buf = [0u8; 6];
    tokio::time::timeout(WAIT, b.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf, b"from b");
    b.shutdown().await.unwrap();
    assert_eq!(tokio::time::timeout(WAIT, ta).await.unwrap().unwrap(), big);
    tokio::time::timeout(WAIT, a_done)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::time::timeout(WAIT, b_done)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::time::timeout(WAIT, echo).await.unwrap().unwrap();
    // A port outside the request is refused: the streams are reset.
    let (_c, c_done) = forwarder
        .open(echo_port.wrapping_add(1).max(1))
        .await
        .unwrap();
    let err = tokio::time::timeout(WAIT, c_done).await.unwrap().unwrap();
    assert!(err.is_err());
    drop(forwarder);
    eventually("session to end", || server.stats().sessions == 0).await;
}

#[tokio::test]
async fn port_forward_reports_a_failed_connection() {
    let (server, _backend) = start_spdy().await;
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = server
        .port_forward_url(PortForwardSpec {
            pod_sandbox_id: "sandbox".into(),
            ports: vec![],
        })
        .unwrap();
    let (_local, done) = client::spdy::port_forward(&url, port).await.unwrap();
    let err = tokio::time::timeout(WAIT, done)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}

#[tokio::test]
async fn a_client_that_does_not_open_its_streams_is_dropped_after_the_timeout() {
    let backend = FakeBackend::default();
    let server = corral_streaming::StreamingServer::start_with_spdy(
        corral_streaming::ServerConfig::default(),
        std::sync::Arc::new(backend.clone()),
        corral_streaming::spdy_transport::spdy_transport_with_timeout(
            std::time::Duration::from_millis(200),
        ),
    )
    .await
    .unwrap();
    let url = server
        .exec_url(exec_spec(&["cat"], true, true, false))
        .unwrap();
    let mut tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
         X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n",
        path_of(&url)
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    let (session, _incoming) = corral_streaming::spdy::Session::client(tcp);
    let headers = corral_streaming::spdy::Headers::new().with("streamType", "error");
    let mut error = session.open_stream(headers, false).await.unwrap();
    // Only the error stream of four: the server gives up and closes the connection.
    let mut got = Vec::new();
    let read = tokio::time::timeout(WAIT, error.read_to_end(&mut got))
        .await
        .unwrap();
    assert!(read.is_err() || got.is_empty());
    tokio::time::timeout(WAIT, session.closed()).await.unwrap();
    eventually("session to end", || server.stats().sessions == 0).await;
}
