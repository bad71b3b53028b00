//! The Container Device Interface (CDI, <https://github.com/cncf-tags/container-device-interface>):
//! vendors describe devices in spec files (`/etc/cdi`, `/var/run/cdi`; JSON or YAML), a client
//! names them as `vendor.com/class=name`, and the runtime applies each device's container edits
//! (device nodes, mounts, environment, extra groups, hooks) to the container's OCI spec.
//!
//! [`Registry::load`] reads the spec directories (the daemon re-reads them for every request
//! that names a device, so a new or changed spec needs no restart); [`Registry::resolve`] turns
//! names into [`Edits`]; [`Edits::apply`] changes an OCI spec.
//!
//! Written here rather than taken from the `container-device-interface` crate: that crate
//! brings about 400 dependencies into the daemon (an HTTP client, a JSON-schema engine, a CLI
//! parser) for what is a few serde structures and a name lookup.

mod apply;
mod name;
mod registry;
mod spec;

pub use apply::Edits;
pub use name::QualifiedName;
pub use registry::Registry;
pub use spec::{ContainerEdits, DeviceNode, Hook, Mount, Spec};

/// Annotation keys with this prefix name CDI devices (comma-separated), as the kubelet's
/// device plugins and DRA drivers write them.
pub const ANNOTATION_PREFIX: &str = "cdi.k8s.io/";

/// The spec directories when none are configured, lowest priority first.
pub const DEFAULT_SPEC_DIRS: [&str; 2] = ["/etc/cdi", "/var/run/cdi"];

/// Why a device could not be resolved or applied.
#[derive(Debug, thiserror::Error)]
pub enum CdiError {
    #[error("{0:?} is not a qualified CDI device name (vendor.com/class=name)")]
    BadName(String),
    #[error("unknown CDI device {name:?}: no spec file in {dirs} has vendor {vendor:?}")]
    UnknownVendor {
        name: String,
        vendor: String,
        dirs: String,
    },
    #[error(
        "unknown CDI device {name:?}: vendor {vendor:?} has no class {class:?} (its classes: {known})"
    )]
    UnknownClass {
        name: String,
        vendor: String,
        class: String,
        known: String,
    },
    #[error("unknown CDI device {name:?}: {kind} has no device {device:?} (its devices: {known})")]
    UnknownDevice {
        name: String,
        kind: String,
        device: String,
        known: String,
    },
    #[error("CDI device {name:?} is defined twice with the same priority: {first} and {second}")]
    Conflict {
        name: String,
        first: String,
        second: String,
    },
    #[error("CDI device {name:?}: {why}")]
    Invalid { name: String, why: String },
}
