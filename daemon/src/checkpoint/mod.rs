//! Checkpoint archives (issue 20): what CheckpointContainer writes and a restoring
//! CreateContainer reads, in the layout CRI-O writes and checkpointctl reads (an uncompressed
//! tar):
//!
//! | entry | what |
//! |---|---|
//! | `checkpoint/` | CRIU's images (`runc checkpoint --image-path`) |
//! | `config.dump` | JSON, checkpointctl's `ContainerConfig` ([`dump::ConfigDump`]) |
//! | `spec.dump` | the container's OCI runtime spec (its bundle's `config.json`) |
//! | `rootfs-diff.tar` | the writable layer (overlay upper directory), whiteouts left out |
//! | `deleted.files` | JSON array of the paths those whiteouts delete (absent when none) |
//! | `dump.log` | CRIU's log of the dump |
//! | `io.kubernetes.cri-o.LogPath` | the container's CRI log at checkpoint time (CRI-O's name) |
//!
//! `criu` finds and probes the CRIU program; `archive` writes an archive atomically and
//! unpacks an untrusted one with bounds; `rootfs_diff` turns a writable layer into
//! `rootfs-diff.tar` + `deleted.files` and back; `restore` turns an unpacked archive and a
//! CreateContainer request into the container config to create.

pub mod archive;
pub mod criu;
pub mod dump;
pub mod restore;
pub mod rootfs_diff;

pub use criu::{Criu, Prober};

/// How long a dump may take when CheckpointContainer's timeout is 0 (CRI-O and containerd
/// set none; a dump of a few GiB of memory takes minutes).
pub const DEFAULT_DUMP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

use std::path::PathBuf;

/// Why a checkpoint archive could not be written or read; `pods` turns it into a
/// [`crate::pods::PodError`] (an archive the client gave us that is wrong is its
/// INVALID_ARGUMENT, the rest is ours).
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The archive (or a file in it) is not what a checkpoint archive holds.
    #[error("checkpoint archive {archive}: {why}")]
    Invalid { archive: PathBuf, why: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl CheckpointError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> CheckpointError {
        CheckpointError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = CheckpointError> = std::result::Result<T, E>;

/// A private directory for one checkpoint or restore, `<root>/checkpoints/<random>` (0700),
/// removed with everything in it when dropped: on every path, success or error.
#[derive(Debug)]
pub struct WorkDir {
    path: PathBuf,
}

/// The directory under the daemon's root that holds [`WorkDir`]s.
pub const WORK_PARENT: &str = "checkpoints";

impl WorkDir {
    pub fn new(root: &std::path::Path) -> Result<WorkDir> {
        let parent = root.join(WORK_PARENT);
        crate::dirs::create(&parent, crate::dirs::PRIVATE)
            .map_err(|e| CheckpointError::io(&parent, e))?;
        let path = parent.join(format!("{:016x}", rand::random::<u64>()));
        std::fs::create_dir(&path).map_err(|e| CheckpointError::io(&path, e))?;
        crate::dirs::create(&path, crate::dirs::PRIVATE)
            .map_err(|e| CheckpointError::io(&path, e))?;
        Ok(WorkDir { path })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(e) = corral_fsutil::remove_tree(&self.path) {
            tracing::warn!(dir = %self.path.display(), error = %e, "removing a checkpoint work directory");
        }
    }
}

/// At start-up: removes the work directories a daemon that died mid-checkpoint left.
pub fn sweep(root: &std::path::Path) {
    let parent = root.join(WORK_PARENT);
    if let Err(e) = corral_fsutil::remove_tree(&parent) {
        tracing::warn!(dir = %parent.display(), error = %e, "removing old checkpoint work directories");
    }
}
