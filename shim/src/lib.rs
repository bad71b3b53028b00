//! The per-pod shim process (stdio, CRI logs, exit records).
//!
//! Not built yet: it arrives with the pod sandbox and container issue. The crate exists so the
//! workspace has its final shape; nothing depends on it.
