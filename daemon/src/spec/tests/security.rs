//! Seccomp, privileged, masked paths, AppArmor/SELinux, recursive read-only mounts and pod
//! resources in the generated spec (what the container then sees is checked through the socket
//! in `tests/tests/security_context.rs`).

use corral_cri_api::v1::security_profile::ProfileType;
use corral_cri_api::v1::{
    Capability as CriCaps, LinuxContainerResources, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, Mount as CriMount, MountPropagation, SeLinuxOption,
    SecurityProfile,
};
use oci_spec::runtime::{LinuxSeccompAction, Spec};

use super::super::SpecError;
use super::{Fixture, invalid, strings};

fn seccomp_allows(spec: &Spec, name: &str) -> bool {
    let s = spec.linux().as_ref().unwrap().seccomp().clone().unwrap();
    s.syscalls().as_ref().unwrap().iter().any(|r| {
        r.action() == LinuxSeccompAction::ScmpActAllow
            && r.names().iter().any(|n| n == name)
            && r.args().as_ref().is_none_or(|a| a.is_empty())
    })
}

fn profile(typ: ProfileType, localhost_ref: &str) -> Option<SecurityProfile> {
    Some(SecurityProfile {
        profile_type: typ as i32,
        localhost_ref: localhost_ref.into(),
    })
}

#[test]
fn seccomp_default_follows_the_bounding_set() {
    let mut f = Fixture::new();
    // No profile: unconfined (the CRI's default).
    assert!(
        f.spec()
            .unwrap()
            .linux()
            .as_ref()
            .unwrap()
            .seccomp()
            .is_none()
    );

    f.sc().seccomp = profile(ProfileType::RuntimeDefault, "");
    let spec = f.spec().unwrap();
    let s = spec.linux().as_ref().unwrap().seccomp().clone().unwrap();
    assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(s.default_errno_ret(), Some(libc::EPERM as u32));
    assert!(seccomp_allows(&spec, "read") && seccomp_allows(&spec, "execve"));
    for denied in [
        "mount",
        "unshare",
        "setns",
        "reboot",
        "kexec_load",
        "ptrace_nope",
    ] {
        assert!(!seccomp_allows(&spec, denied), "{denied}");
    }
    // clone3 fails with ENOSYS so libcs fall back to clone, which may not make namespaces.
    let rules = s.syscalls().clone().unwrap();
    let clone3 = rules
        .iter()
        .find(|r| r.names().contains(&"clone3".to_string()))
        .unwrap();
    assert_eq!(clone3.errno_ret(), Some(libc::ENOSYS as u32));

    // SYS_ADMIN in the bounding set brings mount and an unrestricted clone.
    f.sc().capabilities = Some(CriCaps {
        add_capabilities: strings(&["SYS_ADMIN"]),
        ..Default::default()
    });
    let spec = f.spec().unwrap();
    assert!(seccomp_allows(&spec, "mount") && seccomp_allows(&spec, "clone"));

    // The deprecated path form.
    let mut f = Fixture::new();
    f.sc().seccomp_profile_path_set("runtime/default");
    assert!(
        f.spec()
            .unwrap()
            .linux()
            .as_ref()
            .unwrap()
            .seccomp()
            .is_some()
    );
    f.sc().seccomp_profile_path_set("unconfined");
    assert!(
        f.spec()
            .unwrap()
            .linux()
            .as_ref()
            .unwrap()
            .seccomp()
            .is_none()
    );
    f.sc().seccomp_profile_path_set("bogus");
    assert!(invalid(f.spec()).contains("seccomp_profile_path"));
}

/// Sets the deprecated field without a deprecation warning at every call.
trait DeprecatedPaths {
    fn seccomp_profile_path_set(&mut self, v: &str);
}

impl DeprecatedPaths for corral_cri_api::v1::LinuxContainerSecurityContext {
    #[allow(deprecated)]
    fn seccomp_profile_path_set(&mut self, v: &str) {
        self.seccomp_profile_path = v.into();
    }
}

