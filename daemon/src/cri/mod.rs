//! The CRI services: thin tonic handlers over the daemon's subsystems.

pub(crate) mod batch;
mod checkpoint;
mod container;
mod events;
pub mod image;
mod info;
mod limits;
pub mod runtime;
mod sandbox;
mod stats;
mod streaming;
