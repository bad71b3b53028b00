//! Header blocks and their compression, against Go's bytes and hostile input.
use super::*;

const MAX: usize = 1 << 20;

fn exec_headers() -> Headers {
    Headers::new()
        .with("streamType", "error")
        .with("port", "8080")
        .with("x", "a")
        .with("X", "b")
}

#[test]
fn dictionary_is_the_spdy3_one() {
    // zlib returns the dictionary's Adler-32; 0xe3c6a7c2 is the DICTID every SPDY/3 peer
    // (Chromium, netty, Go) puts in its zlib header.
    let mut c = Compress::new(Compression::best(), true);
    assert_eq!(c.set_dictionary(DICTIONARY).unwrap(), DICTIONARY_ID);
    assert_eq!(DICTIONARY.len(), 1423);
    assert!(DICTIONARY.starts_with(b"\0\0\0\x07options\0\0\0\x04head"));
    assert!(DICTIONARY.ends_with(b",utf-,*,enq=0."));
}

#[test]
fn headers_lowercase_names_and_group_values() {
    let h = exec_headers();
    assert_eq!(h.len(), 3);
    assert_eq!(h.get("STREAMTYPE"), Some("error"));
    assert_eq!(h.get_all("x"), ["a", "b"]);
    assert_eq!(h.get("missing"), None);
    assert!(h.get_all("missing").is_empty());
    let names: Vec<_> = h.iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["streamtype", "port", "x"]);
}

#[test]
fn block_layout_is_counted_and_length_prefixed() {
    let block = Headers::new()
        .with("a", "1")
        .with("a", "22")
        .to_block()
        .unwrap();
    assert_eq!(block, b"\0\0\0\x01\0\0\0\x01a\0\0\0\x041\x0022");
    let back = Headers::from_block(&block, 8).unwrap();
    assert_eq!(back.get_all("a"), ["1", "22"]);
    assert_eq!(Headers::from_block(b"\0\0\0\0", 8).unwrap(), Headers::new());
}

#[test]
fn compressed_blocks_round_trip_across_frames_with_one_context_per_direction() {
    let mut enc = HeaderEncoder::new();
    let mut dec = HeaderDecoder::new(MAX, 64);
    for i in 0..50 {
        let h = exec_headers().with("requestid", i.to_string());
        let mut out = Vec::new();
        enc.encode(&h, &mut out).unwrap();
        if i == 0 {
            // zlib header for level 9 with a preset dictionary, as Go writes it.
            assert_eq!(out[..6], [0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2]);
        }
        // Every block ends with the sync flush marker.
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]), "block {i} not flushed");
        assert_eq!(dec.decode(&out).unwrap(), h);
    }
}

#[test]
fn go_compressed_block_decodes() {
    // The header block of the first SYN_STREAM Go's spdy framer (moby/spdystream) wrote for
    // `streamType: error`, as kubectl opens an exec error stream; then the second one's,
    // `streamType: stdout`, which only makes sense with the first one's zlib state.
    let first = hex("78f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a6800000000ffff");
    let second = hex("c22ac5565c92925f5a02000000ffff");
    let mut dec = HeaderDecoder::new(MAX, 64);
    assert_eq!(
        dec.decode(&first).unwrap(),
        Headers::new().with("streamtype", "error")
    );
    assert_eq!(
        dec.decode(&second).unwrap(),
        Headers::new().with("streamtype", "stdout")
    );
}

#[test]
fn stored_block_built_from_the_spec_layout_decodes() {
    // zlib header with FDICT and the dictionary id, one stored deflate block holding the raw
    // header block, as any zlib may send.
    let block = Headers::new()
        .with("streamtype", "data")
        .with("port", "80")
        .to_block()
        .unwrap();
    let mut z = vec![0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0x00];
    let len = block.len() as u16;
    z.extend_from_slice(&len.to_le_bytes());
    z.extend_from_slice(&(!len).to_le_bytes());
    z.extend_from_slice(&block);
    let h = HeaderDecoder::new(MAX, 64).decode(&z).unwrap();
    assert_eq!(h.get("streamtype"), Some("data"));
    assert_eq!(h.get("port"), Some("80"));
}

