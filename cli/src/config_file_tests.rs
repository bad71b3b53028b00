use super::*;

fn pod(text: &str, name: &str) -> anyhow::Result<v1::PodSandboxConfig> {
    parse::<PodConfig>(text, Path::new(name))?.into_proto()
}

fn container(text: &str, name: &str) -> anyhow::Result<v1::ContainerConfig> {
    parse::<ContainerConfig>(text, Path::new(name))?.into_proto()
}

#[test]
fn crictl_sample_pod_config_parses() {
    let config = pod(
        r#"{"metadata":{"name":"nginx-sandbox","namespace":"default","attempt":1,
            "uid":"hdishd83djaidwnduwk28bcsb"},"log_directory":"/tmp","linux":{}}"#,
        "pod-config.json",
    )
    .expect("parses");
    let metadata = config.metadata.expect("metadata");
    assert_eq!(metadata.name, "nginx-sandbox");
    assert_eq!(metadata.namespace, "default");
    assert_eq!(metadata.attempt, 1);
    assert_eq!(metadata.uid, "hdishd83djaidwnduwk28bcsb");
    assert_eq!(config.log_directory, "/tmp");
    assert_eq!(config.linux, Some(v1::LinuxPodSandboxConfig::default()));
}

#[test]
fn camel_case_keys_enums_and_string_int64() {
    let config = pod(
        r#"{"metadata":{"name":"p"},"logDirectory":"/var/log/p","hostname":"h",
            "dnsConfig":{"servers":["8.8.8.8"],"searches":["svc"]},
            "portMappings":[{"protocol":"UDP","containerPort":53,"hostPort":5353,"hostIp":"127.0.0.1"},
                            {"protocol":2,"container_port":80}],
            "labels":{"app":"x","snake_key":"kept"},
            "linux":{"cgroupParent":"/corral","sysctls":{"net.ipv4.ip_forward":"1"},
              "securityContext":{"namespaceOptions":{"network":"NODE","pid":1,"targetId":"t"},
                                 "runAsUser":{"value":"1000"}},
              "resources":{"memoryLimitInBytes":"1048576","cpuShares":512}}}"#,
        "pod.json",
    )
    .expect("parses");
    assert_eq!(config.log_directory, "/var/log/p");
    assert_eq!(config.hostname, "h");
    let dns = config.dns_config.expect("dns");
    assert_eq!(dns.servers, ["8.8.8.8"]);
    assert_eq!(dns.searches, ["svc"]);
    assert_eq!(config.port_mappings.len(), 2);
    assert_eq!(config.port_mappings[0].protocol, v1::Protocol::Udp as i32);
    assert_eq!(config.port_mappings[0].host_port, 5353);
    assert_eq!(config.port_mappings[0].host_ip, "127.0.0.1");
    assert_eq!(config.port_mappings[1].protocol, v1::Protocol::Sctp as i32);
    assert_eq!(config.port_mappings[1].container_port, 80);
    assert_eq!(
        config.labels.get("snake_key").map(String::as_str),
        Some("kept")
    );
    let linux = config.linux.expect("linux");
    assert_eq!(linux.cgroup_parent, "/corral");
    assert_eq!(linux.sysctls["net.ipv4.ip_forward"], "1");
    let security = linux.security_context.expect("security context");
    let ns = security.namespace_options.expect("namespaces");
    assert_eq!(ns.network, v1::NamespaceMode::Node as i32);
    assert_eq!(ns.pid, v1::NamespaceMode::Container as i32);
    assert_eq!(ns.ipc, v1::NamespaceMode::Pod as i32);
    assert_eq!(ns.target_id, "t");
    assert_eq!(security.run_as_user, Some(v1::Int64Value { value: 1000 }));
    let resources = linux.resources.expect("resources");
    assert_eq!(resources.memory_limit_in_bytes, 1_048_576);
    assert_eq!(resources.cpu_shares, 512);
}

#[test]
fn crictl_sample_container_config_parses() {
    let config = container(
        r#"{"metadata":{"name":"busybox"},"image":{"image":"busybox"},"command":["top"],
            "log_path":"busybox.0.log","linux":{}}"#,
        "container-config.json",
    )
    .expect("parses");
    assert_eq!(config.metadata.expect("metadata").name, "busybox");
    assert_eq!(config.image.expect("image").image, "busybox");
    assert_eq!(config.command, ["top"]);
    assert_eq!(config.log_path, "busybox.0.log");
}

