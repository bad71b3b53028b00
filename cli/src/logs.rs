//! `logs`: read a container's log file the way crictl does, straight from disk.
//!
//! The path comes from `ContainerStatus.log_path`; records are in the CRI log format
//! `<RFC3339Nano> <stdout|stderr> <P|F>[:tags] <text>`. `P` records are partial and join the
//! next records of the same stream until an `F` record ends the line. `--tail` counts joined
//! lines; `--since` compares a line's first record time; `--follow` polls the file, reopens it
//! when it is rotated (new inode, or shorter than what was read) and stops once the container
//! no longer runs. Files the log was rotated to (`<log>.<YYYYMMDD-HHMMSS>[.gz]`, the kubelet's
//! names) are read first, oldest first, so the whole log is shown.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use corral_cri_api::v1;

use crate::client::{Cri, parse_duration};
use crate::containers::container_status;
use crate::logformat::{Joiner, Line, Stream, go_rfc3339_nano, parse_lines};
use crate::timefmt;

/// How often a followed file is polled for growth.
const POLL: Duration = Duration::from_millis(100);
/// How often a followed container's state is checked.
const STATUS_EVERY: u32 = 10;

/// `logs`: fetch the logs of a container.
#[derive(Debug, Args)]
#[command(
    after_help = "CONTAINER_ID may be a pod name (kubectl form): it is one \
when -n, -c or --previous is given or when written pod/NAME; otherwise, when no container id known to the \
runtime starts with it and the pod manager has a pod of that name. A pod's container is -c, or its first (\"Defaulted container\" on stderr)."
)]
pub struct LogsArgs {
    #[arg(value_name = "CONTAINER_ID|POD")]
    id: String,
    /// The pod's container (pod names only).
    #[arg(short, long)]
    container: Option<String>,
    /// The pod's namespace (pod names only).
    #[arg(short, long)]
    namespace: Option<String>,
    /// The previous (terminated) instance of the pod's container.
    #[arg(short, long)]
    previous: bool,
    /// Follow the log output until the container stops.
    #[arg(short, long)]
    follow: bool,
    /// Number of lines to show from the end of the log (negative: all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_name = "N")]
    tail: i64,
    /// Only lines since a relative duration (42m, 1h30m) or an RFC 3339 time.
    #[arg(long, value_name = "DURATION|TIME")]
    since: Option<String>,
    /// Prefix each line with its RFC 3339 timestamp.
    #[arg(short, long)]
    timestamps: bool,
}

/// Where a container's stderr records go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Streams {
    /// To our stderr (crictl).
    Apart,
    /// To our stdout with the stdout records, in log order (kubectl).
    Merged,
}

/// Where lines go and how they are shown.
pub struct Printer<O: Write, E: Write> {
    pub stdout: O,
    pub stderr: E,
    pub streams: Streams,
    pub timestamps: bool,
    pub since: Option<i64>,
}

impl<O: Write, E: Write> Printer<O, E> {
    pub fn print(&mut self, lines: &[Line]) -> io::Result<()> {
        for line in lines {
            if self.since.is_some_and(|since| line.time < since) {
                continue;
            }
            let out: &mut dyn Write = match (line.stream, self.streams) {
                (Stream::Stderr, Streams::Apart) => &mut self.stderr,
                _ => &mut self.stdout,
            };
            if self.timestamps {
                write!(out, "{} ", go_rfc3339_nano(&line.time_text))?;
            }
            out.write_all(&line.text)?;
            if !line.unterminated {
                out.write_all(b"\n")?;
            }
        }
        self.stdout.flush()?;
        self.stderr.flush()
    }
}

/// Keeps the last `tail` lines after the `since` filter (negative: all).
pub fn apply_tail(mut lines: Vec<Line>, tail: i64, since: Option<i64>) -> Vec<Line> {
    if let Some(since) = since {
        lines.retain(|l| l.time >= since);
    }
    if let Ok(keep) = usize::try_from(tail) {
        let skip = lines.len().saturating_sub(keep);
        lines.drain(..skip);
    }
    lines
}

/// An open log file read in whole lines, reopened when rotated.
struct LogFile {
    path: PathBuf,
    file: File,
    inode: u64,
    read: u64,
    partial: Vec<u8>,
}

impl LogFile {
    fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let inode = file.metadata()?.ino();
        Ok(Self {
            path: path.to_owned(),
            file,
            inode,
            read: 0,
            partial: Vec::new(),
        })
    }

    /// Reads what was appended and returns the complete lines; an unfinished last line waits.
    fn read_lines(&mut self) -> io::Result<Vec<u8>> {
        let mut data = std::mem::take(&mut self.partial);
        self.file.seek(SeekFrom::Start(self.read))?;
        let n = self.file.read_to_end(&mut data)?;
        self.read += n as u64;
        match data.iter().rposition(|&b| b == b'\n') {
            Some(end) => {
                self.partial = data.split_off(end + 1);
                Ok(data)
            }
            None => {
                self.partial = data;
                Ok(Vec::new())
            }
        }
    }

    /// Whether the path now names another file, or the file was truncated.
    fn rotated(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(meta) => meta.ino() != self.inode || meta.len() < self.read,
            Err(_) => false,
        }
    }

    fn reopen(&mut self) -> io::Result<()> {
        *self = Self::open(&self.path)?;
        Ok(())
    }

    /// The unfinished last line, when reading stops for good.
    fn take_rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.partial)
    }
}

