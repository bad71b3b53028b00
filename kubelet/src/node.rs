//! Facts about the node the pod manager reports: its IP addresses, huge page sizes and memory.
//!
//! The node's addresses are `status.hostIP(s)` of every pod and the `podIP(s)` of host-network
//! pods. As the kubelet does without `--node-ip`, they are the addresses of the interface the
//! default route leaves by (IPv4, then IPv6); `[kubelet] node_ips` overrides them. A host with
//! no default route (a sandbox, a laptop offline) reports `127.0.0.1`.

use std::net::IpAddr;

/// `RTF_UP` and `RTF_REJECT` from `<linux/route.h>`.
const RTF_UP: u32 = 0x0001;
const RTF_REJECT: u32 = 0x0200;

/// The node's addresses: `configured` when given, else those of the default route's interface.
pub fn host_ips(configured: &[IpAddr]) -> Vec<String> {
    if !configured.is_empty() {
        return configured.iter().map(IpAddr::to_string).collect();
    }
    let v4 = std::fs::read_to_string("/proc/net/route")
        .ok()
        .and_then(|t| default_route_v4(&t));
    let v6 = std::fs::read_to_string("/proc/net/ipv6_route")
        .ok()
        .and_then(|t| default_route_v6(&t));
    let addrs = interface_addresses();
    let mut out = Vec::new();
    if let Some(dev) = v4 {
        out.extend(pick(&addrs, &dev, true));
    }
    if let Some(dev) = v6 {
        out.extend(pick(&addrs, &dev, false));
    }
    if out.is_empty() {
        out.push("127.0.0.1".to_string());
    }
    out
}

/// The first usable address of `dev` in one family.
fn pick(addrs: &[(String, IpAddr)], dev: &str, v4: bool) -> Option<String> {
    addrs
        .iter()
        .filter(|(name, _)| name == dev)
        .map(|(_, ip)| *ip)
        .find(|ip| match ip {
            IpAddr::V4(a) => v4 && !a.is_loopback() && !a.is_link_local(),
            // fe80::/10 is link-local: not an address another host (or a pod) can use alone.
            IpAddr::V6(a) => !v4 && !a.is_loopback() && (a.segments()[0] & 0xffc0) != 0xfe80,
        })
        .map(|ip| ip.to_string())
}

/// Every interface's addresses, as `getifaddrs(3)` lists them.
fn interface_addresses() -> Vec<(String, IpAddr)> {
    let Ok(list) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    list.filter_map(|ifa| {
        let addr = ifa.address?;
        let ip = if let Some(a) = addr.as_sockaddr_in() {
            IpAddr::V4(a.ip())
        } else {
            IpAddr::V6(addr.as_sockaddr_in6()?.ip())
        };
        Some((ifa.interface_name, ip))
    })
    .collect()
}

/// Whether a route's hex flags say it is up and not a reject route (`None`: not hex).
fn usable(flags: &str) -> Option<bool> {
    let flags = u32::from_str_radix(flags, 16).ok()?;
    Some(flags & RTF_UP != 0 && flags & RTF_REJECT == 0)
}

/// The interface of the IPv4 default route with the lowest metric, from `/proc/net/route`.
fn default_route_v4(table: &str) -> Option<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            if !(usable(f[3])? && f[1] == "00000000" && f[7] == "00000000") {
                return None;
            }
            Some((f[6].parse::<u32>().ok()?, f[0].to_string()))
        })
        .min()
        .map(|(_, iface)| iface)
}

/// The interface of the IPv6 default route with the lowest metric, from
/// `/proc/net/ipv6_route` (destination, prefix length, source, source prefix length, next hop,
/// metric, reference count, use count, flags, interface).
fn default_route_v6(table: &str) -> Option<String> {
    table
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                return None;
            }
            let default = f[0].bytes().all(|b| b == b'0') && f[1] == "00";
            if !(usable(f[8])? && default && f[9] != "lo") {
                return None;
            }
            Some((u32::from_str_radix(f[5], 16).ok()?, f[9].to_string()))
        })
        .min()
        .map(|(_, iface)| iface)
}

/// The huge page sizes the kernel offers, as Kubernetes names them (`hugepages-2048kB` is
/// "2MB").
pub(super) fn hugepage_sizes() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let kb: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            Some(if kb.is_multiple_of(1 << 20) {
                format!("{}GB", kb >> 20)
            } else if kb.is_multiple_of(1024) {
                format!("{}MB", kb >> 10)
            } else {
                format!("{kb}KB")
            })
        })
        .collect();
    out.sort();
    out
}

/// The host's `MemTotal` in bytes (also the pod manager's memory capacity).
pub fn mem_total() -> Option<i64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth1\t00000000\t010200C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
wg0\t00000000\t00000000\t0201\t0\t0\t0\t00000000\t0\t0\t0
";

    #[test]
    fn the_ipv4_default_route_with_the_lowest_metric_wins() {
        assert_eq!(default_route_v4(ROUTE).as_deref(), Some("eth0"));
        // Only a network route: no default.
        let no_default = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
                          eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n";
        assert_eq!(default_route_v4(no_default), None);
        assert_eq!(default_route_v4(""), None);
    }

    #[test]
    fn the_ipv6_default_route_skips_loopback_and_reject_entries() {
        let zero = "00000000000000000000000000000000";
        let table = format!(
            "{zero} 00 {zero} 00 {zero} ffffffff 00000001 00000000 00200200       lo\n\
             fd000000000000000000000000000000 40 {zero} 00 {zero} 00000100 00000001 00000000 00000001     eth0\n\
             {zero} 00 {zero} 00 fd000000000000000000000000000001 00000400 00000001 00000000 00000003     eth2\n\
             {zero} 00 {zero} 00 fd000000000000000000000000000001 00000200 00000001 00000000 00000003     eth0\n"
        );
        assert_eq!(default_route_v6(&table).as_deref(), Some("eth0"));
        let only_lo =
            format!("{zero} 00 {zero} 00 {zero} ffffffff 00000001 00000000 00200200       lo\n");
        assert_eq!(default_route_v6(&only_lo), None);
    }

    #[test]
    fn addresses_are_picked_per_family_without_link_local_ones() {
        let addrs: Vec<(String, IpAddr)> = [
            ("lo", "127.0.0.1"),
            ("eth0", "169.254.3.4"),
            ("eth0", "192.0.2.2"),
            ("eth0", "fe80::1"),
            ("eth0", "fd00::2"),
            ("eth1", "198.51.100.7"),
        ]
        .iter()
        .map(|(n, a)| {
            (
                n.to_string(),
                a.parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            )
        })
        .collect();
        assert_eq!(pick(&addrs, "eth0", true).as_deref(), Some("192.0.2.2"));
        assert_eq!(pick(&addrs, "eth0", false).as_deref(), Some("fd00::2"));
        assert_eq!(pick(&addrs, "eth1", false), None);
        assert_eq!(pick(&addrs, "lo", true), None);
    }

    #[test]
    fn configured_addresses_win() {
        let ips: Vec<IpAddr> = vec![
            IpAddr::from([192, 0, 2, 9]),
            "fd00::9".parse().unwrap_or(IpAddr::from([0; 16])),
        ];
        assert_eq!(host_ips(&ips), vec!["192.0.2.9", "fd00::9"]);
        assert!(!host_ips(&[]).is_empty());
    }
}
