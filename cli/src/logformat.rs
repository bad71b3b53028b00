//! The CRI log format as corralctl reads it: records `<RFC3339Nano> <stdout|stderr> <P|F>[:tags]
//! <text>`, joined into lines (`P` records are partial and join the next records of the same
//! stream until an `F` record ends the line), and their times printed back as Go does.
//!
//! Pure functions of the bytes, with no other dependency than [`crate::timefmt`], so that the
//! fuzz crate (fuzz/fuzz_targets/cri_log.rs) can include this file and `timefmt.rs` with
//! `#[path]` without building the rest of the command line.

use anyhow::{Context, bail};

use crate::timefmt;

/// Which stream a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One record of a CRI log file.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub time_text: &'a str,
    pub time: i64,
    pub stream: Stream,
    pub partial: bool,
    pub text: &'a [u8],
}

/// Parses one record (a line without its `\n`).
pub fn parse_record(line: &[u8]) -> anyhow::Result<Record<'_>> {
    parse_fields(line)
        .with_context(|| format!("unexpected log format: {:?}", String::from_utf8_lossy(line)))
}

fn parse_fields(line: &[u8]) -> anyhow::Result<Record<'_>> {
    let mut fields = line.splitn(4, |&b| b == b' ');
    let (Some(time), Some(stream), Some(tag)) = (fields.next(), fields.next(), fields.next())
    else {
        bail!("expected <time> <stream> <tag> <text>");
    };
    let text = fields.next().unwrap_or_default();
    let time_text = std::str::from_utf8(time).context("log timestamp is not UTF-8")?;
    let time = timefmt::parse_rfc3339(time_text)?;
    let stream = match stream {
        b"stdout" => Stream::Stdout,
        b"stderr" => Stream::Stderr,
        other => bail!(
            "unexpected stream type {:?}",
            String::from_utf8_lossy(other)
        ),
    };
    let partial = match tag.split(|&b| b == b':').next() {
        Some(b"P") => true,
        Some(b"F") => false,
        _ => bail!("unexpected log tag {:?}", String::from_utf8_lossy(tag)),
    };
    Ok(Record {
        time_text,
        time,
        stream,
        partial,
        text,
    })
}

/// A complete line: the joined text of its records and the first record's time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub stream: Stream,
    pub time: i64,
    pub time_text: String,
    pub text: Vec<u8>,
    /// True for the unfinished remainder of a stream flushed at the end.
    pub unterminated: bool,
}

/// Joins partial records into lines, per stream.
#[derive(Debug, Default)]
pub struct Joiner {
    pending: [Option<Line>; 2],
}

impl Joiner {
    fn slot(stream: Stream) -> usize {
        match stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }

    /// Feeds one record; returns the line it completes, if any.
    pub fn push(&mut self, record: &Record<'_>) -> Option<Line> {
        let slot = &mut self.pending[Self::slot(record.stream)];
        let line = slot.get_or_insert_with(|| Line {
            stream: record.stream,
            time: record.time,
            time_text: record.time_text.to_owned(),
            text: Vec::new(),
            unterminated: false,
        });
        line.text.extend_from_slice(record.text);
        if record.partial { None } else { slot.take() }
    }

    /// The unfinished lines, oldest first.
    pub fn finish(&mut self) -> Vec<Line> {
        let mut rest: Vec<Line> = self.pending.iter_mut().filter_map(Option::take).collect();
        rest.sort_by_key(|l| l.time);
        for line in &mut rest {
            line.unterminated = true;
        }
        rest
    }
}

/// Parses every complete record in `data` (whole lines) into finished lines.
pub fn parse_lines(data: &[u8], joiner: &mut Joiner) -> anyhow::Result<Vec<Line>> {
    let mut lines = Vec::new();
    for raw in data.split(|&b| b == b'\n') {
        if raw.is_empty() {
            continue;
        }
        let record = parse_record(raw)?;
        lines.extend(joiner.push(&record));
    }
    Ok(lines)
}

/// A valid RFC 3339 time as Go's `Format(time.RFC3339Nano)` writes it back, as crictl prints
/// it: fraction without trailing zeros, a zero offset as `Z`.
pub fn go_rfc3339_nano(text: &str) -> String {
    let (base, zone) = match text.rfind(['Z', 'z', '+', '-']) {
        Some(at) if at >= 19 => text.split_at(at),
        _ => return text.to_owned(),
    };
    let zone = match zone {
        "z" | "+00:00" | "-00:00" => "Z",
        other => other,
    };
    let base = match base.split_once('.') {
        Some((whole, fraction)) => {
            let fraction = fraction.trim_end_matches('0');
            if fraction.is_empty() {
                whole.to_owned()
            } else {
                format!("{whole}.{fraction}")
            }
        }
        None => base.to_owned(),
    };
    format!("{base}{zone}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse() {
        let record = parse_record(b"2024-05-01T10:00:00.5Z stderr P a b c").expect("parses");
        assert_eq!(record.stream, Stream::Stderr);
        assert!(record.partial);
        assert_eq!(record.text, b"a b c");
        assert_eq!(record.time_text, "2024-05-01T10:00:00.5Z");
        assert_eq!(record.time % 1_000_000_000, 500_000_000);
        let empty = parse_record(b"2024-05-01T10:00:00Z stdout F").expect("empty text");
        assert_eq!(empty.text, b"");
        assert!(parse_record(b"garbage").is_err());
        assert!(parse_record(b"2024-05-01T10:00:00Z stdin F x").is_err());
        assert!(parse_record(b"2024-05-01T10:00:00Z stdout X x").is_err());
        assert!(parse_record(b"yesterday stdout F x").is_err());
    }
}
