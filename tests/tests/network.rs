//! Pod networking on the built-in network (corrald over netlink) and through the real CNI
//! plugins (bridge, host-local, portmap, bandwidth, tuning): pod IPs, localhost and pod-to-pod
//! traffic, host ports, resolv.conf and hosts, readiness, configs picked up without a restart,
//! failures that leave nothing behind, DEL after a daemon restart, and pods the plugins
//! attached before the built-in network moved in process. Each daemon has its own bridge and
//! /24 (see `corral_tests::netlease`).

use crate::common;

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use common::pod::{PodEnv, Runtime, env, env_with, host_network, iptables_rules_for, parse_log};
use corral_cri_api::v1::{
    DnsConfig, NetworkConfig, PodSandboxStatus, PodSandboxStatusRequest, PortMapping, Protocol,
    RuntimeConfig, StatusRequest, StopPodSandboxRequest, UpdateRuntimeConfigRequest,
};
use corral_tests::daemon::DaemonOptions;

async fn pod_status(rt: &mut Runtime, id: &str) -> Result<PodSandboxStatus> {
    rt.pod_sandbox_status(PodSandboxStatusRequest {
        pod_sandbox_id: id.to_owned(),
        verbose: false,
    })
    .await?
    .into_inner()
    .status
    .context("no status")
}

/// The pod's primary IP, checked to be in `subnet` (a /24 given as `a.b.c.0/24`).
async fn pod_ip(rt: &mut Runtime, id: &str, subnet: &str) -> Result<IpAddr> {
    let net = pod_status(rt, id)
        .await?
        .network
        .context("no network status")?;
    let ip: IpAddr = net
        .ip
        .parse()
        .with_context(|| format!("pod IP {:?}", net.ip))?;
    let prefix = subnet.trim_end_matches("0/24");
    if !ip.to_string().starts_with(prefix) {
        bail!("pod IP {ip} is not in {subnet}");
    }
    Ok(ip)
}

