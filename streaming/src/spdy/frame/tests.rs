//! Frame encoding and decoding, against byte layouts from the SPDY/3 draft and bytes Go wrote.

use super::*;

fn limits() -> Limits {
    Limits::default()
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn decode_all(dec: &mut FrameDecoder, bytes: &[u8]) -> Vec<Frame> {
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(f) = dec.decode(&mut buf).unwrap() {
        frames.push(f);
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    frames
}

fn every_frame() -> Vec<Frame> {
    let h = Headers::new()
        .with("streamtype", "data")
        .with("port", "8080")
        .with("requestid", "0");
    vec![
        Frame::SynStream(SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            slot: 0,
            fin: false,
            unidirectional: false,
            headers: h.clone(),
        }),
        Frame::SynStream(SynStream {
            stream_id: 3,
            associated_to: 1,
            priority: 7,
            slot: 2,
            fin: true,
            unidirectional: true,
            headers: Headers::new().with("streamtype", "error"),
        }),
        Frame::SynReply(SynReply {
            stream_id: 1,
            fin: false,
            headers: Headers::new(),
        }),
        Frame::SynReply(SynReply {
            stream_id: 3,
            fin: true,
            headers: h.clone(),
        }),
        Frame::RstStream(RstStream {
            stream_id: 5,
            status: RstStatus::CANCEL,
        }),
        Frame::Settings(Settings {
            clear: true,
            entries: vec![
                Setting {
                    flags: 1,
                    id: 7,
                    value: 65536,
                },
                Setting {
                    flags: 0,
                    id: 4,
                    value: 100,
                },
            ],
        }),
        Frame::Settings(Settings {
            clear: false,
            entries: vec![],
        }),
        Frame::Ping(Ping { id: 0x7fff_ffff }),
        Frame::GoAway(GoAway {
            last_good_stream_id: 9,
            status: GoAwayStatus::PROTOCOL_ERROR,
        }),
        Frame::Headers(HeadersFrame {
            stream_id: 1,
            fin: true,
            headers: h,
        }),
        Frame::WindowUpdate(WindowUpdate {
            stream_id: 1,
            delta: 65536,
        }),
        Frame::Data(Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from_static(b"hello"),
        }),
        Frame::Data(Data {
            stream_id: MAX_STREAM_ID,
            fin: true,
            data: Bytes::new(),
        }),
    ]
}

#[test]
fn every_frame_type_round_trips() {
    let mut enc = FrameEncoder::new();
    let mut dec = FrameDecoder::new(&limits());
    let mut wire = BytesMut::new();
    for frame in every_frame() {
        enc.encode(&frame, &mut wire).unwrap();
    }
    // Twice, so the header contexts carry across many frames on both sides.
    for frame in every_frame() {
        enc.encode(&frame, &mut wire).unwrap();
    }
    let expected: Vec<_> = every_frame().into_iter().chain(every_frame()).collect();
    assert_eq!(decode_all(&mut dec, &wire), expected);
}

#[test]
fn fixed_frames_match_the_spec_layouts() {
    let cases: Vec<(Frame, &str)> = vec![
        // DATA: stream id, flags, 24-bit length, payload.
        (
            Frame::Data(Data {
                stream_id: 3,
                fin: true,
                data: Bytes::from_static(b"ab"),
            }),
            "00000003010000026162",
        ),
        (
            Frame::RstStream(RstStream {
                stream_id: 1,
                status: RstStatus::REFUSED_STREAM,
            }),
            "80030003000000080000000100000003",
        ),
        (
            Frame::Settings(Settings {
                clear: false,
                entries: vec![Setting {
                    flags: 1,
                    id: 4,
                    value: 100,
                }],
            }),
            "800300040000000c000000010100000400000064",
        ),
        (Frame::Ping(Ping { id: 2 }), "800300060000000400000002"),
        (
            Frame::GoAway(GoAway {
                last_good_stream_id: 1,
                status: GoAwayStatus::OK,
            }),
            "80030007000000080000000100000000",
        ),
        (
            Frame::WindowUpdate(WindowUpdate {
                stream_id: 1,
                delta: 1024,
            }),
            "80030009000000080000000100000400",
        ),
    ];
    let mut enc = FrameEncoder::new();
    let mut dec = FrameDecoder::new(&limits());
    for (frame, wire) in cases {
        let mut out = BytesMut::new();
        enc.encode(&frame, &mut out).unwrap();
        assert_eq!(hex_of(&out), wire.replace(' ', ""), "{frame:?}");
        assert_eq!(decode_all(&mut dec, &hex(wire)), vec![frame]);
    }
}

