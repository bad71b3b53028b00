#![allow(clippy::unwrap_used)]

use super::*;
use serde_json::json;

fn pod(v: serde_json::Value) -> Pod {
    serde_json::from_value(v).unwrap()
}

fn base(spec: serde_json::Value) -> Pod {
    pod(json!({
        "metadata": {"name": "web", "namespace": "prod", "uid": "u-1",
                     "labels": {"app": "web"}, "annotations": {"note": "x"}},
        "spec": spec,
    }))
}

fn opts() -> SandboxOptions {
    SandboxOptions {
        attempt: 2,
        log_dir: "/var/log/pods/prod_web_u-1".into(),
        cgroup_parent: "/kubepods/pod-u-1".into(),
        cluster_domain: Some("cluster.local".into()),
        cluster_dns: vec![],
        host_resolv_conf: "nameserver 10.0.0.2\nsearch corp.example.\noptions ndots:2 edns0\n"
            .into(),
    }
}

fn inputs<'a>(env: &'a Environment, root: &'a Path) -> ContainerInputs<'a> {
    ContainerInputs {
        kind: ContainerKind::Regular,
        attempt: 3,
        image: "sha256:abc",
        env,
        mounts: vec![],
        termination_message_file: Some("/pods/u-1/containers/app/1234".into()),
        memory_capacity: 8 << 30,
        hugepage_sizes: &[],
        seccomp_profile_root: root,
        seccomp_default: false,
        log_path: "app/3.log".into(),
    }
}

fn ctr(p: &Pod, i: usize) -> &Container {
    &p.spec.as_ref().unwrap().containers[i]
}

fn cfg(p: &Pod) -> ContainerConfig {
    let env = Environment::default();
    container_config(
        p,
        ctr(p, 0),
        inputs(&env, Path::new("/var/lib/kubelet/seccomp")),
    )
    .unwrap()
}

fn sc_of(c: &ContainerConfig) -> &LinuxContainerSecurityContext {
    c.linux.as_ref().unwrap().security_context.as_ref().unwrap()
}

fn res_of(c: &ContainerConfig) -> &LinuxContainerResources {
    c.linux.as_ref().unwrap().resources.as_ref().unwrap()
}

fn sandbox_sc(s: &PodSandboxConfig) -> &LinuxSandboxSecurityContext {
    s.linux.as_ref().unwrap().security_context.as_ref().unwrap()
}

fn ns(network: NamespaceMode, pid: NamespaceMode, ipc: NamespaceMode) -> NamespaceOption {
    NamespaceOption {
        network: network as i32,
        pid: pid as i32,
        ipc: ipc as i32,
        target_id: String::new(),
        userns_options: Some(UserNamespace {
            mode: NamespaceMode::Node as i32,
            ..Default::default()
        }),
    }
}

#[test]
fn sandbox_metadata_labels_annotations_hostname() {
    let p = base(json!({"containers": [{"name": "app", "image": "nginx"}]}));
    let s = sandbox_config(&p, &opts()).unwrap();
    let m = s.metadata.as_ref().unwrap();
    assert_eq!(
        (
            m.name.as_str(),
            m.namespace.as_str(),
            m.uid.as_str(),
            m.attempt
        ),
        ("web", "prod", "u-1", 2)
    );
    assert_eq!(s.hostname, "web");
    assert_eq!(s.log_directory, "/var/log/pods/prod_web_u-1");
    let labels: BTreeMap<_, _> = s.labels.clone().into_iter().collect();
    assert_eq!(
        labels,
        BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            (POD_NAME_LABEL.into(), "web".into()),
            (POD_NAMESPACE_LABEL.into(), "prod".into()),
            (POD_UID_LABEL.into(), "u-1".into()),
        ])
    );
    assert_eq!(s.annotations.len(), 1);
    assert_eq!(s.annotations["note"], "x");
    let l = s.linux.as_ref().unwrap();
    assert_eq!(l.cgroup_parent, "/kubepods/pod-u-1");
    let sc = sandbox_sc(&s);
    assert_eq!(
        sc.namespace_options,
        Some(ns(
            NamespaceMode::Pod,
            NamespaceMode::Container,
            NamespaceMode::Pod
        ))
    );
    assert_eq!(sc.seccomp, Some(profile(ProfileType::RuntimeDefault, "")));
    assert!(!sc.privileged && !sc.readonly_rootfs);
}

