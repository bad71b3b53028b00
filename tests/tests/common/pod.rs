//! Helpers for pod and container tests: a daemon with busybox pulled, configs, waits, and
//! checks that nothing was left behind.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use corral_cri_api::v1::runtime_service_client::RuntimeServiceClient;
use corral_cri_api::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatus, ContainerStatusRequest,
    CreateContainerRequest, ImageSpec, KeyValue, PodSandboxConfig, PodSandboxMetadata,
    RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest,
};
use corral_tests::daemon::{DaemonOptions, TestDaemon};
use corral_tests::fixtures::{BuiltImage, ManifestFormat, busybox_image};
use corral_tests::registry::FakeRegistry;
use tonic::transport::Channel;

use super::{pull, serve_image};

pub type Runtime = RuntimeServiceClient<Channel>;

/// A daemon with busybox pulled as [`PodEnv::image`], and a log directory.
pub struct PodEnv {
    pub rt: Runtime,
    pub image: String,
    pub logs: tempfile::TempDir,
    pub d: TestDaemon,
    pub _fake: FakeRegistry,
}

pub fn busybox() -> Result<BuiltImage> {
    busybox_image()?
        .stop_signal("SIGTERM")
        .build(ManifestFormat::Oci)
}

pub async fn env() -> Result<PodEnv> {
    env_with(DaemonOptions::default()).await
}

pub async fn env_with(opts: DaemonOptions) -> Result<PodEnv> {
    let fake = FakeRegistry::start().await?;
    serve_image(&fake, "library/busybox", "1", &busybox()?);
    let d = TestDaemon::start_with(opts).await?;
    let image = format!("{}/library/busybox:1", fake.addr());
    pull(&mut d.images().await?, &image).await?;
    Ok(PodEnv {
        rt: d.runtime().await?,
        image,
        logs: tempfile::Builder::new().prefix("corral-logs-").tempdir()?,
        d,
        _fake: fake,
    })
}

impl PodEnv {
    pub fn pod_config(&self, name: &str) -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_owned(),
                namespace: "test".into(),
                uid: format!("{name}-uid"),
                attempt: 0,
            }),
            hostname: name.to_owned(),
            log_directory: self.logs.path().display().to_string(),
            ..Default::default()
        }
    }

    pub fn ctr_config(&self, name: &str, cmd: &[&str]) -> ContainerConfig {
        ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.to_owned(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: self.image.clone(),
                ..Default::default()
            }),
            command: cmd.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}.log"),
            envs: vec![KeyValue {
                key: "CORRAL_TEST".into(),
                value: "1".into(),
            }],
            ..Default::default()
        }
    }

    /// A container that allocates 200 MiB under a 32 MiB memory limit: it is OOM-killed.
    pub fn oom_hog_config(&self, name: &str) -> ContainerConfig {
        let mut config = self.ctr_config(
            name,
            &[
                "sh",
                "-c",
                "x=$(head -c 200m /dev/zero | tr '\\0' x 2>/dev/null); echo survived",
            ],
        );
        config.linux = Some(corral_cri_api::v1::LinuxContainerConfig {
            resources: Some(corral_cri_api::v1::LinuxContainerResources {
                memory_limit_in_bytes: 32 << 20,
                ..Default::default()
            }),
            ..Default::default()
        });
        config
    }

    pub async fn run_pod(&mut self, name: &str) -> Result<String> {
        let config = self.pod_config(name);
        self.run_pod_with(config).await
    }

    pub async fn run_pod_with(&mut self, config: PodSandboxConfig) -> Result<String> {
        Ok(self
            .rt
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await?
            .into_inner()
            .pod_sandbox_id)
    }

    pub async fn create(
        &mut self,
        pod: &str,
        pod_name: &str,
        config: ContainerConfig,
    ) -> Result<String, tonic::Status> {
        let sandbox_config = self.pod_config(pod_name);
        Ok(self
            .rt
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod.to_owned(),
                config: Some(config),
                sandbox_config: Some(sandbox_config),
            })
            .await?
            .into_inner()
            .container_id)
    }

    /// Creates and starts a container running `cmd`.
    pub async fn start(
        &mut self,
        pod: &str,
        pod_name: &str,
        name: &str,
        cmd: &[&str],
    ) -> Result<String> {
        let config = self.ctr_config(name, cmd);
        let id = self.create(pod, pod_name, config).await?;
        self.rt
            .start_container(StartContainerRequest {
                container_id: id.clone(),
            })
            .await?;
        Ok(id)
    }

    pub async fn status(&mut self, id: &str) -> Result<ContainerStatus> {
        self.rt
            .container_status(ContainerStatusRequest {
                container_id: id.to_owned(),
                verbose: false,
            })
            .await?
            .into_inner()
            .status
            .context("no status")
    }

    /// Waits until the container has exited and returns its status.
    pub async fn wait_exited(&mut self, id: &str, within: Duration) -> Result<ContainerStatus> {
        let until = Instant::now() + within;
        loop {
            let s = self.status(id).await?;
            if s.state == ContainerState::ContainerExited as i32 {
                return Ok(s);
            }
            if Instant::now() > until {
                bail!("container {id} still {:?} after {within:?}", s.state);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log_file(&self, name: &str) -> PathBuf {
        self.logs.path().join(format!("{name}.log"))
    }

    pub async fn remove_pod(&mut self, id: &str) -> Result<()> {
        self.rt
            .remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.to_owned(),
            })
            .await?;
        Ok(())
    }

    /// Asserts nothing of the daemon's pods is left: mounts under its directory, cgroups under
    /// its cgroup root, pod and container directories.
    pub fn assert_clean(&self) {
        let mounts = corral_tests::cleanup::mounts_under(self.d.dir());
        assert!(mounts.is_empty(), "mounts left: {mounts:?}");
        for ctrl in ["memory", "pids", "cpu"] {
            let dir = Path::new("/sys/fs/cgroup")
                .join(ctrl)
                .join(self.d.cgroup_root().trim_start_matches('/'));
            let children: Vec<_> = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.flatten()
                        .filter(|e| e.path().is_dir())
                        .map(|e| e.path())
                        .collect()
                })
                .unwrap_or_default();
            assert!(
                children.is_empty(),
                "cgroups left under {}: {children:?}",
                dir.display()
            );
        }
        for sub in ["pods", "containers"] {
            for base in [self.d.root(), self.d.state()] {
                let left: Vec<_> = std::fs::read_dir(base.join(sub))
                    .map(|rd| rd.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default();
                assert!(
                    left.is_empty(),
                    "left under {}: {left:?}",
                    base.join(sub).display()
                );
            }
        }
        self.assert_network_clean();
    }

    /// Waits (up to 5 s) for the bridge to have no ports. The built-in network leaves a
    /// stopped pod's veth to its namespace, which the kernel frees asynchronously (a work
    /// queue, after an RCU grace period) once the pin is gone.
    pub fn wait_for_veths_to_go(&self) {
        let net = self.d.net();
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !net.bridge_ports().is_empty() && std::time::Instant::now() < until {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Asserts no pod of this daemon holds a port on its bridge, an IP reservation or an
    /// iptables rule (other than the harness's own FORWARD rule and the built-in network's
    /// shared rules).
    pub fn assert_network_clean(&self) {
        let net = self.d.net();
        self.wait_for_veths_to_go();
        assert_eq!(
            net.bridge_ports(),
            Vec::<String>::new(),
            "veths left on {}",
            net.bridge
        );
        assert_eq!(
            self.d.ip_reservations(),
            Vec::<String>::new(),
            "IP reservations left"
        );
        let rules = iptables_rules_for(&net.subnet);
        assert!(rules.is_empty(), "iptables rules left: {rules:#?}");
    }
}

/// Parses CRI log lines into (stream, tag, text).
pub fn parse_log(text: &str) -> Vec<(String, String, String)> {
    text.lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let ts = parts.next().unwrap_or_default();
            assert!(
                ts.ends_with('Z') && ts.contains('T'),
                "bad timestamp in {l:?}"
            );
            let stream = parts.next().unwrap_or_default().to_owned();
            let tag = parts.next().unwrap_or_default().to_owned();
            (stream, tag, parts.next().unwrap_or_default().to_owned())
        })
        .collect()
}

