//! Container log rotation, as the kubelet's container log manager does it: every interval, each
//! running container of the pod manager whose log file has reached `max_size` has its file
//! renamed to `<log>.<YYYYMMDD-HHMMSS>` (UTC) and is told, through ReopenContainerLog, to write
//! a new one. At most `max_files` files stay per container (the current one included): the
//! oldest rotated files go, and the files rotated in earlier rounds are gzip-compressed
//! (`<log>.<time>.gz`, written through a `.tmp` file so a crash leaves no half file under the
//! final name). The file rotated in this round stays plain until the next: the runtime may still
//! be finishing a write to it.
//!
//! The directory is the pod manager's own (`<root>/kubelet/pods/<uid>/logs`); containers cannot
//! write there, only to their pipes. Files are opened without following symlinks all the same.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;

use super::Cri;

/// When and how far logs are rotated (`[kubelet] container_log_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPolicy {
    /// A log file this large or larger is rotated.
    pub max_size: u64,
    /// Files kept per container, the current one included (at least 2).
    pub max_files: usize,
    /// How often log sizes are checked.
    pub interval: Duration,
}

impl Default for LogPolicy {
    /// The kubelet's defaults: 10 MiB, 5 files, every 10 s.
    fn default() -> Self {
        LogPolicy {
            max_size: 10 << 20,
            max_files: 5,
            interval: Duration::from_secs(10),
        }
    }
}

/// The suffix after `<log>.` of a rotated file: the rotation time and, once compressed, `.gz`.
const TIME_FORMAT: &str = "%Y%m%d-%H%M%S";
const GZ: &str = ".gz";
const TMP: &str = ".tmp";

/// Checks every running container's log until the task is aborted.
pub async fn run(cri: Cri, policy: LogPolicy) {
    let mut tick = tokio::time::interval(policy.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = rotate_all(&cri, policy).await {
            tracing::warn!(error = %e, "container log rotation");
        }
    }
}

async fn rotate_all(cri: &Cri, policy: LogPolicy) -> Result<(), tonic::Status> {
    for ctr in cri.running_pod_containers().await? {
        // Gone or stopped since the list: nothing to rotate.
        let Ok(status) = cri.container_status(&ctr.id).await else {
            continue;
        };
        if status.log_path.is_empty() {
            continue;
        }
        let path = PathBuf::from(&status.log_path);
        let size = std::fs::symlink_metadata(&path).map_or(0, |m| m.len());
        if size < policy.max_size {
            continue;
        }
        let stamp = super::now().strftime(TIME_FORMAT).to_string();
        let rotated = {
            let (path, stamp) = (path.clone(), stamp.clone());
            tokio::task::spawn_blocking(move || prepare_and_rename(&path, &stamp, policy)).await
        };
        let rotated = match rotated {
            Ok(Ok(Some(rotated))) => rotated,
            Ok(Ok(None)) => continue,
            Ok(Err(e)) => {
                tracing::warn!(container = %ctr.id, path = %path.display(), error = %e, "rotating a container log");
                continue;
            }
            Err(e) => {
                tracing::warn!(container = %ctr.id, error = %e, "log rotation task");
                continue;
            }
        };
        if let Err(status) = cri.reopen_container_log(&ctr.id).await {
            // The runtime still writes to the renamed file: give it its name back, as the kubelet
            // does, so the log path keeps naming the live file.
            tracing::warn!(container = %ctr.id, error = %status.message(), "ReopenContainerLog after rotation");
            if let Err(e) = std::fs::rename(&rotated, &path) {
                tracing::warn!(container = %ctr.id, error = %e, "renaming a rotated log back");
            }
            continue;
        }
        tracing::debug!(container = %ctr.id, rotated = %rotated.display(), size, "container log rotated");
    }
    Ok(())
}

/// Makes room for one more rotated file of `log` and renames `log` to it. Returns the rotated
/// file's path, or `None` when a file of that name exists already (rotated this very second).
pub fn prepare_and_rename(
    log: &Path,
    stamp: &str,
    policy: LogPolicy,
) -> io::Result<Option<PathBuf>> {
    let target = with_suffix(log, &format!(".{stamp}"));
    if target.exists() || with_suffix(&target, GZ).exists() {
        return Ok(None);
    }
    remove_leftover_tmp(log)?;
    let mut rotated = rotated_files(log)?;
    // The current file and the one about to be rotated count too.
    let keep = policy.max_files.saturating_sub(2);
    while rotated.len() > keep {
        let oldest = rotated.remove(0);
        remove_if_present(&oldest)?;
    }
    // The files rotated before are compressed (the runtime has long reopened its log since).
    for file in &rotated {
        if !file.to_string_lossy().ends_with(GZ) {
            compress(file)?;
        }
    }
    std::fs::rename(log, &target)?;
    Ok(Some(target))
}

/// `log`'s rotated files (plain or compressed), oldest first.
pub fn rotated_files(log: &Path) -> io::Result<Vec<PathBuf>> {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{}.", name.to_string_lossy());
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        let Some(rest) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let stamp = rest.strip_suffix(GZ).unwrap_or(rest);
        if is_stamp(stamp) && entry.file_type()?.is_file() {
            found.push((stamp.to_owned(), entry.path()));
        }
    }
    // The stamps sort as times do.
    found.sort();
    Ok(found.into_iter().map(|(_, path)| path).collect())
}

/// `YYYYMMDD-HHMMSS`.
fn is_stamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 15
        && b[8] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 8 || c.is_ascii_digit())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Temporary files of a compression a crash interrupted.
fn remove_leftover_tmp(log: &Path) -> io::Result<()> {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name()) else {
        return Ok(());
    };
    let prefix = format!("{}.", name.to_string_lossy());
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if file_name.starts_with(&prefix) && file_name.ends_with(TMP) {
            remove_if_present(&entry.path())?;
        }
    }
    Ok(())
}

/// Replaces `file` by `file.gz`.
fn compress(file: &Path) -> io::Result<()> {
    let gz = with_suffix(file, GZ);
    let tmp = with_suffix(&gz, TMP);
    let mut input = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(file)?;
    let output = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    let mut encoder = GzEncoder::new(output, Compression::default());
    let written = io::copy(&mut input, &mut encoder).and_then(|_| encoder.finish());
    let output: File = match written {
        Ok(output) => output,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    output.sync_all()?;
    std::fs::rename(&tmp, &gz)?;
    std::fs::remove_file(file)
}

#[cfg(test)]
mod tests;
