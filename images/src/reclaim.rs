//! Deleting removed snapshot trees off the caller's path. A snapshot leaves the store with one
//! rename into `.staging` (see [`crate::snapshot::SnapshotStore::detach`]); deleting its files
//! can take many seconds for an image of thousands of small files, longer than a client waits
//! for RemoveImage (crictl's default deadline is 2 s). So the caller hands the detached trees to
//! a thread of their own and answers at once; a crash before they are gone leaves them in
//! `.staging`, which the next start hands to the same kind of thread.

use std::path::PathBuf;

use crate::fsutil;

/// Deletes `trees` on a thread of their own (none for an empty list).
pub fn in_background(trees: Vec<PathBuf>) {
    if trees.is_empty() {
        return;
    }
    let work = move || {
        for tree in trees {
            let started = std::time::Instant::now();
            match fsutil::remove_any(&tree) {
                Ok(()) => {
                    tracing::debug!(dir = %tree.display(), elapsed = ?started.elapsed(), "removed snapshot files")
                }
                Err(e) => {
                    tracing::warn!(dir = %tree.display(), error = %e, "removing snapshot files")
                }
            }
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("image-reclaim".into())
        .spawn(work)
    {
        // Without a thread the files stay in `.staging` until the next start sweeps them.
        tracing::warn!(error = %e, "cannot start the thread that deletes removed snapshots");
    }
}
