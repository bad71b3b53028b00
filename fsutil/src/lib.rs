//! File-system helpers shared by the image store, the object store and the daemon.
//!
//! [`mode`]: directories and files that are root's alone, created so and set back so.
//! [`walk`]: walking and removing trees whose shape a container controls (writable layers,
//! emptyDirs, unpacked layers): iterative, with a bounded number of open descriptors, relative
//! to directory descriptors, never following a symlink.

pub mod mode;
pub mod walk;

pub use walk::{Entry, Visitor, WalkError, remove_tree, remove_tree_at, walk};