#[test]
fn hostname_truncation_explicit_and_fqdn() {
    let long = format!("{}-{}", "a".repeat(62), "bcd");
    let mut p = base(json!({"containers": [{"name": "app"}]}));
    p.metadata.name = Some(long);
    assert_eq!(
        sandbox_config(&p, &opts()).unwrap().hostname,
        "a".repeat(62)
    );

    let p = base(
        json!({"hostname": "h1", "subdomain": "sub", "setHostnameAsFQDN": true,
                        "containers": [{"name": "app"}]}),
    );
    assert_eq!(
        hostname_and_domain(&p, Some("cluster.local")).unwrap(),
        ("h1".to_string(), "sub.prod.svc.cluster.local".to_string())
    );
    assert_eq!(
        sandbox_config(&p, &opts()).unwrap().hostname,
        "h1.sub.prod.svc.cluster.local"
    );

    let p = base(json!({"hostname": "Bad_Name", "containers": [{"name": "app"}]}));
    let e = sandbox_config(&p, &opts()).unwrap_err();
    assert!(
        matches!(&e, TranslateError::Invalid { field, .. } if field == "spec.hostname"),
        "{e}"
    );
}

#[test]
fn host_namespaces_and_share_process_namespace() {
    let p = base(
        json!({"hostNetwork": true, "hostPID": true, "hostIPC": true,
                        "containers": [{"name": "app"}]}),
    );
    let s = sandbox_config(&p, &opts()).unwrap();
    assert_eq!(s.hostname, "");
    assert_eq!(
        sandbox_sc(&s).namespace_options,
        Some(ns(
            NamespaceMode::Node,
            NamespaceMode::Node,
            NamespaceMode::Node
        ))
    );
    assert_eq!(
        sc_of(&cfg(&p)).namespace_options,
        Some(ns(
            NamespaceMode::Node,
            NamespaceMode::Node,
            NamespaceMode::Node
        ))
    );

    let p = base(json!({"shareProcessNamespace": true, "containers": [{"name": "app"}]}));
    let want = ns(NamespaceMode::Pod, NamespaceMode::Pod, NamespaceMode::Pod);
    assert_eq!(
        sandbox_sc(&sandbox_config(&p, &opts()).unwrap()).namespace_options,
        Some(want.clone())
    );
    assert_eq!(sc_of(&cfg(&p)).namespace_options, Some(want));

    let p = base(json!({"hostUsers": false, "containers": [{"name": "app"}]}));
    assert!(matches!(
        sandbox_config(&p, &opts()),
        Err(TranslateError::Unsupported { field, .. }) if field == "spec.hostUsers"
    ));
}

#[test]
fn port_mappings_keep_protocol_host_ip_and_dedupe_names() {
    let p = base(json!({"containers": [
        {"name": "a", "ports": [
            {"name": "http", "containerPort": 80, "hostPort": 8080},
            {"name": "http", "containerPort": 81, "hostPort": 8081},
            {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "127.0.0.1"},
            {"containerPort": 9000}
        ]},
        {"name": "b", "ports": [{"containerPort": 132, "hostPort": 132, "protocol": "SCTP"}]}
    ]}));
    let s = sandbox_config(&p, &opts()).unwrap();
    let pm = |protocol: Protocol, c: i32, h: i32, ip: &str| PortMapping {
        protocol: protocol as i32,
        container_port: c,
        host_port: h,
        host_ip: ip.into(),
    };
    assert_eq!(
        s.port_mappings,
        vec![
            pm(Protocol::Tcp, 80, 8080, ""),
            pm(Protocol::Udp, 53, 5353, "127.0.0.1"),
            pm(Protocol::Tcp, 9000, 0, ""),
            pm(Protocol::Sctp, 132, 132, ""),
        ]
    );
}

