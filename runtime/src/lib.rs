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
//! - [`exec::spawn`] starts an extra process inside a running container (ExecSync, exec),
//!   confined exactly like its init ([`exec::Target`]).
//! - [`sandbox::pin_namespaces`] creates a pod's namespaces and pins them to files;
//!   [`sandbox::spawn_pid_holder`] keeps a pod-wide PID namespace alive.
//! - [`userns`] makes user namespaces with ID mappings and idmapped mount trees, and probes
//!   whether the host supports them.
//! - [`cgroups`] creates, updates, inspects and removes a container's cgroup (v1, hybrid, v2).
//!
//! # Process choreography of `create`
//!
//! ```text
//! caller ──fork──> A (intermediate)
//!   │ creates the cgroup (libcgroups, cgroupfs layout), adds A, applies linux.resources,
//!   │ then writes "go" on the sync pipe
//!   │                A: setns() into the namespaces that have a path (files opened by the
//!   │                   caller), then into the user namespace if any (made by the caller,
//!   │                   see userns.rs; A becomes its root), unshare() the others (always a
//!   │                   new mount namespace; a new PID namespace takes effect for A's
//!   │                   children; all owned by the user namespace)
//!   │                A ──clone(CLONE_PARENT)──> B (init, a child of the caller, PID 1 if the
//!   │                   PID namespace is new); A reports B's host PID and exits
//!   │ reaps A, pidfd_open(B)
//!   │                B: setsid, stdio on 0/1/2 (+TIOCSCTTY), rootfs propagation, bind the
//!   │                   rootfs (or attach its idmapped tree), mounts (destinations resolved
//!   │                   inside the rootfs, mounted through openat2(RESOLVE_IN_ROOT)
//!   │                   descriptors; idmapped ones attached from trees the caller made with
//!   │                   move_mount), devices, /dev/console,
//!   │                   pivot_root, hostname, sysctls, readonlyPaths, maskedPaths, read-only
//!   │                   root, cwd, rlimits, seccomp (before dropping privileges unless
//!   │                   no_new_privs), bounding set, groups/gid/uid with kept capabilities,
//!   │                   capabilities, umask, chdir; reports "ready" and blocks on the start pipe
//!   │ writes oom_score_adj; create() returns
//! start(): writes the start pipe; B: no_new_privs, seccomp, every fd > 2 close-on-exec, PATH
//!   lookup, execve. The status pipe is close-on-exec: EOF means execve succeeded, a record
//!   means it failed (reported as [`Error::NotFound`] or [`Error::Child`]).
//! ```
//!
//! Every child failure travels as a fixed-size record (errno + step name) over that
//! close-on-exec status pipe and becomes [`Error::Child`]; on any error the caller kills and
//! reaps what it forked and removes the cgroup. [`exec::spawn`] follows the same pattern: A
//! joins the init's cgroup, `setns(pidfd)` into the init's namespaces that differ from the
//! caller's, clones B with `CLONE_PARENT`, and B applies the process and `execve`s at once.

#![warn(missing_docs)]

pub mod cgroups;
pub mod container;
pub mod error;
pub mod exec;
pub mod hooks;
mod lsm;
mod process;
mod report;
pub mod sandbox;
mod seccomp;
mod sys;
mod terminal;
pub mod userns;

pub use error::Error;
pub use sys::{has_mount_setattr, pidfd_open};
pub use terminal::receive as receive_terminal;
