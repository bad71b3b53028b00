//! Host ports: DNAT rules for the pods that have port mappings, and nothing for the others.
//!
//! The shared part is made at the first pod with host ports (and checked with `-C`, so it is
//! never doubled): a `CORRAL-HOSTPORTS` chain in the nat table, entered from PREROUTING and
//! OUTPUT for packets to a local address; masquerading of connections from the host's
//! loopback (a host port on 127.0.0.1) and of a pod reaching itself through a host port
//! (hairpin), as the portmap plugin does; `route_localnet` on the bridge so the kernel routes
//! loopback-sourced packets to it. Each pod then gets one DNAT rule per mapping in one
//! `iptables-restore`, its comment naming the pod (`corral-pod:<id>`), which is how DEL finds
//! them, whether or not ADD finished.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Mutex;

use serde_json::Value;

use super::Subnet;
use super::iptables;
use super::masq::comment as net_comment;

const CHAIN: &str = "CORRAL-HOSTPORTS";

fn pod_comment(pod_id: &str) -> String {
    format!("corral-pod:{pod_id}")
}

/// One `portMappings` entry (the CNI capability's format, as `capabilities.rs` builds it).
#[derive(Debug, PartialEq)]
struct Mapping {
    host_port: u16,
    container_port: u16,
    protocol: String,
    host_ip: Option<IpAddr>,
}

fn mappings(value: &Value) -> Vec<Mapping> {
    let Some(list) = value.as_array() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|m| {
            Some(Mapping {
                host_port: u16::try_from(m.get("hostPort")?.as_u64()?).ok()?,
                container_port: u16::try_from(m.get("containerPort")?.as_u64()?).ok()?,
                protocol: m.get("protocol")?.as_str()?.to_owned(),
                host_ip: m
                    .get("hostIP")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok()),
            })
        })
        .collect()
}

/// The DNAT rules (`-A` lines for `iptables-restore`) of pod `pod_id` at `ips` for the
/// mappings in `value`, for one address family.
fn rules(pod_id: &str, ips: &[IpAddr], value: &Value, v6: bool) -> Vec<String> {
    let Some(ip) = ips.iter().find(|ip| ip.is_ipv6() == v6) else {
        return Vec::new();
    };
    let comment = pod_comment(pod_id);
    mappings(value)
        .into_iter()
        .filter(|m| m.host_ip.is_none_or(|h| h.is_ipv6() == v6))
        .map(|m| {
            let dst = m
                .host_ip
                .map(|h| format!("-d {h}/{} ", if v6 { 128 } else { 32 }))
                .unwrap_or_default();
            let to = if v6 {
                format!("[{ip}]:{}", m.container_port)
            } else {
                format!("{ip}:{}", m.container_port)
            };
            format!(
                "-A {CHAIN} {dst}-p {p} -m {p} --dport {hp} -m comment --comment {comment} -j DNAT --to-destination {to}",
                p = m.protocol,
                hp = m.host_port,
            )
        })
        .collect()
}

/// The shared rules, per bridge and subnet, that this process has seen in place.
#[derive(Default)]
pub struct HostPorts {
    done: Mutex<HashSet<String>>,
}

impl HostPorts {
    async fn ensure_shared(&self, bridge: &str, subnet: &Subnet) -> Result<(), String> {
        let key = format!("{bridge} {subnet}");
        if crate::sync::lock(&self.done).contains(&key) {
            return Ok(());
        }
        let v6 = subnet.is_ipv6();
        // Exists already: fine (another daemon, or an earlier life of this one).
        let _ = iptables::run(v6, &["-t", "nat", "-N", CHAIN]).await?;
        let local = ["-m", "addrtype", "--dst-type", "LOCAL", "-j", CHAIN];
        iptables::ensure(v6, "nat", "PREROUTING", &local).await?;
        iptables::ensure(v6, "nat", "OUTPUT", &local).await?;
        let net = subnet.to_string();
        let comment = net_comment(bridge);
        #[rustfmt::skip]
        let hairpin = [
            "-s", &net, "-d", &net, "-m", "conntrack", "--ctstate", "DNAT",
            "-m", "comment", "--comment", &comment, "-j", "MASQUERADE",
        ];
        iptables::ensure(v6, "nat", "POSTROUTING", &hairpin).await?;
        if !v6 {
            #[rustfmt::skip]
            let loopback = [
                "-s", "127.0.0.0/8", "-d", &net,
                "-m", "comment", "--comment", &comment, "-j", "MASQUERADE",
            ];
            iptables::ensure(v6, "nat", "POSTROUTING", &loopback).await?;
            let path = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
            std::fs::write(&path, "1").map_err(|e| format!("{path}: {e}"))?;
        }
        crate::sync::lock(&self.done).insert(key);
        Ok(())
    }

    /// Adds pod `pod_id`'s DNAT rules for `mappings` (the `portMappings` runtime config).
    pub async fn add(
        &self,
        bridge: &str,
        subnets: &[Subnet],
        pod_id: &str,
        ips: &[IpAddr],
        mappings: &Value,
    ) -> Result<(), String> {
        for v6 in [false, true] {
            let lines = rules(pod_id, ips, mappings, v6);
            if lines.is_empty() {
                continue;
            }
            for s in subnets.iter().filter(|s| s.is_ipv6() == v6) {
                self.ensure_shared(bridge, s).await?;
            }
            iptables::restore(v6, "nat", &lines).await?;
        }
        Ok(())
    }

    /// Removes every DNAT rule naming pod `pod_id`, in both families. None is success.
    pub async fn remove(&self, pod_id: &str, v6_too: bool) -> Result<(), String> {
        let comment = pod_comment(pod_id);
        for v6 in [false, true] {
            if v6 && !v6_too {
                continue;
            }
            let saved = iptables::save(v6, "nat").await?;
            let lines: Vec<String> = saved
                .lines()
                // iptables-save quotes comments.
                .filter(|l| {
                    l.starts_with("-A ")
                        && l.split_whitespace().any(|w| w.trim_matches('"') == comment)
                })
                .map(|l| format!("-D {}", &l[3..]))
                .collect();
            iptables::restore(v6, "nat", &lines).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dnat_rules_per_family() {
        let pm = json!([
            { "hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1" },
            { "hostPort": 53, "containerPort": 53, "protocol": "udp", "hostIP": "" },
            { "hostPort": 9, "containerPort": 9, "protocol": "tcp", "hostIP": "::1" },
        ]);
        let ips: Vec<IpAddr> = vec!["10.1.0.5".parse().unwrap(), "fd00::5".parse().unwrap()];
        assert_eq!(
            rules("abc", &ips, &pm, false),
            [
                "-A CORRAL-HOSTPORTS -d 127.0.0.1/32 -p tcp -m tcp --dport 8080 -m comment --comment corral-pod:abc -j DNAT --to-destination 10.1.0.5:80",
                "-A CORRAL-HOSTPORTS -p udp -m udp --dport 53 -m comment --comment corral-pod:abc -j DNAT --to-destination 10.1.0.5:53",
            ]
        );
        let v6 = rules("abc", &ips, &pm, true);
        assert_eq!(v6.len(), 2, "{v6:?}");
        assert!(v6[1].ends_with("--to-destination [fd00::5]:9"), "{v6:?}");
        assert!(rules("abc", &ips[..1], &pm, true).is_empty());
    }
}
