//! SPDY sessions end to end over in-memory connections: our client against our server, and our
//! server against a scripted peer writing raw frames (some of them captured from Go).
// Helpers outside `#[test]` functions panic on failure like the tests themselves.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use corral_streaming::spdy::frame::{
    Data, Frame, FrameDecoder, FrameEncoder, GoAway, Ping, RstStream, Setting, Settings, SynReply,
    SynStream, WindowUpdate,
};
use corral_streaming::spdy::{
    Error, GoAwayStatus, Headers, Incoming, Limits, Role, RstStatus, Session, Stream,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("timed out")
}

fn pair_with(limits: Limits) -> (Session, Incoming, Session, Incoming) {
    let (a, b) = tokio::io::duplex(64 << 10);
    let (client, client_in) = Session::new(a, Role::Client, limits.clone());
    let (server, server_in) = Session::new(b, Role::Server, limits);
    (client, client_in, server, server_in)
}

fn pair() -> (Session, Incoming, Session, Incoming) {
    pair_with(Limits::default())
}

fn kind(kind: &str) -> Headers {
    Headers::new().with("streamType", kind)
}

/// Opens a stream and accepts it at the other end (a SYN_REPLY only comes once it is accepted).
async fn open(client: &Session, server_in: &mut Incoming, stream_type: &str) -> (Stream, Stream) {
    let (opened, accepted) = tokio::join!(
        client.open_stream(kind(stream_type), false),
        server_in.accept()
    );
    (opened.unwrap(), accepted.unwrap())
}

/// Serves every stream: reads it to the end, answers with its stream type and the data, closes.
fn echo(mut incoming: Incoming) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut tasks = Vec::new();
        while let Some(mut stream) = incoming.accept().await {
            tasks.push(tokio::spawn(async move {
                let kind = stream.headers().get("streamtype").unwrap_or("").to_owned();
                let mut data = Vec::new();
                if stream.read_to_end(&mut data).await.is_err() {
                    return; // reset by the client
                }
                stream.write_all(kind.as_bytes()).await.unwrap();
                stream.write_all(&data).await.unwrap();
                stream.shutdown().await.unwrap();
            }));
        }
        let served = tasks.len();
        for task in tasks {
            task.await.unwrap();
        }
        served
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_carry_data_concurrently_and_half_close() {
    let (client, _client_in, server, server_in) = pair();
    let served = echo(server_in);
    let client = Arc::new(client);
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = client
                .open_stream(kind(&format!("s{i}")), false)
                .await
                .unwrap();
            assert_eq!(stream.id() % 2, 1);
            let payload: Vec<u8> = (0..300_000 + usize::from(i))
                .map(|n| (n % 251) as u8 ^ i)
                .collect();
            stream.write_all(&payload).await.unwrap();
            // Half-close: the server sees EOF and only then answers on the same stream.
            stream.shutdown().await.unwrap();
            assert_eq!(
                stream.write(b"late").await.unwrap_err().kind(),
                ErrorKind::BrokenPipe
            );
            let mut back = Vec::new();
            stream.read_to_end(&mut back).await.unwrap();
            let mut expected = format!("s{i}").into_bytes();
            expected.extend_from_slice(&payload);
            assert!(back == expected, "stream {i} echoed the wrong bytes");
        }));
    }
    for task in tasks {
        within(task).await.unwrap();
    }
    assert_eq!(client.active_streams(), 0);
    assert_eq!(server.active_streams(), 0);
    client.close();
    assert_eq!(within(served).await.unwrap(), 8);
    within(client.closed()).await;
    within(server.closed()).await;
}

