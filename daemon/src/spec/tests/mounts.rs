use corral_cri_api::v1::{ImageSpec, Mount as CriMount, MountPropagation};
use oci_spec::runtime::{Mount, Spec};

use super::super::SpecError;
use super::{Fixture, invalid, symlink};

fn mounts(spec: &Spec) -> Vec<Mount> {
    spec.mounts().clone().unwrap()
}

fn dests(spec: &Spec) -> Vec<String> {
    mounts(spec)
        .iter()
        .map(|m| m.destination().to_string_lossy().into_owned())
        .collect()
}

fn find(spec: &Spec, dest: &str) -> Mount {
    mounts(spec)
        .into_iter()
        .find(|m| m.destination().to_str() == Some(dest))
        .unwrap_or_else(|| panic!("no mount at {dest}"))
}

fn opts(m: &Mount) -> Vec<String> {
    m.options().clone().unwrap()
}

/// A host directory under the fixture's temporary directory.
fn host_dir(f: &Fixture, name: &str) -> String {
    let p = f.dir.path().join("host").join(name);
    std::fs::create_dir_all(&p).unwrap();
    p.to_str().unwrap().to_string()
}

fn cri_mount(container: &str, host: &str) -> CriMount {
    CriMount {
        container_path: container.into(),
        host_path: host.into(),
        ..Default::default()
    }
}

#[test]
fn default_mounts_in_order() {
    let f = Fixture::new();
    let spec = f.spec().unwrap();
    assert_eq!(
        dests(&spec),
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup",
            "/etc/hosts",
            "/etc/resolv.conf",
            "/etc/hostname"
        ]
    );
    let shm = find(&spec, "/dev/shm");
    assert_eq!(shm.typ().as_deref(), Some("bind"));
    assert_eq!(shm.source().as_deref(), f.shm.as_deref());
    let hosts = find(&spec, "/etc/hosts");
    assert_eq!(
        hosts.source().as_deref(),
        Some(f.pod_file("hosts").as_path())
    );
    assert_eq!(opts(&hosts), ["rbind", "rprivate", "rw"]);
    assert_eq!(
        opts(&find(&spec, "/sys")),
        ["nosuid", "noexec", "nodev", "ro"]
    );
    assert!(opts(&find(&spec, "/sys/fs/cgroup")).contains(&"ro".to_string()));
    assert_eq!(
        opts(&find(&spec, "/dev/pts")),
        [
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5"
        ]
    );
}

#[test]
fn shm_follows_the_ipc_namespace() {
    let mut f = Fixture::new();
    f.host_network();
    let spec = f.spec().unwrap();
    let shm = find(&spec, "/dev/shm");
    assert_eq!(
        shm.source().as_deref().and_then(|p| p.to_str()),
        Some("/dev/shm")
    );

    let mut f = Fixture::new();
    f.ns().ipc = corral_cri_api::v1::NamespaceMode::Container as i32;
    let shm = find(&f.spec().unwrap(), "/dev/shm");
    assert_eq!(shm.typ().as_deref(), Some("tmpfs"));
}

#[test]
fn cri_mounts_come_after_defaults_sorted_parents_first() {
    let mut f = Fixture::new();
    let (a, b, c) = (host_dir(&f, "a"), host_dir(&f, "b"), host_dir(&f, "c"));
    f.config.mounts = vec![
        cri_mount("/data/sub/deeper", &a),
        cri_mount("/data", &b),
        cri_mount("/data/sub", &c),
        cri_mount("/other", &a),
    ];
    let d = dests(&f.spec().unwrap());
    assert_eq!(
        &d[10..],
        ["/data", "/other", "/data/sub", "/data/sub/deeper"]
    );
}

#[test]
fn cri_mount_replaces_a_default_with_the_same_destination() {
    let mut f = Fixture::new();
    let h = host_dir(&f, "hosts");
    let shm = host_dir(&f, "shm");
    f.config.mounts = vec![cri_mount("/etc/hosts/", &h), cri_mount("/dev/shm", &shm)];
    let spec = f.spec().unwrap();
    let d = dests(&spec);
    assert_eq!(d.iter().filter(|d| *d == "/etc/hosts").count(), 1);
    assert_eq!(d.iter().filter(|d| *d == "/dev/shm").count(), 1);
    assert_eq!(
        find(&spec, "/etc/hosts")
            .source()
            .as_deref()
            .and_then(|p| p.to_str()),
        Some(h.as_str())
    );
    // Same depth: request order kept.
    assert_eq!(&d[d.len() - 2..], ["/etc/hosts", "/dev/shm"]);

    // A CRI /dev replaces every default under /dev.
    let dev = host_dir(&f, "dev");
    f.config.mounts = vec![cri_mount("/dev", &dev)];
    let d = dests(&f.spec().unwrap());
    assert!(!d.iter().any(|d| d.starts_with("/dev/")));
    assert_eq!(d.last().map(String::as_str), Some("/dev"));
}

