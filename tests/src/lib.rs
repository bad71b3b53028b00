//! Test harness.

pub mod fixtures;
pub mod registry;
