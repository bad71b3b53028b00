//! Port-forward over WebSocket to TCP servers on 127.0.0.1.
#![allow(clippy::unwrap_used)] // helpers too: a failed unwrap is a failed test

mod common;

use common::*;
use corral_streaming::PortForwardSpec;
use futures::StreamExt as _;
use tokio_tungstenite::tungstenite::Message;

/// Reads messages until `want` bytes arrived on `channel`; returns them and what else came.
async fn read_channel(ws: &mut Ws, channel: u8, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < want {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no data")
            .unwrap()
            .unwrap();
        if let Message::Binary(data) = msg
            && data[0] == channel
        {
            got.extend_from_slice(&data[1..]);
        }
    }
    got
}

#[tokio::test]
async fn two_connections_to_a_local_echo_server() {
    let (echo_port, echo) = echo_server(2).await;
    let (server, _backend) = start().await;
    let spec = PortForwardSpec {
        pod_sandbox_id: "sandbox".into(),
        ports: vec![echo_port],
    };
    let first = server.port_forward_url(spec.clone()).unwrap();
    let second = server.port_forward_url(spec).unwrap();
    let (mut a, chosen) = connect(&first, &["v4.channel.k8s.io"]).await.unwrap();
    assert_eq!(chosen.as_deref(), Some("v4.channel.k8s.io"));
    let (mut b, _) = connect(&second, &["v4.channel.k8s.io"]).await.unwrap();
    let prefix = echo_port.to_le_bytes().to_vec();
    for ws in [&mut a, &mut b] {
        // Each channel opens with the port, little-endian.
        assert_eq!(read_channel(ws, 0, 2).await, prefix);
        assert_eq!(read_channel(ws, 1, 2).await, prefix);
    }
    send(&mut a, 0, b"from a").await;
    send(&mut b, 0, b"from b").await;
    assert_eq!(read_channel(&mut b, 0, 6).await, b"from b");
    assert_eq!(read_channel(&mut a, 0, 6).await, b"from a");
    // Messages on the error channel and on unknown channels are ignored.
    send(&mut a, 1, b"ignored").await;
    send(&mut a, 7, b"ignored").await;
    send(&mut a, 0, &vec![b'x'; 100_000]).await;
    assert_eq!(read_channel(&mut a, 0, 100_000).await.len(), 100_000);
    drop(a);
    drop(b);
    tokio::time::timeout(WAIT, echo).await.unwrap().unwrap();
    eventually("sessions to end", || server.stats().sessions == 0).await;
}

#[tokio::test]
async fn ports_from_the_query_when_the_request_named_none() {
    let (port1, _echo1) = echo_server(1).await;
    let (port2, _echo2) = echo_server(1).await;
    let (server, _backend) = start().await;
    let spec = PortForwardSpec {
        pod_sandbox_id: "sandbox".into(),
        ports: vec![],
    };
    let url = server.port_forward_url(spec.clone()).unwrap();
    let (mut ws, _) = connect(
        &format!("{url}?port={port1}&port={port2}"),
        &["v4.channel.k8s.io"],
    )
    .await
    .unwrap();
    assert_eq!(read_channel(&mut ws, 2, 2).await, port2.to_le_bytes());
    send(&mut ws, 2, b"two").await;
    send(&mut ws, 0, b"one").await;
    assert_eq!(read_channel(&mut ws, 2, 3).await, b"two");

    // Without ports anywhere: 400, as the kubelet answers.
    let url = server.port_forward_url(spec.clone()).unwrap();
    assert_eq!(connect_status(&url, &["v4.channel.k8s.io"]).await, 400);
    let url = server.port_forward_url(spec).unwrap();
    assert_eq!(
        connect_status(&format!("{url}?port=http"), &["v4.channel.k8s.io"]).await,
        400
    );
}

#[tokio::test]
async fn base64_port_forward() {
    let (port, _echo) = echo_server(1).await;
    let (server, _backend) = start().await;
    let url = server
        .port_forward_url(PortForwardSpec {
            pod_sandbox_id: "sandbox".into(),
            ports: vec![port],
        })
        .unwrap();
    let (mut ws, chosen) = connect(&url, &["v4.base64.channel.k8s.io"]).await.unwrap();
    assert_eq!(chosen.as_deref(), Some("v4.base64.channel.k8s.io"));
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut prefixes = 0;
    while prefixes < 2 {
        let Message::Text(text) = ws.next().await.unwrap().unwrap() else {
            panic!("binary message in base64 mode");
        };
        assert_eq!(
            b64.decode(&text.as_bytes()[1..]).unwrap(),
            port.to_le_bytes()
        );
        prefixes += 1;
    }
    futures::SinkExt::send(&mut ws, Message::text(format!("0{}", b64.encode("echo"))))
        .await
        .unwrap();
    let Message::Text(text) = ws.next().await.unwrap().unwrap() else {
        panic!("binary message in base64 mode");
    };
    assert_eq!(text.as_str(), format!("0{}", b64.encode("echo")));
}

#[tokio::test]
async fn a_failed_connection_is_reported_on_the_error_channel() {
    // A port nothing listens on: bind, note the port, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (server, _backend) = start().await;
    let url = server
        .port_forward_url(PortForwardSpec {
            pod_sandbox_id: "sandbox".into(),
            ports: vec![port],
        })
        .unwrap();
    let (mut ws, _) = connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    let received = receive_all(&mut ws, false).await;
    let error = received.channel(1);
    let text = String::from_utf8_lossy(&error[2..]);
    assert!(
        text.starts_with(&format!(
            "error forwarding port {port} to pod sandbox, uid : port {port} in pod sandbox sandbox:"
        )),
        "{text}"
    );
    assert!(received.closed);

    let url = server
        .port_forward_url(PortForwardSpec {
            pod_sandbox_id: "missing".into(),
            ports: vec![port],
        })
        .unwrap();
    let (mut ws, _) = connect(&url, &[]).await.unwrap();
    let received = receive_all(&mut ws, false).await;
    assert_eq!(
        String::from_utf8_lossy(&received.channel(1)[2..]),
        format!("error forwarding port {port} to pod missing, uid : pod sandbox missing not found")
    );
}

#[tokio::test]
async fn the_pod_closing_ends_the_connection() {
    // A server that answers once and closes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut tcp, b"bye")
            .await
            .unwrap();
    });
    let (server, _backend) = start().await;
    let url = server
        .port_forward_url(PortForwardSpec {
            pod_sandbox_id: "sandbox".into(),
            ports: vec![port],
        })
        .unwrap();
    let (mut ws, _) = connect(&url, &["v4.channel.k8s.io"]).await.unwrap();
    let received = receive_all(&mut ws, false).await;
    assert_eq!(&received.channel(0)[2..], b"bye");
    assert_eq!(received.channel(1).len(), 2, "no error");
    assert_eq!(received.close_code, Some(1000));
}
