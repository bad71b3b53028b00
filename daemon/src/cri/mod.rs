//! The CRI services: thin tonic handlers over the daemon's subsystems.

mod container;
pub mod image;
pub mod runtime;
mod sandbox;
mod stats;
mod streaming;
