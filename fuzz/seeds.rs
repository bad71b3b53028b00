//! Writes the seed inputs that our own encoders produce into `corpus/`: SPDY frames as a
//! port-forward and an exec session send them (`spdy_frames`), client WebSocket frames as a
//! kubectl-like client sends them (`websocket_channels`), and shim protocol frames as the daemon
//! and the shim send them (`shim_proto`). Not a fuzz target; run it from fuzz/ after
//! `cargo +nightly fuzz build` as `<target dir>/x86_64-unknown-linux-gnu/release/seeds`.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use corral_shim::proto::{
    AttachRequest, ContainerInfo, CreateRequest, ErrorKind, ExecRequest, ExecStreamRequest,
    ExitRecord, Request, Response, StreamFd, encode,
};
use corral_streaming::spdy::frame::{
    Data, Frame, FrameEncoder, GoAway, HeadersFrame, Ping, RstStream, Setting, Settings, SynReply,
    SynStream, WindowUpdate,
};
use corral_streaming::spdy::{GoAwayStatus, Headers, RstStatus};
use futures::SinkExt as _;
use tokio::io::AsyncReadExt as _;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    std::fs::write(dir.join(name), data).expect("write a seed");
}

fn syn(id: u32, headers: Headers, fin: bool) -> Frame {
    Frame::SynStream(SynStream {
        stream_id: id,
        associated_to: 0,
        priority: 0,
        slot: 0,
        fin,
        unidirectional: false,
        headers,
    })
}

fn data(id: u32, bytes: &'static [u8], fin: bool) -> Frame {
    Frame::Data(Data {
        stream_id: id,
        fin,
        data: Bytes::from_static(bytes),
    })
}

fn spdy(name: &str, frames: &[Frame]) {
    let mut encoder = FrameEncoder::new();
    let mut out = BytesMut::new();
    for f in frames {
        encoder.encode(f, &mut out).expect("encode a frame");
    }
    write("spdy_frames", name, &out);
}

fn spdy_seeds() {
    let pf = |kind: &str| {
        Headers::new()
            .with("streamtype", kind)
            .with("port", "8080")
            .with("requestid", "0")
    };
    spdy(
        "portforward",
        &[
            Frame::Settings(Settings {
                clear: false,
                entries: vec![Setting {
                    flags: 0,
                    id: 7,
                    value: 65536,
                }],
            }),
            syn(1, pf("error"), false),
            syn(3, pf("data"), false),
            data(3, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", false),
            Frame::WindowUpdate(WindowUpdate {
                stream_id: 3,
                delta: 4096,
            }),
            Frame::Ping(Ping { id: 1 }),
            data(3, b"", true),
            Frame::RstStream(RstStream {
                stream_id: 1,
                status: RstStatus::CANCEL,
            }),
            Frame::GoAway(GoAway {
                last_good_stream_id: 3,
                status: GoAwayStatus::OK,
            }),
        ],
    );
    let exec = |kind: &str| Headers::new().with("streamtype", kind);
    spdy(
        "exec_tty",
        &[
            syn(1, exec("error"), false),
            syn(3, exec("stdin"), false),
            syn(5, exec("stdout"), false),
            syn(7, exec("resize"), false),
            data(7, b"{\"Width\":80,\"Height\":24}", false),
            data(3, b"ls -l\n", false),
            data(3, b"exit\n", true),
            Frame::Headers(HeadersFrame {
                stream_id: 5,
                fin: true,
                headers: Headers::new().with("x-extra", "a").with("x-extra", "b"),
            }),
        ],
    );
    spdy(
        "reply",
        &[Frame::SynReply(SynReply {
            stream_id: 2,
            fin: false,
            headers: Headers::new().with("status", "200"),
        })],
    );
}

/// What a client's WebSocket sends for `messages`, captured from tungstenite's client side.
async fn client_bytes(messages: Vec<Message>) -> Vec<u8> {
    let (a, mut b) = tokio::io::duplex(1 << 20);
    let mut ws = WebSocketStream::from_raw_socket(a, Role::Client, None).await;
    for m in messages {
        ws.feed(m).await.expect("send");
    }
    ws.flush().await.expect("flush");
    drop(ws);
    let mut out = Vec::new();
    b.read_to_end(&mut out).await.expect("read");
    out
}

async fn websocket_seeds() {
    let bin = |v: &[u8]| Message::Binary(Bytes::copy_from_slice(v));
    let close = Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }));
    let seeds = [
        (
            "exec_binary",
            vec![
                bin(b"\x00ls -l\n"),
                bin(b"\x03{\"Width\":100,\"Height\":30}"),
                bin(b"\x00exit\n"),
                close.clone(),
            ],
        ),
        (
            "exec_v5_close",
            vec![bin(b"\x00cat\n"), bin(&[255, 0]), close.clone()],
        ),
        (
            "exec_base64",
            vec![
                Message::Text("0bHMgLWwK".into()),
                Message::Text("3eyJXaWR0aCI6ODAsIkhlaWdodCI6MjR9".into()),
                close.clone(),
            ],
        ),
        (
            "portforward",
            vec![bin(&[0, 0x90, 0x1f]), bin(b"\x00GET / HTTP/1.0\r\n\r\n")],
        ),
        (
            "ping_fragments",
            vec![
                Message::Ping(Bytes::from_static(b"hi")),
                bin(&[0; 300]),
                close,
            ],
        ),
    ];
    for (name, messages) in seeds {
        write("websocket_channels", name, &client_bytes(messages).await);
    }
}