#[tokio::test]
async fn a_thousand_short_streams_leave_no_state_behind() {
    let (client, _client_in, server, server_in) = pair();
    let served = echo(server_in);
    for i in 0..1000 {
        let mut stream = within(client.open_stream(kind("data"), false))
            .await
            .unwrap();
        if i % 2 == 0 {
            stream.write_all(b"x").await.unwrap();
            stream.shutdown().await.unwrap();
            let mut back = Vec::new();
            within(stream.read_to_end(&mut back)).await.unwrap();
            assert_eq!(back, b"datax");
        } else {
            // Given up half way: dropping it resets it.
            stream.write_all(b"y").await.unwrap();
        }
    }
    // Let the last resets reach the server.
    within(client.ping()).await.unwrap();
    within(server.ping()).await.unwrap();
    assert_eq!(client.active_streams(), 0);
    assert_eq!(server.active_streams(), 0);
    drop(client);
    assert_eq!(within(served).await.unwrap(), 1000);
    within(server.closed()).await;
}

#[tokio::test]
async fn reset_fails_reads_and_writes_at_the_peer() {
    let (client, _client_in, server, mut server_in) = pair();
    let (mut stream, mut accepted) = within(open(&client, &mut server_in, "stdin")).await;
    stream.write_all(b"before").await.unwrap();
    let mut got = [0; 6];
    accepted.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"before");
    accepted.reset();
    let err = within(stream.read(&mut [0; 8])).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    assert!(err.to_string().contains("CANCEL"), "{err}");
    assert_eq!(
        stream.write(b"after").await.unwrap_err().kind(),
        ErrorKind::ConnectionReset
    );
    assert_eq!(
        accepted.write(b"after").await.unwrap_err().kind(),
        ErrorKind::ConnectionAborted
    );
    assert_eq!(client.active_streams(), 0);
    assert_eq!(server.active_streams(), 0);

    // A session that accepts no more streams refuses new ones.
    drop(server_in);
    let err = within(client.open_stream(kind("stdout"), false))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Reset {
                status: RstStatus::REFUSED_STREAM,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(client.active_streams(), 0);
}

#[tokio::test]
async fn pings_are_answered_both_ways() {
    let (client, _client_in, server, _server_in) = pair();
    for _ in 0..3 {
        within(client.ping()).await.unwrap();
        within(server.ping()).await.unwrap();
    }
}

#[tokio::test]
async fn go_away_stops_new_streams_and_lets_open_ones_finish() {
    let (client, _client_in, server, mut server_in) = pair();
    let (mut stream, mut accepted) = within(open(&client, &mut server_in, "stdout")).await;
    client.close();
    assert!(within(server_in.accept()).await.is_none());
    assert!(matches!(
        client.open_stream(kind("x"), false).await,
        Err(Error::GoingAway)
    ));
    // The server learns of the GOAWAY by reading; a ping round trip orders it after that.
    within(server.ping()).await.unwrap();
    assert!(matches!(
        server.open_stream(kind("x"), false).await,
        Err(Error::GoingAway)
    ));

    accepted.write_all(b"still here").await.unwrap();
    accepted.shutdown().await.unwrap();
    let mut got = Vec::new();
    within(stream.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got, b"still here");
    stream.write_all(b"me too").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut got = Vec::new();
    within(accepted.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got, b"me too");
    // With the last stream gone, both ends shut the connection.
    within(client.closed()).await;
    within(server.closed()).await;
}

#[tokio::test]
async fn abort_resets_everything_and_ends_the_session() {
    let (client, mut client_in, server, mut server_in) = pair();
    let (mut stream, _accepted) = within(open(&client, &mut server_in, "stdout")).await;
    server.abort();
    let err = within(stream.read(&mut [0; 8])).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    within(client.closed()).await;
    within(server.closed()).await;
    assert!(client_in.accept().await.is_none());
    assert!(matches!(
        client.open_stream(kind("x"), false).await,
        Err(Error::Closed(_) | Error::GoingAway)
    ));
    assert!(client.ping().await.is_err());
}

