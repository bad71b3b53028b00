//! Test harness.

pub mod daemon;
pub mod fixtures;
pub mod registry;
