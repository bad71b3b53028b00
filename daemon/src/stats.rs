//! Resource usage of containers and pod sandboxes, as the kubelet's CRI stats provider reads
//! it: cgroup counters (CPU, memory, processes), the writable layer's bytes and inodes, and a
//! pod's network counters read inside its network namespace.
//!
//! `usage_nano_cores` is the CPU rate since the previous sample of the same cgroup, so the
//! first sample of a container has none (containerd does the same).

use std::collections::HashMap;
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use corral_cri_api::v1::{
    ContainerAttributes, ContainerStats, ContainerStatsFilter, CpuUsage, FilesystemIdentifier,
    FilesystemUsage, LinuxPodSandboxStats, MemoryUsage, NetworkInterfaceUsage, NetworkUsage,
    PodSandboxAttributes, PodSandboxStats, PodSandboxStatsFilter, ProcessUsage, UInt64Value,
};
use corral_runtime::cgroups::Usage;

use crate::pods::view::labels_match;
use crate::pods::{Container, Pods, Result, Sandbox};
use crate::sync::lock;

/// The interface a pod's CNI network gives it (`CNI_IFNAME`).
const POD_INTERFACE: &str = "eth0";

/// Samples for containers and pods; remembers the last CPU sample of each cgroup.
pub struct Stats {
    pods: Arc<Pods>,
    /// cgroup path → (timestamp ns, cumulative CPU ns) of the previous sample.
    cpu: Mutex<HashMap<String, (i64, u64)>>,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn value(v: u64) -> Option<UInt64Value> {
    Some(UInt64Value { value: v })
}

impl Stats {
    pub fn new(pods: Arc<Pods>) -> Stats {
        Stats {
            pods,
            cpu: Mutex::new(HashMap::new()),
        }
    }

    /// Reads a cgroup's usage (`None` when it is gone or unreadable) on a blocking thread.
    async fn usage(cgroups_path: &str) -> Option<Usage> {
        let path = PathBuf::from(cgroups_path);
        tokio::task::spawn_blocking(move || corral_runtime::cgroups::usage(&path))
            .await
            .ok()?
            .inspect_err(|e| tracing::debug!(error = %e, "reading cgroup usage"))
            .ok()
    }

    fn cpu(&self, cgroups_path: &str, at: i64, usage: &Usage) -> Option<CpuUsage> {
        let total = usage.cpu_ns?;
        let previous = lock(&self.cpu).insert(cgroups_path.to_owned(), (at, total));
        let nano_cores = previous.and_then(|(t0, u0)| {
            let dt = u64::try_from(at - t0).ok().filter(|&dt| dt > 0)?;
            Some((total.saturating_sub(u0) as u128 * 1_000_000_000 / dt as u128) as u64)
        });
        Some(CpuUsage {
            timestamp: at,
            usage_core_nano_seconds: value(total),
            usage_nano_cores: nano_cores.and_then(value),
            psi: None,
        })
    }

    fn memory(at: i64, usage: &Usage) -> Option<MemoryUsage> {
        let working_set = usage.working_set_bytes.or(usage.memory_bytes)?;
        Some(MemoryUsage {
            timestamp: at,
            working_set_bytes: value(working_set),
            available_bytes: usage
                .memory_limit
                .map(|l| l.saturating_sub(working_set))
                .and_then(value),
            usage_bytes: usage.memory_bytes.and_then(value),
            rss_bytes: usage.rss_bytes.and_then(value),
            page_faults: usage.page_faults.and_then(value),
            major_page_faults: usage.major_page_faults.and_then(value),
            psi: None,
        })
    }

    /// One container's stats; CPU and memory only while its cgroup exists.
    async fn of_container(&self, ctr: &Container) -> ContainerStats {
        let at = now_ns();
        let usage = Self::usage(&ctr.meta.cgroups_path).await;
        let upper = self.pods.container_upper(&ctr.meta.id);
        let mountpoint = upper.display().to_string();
        let layer = tokio::task::spawn_blocking(move || layer_usage(&upper))
            .await
            .ok()
            .flatten();
        ContainerStats {
            attributes: Some(ContainerAttributes {
                id: ctr.meta.id.clone(),
                metadata: ctr.config.metadata.clone(),
                labels: ctr.config.labels.clone(),
                annotations: ctr.config.annotations.clone(),
            }),
            cpu: usage
                .as_ref()
                .and_then(|u| self.cpu(&ctr.meta.cgroups_path, at, u)),
            memory: usage.as_ref().and_then(|u| Self::memory(at, u)),
            writable_layer: layer.map(|(bytes, inodes)| FilesystemUsage {
                timestamp: at,
                fs_id: Some(FilesystemIdentifier { mountpoint }),
                used_bytes: value(bytes),
                inodes_used: value(inodes),
            }),
            swap: None,
            io: None,
        }
    }

