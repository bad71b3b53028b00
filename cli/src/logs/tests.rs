use super::*;

const LOG: &str = "\
2024-05-01T10:00:00.000000001Z stdout F first line
2024-05-01T10:00:01.5Z stderr F oops
2024-05-01T10:00:02.000000000Z stdout P par
2024-05-01T10:00:02.100000000Z stderr P err-
2024-05-01T10:00:02.200000000Z stdout P tial
2024-05-01T10:00:02.300000000Z stdout F  done
2024-05-01T10:00:03Z stderr F:extra err-end
2024-05-01T10:00:04Z stdout F
2024-05-01T10:00:05Z stdout F last line
";

fn lines(data: &str) -> Vec<Line> {
    let mut joiner = Joiner::default();
    let mut lines = parse_lines(data.as_bytes(), &mut joiner).expect("parses");
    lines.extend(joiner.finish());
    lines
}

fn render(lines: &[Line], timestamps: bool, since: Option<i64>) -> (String, String) {
    render_as(lines, Streams::Apart, timestamps, since)
}

fn render_as(
    lines: &[Line],
    streams: Streams,
    timestamps: bool,
    since: Option<i64>,
) -> (String, String) {
    let mut printer = Printer {
        stdout: Vec::new(),
        stderr: Vec::new(),
        streams,
        timestamps,
        since,
    };
    printer.print(lines).expect("print");
    (
        String::from_utf8(printer.stdout).expect("utf8"),
        String::from_utf8(printer.stderr).expect("utf8"),
    )
}

#[test]
fn partials_join_per_stream_and_streams_split() {
    let (out, err) = render(&lines(LOG), false, None);
    assert_eq!(out, "first line\npartial done\n\nlast line\n");
    assert_eq!(err, "oops\nerr-err-end\n");
}

#[test]
fn merged_streams_go_to_stdout_in_log_order() {
    let (out, err) = render_as(&lines(LOG), Streams::Merged, false, None);
    assert_eq!(
        out,
        "first line\noops\npartial done\nerr-err-end\n\nlast line\n"
    );
    assert_eq!(err, "");
}

#[test]
fn tail_counts_joined_lines() {
    let tailed = apply_tail(lines(LOG), 3, None);
    let (out, err) = render(&tailed, false, None);
    // The last three full lines: "err-err-end" (stderr), "" and "last line".
    assert_eq!(out, "\nlast line\n");
    assert_eq!(err, "err-err-end\n");
    let (out, _) = render(&apply_tail(lines(LOG), 0, None), false, None);
    assert_eq!(out, "");
    assert_eq!(apply_tail(lines(LOG), -1, None).len(), 6);
    assert_eq!(apply_tail(lines(LOG), 100, None).len(), 6);
}

#[test]
fn since_filters_by_first_record_time() {
    let since = timefmt::parse_rfc3339("2024-05-01T10:00:02Z").expect("time");
    let (out, err) = render(&lines(LOG), false, Some(since));
    assert_eq!(out, "partial done\n\nlast line\n");
    assert_eq!(err, "err-err-end\n");
    // --tail applies after --since.
    let tailed = apply_tail(lines(LOG), 4, Some(since));
    assert_eq!(tailed.len(), 4);
    let just_after = timefmt::parse_rfc3339("2024-05-01T10:00:02.000000001Z").expect("time");
    let (out, _) = render(&lines(LOG), false, Some(just_after));
    assert_eq!(out, "\nlast line\n");
}

#[test]
fn timestamps_prefix_each_line() {
    let (out, err) = render(&lines(LOG)[..3], true, None);
    assert_eq!(
        out,
        "2024-05-01T10:00:00.000000001Z first line\n\
         2024-05-01T10:00:02Z partial done\n"
    );
    assert_eq!(err, "2024-05-01T10:00:01.5Z oops\n");
}

#[test]
fn an_unfinished_partial_is_flushed_without_newline() {
    let (out, _) = render(
        &lines("2024-05-01T10:00:00Z stdout P no newline yet\n"),
        false,
        None,
    );
    assert_eq!(out, "no newline yet");
}

