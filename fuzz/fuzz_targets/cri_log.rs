//! CRI log files as `corralctl logs` reads them (cli/src/logformat.rs, with the RFC 3339
//! parser of cli/src/timefmt.rs). corralctl is a binary crate: its two pure files are included
//! with `#[path]` rather than made into a library, so the command line keeps no public API and
//! this target builds without its gRPC stack. Checks: every record's time prints back (as Go
//! does) to a time that parses to the same instant, and joining keeps every byte of text.
#![no_main]

#[allow(dead_code)]
#[path = "../../cli/src/timefmt.rs"]
mod timefmt;

#[allow(dead_code)]
#[path = "../../cli/src/logformat.rs"]
mod logformat;

use libfuzzer_sys::fuzz_target;
use logformat::{Joiner, go_rfc3339_nano, parse_lines, parse_record};

fuzz_target!(|data: &[u8]| {
    let mut text_bytes = 0;
    for raw in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let Ok(record) = parse_record(raw) else {
            return;
        };
        text_bytes += record.text.len();
        let shown = go_rfc3339_nano(record.time_text);
        let again = timefmt::parse_rfc3339(&shown)
            .unwrap_or_else(|e| panic!("{:?} printed as {shown:?}: {e}", record.time_text));
        assert_eq!(
            again, record.time,
            "{:?} printed as {shown:?}",
            record.time_text
        );
    }
    let mut joiner = Joiner::default();
    let mut lines = parse_lines(data, &mut joiner).expect("every record parsed above");
    lines.extend(joiner.finish());
    assert_eq!(
        lines.iter().map(|l| l.text.len()).sum::<usize>(),
        text_bytes
    );
});
