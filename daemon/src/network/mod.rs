//! Pod networking: which network pods join (a CNI config file, run through the plugins, or
//! the built-in default, done in process by [`builtin`]), whether it is ready, and attaching
//! and detaching a pod's network namespace.
//!
//! The config directory is read on every use, so a config added or changed later is picked up
//! without a restart. What an attachment needs for its DEL is returned as a [`NetworkRecord`],
//! which the pod subsystem persists next to the pod.

mod builtin;
mod capabilities;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use corral_cni::config::{Found, check_subnet, load_dir};
use corral_cni::{Attachment, NetworkList, Plugins};
use corral_cri_api::v1::PodSandboxConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::NetworkConfig;

pub use capabilities::parse_quantity;

/// The interface name pods get.
const POD_IFNAME: &str = "eth0";
/// The built-in network's name.
const DEFAULT_NAME: &str = "corral";
/// Format version of [`NetworkRecord`], which the pod records embed: it moves with theirs
/// (`pods::model::VERSION`, which checks the two agree at compile time).
pub const RECORD_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("pod network is not ready: {0}")]
    NotReady(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error(transparent)]
    Cni(#[from] corral_cni::Error),
    #[error("built-in network: {0}")]
    Builtin(String),
    #[error("built-in network: {0}")]
    Exhausted(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A pod's attachment to its network, as persisted (`<root>/pods/<id>/network.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub version: u32,
    /// Who attached the pod; records written before the built-in network was done in
    /// process have none: CNI (their `network` is the plugins' list, detached by them).
    #[serde(default)]
    pub kind: NetworkKind,
    /// What ADD ran with (DEL must run with the same): the CNI network configuration list,
    /// or the built-in network's [`builtin::Params`].
    pub network: Value,
    pub attachment: Attachment,
    /// The chain's result.
    pub result: Value,
    /// The pod's IPs, primary first.
    pub ips: Vec<IpAddr>,
    /// False once DEL has succeeded.
    pub attached: bool,
}

/// Which code attaches and detaches a pod.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkKind {
    /// The plugins of a network configuration list.
    #[default]
    Cni,
    /// corrald itself ([`builtin`]).
    Builtin,
}

/// The network pods join now.
#[derive(Debug, Clone, PartialEq)]
pub enum Chosen {
    /// A config from the config directory, run through its plugins.
    Cni(NetworkList),
    /// The built-in network.
    Builtin(builtin::Params),
}

impl Chosen {
    /// What Status shows as `cniconfig` (with `source`, the file, for a config).
    pub fn describe(&self) -> Value {
        match self {
            Chosen::Cni(list) => {
                let mut doc = list.to_json();
                doc["source"] = serde_json::json!(list.source);
                doc
            }
            Chosen::Builtin(params) => serde_json::json!({
                "name": params.name,
                "builtin": params,
                "source": null,
            }),
        }
    }
}

