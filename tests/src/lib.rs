//! Test harness.

pub mod cleanup;
pub mod daemon;
pub mod fixtures;
pub mod netlease;
pub mod procs;
pub mod registry;
