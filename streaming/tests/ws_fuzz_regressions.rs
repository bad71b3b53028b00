//! Inputs the `websocket_channels` fuzz target (fuzz/) found; each must let the connection end.
//! The first was a hang of the target itself, which read stdin and resize one after the other;
//! kept here because it floods the resize channel while stdin stays open.

use std::time::Duration;

use corral_streaming::websocket::{Channels, Codec, Tunnel, config};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;

const HANG_1495C912: &[u8] = include_bytes!("fixtures/ws-hang-1495c912.bin");

async fn connection(data: &[u8]) -> (WebSocketStream<DuplexStream>, DuplexStream) {
    let (mut client, server) = tokio::io::duplex(4 << 20);
    client
        .write_all(data)
        .await
        .expect("write the client's bytes");
    client.shutdown().await.expect("half-close");
    let ws = WebSocketStream::from_raw_socket(server, Role::Server, Some(config())).await;
    (ws, client)
}

async fn channels(data: &[u8], codec: Codec, close_signal: bool) {
    let (ws, _client) = connection(data).await;
    let mut channels = Channels::new(4);
    let mut stdin = channels.reader(0);
    let mut resize = channels.reader(3);
    let mut stdout = channels.writer(1);
    channels.send_first(1, b"");
    // Stdin and resize are read at once, as the real session does (`session.rs`): read one
    // after the other, a client filling the resize channel while stdin is open blocks the
    // reader, and stdin's end never comes.
    let session = async move {
        let mut input = Vec::new();
        let mut sizes = Vec::new();
        let _ = tokio::join!(
            stdin.read_to_end(&mut input),
            resize.read_to_end(&mut sizes)
        );
        let _ = stdout.write_all(&input[..input.len().min(64)]).await;
        drop(stdout);
    };
    let shutdown = CancellationToken::new();
    channels
        .run(ws, codec, close_signal, session, &shutdown)
        .await;
}

async fn tunnel(data: &[u8]) {
    let (ws, _client) = connection(data).await;
    let mut tunnel = Tunnel::new(ws);
    let mut sink = Vec::new();
    let _ = tunnel.read_to_end(&mut sink).await;
    let _ = tunnel.write_all(b"reply").await;
    let _ = tunnel.shutdown().await;
}

async fn ends(what: &str, f: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(3600), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: the connection never ended"));
}

#[tokio::test(start_paused = true)]
async fn a_frame_stream_found_by_the_fuzzer_ends_in_every_mode() {
    let data = HANG_1495C912;
    ends("binary", channels(data, Codec::Binary, false)).await;
    ends("binary+close", channels(data, Codec::Binary, true)).await;
    ends("base64", channels(data, Codec::Base64, false)).await;
    ends("tunnel", tunnel(data)).await;
}