type Check<E> = fn(&E) -> bool;

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// What moby/spdystream's framer wrote (captured from Go): kubectl-style SYN_STREAMs for an exec's
/// `error` and `stdout` streams (ids 1 and 3, one zlib context), then the kubelet's empty
/// SYN_REPLYs to them from the other direction's context.
const GO_SYN_STREAMS: &str = "80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a6800000000ffff800300010000001900000003000000000000c22ac5565c92925f5a02000000ffff";
const GO_SYN_REPLIES: &str = "80030002000000140000000178f9e3c6a7c26260606000000000ffff800300020000000c00000003026100000000ffff";

#[test]
fn frames_written_by_go_decode() {
    let mut dec = FrameDecoder::new(&limits());
    let frames = decode_all(&mut dec, &hex(GO_SYN_STREAMS));
    let syn = |stream_id, kind: &str| {
        Frame::SynStream(SynStream {
            stream_id,
            associated_to: 0,
            priority: 0,
            slot: 0,
            fin: false,
            unidirectional: false,
            headers: Headers::new().with("streamtype", kind),
        })
    };
    assert_eq!(frames, vec![syn(1, "error"), syn(3, "stdout")]);

    let mut dec = FrameDecoder::new(&limits());
    let frames = decode_all(&mut dec, &hex(GO_SYN_REPLIES));
    let reply = |stream_id| {
        Frame::SynReply(SynReply {
            stream_id,
            fin: false,
            headers: Headers::new(),
        })
    };
    assert_eq!(frames, vec![reply(1), reply(3)]);
}

#[test]
fn our_syn_reply_has_go_s_layout() {
    // Same fixed part as Go's; the compressed block may differ between zlib implementations,
    // but it must start with the same zlib header and end with the sync flush.
    let mut out = BytesMut::new();
    let reply = Frame::SynReply(SynReply {
        stream_id: 1,
        fin: false,
        headers: Headers::new(),
    });
    FrameEncoder::new().encode(&reply, &mut out).unwrap();
    assert_eq!(
        hex_of(&out[..18]),
        "800300020000001400000001".to_owned() + "78f9e3c6a7c2"
    );
    assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
}

#[test]
fn partial_frames_wait_for_their_bytes() {
    let mut wire = BytesMut::new();
    let mut enc = FrameEncoder::new();
    for frame in every_frame() {
        enc.encode(&frame, &mut wire).unwrap();
    }
    let mut dec = FrameDecoder::new(&limits());
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for byte in wire.iter() {
        buf.extend_from_slice(&[*byte]);
        if let Some(f) = dec.decode(&mut buf).unwrap() {
            frames.push(f);
        }
    }
    assert!(buf.is_empty());
    assert_eq!(frames, every_frame());
}

