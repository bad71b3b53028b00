use std::path::PathBuf;

use corral_cri_api::v1::{
    Device, HugepageLimit, LinuxContainerConfig, LinuxContainerResources, NamespaceMode,
};
use oci_spec::runtime::{LinuxDeviceType, LinuxNamespaceType, LinuxResources, Spec};

use super::super::SpecError;
use super::super::resources::resources;
use super::{Fixture, invalid, symlink};

/// (type, path) of each namespace in the spec, in order.
fn namespaces(spec: &Spec) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
    spec.linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .clone()
        .unwrap()
        .iter()
        .map(|n| (n.typ(), n.path().clone()))
        .collect()
}

#[test]
fn namespaces_join_the_pod_pins_by_default() {
    let f = Fixture::new();
    let spec = f.spec().unwrap();
    assert_eq!(
        namespaces(&spec),
        [
            (LinuxNamespaceType::Mount, None),
            (LinuxNamespaceType::Pid, None),
            (LinuxNamespaceType::Network, f.net.clone()),
            (LinuxNamespaceType::Ipc, f.ipc.clone()),
            (LinuxNamespaceType::Uts, f.uts.clone()),
            (LinuxNamespaceType::Cgroup, None),
        ]
    );
    assert_eq!(spec.hostname().as_deref(), Some("web-0"));
}

#[test]
fn pid_namespace_per_mode() {
    let mut f = Fixture::new();
    let pid_of = |f: &Fixture| {
        namespaces(&f.spec().unwrap())
            .into_iter()
            .find(|(t, _)| *t == LinuxNamespaceType::Pid)
    };
    let pod_pid = f.dir.path().join("pins/pid");
    f.pid = Some(pod_pid.clone());
    f.ns().pid = NamespaceMode::Pod as i32;
    assert_eq!(pid_of(&f), Some((LinuxNamespaceType::Pid, Some(pod_pid))));
    f.ns().pid = NamespaceMode::Container as i32;
    assert_eq!(pid_of(&f), Some((LinuxNamespaceType::Pid, None)));
    f.ns().pid = NamespaceMode::Node as i32;
    assert_eq!(pid_of(&f), None);
    f.ns().pid = NamespaceMode::Target as i32;
    f.ns().target_id = "abc".into();
    assert!(invalid(f.spec()).contains("target \"abc\""));
    let target = PathBuf::from("/proc/42/ns/pid");
    f.target = Some(target.clone());
    assert_eq!(pid_of(&f), Some((LinuxNamespaceType::Pid, Some(target))));
    // POD without a pod-wide namespace: a new one.
    f.pid = None;
    f.ns().pid = NamespaceMode::Pod as i32;
    assert_eq!(pid_of(&f), Some((LinuxNamespaceType::Pid, None)));
}

#[test]
fn host_network_omits_net_ipc_uts_and_hostname() {
    let mut f = Fixture::new();
    f.host_network();
    let spec = f.spec().unwrap();
    let types: Vec<_> = namespaces(&spec).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        types,
        [
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Cgroup
        ]
    );
    assert_eq!(spec.hostname(), &None);
    let mut f = Fixture::new();
    f.ns().network = NamespaceMode::Target as i32;
    assert!(invalid(f.spec()).contains("namespace_options.network"));
}

fn linux_resources(f: &Fixture) -> LinuxResources {
    f.spec()
        .unwrap()
        .linux()
        .as_ref()
        .unwrap()
        .resources()
        .clone()
        .unwrap()
}

/// `memory.high`, or `hugetlb.2MB.max` where only the hugetlb controller is in cgroup v2.
fn unified_key() -> Option<&'static str> {
    ["memory.high", "hugetlb.2MB.max"]
        .into_iter()
        .find(|k| corral_runtime::cgroups::unified_key_problem(k).is_none())
}

