//! containerd as the benchmark peer: its own root, state, sockets, CNI configuration and cgroup
//! parent, so it never meets a containerd a user runs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use corral_cri_api::v1::image_service_client::ImageServiceClient;

/// Name of the bridge its CNI configuration makes (deleted on drop).
pub const BRIDGE: &str = "crlbench0";

/// The network both daemons' pods join in the POD-network benchmark: bridge (gateway,
/// masquerade, hairpin) with host-local IPAM, then portmap. Each daemon gets its own bridge,
/// subnet and reservation directory.
pub fn conflist(bridge: &str, subnet: &str, ipam_dir: &Path) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "corral-bench",
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": subnet }]],
                    "dataDir": ipam_dir,
                },
            },
            { "type": "portmap", "capabilities": { "portMappings": true } },
        ],
    })
}

/// containerd with its own root, state and sockets; stopped (this pid only) on drop.
pub struct Containerd {
    dir: tempfile::TempDir,
    pub child: Child,
}

impl Containerd {
    /// Starts containerd reading registry hosts from `hosts`, with `sandbox_image` as its pause
    /// image and a bridge + host-local CNI network for pods that are not on the host network.
    pub async fn start(hosts: &Path, sandbox_image: &str) -> Result<Containerd> {
        let dir = tempfile::Builder::new()
            .prefix("corral-bench-containerd-")
            .tempdir()?;
        let d = dir.path();
        std::fs::create_dir_all(d.join("cni"))?;
        let conflist = conflist(BRIDGE, "10.234.0.0/16", &d.join("cni-ipam"));
        std::fs::write(
            d.join("cni/10-corral-bench.conflist"),
            serde_json::to_vec_pretty(&conflist)?,
        )?;
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  level = "warn"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  tolerate_missing_hugetlb_controller = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni}"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{hosts}"
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
            cni = d.join("cni").display(),
            hosts = hosts.display(),
        );
        std::fs::write(d.join("config.toml"), config)?;
        let log = std::fs::File::create(d.join("containerd.log"))?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("start containerd (apt-get install containerd runc, or `make bench`)")?;
        let c = Containerd { dir, child };
        let started = Instant::now();
        loop {
            if let Ok(ch) = corral_cri_api::connect(c.socket()).await {
                let mut img = ImageServiceClient::new(ch);
                if img
                    .list_images(corral_cri_api::v1::ListImagesRequest::default())
                    .await
                    .is_ok()
                {
                    return Ok(c);
                }
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("containerd did not serve CRI within 30 s:\n{}", c.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// The cgroup parent given to its pods (cgroupfs), removed on drop.
    pub fn cgroup_parent() -> String {
        format!("/corral-bench-containerd-{}", std::process::id())
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Shims outlive containerd: any of ours still running (pods not removed after a failure)
        // is killed by pid, with its container processes.
        for shim in crate::procs::containerd_shims(&self.socket()) {
            for p in crate::procs::descendants(shim) {
                crate::procs::kill(p);
            }
            crate::procs::kill(shim);
        }
        // containerd's overlay snapshots and shm mounts may still be mounted under its root.
        for m in corral_tests::cleanup::mounts_under(self.dir.path()) {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
        let cg = Containerd::cgroup_parent();
        for ctrl in crate::procs::cgroup_controllers() {
            let _ = std::fs::remove_dir(Path::new(&ctrl).join(cg.trim_start_matches('/')));
        }
        let _ = Command::new("ip")
            .args(["link", "del", BRIDGE])
            .stderr(Stdio::null())
            .status();
    }
}