#[tokio::test]
async fn an_unread_stream_stops_the_session_reading_instead_of_buffering() {
    let limits = Limits {
        stream_recv_buffer: 32 << 10,
        write_queue: 32 << 10,
        ..Limits::default()
    };
    let (client, _client_in, _server, mut server_in) = pair_with(limits);
    let (mut stream, mut accepted) = within(open(&client, &mut server_in, "stdin")).await;
    let payload: Vec<u8> = (0..4 << 20).map(|n: u32| n.to_le_bytes()[1]).collect();
    let expected = payload.clone();
    let writer = tokio::spawn(async move {
        stream.write_all(&payload).await.unwrap();
        stream.shutdown().await.unwrap();
        stream
    });
    // Nobody reads: the writer fills the bounded buffers (32 KiB + the 64 KiB pipe + 32 KiB
    // queued + one frame) and waits instead of pushing 4 MiB into memory.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !writer.is_finished(),
        "4 MiB were accepted by buffers bounded to far less"
    );
    let mut got = Vec::new();
    within(accepted.read_to_end(&mut got)).await.unwrap();
    assert!(got == expected, "data arrived damaged");
    within(writer).await.unwrap();
}

// ---- a scripted peer writing raw frames ----

struct RawPeer {
    io: DuplexStream,
    enc: FrameEncoder,
    dec: FrameDecoder,
    buf: BytesMut,
}

impl RawPeer {
    fn new(io: DuplexStream) -> Self {
        let limits = Limits::default();
        Self {
            io,
            enc: FrameEncoder::new(),
            dec: FrameDecoder::new(&limits),
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, frame: Frame) {
        let mut out = BytesMut::new();
        self.enc.encode(&frame, &mut out).unwrap();
        self.io.write_all(&out).await.unwrap();
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.io.write_all(bytes).await.unwrap();
    }

    /// The next frame, or `None` at EOF.
    async fn recv(&mut self) -> Option<Frame> {
        within(async {
            loop {
                if let Some(frame) = self.dec.decode(&mut self.buf).unwrap() {
                    return Some(frame);
                }
                if self.io.read_buf(&mut self.buf).await.unwrap_or(0) == 0 {
                    return None;
                }
            }
        })
        .await
    }
}

fn raw_server(limits: Limits) -> (Session, Incoming, RawPeer) {
    let (a, b) = tokio::io::duplex(64 << 10);
    let (server, incoming) = Session::new(b, Role::Server, limits);
    (server, incoming, RawPeer::new(a))
}

fn syn(stream_id: u32, headers: Headers) -> Frame {
    Frame::SynStream(SynStream {
        stream_id,
        associated_to: 0,
        priority: 0,
        slot: 0,
        fin: false,
        unidirectional: false,
        headers,
    })
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Go's SYN_STREAMs for an exec's `error` (id 1) and `stdout` (id 3) streams, as moby/spdystream
/// wrote them (one zlib context).
const GO_SYN_STREAMS: &str = "80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a6800000000ffff800300010000001900000003000000000000c22ac5565c92925f5a02000000ffff";

#[tokio::test]
async fn a_kubectl_exec_opening_as_go_writes_it() {
    let (server, mut incoming, mut peer) = raw_server(Limits::default());
    peer.send_raw(&hex(GO_SYN_STREAMS)).await;
    let mut error = within(incoming.accept()).await.unwrap();
    let mut stdout = within(incoming.accept()).await.unwrap();
    assert_eq!(
        (error.id(), error.headers().get("streamtype")),
        (1, Some("error"))
    );
    assert_eq!(
        (stdout.id(), stdout.headers().get("streamType")),
        (3, Some("stdout"))
    );
    for id in [1, 3] {
        let reply = SynReply {
            stream_id: id,
            fin: false,
            headers: Headers::new(),
        };
        assert_eq!(peer.recv().await, Some(Frame::SynReply(reply)));
    }
    stdout.write_all(b"hello").await.unwrap();
    stdout.shutdown().await.unwrap();
    let data = |fin, data: &'static [u8]| {
        Frame::Data(Data {
            stream_id: 3,
            fin,
            data: Bytes::from_static(data),
        })
    };
    assert_eq!(peer.recv().await, Some(data(false, b"hello")));
    assert_eq!(peer.recv().await, Some(data(true, b"")));
    // kubectl closes its side of the error stream at once; the server reports and closes.
    peer.send(Frame::Data(Data {
        stream_id: 1,
        fin: true,
        data: Bytes::new(),
    }))
    .await;
    assert_eq!(within(error.read(&mut [0; 4])).await.unwrap(), 0);
    error.write_all(b"{}").await.unwrap();
    error.shutdown().await.unwrap();
    let on_error = |fin, data: &'static [u8]| {
        Frame::Data(Data {
            stream_id: 1,
            fin,
            data: Bytes::from_static(data),
        })
    };
    assert_eq!(peer.recv().await, Some(on_error(false, b"{}")));
    assert_eq!(peer.recv().await, Some(on_error(true, b"")));
    // kubectl's side of stdout was never used; its FIN ends the stream.
    peer.send(Frame::Data(Data {
        stream_id: 3,
        fin: true,
        data: Bytes::new(),
    }))
    .await;
    peer.send(Frame::Ping(Ping { id: 1 })).await;
    assert_eq!(peer.recv().await, Some(Frame::Ping(Ping { id: 1 })));
    assert_eq!(server.active_streams(), 0);