#[test]
fn propagation_and_readonly() {
    let mut f = Fixture::new();
    let h = host_dir(&f, "x");
    let mut private = cri_mount("/p", &h);
    private.readonly = true;
    let mut slave = cri_mount("/s", &h);
    slave.propagation = MountPropagation::PropagationHostToContainer as i32;
    let mut shared = cri_mount("/b", &h);
    shared.propagation = MountPropagation::PropagationBidirectional as i32;

    f.config.mounts = vec![private.clone()];
    let spec = f.spec().unwrap();
    assert_eq!(opts(&find(&spec, "/p")), ["rbind", "rprivate", "ro"]);
    assert_eq!(find(&spec, "/p").typ().as_deref(), Some("bind"));
    assert_eq!(spec.linux().as_ref().unwrap().rootfs_propagation(), &None);

    f.config.mounts = vec![private.clone(), slave.clone()];
    let spec = f.spec().unwrap();
    assert_eq!(opts(&find(&spec, "/s")), ["rbind", "rslave", "rw"]);
    assert_eq!(
        spec.linux()
            .as_ref()
            .unwrap()
            .rootfs_propagation()
            .as_deref(),
        Some("rslave")
    );

    f.config.mounts = vec![shared, slave];
    let spec = f.spec().unwrap();
    assert_eq!(opts(&find(&spec, "/b")), ["rbind", "rshared", "rw"]);
    assert_eq!(
        spec.linux()
            .as_ref()
            .unwrap()
            .rootfs_propagation()
            .as_deref(),
        Some("rshared")
    );
}

#[test]
fn symlinked_host_path_is_canonicalized() {
    let mut f = Fixture::new();
    let target = host_dir(&f, "real");
    let link = f.dir.path().join("host/link");
    symlink(&target, &link);
    f.config.mounts = vec![cri_mount("/data", link.to_str().unwrap())];
    let spec = f.spec().unwrap();
    let src = find(&spec, "/data").source().clone().unwrap();
    assert_eq!(src, std::fs::canonicalize(&target).unwrap());
}

#[test]
fn missing_host_path_is_not_found() {
    let mut f = Fixture::new();
    let ok = host_dir(&f, "ok");
    let missing = f.dir.path().join("host/missing");
    f.config.mounts = vec![
        cri_mount("/ok", &ok),
        cri_mount("/data", missing.to_str().unwrap()),
    ];
    match f.spec() {
        Err(SpecError::NotFound(m)) => {
            assert!(m.starts_with("mounts[1].host_path:"), "{m}");
            assert!(m.contains("missing"), "{m}");
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    // A dangling symlink is missing too.
    let link = f.dir.path().join("host/dangling");
    symlink(&missing, &link);
    f.config.mounts = vec![cri_mount("/data", link.to_str().unwrap())];
    assert!(matches!(f.spec(), Err(SpecError::NotFound(_))));
}

#[test]
fn bad_mounts_are_invalid() {
    let mut f = Fixture::new();
    let h = host_dir(&f, "x");
    let cases = [
        (
            cri_mount("/data", "relative/path"),
            "mounts[0].host_path: \"relative/path\" is not an absolute path",
        ),
        (cri_mount("/data", ""), "mounts[0].host_path is empty"),
        (
            cri_mount("data", &h),
            "mounts[0].container_path: \"data\" is not an absolute path",
        ),
        (
            cri_mount("/a/../b", &h),
            "mounts[0].container_path: \"/a/../b\" must not contain \"..\"",
        ),
        (
            CriMount {
                image: Some(ImageSpec {
                    image: "busybox".into(),
                    ..Default::default()
                }),
                ..cri_mount("/img", "")
            },
            "mounts[0].image: not mounted",
        ),
        (
            CriMount {
                propagation: 7,
                ..cri_mount("/data", &h)
            },
            "mounts[0].propagation: unknown value 7",
        ),
    ];
    for (m, want) in cases {
        f.config.mounts = vec![m];
        assert_eq!(invalid(f.spec()), want);
    }
}