#[test]
fn dns_policies() {
    let with = |spec: serde_json::Value, o: &SandboxOptions| dns_config(&base(spec), o).unwrap();
    let c = json!([{"name": "app"}]);
    // ClusterFirst without cluster DNS: Default, i.e. Corral copies the host's file.
    assert_eq!(with(json!({"containers": c}), &opts()), None);
    assert_eq!(
        with(json!({"dnsPolicy": "Default", "containers": c}), &opts()),
        None
    );

    let mut cluster = opts();
    cluster.cluster_dns = vec!["10.96.0.10".into()];
    let want = DnsConfig {
        servers: vec!["10.96.0.10".into()],
        searches: vec![
            "prod.svc.cluster.local".into(),
            "svc.cluster.local".into(),
            "cluster.local".into(),
            "corp.example".into(),
        ],
        options: vec!["ndots:5".into()],
    };
    assert_eq!(with(json!({"containers": c}), &cluster), Some(want.clone()));
    // ClusterFirst with host network is Default; ClusterFirstWithHostNet is cluster DNS.
    assert_eq!(
        with(json!({"hostNetwork": true, "containers": c}), &cluster),
        None
    );
    assert_eq!(
        with(
            json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet", "containers": c}),
            &cluster
        ),
        Some(want)
    );

    // Default merged with dnsConfig starts from the host's resolv.conf.
    let merged = with(
        json!({"dnsPolicy": "Default", "containers": c, "dnsConfig": {
            "nameservers": ["1.1.1.1", "10.0.0.2"], "searches": ["a.example"],
            "options": [{"name": "ndots", "value": "1"}, {"name": "rotate"}]}}),
        &opts(),
    );
    assert_eq!(
        merged,
        Some(DnsConfig {
            servers: vec!["10.0.0.2".into(), "1.1.1.1".into()],
            searches: vec!["corp.example".into(), "a.example".into()],
            options: vec!["ndots:1".into(), "edns0".into(), "rotate".into()],
        })
    );

    let none = with(
        json!({"dnsPolicy": "None", "containers": c, "dnsConfig": {
            "nameservers": ["9.9.9.9", "8.8.8.8", "1.1.1.1", "4.4.4.4"],
            "options": [{"name": "ndots", "value": "2"}]}}),
        &opts(),
    );
    assert_eq!(
        none,
        Some(DnsConfig {
            servers: vec!["9.9.9.9".into(), "8.8.8.8".into(), "1.1.1.1".into()],
            searches: vec![],
            options: vec!["ndots:2".into()],
        })
    );
    assert!(
        dns_config(
            &base(json!({"dnsPolicy": "Weird", "containers": c})),
            &opts()
        )
        .is_err()
    );
}

#[test]
fn sandbox_security_context_from_pod() {
    let p = base(json!({
        "securityContext": {"runAsUser": 1000, "runAsGroup": 2000, "fsGroup": 3000,
            "supplementalGroups": [4000, 5000], "supplementalGroupsPolicy": "Strict",
            "sysctls": [{"name": "net.core.somaxconn", "value": "1024"}],
            "seLinuxOptions": {"level": "s0:c1,c2"},
            "seccompProfile": {"type": "Unconfined"}},
        "initContainers": [{"name": "init", "securityContext": {"privileged": true}}],
        "containers": [{"name": "app"}]}));
    let s = sandbox_config(&p, &opts()).unwrap();
    let sc = sandbox_sc(&s);
    assert_eq!(sc.run_as_user, Some(int64(1000)));
    assert_eq!(sc.run_as_group, Some(int64(2000)));
    assert_eq!(sc.supplemental_groups, vec![3000, 4000, 5000]);
    assert_eq!(
        sc.supplemental_groups_policy,
        SupplementalGroupsPolicy::Strict as i32
    );
    assert!(sc.privileged);
    assert_eq!(sc.selinux_options.as_ref().unwrap().level, "s0:c1,c2");
    // The sandbox is RuntimeDefault whatever the pod asks.
    assert_eq!(sc.seccomp, Some(profile(ProfileType::RuntimeDefault, "")));
    let sysctls = &s.linux.as_ref().unwrap().sysctls;
    assert_eq!(sysctls.len(), 1);
    assert_eq!(sysctls["net.core.somaxconn"], "1024");
}