    /// ContainerStats.
    pub async fn container(&self, id: &str) -> Result<ContainerStats> {
        let ctr = self.pods.container(id)?;
        Ok(self.of_container(&ctr).await)
    }

    /// ListContainerStats: every container the filter selects (id and pod id as prefixes).
    pub async fn containers(&self, filter: Option<&ContainerStatsFilter>) -> Vec<ContainerStats> {
        self.forget_gone();
        let mut out = Vec::new();
        for ctr in self.pods.containers() {
            let selected = filter.is_none_or(|f| {
                ctr.meta.id.starts_with(&f.id)
                    && ctr.meta.sandbox_id.starts_with(&f.pod_sandbox_id)
                    && labels_match(&ctr.config.labels, &f.label_selector)
            });
            if selected {
                out.push(self.of_container(&ctr).await);
            }
        }
        out
    }

    /// A pod's stats, with those of `ctrs` (its containers).
    async fn of_sandbox(&self, sb: &Sandbox, ctrs: &[Arc<Container>]) -> PodSandboxStats {
        let at = now_ns();
        let usage = Self::usage(&sb.meta.cgroup_parent).await;
        let mut containers = Vec::new();
        for ctr in ctrs {
            containers.push(self.of_container(ctr).await);
        }
        let process_count = match &usage {
            Some(Usage { pids: Some(n), .. }) => Some(*n),
            _ => None,
        };
        PodSandboxStats {
            attributes: Some(PodSandboxAttributes {
                id: sb.meta.id.clone(),
                metadata: sb.config.metadata.clone(),
                labels: sb.config.labels.clone(),
                annotations: sb.config.annotations.clone(),
            }),
            linux: Some(LinuxPodSandboxStats {
                cpu: usage
                    .as_ref()
                    .and_then(|u| self.cpu(&sb.meta.cgroup_parent, at, u)),
                memory: usage.as_ref().and_then(|u| Self::memory(at, u)),
                network: network_usage(sb, at).await,
                process: process_count.map(|n| ProcessUsage {
                    timestamp: at,
                    process_count: value(n),
                }),
                containers,
                io: None,
            }),
            windows: None,
        }
    }

    /// PodSandboxStats.
    pub async fn sandbox(&self, id: &str) -> Result<PodSandboxStats> {
        let sb = self.pods.sandbox(id)?;
        let ctrs: Vec<Arc<Container>> = self
            .pods
            .containers()
            .into_iter()
            .filter(|c| c.meta.sandbox_id == sb.meta.id)
            .collect();
        Ok(self.of_sandbox(&sb, &ctrs).await)
    }

    /// ListPodSandboxStats: every pod the filter selects (id as a prefix).
    pub async fn sandboxes(&self, filter: Option<&PodSandboxStatsFilter>) -> Vec<PodSandboxStats> {
        self.forget_gone();
        // Containers grouped by pod once, not scanned again for every pod.
        let mut by_pod = self.containers_by_pod();
        let mut out = Vec::new();
        for sb in self.pods.sandboxes() {
            let selected = filter.is_none_or(|f| {
                sb.meta.id.starts_with(&f.id) && labels_match(&sb.config.labels, &f.label_selector)
            });
            if selected {
                let ctrs = by_pod.remove(&sb.meta.id).unwrap_or_default();
                out.push(self.of_sandbox(&sb, &ctrs).await);
            }
        }
        out
    }

    fn containers_by_pod(&self) -> HashMap<String, Vec<Arc<Container>>> {
        let mut by_pod: HashMap<String, Vec<Arc<Container>>> = HashMap::new();
        for ctr in self.pods.containers() {
            by_pod
                .entry(ctr.meta.sandbox_id.clone())
                .or_default()
                .push(ctr);
        }
        by_pod
    }

