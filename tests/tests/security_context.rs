//! Security contexts and resources as the container sees them: users and groups, capabilities,
//! seccomp, no_new_privs, read-only rootfs, masked and read-only paths, privileged, recursive
//! read-only mounts, cgroup limits (container and pod), and the errors for bad requests.

use crate::common;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use common::pod::{PodEnv, env, parse_log};
use corral_cri_api::v1::security_profile::ProfileType;
use corral_cri_api::v1::{
    Capability, ContainerConfig, Int64Value, LinuxContainerConfig, LinuxContainerResources,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, Mount,
    SecurityProfile, StartContainerRequest, StatusRequest, StopPodSandboxRequest,
    UpdateContainerResourcesRequest, UpdatePodSandboxResourcesRequest,
};

fn with_sc(mut c: ContainerConfig, sc: LinuxContainerSecurityContext) -> ContainerConfig {
    c.linux
        .get_or_insert_with(LinuxContainerConfig::default)
        .security_context = Some(sc);
    c
}

fn profile(typ: ProfileType, localhost_ref: &str) -> Option<SecurityProfile> {
    Some(SecurityProfile {
        profile_type: typ as i32,
        localhost_ref: localhost_ref.into(),
    })
}

/// Runs `config` to its end and returns its stdout and stderr lines, in order.
async fn run(
    e: &mut PodEnv,
    pod: &str,
    pod_name: &str,
    config: ContainerConfig,
) -> Result<Vec<String>> {
    let name = config.metadata.as_ref().context("metadata")?.name.clone();
    let id = e.create(pod, pod_name, config).await?;
    e.rt.start_container(StartContainerRequest {
        container_id: id.clone(),
    })
    .await?;
    e.wait_exited(&id, Duration::from_secs(20)).await?;
    Ok(parse_log(&std::fs::read_to_string(e.log_file(&name))?)
        .into_iter()
        .map(|(_, _, line)| line)
        .collect())
}

/// The value of `key:` in /proc/self/status-like lines.
fn field<'a>(lines: &'a [String], key: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map_or("", str::trim)
}

fn line_after<'a>(lines: &'a [String], marker: &str) -> &'a str {
    lines
        .iter()
        .skip_while(|l| *l != marker)
        .nth(1)
        .map_or("", String::as_str)
}

/// The capability mask this (root) process holds, as /proc/self/status prints it.
fn held_caps() -> Result<String> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("CapPrm:"))
        .context("CapPrm")?
        .trim()
        .to_string())
}

