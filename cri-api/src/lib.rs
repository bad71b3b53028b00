//! The Kubernetes Container Runtime Interface, `runtime.v1`, as generated Rust.
//!
//! [`corral`] holds Corral's own `corral.v1` API (the pod manager).
//! [`v1`] holds the messages, the `RuntimeService` and `ImageService` server traits and
//! clients. [`connect`] opens a client channel over a Unix socket, the way kubelet and crictl
//! reach a runtime.

pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("runtime.v1");
}

/// `corral.v1`: Corral's own services on the daemon socket (the pod manager's `KubeService`).
pub mod corral {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("corral.v1");
}

mod connect;

pub use connect::{ConnectError, connect};
