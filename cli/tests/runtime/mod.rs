//! Pods, containers, logs and exec against the fake runtime.

mod lifecycle;
mod listing;
mod logs;
mod streaming;

use crate::common::Server;

/// crictl's sample `pod-config.json`.
pub const POD_CONFIG: &str = r#"{"metadata":{"name":"nginx-sandbox","namespace":"default","attempt":1,"uid":"hdishd83djaidwnduwk28bcsb"},"log_directory":"/tmp","linux":{}}"#;

/// crictl's sample `container-config.json`.
pub const CONTAINER_CONFIG: &str = r#"{"metadata":{"name":"busybox"},"image":{"image":"busybox"},"command":["top"],"log_path":"busybox.0.log","linux":{}}"#;

/// Writes both sample configs and returns (container config, pod config) paths.
pub fn sample_configs(server: &Server) -> (String, String) {
    (
        crate::common::write_file(server, "container-config.json", CONTAINER_CONFIG),
        crate::common::write_file(server, "pod-config.json", POD_CONFIG),
    )
}
