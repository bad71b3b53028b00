//! A corrald under test: its own temporary root, state directory, socket and registry
//! configuration, started as a real process and driven over its socket with the real client.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use corral_cri_api::v1::image_service_client::ImageServiceClient;
use corral_cri_api::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

/// Path of the corrald binary: `$CORRALD_BIN`, else the workspace's debug build.
pub fn corrald_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CORRALD_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug/corrald")
}

/// Options for a test daemon.
#[derive(Default, Clone)]
pub struct DaemonOptions {
    /// Extra lines of TOML for the config file.
    pub extra_config: String,
    /// Environment for the daemon process.
    pub env: Vec<(String, String)>,
    /// Log filter; `debug` when unset.
    pub log_level: Option<String>,
    /// Log format; `text` when unset.
    pub log_format: Option<String>,
    /// Extra lines of TOML for the `[network]` table (which already sets `conf_dir`, `bridge`
    /// and `pod_cidrs` to this daemon's own).
    pub network_config: String,
    /// Put the root directory on a tmpfs of this many MiB (a disk that fills up).
    pub root_tmpfs_mib: Option<u64>,
    /// Extra lines of TOML for the `[runtime]` table (which already sets `cgroup_root`).
    pub runtime_config: String,
    /// Put the state directory on a tmpfs of this many MiB.
    pub state_tmpfs_mib: Option<u64>,
    /// Run the daemon (and so its shims and runtimes) in a mount namespace of its own without
    /// the cgroup v2 mount of a hybrid host (`/sys/fs/cgroup/unified`): the same v1
    /// hierarchies, seen as a legacy host. For runtimes that refuse hybrid hosts (crun 1.8).
    /// The namespace is held by a process of its own, so a restarted daemon finds the mounts
    /// of the one before (and its shims) there.
    pub hide_cgroup_v2: bool,
    /// A shell command run, as root, in a mount namespace of the daemon's own before it starts
    /// (held the same way as [`hide_cgroup_v2`](Self::hide_cgroup_v2)'s): mounts the host
    /// should not keep.
    pub mount_setup: Option<String>,
}

/// A running daemon; stopped (SIGTERM, then SIGKILL) and its directories removed on drop.
pub struct TestDaemon {
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
    opts: DaemonOptions,
    cgroup_root: String,
    net: crate::netlease::NetLease,
    /// Holds the mount namespace of [`DaemonOptions::hide_cgroup_v2`] and
    /// [`DaemonOptions::mount_setup`].
    mount_holder: Option<std::process::Child>,
}

/// A cgroup parent unique to this test daemon, so tests never meet each other's cgroups.
fn unique_cgroup_root() -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("/corral-test-{}-{n}", std::process::id())
}

impl TestDaemon {
    pub async fn start() -> Result<TestDaemon> {
        TestDaemon::start_with(DaemonOptions::default()).await
    }

    pub async fn start_with(opts: DaemonOptions) -> Result<TestDaemon> {
        let dir = tempfile::Builder::new().prefix("corral-test-").tempdir()?;
        // Searchable by others, as a pod's root in a user namespace must reach the rootfs.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )?;
        std::fs::create_dir_all(dir.path().join("hosts"))?;
        for (name, size) in [
            ("root", opts.root_tmpfs_mib),
            ("state", opts.state_tmpfs_mib),
        ] {
            let Some(mib) = size else { continue };
            // Unmounted with the rest by `cleanup::pods` when the daemon is dropped.
            let path = dir.path().join(name);
            std::fs::create_dir(&path)?;
            crate::cleanup::mount_tmpfs(&path, &format!("size={mib}m,mode=0700"))?;
        }
        let mut d = TestDaemon {
            dir,
            child: None,
            opts,
            cgroup_root: unique_cgroup_root(),
            net: crate::netlease::NetLease::acquire()?,
            mount_holder: None,
        };
        d.spawn().await?;
        Ok(d)
    }

    /// This daemon's bridge and pod subnet (for the built-in network).
    pub fn net(&self) -> &crate::netlease::NetLease {
        &self.net
    }

