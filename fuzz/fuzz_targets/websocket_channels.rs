//! WebSocket frames from a client (tungstenite with our `websocket::config()` limits) through
//! the channel multiplexer of exec/attach/port-forward (streaming/src/websocket/mux.rs) in its
//! three modes: binary channels, binary with the v5 CLOSE signal, and base64 channels; and
//! through the tunnel that carries an SPDY connection in binary messages (tunnel.rs).
//!
//! The client's bytes arrive and then its side half-closes; the session reads its input
//! channels to the end and writes a little output. Time is paused, so the multiplexer's close
//! timeouts pass at once. Findings: panics, and a connection that does not end.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use corral_streaming::websocket::{Channels, Codec, Tunnel, config};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::runtime::Runtime;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime")
    })
}

/// The server's WebSocket over an in-memory pipe whose client side has sent `data` and
/// half-closed; the client side is returned too, to keep taking what the server writes.
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
        let _ = tokio::join!(stdin.read_to_end(&mut input), resize.read_to_end(&mut sizes));
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

fuzz_target!(|data: &[u8]| {
    runtime().block_on(async {
        let all = async {
            channels(data, Codec::Binary, false).await;
            channels(data, Codec::Binary, true).await;
            channels(data, Codec::Base64, false).await;
            tunnel(data).await;
        };
        // Paused time: this only fires if the connection waits for something that never comes.
        tokio::time::timeout(Duration::from_secs(3600), all)
            .await
            .expect("the connection ended");
    });
});
