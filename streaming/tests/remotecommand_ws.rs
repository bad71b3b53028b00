//! Exec and attach over WebSocket against real local processes.
#![allow(clippy::unwrap_used)] // helpers too: a failed unwrap is a failed test

mod common;

use std::sync::atomic::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use corral_streaming::remotecommand::Status;
use corral_streaming::{AttachSpec, ExecSpec};
use futures::SinkExt as _;
use tokio_tungstenite::tungstenite::Message;

const SUCCESS: &str = r#"{"metadata":{},"status":"Success"}"#;

fn status(received: &Received) -> Status {
    serde_json::from_slice(&received.channel(3)).unwrap()
}

#[tokio::test]
async fn v4_stdin_round_trip_separate_stdout_stderr_and_success() {
    let (server, _backend) = start().await;
    let url = server
        .exec_url(exec_spec(
            &["sh", "-c", "read line; echo \"got $line\"; echo oops >&2"],
            true,
            true,
            true,
        ))
        .unwrap();
    assert!(url.starts_with(&format!("{}/exec/", server.base_url())));
    let (mut ws, chosen) = connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    assert_eq!(chosen.as_deref(), Some("v4.channel.k8s.io"));
    send(&mut ws, 0, b"hello\n").await;
    let received = receive_all(&mut ws, false).await;
    // The first message is an empty one on stdout: the connection is up.
    assert_eq!(received.messages[0], (1, vec![]));
    assert_eq!(received.channel_text(1), "got hello\n");
    assert_eq!(received.channel_text(2), "oops\n");
    assert_eq!(received.channel_text(3), SUCCESS);
    assert!(received.closed);
    assert_eq!(received.close_code, Some(1000));
}

