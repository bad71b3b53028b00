//! What a pod's config asks of its network: CNI_ARGS and the runtime config of each CNI
//! capability (`portMappings`, `dns`, `bandwidth`, `io.kubernetes.cri.pod-annotations`).

use corral_cni::chain::valid_arg;
use corral_cri_api::v1::{PodSandboxConfig, Protocol};
use serde_json::{Map, Value, json};

use super::NetworkError;

/// The annotations the kubelet's bandwidth shaping reads, in bits per second.
const INGRESS_BANDWIDTH: &str = "kubernetes.io/ingress-bandwidth";
const EGRESS_BANDWIDTH: &str = "kubernetes.io/egress-bandwidth";
/// Kubernetes' bounds for those annotations: 1 kbit/s to 1 Pbit/s.
const MIN_BANDWIDTH: u64 = 1_000;
const MAX_BANDWIDTH: u64 = 1_000_000_000_000_000;

fn invalid(msg: String) -> NetworkError {
    NetworkError::InvalidArgument(format!("pod sandbox config: {msg}"))
}

/// `CNI_ARGS` for the pod, as containerd and CRI-O pass them.
pub fn cni_args(pod: &PodSandboxConfig, id: &str) -> Result<Vec<(String, String)>, NetworkError> {
    let md = pod.metadata.clone().unwrap_or_default();
    let args = [
        ("K8S_POD_NAMESPACE", md.namespace, "metadata.namespace"),
        ("K8S_POD_NAME", md.name, "metadata.name"),
        ("K8S_POD_INFRA_CONTAINER_ID", id.to_owned(), "id"),
        ("K8S_POD_UID", md.uid, "metadata.uid"),
    ];
    args.into_iter()
        .map(|(k, v, field)| {
            if valid_arg(&v) {
                Ok((k.to_owned(), v))
            } else {
                Err(invalid(format!(
                    "{field} {v:?} cannot be passed to CNI plugins (it contains ';', '=' or a control character)"
                )))
            }
        })
        .collect()
}

/// The runtime config for every capability the pod's config gives a value to.
pub fn runtime_config(pod: &PodSandboxConfig) -> Result<Map<String, Value>, NetworkError> {
    let mut rc = Map::new();
    let ports = port_mappings(pod)?;
    if !ports.is_empty() {
        rc.insert("portMappings".into(), Value::Array(ports));
    }
    if let Some(dns) = &pod.dns_config {
        rc.insert(
            "dns".into(),
            json!({ "servers": dns.servers, "searches": dns.searches, "options": dns.options }),
        );
    }
    if let Some(bw) = bandwidth(pod)? {
        rc.insert("bandwidth".into(), bw);
    }
    rc.insert(
        "io.kubernetes.cri.pod-annotations".into(),
        json!(pod.annotations),
    );
    Ok(rc)
}

/// The pod's port mappings with a host port (those without one need no plugin).
fn port_mappings(pod: &PodSandboxConfig) -> Result<Vec<Value>, NetworkError> {
    let mut out = Vec::new();
    for (i, pm) in pod.port_mappings.iter().enumerate() {
        let field = format!("port_mappings[{i}]");
        if !(1..=65535).contains(&pm.container_port) {
            return Err(invalid(format!(
                "{field}.container_port {} is not a port (1 to 65535)",
                pm.container_port
            )));
        }
        if !(0..=65535).contains(&pm.host_port) {
            return Err(invalid(format!(
                "{field}.host_port {} is not a port (0 to 65535)",
                pm.host_port
            )));
        }
        if !pm.host_ip.is_empty() && pm.host_ip.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid(format!(
                "{field}.host_ip {:?} is not an IP address",
                pm.host_ip
            )));
        }
        let protocol = match Protocol::try_from(pm.protocol) {
            Ok(Protocol::Tcp) => "tcp",
            Ok(Protocol::Udp) => "udp",
            Ok(Protocol::Sctp) => "sctp",
            Err(_) => {
                return Err(invalid(format!(
                    "{field}.protocol {} is not TCP, UDP or SCTP",
                    pm.protocol
                )));
            }
        };
        if pm.host_port == 0 {
            continue;
        }
        out.push(json!({
            "hostPort": pm.host_port,
            "containerPort": pm.container_port,
            "protocol": protocol,
            "hostIP": pm.host_ip,
        }));
    }
    Ok(out)
}

/// The bandwidth plugin's limits from the pod's annotations (bits per second). The kubelet
/// has no burst setting, so the burst is unlimited, as containerd sets it.
fn bandwidth(pod: &PodSandboxConfig) -> Result<Option<Value>, NetworkError> {
    let rate = |key: &str| -> Result<Option<u64>, NetworkError> {
        let Some(text) = pod.annotations.get(key) else {
            return Ok(None);
        };
        let bits = parse_quantity(text)
            .ok_or_else(|| invalid(format!("annotation {key}: {text:?} is not a quantity")))?;
        if !(MIN_BANDWIDTH..=MAX_BANDWIDTH).contains(&bits) {
            return Err(invalid(format!(
                "annotation {key}: {text} is outside 1k to 1P bits per second"
            )));
        }
        Ok(Some(bits))
    };
    let (ingress, egress) = (rate(INGRESS_BANDWIDTH)?, rate(EGRESS_BANDWIDTH)?);
    if ingress.is_none() && egress.is_none() {
        return Ok(None);
    }
    let mut bw = Map::new();
    if let Some(r) = ingress {
        bw.insert("ingressRate".into(), r.into());
        bw.insert("ingressBurst".into(), u32::MAX.into());
    }
    if let Some(r) = egress {
        bw.insert("egressRate".into(), r.into());
        bw.insert("egressBurst".into(), u32::MAX.into());
    }
    Ok(Some(Value::Object(bw)))
}

