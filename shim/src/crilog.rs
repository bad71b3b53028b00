//! Writing container output in the CRI log format: one record per line,
//! `<RFC3339Nano> <stdout|stderr> <F|P> <text>\n`.
//!
//! Each read from a container's pipe is turned into records with one fresh timestamp: every
//! complete line becomes an `F` (full) record, and a trailing fragment without a newline becomes
//! a `P` (partial) record that readers join with what follows. Nothing is buffered across reads,
//! so a prompt without a newline shows up at once, and a line longer than one read (the shim
//! reads at most [`READ_SIZE`] bytes) is split into `P` records.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::timefmt::rfc3339_nano;

/// The most bytes the shim reads from a container pipe at once, and so the longest record.
pub const READ_SIZE: usize = 16 * 1024;

/// Which of the container's streams a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Appends the records for one read of `data` to `out`.
pub fn format_records(out: &mut Vec<u8>, stream: Stream, data: &[u8], nanos: i64) {
    let ts = rfc3339_nano(nanos);
    let mut rest = data;
    while !rest.is_empty() {
        let (line, tag, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], "F", &rest[i + 1..]),
            None => (rest, "P", &rest[rest.len()..]),
        };
        out.extend_from_slice(ts.as_bytes());
        out.push(b' ');
        out.extend_from_slice(stream.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(tag.as_bytes());
        out.push(b' ');
        out.extend_from_slice(line);
        out.push(b'\n');
        rest = next;
    }
}

/// A container's log file, reopened on request (log rotation).
///
/// A write that fails (a full disk, a quota) loses that output but never the container or the
/// file's shape: a record cut short is cut off again, the bytes that could not be written are
/// counted, and the first record written once space returns is a marker saying how much was
/// dropped and why.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: File,
    /// The file's length after the last whole record.
    len: u64,
    scratch: Vec<u8>,
    /// Output lost since the last successful write, and the first error that lost it.
    dropped: Option<Dropped>,
    /// Bytes of output lost since the file was opened, in all.
    dropped_total: u64,
}

/// Output a log could not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub bytes: u64,
    pub error: String,
}

/// What a [`LogFile::write`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// The records are in the file.
    Ok,
    /// Written again after output was lost; the marker says what was.
    Resumed(Dropped),
    /// Lost; the first loss of a run carries its error, later ones `None`.
    Dropped(Option<String>),
}

impl LogFile {
    /// Opens (creating, mode 0640) `path` for appending.
    pub fn open(path: &Path) -> io::Result<LogFile> {
        let file = open_append(path)?;
        let len = file.metadata()?.len();
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            len,
            scratch: Vec::new(),
            dropped: None,
            dropped_total: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Output lost and not yet reported in the file.
    pub fn dropped(&self) -> Option<&Dropped> {
        self.dropped.as_ref()
    }

    /// Bytes of output lost since the file was opened (reopening keeps counting).
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }

    /// Writes the records for one read; each read is a single `write` so records never
    /// interleave.
    pub fn write(&mut self, stream: Stream, data: &[u8], nanos: i64) -> Written {
        self.scratch.clear();
        if let Some(d) = &self.dropped {
            let marker = format!(
                "corral: {} bytes of container output were dropped: the log could not be written ({})\n",
                d.bytes, d.error
            );
            format_records(&mut self.scratch, Stream::Stderr, marker.as_bytes(), nanos);
        }
        format_records(&mut self.scratch, stream, data, nanos);
        match self.file.write_all(&self.scratch) {
            Ok(()) => {
                self.len += self.scratch.len() as u64;
                match self.dropped.take() {
                    Some(d) => Written::Resumed(d),
                    None => Written::Ok,
                }
            }
            Err(e) => {
                // A record cut short would run into the next one: cut it off (which also
                // frees what it took).
                let _ = self.file.set_len(self.len);
                let first = self.dropped.is_none();
                let d = self.dropped.get_or_insert_with(|| Dropped {
                    bytes: 0,
                    error: e.to_string(),
                });
                d.bytes += data.len() as u64;
                self.dropped_total += data.len() as u64;
                Written::Dropped(first.then(|| e.to_string()))
            }
        }
    }

    /// Opens the path again (the old file may have been renamed away).
    pub fn reopen(&mut self) -> io::Result<()> {
        self.file = open_append(&self.path)?;
        self.len = self.file.metadata()?.len();
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_475_713_029_669_794_202;

    fn records(data: &[u8]) -> String {
        let mut out = Vec::new();
        format_records(&mut out, Stream::Stdout, data, T);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn full_lines_and_a_trailing_fragment() {
        assert_eq!(
            records(b"one\ntwo\nthr"),
            "2016-10-06T00:17:09.669794202Z stdout F one\n\
             2016-10-06T00:17:09.669794202Z stdout F two\n\
             2016-10-06T00:17:09.669794202Z stdout P thr\n"
        );
    }

    #[test]
    fn empty_lines_are_records_too() {
        assert_eq!(
            records(b"\n\n"),
            "2016-10-06T00:17:09.669794202Z stdout F \n\
             2016-10-06T00:17:09.669794202Z stdout F \n"
        );
        assert_eq!(records(b""), "");
    }

    #[test]
    fn file_appends_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.log");
        let mut log = LogFile::open(&path).unwrap();
        assert_eq!(log.write(Stream::Stderr, b"a\n", T), Written::Ok);
        std::fs::rename(&path, dir.path().join("c.log.1")).unwrap();
        assert_eq!(log.write(Stream::Stderr, b"b\n", T), Written::Ok);
        log.reopen().unwrap();
        assert_eq!(log.write(Stream::Stdout, b"c\n", T), Written::Ok);
        let old = std::fs::read_to_string(dir.path().join("c.log.1")).unwrap();
        let new = std::fs::read_to_string(&path).unwrap();
        assert!(old.ends_with("stderr F a\n2016-10-06T00:17:09.669794202Z stderr F b\n"));
        assert_eq!(new, "2016-10-06T00:17:09.669794202Z stdout F c\n");
    }

    #[test]
    fn a_full_disk_drops_whole_records_and_the_next_write_says_so() {
        let mut log = LogFile::open(Path::new("/dev/full")).unwrap();
        assert_eq!(
            log.write(Stream::Stdout, b"lost\n", T),
            Written::Dropped(Some("No space left on device (os error 28)".into()))
        );
        assert_eq!(
            log.write(Stream::Stdout, b"lost too", T),
            Written::Dropped(None)
        );
        assert_eq!(
            log.dropped(),
            Some(&Dropped {
                bytes: 13,
                error: "No space left on device (os error 28)".into()
            })
        );
        // Space is back (here: another file under the same writer).
        let dir = tempfile::tempdir().unwrap();
        log.file = open_append(&dir.path().join("c.log")).unwrap();
        log.len = 0;
        assert!(matches!(
            log.write(Stream::Stdout, b"back\n", T),
            Written::Resumed(Dropped { bytes: 13, .. })
        ));
        let text = std::fs::read_to_string(dir.path().join("c.log")).unwrap();
        assert_eq!(
            text,
            "2016-10-06T00:17:09.669794202Z stderr F corral: 13 bytes of container output were dropped: the log could not be written (No space left on device (os error 28))\n\
             2016-10-06T00:17:09.669794202Z stdout F back\n"
        );
        assert_eq!(log.dropped(), None);
        assert_eq!(log.dropped_total(), 13, "the total outlives the run");
    }
}
