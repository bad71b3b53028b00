//! Tests of the spec module: a temporary rootfs with `/etc/passwd` and `/etc/group`, no root.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use corral_cri_api::v1::{
    ContainerConfig, ContainerMetadata, ImageSpec, LinuxContainerConfig,
    LinuxContainerSecurityContext, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata,
};
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::Spec;

use super::{ContainerInputs, PodPaths, SpecError, container_spec};

mod linux;
mod mounts;
mod pod_files;
mod process;
mod security;
mod user;

pub(super) const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
# a comment\n\
malformed line\n\
app:x:1000:1001:App:/home/app:/bin/sh\n\
nohome:x:1002:1002::/nonexistent:/bin/sh\n";

pub(super) const GROUP: &str = "root:x:0:\n\
daemon:x:1:\n\
app:x:1001:\n\
audio:x:29:app,other\n\
video:x:44:other, app\n\
staff:x:50:\n";

/// A rootfs, pod files and a pod, plus the container config and image under test.
pub(super) struct Fixture {
    pub dir: tempfile::TempDir,
    pub pod: PodSandboxConfig,
    pub config: ContainerConfig,
    pub image: ImageConfiguration,
    pub net: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    pub pid: Option<PathBuf>,
    pub shm: Option<PathBuf>,
    pub target: Option<PathBuf>,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("rootfs/etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("passwd"), PASSWD).unwrap();
        std::fs::write(etc.join("group"), GROUP).unwrap();
        std::fs::create_dir_all(dir.path().join("pod")).unwrap();
        let pins = dir.path().join("pins");
        Self {
            pod: PodSandboxConfig {
                metadata: Some(PodSandboxMetadata {
                    name: "web".into(),
                    uid: "uid-1".into(),
                    namespace: "default".into(),
                    attempt: 0,
                }),
                hostname: "web-0".into(),
                ..Default::default()
            },
            config: ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: "nginx".into(),
                    attempt: 0,
                }),
                image: Some(ImageSpec {
                    image: "sha256:abc".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            image: image(serde_json::json!({
                "Entrypoint": ["/docker-entrypoint.sh"],
                "Cmd": ["nginx", "-g", "daemon off;"],
                "Env": ["PATH=/usr/local/bin:/usr/bin", "NGINX_VERSION=1.25"],
            })),
            net: Some(pins.join("net")),
            ipc: Some(pins.join("ipc")),
            uts: Some(pins.join("uts")),
            pid: None,
            shm: Some(dir.path().join("shm")),
            target: None,
            dir,
        }
    }

    /// A stand-in for a host LSM file (absent unless a test writes it).
    pub fn lsm_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn pod_file(&self, name: &str) -> PathBuf {
        self.dir.path().join("pod").join(name)
    }

    /// The container's security context, created if missing.
    pub fn sc(&mut self) -> &mut LinuxContainerSecurityContext {
        self.config
            .linux
            .get_or_insert_with(LinuxContainerConfig::default)
            .security_context
            .get_or_insert_with(Default::default)
    }

    /// The container's namespace options, created if missing.
    pub fn ns(&mut self) -> &mut NamespaceOption {
        self.sc()
            .namespace_options
            .get_or_insert_with(Default::default)
    }

    /// Makes the pod (and its container) use the host's network, IPC and UTS.
    pub fn host_network(&mut self) {
        self.net = None;
        self.ipc = None;
        self.uts = None;
        self.shm = None;
        self.ns().network = NamespaceMode::Node as i32;
        self.ns().ipc = NamespaceMode::Node as i32;
        self.pod.linux = Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }

    pub fn spec(&self) -> Result<Spec, SpecError> {
        let rootfs = self.rootfs();
        let (hosts, resolv, hostname) = (
            self.pod_file("hosts"),
            self.pod_file("resolv.conf"),
            self.pod_file("hostname"),
        );
        let cgroups = PathBuf::from("/sys/fs/cgroup/corral/pod1/c1");
        let lsm = ["apparmor_enabled", "apparmor_profiles", "selinux_enforce"]
            .map(|n| self.lsm_file(n).to_string_lossy().into_owned());
        let input = ContainerInputs {
            id: "c1",
            sandbox_id: "pod1",
            pod: &self.pod,
            config: &self.config,
            image: &self.image,
            rootfs: &rootfs,
            pod_paths: PodPaths {
                net: self.net.as_deref(),
                ipc: self.ipc.as_deref(),
                uts: self.uts.as_deref(),
                pid: self.pid.as_deref(),
                hosts: &hosts,
                resolv_conf: &resolv,
                hostname: &hostname,
                shm: self.shm.as_deref(),
            },
            target_pid_ns: self.target.as_deref(),
            cgroups_path: &cgroups,
            lsm: super::lsm::LsmHost {
                apparmor_enabled: &lsm[0],
                apparmor_profiles: &lsm[1],
                selinux_enforce: &lsm[2],
            },
            image_volumes: &[],
        };
        container_spec(&input)
    }
}