const PROBE: &str = "echo uid; id -u; echo gid; id -g; echo groups; id -G; \
    grep -E '^(CapBnd|CapEff|Seccomp|NoNewPrivs):' /proc/self/status; \
    echo rootfs; touch /probe 2>&1 || true; \
    echo etc; touch /etc/probe 2>&1 || true; \
    echo kcore; wc -c < /proc/timer_list; \
    echo userns; unshare -U true 2>&1 && echo unshared || true; \
    echo mkdir; mkdir /tmp/d 2>&1 && echo made || true; \
    echo oom; cat /proc/self/oom_score_adj";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_container_sees_its_security_context() -> Result<()> {
    let mut e = env().await?;
    let pod = e.run_pod("secure").await?;

    // Defaults: root, containerd's capabilities, no seccomp filter, masked /proc/timer_list.
    let plain = e.ctr_config("plain", &["sh", "-c", PROBE]);
    let lines = run(&mut e, &pod, "secure", plain).await?;
    assert_eq!(line_after(&lines, "uid"), "0", "{lines:?}");
    assert_eq!(field(&lines, "CapBnd"), "00000000a80425fb", "{lines:?}");
    assert_eq!(field(&lines, "Seccomp"), "0");
    assert_eq!(field(&lines, "NoNewPrivs"), "0");
    assert_eq!(line_after(&lines, "kcore"), "0", "masked: {lines:?}");
    assert_eq!(line_after(&lines, "userns"), "unshared", "{lines:?}");

    // A locked-down container: a user, a group, extra groups, one capability, RuntimeDefault
    // seccomp, no_new_privs, a read-only rootfs, /etc read-only, oom_score_adj.
    let mut config = with_sc(
        e.ctr_config("locked", &["sh", "-c", PROBE]),
        LinuxContainerSecurityContext {
            run_as_user: Some(Int64Value { value: 1000 }),
            run_as_group: Some(Int64Value { value: 1001 }),
            supplemental_groups: vec![2000, 2001],
            capabilities: Some(Capability {
                add_capabilities: vec!["NET_BIND_SERVICE".into()],
                drop_capabilities: vec!["ALL".into()],
                add_ambient_capabilities: vec![],
            }),
            seccomp: profile(ProfileType::RuntimeDefault, ""),
            no_new_privs: true,
            readonly_rootfs: true,
            readonly_paths: vec!["/etc".into()],
            ..Default::default()
        },
    );
    config.linux.as_mut().context("linux")?.resources = Some(LinuxContainerResources {
        oom_score_adj: 500,
        ..Default::default()
    });
    let id = e.create(&pod, "secure", config.clone()).await?;
    let status = e.status(&id).await?;
    let user = status.user.and_then(|u| u.linux).context("user")?;
    assert_eq!((user.uid, user.gid), (1000, 1001));
    assert_eq!(user.supplemental_groups, [1001, 2000, 2001]);
    e.rt.remove_container(corral_cri_api::v1::RemoveContainerRequest { container_id: id })
        .await?;
    let lines = run(&mut e, &pod, "secure", config).await?;
    assert_eq!(line_after(&lines, "uid"), "1000", "{lines:?}");
    assert_eq!(line_after(&lines, "gid"), "1001");
    assert_eq!(line_after(&lines, "groups"), "1001 2000 2001");
    assert_eq!(field(&lines, "CapBnd"), "0000000000000400");
    assert_eq!(
        field(&lines, "CapEff"),
        "0000000000000000",
        "not root: no effective caps"
    );
    assert_eq!(field(&lines, "Seccomp"), "2");
    assert_eq!(field(&lines, "NoNewPrivs"), "1");
    assert!(
        line_after(&lines, "rootfs").contains("Read-only file system"),
        "{lines:?}"
    );
    assert!(
        line_after(&lines, "etc").contains("Read-only file system"),
        "{lines:?}"
    );
    // RuntimeDefault refuses user namespaces (unshare(2)) although no capability is needed.
    assert!(
        line_after(&lines, "userns").contains("Operation not permitted"),
        "{lines:?}"
    );
    assert_eq!(line_after(&lines, "oom"), "500");

    // A Localhost profile that refuses mkdir(2) with EPERM; ALL capabilities but SYS_ADMIN.
    let prof = e.logs.path().join("no-mkdir.json");
    std::fs::write(
        &prof,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#,
    )?;
    let localhost = with_sc(
        e.ctr_config("localhost", &["sh", "-c", PROBE]),
        LinuxContainerSecurityContext {
            seccomp: profile(ProfileType::Localhost, prof.to_str().context("path")?),
            capabilities: Some(Capability {
                add_capabilities: vec!["ALL".into()],
                drop_capabilities: vec!["SYS_ADMIN".into()],
                add_ambient_capabilities: vec![],
            }),
            masked_paths: vec!["/proc/kcore".into()],
            ..Default::default()
        },
    );
    let lines = run(&mut e, &pod, "secure", localhost).await?;
    // The CRI's masked list replaced the defaults: timer_list is readable again.
    let timer_list: u64 = line_after(&lines, "kcore")
        .parse()
        .context("timer_list size")?;
    assert!(timer_list > 0, "{lines:?}");
    assert!(
        line_after(&lines, "mkdir").contains("Operation not permitted"),
        "{lines:?}"
    );
    assert_eq!(field(&lines, "Seccomp"), "2");
    let held = u64::from_str_radix(&held_caps()?, 16)?;
    let sys_admin = 1u64 << 21;
    assert_eq!(
        u64::from_str_radix(field(&lines, "CapBnd"), 16)?,
        held & !sys_admin,
        "{lines:?}"
    );

    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_groups_come_from_the_image() -> Result<()> {
    use corral_cri_api::v1::SupplementalGroupsPolicy;
    let mut e = env().await?;
    let pod = e.run_pod("users").await?;
    // The image's /etc/passwd has app (1000:1000), its /etc/group lists app in extra (2000).
    for (policy, groups) in [
        (SupplementalGroupsPolicy::Merge, "1000 2000 3000"),
        (SupplementalGroupsPolicy::Strict, "1000 3000"),
    ] {
        let name = format!("{}-user", policy.as_str_name().to_lowercase());
        let config = with_sc(
            e.ctr_config(&name, &["sh", "-c", "id -u; id -g; id -G; echo $HOME"]),
            LinuxContainerSecurityContext {
                run_as_username: "app".into(),
                supplemental_groups: vec![3000],
                supplemental_groups_policy: policy as i32,
                ..Default::default()
            },
        );
        let id = e.create(&pod, "users", config.clone()).await?;
        let user = e
            .status(&id)
            .await?
            .user
            .and_then(|u| u.linux)
            .context("user")?;
        let reported: Vec<String> = user
            .supplemental_groups
            .iter()
            .map(i64::to_string)
            .collect();
        assert_eq!(
            reported.join(" "),
            groups,
            "ContainerStatus.user under {policy:?}"
        );
        e.rt.remove_container(corral_cri_api::v1::RemoveContainerRequest { container_id: id })
            .await?;
        let lines = run(&mut e, &pod, "users", config).await?;
        assert_eq!(lines, ["1000", "1000", groups, "/home/app"], "{policy:?}");
    }
    // A name the image does not know, and a group without a user, are refused.
    let unknown = with_sc(
        e.ctr_config("unknown-user", &["true"]),
        LinuxContainerSecurityContext {
            run_as_username: "nosuchuser".into(),
            ..Default::default()
        },
    );
    let r = e.create(&pod, "users", unknown).await;
    common::assert_status(r, tonic::Code::InvalidArgument, &["nosuchuser"]);
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privileged_containers_and_recursive_read_only_mounts() -> Result<()> {
    let mut e = env().await?;
    // A host directory with a tmpfs below it, for the recursive read-only mount.
    let vol = tempfile::Builder::new().prefix("corral-rro-").tempdir()?;
    let sub = vol.path().join("sub");
    std::fs::create_dir(&sub)?;
    corral_tests::cleanup::mount_tmpfs(&sub, "size=1m")?;
    let _unmount = Unmount(sub.clone());

    let mut config = e.pod_config("priv");
    config.linux = Some(LinuxPodSandboxConfig {
        security_context: Some(LinuxSandboxSecurityContext {
            privileged: true,
            ..Default::default()
        }),
        ..Default::default()
    });
    let pod = e.run_pod_with(config).await?;
    let script = "grep -E '^(CapEff|Seccomp):' /proc/self/status; \
        echo kcore; wc -c < /proc/timer_list; \
        echo loop; test -b /dev/loop0 && echo block; \
        echo sys; grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; \
        echo rro; touch /rro/sub/f 2>&1 || true; \
        echo ro; touch /ro/sub/f 2>&1 && echo wrote || true";
    let mut ctr = with_sc(
        e.ctr_config("privileged", &["sh", "-c", script]),
        LinuxContainerSecurityContext {
            privileged: true,
            seccomp: profile(ProfileType::RuntimeDefault, ""),
            ..Default::default()
        },
    );
    let host = vol.path().to_str().context("path")?.to_string();
    ctr.mounts = vec![
        Mount {
            container_path: "/rro".into(),
            host_path: host.clone(),
            readonly: true,
            recursive_read_only: true,
            ..Default::default()
        },
        Mount {
            container_path: "/ro".into(),
            host_path: host,
            readonly: true,
            ..Default::default()
        },
    ];
    let lines = run(&mut e, &pod, "priv", ctr).await?;
    assert_eq!(field(&lines, "CapEff"), held_caps()?, "{lines:?}");
    assert_eq!(
        field(&lines, "Seccomp"),
        "0",
        "privileged ignores the profile"
    );
    assert_ne!(
        line_after(&lines, "kcore"),
        "0",
        "nothing masked: {lines:?}"
    );
    if Path::new("/dev/loop0").exists() {
        assert_eq!(
            line_after(&lines, "loop"),
            "block",
            "host devices: {lines:?}"
        );
    }
    assert_eq!(line_after(&lines, "sys"), "rw", "{lines:?}");
    assert!(
        line_after(&lines, "rro").contains("Read-only file system"),
        "{lines:?}"
    );
    // A plain read-only bind leaves the submount writable: that is what rro is for.
    assert_eq!(line_after(&lines, "ro"), "wrote", "{lines:?}");

    // A privileged container in a pod that is not privileged is refused.
    let plain = e.run_pod("plainpod").await?;
    let nope = with_sc(
        e.ctr_config("nope", &["true"]),
        LinuxContainerSecurityContext {
            privileged: true,
            ..Default::default()
        },
    );
    let r = e.create(&plain, "plainpod", nope).await;
    common::assert_status(
        r,
        tonic::Code::InvalidArgument,
        &["privileged", "pod sandbox"],
    );

    // Status advertises what the handler supports.
    let status =
        e.rt.status(StatusRequest { verbose: false })
            .await?
            .into_inner();
    let features = status.runtime_handlers[0].features.context("features")?;
    assert!(features.recursive_read_only_mounts);
    assert!(
        status
            .features
            .context("features")?
            .supplemental_groups_policy
    );

    e.remove_pod(&pod).await?;
    e.remove_pod(&plain).await?;
    e.assert_clean();
    Ok(())
}

struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn cgroup_file(e: &PodEnv, controller: &str, rel: &str, file: &str) -> Result<String> {
    let path = Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(e.d.cgroup_root().trim_start_matches('/'))
        .join(rel)
        .join(file);
    Ok(std::fs::read_to_string(&path)
        .with_context(|| path.display().to_string())?
        .trim()
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_reach_the_cgroups_of_containers_and_pods() -> Result<()> {
    let mut e = env().await?;
    if !Path::new("/sys/fs/cgroup/memory").is_dir() {
        eprintln!("skipped: the checks read cgroup v1 files");
        return Ok(());
    }
    // Pod resources plus overhead limit the pod's cgroup (Corral made it: no cgroup_parent).
    let mut config = e.pod_config("limited");
    config.linux = Some(LinuxPodSandboxConfig {
        resources: Some(LinuxContainerResources {
            memory_limit_in_bytes: 256 << 20,
            cpu_shares: 1024,
            ..Default::default()
        }),
        overhead: Some(LinuxContainerResources {
            memory_limit_in_bytes: 32 << 20,
            cpu_shares: 100,
            ..Default::default()
        }),
        ..Default::default()
    });
    let pod = e.run_pod_with(config).await?;
    assert_eq!(
        cgroup_file(&e, "memory", &pod, "memory.limit_in_bytes")?,
        (288u64 << 20).to_string()
    );
    assert_eq!(cgroup_file(&e, "cpu", &pod, "cpu.shares")?, "1124");
    e.rt.update_pod_sandbox_resources(UpdatePodSandboxResourcesRequest {
        pod_sandbox_id: pod.clone(),
        overhead: None,
        resources: Some(LinuxContainerResources {
            memory_limit_in_bytes: 512 << 20,
            ..Default::default()
        }),
    })
    .await?;
    assert_eq!(
        cgroup_file(&e, "memory", &pod, "memory.limit_in_bytes")?,
        (512u64 << 20).to_string()
    );

    // A container's CPU, cpuset and memory limits, seen from inside and on the host.
    let mut ctr = e.ctr_config(
        "limits",
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us \
             /sys/fs/cgroup/cpuset/cpuset.cpus; sleep 1000",
        ],
    );
    let hugepages = Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").is_dir();
    let memsw = Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists();
    ctr.linux = Some(LinuxContainerConfig {
        resources: Some(LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            // No swap beyond the memory limit (the kubelet's NoSwap), where swap is accounted.
            memory_swap_limit_in_bytes: if memsw { 64 << 20 } else { 0 },
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 256,
            cpuset_cpus: "0".into(),
            hugepage_limits: if hugepages {
                vec![corral_cri_api::v1::HugepageLimit {
                    page_size: "2MB".into(),
                    limit: 4 << 20,
                }]
            } else {
                vec![]
            },
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = e.create(&pod, "limited", ctr).await?;
    e.rt.start_container(StartContainerRequest {
        container_id: id.clone(),
    })
    .await?;
    let rel = format!("{pod}/{id}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let lines: Vec<String> =
            parse_log(&std::fs::read_to_string(e.log_file("limits")).unwrap_or_default())
                .into_iter()
                .map(|(_, _, l)| l)
                .collect();
        if lines.len() >= 3 || std::time::Instant::now() > deadline {
            break lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        lines,
        [(64u64 << 20).to_string(), "50000".into(), "0".into()]
    );
    assert_eq!(cgroup_file(&e, "cpu", &rel, "cpu.shares")?, "256");
    if memsw {
        assert_eq!(
            cgroup_file(&e, "memory", &rel, "memory.memsw.limit_in_bytes")?,
            (64u64 << 20).to_string()
        );
    }
    if hugepages {
        let unified = Path::new("/sys/fs/cgroup/unified");
        let file = if Path::new("/sys/fs/cgroup/hugetlb").is_dir() {
            cgroup_file(&e, "hugetlb", &rel, "hugetlb.2MB.limit_in_bytes")?
        } else if unified.join("cgroup.controllers").exists() {
            cgroup_file(&e, "unified", &rel, "hugetlb.2MB.max")?
        } else {
            (4u64 << 20).to_string()
        };
        assert_eq!(file, (4u64 << 20).to_string());
    }
    // UpdateContainerResources changes the running container's quota.
    e.rt.update_container_resources(UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(LinuxContainerResources {
            cpu_period: 100_000,
            cpu_quota: 20_000,
            memory_limit_in_bytes: 64 << 20,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await?;
    assert_eq!(cgroup_file(&e, "cpu", &rel, "cpu.cfs_quota_us")?, "20000");

    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_security_contexts_are_refused_and_leave_nothing() -> Result<()> {
    let mut e = env().await?;
    let pod = e.run_pod("bad").await?;
    let bad_json = e.logs.path().join("bad.json");
    std::fs::write(&bad_json, "{\"defaultAction\": ")?;
    let missing = e.logs.path().join("missing.json");
    let cases: Vec<(
        LinuxContainerSecurityContext,
        Option<LinuxContainerResources>,
        tonic::Code,
        Vec<&str>,
    )> = vec![
        (
            LinuxContainerSecurityContext {
                capabilities: Some(Capability {
                    add_capabilities: vec!["CAP_FLY".into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
            None,
            tonic::Code::InvalidArgument,
            vec!["capabilities.add_capabilities[0]", "CAP_FLY"],
        ),
        (
            LinuxContainerSecurityContext {
                seccomp: profile(ProfileType::Localhost, missing.to_str().context("path")?),
                ..Default::default()
            },
            None,
            tonic::Code::NotFound,
            vec!["seccomp.localhost_ref", "does not exist"],
        ),
        (
            LinuxContainerSecurityContext {
                seccomp: profile(ProfileType::Localhost, bad_json.to_str().context("path")?),
                ..Default::default()
            },
            None,
            tonic::Code::InvalidArgument,
            vec!["seccomp.localhost_ref", "not JSON"],
        ),
        (
            LinuxContainerSecurityContext {
                apparmor: profile(ProfileType::Localhost, "my-profile"),
                ..Default::default()
            },
            None,
            // This host has no AppArmor; a host with it would say NotFound (not loaded).
            if Path::new("/sys/module/apparmor").exists() {
                tonic::Code::NotFound
            } else {
                tonic::Code::FailedPrecondition
            },
            vec!["security_context.apparmor", "my-profile"],
        ),
        (
            LinuxContainerSecurityContext {
                run_as_group: Some(Int64Value { value: 5 }),
                ..Default::default()
            },
            None,
            tonic::Code::InvalidArgument,
            vec!["run_as_group"],
        ),
        (
            LinuxContainerSecurityContext::default(),
            Some(LinuxContainerResources {
                cpuset_cpus: "1-0".into(),
                ..Default::default()
            }),
            tonic::Code::InvalidArgument,
            vec!["resources.cpuset_cpus"],
        ),
        (
            LinuxContainerSecurityContext::default(),
            Some(LinuxContainerResources {
                cpuset_cpus: "0,60000".into(),
                ..Default::default()
            }),
            tonic::Code::InvalidArgument,
            vec!["resources.cpuset_cpus", "60000"],
        ),
    ];
    let mut cases = cases;
    if !Path::new("/sys/fs/selinux/enforce").exists() {
        cases.push((
            LinuxContainerSecurityContext {
                selinux_options: Some(corral_cri_api::v1::SeLinuxOption {
                    r#type: "container_t".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            None,
            tonic::Code::FailedPrecondition,
            vec!["selinux_options", "SELinux is not enabled"],
        ));
    }
    let unified_memory = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
    if Path::new("/sys/fs/cgroup/memory").is_dir() && !unified_memory {
        // v1 memory: a cgroup v2 key cannot take effect, and is not silently dropped.
        cases.push((
            LinuxContainerSecurityContext::default(),
            Some(LinuxContainerResources {
                unified: [("memory.high".to_string(), "1000000".to_string())].into(),
                ..Default::default()
            }),
            tonic::Code::InvalidArgument,
            vec!["unified", "memory.high", "cgroup v2"],
        ));
    }
    for (i, (sc, resources, code, words)) in cases.into_iter().enumerate() {
        let mut c = with_sc(e.ctr_config(&format!("bad{i}"), &["true"]), sc);
        c.linux.as_mut().context("linux")?.resources = resources;
        let r = e.create(&pod, "bad", c).await;
        common::assert_status(r, code, &words);
    }
    // Recursive read-only needs readonly and private propagation (the CRI's rules).
    let host = e.logs.path().to_str().context("path")?.to_string();
    for (readonly, propagation, words) in [
        (false, 0, vec!["mounts[0].recursive_read_only", "readonly"]),
        (
            true,
            1,
            vec!["mounts[0].recursive_read_only", "PROPAGATION_PRIVATE"],
        ),
    ] {
        let mut c = e.ctr_config("rro", &["true"]);
        c.mounts = vec![Mount {
            container_path: "/data".into(),
            host_path: host.clone(),
            readonly,
            recursive_read_only: true,
            propagation,
            ..Default::default()
        }];
        let r = e.create(&pod, "bad", c).await;
        common::assert_status(r, tonic::Code::InvalidArgument, &words);
    }
    let r =
        e.rt.update_pod_sandbox_resources(UpdatePodSandboxResourcesRequest {
            pod_sandbox_id: "nosuchpod".into(),
            ..Default::default()
        })
        .await;
    common::assert_status(r, tonic::Code::NotFound, &["nosuchpod"]);
    let listed =
        e.rt.list_containers(corral_cri_api::v1::ListContainersRequest::default())
            .await?
            .into_inner()
            .containers;
    assert!(listed.is_empty(), "nothing created: {listed:?}");
    e.remove_pod(&pod).await?;
    e.assert_clean();
    Ok(())
}

/// The `cgroup.procs` of a cgroup in the `pids` hierarchy, empty when it does not exist.
fn pids_procs(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// On a v1 or hybrid host a pod keeps the next container's intermediate waiting in a cgroup of
/// its own, so CreateContainer moves no process: that cgroup becomes the container's, a new
/// spare takes its place, and nothing of either is left once the pod is removed, also under a
/// `cgroup_parent` Corral did not make.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_come_from_a_spare_waiting_in_its_own_cgroup() -> Result<()> {
    let mut e = env().await?;
    let hierarchy = Path::new("/sys/fs/cgroup/pids");
    if !hierarchy.is_dir() {
        eprintln!("skipped: spares are for v1 hierarchies");
        return Ok(());
    }
    // A cgroup_parent the client made (as a kubelet does), under the daemon's cgroup root so
    // the harness removes it.
    let parent = format!("{}/kubelet-like", e.d.cgroup_root());
    let parent_dir = hierarchy.join(parent.trim_start_matches('/'));
    std::fs::create_dir_all(&parent_dir)?;
    let mut config = e.pod_config("spare");
    config.linux = Some(LinuxPodSandboxConfig {
        cgroup_parent: parent.clone(),
        ..Default::default()
    });
    let pod = e.run_pod_with(config).await?;
    let spare = parent_dir.join(format!("corral-spare-{pod}"));
    // The spare joins on its own after the shim is ready: wait for it.
    let waiting = |dir: &Path| -> Result<i32> {
        for _ in 0..500 {
            if let [pid] = pids_procs(dir)[..] {
                return Ok(pid);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        anyhow::bail!("no spare waits in {}", dir.display())
    };
    let first = waiting(&spare)?;
    // Created and never started: the spare's cgroup became the container's, and removing it
    // finds its init's exit at once (the shim reaps it like a forked child).
    let config = e.ctr_config("created", &["sleep", "1000"]);
    let created = e.create(&pod, "spare", config).await?;
    let inits = pids_procs(&parent_dir.join(&created));
    assert_eq!(inits.len(), 1, "{created}: {inits:?}");
    let removing = std::time::Instant::now();
    e.rt.remove_container(corral_cri_api::v1::RemoveContainerRequest {
        container_id: created.clone(),
    })
    .await?;
    assert!(
        removing.elapsed() < Duration::from_secs(5),
        "removing the created container took {:?}",
        removing.elapsed()
    );
    assert!(!parent_dir.join(&created).exists());
    // A new spare waits for the next container (a second after a create used one).
    let second = waiting(&spare)?;
    assert_ne!(first, second);
    let ctr = e.start(&pod, "spare", "c", &["sleep", "1000"]).await?;
    let ctr_dir = parent_dir.join(&ctr);
    let inits = pids_procs(&ctr_dir);
    assert_eq!(inits.len(), 1, "{}: {inits:?}", ctr_dir.display());
    let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", inits[0]))?;
    let want = format!("{parent}/{ctr}");
    assert!(
        cgroup
            .lines()
            .any(|l| l.contains(":pids:") && l.ends_with(&want)),
        "the init's cgroups: {cgroup}"
    );
    // Its exit is reported as it was.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(inits[0]),
        nix::sys::signal::Signal::SIGKILL,
    )?;
    let exited = e.wait_exited(&ctr, Duration::from_secs(10)).await?;
    assert_eq!(exited.exit_code, 128 + 9, "{exited:?}");
    e.rt.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await?;
    e.remove_pod(&pod).await?;
    assert!(!spare.exists(), "{} is left", spare.display());
    assert!(!ctr_dir.exists(), "{} is left", ctr_dir.display());
    // The parent is the client's (made in every hierarchy on the way): removed by the client.
    for h in std::fs::read_dir("/sys/fs/cgroup")?.flatten() {
        let dir = h.path().join(parent.trim_start_matches('/'));
        if dir.is_dir() {
            std::fs::remove_dir(&dir).with_context(|| dir.display().to_string())?;
        }
    }
    e.assert_clean();
    Ok(())
}