#[test]
fn log_file_reads_whole_lines_and_notices_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.log");
    std::fs::write(
        &path,
        "2024-05-01T10:00:00Z stdout F a\n2024-05-01T10:00:01Z std",
    )
    .expect("write");
    let mut log = LogFile::open(&path).expect("open");
    assert_eq!(
        log.read_lines().expect("read"),
        b"2024-05-01T10:00:00Z stdout F a\n"
    );
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("append");
    file.write_all(b"out F b\n").expect("write");
    assert_eq!(
        log.read_lines().expect("read"),
        b"2024-05-01T10:00:01Z stdout F b\n"
    );
    assert!(!log.rotated());
    std::fs::rename(&path, dir.path().join("c.log.1")).expect("rename");
    std::fs::write(&path, "2024-05-01T10:00:02Z stdout F c\n").expect("write");
    assert!(log.rotated());
    log.reopen().expect("reopen");
    assert_eq!(
        log.read_lines().expect("read"),
        b"2024-05-01T10:00:02Z stdout F c\n"
    );
    // copytruncate: same inode, shorter file.
    std::fs::write(&path, "").expect("truncate");
    assert!(log.rotated());
}

#[test]
fn since_takes_durations_and_times() {
    let now = timefmt::now_nanos();
    let t = since_nanos("1h").expect("duration");
    assert!((now - t - 3_600_000_000_000).abs() < 60_000_000_000);
    assert_eq!(
        since_nanos("1970-01-01T00:00:10Z").ok(),
        Some(10_000_000_000)
    );
    assert!(since_nanos("last tuesday").is_err());
}

#[test]
fn timestamps_print_like_go() {
    assert_eq!(
        go_rfc3339_nano("2024-05-01T10:00:02.000000000Z"),
        "2024-05-01T10:00:02Z"
    );
    assert_eq!(
        go_rfc3339_nano("2024-05-01T10:00:02.120Z"),
        "2024-05-01T10:00:02.12Z"
    );
    assert_eq!(
        go_rfc3339_nano("2024-05-01T10:00:02.5+02:00"),
        "2024-05-01T10:00:02.5+02:00"
    );
    assert_eq!(
        go_rfc3339_nano("2024-05-01T10:00:02-00:00"),
        "2024-05-01T10:00:02Z"
    );
    assert_eq!(
        go_rfc3339_nano("2024-05-01T10:00:02+00:00"),
        "2024-05-01T10:00:02Z"
    );
}

#[test]
fn rotated_files_are_read_first_oldest_first_gzipped_or_not() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("0.log");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"2024-05-01T10:00:00Z stdout F one\n")
        .expect("gzip");
    std::fs::write(
        dir.path().join("0.log.20240501-100001.gz"),
        gz.finish().expect("gzip"),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("0.log.20240501-100002"),
        "2024-05-01T10:00:01Z stderr F two\n",
    )
    .expect("write");
    // Not rotated files of this log.
    std::fs::write(dir.path().join("0.log.old"), "garbage\n").expect("write");
    std::fs::write(dir.path().join("1.log.20240501-100000"), "garbage\n").expect("write");
    std::fs::write(&log, "2024-05-01T10:00:02Z stdout F three\n").expect("write");

    let mut file = LogFile::open(&log).expect("open");
    let mut printer = Printer {
        stdout: Vec::new(),
        stderr: Vec::new(),
        streams: Streams::Merged,
        timestamps: false,
        since: None,
    };
    print_existing(&mut file, &mut Joiner::default(), &mut printer, -1, true).expect("print");
    assert_eq!(
        String::from_utf8(printer.stdout).expect("utf8"),
        "one\ntwo\nthree\n"
    );
    let mut file = LogFile::open(&log).expect("open");
    let mut printer = Printer {
        stdout: Vec::new(),
        stderr: Vec::new(),
        streams: Streams::Apart,
        timestamps: false,
        since: None,
    };
    print_existing(&mut file, &mut Joiner::default(), &mut printer, 2, true).expect("print");
    assert_eq!(String::from_utf8(printer.stdout).expect("utf8"), "three\n");
    assert_eq!(String::from_utf8(printer.stderr).expect("utf8"), "two\n");
}
