//! Reading a plugin chain's result.

use std::net::IpAddr;

use serde_json::Value;

/// The pod's addresses from a result: those on interface `ifname` inside the sandbox (or,
/// when the result names no interfaces, all of them). The first IPv4 address comes first (the
/// pod's primary IP, as containerd picks it), then the others in result order.
pub fn pod_ips(result: &Value, ifname: &str) -> Vec<IpAddr> {
    let interfaces = result.get("interfaces").and_then(Value::as_array);
    let in_pod = |idx: Option<u64>| match (idx, interfaces) {
        (Some(i), Some(list)) => list.get(i as usize).is_some_and(|itf| {
            let sandbox = itf.get("sandbox").and_then(Value::as_str).unwrap_or("");
            let name = itf.get("name").and_then(Value::as_str).unwrap_or("");
            !sandbox.is_empty() && name == ifname
        }),
        _ => true,
    };
    let mut ips: Vec<IpAddr> = Vec::new();
    if let Some(list) = result.get("ips").and_then(Value::as_array) {
        for ip in list {
            let idx = ip.get("interface").and_then(Value::as_u64);
            if let Some(addr) = ip.get("address").and_then(Value::as_str).and_then(address)
                && in_pod(idx)
            {
                ips.push(addr);
            }
        }
    }
    // The 0.2 format.
    for key in ["ip4", "ip6"] {
        if let Some(addr) = result
            .get(key)
            .and_then(|v| v.get("ip"))
            .and_then(Value::as_str)
            .and_then(address)
        {
            ips.push(addr);
        }
    }
    ips.dedup();
    if let Some(v4) = ips.iter().position(IpAddr::is_ipv4) {
        let primary = ips.remove(v4);
        ips.insert(0, primary);
    }
    ips
}

/// `10.1.2.3/24` → `10.1.2.3`.
fn address(cidr: &str) -> Option<IpAddr> {
    cidr.split('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn picks_the_pod_interface_and_ipv4_first() {
        let r = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni0", "mac": "x"},
                {"name": "veth1"},
                {"name": "eth0", "sandbox": "/run/netns/x"},
                {"name": "net1", "sandbox": "/run/netns/x"}
            ],
            "ips": [
                {"interface": 2, "address": "fd86::5/64"},
                {"interface": 0, "address": "10.86.0.1/16"},
                {"interface": 2, "address": "10.86.0.5/16", "gateway": "10.86.0.1"},
                {"interface": 3, "address": "192.168.9.9/24"}
            ]
        });
        let ips: Vec<String> = pod_ips(&r, "eth0")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ips, ["10.86.0.5", "fd86::5"]);
    }

    #[test]
    fn results_without_interfaces_and_old_formats() {
        let r = json!({"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "10.0.0.2/24"}]});
        assert_eq!(pod_ips(&r, "eth0"), ["10.0.0.2".parse::<IpAddr>().unwrap()]);
        let r = json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.3/24"}, "ip6": {"ip": "fd00::3/64"}});
        assert_eq!(pod_ips(&r, "eth0").len(), 2);
        assert!(pod_ips(&json!({}), "eth0").is_empty());
        assert!(pod_ips(&json!({"ips": [{"address": "junk"}]}), "eth0").is_empty());
    }
}