    /// The CNI config directory (empty at first: the built-in network is used).
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.dir().join("net.d")
    }

    /// host-local's reservations under `<root>/cni/networks/<network>/` (one file per leased
    /// IP), for the built-in network and test configs that keep theirs there too.
    pub fn ip_reservations(&self) -> Vec<String> {
        let base = self.root().join("cni/networks");
        list_names(&base)
            .into_iter()
            .flat_map(|net| list_names(&base.join(&net)))
            .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
            .collect()
    }

    /// The parent cgroup of this daemon's pods (cgroupfs path).
    pub fn cgroup_root(&self) -> &str {
        &self.cgroup_root
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn root(&self) -> PathBuf {
        self.dir().join("root")
    }
    pub fn state(&self) -> PathBuf {
        self.dir().join("state")
    }
    pub fn socket(&self) -> PathBuf {
        self.dir().join("corral.sock")
    }
    /// The registry config directory (`<host>/hosts.toml` files).
    pub fn hosts_dir(&self) -> PathBuf {
        self.dir().join("hosts")
    }
    pub fn config_file(&self) -> PathBuf {
        self.dir().join("corrald.toml")
    }
    pub fn log_file(&self) -> PathBuf {
        self.dir().join("corrald.log")
    }
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Writes `<hosts>/<registry>/hosts.toml`.
    pub fn write_hosts(&self, registry: &str, toml: &str) -> Result<()> {
        let dir = self.hosts_dir().join(registry);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("hosts.toml"), toml)?;
        Ok(())
    }

    /// Routes pulls of `registry` to a plain-HTTP mirror at `mirror` (`127.0.0.1:port`).
    pub fn mirror(&self, registry: &str, mirror: &str) -> Result<()> {
        self.write_hosts(
            registry,
            &format!("[host.\"http://{mirror}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"),
        )
    }

    fn write_config(&self) -> Result<()> {
        let config = format!(
            "root = {:?}\nstate = {:?}\n[grpc]\nsocket = {:?}\n[images]\nregistry_config_path = {:?}\n{}\n[runtime]\ncgroup_root = {:?}\n{}\n[network]\nconf_dir = {:?}\nbridge = {:?}\npod_cidrs = [{:?}]\n{}\n[log]\nlevel = {:?}\nformat = {:?}\n",
            self.root(),
            self.state(),
            self.socket(),
            self.hosts_dir(),
            self.opts.extra_config,
            self.cgroup_root,
            self.opts.runtime_config,
            self.cni_conf_dir(),
            self.net.bridge,
            self.net.subnet,
            self.opts.network_config,
            self.opts.log_level.as_deref().unwrap_or("debug"),
            self.opts.log_format.as_deref().unwrap_or("text"),
        );
        std::fs::write(self.config_file(), config)?;
        Ok(())
    }

    async fn spawn(&mut self) -> Result<()> {
        self.write_config()?;
        let bin = corrald_bin();
        if !bin.is_file() {
            bail!(
                "{} is missing: build it first (`cargo build --bins`, or `make test`)",
                bin.display()
            );
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file())?;
        let mut command = if self.opts.hide_cgroup_v2 || self.opts.mount_setup.is_some() {
            let holder = self.mount_holder().await?;
            let mut c = std::process::Command::new("nsenter");
            c.arg(format!("--mount=/proc/{holder}/ns/mnt"))
                .arg("--")
                .arg(&bin);
            c
        } else {
            std::process::Command::new(&bin)
        };
        let child = command
            .arg("--config")
            .arg(self.config_file())
            .envs(self.opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Some(c) = self.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                self.child = None;
                bail!(
                    "corrald exited with {status} during start-up:\n{}",
                    self.log()
                );
            }
            if self.socket().exists()
                && let Ok(ch) = corral_cri_api::connect(self.socket()).await
            {
                let mut rt = RuntimeServiceClient::new(ch);
                if rt
                    .version(corral_cri_api::v1::VersionRequest::default())
                    .await
                    .is_ok()
                {
                    return Ok(());
                }
            }
            if started.elapsed() > Duration::from_secs(20) {
                bail!(
                    "corrald did not answer on {} within 20 s:\n{}",
                    self.socket().display(),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }

    pub async fn channel(&self) -> Result<Channel> {
        Ok(corral_cri_api::connect(self.socket()).await?)
    }

    pub async fn images(&self) -> Result<ImageServiceClient<Channel>> {
        Ok(ImageServiceClient::new(self.channel().await?).max_decoding_message_size(16 << 20))
    }

    pub async fn runtime(&self) -> Result<RuntimeServiceClient<Channel>> {
        Ok(RuntimeServiceClient::new(self.channel().await?).max_decoding_message_size(16 << 20))
    }

    /// Stops with SIGTERM and waits.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if child.try_wait()?.is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    child.kill()?;
                    child.wait()?;
                    bail!("corrald ignored SIGTERM for 10 s");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }

    /// Kills with SIGKILL (a crash) and waits.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts the daemon again on the same directories.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.spawn().await
    }

    /// Starts the daemon after a stop or kill.
    pub async fn start_again(&mut self) -> Result<()> {
        self.spawn().await
    }

    /// Files left under the root's temporary areas (ingest files and staging directories).
    pub fn temporaries(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for dir in [
            self.root().join("content/ingest"),
            self.root().join("snapshots/.staging"),
        ] {
            if let Ok(rd) = std::fs::read_dir(&dir) {
                out.extend(rd.flatten().map(|e| e.path()));
            }
        }
        out
    }

    /// Waits until no temporaries remain (blocking work of a cancelled pull finishes shortly after).
    pub async fn wait_no_temporaries(&self, within: Duration) -> Vec<PathBuf> {
        let until = Instant::now() + within;
        loop {
            let left = self.temporaries();
            if left.is_empty() || Instant::now() > until {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Names of committed blobs in the content store.
    pub fn blobs(&self) -> Vec<String> {
        list_names(&self.root().join("content/blobs/sha256"))
    }

    /// Names (chain ID hex) of committed snapshots.
    pub fn snapshots(&self) -> Vec<String> {
        list_names(&self.root().join("snapshots"))
            .into_iter()
            .filter(|n| !n.starts_with('.'))
            .collect()
    }
}

fn list_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

impl TestDaemon {
    /// The pid of the process holding the daemon's own mount namespace (without the cgroup v2
    /// mount, after the setup command), started on first use.
    async fn mount_holder(&mut self) -> Result<u32> {
        if let Some(h) = &self.mount_holder {
            return Ok(h.id());
        }
        let mut script = String::new();
        if self.opts.hide_cgroup_v2 {
            script.push_str("umount -l /sys/fs/cgroup/unified && ");
        }
        if let Some(setup) = &self.opts.mount_setup {
            script.push_str(&format!("{{ {setup}; }} && "));
        }
        let child = std::process::Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(format!("{script}exec sleep 100000"))
            .stdin(Stdio::null())
            .spawn()
            .context("start unshare")?;
        let pid = child.id();
        self.mount_holder = Some(child);
        let started = Instant::now();
        loop {
            let mounts = String::from_utf8_lossy(
                &std::fs::read(format!("/proc/{pid}/mountinfo")).unwrap_or_default(),
            )
            .into_owned();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let hidden = !self.opts.hide_cgroup_v2 || !mounts.contains(" /sys/fs/cgroup/unified ");
            if cmdline.starts_with(b"sleep") && hidden {
                return Ok(pid);
            }
            if started.elapsed() > Duration::from_secs(10) {
                bail!("the daemon's mount namespace was not ready (its setup failed?)");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if self.stop().is_err() {
            let _ = self.kill();
        }
        // DEL first: it needs the pods' network namespaces, which `pods` unpins.
        crate::cleanup::networks(&self.root());
        crate::cleanup::pods(self.dir(), &self.state(), &self.cgroup_root);
        if let Some(mut holder) = self.mount_holder.take() {
            let _ = holder.kill();
            let _ = holder.wait();
        }
    }
}
