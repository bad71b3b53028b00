use super::*;

#[path = "../../tests/fixtures/expected.rs"]
mod expected;

fn pod(text: &str, name: &str) -> anyhow::Result<v1::PodSandboxConfig> {
    parse(text, Path::new(name))
}

fn container(text: &str, name: &str) -> anyhow::Result<v1::ContainerConfig> {
    parse(text, Path::new(name))
}

#[test]
fn every_pod_field_in_proto_names_json() {
    let config = pod(include_str!("../../tests/fixtures/pod.json"), "pod.json").expect("parses");
    assert_eq!(config, expected::pod());
}

#[test]
fn every_pod_field_in_camel_case_yaml() {
    let config = pod(include_str!("../../tests/fixtures/pod.yaml"), "pod.yaml").expect("parses");
    assert_eq!(config, expected::pod());
}

#[test]
fn every_container_field_in_proto_names_json() {
    let text = include_str!("../../tests/fixtures/container.json");
    let config = container(text, "container.json").expect("parses");
    assert_eq!(config, expected::container());
}

#[test]
fn every_container_field_in_camel_case_yaml() {
    let text = include_str!("../../tests/fixtures/container.yaml");
    let config = container(text, "container.yaml").expect("parses");
    assert_eq!(config, expected::container());
}

/// What the generated `Serialize` writes (lowerCamelCase, enum names, 64-bit integers as
/// strings) reads back as the same message.
#[test]
fn serialized_configs_read_back() {
    let json = serde_json::to_string(&expected::pod()).expect("serializes");
    assert!(json.contains("\"logDirectory\""), "{json}");
    assert_eq!(pod(&json, "p.json").expect("parses"), expected::pod());
    let json = serde_json::to_string(&expected::container()).expect("serializes");
    assert!(json.contains("\"CDIDevices\""), "{json}");
    assert_eq!(
        container(&json, "c.json").expect("parses"),
        expected::container()
    );
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
fn seccomp_profile_by_name() {
    let config = pod(
        "linux:\n  security_context:\n    seccomp:\n      profile_type: Localhost\n      \
         localhost_ref: /p.json\n",
        "p.yaml",
    )
    .expect("parses");
    let seccomp = config
        .linux
        .and_then(|l| l.security_context)
        .and_then(|s| s.seccomp)
        .expect("seccomp");
    assert_eq!(
        seccomp.profile_type,
        v1::security_profile::ProfileType::Localhost as i32
    );
    assert_eq!(seccomp.localhost_ref, "/p.json");
}

#[test]
fn unknown_keys_are_named_in_the_error() {
    let err = container(r#"{"metadata":{"name":"x"},"comand":["top"]}"#, "c.json")
        .expect_err("unknown key");
    assert!(err.to_string().contains("unknown field `comand`"), "{err}");

    let err = pod(r#"{"linux":{"securityContext":{"bogus":1}}}"#, "p.json")
        .expect_err("nested unknown key");
    assert!(err.to_string().contains("unknown field `bogus`"), "{err}");

    let err = pod("metadata:\n  name: x\n  nmespace: y\n", "p.yaml").expect_err("yaml");
    assert!(
        format!("{err:#}").contains("unknown field `nmespace`"),
        "{err:#}"
    );
}

#[test]
fn bad_enum_names_are_rejected() {
    let err = pod(r#"{"portMappings":[{"protocol":"ICMP"}]}"#, "p.json").expect_err("bad enum");
    assert!(err.to_string().contains("`ICMP`"), "{err}");
    let err = pod("port_mappings: [{protocol: 7}]\n", "p.yaml").expect_err("bad number");
    assert!(format!("{err:#}").contains('7'), "{err:#}");
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
