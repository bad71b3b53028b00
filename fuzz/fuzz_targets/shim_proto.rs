//! The daemon <-> shim protocol (shim/src/proto.rs): 4-byte big-endian length frames of JSON,
//! read with `read_frame` as requests (what the shim takes from its socket) and as responses
//! (what the daemon takes), plus the JSON of the shim's config file and exit records. Every
//! decoded message must encode into a frame that decodes to the same JSON.
#![no_main]

use std::io::Cursor;

use corral_shim::proto::{ExitRecord, Request, Response, ShimConfig, encode, read_frame};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned>(msg: &T) {
    let frame = encode(msg).expect("a decoded message encodes");
    let back: T = read_frame(&mut Cursor::new(&frame)).expect("an encoded message decodes");
    assert_eq!(
        serde_json::to_value(&back).expect("to JSON"),
        serde_json::to_value(msg).expect("to JSON"),
        "message changed in a round trip"
    );
}

/// Reads frames of `T` from `data` until one fails.
fn frames<T: Serialize + DeserializeOwned>(data: &[u8]) {
    let mut cursor = Cursor::new(data);
    while let Ok(msg) = read_frame::<T>(&mut cursor) {
        round_trip(&msg);
    }
}

fuzz_target!(|data: &[u8]| {
    frames::<Request>(data);
    frames::<Response>(data);
    if let Ok(config) = serde_json::from_slice::<ShimConfig>(data) {
        round_trip(&config);
    }
    if let Ok(record) = serde_json::from_slice::<ExitRecord>(data) {
        round_trip(&record);
    }
});
