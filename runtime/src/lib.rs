//! Container setup (namespaces, mounts, pivot_root, credentials, seccomp, exec).
//!
//! Not built yet: it arrives with the pod sandbox and container issue. The crate exists so the
//! workspace has its final shape; nothing depends on it.
