//! A CNI runtime: what containerd's go-cni and libcni do for containerd, for Corral.
//!
//! - [`config`] finds and validates a network configuration list (`.conflist`, or a single
//!   `.conf` wrapped into one).
//! - [`invoke`] finds a plugin binary and runs it with the CNI environment, a time limit and
//!   bounded output.
//! - [`chain`] runs ADD over every plugin of a list (each getting the previous result and the
//!   runtime config for the capabilities it declares) and DEL in reverse; an ADD that fails is
//!   undone before the error is returned.
//! - [`result`] reads the IPs out of a result (0.2 to 1.x formats).
//!
//! The crate keeps no state: [`chain::Attachment`] is everything a DEL needs and is what callers
//! persist.

pub mod chain;
pub mod config;
pub mod invoke;
pub mod result;

pub use chain::{Attachment, add, del};
pub use config::NetworkList;
pub use invoke::{DEFAULT_PLUGIN_DIRS, Plugins};

use std::path::PathBuf;

/// Why loading a network or running a plugin failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("CNI config {path}: {msg}")]
    Config { path: PathBuf, msg: String },
    #[error("CNI plugin {plugin:?} not found in {dirs}")]
    PluginNotFound { plugin: String, dirs: String },
    #[error("CNI network {network:?}: plugin {plugin:?} {command} failed: {msg}{}", code_suffix(*.code))]
    Plugin {
        network: String,
        plugin: String,
        command: &'static str,
        code: Option<u32>,
        msg: String,
    },
    #[error("CNI network {network:?}: plugin {plugin:?} {command} did not finish within {secs} s")]
    Timeout {
        network: String,
        plugin: String,
        command: &'static str,
        secs: u64,
    },
    #[error("CNI network {network:?}: plugin {plugin:?} {command}: {msg}")]
    BadResult {
        network: String,
        plugin: String,
        command: &'static str,
        msg: String,
    },
}

fn code_suffix(code: Option<u32>) -> String {
    code.map(|c| format!(" (code {c})")).unwrap_or_default()
}
