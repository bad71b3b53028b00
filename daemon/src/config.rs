//! corrald configuration: a TOML file, overridden by command-line flags.
//!
//! Every field has a built-in default, so `corrald` runs with no file at all. Unknown keys are
//! an error naming the key, so a typo never silently falls back to a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Default location of the config file (read only when it exists).
pub const DEFAULT_CONFIG_FILE: &str = "/etc/corral/corrald.toml";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Durable state: images, content, snapshots, records.
    pub root: PathBuf,
    /// Volatile state: lock file, later shim sockets and exit files.
    pub state: PathBuf,
    pub grpc: GrpcConfig,
    pub images: ImagesConfig,
    pub runtime: RuntimeConfig,
    pub network: NetworkConfig,
    pub streaming: StreamingConfig,
    pub events: EventsConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub kubelet: KubeletSection,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct KubeletSection {
    /// The node's name for pods run from manifests (`corralctl apply`); the host name when
    /// unset.
    pub node_name: Option<String>,
    /// The node's labels, which a pod's `nodeSelector` must match (`kubernetes.io/hostname`,
    /// `kubernetes.io/os` and `kubernetes.io/arch` are always there).
    pub node_labels: std::collections::BTreeMap<String, String>,
    /// The node's addresses (`status.hostIPs`; the IPs of host-network pods), at most one per
    /// family, like the kubelet's `--node-ip`; the default route's interface addresses when
    /// empty.
    pub node_ips: Vec<std::net::IpAddr>,
    /// A container log this large is rotated (a Kubernetes quantity: `10Mi`), as the kubelet's
    /// `containerLogMaxSize`.
    pub container_log_max_size: String,
    /// Log files kept per container, the current one included (kubelet's
    /// `containerLogMaxFiles`; at least 2).
    pub container_log_max_files: usize,
    /// How often log sizes are checked, in seconds (kubelet's `containerLogMonitorInterval`).
    pub container_log_monitor_interval_secs: u64,
}

impl Default for KubeletSection {
    fn default() -> Self {
        KubeletSection {
            node_name: None,
            node_labels: Default::default(),
            node_ips: Vec::new(),
            container_log_max_size: "10Mi".into(),
            container_log_max_files: 5,
            container_log_monitor_interval_secs: 10,
        }
    }
}