#[test]
fn sandbox_resources_sum_containers_and_init_peak() {
    let p = base(json!({
    "overhead": {"cpu": "250m", "memory": "120Mi"},
    "initContainers": [
        {"name": "big-init", "resources": {"limits": {"cpu": "2", "memory": "1Gi"}}},
        {"name": "sidecar", "restartPolicy": "Always",
         "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "64Mi"}}}
    ],
    "containers": [
        {"name": "a", "resources": {"requests": {"cpu": "500m"}, "limits": {"cpu": "1", "memory": "256Mi"}}},
        {"name": "b", "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}}}
    ]}));
    let l = sandbox_config(&p, &opts()).unwrap().linux.unwrap();
    let r = l.resources.unwrap();
    // Requests: 500m + 500m + sidecar 100m = 1100m, against init 2000m → 2000m.
    assert_eq!(r.cpu_shares, 2048);
    // Limits: cpu 1 + 0.5 = 1.5 vs init 2 → 2; memory 512Mi + 64Mi vs 1Gi → 1Gi.
    assert_eq!(r.cpu_quota, 200_000);
    assert_eq!(r.cpu_period, 100_000);
    assert_eq!(r.memory_limit_in_bytes, 1 << 30);
    let o = l.overhead.unwrap();
    assert_eq!(
        (o.cpu_shares, o.cpu_quota, o.memory_limit_in_bytes),
        (256, 25_000, 120 << 20)
    );

    let empty = base(json!({"containers": [{"name": "a"}]}));
    let l = sandbox_config(&empty, &opts()).unwrap().linux.unwrap();
    let r = l.resources.unwrap();
    assert_eq!(
        (r.cpu_shares, r.cpu_quota, r.memory_limit_in_bytes),
        (2, 0, 0)
    );
    assert_eq!(l.overhead, Some(LinuxContainerResources::default()));
}

#[test]
fn container_basics_labels_annotations_mounts() {
    let p = base(json!({"terminationGracePeriodSeconds": 10, "containers": [{
        "name": "app", "image": "nginx:1.27", "workingDir": "/srv",
        "command": ["/bin/sh", "-c"], "args": ["echo $(GREETING)"],
        "stdin": true, "stdinOnce": true, "tty": true,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "ports": [{"name": "http", "containerPort": 80, "hostPort": 8080, "hostIP": "::1"},
                  {"containerPort": 53, "protocol": "UDP"}],
        "lifecycle": {"stopSignal": "SIGUSR1"}}]}));
    let env = Environment {
        vars: vec![("GREETING".into(), "hi".into())],
        skipped: vec![],
    };
    let mut inp = inputs(&env, Path::new("/seccomp"));
    inp.mounts = vec![Mount {
        container_path: "/data".into(),
        host_path: "/pods/u-1/volumes/data".into(),
        ..Default::default()
    }];
    let c = container_config(&p, ctr(&p, 0), inp).unwrap();
    assert_eq!(
        c.metadata,
        Some(ContainerMetadata {
            name: "app".into(),
            attempt: 3
        })
    );
    let img = c.image.as_ref().unwrap();
    assert_eq!(
        (img.image.as_str(), img.user_specified_image.as_str()),
        ("sha256:abc", "nginx:1.27")
    );
    assert_eq!(c.command, vec!["/bin/sh", "-c"]);
    assert_eq!(c.args, vec!["echo hi"]);
    assert_eq!(c.working_dir, "/srv");
    assert_eq!(
        c.envs,
        vec![KeyValue {
            key: "GREETING".into(),
            value: "hi".into()
        }]
    );
    assert_eq!((c.stdin, c.stdin_once, c.tty), (true, true, true));
    assert_eq!(c.log_path, "app/3.log");
    assert_eq!(c.stop_signal, Signal::Sigusr1 as i32);
    assert_eq!(c.mounts.len(), 2);
    assert_eq!(c.mounts[1].container_path, "/dev/termination-log");
    assert_eq!(c.mounts[1].host_path, "/pods/u-1/containers/app/1234");
    assert!(!c.mounts[1].readonly);

    assert_eq!(c.labels.len(), 4);
    assert_eq!(c.labels[CONTAINER_NAME_LABEL], "app");
    assert_eq!(c.labels[POD_UID_LABEL], "u-1");
    assert_eq!(c.annotations[RESTART_COUNT_ANNOTATION], "3");
    assert_eq!(
        c.annotations[TERMINATION_MESSAGE_PATH_ANNOTATION],
        "/dev/termination-log"
    );
    assert_eq!(
        c.annotations[TERMINATION_MESSAGE_POLICY_ANNOTATION],
        "FallbackToLogsOnError"
    );
    assert_eq!(c.annotations[TERMINATION_GRACE_PERIOD_ANNOTATION], "10");
    assert_eq!(
        c.annotations[CONTAINER_HASH_ANNOTATION],
        container_hash(ctr(&p, 0))
    );
    assert_eq!(
        c.annotations[PORTS_ANNOTATION],
        r#"[{"name":"http","hostPort":8080,"containerPort":80,"protocol":"TCP","hostIP":"::1"},{"containerPort":53,"protocol":"UDP"}]"#
    );
    assert!(!c.annotations.contains_key(PRE_STOP_ANNOTATION));
}

#[test]
fn container_hash_is_stable_and_changes_with_spec() {
    let p =
        base(json!({"containers": [{"name": "a", "image": "x:1"}, {"name": "a", "image": "x:2"}]}));
    let h = container_hash(ctr(&p, 0));
    assert_eq!(h, container_hash(&ctr(&p, 0).clone()));
    assert_ne!(h, container_hash(ctr(&p, 1)));
    assert!(h.len() <= 16 && u64::from_str_radix(&h, 16).is_ok());
}

#[test]
fn security_context_merges_pod_and_container() {
    let p = base(json!({
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000,
            "supplementalGroups": [3000], "seLinuxOptions": {"type": "pod_t"}},
        "containers": [{"name": "app", "securityContext": {
            "runAsUser": 1001, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
            "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}}]}));
    let c = cfg(&p);
    let sc = sc_of(&c);
    assert_eq!(sc.run_as_user, Some(int64(1001)));
    assert_eq!(sc.run_as_group, Some(int64(1000)));
    assert_eq!(sc.run_as_username, "");
    assert!(sc.readonly_rootfs && sc.no_new_privs && !sc.privileged);
    assert_eq!(sc.supplemental_groups, vec![2000, 3000]);
    assert_eq!(sc.selinux_options.as_ref().unwrap().r#type, "pod_t");
    assert_eq!(
        sc.capabilities,
        Some(Capability {
            add_capabilities: vec!["NET_ADMIN".into()],
            drop_capabilities: vec!["ALL".into()],
            ..Default::default()
        })
    );
    assert_eq!(
        sc.masked_paths,
        DEFAULT_MASKED_PATHS.map(String::from).to_vec()
    );
    assert_eq!(
        sc.readonly_paths,
        DEFAULT_READONLY_PATHS.map(String::from).to_vec()
    );
    assert_eq!(sc.seccomp, Some(profile(ProfileType::Unconfined, "")));
    assert_eq!(sc.apparmor, None);

    // Nothing set: no user (the image's), privilege escalation allowed, no capabilities.
    let plain = cfg(&base(json!({"containers": [{"name": "app"}]})));
    let sc = sc_of(&plain);
    assert_eq!(
        (sc.run_as_user, sc.no_new_privs, sc.capabilities.clone()),
        (None, false, None)
    );

    let p = base(json!({"containers": [{"name": "app", "securityContext": {
        "privileged": true, "procMount": "Unmasked", "allowPrivilegeEscalation": true}}]}));
    let c = cfg(&p);
    let sc = sc_of(&c);
    assert!(sc.privileged && !sc.no_new_privs);
    assert!(sc.masked_paths.is_empty() && sc.readonly_paths.is_empty());
}

#[test]
fn seccomp_precedence() {
    let p = base(json!({
    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [
        {"name": "a"},
        {"name": "b", "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "prof/x.json"}}},
        {"name": "c", "securityContext": {"seccompProfile": {"type": "Unconfined"}}},
        {"name": "d", "securityContext": {"seccompProfile": {"type": "Localhost"}}}
    ]}));
    let env = Environment::default();
    let root = Path::new("/var/lib/kubelet/seccomp");
    let get = |i: usize| container_config(&p, ctr(&p, i), inputs(&env, root));
    let sec = |i: usize| sc_of(&get(i).unwrap()).seccomp.clone().unwrap();
    assert_eq!(sec(0), profile(ProfileType::RuntimeDefault, ""));
    assert_eq!(
        sec(1),
        profile(
            ProfileType::Localhost,
            "/var/lib/kubelet/seccomp/prof/x.json"
        )
    );
    assert_eq!(sec(2), profile(ProfileType::Unconfined, ""));
    match get(3).unwrap_err() {
        TranslateError::Invalid { field, .. } => {
            assert_eq!(
                field,
                "spec.containers[3].securityContext.seccompProfile.localhostProfile"
            )
        }
        e => panic!("{e}"),
    }
    let bare = base(json!({"containers": [{"name": "a"}]}));
    let mut inp = inputs(&env, root);
    inp.seccomp_default = true;
    let c = container_config(&bare, ctr(&bare, 0), inp).unwrap();
    assert_eq!(
        sc_of(&c).seccomp,
        Some(profile(ProfileType::RuntimeDefault, ""))
    );
}

#[test]
#[allow(deprecated)]
fn apparmor_precedence() {
    let p = pod(json!({
    "metadata": {"name": "w", "namespace": "n", "uid": "u",
        "annotations": {"container.apparmor.security.beta.kubernetes.io/b": "localhost/ann-prof"}},
    "spec": {"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {"name": "a"},
            {"name": "b"},
            {"name": "c", "securityContext": {"appArmorProfile": {"type": "Localhost", "localhostProfile": "mine"}}}
        ]}}));
    let env = Environment::default();
    let root = Path::new("/s");
    let get = |i: usize| {
        let c = container_config(&p, ctr(&p, i), inputs(&env, root)).unwrap();
        let sc = sc_of(&c).clone();
        (sc.apparmor.unwrap(), sc.apparmor_profile)
    };
    assert_eq!(
        get(0),
        (
            profile(ProfileType::RuntimeDefault, ""),
            "runtime/default".into()
        )
    );
    assert_eq!(
        get(1),
        (
            profile(ProfileType::Localhost, "ann-prof"),
            "localhost/ann-prof".into()
        )
    );
    assert_eq!(
        get(2),
        (
            profile(ProfileType::Localhost, "mine"),
            "localhost/mine".into()
        )
    );
}

#[test]
fn resources_guaranteed_burstable_best_effort_and_hugepages() {
    let g = base(json!({"containers": [{"name": "a", "resources": {
        "limits": {"cpu": "500m", "memory": "256Mi", "hugepages-2Mi": "8Mi"}}}]}));
    let env = Environment::default();
    let root = Path::new("/s");
    let sizes = vec!["2MB".to_string(), "1GB".to_string()];
    let mut inp = inputs(&env, root);
    inp.hugepage_sizes = &sizes;
    let c = container_config(&g, ctr(&g, 0), inp).unwrap();
    let r = res_of(&c);
    assert_eq!(
        (
            r.cpu_shares,
            r.cpu_quota,
            r.cpu_period,
            r.memory_limit_in_bytes,
            r.oom_score_adj
        ),
        (512, 50_000, 100_000, 256 << 20, -997)
    );
    assert_eq!(
        r.hugepage_limits,
        vec![
            HugepageLimit {
                page_size: "2MB".into(),
                limit: 8 << 20
            },
            HugepageLimit {
                page_size: "1GB".into(),
                limit: 0
            },
        ]
    );

    let b = base(json!({"containers": [{"name": "a", "resources": {
        "requests": {"cpu": "250m", "memory": "1Gi"}}}]}));
    let c = cfg(&b);
    let r = res_of(&c);
    // 1000 - 1000 * 1Gi / 8Gi = 875.
    assert_eq!(
        (
            r.cpu_shares,
            r.cpu_quota,
            r.memory_limit_in_bytes,
            r.oom_score_adj
        ),
        (256, 0, 0, 875)
    );

    let be = cfg(&base(json!({"containers": [{"name": "a"}]})));
    let r = res_of(&be);
    assert_eq!((r.cpu_shares, r.oom_score_adj), (2, 1000));
    assert!(r.hugepage_limits.is_empty());
}

#[test]
fn run_as_non_root_messages() {
    let p = |sc: serde_json::Value| {
        base(json!({"securityContext": sc, "containers": [{"name": "app"}]}))
    };
    let check = |pod: &Pod, uid, user| verify_run_as_non_root(pod, ctr(pod, 0), uid, user);
    let strict = p(json!({"runAsNonRoot": true}));
    assert_eq!(check(&strict, Some(1000), ""), Ok(()));
    assert_eq!(
        check(&strict, Some(0), ""),
        Err("container has runAsNonRoot and image will run as root (pod: \"web_prod(u-1)\", container: app)".into())
    );
    assert_eq!(
        check(&strict, None, ""),
        Err("container has runAsNonRoot and image will run as root (pod: \"web_prod(u-1)\", container: app)".into())
    );
    assert_eq!(
        check(&strict, None, "nginx"),
        Err("container has runAsNonRoot and image has non-numeric user (nginx), cannot verify user is non-root (pod: \"web_prod(u-1)\", container: app)".into())
    );
    for bad in [
        "4294967296",
        "-1",
        "4294967296:4294967296",
        "+0",
        "00",
        " 0",
    ] {
        let e = check(&strict, None, bad).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "container has runAsNonRoot and image has an invalid user: image config User {bad:?}: "
            )),
            "{e}"
        );
    }
    for bad in [-1, 4294967295, 4294967296] {
        assert!(
            check(&strict, Some(bad), "")
                .unwrap_err()
                .contains("invalid uid")
        );
    }
    let root = p(json!({"runAsNonRoot": true, "runAsUser": 0}));
    assert_eq!(
        check(&root, Some(1000), ""),
        Err(
            "container's runAsUser breaks non-root policy (pod: \"web_prod(u-1)\", container: app)"
                .into()
        )
    );
    assert_eq!(
        check(
            &p(json!({"runAsNonRoot": true, "runAsUser": 5})),
            Some(0),
            ""
        ),
        Ok(())
    );
    assert_eq!(check(&p(json!({})), Some(0), ""), Ok(()));
}

#[test]
fn pull_policy_table() {
    let c = |image: &str, policy: Option<&str>| Container {
        name: "a".into(),
        image: Some(image.into()),
        image_pull_policy: policy.map(String::from),
        ..Default::default()
    };
    let table = [
        ("nginx", None, PullPolicy::Always),
        ("nginx:latest", None, PullPolicy::Always),
        ("nginx:1.27", None, PullPolicy::IfNotPresent),
        ("localhost:5000/x", None, PullPolicy::Always),
        ("localhost:5000/x:v1", None, PullPolicy::IfNotPresent),
        ("nginx@sha256:abcd", None, PullPolicy::IfNotPresent),
        ("nginx:latest@sha256:abcd", None, PullPolicy::Always),
        ("nginx", Some("Never"), PullPolicy::Never),
        ("nginx:1", Some("Always"), PullPolicy::Always),
        ("nginx", Some("IfNotPresent"), PullPolicy::IfNotPresent),
    ];
    for (image, policy, want) in table {
        assert_eq!(pull_policy(&c(image, policy)), want, "{image} {policy:?}");
    }
}

#[test]
fn image_names_normalize() {
    let n = parse_image_name("nginx");
    assert_eq!(
        (n.domain.as_str(), n.path.as_str(), n.tag, n.digest),
        ("docker.io", "library/nginx", None, None)
    );
    assert_eq!(
        parse_image_name("index.docker.io/me/app:1").repository(),
        "docker.io/me/app"
    );
    assert_eq!(
        parse_image_name("localhost:5000/x:2").repository(),
        "localhost:5000/x"
    );
    assert_eq!(
        parse_image_name("localhost:5000/x:2").tag.as_deref(),
        Some("2")
    );
    assert_eq!(
        parse_image_name("quay.io/a/b@sha256:ff").digest.as_deref(),
        Some("sha256:ff")
    );
}

fn secret(name: &str, type_: &str, key: &str, content: serde_json::Value) -> Secret {
    pod_secret(json!({
        "metadata": {"name": name},
        "type": type_,
        "stringData": {key: content.to_string()},
    }))
}

fn pod_secret(v: serde_json::Value) -> Secret {
    serde_json::from_value(v).unwrap()
}

fn user_pass(a: &[AuthConfig]) -> Vec<(String, String)> {
    a.iter()
        .map(|a| (a.username.clone(), a.password.clone()))
        .collect()
}

#[test]
fn auth_matches_registry_hosts() {
    let b64 = base64::engine::general_purpose::STANDARD.encode("hub:s3cret");
    let json_secret = secret(
        "regcred",
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        json!({"auths": {
            "localhost:5000": {"username": "local", "password": "pw"},
            "https://index.docker.io/v1/": {"auth": b64},
            "quay.io/team": {"username": "team", "password": "t"},
            "quay.io": {"username": "any", "password": "a"},
            "*.corp.example": {"username": "glob", "password": "g"}
        }}),
    );
    let secrets = [json_secret];
    let got = |image: &str| user_pass(&auth_for(image, &secrets).unwrap());
    assert_eq!(got("localhost:5000/x"), vec![("local".into(), "pw".into())]);
    assert_eq!(
        got("localhost:5000/x:v1"),
        vec![("local".into(), "pw".into())]
    );
    assert_eq!(got("localhost:5001/x"), vec![]);
    assert_eq!(got("nginx"), vec![("hub".into(), "s3cret".into())]);
    assert_eq!(
        got("docker.io/library/nginx:1"),
        vec![("hub".into(), "s3cret".into())]
    );
    assert_eq!(got("me/app"), vec![("hub".into(), "s3cret".into())]);
    assert_eq!(
        got("quay.io/team/app"),
        vec![("team".into(), "t".into()), ("any".into(), "a".into())]
    );
    assert_eq!(got("quay.io/other/app"), vec![("any".into(), "a".into())]);
    assert_eq!(got("reg.corp.example/x"), vec![("glob".into(), "g".into())]);
    assert_eq!(got("a.b.corp.example/x"), vec![]);
    assert_eq!(got("ghcr.io/x"), vec![]);
}

#[test]
fn auth_dockercfg_and_errors() {
    let legacy = secret(
        "old",
        "kubernetes.io/dockercfg",
        ".dockercfg",
        json!({"docker.io": {"username": "u", "password": "p", "email": "e@x"}}),
    );
    let opaque = secret(
        "other",
        "Opaque",
        ".dockerconfigjson",
        json!({"auths": {"docker.io": {"username": "no"}}}),
    );
    let got = user_pass(&auth_for("busybox", &[opaque, legacy]).unwrap());
    assert_eq!(got, vec![("u".into(), "p".into())]);

    let bad = pod_secret(
        json!({"metadata": {"name": "bad"}, "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": "{not json"}}),
    );
    assert!(
        matches!(auth_for("x", &[bad]), Err(TranslateError::PullSecret { secret, .. }) if secret == "bad")
    );
    let bad_auth = secret(
        "ba",
        "kubernetes.io/dockerconfigjson",
        ".dockerconfigjson",
        json!({"auths": {"docker.io": {"auth": base64::engine::general_purpose::STANDARD.encode("nocolon")}}}),
    );
    assert!(auth_for("x", &[bad_auth]).is_err());

    // Data (bytes) works like stringData.
    let data = pod_secret(
        json!({"metadata": {"name": "d"}, "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(
            json!({"auths": {"ghcr.io": {"username": "g", "password": "h"}}}).to_string())}}),
    );
    assert_eq!(
        user_pass(&auth_for("ghcr.io/o/r:1", &[data]).unwrap()),
        vec![("g".into(), "h".into())]
    );
}

#[test]
fn etc_hosts_managed_and_host_network() {
    let p = base(json!({"containers": [{"name": "app"}], "hostAliases": [
        {"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]},
        {"ip": "10.1.2.4", "hostnames": ["baz"]}]}));
    let want = "# Kubernetes-managed hosts file.\n\
127.0.0.1\tlocalhost\n\
::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\n\
fe00::0\tip6-mcastprefix\n\
fe00::1\tip6-allnodes\n\
fe00::2\tip6-allrouters\n\
10.88.0.5\tweb\n\
\n\
# Entries added by HostAliases.\n\
10.1.2.3\tfoo.local\tbar.local\n\
10.1.2.4\tbaz\n";
    assert_eq!(etc_hosts(&p, &["10.88.0.5".into()], "web", ""), want);
    let with_domain = etc_hosts(
        &p,
        &["10.88.0.5".into(), "fd00::5".into()],
        "web",
        "sub.prod.svc.cluster.local",
    );
    assert!(with_domain.contains("10.88.0.5\tweb.sub.prod.svc.cluster.local\tweb\nfd00::5\tweb.sub.prod.svc.cluster.local\tweb\n"));
    assert_eq!(
        etc_hosts_host_network(&p, "127.0.0.1 localhost\n"),
        "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n\n# Entries added by HostAliases.\n10.1.2.3\tfoo.local\tbar.local\n10.1.2.4\tbaz\n"
    );
    let plain = base(json!({"containers": [{"name": "app"}]}));
    assert!(etc_hosts(&plain, &[], "web", "").ends_with("fe00::2\tip6-allrouters\n"));

    let own = base(
        json!({"containers": [{"name": "app", "volumeMounts": [{"name": "h", "mountPath": "/etc/hosts"}]}]}),
    );
    assert!(!mounts_etc_hosts(ctr(&own, 0), &["10.0.0.1".into()]));
    assert!(mounts_etc_hosts(ctr(&plain, 0), &["10.0.0.1".into()]));
    assert!(!mounts_etc_hosts(ctr(&plain, 0), &[]));
}

#[test]
fn resolv_conf_parsing() {
    let d = parse_resolv_conf(
        "# c\n; c\nnameserver 1.1.1.1\nsearch a. b\nsearch c.d. .\noptions ndots:1 edns0\noptions ndots:3\nnameserver 8.8.8.8\n",
    );
    assert_eq!(d.servers, vec!["1.1.1.1", "8.8.8.8"]);
    assert_eq!(d.searches, vec!["c.d"]);
    assert_eq!(d.options, vec!["edns0", "ndots:3"]);
}

#[test]
fn init_container_field_names_in_errors() {
    let p = base(
        json!({"initContainers": [{"name": "x"}, {"name": "i", "lifecycle": {"stopSignal": "SIGNOPE"}}],
                        "containers": [{"name": "app"}]}),
    );
    let env = Environment::default();
    let mut inp = inputs(&env, Path::new("/s"));
    inp.kind = ContainerKind::Init;
    let c = &p.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[1];
    match container_config(&p, c, inp).unwrap_err() {
        TranslateError::Invalid { field, value, .. } => {
            assert_eq!(
                (field.as_str(), value.as_str()),
                ("spec.initContainers[1].lifecycle.stopSignal", "SIGNOPE")
            )
        }
        e => panic!("{e}"),
    }
}
