//! The SPDY/3.1 frame decoder (streaming/src/spdy/frame.rs, with the default `Limits`) and the
//! zlib header blocks of SYN_STREAM, SYN_REPLY and HEADERS (headers.rs): the peer's bytes as one
//! connection. Checks: the same frames come out whether the bytes arrive at once or in small
//! pieces, and every decoded frame that our encoder accepts decodes back to itself.
#![no_main]

use bytes::BytesMut;
use corral_streaming::spdy::Limits;
use corral_streaming::spdy::frame::{Frame, FrameDecoder, FrameEncoder};
use libfuzzer_sys::fuzz_target;

/// Decodes `data` fed `chunk` bytes at a time: the frames, and whether it ended in an error.
fn decode(data: &[u8], chunk: usize) -> (Vec<Frame>, bool) {
    let mut decoder = FrameDecoder::new(&Limits::default());
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(_) => return (frames, true),
            }
        }
    }
    (frames, false)
}

fuzz_target!(|data: &[u8]| {
    let (frames, failed) = decode(data, data.len().max(1));
    let (pieces, pieces_failed) = decode(data, 7);
    assert_eq!(
        frames, pieces,
        "frames differ when the bytes arrive in pieces"
    );
    assert_eq!(failed, pieces_failed);

    let mut encoder = FrameEncoder::new();
    let mut decoder = FrameDecoder::new(&Limits::default());
    for frame in &frames {
        let mut wire = BytesMut::new();
        if encoder.encode(frame, &mut wire).is_err() {
            // The encoder's header context may now be ahead of the decoder's.
            break;
        }
        let back = decoder
            .decode(&mut wire)
            .unwrap_or_else(|e| panic!("{frame:?} encoded into bytes that do not decode: {e}"));
        assert_eq!(
            back.as_ref(),
            Some(frame),
            "re-encoded frame decodes differently"
        );
        assert!(wire.is_empty(), "bytes left after a re-encoded frame");
    }
});