/// A Kubernetes quantity (`10M`, `1Gi`, `1.5k`, `2e6`) as a whole number, rounded up as
/// `Quantity.Value()` does. `None` for anything malformed, negative or too large.
pub fn parse_quantity(text: &str) -> Option<u64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number = number.strip_prefix('+').unwrap_or(number);
    if number.is_empty() || number.starts_with('.') && number.len() == 1 {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let factor: f64 = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        s => {
            let exp = s.strip_prefix(['e', 'E'])?;
            let exp: i32 = exp.parse().ok()?;
            10f64.powi(exp)
        }
    };
    let v = (value * factor).ceil();
    (v.is_finite() && v >= 0.0 && v < u64::MAX as f64).then_some(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_cri_api::v1::{DnsConfig, PodSandboxMetadata, PortMapping};

    fn pod() -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "web".into(),
                namespace: "default".into(),
                uid: "u-1".into(),
                attempt: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("10M"), Some(10_000_000));
        assert_eq!(parse_quantity("1Gi"), Some(1 << 30));
        assert_eq!(parse_quantity("1.5k"), Some(1500));
        assert_eq!(parse_quantity("2e6"), Some(2_000_000));
        assert_eq!(parse_quantity("100"), Some(100));
        assert_eq!(parse_quantity("1500m"), Some(2));
        for bad in ["", "M", "-1M", "1X", "1..0", "."] {
            assert_eq!(parse_quantity(bad), None, "{bad}");
        }
    }

    #[test]
    fn args_and_runtime_config() {
        let mut p = pod();
        assert_eq!(
            cni_args(&p, "abc").unwrap()[2],
            ("K8S_POD_INFRA_CONTAINER_ID".into(), "abc".into())
        );
        p.port_mappings = vec![
            PortMapping {
                protocol: Protocol::Udp as i32,
                container_port: 53,
                host_port: 5353,
                host_ip: "127.0.0.1".into(),
            },
            PortMapping {
                protocol: Protocol::Tcp as i32,
                container_port: 80,
                host_port: 0,
                host_ip: String::new(),
            },
        ];
        p.dns_config = Some(DnsConfig {
            servers: vec!["10.0.0.10".into()],
            searches: vec![],
            options: vec!["ndots:5".into()],
        });
        p.annotations.insert(INGRESS_BANDWIDTH.into(), "10M".into());
        let rc = runtime_config(&p).unwrap();
        assert_eq!(
            rc["portMappings"],
            json!([{"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}])
        );
        assert_eq!(rc["dns"]["options"], json!(["ndots:5"]));
        assert_eq!(
            rc["bandwidth"],
            json!({"ingressRate": 10_000_000u64, "ingressBurst": u32::MAX})
        );
        assert_eq!(
            rc["io.kubernetes.cri.pod-annotations"][INGRESS_BANDWIDTH],
            "10M"
        );
        assert!(
            runtime_config(&pod())
                .unwrap()
                .get("portMappings")
                .is_none()
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        let mut p = pod();
        p.metadata.as_mut().unwrap().name = "a;b".into();
        assert!(
            cni_args(&p, "x")
                .unwrap_err()
                .to_string()
                .contains("metadata.name")
        );
        type Mutation = fn(&mut PodSandboxConfig);
        let cases: [(Mutation, &str); 5] = [
            (
                |p| {
                    p.port_mappings = vec![PortMapping {
                        container_port: 0,
                        host_port: 80,
                        ..Default::default()
                    }]
                },
                "port_mappings[0].container_port",
            ),
            (
                |p| {
                    p.port_mappings = vec![PortMapping {
                        container_port: 80,
                        host_port: 70000,
                        ..Default::default()
                    }]
                },
                "port_mappings[0].host_port",
            ),
            (
                |p| {
                    p.port_mappings = vec![PortMapping {
                        container_port: 80,
                        host_port: 80,
                        host_ip: "nope".into(),
                        ..Default::default()
                    }]
                },
                "port_mappings[0].host_ip",
            ),
            (
                |p| {
                    p.annotations.insert(EGRESS_BANDWIDTH.into(), "fast".into());
                },
                EGRESS_BANDWIDTH,
            ),
            (
                |p| {
                    p.annotations.insert(EGRESS_BANDWIDTH.into(), "10".into());
                },
                "outside",
            ),
        ];
        for (mutate, want) in cases {
            let mut p = pod();
            mutate(&mut p);
            let e = runtime_config(&p).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }
}