/// Pids of the shims serving pods under `state` (found by their command line).
pub fn shim_pids(state: &Path) -> Vec<i32> {
    shim_pids_under(&state.join("pods"))
}

/// Pids of the shim processes whose pod directory is `dir` or under it (found by their
/// command line; the processes a shim forks without exec keep it; its spare, which shares its
/// memory, is left out).
pub fn shim_pids_under(dir: &Path) -> Vec<i32> {
    let needle = dir.display().to_string();
    let found = corral_tests::procs::all()
        .into_iter()
        .filter(|&p| {
            let cmdline = corral_tests::procs::cmdline(p);
            cmdline.contains("corral-shim") && cmdline.contains(&needle)
        })
        .collect();
    corral_tests::procs::without_spares(found)
        .into_iter()
        .map(|p| p as i32)
        .collect()
}

/// `iptables-save` lines (all tables) naming an address in `subnet` (a /24), apart from the
/// harness's FORWARD rule and the built-in network's rules shared by all pods of the bridge
/// (comment `corral-net:<bridge>`: installed once, kept like the bridge, removed with it when
/// the lease ends).
pub fn iptables_rules_for(subnet: &str) -> Vec<String> {
    let prefix = subnet
        .rsplit_once('.')
        .map_or(subnet, |(p, _)| p)
        .to_owned()
        + ".";
    let out = std::process::Command::new("iptables-save")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .filter(|l| l.contains(&prefix) && !l.contains("corral-test") && !l.contains("corral-net:"))
        .map(str::to_owned)
        .collect()
}

/// `config` with these namespace options.
pub fn with_pod_ns(
    mut config: PodSandboxConfig,
    ns: corral_cri_api::v1::NamespaceOption,
) -> PodSandboxConfig {
    use corral_cri_api::v1::{LinuxPodSandboxConfig, LinuxSandboxSecurityContext};
    config.linux = Some(LinuxPodSandboxConfig {
        security_context: Some(LinuxSandboxSecurityContext {
            namespace_options: Some(ns),
            ..Default::default()
        }),
        ..Default::default()
    });
    config
}

/// `config` with the host's network namespace (NamespaceMode NODE).
pub fn host_network(config: PodSandboxConfig) -> PodSandboxConfig {
    use corral_cri_api::v1::{NamespaceMode, NamespaceOption};
    let ns = NamespaceOption {
        network: NamespaceMode::Node as i32,
        ..Default::default()
    };
    with_pod_ns(config, ns)
}
