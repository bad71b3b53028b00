//! Benchmarks Corral against containerd, side by side in one run, through the same CRI client.
//!
//! Both daemons pull the same images from one loopback registry (containerd through the same
//! `hosts.toml` directory Corral reads), cold each time: after every pull the image is removed
//! and its content garbage-collected. Runs alternate which daemon goes first. Prints each run,
//! the medians, the ratio Corral/containerd, and the daemons' memory high-water marks.
//!
//! Usage: corral-bench [--runs N] [--big-mib N] [--layers N]   (as root; `make bench`)

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use corral_cri_api::v1::image_service_client::ImageServiceClient;
use corral_cri_api::v1::{ImageSpec, PullImageRequest, RemoveImageRequest};
use corral_tests::daemon::{DaemonOptions, TestDaemon};
use corral_tests::fixtures::{ManifestFormat, big_image, busybox_image};
use corral_tests::registry::Registry;
use tonic::transport::Channel;

struct Args {
    runs: usize,
    big_mib: u64,
    layers: usize,
}

fn args() -> Result<Args> {
    let mut a = Args {
        runs: 5,
        big_mib: 240,
        layers: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--runs" => a.runs = value.parse()?,
            "--big-mib" => a.big_mib = value.parse()?,
            "--layers" => a.layers = value.parse()?,
            other => bail!("unknown flag {other}; use --runs, --big-mib, --layers"),
        }
    }
    Ok(a)
}

/// containerd with its own root, state and sockets; stopped (this pid only) on drop.
struct Containerd {
    dir: tempfile::TempDir,
    child: Child,
}

impl Containerd {
    async fn start(hosts: &Path) -> Result<Containerd> {
        let dir = tempfile::Builder::new()
            .prefix("corral-bench-containerd-")
            .tempdir()?;
        let d = dir.path();
        std::fs::create_dir_all(d.join("cni"))?;
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
                bail!(
                    "containerd did not serve CRI within 30 s:\n{}",
                    std::fs::read_to_string(c.dir.path().join("containerd.log"))
                        .unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
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
        // containerd's overlay snapshots may still be mounted under its root.
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") {
            let root = self.dir.path().display().to_string();
            for line in mounts.lines() {
                if let Some(m) = line.split(' ').nth(4).filter(|m| m.starts_with(&root)) {
                    let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
                }
            }
        }
    }
}

fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_owned(),
        ..Default::default()
    })
}

/// One cold pull: returns its duration, then removes the image.
async fn cold_pull(c: &mut ImageServiceClient<Channel>, image: &str) -> Result<Duration> {
    let started = Instant::now();
    c.pull_image(PullImageRequest {
        image: spec(image),
        ..Default::default()
    })
    .await
    .with_context(|| format!("pull {image}"))?;
    let took = started.elapsed();
    c.remove_image(RemoveImageRequest { image: spec(image) })
        .await?;
    Ok(took)
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Peak and current resident memory of a process, in KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    let reg = Registry::start().await?;
    eprintln!(
        "building images (busybox, and ~{} MiB uncompressed over {} layers)...",
        a.big_mib, a.layers
    );
    let small = reg
        .client()
        .push_image(
            "bench/busybox",
            "v1",
            &busybox_image()?,
            ManifestFormat::Oci,
        )
        .await?;
    let big_img = big_image(a.big_mib << 20, a.layers)?;
    let gz: u64 = big_img
        .build(ManifestFormat::Oci)?
        .layers
        .iter()
        .map(|l| l.size)
        .sum();
    let big = reg
        .client()
        .push_image("bench/big", "v1", &big_img, ManifestFormat::Oci)
        .await?;

    let corral = TestDaemon::start_with(DaemonOptions {
        log_level: Some("warn".into()),
        ..Default::default()
    })
    .await?;
    let hosts = corral.hosts_dir();
    let host_toml = format!(
        "server = \"http://{0}\"\n[host.\"http://{0}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
        reg.addr()
    );
    corral.write_hosts(&reg.addr(), &host_toml)?;
    let containerd = Containerd::start(&hosts).await?;
    let mut ours = ImageServiceClient::new(corral.channel().await?);
    let mut theirs = ImageServiceClient::new(corral_cri_api::connect(containerd.socket()).await?);

    println!(
        "# Cold pull + unpack from a loopback registry, {} runs each, alternating order",
        a.runs
    );
    println!(
        "# corrald: {}",
        corral_tests::daemon::corrald_bin().display()
    );
    for (label, image) in [
        ("busybox (1 layer)".to_owned(), small.reference.clone()),
        (
            format!(
                "big ({} layers, {:.1} MB gzip)",
                big.image.layers.len(),
                gz as f64 / 1e6
            ),
            big.reference.clone(),
        ),
    ] {
        // Warm the registry's page cache and both code paths once.
        cold_pull(&mut ours, &image).await?;
        cold_pull(&mut theirs, &image).await?;
        let (mut c, mut d) = (Vec::new(), Vec::new());
        for run in 0..a.runs {
            if run % 2 == 0 {
                c.push(cold_pull(&mut ours, &image).await?);
                d.push(cold_pull(&mut theirs, &image).await?);
            } else {
                d.push(cold_pull(&mut theirs, &image).await?);
                c.push(cold_pull(&mut ours, &image).await?);
            }
            println!(
                "  {label} run {run}: corral {:>8.1} ms   containerd {:>8.1} ms",
                ms(c[run]),
                ms(d[run])
            );
        }
        let (mc, md) = (median(&mut c), median(&mut d));
        println!(
            "PullImage {label}: corral median {:.1} ms, containerd median {:.1} ms, ratio corral/containerd {:.2}",
            ms(mc),
            ms(md),
            mc.as_secs_f64() / md.as_secs_f64()
        );
    }
    let (c_hwm, c_rss) = memory(corral.pid().unwrap_or(0));
    let (d_hwm, d_rss) = memory(containerd.child.id());
    println!(
        "Daemon memory after the runs: corral RSS {} KiB (peak {} KiB), containerd RSS {} KiB (peak {} KiB), peak ratio {:.2}",
        c_rss,
        c_hwm,
        d_rss,
        d_hwm,
        c_hwm as f64 / d_hwm.max(1) as f64
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