#[test]
fn resources_are_mapped() {
    let mut f = Fixture::new();
    let r = LinuxContainerResources {
        cpu_period: 100_000,
        cpu_quota: 50_000,
        cpu_shares: 512,
        memory_limit_in_bytes: 1 << 30,
        memory_swap_limit_in_bytes: 0,
        oom_score_adj: 999,
        cpuset_cpus: "0".into(),
        cpuset_mems: "0".into(),
        hugepage_limits: vec![HugepageLimit {
            page_size: "2MB".into(),
            limit: 1 << 21,
        }],
        // A v2 key this host can take (on a v1 or hybrid host, one its cgroup2 mount has).
        unified: unified_key()
            .map(|k| (k.to_string(), "1000000".to_string()))
            .into_iter()
            .collect(),
    };
    f.config.linux = Some(LinuxContainerConfig {
        resources: Some(r.clone()),
        security_context: None,
    });
    let spec = f.spec().unwrap();
    assert_eq!(spec.process().as_ref().unwrap().oom_score_adj(), Some(999));
    let res = linux_resources(&f);
    let cpu = res.cpu().clone().unwrap();
    assert_eq!(cpu.period(), Some(100_000));
    assert_eq!(cpu.quota(), Some(50_000));
    assert_eq!(cpu.shares(), Some(512));
    assert_eq!(cpu.cpus().as_deref(), Some("0"));
    assert_eq!(cpu.mems().as_deref(), Some("0"));
    let mem = res.memory().unwrap();
    assert_eq!(mem.limit(), Some(1 << 30));
    assert_eq!(mem.swap(), None);
    let huge = res.hugepage_limits().clone().unwrap();
    assert_eq!(huge[0].page_size(), "2MB");
    assert_eq!(huge[0].limit(), 1 << 21);
    match unified_key() {
        Some(k) => assert_eq!(res.unified().clone().unwrap()[k], "1000000"),
        None => assert!(res.unified().is_none()),
    }
    assert_eq!(res.pids(), &None);

    let (res, _) = resources(&LinuxContainerResources {
        memory_swap_limit_in_bytes: 2 << 30,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(res.memory().unwrap().swap(), Some(2 << 30));
    assert_eq!(res.cpu(), &None);

    let (res, adj) = resources(&LinuxContainerResources::default()).unwrap();
    assert_eq!((res.cpu(), res.memory(), adj), (&None, &None, 0));
}

#[test]
fn bad_resources_are_invalid() {
    let bad = [
        LinuxContainerResources {
            cpu_shares: -1,
            ..Default::default()
        },
        LinuxContainerResources {
            memory_limit_in_bytes: -5,
            ..Default::default()
        },
        LinuxContainerResources {
            oom_score_adj: 1001,
            ..Default::default()
        },
        LinuxContainerResources {
            cpuset_cpus: "0\n1".into(),
            ..Default::default()
        },
        LinuxContainerResources {
            cpuset_cpus: "3-1".into(),
            ..Default::default()
        },
        LinuxContainerResources {
            cpuset_cpus: "0-".into(),
            ..Default::default()
        },
        LinuxContainerResources {
            cpuset_cpus: "0,,1".into(),
            ..Default::default()
        },
        LinuxContainerResources {
            // No test host has this many CPUs online.
            cpuset_cpus: "0,65000".into(),
            ..Default::default()
        },
        LinuxContainerResources {
            cpuset_mems: "0-70000".into(),
            ..Default::default()
        },
        LinuxContainerResources {
            hugepage_limits: vec![HugepageLimit {
                page_size: "2XB".into(),
                limit: 1,
            }],
            ..Default::default()
        },
        LinuxContainerResources {
            unified: [("../escape".to_string(), "1".to_string())].into(),
            ..Default::default()
        },
    ];
    for r in bad {
        assert!(resources(&r).is_err(), "{r:?}");
    }
}

#[test]
fn default_devices_and_masked_paths() {
    let f = Fixture::new();
    let spec = f.spec().unwrap();
    let linux = spec.linux().clone().unwrap();
    let devs = linux.devices().clone().unwrap();
    assert_eq!(devs.len(), 6);
    assert!(devs.iter().any(|d| d.path().to_str() == Some("/dev/null")
        && d.major() == 1
        && d.minor() == 3
        && d.file_mode() == Some(0o666)));
    let rules = linux
        .resources()
        .clone()
        .unwrap()
        .devices()
        .clone()
        .unwrap();
    assert!(!rules[0].allow() && rules[0].major().is_none());
    assert_eq!(rules[0].access().as_deref(), Some("rwm"));
    assert!(
        rules
            .iter()
            .any(|r| r.allow() && r.major() == Some(136) && r.minor().is_none())
    );
    let masked = linux.masked_paths().clone().unwrap();
    assert!(masked.contains(&"/proc/kcore".to_string()));
    assert_eq!(masked.len(), 11);
    assert_eq!(linux.readonly_paths().clone().unwrap().len(), 5);
}

#[test]
fn cri_devices_are_stat_ed_on_the_host() {
    let mut f = Fixture::new();
    let link = f.dir.path().join("zero-link");
    symlink("/dev/zero", &link);
    f.config.devices = vec![
        Device {
            container_path: "/dev/myzero".into(),
            host_path: link.to_str().unwrap().into(),
            permissions: "rw".into(),
        },
        Device {
            container_path: "/dev/n".into(),
            host_path: "/dev/null".into(),
            permissions: String::new(),
        },
    ];
    let linux = f.spec().unwrap().linux().clone().unwrap();
    let devs = linux.devices().clone().unwrap();
    let z = devs
        .iter()
        .find(|d| d.path().to_str() == Some("/dev/myzero"))
        .unwrap();
    assert_eq!((z.typ(), z.major(), z.minor()), (LinuxDeviceType::C, 1, 5));
    let rules = linux
        .resources()
        .clone()
        .unwrap()
        .devices()
        .clone()
        .unwrap();
    let last = &rules[rules.len() - 2..];
    assert_eq!(
        (
            last[0].major(),
            last[0].minor(),
            last[0].access().as_deref()
        ),
        (Some(1), Some(5), Some("rw"))
    );
    assert_eq!(last[1].access().as_deref(), Some("rwm"));

    f.config.devices = vec![Device {
        container_path: "/dev/x".into(),
        host_path: "/dev/does-not-exist".into(),
        permissions: "r".into(),
    }];
    assert!(
        matches!(f.spec(), Err(SpecError::NotFound(m)) if m.starts_with("devices[0].host_path"))
    );
    f.config.devices[0].host_path = f.rootfs().to_str().unwrap().into();
    assert!(invalid(f.spec()).contains("is not a device"));
    f.config.devices[0].host_path = "/dev/null".into();
    f.config.devices[0].permissions = "rx".into();
    assert!(invalid(f.spec()).starts_with("devices[0].permissions"));
}