    // The peer hangs up: the session ends and no stream is left waiting.
    drop(peer);
    within(server.closed()).await;
    assert!(incoming.accept().await.is_none());
}

#[tokio::test]
async fn a_dropped_connection_fails_unfinished_streams() {
    let (server, mut incoming, mut peer) = raw_server(Limits::default());
    peer.send(syn(1, kind("data"))).await;
    let mut stream = within(incoming.accept()).await.unwrap();
    peer.send(Frame::Data(Data {
        stream_id: 1,
        fin: false,
        data: Bytes::from_static(b"partial"),
    }))
    .await;
    drop(peer);
    let mut got = [0; 16];
    let n = within(stream.read(&mut got)).await.unwrap();
    assert_eq!(&got[..n], b"partial");
    let err = within(stream.read(&mut got)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::UnexpectedEof);
    assert!(stream.write_all(b"x").await.is_err());
    within(server.closed()).await;
}

#[tokio::test]
async fn tiny_frames_cannot_multiply_buffered_memory() {
    let (_server, mut incoming, mut peer) = raw_server(Limits::default());
    peer.send(syn(1, kind("data"))).await;
    let mut stream = within(incoming.accept()).await.unwrap();
    assert!(matches!(peer.recv().await, Some(Frame::SynReply(_))));
    // 3000 one-byte frames: far below the byte limit, past the payload count limit.
    let mut wire = BytesMut::new();
    let mut enc = FrameEncoder::new();
    for n in 0..3000u32 {
        let one = Bytes::copy_from_slice(&[n as u8]);
        enc.encode(
            &Frame::Data(Data {
                stream_id: 1,
                fin: n == 2999,
                data: one,
            }),
            &mut wire,
        )
        .unwrap();
    }
    enc.encode(&Frame::Ping(Ping { id: 1 }), &mut wire).unwrap();
    peer.send_raw(&wire).await;
    // The session stops reading before the PING: it is not answered while nobody reads.
    let early = tokio::time::timeout(Duration::from_millis(300), peer.recv()).await;
    assert!(
        early.is_err(),
        "the session read past 1024 queued payloads: {early:?}"
    );
    let mut got = Vec::new();
    within(stream.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got.len(), 3000);
    assert!(got.iter().enumerate().all(|(n, b)| *b == n as u8));
    assert_eq!(peer.recv().await, Some(Frame::Ping(Ping { id: 1 })));
}