#[tokio::test]
async fn v5_close_signal_closes_the_process_stdin() {
    let (server, _backend) = start().await;
    let url = server
        .exec_url(exec_spec(&["cat"], true, true, false))
        .unwrap();
    let (mut ws, chosen) = connect(&url, &["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .await
        .unwrap();
    assert_eq!(chosen.as_deref(), Some("v5.channel.k8s.io"));
    send(&mut ws, 0, b"abc").await;
    // client-go's heartbeat: a ping every few seconds, and the connection dies without pongs.
    ws.send(Message::Ping(b"heartbeat".to_vec().into()))
        .await
        .unwrap();
    loop {
        let msg = futures::StreamExt::next(&mut ws).await.unwrap().unwrap();
        if let Message::Pong(payload) = msg {
            assert_eq!(payload.as_ref(), b"heartbeat");
            break;
        }
    }
    send(&mut ws, 0, b"def").await;
    // CLOSE signal for stdin: cat sees end-of-file and exits.
    ws.send(Message::binary(vec![255u8, 0])).await.unwrap();
    let received = receive_all(&mut ws, false).await;
    // "abc" may have arrived while waiting for the pong.
    assert!(received.channel_text(1).ends_with("def"));
    assert_eq!(received.channel_text(3), SUCCESS);
}

#[tokio::test]
async fn non_zero_exit_code_is_a_status_with_the_code() {
    let (server, _backend) = start().await;
    let url = server
        .exec_url(exec_spec(
            &["sh", "-c", "echo out; exit 7"],
            false,
            true,
            false,
        ))
        .unwrap();
    let (mut ws, _) = connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    let received = receive_all(&mut ws, false).await;
    assert_eq!(received.channel_text(1), "out\n");
    assert_eq!(
        received.channel_text(3),
        r#"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c echo out; exit 7], exit code 7","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"7"}]}}"#
    );
    assert_eq!(status(&received).exit_code(), Some(7));
}

#[tokio::test]
async fn base64_v4_uses_text_frames_both_ways() {
    let (server, _backend) = start().await;
    let url = server
        .exec_url(exec_spec(
            &["sh", "-c", "read l; echo \"[$l]\""],
            true,
            true,
            false,
        ))
        .unwrap();
    let (mut ws, chosen) = connect(&url, &["v4.base64.channel.k8s.io"]).await.unwrap();
    assert_eq!(chosen.as_deref(), Some("v4.base64.channel.k8s.io"));
    let msg = format!("0{}", STANDARD.encode("hi there\n"));
    ws.send(Message::text(msg)).await.unwrap();
    let received = receive_all(&mut ws, true).await;
    assert_eq!(received.messages[0], (1, vec![]));
    assert_eq!(received.channel_text(1), "[hi there]\n");
    assert_eq!(received.channel_text(3), SUCCESS);
}

#[tokio::test]
async fn v1_writes_only_failure_text_on_the_error_channel() {
    let (server, _backend) = start().await;
    let ok = server
        .exec_url(exec_spec(&["true"], false, true, false))
        .unwrap();
    let (mut ws, chosen) = connect(&ok, &["channel.k8s.io"]).await.unwrap();
    assert_eq!(chosen.as_deref(), Some("channel.k8s.io"));
    let received = receive_all(&mut ws, false).await;
    assert!(received.channel(3).is_empty());

    let failing = server
        .exec_url(exec_spec(&["sh", "-c", "exit 3"], false, true, false))
        .unwrap();
    // No subprotocol at all: the kubelet's "" entry, binary framing, v1 status.
    let (mut ws, chosen) = connect(&failing, &[]).await.unwrap();
    assert_eq!(chosen, None);
    let received = receive_all(&mut ws, false).await;
    assert_eq!(
        received.channel_text(3),
        "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
    );
}

#[tokio::test]
async fn unsupported_subprotocol_is_forbidden() {
    let (server, _backend) = start().await;
    let url = server
        .exec_url(exec_spec(&["true"], false, true, false))
        .unwrap();
    assert_eq!(connect_status(&url, &["v6.channel.k8s.io"]).await, 403);
    // Port-forward's subprotocols do not include v5.
    let url = server
        .port_forward_url(corral_streaming::PortForwardSpec {
            pod_sandbox_id: "s".into(),
            ports: vec![1],
        })
        .unwrap();
    assert_eq!(connect_status(&url, &["v5.channel.k8s.io"]).await, 403);
}

#[tokio::test]
async fn backend_failure_is_an_internal_error_status() {
    let (server, _backend) = start().await;
    let mut spec = exec_spec(&["true"], false, true, false);
    spec.container_id = "missing".into();
    let url = server.exec_url(spec).unwrap();
    let (mut ws, _) = connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    let received = receive_all(&mut ws, false).await;
    let status = status(&received);
    assert_eq!(status.reason, "InternalError");
    assert_eq!(status.code, 500);
    assert_eq!(
        status.message,
        "Internal error occurred: error executing command in container: container missing not found"
    );
}

#[tokio::test]
async fn stdout_only_when_asked_and_large_output_arrives_whole() {
    let (server, _backend) = start().await;
    let url = server
        .exec_url(exec_spec(
            &["sh", "-c", "head -c 1000000 /dev/zero; echo never >&2"],
            false,
            true,
            false,
        ))
        .unwrap();
    let (mut ws, _) = connect(&url, &["v5.channel.k8s.io"]).await.unwrap();
    let received = receive_all(&mut ws, false).await;
    assert_eq!(received.channel(1).len(), 1_000_000);
    assert!(received.channel(2).is_empty());
    assert_eq!(received.channel_text(3), SUCCESS);
    // Nothing on stdout: the first (empty) message goes to stderr, then error.
    let url = server
        .exec_url(exec_spec(&["true"], true, false, false))
        .unwrap();
    let (mut ws, _) = connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    let received = receive_all(&mut ws, false).await;
    assert_eq!(received.messages[0], (3, vec![]));
}

#[tokio::test]
async fn client_going_away_kills_the_exec() {
    let (server, backend) = start().await;
    let url = server
        .exec_url(exec_spec(
            &["sh", "-c", "echo started; exec sleep 1000"],
            false,
            true,
            false,
        ))
        .unwrap();
    let (mut ws, _) = connect(&url, &["v5.channel.k8s.io"]).await.unwrap();
    // Wait for the process to run, then vanish without a close handshake.
    loop {
        let msg = futures::StreamExt::next(&mut ws).await.unwrap().unwrap();
        if msg.into_data().as_ref() == b"\x01started\n" {
            break;
        }
    }
    assert_eq!(backend.observed.live.load(Ordering::SeqCst), 1);
    drop(ws);
    eventually("the exec to be killed", || {
        backend.observed.live.load(Ordering::SeqCst) == 0
    })
    .await;
    eventually("the session to end", || server.stats().sessions == 0).await;
}

#[tokio::test]
async fn tty_resize_events_reach_the_process() {
    let (server, backend) = start().await;
    let spec = ExecSpec {
        tty: true,
        ..exec_spec(&["sh", "-c", "read l; echo done"], true, true, false)
    };
    let url = server.exec_url(spec).unwrap();
    let (mut ws, _) = connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    send(&mut ws, 4, br#"{"Width":100,"Height":40}"#).await;
    send(&mut ws, 4, br#"{"Width":120,"#).await;
    send(&mut ws, 4, br#""Height":50}"#).await;
    eventually("two resizes", || {
        backend.observed.resizes.lock().unwrap().len() == 2
    })
    .await;
    send(&mut ws, 0, b"x\n").await;
    let received = receive_all(&mut ws, false).await;
    assert_eq!(received.channel_text(1), "done\n");
    assert_eq!(
        *backend.observed.resizes.lock().unwrap(),
        vec![(100, 40), (120, 50)]
    );
}

#[tokio::test]
async fn attach_reports_success_whatever_the_exit_code() {
    let (server, _backend) = start().await;
    let url = server
        .attach_url(AttachSpec {
            container_id: "echo attached; exit 3".into(),
            tty: false,
            stdin: false,
            stdout: true,
            stderr: true,
        })
        .unwrap();
    let (mut ws, _) = connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    let received = receive_all(&mut ws, false).await;
    assert_eq!(received.channel_text(1), "attached\n");
    assert_eq!(received.channel_text(3), SUCCESS);
}

#[tokio::test]
async fn hostile_input_does_not_break_the_session() {
    let (server, _backend) = start().await;
    let url = server
        .exec_url(exec_spec(&["cat"], true, true, false))
        .unwrap();
    let (mut ws, _) = connect(&url, &["v5.channel.k8s.io"]).await.unwrap();
    // Unknown channels, output channels, an empty message, a bad resize: all ignored.
    send(&mut ws, 9, b"nowhere").await;
    send(&mut ws, 1, b"not yours").await;
    ws.send(Message::binary(Vec::<u8>::new())).await.unwrap();
    send(&mut ws, 4, b"{not json").await;
    send(&mut ws, 0, b"ok").await;
    ws.send(Message::binary(vec![255u8, 0])).await.unwrap();
    let received = receive_all(&mut ws, false).await;
    assert_eq!(received.channel_text(1), "ok");
    assert_eq!(received.channel_text(3), SUCCESS);

    // A malformed CLOSE signal ends the connection (wsstream does the same).
    let url = server
        .exec_url(exec_spec(&["cat"], true, true, false))
        .unwrap();
    let (mut ws, _) = connect(&url, &["v5.channel.k8s.io"]).await.unwrap();
    ws.send(Message::binary(vec![255u8, 0, 0])).await.unwrap();
    let received = receive_all(&mut ws, false).await;
    assert!(received.channel(3).is_empty());
    assert_eq!(received.close_code, Some(1002));

    // An oversized message is refused by the WebSocket layer.
    let url = server
        .exec_url(exec_spec(&["cat"], true, true, false))
        .unwrap();
    let (mut ws, _) = connect(&url, &["v5.channel.k8s.io"]).await.unwrap();
    let _ = ws
        .send(Message::binary(vec![
            0u8;
            corral_streaming::websocket::MAX_MESSAGE_SIZE
                + 10
        ]))
        .await;
    let end = tokio::time::timeout(WAIT, async {
        while let Some(Ok(_)) = futures::StreamExt::next(&mut ws).await {}
    })
    .await;
    assert!(end.is_ok(), "the server kept the connection open");
    eventually("the sessions to end", || server.stats().sessions == 0).await;
}