/// `(NetworkReady status, reason, message)` from Status.
async fn network_ready(rt: &mut Runtime) -> Result<(bool, String, String)> {
    let status = rt
        .status(StatusRequest { verbose: false })
        .await?
        .into_inner()
        .status
        .context("no runtime status")?;
    let c = status
        .conditions
        .into_iter()
        .find(|c| c.r#type == "NetworkReady")
        .context("no NetworkReady condition")?;
    Ok((c.status, c.reason, c.message))
}

/// The text lines of container `name`'s log.
fn log_lines(e: &PodEnv, name: &str) -> Vec<String> {
    parse_log(&std::fs::read_to_string(e.log_file(name)).unwrap_or_default())
        .into_iter()
        .map(|(_, _, t)| t)
        .collect()
}

/// Waits until container `name` has logged a line containing `want`.
async fn wait_log(e: &PodEnv, name: &str, want: &str, within: Duration) -> Result<Vec<String>> {
    let until = Instant::now() + within;
    loop {
        let lines = log_lines(e, name);
        if lines.iter().any(|l| l.contains(want)) {
            return Ok(lines);
        }
        if Instant::now() > until {
            bail!("{name} never logged {want:?}; log: {lines:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A TCP port free on 127.0.0.1 right now.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// `GET /` over plain HTTP/1.0, retried until it answers; returns the response.
async fn http_get(addr: &str, within: Duration) -> Result<String> {
    let until = Instant::now() + within;
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(
                &addr.parse().map_err(std::io::Error::other)?,
                Duration::from_secs(2),
            )?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })();
        match attempt {
            Ok(r) if !r.is_empty() => return Ok(r),
            _ if Instant::now() > until => bail!("no HTTP answer from {addr}: {attempt:?}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

const HTTPD: &str = "mkdir -p /tmp/www && echo hello-from-web > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www";

#[tokio::test]
async fn pods_reach_each_other_over_localhost_pod_ips_and_host_ports() -> Result<()> {
    let mut e = env().await?;
    let subnet = e.d.net().subnet.clone();
    let (ready, _, message) = network_ready(&mut e.rt).await?;
    assert!(ready, "built-in network not ready: {message}");

    let host_port = free_port()?;
    let mut web = e.pod_config("web");
    web.port_mappings = vec![PortMapping {
        protocol: Protocol::Tcp as i32,
        container_port: 8080,
        host_port: host_port.into(),
        host_ip: "127.0.0.1".into(),
    }];
    web.dns_config = Some(DnsConfig {
        servers: vec!["10.96.0.10".into()],
        searches: vec!["test.svc.cluster.local".into(), "svc.cluster.local".into()],
        options: vec!["ndots:5".into(), "timeout:2".into()],
    });
    let web_pod = e.run_pod_with(web).await?;
    let web_ip = pod_ip(&mut e.rt, &web_pod, &subnet).await?;
    e.start(&web_pod, "web", "httpd", &["sh", "-c", HTTPD])
        .await?;

    // A second container of the pod: localhost, and the pod's files.
    let side = "until wget -q -O - http://127.0.0.1:8080/; do sleep 0.1; done; cat /etc/resolv.conf /etc/hosts; ip -4 -o addr show eth0";
    e.start(&web_pod, "web", "side", &["sh", "-c", side])
        .await?;
    let lines = wait_log(&e, "side", "eth0", Duration::from_secs(20)).await?;
    assert!(lines.contains(&"hello-from-web".to_owned()), "{lines:#?}");
    for want in [
        "search test.svc.cluster.local svc.cluster.local",
        "nameserver 10.96.0.10",
        "options ndots:5 timeout:2",
        &format!("{web_ip}\tweb"),
    ] {
        assert!(
            lines.iter().any(|l| l == want),
            "missing {want:?} in {lines:#?}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("inet {web_ip}/24"))),
        "eth0 carries the pod IP: {lines:#?}"
    );

    // Another pod, over the pod IP.
    let client_pod = e.run_pod("client").await?;
    let client_ip = pod_ip(&mut e.rt, &client_pod, &subnet).await?;
    assert_ne!(client_ip, web_ip);
    let fetch = format!("until wget -q -O - http://{web_ip}:8080/; do sleep 0.1; done");
    e.start(&client_pod, "client", "fetch", &["sh", "-c", &fetch])
        .await?;
    wait_log(&e, "fetch", "hello-from-web", Duration::from_secs(20)).await?;

    // The host, through the host port on 127.0.0.1.
    let answer = http_get(&format!("127.0.0.1:{host_port}"), Duration::from_secs(20)).await?;
    assert!(answer.contains("hello-from-web"), "{answer}");

    e.remove_pod(&web_pod).await?;
    e.remove_pod(&client_pod).await?;
    e.assert_clean();
    Ok(())
}

#[tokio::test]
async fn fifty_sandboxes_get_distinct_ips_and_leave_nothing() -> Result<()> {
    let mut e = env().await?;
    let subnet = e.d.net().subnet.clone();
    let fds = |e: &PodEnv| {
        let pid = e.d.pid().unwrap_or(0);
        std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
    };
    let fds_before = fds(&e);
    let mut ids = Vec::new();
    for batch in [20, 30] {
        let calls: Vec<_> = (0..batch)
            .map(|i| {
                let config = e.pod_config(&format!("many-{}-{i}", ids.len()));
                let mut rt = e.rt.clone();
                tokio::spawn(async move {
                    rt.run_pod_sandbox(corral_cri_api::v1::RunPodSandboxRequest {
                        config: Some(config),
                        runtime_handler: String::new(),
                    })
                    .await
                    .map(|r| r.into_inner().pod_sandbox_id)
                })
            })
            .collect();
        for call in calls {
            ids.push(call.await??);
        }
    }
    let mut ips = Vec::new();
    for id in &ids {
        ips.push(pod_ip(&mut e.rt, id, &subnet).await?);
    }
    let mut distinct = ips.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 50, "{ips:?}");
    assert_eq!(e.d.ip_reservations().len(), 50);
    assert_eq!(e.d.net().bridge_ports().len(), 50);

    let removals: Vec<_> = ids
        .iter()
        .map(|id| {
            let mut rt = e.rt.clone();
            let id = id.clone();
            tokio::spawn(async move {
                rt.remove_pod_sandbox(corral_cri_api::v1::RemovePodSandboxRequest {
                    pod_sandbox_id: id,
                })
                .await
            })
        })
        .collect();
    for r in removals {
        r.await??;
    }
    e.assert_clean();
    // Nothing per pod stays open in corrald (netlink sockets, reservation locks).
    let fds_after = fds(&e);
    assert!(
        fds_after <= fds_before + 10,
        "corrald had {fds_before} descriptors before 50 pods, {fds_after} after"
    );
    Ok(())
}

/// A network config of the test daemon's own bridge and subnet, with extra plugins after the
/// bridge.
fn conflist(e: &PodEnv, name: &str, extra: serde_json::Value, v6: bool) -> String {
    let net = e.d.net();
    let mut ranges = vec![serde_json::json!([{ "subnet": net.subnet }])];
    if v6 {
        let index = net.bridge.trim_start_matches("crlt");
        ranges.push(serde_json::json!([{ "subnet": format!("fd17:{index}::/64") }]));
    }
    let mut plugins = vec![serde_json::json!({
        "type": "bridge",
        "bridge": net.bridge,
        "isGateway": true,
        "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "ranges": ranges,
            "dataDir": e.d.root().join("cni/networks"),
        },
    })];
    plugins.extend(extra.as_array().cloned().unwrap_or_default());
    serde_json::json!({ "cniVersion": "1.0.0", "name": name, "plugins": plugins }).to_string()
}

#[tokio::test]
async fn readiness_configs_picked_up_failures_and_restarts() -> Result<()> {
    let plugins = tempfile::tempdir()?;
    let slow = plugins.path().join("slow");
    std::fs::write(
        &slow,
        "#!/bin/sh\n[ \"$CNI_COMMAND\" = DEL ] && exit 0\nexec sleep 30\n",
    )?;
    std::fs::set_permissions(&slow, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let mut e = env_with(DaemonOptions {
        network_config: format!(
            "builtin_default = false\nplugin_timeout_secs = 2\nplugin_dirs = [\"/usr/lib/cni\", {:?}]\n",
            plugins.path()
        ),
        ..Default::default()
    })
    .await?;
    let conf_dir = e.d.cni_conf_dir();

    // No config: not ready, pods with their own network refused, host-network pods fine.
    let (ready, reason, message) = network_ready(&mut e.rt).await?;
    assert!(!ready);
    assert_eq!(reason, "NetworkPluginNotReady");
    assert!(message.contains("no network config found"), "{message}");
    let err = e.run_pod("early").await.unwrap_err();
    let status = err
        .downcast_ref::<tonic::Status>()
        .context("a gRPC error")?;
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("pod network is not ready"),
        "{status:?}"
    );
    let host = host_network(e.pod_config("host"));
    let host_pod = e.run_pod_with(host).await?;
    assert_eq!(
        pod_status(&mut e.rt, &host_pod)
            .await?
            .network
            .unwrap_or_default()
            .ip,
        ""
    );

    // A config dropped in later is used without a restart: dual-stack IPs.
    std::fs::create_dir_all(&conf_dir)?;
    std::fs::write(
        conf_dir.join("10-dual.conflist"),
        conflist(&e, "dual", serde_json::json!([]), true),
    )?;
    let (ready, _, message) = network_ready(&mut e.rt).await?;
    assert!(ready, "config not picked up: {message}");
    let dual = e.run_pod("dual").await?;
    let net = pod_status(&mut e.rt, &dual)
        .await?
        .network
        .context("network")?;
    assert!(net.ip.parse::<IpAddr>()?.is_ipv4(), "{net:?}");
    assert_eq!(net.additional_ips.len(), 1, "{net:?}");
    assert!(
        net.additional_ips[0].ip.parse::<IpAddr>()?.is_ipv6(),
        "{net:?}"
    );

    // The attachment survives a daemon crash: after the restart the IP is still reported, and
    // StopPodSandbox releases it (twice is fine).
    e.d.kill()?;
    e.d.start_again().await?;
    e.rt = e.d.runtime().await?;
    assert_eq!(
        pod_status(&mut e.rt, &dual)
            .await?
            .network
            .context("network")?
            .ip,
        net.ip
    );
    assert_eq!(
        e.d.ip_reservations().len(),
        2,
        "one IPv4 and one IPv6 reservation"
    );
    for _ in 0..2 {
        e.rt.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: dual.clone(),
        })
        .await?;
    }
    assert!(e.d.ip_reservations().is_empty());
    e.remove_pod(&dual).await?;

    // A real plugin failing after the bridge plugin succeeded: the error names it, and no
    // namespace, veth, reservation or rule is left.
    std::fs::write(
        conf_dir.join("05-broken.conflist"),
        conflist(
            &e,
            "broken",
            serde_json::json!([{ "type": "tuning", "sysctl": { "net.corral.nonexistent": "1" } }]),
            false,
        ),
    )?;
    let err = e.run_pod("broken").await.unwrap_err();
    let status = err
        .downcast_ref::<tonic::Status>()
        .context("a gRPC error")?;
    assert!(
        status.message().contains("plugin \"tuning\" ADD failed"),
        "{status:?}"
    );
    let pods_dir: Vec<_> = std::fs::read_dir(e.d.state().join("pods"))?
        .flatten()
        .map(|d| d.path())
        .collect();
    assert_eq!(pods_dir.len(), 1, "only the host-network pod: {pods_dir:?}");
    e.assert_network_clean();

    // A plugin that hangs: killed at the time limit, DEADLINE_EXCEEDED naming it.
    std::fs::write(
        conf_dir.join("01-slow.conflist"),
        conflist(&e, "slow", serde_json::json!([{ "type": "slow" }]), false),
    )?;
    let started = Instant::now();
    let err = e.run_pod("slow").await.unwrap_err();
    let status = err
        .downcast_ref::<tonic::Status>()
        .context("a gRPC error")?;
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(
        status
            .message()
            .contains("plugin \"slow\" ADD did not finish within 2 s"),
        "{status:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    e.assert_network_clean();

    // A broken file is skipped for the next valid one; with none valid, not ready.
    for f in ["01-slow.conflist", "05-broken.conflist", "10-dual.conflist"] {
        std::fs::remove_file(conf_dir.join(f))?;
    }
    std::fs::write(conf_dir.join("00-bad.conflist"), "{ not json")?;
    let (ready, _, message) = network_ready(&mut e.rt).await?;
    assert!(!ready);
    assert!(message.contains("00-bad.conflist"), "{message}");

    e.remove_pod(&host_pod).await?;
    e.assert_clean();
    Ok(())
}

#[tokio::test]
async fn bad_network_input_and_pod_cidr() -> Result<()> {
    let mut e = env().await?;
    let subnet = e.d.net().subnet.clone();
    let mut bad = e.pod_config("badport");
    bad.port_mappings = vec![PortMapping {
        protocol: Protocol::Tcp as i32,
        container_port: 80,
        host_port: 80,
        host_ip: "localhost".into(),
    }];
    let err = e.run_pod_with(bad).await.unwrap_err();
    let status = err
        .downcast_ref::<tonic::Status>()
        .context("a gRPC error")?;
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("port_mappings[0].host_ip"),
        "{status:?}"
    );
    let mut bad = e.pod_config("badbw");
    bad.annotations
        .insert("kubernetes.io/egress-bandwidth".into(), "lots".into());
    let err = e.run_pod_with(bad).await.unwrap_err();
    let status = err
        .downcast_ref::<tonic::Status>()
        .context("a gRPC error")?;
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("egress-bandwidth"), "{status:?}");

    let set = |cidr: &str| UpdateRuntimeConfigRequest {
        runtime_config: Some(RuntimeConfig {
            network_config: Some(NetworkConfig {
                pod_cidr: cidr.to_owned(),
            }),
        }),
    };
    let err =
        e.rt.update_runtime_config(set("10.0.0.0/40"))
            .await
            .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("pod_cidr"), "{err:?}");

    // The upper half of this daemon's /24 becomes the built-in network's subnet.
    let upper = subnet.replace(".0/24", ".128/25");
    e.rt.update_runtime_config(set(&upper)).await?;
    let mut shaped = e.pod_config("shaped");
    shaped
        .annotations
        .insert("kubernetes.io/ingress-bandwidth".into(), "10M".into());
    shaped
        .annotations
        .insert("kubernetes.io/egress-bandwidth".into(), "20M".into());
    let pod = e.run_pod_with(shaped).await?;
    let ip = pod_ip(&mut e.rt, &pod, &subnet).await?;
    let IpAddr::V4(v4) = ip else {
        bail!("{ip} is not IPv4")
    };
    assert!(v4.octets()[3] > 128, "{ip} is in {upper}");
    // The bandwidth plugin shapes traffic to the pod on the host side of its veth.
    let ports = e.d.net().bridge_ports();
    assert_eq!(ports.len(), 1, "{ports:?}");
    let out = std::process::Command::new("tc")
        .args(["qdisc", "show", "dev", &ports[0]])
        .output()?;
    let qdiscs = String::from_utf8_lossy(&out.stdout);
    assert!(
        qdiscs.contains("tbf"),
        "no token bucket filter on {}: {qdiscs}",
        ports[0]
    );
    e.remove_pod(&pod).await?;
    assert!(iptables_rules_for(&subnet).is_empty());
    e.assert_clean();
    Ok(())
}

/// The conflist earlier versions ran as the built-in network (bridge, host-local, portmap,
/// bandwidth), on this daemon's bridge, subnet and reservation directory.
fn plugin_builtin(e: &PodEnv) -> String {
    let net = e.d.net();
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "corral",
        "plugins": [
            {
                "type": "bridge", "bridge": net.bridge, "isGateway": true, "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": net.subnet }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                    "dataDir": e.d.root().join("cni/networks"),
                },
            },
            { "type": "portmap", "capabilities": { "portMappings": true } },
            { "type": "bandwidth", "capabilities": { "bandwidth": true } },
        ],
    })
    .to_string()
}

