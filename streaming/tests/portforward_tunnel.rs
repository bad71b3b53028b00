//! Port-forward over SPDY/3.1 tunnelled through a WebSocket (`SPDY/3.1+portforward.k8s.io`,
//! KEP-4006), to TCP servers on 127.0.0.1.
#![allow(clippy::unwrap_used)] // helpers too: a failed unwrap is a failed test

mod common;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use common::*;
use corral_streaming::PortForwardSpec;
use corral_streaming::client;
use corral_streaming::portforward::TUNNEL_PROTOCOL_V1;
use corral_streaming::spdy::{Headers, Session};
use corral_streaming::websocket::Tunnel;
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio_tungstenite::tungstenite::Message;

fn spec(ports: Vec<u16>) -> PortForwardSpec {
    PortForwardSpec {
        pod_sandbox_id: "sandbox".into(),
        ports,
    }
}

#[tokio::test]
async fn two_connections_over_one_tunnelled_session() {
    let (echo_port, echo) = echo_server(2).await;
    let (server, _backend) = start().await;
    let url = server.port_forward_url(spec(vec![echo_port])).unwrap();
    let forwarder =
        tokio::time::timeout(WAIT, client::spdy::PortForwarder::connect_websocket(&url))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(forwarder.protocol(), TUNNEL_PROTOCOL_V1);
    let (mut a, a_done) = forwarder.open(echo_port).await.unwrap();
    let (mut b, b_done) = forwarder.open(echo_port).await.unwrap();
    // Larger than a tunnel message and than the SPDY writer's batch.
    let big: Vec<u8> = (0..700_000u32).map(|i| (i % 253) as u8).collect();
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
    for done in [a_done, b_done] {
        tokio::time::timeout(WAIT, done)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    tokio::time::timeout(WAIT, echo).await.unwrap().unwrap();
    // A port outside the request is refused: the streams are reset.
    let (_c, c_done) = forwarder
        .open(echo_port.wrapping_add(1).max(1))
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(WAIT, c_done)
            .await
            .unwrap()
            .unwrap()
            .is_err()
    );
    drop(forwarder);
    eventually("session to end", || server.stats().sessions == 0).await;
}

/// Writes at most 5 bytes at a time: every SPDY frame is split over several WebSocket messages,
/// as spdystream's separate writes of a frame's parts split it.
struct Dribble<T>(T);

impl<T: AsyncRead + Unpin> AsyncRead for Dribble<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Dribble<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = buf.len().min(5);
        Pin::new(&mut self.0).poll_write(cx, &buf[..n])
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn frames_split_over_tiny_messages_and_ports_from_the_stream_headers() {
    let (echo_port, _echo) = echo_server(1).await;
    let (server, _backend) = start().await;
    // No ports in the CRI request and none in the query: the streams name them.
    let url = server.port_forward_url(spec(vec![])).unwrap();
    let (ws, chosen) = connect(&url, &["bogus", TUNNEL_PROTOCOL_V1]).await.unwrap();
    assert_eq!(chosen.as_deref(), Some(TUNNEL_PROTOCOL_V1));
    let (session, _incoming) = Session::client(Dribble(Tunnel::new(ws)));
    let headers = |kind: &str| {
        Headers::new()
            .with("streamType", kind)
            .with("port", echo_port.to_string())
            .with("requestID", "0")
    };
    let mut error = session.open_stream(headers("error"), false).await.unwrap();
    error.shutdown().await.unwrap();
    let mut data = session.open_stream(headers("data"), false).await.unwrap();
    data.write_all(b"tiny messages").await.unwrap();
    let mut got = [0u8; 13];
    tokio::time::timeout(WAIT, data.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"tiny messages");
    data.shutdown().await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, data.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert!(rest.is_empty());
    let mut message = Vec::new();
    tokio::time::timeout(WAIT, error.read_to_end(&mut message))
        .await
        .unwrap()
        .unwrap();
    assert!(message.is_empty(), "{}", String::from_utf8_lossy(&message));
    session.close();
    drop(session);
    eventually("session to end", || server.stats().sessions == 0).await;
}

#[tokio::test]
async fn a_text_message_ends_the_tunnel() {
    let (server, _backend) = start().await;
    let url = server.port_forward_url(spec(vec![80])).unwrap();
    let (mut ws, _) = connect(&url, &[TUNNEL_PROTOCOL_V1]).await.unwrap();
    ws.send(Message::text("not SPDY")).await.unwrap();
    let mut close_code = None;
    while let Some(Ok(msg)) = tokio::time::timeout(WAIT, ws.next()).await.unwrap() {
        if let Message::Close(frame) = msg {
            close_code = frame.map(|f| u16::from(f.code));
        }
    }
    assert_eq!(close_code, Some(1003));
    eventually("session to end", || server.stats().sessions == 0).await;
}
