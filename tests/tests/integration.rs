//! The integration tests, in one binary: each module is one area, and each test drives a
//! real corrald through its socket. One binary links the tree once (the former one binary
//! per file linked it twenty times); nextest still runs every test in its own process.

mod common;

mod cdi;
mod checkpoint;
mod cli;
mod clients;
mod confinement;
mod daemon;
mod events;
mod faults;
mod full_disk;
mod harness;
mod hooks;
mod host_files;
mod hostile_requests;
mod image_user;
mod image_volumes;
mod images;
mod install;
mod kube;
mod kube_cli;
mod kube_logs;
mod kube_validation;
mod listing;
mod logging;
mod metrics;
mod network;
mod pods;
mod pods_errors;
mod pods_recovery;
mod registry;
mod runtime_handlers;
mod security;
mod security_context;
mod stats;
mod stop_signals;
mod streaming;
mod tar_headers;
mod userns;
