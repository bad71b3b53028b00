//! The per-pod shim: one process per pod that pins the pod's namespaces, creates its containers
//! (through `corral-runtime`, from a single-threaded context), owns their stdio, writes their CRI
//! log files, waits for their exits and records them atomically. It is started by corrald as a
//! fresh program, detaches, and keeps running when the daemon dies.
//!
//! The library part holds what the daemon shares with the shim binary: the [`proto`]col, and the exit
//! [`records`], and the [`crilog`] writer and [`timefmt`] used for log records.

pub mod crilog;
pub mod proto;
pub mod records;
pub mod timefmt;
