//! The small file-system and time helpers shared by the crates (the image store, the object
//! store, the shim, the daemon, the pod manager and corralctl): one home instead of a copy in each.
//!
//! [`mode`]: directories and files that are root's alone, created so and set back so.
//! [`walk`]: walking and removing trees whose shape a container controls (writable layers,
//! emptyDirs, unpacked layers): iterative, with a bounded number of open descriptors, relative
//! to directory descriptors, never following a symlink.
//! [`mountinfo`]: the mount table.
//! [`atomic`]: replacing a file atomically and durably (`write_atomic`, `sync_dir`), or
//! atomically with the new name left to the next commit (`write_atomic_lazy`).
//! [`time`]: calendar maths and RFC 3339 in UTC.
//! [`out_of_space`]: whether an error chain says a file system is full.

pub mod atomic;
pub mod mode;
pub mod mountinfo;
pub mod time;
pub mod walk;

pub use atomic::{sync_dir, write_atomic, write_atomic_lazy};

pub use walk::{Entry, Visitor, WalkError, remove_tree, remove_tree_at, walk};

/// Whether a file system ran out of space (or quota) somewhere in the error's chain.
pub fn out_of_space(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            )
        {
            return true;
        }
        next = err.source();
    }
    false
}