#[test]
fn seccomp_localhost_profiles() {
    let mut f = Fixture::new();
    let path = f.dir.path().join("profile.json");
    let p = path.to_str().unwrap().to_string();

    f.sc().seccomp = profile(ProfileType::Localhost, &p);
    match f.spec() {
        Err(SpecError::NotFound(m)) => assert!(m.contains("localhost_ref") && m.contains(&p)),
        other => panic!("{other:?}"),
    }
    std::fs::write(&path, "{not json").unwrap();
    assert!(invalid(f.spec()).contains("is not JSON"));
    std::fs::write(&path, r#"{"defaultAction": "SCMP_ACT_BOGUS"}"#).unwrap();
    assert!(invalid(f.spec()).contains("not a seccomp profile"));
    f.sc().seccomp = profile(ProfileType::Localhost, "relative.json");
    assert!(invalid(f.spec()).contains("absolute"));
    f.sc().seccomp = profile(ProfileType::RuntimeDefault, &p);
    assert!(invalid(f.spec()).contains("localhost_ref"));

    // A Docker-format profile: one name per rule, conditions on capabilities.
    std::fs::write(
        &path,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "archMap": [{"architecture": "SCMP_ARCH_X86_64",
            "subArchitectures": ["SCMP_ARCH_X86"]}],
            "syscalls": [
              {"name": "mkdir", "action": "SCMP_ACT_ERRNO", "comment": "no dirs"},
              {"names": ["chroot"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_SYS_CHROOT"]}},
              {"names": ["sethostname"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"]}}
            ]}"#,
    )
    .unwrap();
    f.sc().seccomp = profile(ProfileType::Localhost, &p);
    let spec = f.spec().unwrap();
    let s = spec.linux().as_ref().unwrap().seccomp().clone().unwrap();
    assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActAllow);
    let names: Vec<String> = s
        .syscalls()
        .clone()
        .unwrap()
        .iter()
        .flat_map(|r| r.names().clone())
        .collect();
    // The default set has SYS_CHROOT, not SYS_ADMIN: chroot's rule is excluded, sethostname's
    // is not included.
    assert_eq!(names, ["mkdir"]);
}

fn privileged_pod(f: &mut Fixture) {
    f.pod.linux = Some(LinuxPodSandboxConfig {
        security_context: Some(LinuxSandboxSecurityContext {
            privileged: true,
            ..Default::default()
        }),
        ..Default::default()
    });
}

#[test]
fn privileged_needs_a_privileged_pod_and_lifts_confinement() {
    let mut f = Fixture::new();
    f.sc().privileged = true;
    f.sc().seccomp = profile(ProfileType::RuntimeDefault, "");
    assert!(invalid(f.spec()).contains("pod sandbox is not privileged"));

    privileged_pod(&mut f);
    let spec = f.spec().unwrap();
    let linux = spec.linux().clone().unwrap();
    assert!(linux.seccomp().is_none());
    assert_eq!(linux.masked_paths().as_deref(), Some(&[][..]));
    assert_eq!(linux.readonly_paths().as_deref(), Some(&[][..]));
    let rules = linux
        .resources()
        .clone()
        .unwrap()
        .devices()
        .clone()
        .unwrap();
    assert_eq!(rules.len(), 1);
    assert!(rules[0].allow() && rules[0].typ().is_none() && rules[0].major().is_none());
    // The host's devices, e.g. /dev/null under its own name.
    let devices = linux.devices().clone().unwrap();
    assert!(devices.iter().any(|d| d.path().as_os_str() == "/dev/null"));
    assert!(!devices.iter().any(|d| d.path().starts_with("/dev/pts")));
    let caps = spec
        .process()
        .clone()
        .unwrap()
        .capabilities()
        .clone()
        .unwrap();
    assert_eq!(
        caps.bounding().clone().unwrap(),
        crate::spec::process::held_capabilities()
    );
    for dest in ["/sys", "/sys/fs/cgroup"] {
        let m = spec
            .mounts()
            .clone()
            .unwrap()
            .into_iter()
            .find(|m| m.destination().as_os_str() == dest)
            .unwrap();
        let opts = m.options().clone().unwrap();
        assert!(opts.contains(&"rw".to_string()) && !opts.contains(&"ro".to_string()));
    }
}

#[test]
fn masked_and_readonly_paths_follow_the_request() {
    let mut f = Fixture::new();
    f.sc().masked_paths = strings(&["/proc/kcore", "/secret//dir/"]);
    f.sc().readonly_paths = strings(&["/proc/sys"]);
    let spec = f.spec().unwrap();
    let linux = spec.linux().clone().unwrap();
    assert_eq!(
        linux.masked_paths().clone().unwrap(),
        strings(&["/proc/kcore", "/secret/dir"])
    );
    assert_eq!(
        linux.readonly_paths().clone().unwrap(),
        strings(&["/proc/sys"])
    );
    f.sc().masked_paths = strings(&["relative"]);
    assert!(invalid(f.spec()).contains("security_context.masked_paths[0]"));
}

#[test]
fn apparmor_and_selinux_are_refused_without_the_module() {
    let mut f = Fixture::new();
    f.sc().apparmor = profile(ProfileType::RuntimeDefault, "");
    assert!(
        f.spec()
            .unwrap()
            .process()
            .clone()
            .unwrap()
            .apparmor_profile()
            .is_none()
    );
    f.sc().apparmor = profile(ProfileType::Localhost, "my-profile");
    match f.spec() {
        Err(SpecError::FailedPrecondition(m)) => {
            assert!(
                m.contains("security_context.apparmor") && m.contains("not enabled"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
    // A host with AppArmor: a loaded profile applies, another is NotFound.
    std::fs::write(f.lsm_file("apparmor_enabled"), "Y\n").unwrap();
    std::fs::write(
        f.lsm_file("apparmor_profiles"),
        "my-profile (enforce)\nother (complain)\n",
    )
    .unwrap();
    let spec = f.spec().unwrap();
    assert_eq!(
        spec.process()
            .clone()
            .unwrap()
            .apparmor_profile()
            .as_deref(),
        Some("my-profile")
    );
    f.sc().apparmor = profile(ProfileType::Localhost, "missing");
    assert!(matches!(f.spec(), Err(SpecError::NotFound(_))));
    f.sc().apparmor = None;

    f.sc().selinux_options = Some(SeLinuxOption::default());
    assert!(f.spec().is_ok());
    f.sc().selinux_options = Some(SeLinuxOption {
        level: "s0:c1,c2".into(),
        ..Default::default()
    });
    assert!(matches!(f.spec(), Err(SpecError::FailedPrecondition(_))));
    std::fs::write(f.lsm_file("selinux_enforce"), "1").unwrap();
    let spec = f.spec().unwrap();
    assert_eq!(
        spec.process().clone().unwrap().selinux_label().as_deref(),
        Some("system_u:system_r:container_t:s0:c1,c2")
    );
}

#[test]
fn recursive_read_only_mounts_need_readonly_and_private() {
    let mut f = Fixture::new();
    let host = f.dir.path().join("vol");
    std::fs::create_dir(&host).unwrap();
    let m = CriMount {
        container_path: "/data".into(),
        host_path: host.to_str().unwrap().into(),
        readonly: true,
        recursive_read_only: true,
        ..Default::default()
    };
    f.config.mounts = vec![m.clone()];
    let spec = f.spec().unwrap();
    let opts = spec
        .mounts()
        .clone()
        .unwrap()
        .into_iter()
        .find(|m| m.destination().as_os_str() == "/data")
        .unwrap()
        .options()
        .clone()
        .unwrap();
    assert!(opts.contains(&"rro".to_string()), "{opts:?}");
    f.config.mounts = vec![CriMount {
        readonly: false,
        ..m.clone()
    }];
    assert!(invalid(f.spec()).contains("mounts[0].recursive_read_only: needs readonly"));
    f.config.mounts = vec![CriMount {
        propagation: MountPropagation::PropagationHostToContainer as i32,
        ..m
    }];
    assert!(invalid(f.spec()).contains("PROPAGATION_PRIVATE"));
}

#[test]
fn pod_resources_add_the_overhead() {
    use crate::spec::pod_resources;
    let total = LinuxContainerResources {
        memory_limit_in_bytes: 256 << 20,
        cpu_shares: 1024,
        cpu_quota: 100_000,
        cpu_period: 100_000,
        ..Default::default()
    };
    let overhead = LinuxContainerResources {
        memory_limit_in_bytes: 32 << 20,
        cpu_shares: 102,
        cpu_quota: 5_000,
        cpu_period: 50_000,
        ..Default::default()
    };
    let r = pod_resources(Some(&total), Some(&overhead))
        .unwrap()
        .unwrap();
    assert_eq!(r.memory().unwrap().limit(), Some(288 << 20));
    let cpu = r.cpu().clone().unwrap();
    assert_eq!(
        (cpu.shares(), cpu.quota(), cpu.period()),
        (Some(1126), Some(110_000), Some(100_000))
    );
    // An overhead alone limits memory and quota nothing.
    let r = pod_resources(None, Some(&overhead)).unwrap().unwrap();
    assert!(r.memory().is_none() && r.cpu().clone().unwrap().quota().is_none());
    assert!(pod_resources(None, None).unwrap().is_none());
    let bad = LinuxContainerResources {
        cpu_shares: -3,
        ..Default::default()
    };
    assert!(invalid(pod_resources(None, Some(&bad))).starts_with("linux.overhead:"));
}