#[test]
fn zlib_bomb_is_refused_without_inflating_it() {
    let big = Headers::new().with("x", "a".repeat(4 << 20));
    let mut out = Vec::new();
    HeaderEncoder::new().encode(&big, &mut out).unwrap();
    assert!(out.len() < 16 << 10, "compressed to {} bytes", out.len());
    let err = HeaderDecoder::new(MAX, 64).decode(&out).unwrap_err();
    assert!(matches!(err, HeaderError::TooLarge { max: MAX }), "{err}");
}

#[test]
fn header_counts_are_bounded() {
    let err = Headers::from_block(b"\xff\xff\xff\xff", 256).unwrap_err();
    assert!(
        matches!(
            err,
            HeaderError::TooMany {
                count: 0xffff_ffff,
                max: 256
            }
        ),
        "{err}"
    );
    // A plausible count the block cannot hold.
    let err = Headers::from_block(b"\0\0\0\x10\0\0\0\x01a\0\0\0\0", 256).unwrap_err();
    assert!(matches!(err, HeaderError::Truncated), "{err}");
    let many = (0..300).fold(Headers::new(), |h, i| h.with(&format!("h{i}"), "v"));
    let mut out = Vec::new();
    HeaderEncoder::new().encode(&many, &mut out).unwrap();
    let err = HeaderDecoder::new(MAX, 256).decode(&out).unwrap_err();
    assert!(
        matches!(
            err,
            HeaderError::TooMany {
                count: 300,
                max: 256
            }
        ),
        "{err}"
    );
}

#[test]
fn malformed_blocks_are_refused() {
    type Check = fn(&HeaderError) -> bool;
    let cases: [(&[u8], Check); 6] = [
        (b"\0\0\0\x01\0\0\0\x01A\0\0\0\0", |e| {
            matches!(e, HeaderError::NotLowercase(_))
        }),
        (b"\0\0\0\x01\0\0\0\0\0\0\0\0", |e| {
            matches!(e, HeaderError::EmptyName)
        }),
        (b"\0\0\0\x02\0\0\0\x01a\0\0\0\0\0\0\0\x01a\0\0\0\0", |e| {
            matches!(e, HeaderError::Duplicate(_))
        }),
        (b"\0\0\0\x01\0\0\0\x01a\0\0\0\x09xx", |e| {
            matches!(e, HeaderError::Truncated)
        }),
        (b"\0\0\0\x01\0\0\0\x01a\0\0\0\0zz", |e| {
            matches!(e, HeaderError::Trailing(2))
        }),
        (b"\0\0\0\x01\0\0\0\x01\xff\0\0\0\0", |e| {
            matches!(e, HeaderError::NotUtf8)
        }),
    ];
    for (block, check) in cases {
        let err = Headers::from_block(block, 8).unwrap_err();
        assert!(check(&err), "{block:?}: {err}");
    }
}

#[test]
fn garbage_and_foreign_dictionaries_are_errors() {
    let err = HeaderDecoder::new(MAX, 8)
        .decode(b"\x00\x01\x02\x03 not zlib")
        .unwrap_err();
    assert!(matches!(err, HeaderError::Zlib(_)), "{err}");
    let mut c = Compress::new(Compression::best(), true);
    let foreign = c.set_dictionary(b"some other dictionary").unwrap();
    let mut out = Vec::with_capacity(256);
    c.compress_vec(b"\0\0\0\0", &mut out, FlushCompress::Sync)
        .unwrap();
    let err = HeaderDecoder::new(MAX, 8).decode(&out).unwrap_err();
    assert!(
        matches!(err, HeaderError::WrongDictionary(id) if id == foreign),
        "{err}"
    );
}

pub(crate) fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
