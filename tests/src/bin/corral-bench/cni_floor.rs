//! The CNI plugins alone: ADD and DEL of the benchmark's network config run straight from this
//! process (no runtime) on network namespaces made for the purpose. With the same plugins under
//! both daemons, these times are the floor of RunPodSandbox and StopPodSandbox with CNI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use corral_cni::{Attachment, NetworkList, Plugins};
use corral_tests::netlease::NetLease;

use crate::stats::{median, ms, p90};

/// A named network namespace (`ip netns`), deleted on drop.
struct Netns(String);

impl Netns {
    fn add(name: String) -> Result<Netns> {
        let out = Command::new("ip").args(["netns", "add", &name]).output()?;
        if !out.status.success() {
            bail!(
                "ip netns add {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(Netns(name))
    }
    fn path(&self) -> PathBuf {
        Path::new("/var/run/netns").join(&self.0)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// What the plugins alone take.
pub struct Floor {
    /// DEL's median.
    pub del: Duration,
    /// The plugins' CPU for ADD + DEL of the churn's pods, over this machine's cores: the least
    /// a churn round with CNI can take.
    pub churn: Duration,
}

/// `n` ADD + DEL pairs one after another; prints the medians, and the plugins' CPU for `pods`
/// pods (the churn's count) on this machine's cores.
pub async fn measure(n: usize, pods: usize) -> Result<Floor> {
    let lease = NetLease::acquire()?;
    let ipam = tempfile::Builder::new()
        .prefix("corral-bench-cni-floor-")
        .tempdir()?;
    let doc = crate::containerd::conflist(&lease.bridge, &lease.subnet, ipam.path());
    let list = NetworkList::parse(&serde_json::to_vec(&doc)?, Path::new("bench conflist"))?;
    let plugins = Plugins::in_default_dirs(Duration::from_secs(60));
    let (mut adds, mut dels) = (Vec::new(), Vec::new());
    let mut cpu = 0.0;
    for i in 0..n + 1 {
        let ns = Netns::add(format!("corral-bench-floor-{}-{i}", std::process::id()))?;
        let att = Attachment {
            container_id: format!("corral-bench-floor-{i}"),
            netns: ns.path(),
            ifname: "eth0".into(),
            args: vec![],
            runtime_config: Default::default(),
        };
        let before = crate::procs::children_cpu();
        let t = Instant::now();
        let result = corral_cni::add(&list, &plugins, &att)
            .await
            .context("CNI ADD alone")?;
        let add = t.elapsed();
        let t = Instant::now();
        corral_cni::del(&list, &plugins, &att, Some(&result))
            .await
            .context("CNI DEL alone")?;
        // The first pair makes the bridge and the masquerade rules: a warm-up.
        if i > 0 {
            adds.push(add);
            dels.push(t.elapsed());
            cpu += crate::procs::children_cpu() - before;
        }
    }
    println!(
        "  CNI ADD alone (bridge + host-local + portmap) {:>8.2} ms (p90 {:.2})",
        ms(median(&adds)),
        ms(p90(&adds))
    );
    println!(
        "  CNI DEL alone                                 {:>8.2} ms (p90 {:.2})",
        ms(median(&dels)),
        ms(p90(&dels))
    );
    let per_pair = cpu * 1000.0 / n as f64;
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let churn = per_pair * pods as f64 / cores as f64;
    println!(
        "  the plugins' CPU per ADD + DEL (user + system)   {per_pair:>8.2} ms: {pods} pods' worth on {cores} cores is at least {churn:.0} ms"
    );
    Ok(Floor {
        del: median(&dels),
        churn: Duration::from_secs_f64(churn / 1000.0),
    })
}