#[tokio::test]
async fn control_frames_from_the_peer() {
    let (server, mut incoming, mut peer) = raw_server(Limits {
        max_streams: 2,
        ..Limits::default()
    });
    // Flow control and settings are accepted and ignored; pings are echoed.
    let setting = Setting {
        flags: 0,
        id: 7,
        value: 1,
    };
    peer.send(Frame::Settings(Settings {
        clear: false,
        entries: vec![setting],
    }))
    .await;
    peer.send(Frame::WindowUpdate(WindowUpdate {
        stream_id: 1,
        delta: 1,
    }))
    .await;
    peer.send(Frame::Ping(Ping { id: 7 })).await;
    assert_eq!(peer.recv().await, Some(Frame::Ping(Ping { id: 7 })));

    // A client's stream ids must be odd and grow; no more than `max_streams` at once.
    let rst = |stream_id, status| Some(Frame::RstStream(RstStream { stream_id, status }));
    let reply = |stream_id| {
        Some(Frame::SynReply(SynReply {
            stream_id,
            fin: false,
            headers: Headers::new(),
        }))
    };
    peer.send(syn(2, kind("x"))).await;
    assert_eq!(peer.recv().await, rst(2, RstStatus::PROTOCOL_ERROR));
    peer.send(syn(5, kind("a"))).await;
    let a = within(incoming.accept()).await.unwrap();
    assert_eq!(peer.recv().await, reply(5));
    peer.send(syn(3, kind("b"))).await;
    assert_eq!(peer.recv().await, rst(3, RstStatus::PROTOCOL_ERROR));
    peer.send(syn(7, kind("c"))).await;
    peer.send(syn(9, kind("d"))).await;
    assert_eq!(peer.recv().await, rst(9, RstStatus::REFUSED_STREAM));
    let c = within(incoming.accept()).await.unwrap();
    assert_eq!(c.id(), 7);
    assert_eq!(peer.recv().await, reply(7));

    // Our pings carry even ids; the peer's echo completes them.
    let (pong, ()) = tokio::join!(server.ping(), async {
        assert_eq!(peer.recv().await, Some(Frame::Ping(Ping { id: 2 })));
        peer.send(Frame::Ping(Ping { id: 2 })).await;
    });
    pong.unwrap();

    // The peer goes away: we open nothing more; once our last streams end, the connection does.
    peer.send(Frame::GoAway(GoAway {
        last_good_stream_id: 0,
        status: GoAwayStatus::OK,
    }))
    .await;
    peer.send(Frame::Ping(Ping { id: 9 })).await;
    assert_eq!(peer.recv().await, Some(Frame::Ping(Ping { id: 9 })));
    assert!(matches!(
        server.open_stream(kind("x"), false).await,
        Err(Error::GoingAway)
    ));
    assert!(within(incoming.accept()).await.is_none());
    drop(a);
    drop(c);
    assert_eq!(peer.recv().await, rst(5, RstStatus::CANCEL));
    assert_eq!(peer.recv().await, rst(7, RstStatus::CANCEL));
    assert_eq!(peer.recv().await, None);
    within(server.closed()).await;
}

#[tokio::test]
async fn protocol_errors_end_the_session_with_go_away() {
    let limits = Limits {
        max_frame_len: 1 << 20,
        max_header_block: 64 << 10,
        ..Limits::default()
    };
    let mut bomb = BytesMut::new();
    let huge = Headers::new().with("x", "a".repeat(1 << 20));
    FrameEncoder::new()
        .encode(&syn(1, huge), &mut bomb)
        .unwrap();
    assert!(bomb.len() < 8 << 10);
    let cases: [(&str, Vec<u8>); 4] = [
        ("SPDY/2 frame", hex("800200060000000400000001")),
        ("header block inflating past the limit", bomb.to_vec()),
        ("frame longer than the limit", hex("0000000100100001")),
        ("truncated frame", hex("8003000600000004")),
    ];
    for (what, bytes) in cases {
        let (server, mut incoming, mut peer) = raw_server(limits.clone());
        peer.send_raw(&bytes).await;
        if what == "truncated frame" {
            peer.io.shutdown().await.unwrap();
        } else {
            let go_away = GoAway {
                last_good_stream_id: 0,
                status: GoAwayStatus::PROTOCOL_ERROR,
            };
            assert_eq!(peer.recv().await, Some(Frame::GoAway(go_away)), "{what}");
        }
        assert_eq!(peer.recv().await, None, "{what}");
        within(server.closed()).await;
        assert!(incoming.accept().await.is_none(), "{what}");
        assert!(
            matches!(server.ping().await, Err(Error::Closed(_))),
            "{what}"
        );
    }
}
