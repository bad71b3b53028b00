//! corrald: the Corral CRI daemon as a library, so `main` and the tests share one entry point.

pub mod alloc;
pub mod cadvisor;
pub mod checkpoint;
pub mod config;
pub mod cri;
pub mod deadline;
pub mod dirs;
pub mod event_bus;
pub mod handlers;
pub mod lock;
pub mod logging;
pub mod message_limit;
pub mod metrics;
pub mod network;
pub mod pods;
pub mod server;
pub mod spec;
pub mod stats;
pub mod status;
pub mod streaming;
pub mod sync;

pub use config::Config;
pub use server::{Daemon, DaemonError};