fn since_nanos(since: &str) -> anyhow::Result<i64> {
    if let Ok(ago) = parse_duration(since) {
        let ago = i64::try_from(ago.as_nanos()).unwrap_or(i64::MAX);
        return Ok(timefmt::now_nanos().saturating_sub(ago));
    }
    timefmt::parse_rfc3339(since)
        .with_context(|| format!("invalid --since {since:?}: expected a duration or RFC 3339 time"))
}

/// The files a log rotator (the kubelet's, the pod manager's) renamed `log` to, oldest first:
/// `<log>.<YYYYMMDD-HHMMSS>`, gzip-compressed with `.gz` after it.
pub fn rotated_files(log: &Path) -> io::Result<Vec<PathBuf>> {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let is_stamp = |s: &str| {
        s.len() == 15
            && s.char_indices()
                .all(|(i, c)| if i == 8 { c == '-' } else { c.is_ascii_digit() })
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let stamp = rest.strip_suffix(".gz").unwrap_or(rest);
        if is_stamp(stamp) {
            found.push((stamp.to_owned(), entry.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, path)| path).collect())
}

/// Everything the rotated files of `log` hold, oldest first, in whole records.
fn rotated_data(log: &Path) -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    for file in rotated_files(log).unwrap_or_default() {
        let mut raw = Vec::new();
        let read = match File::open(&file) {
            Ok(f) if file.to_string_lossy().ends_with(".gz") => {
                flate2::read::GzDecoder::new(f).read_to_end(&mut raw)
            }
            Ok(mut f) => f.read_to_end(&mut raw),
            // Removed by the rotator meanwhile: its records are gone.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => Err(e),
        };
        read.with_context(|| format!("reading rotated log file {}", file.display()))?;
        if !raw.is_empty() && !raw.ends_with(b"\n") {
            raw.push(b'\n');
        }
        data.extend(raw);
    }
    Ok(data)
}

/// Reads what the rotated files and the file hold now and prints it with `--tail` and `--since`
/// applied.
fn print_existing<O: Write, E: Write>(
    log: &mut LogFile,
    joiner: &mut Joiner,
    printer: &mut Printer<O, E>,
    tail: i64,
    finish: bool,
) -> anyhow::Result<()> {
    let mut lines = parse_lines(&rotated_data(&log.path)?, joiner)?;
    let data = log.read_lines()?;
    lines.extend(parse_lines(&data, joiner)?);
    if finish {
        lines.extend(finish_lines(log, joiner)?);
    }
    printer.print(&apply_tail(lines, tail, printer.since))?;
    Ok(())
}

fn finish_lines(log: &mut LogFile, joiner: &mut Joiner) -> anyhow::Result<Vec<Line>> {
    let rest = log.take_rest();
    let mut lines = parse_lines(&rest, joiner)?;
    lines.extend(joiner.finish());
    Ok(lines)
}

fn is_running(status: &v1::ContainerStatusResponse) -> bool {
    status
        .status
        .as_ref()
        .is_some_and(|s| s.state == v1::ContainerState::ContainerRunning as i32)
}

pub async fn logs(cri: &Cri, args: LogsArgs) -> anyhow::Result<()> {
    let target = crate::kubectl::pod_target::container_id(
        cri,
        &args.id,
        args.namespace.as_deref(),
        args.container.as_deref(),
        args.previous,
    )
    .await?;
    // kubectl writes both streams, in log order, to its stdout; crictl keeps them apart.
    let streams = if target.via_pod {
        Streams::Merged
    } else {
        Streams::Apart
    };
    container_logs(cri, &target.id, &args, streams).await
}

/// The logs of one container by its CRI id.
pub async fn container_logs(
    cri: &Cri,
    id: &str,
    args: &LogsArgs,
    streams: Streams,
) -> anyhow::Result<()> {
    let since = args.since.as_deref().map(since_nanos).transpose()?;
    let mut client = cri.runtime().await?;
    let status = container_status(cri, &mut client, id, false).await?;
    let path = status
        .status
        .as_ref()
        .map(|s| s.log_path.clone())
        .unwrap_or_default();
    if path.is_empty() {
        bail!("container {id:?} has no log path");
    }
    let path = PathBuf::from(path);
    let mut log =
        LogFile::open(&path).with_context(|| format!("opening log file {}", path.display()))?;
    let mut joiner = Joiner::default();
    let mut printer = Printer {
        stdout: io::stdout(),
        stderr: io::stderr(),
        streams,
        timestamps: args.timestamps,
        since,
    };
    let follow = args.follow && is_running(&status);
    print_existing(&mut log, &mut joiner, &mut printer, args.tail, !follow)?;
    if !follow {
        return Ok(());
    }
    let mut ticks = 0_u32;
    loop {
        tokio::time::sleep(POLL).await;
        ticks += 1;
        let data = log.read_lines()?;
        printer.print(&parse_lines(&data, &mut joiner)?)?;
        if log.rotated() {
            cri.debug(|| format!("log file {} was rotated; reopening", path.display()));
            // Whatever the old file still held was read above; a leftover half line is lost.
            log.reopen()
                .with_context(|| format!("reopening log file {}", path.display()))?;
            continue;
        }
        if ticks.is_multiple_of(STATUS_EVERY) {
            let status = container_status(cri, &mut client, id, false).await?;
            if !is_running(&status) {
                let data = log.read_lines()?;
                let mut lines = parse_lines(&data, &mut joiner)?;
                if log.rotated() {
                    // Rotated since the last look: the new file holds the last words.
                    log.reopen()?;
                    lines.extend(parse_lines(&log.read_lines()?, &mut joiner)?);
                }
                lines.extend(finish_lines(&mut log, &mut joiner)?);
                printer.print(&lines)?;
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests;
