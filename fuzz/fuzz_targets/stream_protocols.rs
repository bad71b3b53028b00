//! The small protocols inside exec/attach/port-forward connections (streaming/src/): the
//! port-forward request's `port` query parameters, the `streamtype` and `port` headers of SPDY
//! streams, the subprotocol names a client offers, and the resize channel's stream of JSON
//! terminal sizes (fed whole and in two pieces: the same sizes must come out).
#![no_main]

use corral_streaming::portforward::{StreamKind, parse_port, ports_from_query};
use corral_streaming::remotecommand::{ResizeDecoder, StreamType};
use corral_streaming::websocket::{port_forward_subprotocol, remote_command_subprotocol};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(ports) = ports_from_query(Some(&text)) {
        assert!(!ports.is_empty() && !ports.contains(&0));
    }
    for line in text.lines() {
        let _ = parse_port(line);
        let _ = StreamKind::from_header(line);
        let _ = StreamType::from_header(line);
        let _ = remote_command_subprotocol(line);
        let _ = port_forward_subprotocol(line);
    }

    let whole = ResizeDecoder::default().push(data);
    let mut split = ResizeDecoder::default();
    let (a, b) = data.split_at(data.len() / 2);
    let pieces = split.push(a).and_then(|mut first| {
        first.extend(split.push(b)?);
        Ok(first)
    });
    if let (Ok(whole), Ok(pieces)) = (&whole, &pieces) {
        assert_eq!(
            whole, pieces,
            "sizes differ when the stream arrives in two pieces"
        );
    }
});
