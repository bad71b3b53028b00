//! The Kubernetes object model for one host: what `corralctl apply -f pod.yaml` needs before and
//! after corrald's pod manager drives containers through the CRI.
//!
//! Everything here is pure (no I/O) except [`store`], which keeps objects on disk.
//!
//! - [`manifest`] parses `apply -f` input (multi-document YAML, `List`, JSON) into typed objects,
//!   rejecting unknown fields with their path as `kubectl apply --validate=strict` does.
//! - [`field`] is the API server's field error (`spec.containers[0].image: Required value`).
//! - [`validate`] checks objects before anything is created, collecting every field error.
//! - [`selector`] parses and matches label selectors (`app=web,tier notin (db)`).
//! - [`quantity`] parses resource quantities and converts them the way the kubelet does (cpu
//!   shares, CFS quota, memory bytes, QoS class, `oom_score_adj`).
//! - [`env`] builds a container's environment (`envFrom`, `env`, `$(VAR)` expansion, the
//!   downward API, ConfigMap and Secret keys) and expands `command`/`args`.
//! - [`backoff`] is the kubelet's crash-loop and image-pull back-off.
//! - [`status`] turns observed container states into the pod's status (phase, conditions) and
//!   the `READY`, `STATUS` and `RESTARTS` columns of `kubectl get pods`.
//! - [`table`] prints kubectl-style tables, ages, `-o name`, `-o yaml` and `-o json`.
//! - [`run`] builds the pod `kubectl run --dry-run=client -o yaml` prints.
//! - [`store`] is the durable object store (one JSON file per object, written atomically).

#![warn(missing_docs)]

pub mod backoff;
pub mod env;
pub mod field;
pub mod manifest;
pub mod objects;
pub mod quantity;
pub mod run;
pub mod selector;
pub mod status;
pub mod store;
pub mod table;
pub mod validate;

pub use field::{FieldError, FieldErrors};
pub use manifest::{Object, parse};
pub use objects::Objects;

/// The Kubernetes API types this crate uses (k8s-openapi, API version 1.37).
pub use k8s_openapi;