fn shim_seeds() {
    let requests = [
        ("info", Request::Info),
        (
            "create",
            Request::Create(CreateRequest {
                id: "c1".into(),
                bundle: "/var/lib/corral/containers/c1/bundle".into(),
                log_path: Some("/var/log/pods/ns_p_uid/app/0.log".into()),
                stdin: true,
                stdin_once: false,
                tty: false,
                restore: None,
            }),
        ),
        ("start", Request::Start { id: "c1".into() }),
        (
            "signal",
            Request::Signal {
                id: "c1".into(),
                signal: 15,
            },
        ),
        (
            "exec",
            Request::Exec(ExecRequest {
                id: "c1".into(),
                process: serde_json::json!({"args": ["sh", "-c", "echo hi"], "cwd": "/",
                    "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}),
                timeout_ms: 5000,
            }),
        ),
        (
            "exec_stream",
            Request::ExecStream(ExecStreamRequest {
                id: "c1".into(),
                process: serde_json::json!({"args": ["sh"], "terminal": true, "cwd": "/"}),
                tty: true,
                stdin: true,
                stdout: true,
                stderr: false,
            }),
        ),
        (
            "attach",
            Request::Attach(AttachRequest {
                id: "c1".into(),
                stdin: true,
                stdout: true,
                stderr: true,
            }),
        ),
        ("remove", Request::Remove { id: "c1".into() }),
    ];
    let mut all = Vec::new();
    for (name, r) in &requests {
        let frame = encode(r).expect("encode");
        write("shim_proto", &format!("request_{name}"), &frame);
        all.extend(frame);
    }
    write("shim_proto", "requests_all", &all);
    let exit = ExitRecord {
        exit_code: 137,
        signal: Some(9),
        finished_at: 1_714_557_600_000_000_000,
        oom_killed: true,
    };
    let responses = [
        ("ok", Response::Ok),
        (
            "info",
            Response::Info {
                shim_pid: 42,
                pid_holder: Some(43),
                containers: vec![ContainerInfo {
                    id: "c1".into(),
                    pid: 44,
                    started_at: Some(1_714_557_600_000_000_000),
                    exit: Some(exit),
                }],
            },
        ),
        ("exited", Response::Exited(exit)),
        (
            "streams",
            Response::Streams {
                pid: 44,
                fds: vec![StreamFd::Stdin, StreamFd::Stdout, StreamFd::Pty],
            },
        ),
        (
            "exec_done",
            Response::ExecDone {
                exit_code: 0,
                stdout: b"hi\n".to_vec(),
                stderr: vec![0xff, 0],
            },
        ),
        (
            "error",
            Response::error(ErrorKind::NotFound, "no container c9"),
        ),
    ];
    for (name, r) in &responses {
        write(
            "shim_proto",
            &format!("response_{name}"),
            &encode(r).expect("encode"),
        );
    }
    write(
        "shim_proto",
        "exit_record",
        &serde_json::to_vec(&exit).expect("JSON"),
    );
}

fn main() {
    spdy_seeds();
    shim_seeds();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(websocket_seeds());
}