/// `kind` in a pod's `network.json` (none in records of the plugin path before it had one).
fn record_kind(e: &PodEnv, pod: &str) -> Result<String> {
    let path = e.d.root().join("pods").join(pod).join("network.json");
    let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    Ok(rec["kind"].as_str().unwrap_or("").to_owned())
}

#[tokio::test]
async fn builtin_network_honours_plugin_reservations_and_keeps_addresses_over_a_restart()
-> Result<()> {
    let mut e = env().await?;
    let subnet = e.d.net().subnet.clone();
    let conf_dir = e.d.cni_conf_dir();

    // A pod attached by the plugins, as earlier versions' built-in network did.
    std::fs::create_dir_all(&conf_dir)?;
    std::fs::write(conf_dir.join("10-old.conflist"), plugin_builtin(&e))?;
    let old = e.run_pod("old").await?;
    let old_ip = pod_ip(&mut e.rt, &old, &subnet).await?;
    assert_eq!(record_kind(&e, &old)?, "cni");
    std::fs::remove_file(conf_dir.join("10-old.conflist"))?;

    // The in-process network honours the plugin's reservation.
    let new = e.run_pod("new").await?;
    let new_ip = pod_ip(&mut e.rt, &new, &subnet).await?;
    assert_ne!(old_ip, new_ip);
    assert_eq!(record_kind(&e, &new)?, "builtin");
    assert_eq!(e.d.ip_reservations().len(), 2);
    // Pod to pod across the two kinds of attachment.
    e.start(&old, "old", "web", &["sh", "-c", HTTPD]).await?;
    let fetch = format!("until wget -q -O - http://{old_ip}:8080/; do sleep 0.1; done");
    e.start(&new, "new", "fetch", &["sh", "-c", &fetch]).await?;
    wait_log(&e, "fetch", "hello-from-web", Duration::from_secs(20)).await?;

    // A crash of corrald: the addresses stay, and a new pod gets another.
    e.d.kill()?;
    e.d.start_again().await?;
    e.rt = e.d.runtime().await?;
    assert_eq!(pod_ip(&mut e.rt, &new, &subnet).await?, new_ip);
    assert_eq!(pod_ip(&mut e.rt, &old, &subnet).await?, old_ip);
    let third = e.run_pod("third").await?;
    let third_ip = pod_ip(&mut e.rt, &third, &subnet).await?;
    assert!(third_ip != old_ip && third_ip != new_ip, "{third_ip}");
    assert_eq!(e.d.ip_reservations().len(), 3);

    // The old pod's DEL goes to the plugins, the others' to corrald; twice is fine.
    for pod in [&old, &new, &third] {
        for _ in 0..2 {
            e.rt.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: pod.clone(),
            })
            .await?;
        }
    }
    assert!(e.d.ip_reservations().is_empty());
    for pod in [&old, &new, &third] {
        e.remove_pod(pod).await?;
    }
    e.assert_clean();
    Ok(())
}