    /// Forgets the CPU samples of cgroups that no longer belong to a pod or container.
    fn forget_gone(&self) {
        let live: std::collections::HashSet<String> = self
            .pods
            .containers()
            .iter()
            .map(|c| c.meta.cgroups_path.clone())
            .chain(
                self.pods
                    .sandboxes()
                    .iter()
                    .map(|s| s.meta.cgroup_parent.clone()),
            )
            .collect();
        lock(&self.cpu).retain(|path, _| live.contains(path));
    }
}

/// Bytes (allocated blocks) and inodes under a writable layer's upper directory, without
/// following symlinks or leaving its filesystem; `None` when it does not exist or cannot be
/// walked. The layer is the container's to shape (thousands of levels deep, renamed while we
/// look): `corral_fsutil::walk` has no recursion and a bounded number of descriptors, and a
/// tree it refuses is this container's missing number, not the daemon's crash.
fn layer_usage(upper: &Path) -> Option<(u64, u64)> {
    #[derive(Default)]
    struct Usage {
        bytes: u64,
        inodes: u64,
        seen_links: std::collections::HashSet<(u64, u64)>,
    }
    impl corral_fsutil::Visitor for Usage {
        fn entry(&mut self, e: &corral_fsutil::Entry<'_>) -> std::io::Result<()> {
            // A hard-linked file counts once.
            if e.stat.st_nlink > 1
                && !e.is_dir()
                && !self.seen_links.insert((e.stat.st_dev, e.stat.st_ino))
            {
                return Ok(());
            }
            self.inodes += 1;
            self.bytes += u64::try_from(e.stat.st_blocks).unwrap_or(0) * 512;
            Ok(())
        }
    }
    let mut usage = Usage::default();
    match corral_fsutil::walk(upper, &mut usage) {
        Ok(()) => Some((usage.bytes, usage.inodes)),
        Err(e) => {
            if e.raw_os_error() != Some(libc::ENOENT) {
                tracing::warn!(error = %e, "writable layer usage");
            }
            None
        }
    }
}

/// One line of `/proc/net/dev`: the interface and its counters.
fn parse_net_dev_line(line: &str) -> Option<NetworkInterfaceUsage> {
    let (name, rest) = line.split_once(':')?;
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    if f.len() < 16 {
        return None;
    }
    Some(NetworkInterfaceUsage {
        name: name.trim().to_owned(),
        rx_bytes: value(f[0]),
        rx_errors: value(f[2]),
        tx_bytes: value(f[8]),
        tx_errors: value(f[10]),
    })
}

/// The interfaces of `/proc/net/dev` text other than loopback, the pod's own first.
fn parse_net_dev(text: &str, at: i64) -> Option<NetworkUsage> {
    let mut interfaces: Vec<NetworkInterfaceUsage> = text
        .lines()
        .skip(2)
        .filter_map(parse_net_dev_line)
        .filter(|i| i.name != "lo")
        .collect();
    let default = interfaces
        .iter()
        .position(|i| i.name == POD_INTERFACE)
        .or((!interfaces.is_empty()).then_some(0))
        .map(|i| interfaces.remove(i));
    Some(NetworkUsage {
        timestamp: at,
        default_interface: Some(default?),
        interfaces,
    })
}

/// A pod's network counters, read from a short-lived thread that joined the pod's pinned
/// network namespace (`setns` changes that thread only). Host-network pods have none of their
/// own.
async fn network_usage(sb: &Sandbox, at: i64) -> Option<NetworkUsage> {
    let pin = sb.dir.join("ns").join("net");
    let netns = std::fs::File::open(&pin).ok()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("corral-netstat".into())
        .spawn(move || {
            let read = nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)
                .and_then(|()| std::fs::read_to_string("/proc/thread-self/net/dev"));
            let _ = tx.send(read);
        })
        .ok()?;
    match rx.await {
        Ok(Ok(text)) => parse_net_dev(&text, at),
        Ok(Err(e)) => {
            tracing::debug!(pod = %sb.meta.id, error = %e, "reading the pod's network counters");
            None
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_picks_eth0_as_the_default_and_drops_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
             lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  \
             eth0:    5000      40    2    0    0     0          0         0     7000      50    3    0    0     0       0          0\n  \
             net1:      10       1    0    0    0     0          0         0       20       2    0    0    0     0       0          0\n";
        let usage = parse_net_dev(text, 7).expect("usage");
        let eth0 = usage.default_interface.expect("default");
        assert_eq!(eth0.name, "eth0");
        assert_eq!(eth0.rx_bytes, value(5000));
        assert_eq!(eth0.rx_errors, value(2));
        assert_eq!(eth0.tx_bytes, value(7000));
        assert_eq!(eth0.tx_errors, value(3));
        assert_eq!(usage.interfaces.len(), 1);
        assert_eq!(usage.interfaces[0].name, "net1");
        assert!(parse_net_dev(&text.lines().take(3).collect::<Vec<_>>().join("\n"), 7).is_none());
    }

    #[test]
    fn a_writable_layer_counts_blocks_and_inodes_once_per_hard_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("d")).expect("mkdir");
        std::fs::write(dir.path().join("d/f"), vec![1u8; 10000]).expect("write");
        std::fs::hard_link(dir.path().join("d/f"), dir.path().join("g")).expect("link");
        let (bytes, inodes) = layer_usage(dir.path()).expect("usage");
        assert_eq!(inodes, 2, "d and f, the link counted once");
        assert!(bytes >= 10000, "{bytes}");
        assert!(layer_usage(&dir.path().join("missing")).is_none());
    }
}
