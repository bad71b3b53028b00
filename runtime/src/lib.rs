//! Turns an OCI runtime spec into a container process: namespaces, mounts, `pivot_root`, user and
//! groups, capabilities, `no_new_privs`, rlimits, cgroups, and the final `execve`.
//!
//! The crate is synchronous and never changes its caller's process-wide state. It forks, so its
//! caller must be single-threaded (the shim is: it calls this crate before any runtime exists and
//! from its single-threaded event loop). Everything the child needs is prepared before the fork;
//! after the fork the child makes only raw syscalls and reports failures as an errno plus a
//! step name over a close-on-exec pipe.
//!
//! The contract used by `corral-shim`:
//! - [`container::create`] builds the container process up to the point of `execve` and leaves it
//!   waiting; [`container::Container::start`] releases it and returns once `execve` succeeded.
//! - [`exec::spawn`] starts an extra process inside a running container (ExecSync, exec).
//! - [`sandbox::pin_namespaces`] creates a pod's namespaces and pins them to files;
//!   [`sandbox::spawn_pid_holder`] keeps a pod-wide PID namespace alive.
//! - [`cgroups`] creates, updates, inspects and removes a container's cgroup (v1, hybrid, v2).

pub mod cgroups;
pub mod container;
pub mod error;
pub mod exec;
mod process;
mod report;
pub mod sandbox;
mod seccomp;
mod sys;

pub use error::Error;