impl KubeletSection {
    /// The log rotation policy these settings describe.
    pub fn log_policy(&self) -> Result<corral_kubelet::logs::LogPolicy, ConfigError> {
        let bad =
            |why: String| ConfigError::Invalid(format!("kubelet.container_log_max_size: {why}"));
        let size = corral_kube::quantity::Quantity::parse(&self.container_log_max_size)
            .map_err(|e| bad(e.to_string()))?
            .value();
        let max_size = u64::try_from(size).ok().filter(|&n| n > 0).ok_or_else(|| {
            bad(format!(
                "{:?} is not a positive size",
                self.container_log_max_size
            ))
        })?;
        if self.container_log_max_files < 2 {
            return Err(ConfigError::Invalid(
                "kubelet.container_log_max_files must be at least 2".into(),
            ));
        }
        if self.container_log_monitor_interval_secs == 0 {
            return Err(ConfigError::Invalid(
                "kubelet.container_log_monitor_interval_secs must be at least 1".into(),
            ));
        }
        Ok(corral_kubelet::logs::LogPolicy {
            max_size,
            max_files: self.container_log_max_files,
            interval: std::time::Duration::from_secs(self.container_log_monitor_interval_secs),
        })
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve Prometheus metrics at `http://<address>/metrics`, e.g. `127.0.0.1:9090`; a
    /// loopback address only. Off when unset.
    pub address: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Events a GetContainerEvents subscriber may fall behind before it is dropped (with
    /// RESOURCE_EXHAUSTED); the daemon never waits for a subscriber.
    pub subscriber_buffer: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            subscriber_buffer: 1000,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StreamingConfig {
    /// Address of the exec/attach/port-forward server; the URLs handed out carry it, so bind a
    /// specific address (loopback by default) rather than `0.0.0.0`.
    pub address: String,
    /// Its port; 0 picks a free one at start.
    pub port: u16,
    /// Serve HTTPS with this PEM certificate chain ...
    pub tls_cert: Option<PathBuf>,
    /// ... and this PEM key.
    pub tls_key: Option<PathBuf>,
    /// How long a URL from Exec, Attach or PortForward stays valid, in seconds.
    pub token_ttl_secs: u64,
    /// Most URLs outstanding at once.
    pub max_tokens: usize,
}

impl Default for StreamingConfig {
    fn default() -> Self {
        StreamingConfig {
            address: "127.0.0.1".into(),
            port: 0,
            tls_cert: None,
            tls_key: None,
            token_ttl_secs: 60,
            max_tokens: 1000,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// CNI network configs (`*.conflist`, `*.conf`, `*.json`); the first valid one by name is
    /// used, re-read on every pod.
    pub conf_dir: PathBuf,
    /// Where CNI plugin binaries are looked for, in order.
    pub plugin_dirs: Vec<PathBuf>,
    /// Time limit of one plugin call, in seconds.
    pub plugin_timeout_secs: u64,
    /// With no config in `conf_dir`, use the built-in network (done by corrald over netlink:
    /// bridge, veth, host-local-compatible IP reservations, masquerade, host ports; the
    /// bandwidth plugin for pods with bandwidth limits). When false, pods cannot start until a
    /// config exists.
    pub builtin_default: bool,
    /// The built-in network's bridge.
    pub bridge: String,
    /// The built-in network's pod subnets, one per address family. A pod CIDR set through
    /// UpdateRuntimeConfig replaces them.
    pub pod_cidrs: Vec<String>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            conf_dir: "/etc/cni/net.d".into(),
            plugin_dirs: corral_cni::DEFAULT_PLUGIN_DIRS.map(PathBuf::from).to_vec(),
            plugin_timeout_secs: 60,
            builtin_default: true,
            bridge: "corral0".into(),
            pod_cidrs: vec!["10.86.0.0/16".into()],
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RuntimeConfig {
    /// The `corral-shim` program; by default the one beside `corrald`.
    pub shim_path: Option<PathBuf>,
    /// Parent cgroup (cgroupfs path) of pods whose config names none.
    pub cgroup_root: String,
    /// CDI spec directories, lowest priority first; read again for every container that
    /// names a CDI device.
    pub cdi_spec_dirs: Vec<PathBuf>,
    /// The CRIU program for checkpoints and restores (an absolute path). Unset:
    /// `/usr/local/lib/corral/criu` (what `scripts/install-deps.sh` builds) when it exists,
    /// else `criu` found through `PATH`. See [`RuntimeConfig::criu`].
    pub criu_path: Option<PathBuf>,
    /// Runtime handlers besides the built-in one (RuntimeClass handlers): each runs the
    /// containers of the pods that name it through an OCI runtime's command line. (Last: a
    /// table of tables.)
    pub handlers: BTreeMap<String, HandlerConfig>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            shim_path: None,
            cgroup_root: "/corral".into(),
            cdi_spec_dirs: corral_cdi::DEFAULT_SPEC_DIRS.map(PathBuf::from).to_vec(),
            criu_path: None,
            handlers: BTreeMap::new(),
        }
    }
}

impl RuntimeConfig {
    /// The CRIU program to run: `criu_path`, else the default described there.
    pub fn criu(&self) -> PathBuf {
        crate::checkpoint::criu::resolve(self.criu_path.as_deref())
    }
}

/// `[runtime.handlers.<name>]`: an OCI runtime with runc's command line (runc, crun, runsc).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HandlerConfig {
    /// The runtime's program (absolute).
    pub path: PathBuf,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    /// The CRI socket.
    pub socket: PathBuf,
    /// Permission bits of the socket file.
    pub socket_mode: u32,
    /// Group owning the socket (numeric gid), when set.
    pub socket_gid: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ImagesConfig {
    /// Directory of `<host>/hosts.toml` files (containerd's `config_path` layout).
    pub registry_config_path: Option<PathBuf>,
    /// Docker-style `config.json` with static registry credentials.
    pub credentials_file: Option<PathBuf>,
    /// Layers downloaded and unpacked at once, across all pulls.
    pub max_concurrent_layers: usize,
    /// Largest manifest accepted, in bytes.
    pub max_manifest_bytes: u64,
    /// Largest image config accepted, in bytes.
    pub max_config_bytes: u64,
    /// Largest uncompressed layer accepted, in bytes.
    pub max_layer_bytes: u64,
    /// Images reported as pinned (kubelet never garbage-collects them).
    pub pinned_images: Vec<String>,
    /// A layer download slower than this on average over a window fails (UNAVAILABLE) instead
    /// of hanging.
    pub min_pull_rate_bytes_per_sec: u64,
    /// The window, in seconds, over which that rate is measured.
    pub pull_rate_window_secs: u64,
    /// Layers a failed or cancelled pull had completed are kept this long, in seconds, so a
    /// retry does not fetch them again; then garbage-collected unless an image uses them.
    /// 0: removed at once.
    pub failed_pull_retention_secs: u64,
    /// Each unpacked layer's files are written to the disk (`syncfs`) before the layer is
    /// recorded, so a power cut cannot leave a recorded layer of empty files. `false` makes
    /// pulls faster and flushes nothing of other processes' writes on that file system, without
    /// that guarantee (containerd's `image_pull_with_sync_fs`, which defaults to off).
    pub sync_unpacked_layers: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `corrald=debug,info`.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            root: "/var/lib/corral".into(),
            state: "/run/corral".into(),
            grpc: GrpcConfig::default(),
            images: ImagesConfig::default(),
            runtime: RuntimeConfig::default(),
            network: NetworkConfig::default(),
            streaming: StreamingConfig::default(),
            events: EventsConfig::default(),
            metrics: MetricsConfig::default(),
            log: LogConfig::default(),
            kubelet: KubeletSection::default(),
        }
    }
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            socket: "/run/corral/corral.sock".into(),
            socket_mode: 0o660,
            socket_gid: None,
        }
    }
}

