//! File-system helpers shared by the image store and the daemon.
//!
//! [`walk`]: walking and removing trees whose shape a container controls (writable layers,
//! emptyDirs, unpacked layers): iterative, with a bounded number of open descriptors, relative
//! to directory descriptors, never following a symlink.

pub mod walk;

pub use walk::{Entry, Visitor, WalkError, remove_tree, remove_tree_at, walk};
