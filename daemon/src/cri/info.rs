//! The verbose `Status` info beyond the config and CNI config: versions, the cgroup layout,
//! the CNI state and feature flags, each a JSON document under its key (as containerd's
//! `info` map holds JSON strings). `corralctl info` prints them.

use std::collections::HashMap;

use corral_cri_api::v1::RuntimeFeatures;
use serde_json::json;

use crate::config::Config;
use crate::network::Chosen;

/// The CRIU behind checkpoints: which program, and whether `criu check` passes.
pub struct CriuInfo<'a> {
    pub program: &'a std::path::Path,
    pub usable: bool,
}

/// `versions`, `cgroups`, `cni`, `featureFlags`.
pub fn verbose_info(
    config: &Config,
    network: &Result<Chosen, String>,
    user_namespaces: bool,
    criu: CriuInfo<'_>,
) -> HashMap<String, String> {
    let versions = json!({
        "corrald": env!("CARGO_PKG_VERSION"),
        "criApi": "v1 (cri-api v0.36)",
        "shim": config
            .runtime
            .shim_path
            .as_ref()
            .map_or_else(|| "corral-shim beside corrald".to_owned(), |p| p.display().to_string()),
        "criu": criu.program,
    });
    let cgroups = match corral_runtime::cgroups::layout() {
        Ok(l) => json!({
            "driver": "cgroupfs",
            "mode": l.mode,
            "favordynmods": l.favordynmods,
            "root": config.runtime.cgroup_root,
            "hierarchies": l
                .hierarchies
                .iter()
                .map(|(path, what)| json!({ "mountPoint": path, "controllers": what }))
                .collect::<Vec<_>>(),
        }),
        Err(e) => {
            json!({ "driver": "cgroupfs", "root": config.runtime.cgroup_root, "error": e.to_string() })
        }
    };
    let cni = match network {
        Ok(Chosen::Cni(list)) => json!({
            "ready": true,
            "network": list.name,
            "source": list.source.as_ref().map_or_else(|| "a config without a file".to_owned(), |p| p.display().to_string()),
            "confDir": config.network.conf_dir,
            "pluginDirs": config.network.plugin_dirs,
        }),
        Ok(Chosen::Builtin(params)) => json!({
            "ready": true,
            "network": params.name,
            "source": "built-in",
            "bridge": params.bridge,
            "subnets": params.subnets,
            "confDir": config.network.conf_dir,
            "pluginDirs": config.network.plugin_dirs,
        }),
        Err(why) => json!({
            "ready": false,
            "reason": why,
            "confDir": config.network.conf_dir,
            "pluginDirs": config.network.plugin_dirs,
        }),
    };
    let features = json!({
        "containerEvents": true,
        "listStreaming": true,
        "execAttachPortForward": ["websocket", "spdy/3.1"],
        "metrics": config.metrics.address,
        "logLevelReload": "SIGHUP",
        // CRIU passes `criu check` (pods on an OCI runtime handler can then be checkpointed).
        "checkpoint": criu.usable,
        "stats": true,
        "seccomp": ["RuntimeDefault", "Unconfined", "Localhost"],
        "apparmor": crate::spec::lsm::LsmHost::HOST.apparmor(),
        "selinux": crate::spec::lsm::LsmHost::HOST.selinux(),
        "recursiveReadOnlyMounts": corral_runtime::has_mount_setattr(),
        "userNamespaces": user_namespaces,
    });
    [
        ("versions", versions),
        ("cgroups", cgroups),
        ("cni", cni),
        ("featureFlags", features),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_string()))
    .collect()
}

/// `Status.features`: what Corral itself supports, independent of handlers.
pub fn runtime_features() -> RuntimeFeatures {
    RuntimeFeatures {
        supplemental_groups_policy: true,
        user_namespaces_host_network: false,
    }
}