impl Default for ImagesConfig {
    fn default() -> Self {
        ImagesConfig {
            registry_config_path: Some("/etc/corral/certs.d".into()),
            credentials_file: None,
            max_concurrent_layers: 6,
            max_manifest_bytes: 4 << 20,
            max_config_bytes: 16 << 20,
            max_layer_bytes: 64 << 30,
            pinned_images: Vec::new(),
            min_pull_rate_bytes_per_sec: 1024,
            pull_rate_window_secs: 30,
            failed_pull_retention_secs: 3600,
            sync_unpacked_layers: true,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

/// A config file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

impl Config {
    /// Reads `path`; `None` reads the default file when it exists, else uses defaults.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let (path, required) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config::default());
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values a parser cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.root.is_absolute() || !self.state.is_absolute() || !self.grpc.socket.is_absolute()
        {
            return Err(ConfigError::Invalid(
                "root, state and grpc.socket must be absolute paths".into(),
            ));
        }
        if self
            .runtime
            .criu_path
            .as_ref()
            .is_some_and(|p| !p.is_absolute())
        {
            return Err(ConfigError::Invalid(
                "runtime.criu_path must be an absolute path".into(),
            ));
        }
        if self.grpc.socket_mode > 0o777 {
            return Err(ConfigError::Invalid(format!(
                "grpc.socket_mode {:o} is not a permission mode",
                self.grpc.socket_mode
            )));
        }
        if self.log.format != "text" && self.log.format != "json" {
            return Err(ConfigError::Invalid(format!(
                "log.format {:?}: use \"text\" or \"json\"",
                self.log.format
            )));
        }
        if self.images.pull_rate_window_secs == 0 {
            return Err(ConfigError::Invalid(
                "images.pull_rate_window_secs must be at least 1".into(),
            ));
        }
        if self.images.max_concurrent_layers == 0 {
            return Err(ConfigError::Invalid(
                "images.max_concurrent_layers must be at least 1".into(),
            ));
        }
        for (name, handler) in &self.runtime.handlers {
            let name_ok = !name.is_empty()
                && name.len() <= 63
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                })
                && name != crate::handlers::BUILTIN;
            if !name_ok {
                return Err(ConfigError::Invalid(format!(
                    "runtime.handlers.{name:?}: a handler name is 1 to 63 lowercase letters, digits, '-' or '.', and not {:?} (the built-in runtime's)",
                    crate::handlers::BUILTIN
                )));
            }
            if !handler.path.is_absolute() {
                return Err(ConfigError::Invalid(format!(
                    "runtime.handlers.{name}.path {:?} must be an absolute path",
                    handler.path
                )));
            }
        }
        let net = &self.network;
        if net.plugin_timeout_secs == 0 {
            return Err(ConfigError::Invalid(
                "network.plugin_timeout_secs must be at least 1".into(),
            ));
        }
        let bridge_ok = !net.bridge.is_empty()
            && net.bridge.len() < 16
            && net
                .bridge
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !bridge_ok {
            return Err(ConfigError::Invalid(format!(
                "network.bridge {:?} is not an interface name (1 to 15 letters, digits, '-', '_', '.')",
                net.bridge
            )));
        }
        let st = &self.streaming;
        if st.address.parse::<std::net::IpAddr>().is_err() {
            return Err(ConfigError::Invalid(format!(
                "streaming.address {:?} is not an IP address",
                st.address
            )));
        }
        if st.tls_cert.is_some() != st.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "streaming.tls_cert and streaming.tls_key go together".into(),
            ));
        }
        if st.token_ttl_secs == 0 || st.max_tokens == 0 {
            return Err(ConfigError::Invalid(
                "streaming.token_ttl_secs and streaming.max_tokens must be at least 1".into(),
            ));
        }
        if let Some(addr) = &self.metrics.address {
            match addr.parse::<std::net::SocketAddr>() {
                Ok(a) if a.ip().is_loopback() => {}
                Ok(_) => {
                    return Err(ConfigError::Invalid(format!(
                        "metrics.address {addr:?}: only a loopback address (127.0.0.1 or [::1]) may serve metrics"
                    )));
                }
                Err(_) => {
                    return Err(ConfigError::Invalid(format!(
                        "metrics.address {addr:?} is not an address:port"
                    )));
                }
            }
        }
        if self.events.subscriber_buffer == 0 {
            return Err(ConfigError::Invalid(
                "events.subscriber_buffer must be at least 1".into(),
            ));
        }
        if net.pod_cidrs.is_empty() {
            return Err(ConfigError::Invalid("network.pod_cidrs is empty".into()));
        }
        for cidr in &net.pod_cidrs {
            corral_cni::config::check_subnet(cidr)
                .map_err(|e| ConfigError::Invalid(format!("network.pod_cidrs: {e}")))?;
        }
        self.kubelet.log_policy()?;
        let ips = &self.kubelet.node_ips;
        if let Some(ip) = ips
            .iter()
            .find(|ip| ip.is_unspecified() || ip.is_multicast())
        {
            return Err(ConfigError::Invalid(format!(
                "kubelet.node_ips: {ip} is not a node address"
            )));
        }
        let v4 = ips.iter().filter(|ip| ip.is_ipv4()).count();
        if v4 > 1 || ips.len() - v4 > 1 {
            return Err(ConfigError::Invalid(
                "kubelet.node_ips: at most one IPv4 and one IPv6 address".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Config::load` of a file holding `text`.
    fn load_text(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, text).expect("write");
        Config::load(Some(&p))
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = load_text("[grpc]\nsockett = \"/x\"\n").expect_err("unknown key");
        assert!(e.to_string().contains("sockett"), "{e}");
    }

    #[test]
    fn partial_file_keeps_defaults() {
        let c = load_text("root = \"/srv/corral\"\n[images]\nmax_concurrent_layers = 2\n")
            .expect("load");
        assert_eq!(c.root, PathBuf::from("/srv/corral"));
        assert_eq!(c.images.max_concurrent_layers, 2);
        assert_eq!(c.grpc.socket, PathBuf::from("/run/corral/corral.sock"));
        assert!(
            c.images.sync_unpacked_layers,
            "layers are synced unless turned off"
        );
    }

    #[test]
    fn layer_syncing_can_be_turned_off() {
        let c = load_text("[images]\nsync_unpacked_layers = false\n").expect("load");
        assert!(!c.images.sync_unpacked_layers);
    }

    #[test]
    fn metrics_serve_on_loopback_only() {
        let with = |addr: &str| Config {
            metrics: MetricsConfig {
                address: Some(addr.into()),
            },
            ..Config::default()
        };
        assert!(with("127.0.0.1:9090").validate().is_ok());
        assert!(with("[::1]:0").validate().is_ok());
        let e = with("0.0.0.0:9090").validate().unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
        assert!(with("localhost").validate().is_err());
    }

    #[test]
    fn node_ips_are_one_per_family_and_real_addresses() {
        let with = |ips: &[&str]| Config {
            kubelet: KubeletSection {
                node_ips: ips.iter().filter_map(|s| s.parse().ok()).collect(),
                ..KubeletSection::default()
            },
            ..Config::default()
        };
        assert!(with(&[]).validate().is_ok());
        assert!(with(&["192.0.2.2", "fd00::2"]).validate().is_ok());
        let e = with(&["192.0.2.2", "192.0.2.3"]).validate().unwrap_err();
        assert!(e.to_string().contains("one IPv4"), "{e}");
        let e = with(&["0.0.0.0"]).validate().unwrap_err();
        assert!(e.to_string().contains("kubelet.node_ips: 0.0.0.0"), "{e}");
    }

    #[test]
    fn relative_paths_are_refused() {
        let c = Config {
            root: "relative".into(),
            ..Config::default()
        };
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.runtime.criu_path = Some("criu".into());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("runtime.criu_path"), "{err}");
        c.runtime.criu_path = Some("/opt/criu/criu".into());
        c.validate().unwrap();
        assert_eq!(c.runtime.criu(), PathBuf::from("/opt/criu/criu"));
    }
}
