//! The CRI services: thin tonic handlers over the daemon's subsystems.

pub mod image;
pub mod runtime;
mod container;
mod sandbox;