#[tokio::test]
async fn builtin_network_dual_stack() -> Result<()> {
    let mut e = env().await?;
    let net = e.d.net();
    let (subnet, index) = (
        net.subnet.clone(),
        net.bridge.trim_start_matches("crlt").to_owned(),
    );
    let v6 = format!("fd17:{index}::/64");
    e.rt.update_runtime_config(UpdateRuntimeConfigRequest {
        runtime_config: Some(RuntimeConfig {
            network_config: Some(NetworkConfig {
                pod_cidr: format!("{subnet},{v6}"),
            }),
        }),
    })
    .await?;
    let mut web = e.pod_config("web6");
    let host_port = free_port()?;
    web.port_mappings = vec![PortMapping {
        protocol: Protocol::Tcp as i32,
        container_port: 8080,
        host_port: host_port.into(),
        host_ip: String::new(),
    }];
    let pod = e.run_pod_with(web).await?;
    let status = pod_status(&mut e.rt, &pod)
        .await?
        .network
        .context("network")?;
    let v4: IpAddr = status.ip.parse()?;
    assert!(v4.is_ipv4(), "{status:?}");
    assert_eq!(status.additional_ips.len(), 1, "{status:?}");
    let ip6: IpAddr = status.additional_ips[0].ip.parse()?;
    let v6_net: std::net::Ipv6Addr = format!("fd17:{index}::").parse()?;
    let IpAddr::V6(ip6_addr) = ip6 else {
        bail!("{ip6} is not IPv6")
    };
    assert_eq!(
        ip6_addr.segments()[..4],
        v6_net.segments()[..4],
        "{ip6} in {v6}"
    );
    let gateway = std::net::Ipv6Addr::from(u128::from(v6_net) + 1);
    let show = "ip -6 -o addr show eth0; ip -6 route show default";
    e.start(&pod, "web6", "show", &["sh", "-c", show]).await?;
    let lines = wait_log(&e, "show", "default via", Duration::from_secs(20)).await?;
    assert!(
        lines.iter().any(|l| l.contains(&format!("inet6 {ip6}/64"))),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("default via {gateway}"))),
        "{lines:#?}"
    );
    e.remove_pod(&pod).await?;
    e.assert_clean();
    // No pod's IPv6 DNAT rule is left either (the shared masquerade rule names the bridge).
    let out = std::process::Command::new("ip6tables-save").output()?;
    let left: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&v6_net.to_string()) && !l.contains("corral-net:"))
        .map(str::to_owned)
        .collect();
    assert!(left.is_empty(), "{left:#?}");
    Ok(())
}