#[test]
fn oversized_frames_are_refused_from_their_header() {
    let small = Limits {
        max_frame_len: 1024,
        ..limits()
    };
    // Only the 8-byte header has arrived: a 1025-byte DATA frame, then a control frame.
    for head in ["0000000100000401", "8003000100000401"] {
        let mut buf = BytesMut::from(&hex(head)[..]);
        let err = FrameDecoder::new(&small).decode(&mut buf).unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::TooLarge {
                    len: 1025,
                    max: 1024
                }
            ),
            "{err}"
        );
    }
    // The protocol maximum itself is fine to announce (and waits for its bytes).
    let mut buf = BytesMut::from(&hex("00000001ffffffff")[..]);
    assert!(
        FrameDecoder::new(&limits())
            .decode(&mut buf)
            .unwrap()
            .is_none()
    );
    // We never write what the length field cannot hold.
    let huge = Frame::Data(Data {
        stream_id: 1,
        fin: false,
        data: Bytes::from(vec![0; MAX_PAYLOAD + 1]),
    });
    let err = FrameEncoder::new()
        .encode(&huge, &mut BytesMut::new())
        .unwrap_err();
    assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");
}

#[test]
fn malformed_frames_are_errors() {
    let cases: [(&str, Check<FrameError>); 9] = [
        ("8002000600000004" /* version 2 PING */, |e| {
            matches!(e, FrameError::UnsupportedVersion(2))
        }),
        ("800300060000000300000001", |e| {
            matches!(
                e,
                FrameError::BadLength {
                    kind: "PING",
                    len: 3
                }
            )
        }),
        ("800300030000000400000001", |e| {
            matches!(
                e,
                FrameError::BadLength {
                    kind: "RST_STREAM",
                    ..
                }
            )
        }),
        ("800300070000000400000001", |e| {
            matches!(e, FrameError::BadLength { kind: "GOAWAY", .. })
        }),
        ("800300010000000400000001", |e| {
            matches!(
                e,
                FrameError::BadLength {
                    kind: "SYN_STREAM",
                    ..
                }
            )
        }),
        ("0000000000000000", |e| {
            matches!(e, FrameError::ZeroStreamId("DATA"))
        }),
        ("80030003000000080000000000000005", |e| {
            matches!(e, FrameError::ZeroStreamId("RST_STREAM"))
        }),
        // A SETTINGS count the frame does not hold, and one past the cap.
        ("800300040000000400000002", |e| {
            matches!(
                e,
                FrameError::BadLength {
                    kind: "SETTINGS",
                    ..
                }
            )
        }),
        ("8003000400000004ffffffff", |e| {
            matches!(e, FrameError::TooManySettings(_))
        }),
    ];
    for (wire, check) in cases {
        let mut buf = BytesMut::from(&hex(wire)[..]);
        let err = FrameDecoder::new(&limits()).decode(&mut buf).unwrap_err();
        assert!(check(&err), "{wire}: {err}");
    }
    // A bad header block is an error too (here: not zlib at all).
    let mut buf = BytesMut::from(&hex("800300020000000800000001deadbeef")[..]);
    let err = FrameDecoder::new(&limits()).decode(&mut buf).unwrap_err();
    assert!(matches!(err, FrameError::Header(_)), "{err}");
}

#[test]
fn unknown_control_frames_are_skipped() {
    // A NOOP (type 5, gone in SPDY/3) and a CREDENTIAL (type 10) with a payload, then a PING.
    let wire = hex("80030005000000008003000a00000003abcdef800300060000000400000001");
    let frames = decode_all(&mut FrameDecoder::new(&limits()), &wire);
    assert_eq!(frames, vec![Frame::Ping(Ping { id: 1 })]);
}

#[test]
fn bad_stream_ids_are_not_written() {
    let mut enc = FrameEncoder::new();
    for id in [0, MAX_STREAM_ID + 1] {
        let data = Frame::Data(Data {
            stream_id: id,
            fin: false,
            data: Bytes::new(),
        });
        assert!(matches!(
            enc.encode(&data, &mut BytesMut::new()),
            Err(FrameError::BadStreamId(_))
        ));
        let rst = Frame::RstStream(RstStream {
            stream_id: id,
            status: RstStatus::CANCEL,
        });
        assert!(matches!(
            enc.encode(&rst, &mut BytesMut::new()),
            Err(FrameError::BadStreamId(_))
        ));
    }
}
