use std::os::unix::fs::PermissionsExt;

use corral_cri_api::v1::DnsConfig;

use super::super::pod_files::{DEFAULT_HOSTS, HostFiles, resolv_conf, write_pod_files_from};
use super::super::pod_hostname;
use super::{Fixture, invalid, strings};

fn host_files(f: &Fixture) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = f.dir.path().join("hostetc");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hosts"), "10.0.0.1 node1\n").unwrap();
    std::fs::write(dir.join("resolv.conf"), "nameserver 10.0.0.53\n").unwrap();
    (dir.join("hosts"), dir.join("resolv.conf"))
}

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

#[test]
fn pod_files_from_dns_config() {
    let mut f = Fixture::new();
    let (hosts, resolv) = host_files(&f);
    let host = HostFiles {
        hosts: &hosts,
        resolv_conf: &resolv,
    };
    f.pod.dns_config = Some(DnsConfig {
        servers: strings(&["10.96.0.10", "fd00::a"]),
        searches: strings(&["default.svc.cluster.local", "svc.cluster.local"]),
        options: strings(&["ndots:5", "edns0"]),
    });
    let dir = f.dir.path().join("pod");
    let files = write_pod_files_from(&f.pod, &dir, &host, None).unwrap();
    assert_eq!(files.hostname, dir.join("hostname"));
    assert_eq!(read(&files.hostname), "web-0\n");
    assert_eq!(
        read(&files.resolv_conf),
        "search default.svc.cluster.local svc.cluster.local\n\
         nameserver 10.96.0.10\n\
         nameserver fd00::a\n\
         options ndots:5 edns0\n"
    );
    assert_eq!(read(&files.hosts), DEFAULT_HOSTS);
    for p in [&files.hosts, &files.resolv_conf, &files.hostname] {
        let mode = std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644, "{p:?}");
    }
    // Rewriting replaces; no temporary files stay behind.
    f.pod.hostname = "web-1".into();
    write_pod_files_from(&f.pod, &dir, &host, None).unwrap();
    assert_eq!(read(&files.hostname), "web-1\n");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
}

#[test]
fn host_files_are_copied_without_dns_config_or_with_host_network() {
    let mut f = Fixture::new();
    let (hosts, resolv) = host_files(&f);
    let host = HostFiles {
        hosts: &hosts,
        resolv_conf: &resolv,
    };
    let dir = f.dir.path().join("pod");
    f.pod.dns_config = Some(DnsConfig::default());
    let files = write_pod_files_from(&f.pod, &dir, &host, None).unwrap();
    assert_eq!(read(&files.resolv_conf), "nameserver 10.0.0.53\n");
    assert_eq!(read(&files.hosts), DEFAULT_HOSTS);
    let ip = "10.86.0.7".parse().ok();
    let files = write_pod_files_from(&f.pod, &dir, &host, ip).unwrap();
    let hostname = read(&files.hostname);
    assert_eq!(
        read(&files.hosts),
        format!("{DEFAULT_HOSTS}10.86.0.7\t{}\n", hostname.trim_end())
    );

    f.host_network();
    f.pod.hostname.clear();
    let files = write_pod_files_from(&f.pod, &dir, &host, None).unwrap();
    assert_eq!(read(&files.hosts), "10.0.0.1 node1\n");
    let expected = nix::unistd::gethostname().unwrap();
    assert_eq!(
        read(&files.hostname),
        format!("{}\n", expected.to_string_lossy())
    );

    // A host without the file: an empty one.
    let missing = f.dir.path().join("nope");
    let host = HostFiles {
        hosts: &missing,
        resolv_conf: &missing,
    };
    let files = write_pod_files_from(&f.pod, &dir, &host, None).unwrap();
    assert_eq!(read(&files.hosts), "");
}

#[test]
fn bad_dns_input_is_invalid() {
    let bad = [
        (
            DnsConfig {
                servers: strings(&["10.0.0.1", "not-an-ip"]),
                ..Default::default()
            },
            "dns_config.servers[1]",
        ),
        (
            DnsConfig {
                servers: strings(&["10.0.0.1\nnameserver 6.6.6.6"]),
                ..Default::default()
            },
            "dns_config.servers[0]",
        ),
        (
            DnsConfig {
                servers: strings(&["10.0.0.1%eth0"]),
                ..Default::default()
            },
            "dns_config.servers[0]",
        ),
        (
            DnsConfig {
                searches: strings(&["a.b", "c d"]),
                ..Default::default()
            },
            "dns_config.searches[1]",
        ),
        (
            DnsConfig {
                options: strings(&["ndots:5\nnameserver 1.1.1.1"]),
                ..Default::default()
            },
            "dns_config.options[0]",
        ),
        (
            DnsConfig {
                searches: vec!["x".into(); 33],
                ..Default::default()
            },
            "dns_config.searches",
        ),
    ];
    for (dns, field) in bad {
        let msg = invalid(resolv_conf(&dns));
        assert!(msg.starts_with(field), "{msg}");
    }
    let ok = DnsConfig {
        servers: strings(&["fe80::1%eth0"]),
        ..Default::default()
    };
    assert_eq!(resolv_conf(&ok).unwrap(), "nameserver fe80::1%eth0\n");
}

#[test]
fn bad_hostnames_are_invalid() {
    let mut f = Fixture::new();
    for name in ["a/b", "a\nb", "-a", &"x".repeat(65), "a b"] {
        f.pod.hostname = name.to_string();
        assert!(
            invalid(pod_hostname(&f.pod)).contains("hostname"),
            "{name:?}"
        );
        let dir = f.dir.path().join("pod");
        assert!(super::super::write_pod_files(&f.pod, &dir, None).is_err());
        // container_spec validates it too.
        assert!(f.spec().is_err());
    }
    f.pod.hostname = "my-pod.sub_domain1".into();
    assert_eq!(pod_hostname(&f.pod).unwrap(), "my-pod.sub_domain1");
}