/// The pod network subsystem.
pub struct Network {
    cfg: NetworkConfig,
    plugins: Plugins,
    /// The built-in network's IP reservations (host-local's data directory layout).
    ipam_dir: PathBuf,
    /// Where the pod CIDR from UpdateRuntimeConfig is kept.
    cidr_file: PathBuf,
    /// The built-in network's subnets (the config's, or UpdateRuntimeConfig's).
    subnets: Mutex<Vec<String>>,
    builtin: builtin::Builtin,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl Network {
    /// `root` is the daemon's durable root: `<root>/cni/` holds the built-in network's IP
    /// reservations and the pod CIDR last set through UpdateRuntimeConfig.
    pub fn new(
        cfg: NetworkConfig,
        root: &Path,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> Network {
        let dir = root.join("cni");
        let cidr_file = dir.join("pod-cidrs");
        let saved = std::fs::read_to_string(&cidr_file).ok().and_then(|text| {
            let cidrs: Result<Vec<String>, String> =
                text.split_whitespace().map(check_subnet).collect();
            cidrs.ok().filter(|c| !c.is_empty())
        });
        Network {
            plugins: Plugins {
                dirs: cfg.plugin_dirs.clone(),
                timeout: Duration::from_secs(cfg.plugin_timeout_secs),
            },
            subnets: Mutex::new(saved.unwrap_or_else(|| cfg.pod_cidrs.clone())),
            ipam_dir: dir.join("networks"),
            cidr_file,
            cfg,
            builtin: builtin::Builtin::new(),
            metrics,
        }
    }

    /// The network pods join now: the first valid config in `conf_dir`, else the built-in one
    /// (when enabled). The error says why there is none.
    pub fn current(&self) -> Result<Chosen, String> {
        let dir = &self.cfg.conf_dir;
        match load_dir(dir) {
            Found::List(list) => Ok(Chosen::Cni(list)),
            Found::Invalid(e) => Err(format!("no valid network config in {}: {e}", dir.display())),
            Found::Nothing if self.cfg.builtin_default => Ok(Chosen::Builtin(builtin::Params {
                name: DEFAULT_NAME.into(),
                bridge: self.cfg.bridge.clone(),
                subnets: crate::sync::lock(&self.subnets).clone(),
                data_dir: self.ipam_dir.clone(),
            })),
            Found::Nothing => Err(format!(
                "no network config found in {} (and the built-in default is disabled)",
                dir.display()
            )),
        }
    }

    /// The current network, once each of its plugins is found (the built-in network needs
    /// none; its bandwidth plugin is looked for by the pods that ask for limits).
    pub fn ready(&self) -> Result<Chosen, String> {
        let chosen = self.current()?;
        if let Chosen::Cni(list) = &chosen {
            for kind in list.plugin_types() {
                self.plugins.find(kind).map_err(|e| e.to_string())?;
            }
        }
        Ok(chosen)
    }

    /// UpdateRuntimeConfig's pod CIDR (comma-separated for dual stack) becomes the built-in
    /// network's subnets, now and after restarts. An empty CIDR changes nothing.
    pub fn set_pod_cidr(&self, cidr: &str) -> Result<(), NetworkError> {
        if cidr.trim().is_empty() {
            return Ok(());
        }
        let subnets = cidr
            .split(',')
            .map(check_subnet)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                NetworkError::InvalidArgument(format!(
                    "runtime_config.network_config.pod_cidr: {e}"
                ))
            })?;
        let dir = self.cidr_file.parent().unwrap_or(Path::new("/"));
        std::fs::create_dir_all(dir).map_err(|source| NetworkError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        corral_fsutil::write_atomic(&self.cidr_file, subnets.join("\n").as_bytes(), 0o666)
            .map_err(|e| NetworkError::Io {
                path: self.cidr_file.clone(),
                source: e.source,
            })?;
        tracing::info!(?subnets, "pod CIDR set");
        *crate::sync::lock(&self.subnets) = subnets;
        Ok(())
    }

    /// Checks what the pod asks of its network before anything is created.
    pub fn check(&self, pod: &PodSandboxConfig) -> Result<(), NetworkError> {
        capabilities::cni_args(pod, "x")?;
        capabilities::runtime_config(pod)?;
        Ok(())
    }

    /// The record of an attachment about to be made: saved before ADD runs, so a crash in
    /// the middle still leads to DEL (which tolerates what ADD never made).
    pub fn intent(
        &self,
        chosen: &Chosen,
        id: &str,
        netns: &Path,
        pod: &PodSandboxConfig,
    ) -> Result<NetworkRecord, NetworkError> {
        let (kind, network) = match chosen {
            Chosen::Cni(list) => (NetworkKind::Cni, list.to_json()),
            Chosen::Builtin(params) => (
                NetworkKind::Builtin,
                serde_json::to_value(params).map_err(|e| NetworkError::Builtin(e.to_string()))?,
            ),
        };
        Ok(NetworkRecord {
            version: RECORD_VERSION,
            kind,
            network,
            attachment: Attachment {
                container_id: id.to_owned(),
                netns: netns.to_path_buf(),
                ifname: POD_IFNAME.into(),
                args: capabilities::cni_args(pod, id)?,
                runtime_config: capabilities::runtime_config(pod)?,
            },
            result: Value::Null,
            ips: Vec::new(),
            attached: true,
        })
    }

    /// Runs ADD for the record's attachment and fills in its result and IPs. A failed ADD
    /// has undone itself.
    pub async fn add(&self, rec: &mut NetworkRecord) -> Result<(), NetworkError> {
        if rec.kind == NetworkKind::Builtin {
            let started = std::time::Instant::now();
            let done = self.builtin.add(&self.plugins, rec).await;
            self.metrics
                .cni("ADD", done.is_ok(), started.elapsed().as_secs_f64());
            done?;
            tracing::debug!(pod = %rec.attachment.container_id, ips = ?rec.ips, elapsed = ?started.elapsed(), "built-in network ADD");
            return Ok(());
        }
        let list = NetworkList::from_json(&rec.network, Path::new("network.json"))?;
        let started = std::time::Instant::now();
        let result = corral_cni::add(&list, &self.plugins, &rec.attachment).await;
        self.metrics
            .cni("ADD", result.is_ok(), started.elapsed().as_secs_f64());
        let result = result?;
        rec.ips = corral_cni::result::pod_ips(&result, POD_IFNAME);
        tracing::debug!(pod = %rec.attachment.container_id, network = %list.name, ips = ?rec.ips, elapsed = ?started.elapsed(), "CNI ADD");
        rec.result = result;
        Ok(())
    }

    /// The part of ADD that needs no network namespace, done early when the network has one:
    /// the built-in network reserves the pod's addresses (in `rec.ips`). `rec` must already
    /// be recorded durably, so a crash after it leads to DEL. Nothing for CNI plugins.
    pub async fn reserve(&self, rec: &mut NetworkRecord) -> Result<(), NetworkError> {
        if rec.kind == NetworkKind::Builtin {
            return self.builtin.reserve(rec).await;
        }
        Ok(())
    }

    /// DEL for an attachment whose RunPodSandbox fails after ADD: as [`Network::detach`], but
    /// the built-in network deletes the pod's veth at once instead of leaving it to the
    /// namespace, so the failed call leaves nothing behind when it answers.
    pub async fn undo(&self, rec: &NetworkRecord) -> Result<(), NetworkError> {
        if rec.kind == NetworkKind::Builtin {
            return self.builtin.undo(&self.plugins, rec).await;
        }
        self.detach(rec).await
    }

    /// Runs DEL for an attachment (with the network config ADD used). Idempotent.
    pub async fn detach(&self, rec: &NetworkRecord) -> Result<(), NetworkError> {
        if rec.kind == NetworkKind::Builtin {
            let started = std::time::Instant::now();
            let done = self.builtin.del(&self.plugins, rec).await;
            self.metrics
                .cni("DEL", done.is_ok(), started.elapsed().as_secs_f64());
            done?;
            tracing::debug!(pod = %rec.attachment.container_id, elapsed = ?started.elapsed(), "built-in network DEL");
            return Ok(());
        }
        let list = NetworkList::from_json(&rec.network, Path::new("network.json"))?;
        let started = std::time::Instant::now();
        // No result when a crash came between the record and ADD's answer.
        let prev = (!rec.result.is_null()).then_some(&rec.result);
        let done = corral_cni::del(&list, &self.plugins, &rec.attachment, prev).await;
        self.metrics
            .cni("DEL", done.is_ok(), started.elapsed().as_secs_f64());
        done?;
        tracing::debug!(pod = %rec.attachment.container_id, elapsed = ?started.elapsed(), "CNI DEL");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(conf_dir: &Path, root: &Path, builtin: bool) -> Network {
        let cfg = NetworkConfig {
            conf_dir: conf_dir.to_path_buf(),
            builtin_default: builtin,
            plugin_dirs: vec![conf_dir.join("bin")],
            ..NetworkConfig::default()
        };
        Network::new(cfg, root, Default::default())
    }

    #[test]
    fn config_dir_wins_over_the_builtin_default_and_is_reread() {
        let d = tempfile::tempdir().unwrap();
        let n = network(d.path(), d.path(), true);
        // The built-in network needs no plugin.
        let Ok(Chosen::Builtin(p)) = n.ready() else {
            panic!("{:?}", n.ready())
        };
        assert_eq!(p.name, DEFAULT_NAME);
        std::fs::write(
            d.path().join("10-mine.conflist"),
            r#"{"cniVersion":"1.0.0","name":"mine","plugins":[{"type":"ptp"}]}"#,
        )
        .unwrap();
        let Ok(Chosen::Cni(list)) = n.current() else {
            panic!("{:?}", n.current())
        };
        assert_eq!(list.name, "mine");
        let e = n.ready().unwrap_err();
        assert!(e.contains("\"ptp\" not found"), "{e}");
        let off = network(&d.path().join("empty"), d.path(), false);
        assert!(off.current().unwrap_err().contains("disabled"));
    }

    #[test]
    fn records_without_a_kind_are_cni() {
        let rec: NetworkRecord = serde_json::from_value(serde_json::json!({
            "version": 1, "network": {}, "result": null, "ips": [], "attached": true,
            "attachment": { "container_id": "c", "netns": "/n", "ifname": "eth0",
                            "args": [], "runtime_config": {} },
        }))
        .unwrap();
        assert_eq!(rec.kind, NetworkKind::Cni);
        let text = serde_json::to_string(&NetworkRecord {
            kind: NetworkKind::Builtin,
            ..rec
        })
        .unwrap();
        assert!(text.contains(r#""kind":"builtin""#), "{text}");
    }

    #[test]
    fn pod_cidr_is_checked_and_kept() {
        let d = tempfile::tempdir().unwrap();
        let n = network(d.path(), d.path(), true);
        let e = n.set_pod_cidr("10.0.0.0/33").unwrap_err().to_string();
        assert!(e.contains("pod_cidr"), "{e}");
        n.set_pod_cidr("10.9.0.0/16,fd09::/64").unwrap();
        let again = network(d.path(), d.path(), true);
        let Ok(Chosen::Builtin(p)) = again.current() else {
            panic!("{:?}", again.current())
        };
        assert_eq!(p.subnets, ["10.9.0.0/16", "fd09::/64"]);
    }
}