/// Median of `v` (sorted in place), in milliseconds.
fn median_ms(v: &mut [Duration]) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

/// Times 30 pods from scratch (RunPodSandbox + CreateContainer + StartContainer) and their
/// StopPodSandbox, on the host network (no network work: the baseline), the built-in network
/// and the plugin chain it replaced; prints medians. A measurement, not a check: `cargo nextest run -p corral-tests --run-ignored
/// only -E 'test(/network_timings/)' --no-capture`.
#[tokio::test]
#[ignore = "a measurement; run by hand"]
async fn network_timings() -> Result<()> {
    let mut e = env().await?;
    let conf_dir = e.d.cni_conf_dir();
    std::fs::create_dir_all(&conf_dir)?;
    let runs = [
        ("host network", None),
        ("built-in", None),
        ("plugins", Some(plugin_builtin(&e))),
        ("built-in again", None),
    ];
    for (label, conflist) in runs {
        match &conflist {
            Some(c) => std::fs::write(conf_dir.join("10-old.conflist"), c)?,
            None => {
                let _ = std::fs::remove_file(conf_dir.join("10-old.conflist"));
            }
        }
        let (mut up, mut run, mut stop) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..32 {
            let name = format!("{}-{i}", label.replace(' ', "-"));
            let t = Instant::now();
            let config = e.pod_config(&name);
            let config = if label == "host network" {
                host_network(config)
            } else {
                config
            };
            let pod = e.run_pod_with(config).await?;
            let ran = t.elapsed();
            e.start(&pod, &name, &format!("c-{name}"), &["sleep", "3600"])
                .await?;
            let started = t.elapsed();
            let t = Instant::now();
            e.rt.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: pod.clone(),
            })
            .await?;
            let stopped = t.elapsed();
            e.remove_pod(&pod).await?;
            // Two warm-ups.
            if i >= 2 {
                run.push(ran);
                up.push(started);
                stop.push(stopped);
            }
        }
        println!(
            "{label}: RunPodSandbox {:.1} ms, pod + container from scratch {:.1} ms, StopPodSandbox {:.1} ms (medians of {})",
            median_ms(&mut run),
            median_ms(&mut up),
            median_ms(&mut stop),
            up.len()
        );
    }
    let _ = std::fs::remove_file(conf_dir.join("10-old.conflist"));
    e.assert_clean();
    Ok(())
}