/// An image configuration with this `config` section.
pub(super) fn image(config: serde_json::Value) -> ImageConfiguration {
    serde_json::from_value(serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": config,
    }))
    .unwrap()
}

/// The message of an `InvalidArgument`, or a panic naming what came instead.
pub(super) fn invalid<T: std::fmt::Debug>(r: Result<T, SpecError>) -> String {
    match r {
        Err(SpecError::InvalidArgument(m)) => m,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

pub(super) fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

pub(super) fn symlink(target: impl AsRef<Path>, link: impl AsRef<Path>) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[test]
fn the_spec_serializes_with_the_expected_top_level_fields() {
    let f = Fixture::new();
    let spec = f.spec().unwrap();
    let json = serde_json::to_value(&spec).unwrap();
    assert_eq!(json["ociVersion"], oci_spec::runtime::VERSION);
    assert_eq!(json["root"]["path"], f.rootfs().to_str().unwrap());
    assert_eq!(json["root"]["readonly"], false);
    assert_eq!(json["hostname"], "web-0");
    assert_eq!(
        json["linux"]["cgroupsPath"],
        "/sys/fs/cgroup/corral/pod1/c1"
    );
    assert!(json["linux"].get("seccomp").is_none());
    assert!(json["linux"].get("sysctl").is_none());
    assert!(json["process"].get("rlimits").is_none());
    assert_eq!(json["process"]["oomScoreAdj"], 0);
}

#[test]
fn annotations_are_copied_and_the_cri_ones_added() {
    let mut f = Fixture::new();
    f.config.annotations.insert("user/key".into(), "v".into());
    let spec = f.spec().unwrap();
    let a = spec.annotations().as_ref().unwrap();
    assert_eq!(a["user/key"], "v");
    assert_eq!(a[super::ANNOTATION_CONTAINER_TYPE], "container");
    assert_eq!(a[super::ANNOTATION_SANDBOX_ID], "pod1");
    assert_eq!(a[super::ANNOTATION_CONTAINER_NAME], "nginx");
    assert_eq!(a[super::ANNOTATION_SANDBOX_NAME], "web");
    assert_eq!(a[super::ANNOTATION_SANDBOX_NAMESPACE], "default");
    assert_eq!(a[super::ANNOTATION_SANDBOX_UID], "uid-1");
    assert_eq!(a[super::ANNOTATION_IMAGE_NAME], "sha256:abc");
}

#[test]
fn metadata_name_is_required() {
    let mut f = Fixture::new();
    f.config.metadata = None;
    assert_eq!(
        invalid(f.spec()),
        "container config: metadata.name is empty"
    );
    f.config.metadata = Some(ContainerMetadata::default());
    assert_eq!(
        invalid(f.spec()),
        "container config: metadata.name is empty"
    );
}

#[test]
fn unsupported_features_are_rejected() {
    let mut f = Fixture::new();
    f.sc().privileged = true;
    assert!(invalid(f.spec()).contains("privileged"));
}

#[test]
fn readonly_rootfs_makes_root_and_pod_files_readonly() {
    let mut f = Fixture::new();
    f.sc().readonly_rootfs = true;
    let spec = f.spec().unwrap();
    assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
    for m in spec.mounts().as_ref().unwrap() {
        if m.destination().starts_with("/etc") {
            assert!(m.options().as_ref().unwrap().contains(&"ro".to_string()));
        }
    }
}

#[test]
fn clean_container_path_normalizes_and_rejects() {
    use super::clean_container_path as c;
    assert_eq!(c("f", "/a//b/./c/").unwrap(), "/a/b/c");
    assert!(invalid(c("f", "a/b")).contains("not an absolute path"));
    assert!(invalid(c("f", "/a/../b")).contains(".."));
    assert!(invalid(c("f", "/")).contains("root"));
    assert!(invalid(c("f", "/a\0b")).contains("NUL"));
}