#[test]
fn yaml_container_config_with_everything() {
    let text = "\
metadata:
  name: web
  attempt: 2
image:
  image: nginx:1.27
command: [nginx]
args: ['-g', 'daemon off;']
workingDir: /srv
envs:
  - key: A
    value: b
mounts:
  - containerPath: /data
    hostPath: /tmp/data
    readonly: true
    propagation: PROPAGATION_HOST_TO_CONTAINER
devices:
  - container_path: /dev/fuse
    host_path: /dev/fuse
    permissions: rwm
labels: {tier: front}
annotations: {note: hi}
logPath: web.log
stdin: true
stdin_once: true
tty: true
linux:
  resources:
    cpu_period: 100000
    cpu_quota: 50000
    memory_limit_in_bytes: 268435456
    cpuset_cpus: '0-1'
  security_context:
    run_as_user: {value: 0}
    run_as_username: root
    readonly_rootfs: true
    capabilities:
      add_capabilities: [NET_ADMIN]
      drop_capabilities: [ALL]
    namespace_options: {pid: CONTAINER}
";
    let config = container(text, "c.yaml").expect("parses");
    let metadata = config.metadata.expect("metadata");
    assert_eq!((metadata.name.as_str(), metadata.attempt), ("web", 2));
    assert_eq!(config.args, ["-g", "daemon off;"]);
    assert_eq!(config.working_dir, "/srv");
    assert_eq!(config.envs[0].key, "A");
    assert_eq!(config.envs[0].value, "b");
    assert_eq!(config.mounts[0].container_path, "/data");
    assert!(config.mounts[0].readonly);
    assert_eq!(
        config.mounts[0].propagation,
        v1::MountPropagation::PropagationHostToContainer as i32
    );
    assert_eq!(config.devices[0].permissions, "rwm");
    assert_eq!(config.labels["tier"], "front");
    assert_eq!(config.annotations["note"], "hi");
    assert_eq!(config.log_path, "web.log");
    assert!(config.stdin && config.stdin_once && config.tty);
    let linux = config.linux.expect("linux");
    let resources = linux.resources.expect("resources");
    assert_eq!(resources.cpu_period, 100_000);
    assert_eq!(resources.cpu_quota, 50_000);
    assert_eq!(resources.memory_limit_in_bytes, 268_435_456);
    assert_eq!(resources.cpuset_cpus, "0-1");
    let security = linux.security_context.expect("security");
    assert_eq!(security.run_as_user, Some(v1::Int64Value { value: 0 }));
    assert_eq!(security.run_as_username, "root");
    assert!(security.readonly_rootfs);
    let caps = security.capabilities.expect("caps");
    assert_eq!(caps.add_capabilities, ["NET_ADMIN"]);
    assert_eq!(caps.drop_capabilities, ["ALL"]);
    assert_eq!(
        security.namespace_options.expect("ns").pid,
        v1::NamespaceMode::Container as i32
    );
}

#[test]
fn unknown_keys_are_named_in_the_error() {
    let err = container(r#"{"metadata":{"name":"x"},"comand":["top"]}"#, "c.json")
        .expect_err("unknown key");
    assert!(err.to_string().contains("unknown field `comand`"), "{err}");

    let err = pod(r#"{"linux":{"securityContext":{"bogus":1}}}"#, "p.json")
        .expect_err("nested unknown key");
    assert!(err.to_string().contains("`bogus`"), "{err}");

    let err = pod("metadata:\n  name: x\n  nmespace: y\n", "p.yaml").expect_err("yaml");
    assert!(format!("{err:#}").contains("nmespace"), "{err:#}");
}

#[test]
fn bad_enum_names_are_rejected() {
    let err = pod(r#"{"portMappings":[{"protocol":"ICMP"}]}"#, "p.json").expect_err("bad enum");
    assert!(err.to_string().contains("\"ICMP\""), "{err}");
}

#[test]
fn files_load_by_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("pod.yml");
    std::fs::write(&path, "metadata: {name: y}\nlog_directory: /l\n").expect("write");
    let config = load_pod_config(&path).expect("loads");
    assert_eq!(config.log_directory, "/l");
    let err = load_container_config(&dir.path().join("absent.json")).expect_err("missing");
    assert!(format!("{err:#}").contains("absent.json"), "{err:#}");
}
