#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use corral_cri_api::v1::MountPropagation;
use corral_kube::env::{Environment, PodContext};
use corral_kube::k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret};
use corral_kube::objects::{Batch, NoObjects};
use serde_json::json;

use super::*;

/// A pod volume dir in a temp dir, torn down (unmounted) even when a test fails.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pods/uid-1/volumes");
        Fixture { _tmp: tmp, dir }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = teardown(&self.dir);
    }
}

fn pod(volumes: serde_json::Value) -> Pod {
    pod_with(volumes, json!({}), json!([]))
}

fn pod_with(
    volumes: serde_json::Value,
    security: serde_json::Value,
    mounts: serde_json::Value,
) -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": "web", "namespace": "ns", "uid": "uid-1",
            "labels": {"b": "2", "a": "x\"y"},
            "annotations": {"note": "line1\nline2"}
        },
        "spec": {
            "securityContext": security,
            "containers": [{
                "name": "app", "image": "busybox",
                "resources": {"limits": {"memory": "64Mi"}},
                "volumeMounts": mounts
            }],
            "volumes": volumes
        }
    }))
    .unwrap()
}

fn objects() -> Batch {
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "cfg", "namespace": "ns"},
        "data": {"a.conf": "A", "b.conf": "B"},
        "binaryData": {"bin": "AAEC"}
    }))
    .unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "sec", "namespace": "ns"},
        "data": {"password": "aHVudGVyMg=="},
        "stringData": {"user": "admin"}
    }))
    .unwrap();
    Batch {
        config_maps: vec![cm],
        secrets: vec![secret],
    }
}

fn container(pod: &Pod) -> Container {
    pod.spec.as_ref().unwrap().containers[0].clone()
}

/// Mount entries at exactly `path` (canonicalized) and their fs types.
fn mounts_at(path: &Path) -> Vec<String> {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    mount_points()
        .unwrap()
        .into_iter()
        .filter(|(p, _)| *p == path)
        .map(|(_, t)| t)
        .collect()
}

/// Mount options of the mount at `path` (super options included).
fn mount_options(path: &Path) -> String {
    let path = fs::canonicalize(path).unwrap();
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap();
    text.lines()
        .find(|l| l.split(' ').nth(4).map(PathBuf::from) == Some(path.clone()))
        .unwrap()
        .to_string()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn ctx() -> PodContext {
    PodContext::default()
}

#[test]
fn empty_dir_on_disk_is_0777_and_prepare_is_idempotent() {
    let f = Fixture::new();
    let p = pod(json!([{"name": "scratch", "emptyDir": {}}]));
    let v = PodVolumes::prepare(&p, &f.dir, &NoObjects, &ctx()).unwrap();
    let path = v.volume_path("scratch").unwrap().to_path_buf();
    assert_eq!(path, f.dir.join("kubernetes.io~empty-dir/scratch"));
    assert_eq!(mode(&path), 0o777);
    fs::write(path.join("kept"), "x").unwrap();
    PodVolumes::prepare(&p, &f.dir, &NoObjects, &ctx()).unwrap();
    assert_eq!(fs::read_to_string(path.join("kept")).unwrap(), "x");
    assert!(
        mounts_at(&path).is_empty(),
        "disk emptyDir must not be a mount"
    );
}

#[test]
fn memory_empty_dir_is_one_tmpfs_with_size_and_teardown_removes_it() {
    let f = Fixture::new();
    let p = pod(json!([
        {"name": "mem", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        {"name": "big", "emptyDir": {"medium": "Memory"}}
    ]));
    let v = PodVolumes::prepare(&p, &f.dir, &NoObjects, &ctx()).unwrap();
    let mem = v.volume_path("mem").unwrap().to_path_buf();
    let big = v.volume_path("big").unwrap().to_path_buf();
    assert_eq!(mounts_at(&mem), vec!["tmpfs".to_string()]);
    assert!(
        mount_options(&mem).contains("size=16384k"),
        "{}",
        mount_options(&mem)
    );
    let total_k = crate::node::mem_total().unwrap() / 1024;
    let opts = mount_options(&big);
    let size_k: i64 = opts
        .split(&[',', ' '][..])
        .find_map(|o| o.strip_prefix("size=")?.strip_suffix('k')?.parse().ok())
        .unwrap();
    // MemTotal, rounded up to whole pages by tmpfs.
    assert!(
        (total_k..total_k + 4).contains(&size_k),
        "{opts} vs {total_k}k"
    );
    // A restart: prepare again from scratch must not stack a second tmpfs.
    drop(v);
    let v = PodVolumes::prepare(&p, &f.dir, &NoObjects, &ctx()).unwrap();
    assert_eq!(mounts_at(&mem).len(), 1);
    drop(v);
    teardown(&f.dir).unwrap();
    assert!(mounts_at(&mem).is_empty());
    assert!(mounts_at(&big).is_empty());
    assert!(!f.dir.exists());
    // Tearing down twice is fine.
    teardown(&f.dir).unwrap();
}

#[test]
fn teardown_peels_stacked_mounts() {
    let f = Fixture::new();
    let p = pod(json!([{"name": "mem", "emptyDir": {"medium": "Memory"}}]));
    let v = PodVolumes::prepare(&p, &f.dir, &NoObjects, &ctx()).unwrap();
    let mem = v.volume_path("mem").unwrap().to_path_buf();
    nix::mount::mount(
        Some("tmpfs"),
        &mem,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=1m"),
    )
    .unwrap();
    assert_eq!(mounts_at(&mem).len(), 2);
    teardown(&f.dir).unwrap();
    assert!(mounts_at(&mem).is_empty());
    assert!(!f.dir.exists());
}

#[test]
fn host_path_types() {
    let f = Fixture::new();
    let host = tempfile::tempdir().unwrap();
    let h = host.path();
    fs::write(h.join("file"), "").unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(h.join("sock")).unwrap();
    let check = |path: PathBuf, ty: &str| {
        let p = pod(json!([{"name": "h", "hostPath": {"path": path, "type": ty}}]));
        PodVolumes::prepare(&p, &f.dir, &NoObjects, &ctx()).map(|v| {
            assert_eq!(v.volume_path("h").unwrap(), path);
        })
    };
    check(h.join("new/dir"), "DirectoryOrCreate").unwrap();
    assert!(h.join("new/dir").is_dir());
    assert_eq!(mode(&h.join("new/dir")) & 0o755, 0o755);
    check(h.join("new/dir"), "Directory").unwrap();
    check(h.join("made"), "FileOrCreate").unwrap();
    let made = fs::metadata(h.join("made")).unwrap();
    assert!(made.is_file());
    assert_eq!(made.len(), 0);
    // No parent creation for FileOrCreate, as with the kubelet.
    assert!(check(h.join("missing/file"), "FileOrCreate").is_err());
    check(h.join("file"), "File").unwrap();
    check(h.join("sock"), "Socket").unwrap();
    check(PathBuf::from("/dev/null"), "CharDevice").unwrap();
    check(PathBuf::from("/no/such/path"), "").unwrap();

    let e = check(h.join("file"), "Directory").unwrap_err().to_string();
    let shown = h.join("file").display().to_string();
    assert_eq!(
        e,
        format!(
            "MountVolume.SetUp failed for volume \"h\" : hostPath type check failed: {shown} is not a directory, it's a File"
        )
    );
    let e = check(h.join("nope"), "File").unwrap_err().to_string();
    assert!(
        e.ends_with(&format!(
            "hostPath {} doesn't exist",
            h.join("nope").display()
        )),
        "{e}"
    );
    let e = check(h.join("sock"), "BlockDevice")
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not a block device, it's a Socket"), "{e}");
}

#[test]
fn config_map_files_are_atomic_writer_symlinks() {
    let f = Fixture::new();
    let p = pod(json!([{"name": "cfg", "configMap": {"name": "cfg"}}]));
    let v = PodVolumes::prepare(&p, &f.dir, &objects(), &ctx()).unwrap();
    let root = v.volume_path("cfg").unwrap().to_path_buf();
    assert_eq!(root, f.dir.join("kubernetes.io~configmap/cfg"));
    assert_eq!(fs::read_to_string(root.join("a.conf")).unwrap(), "A");
    assert_eq!(fs::read(root.join("bin")).unwrap(), vec![0u8, 1, 2]);
    assert_eq!(
        fs::read_link(root.join("a.conf")).unwrap(),
        Path::new("..data/a.conf")
    );
    let ts = fs::read_link(root.join("..data")).unwrap();
    let ts = ts.to_str().unwrap();
    assert!(ts.starts_with("..20") && ts.len() > 22, "{ts}");
    assert_eq!(mode(&root.join(ts).join("a.conf")), 0o644);
    assert_eq!(mode(&root.join(ts)), 0o755);
    assert_eq!(mounts_at(&root), vec!["tmpfs".to_string()]);
    // Unchanged contents are not rewritten.
    PodVolumes::prepare(&p, &f.dir, &objects(), &ctx()).unwrap();
    assert_eq!(fs::read_link(root.join("..data")).unwrap(), Path::new(ts));
}

#[test]
fn config_map_items_modes_and_nested_paths() {
    let f = Fixture::new();
    let p = pod(json!([{"name": "cfg", "configMap": {
        "name": "cfg", "defaultMode": 0o600,
        "items": [{"key": "a.conf", "path": "etc/app/a"}, {"key": "b.conf", "path": "b", "mode": 0o400}]
    }}]));
    let v = PodVolumes::prepare(&p, &f.dir, &objects(), &ctx()).unwrap();
    let root = v.volume_path("cfg").unwrap();
    assert_eq!(fs::read_to_string(root.join("etc/app/a")).unwrap(), "A");
    assert_eq!(
        fs::read_link(root.join("etc")).unwrap(),
        Path::new("..data/etc")
    );
    assert_eq!(
        mode(&fs::canonicalize(root.join("etc/app/a")).unwrap()),
        0o600
    );
    assert_eq!(mode(&fs::canonicalize(root.join("b")).unwrap()), 0o400);
    assert!(!root.join("a.conf").exists(), "unlisted keys are left out");
}

#[test]
fn api_data_volumes_are_nosuid_nodev_and_drop_setuid_bits() {
    let f = Fixture::new();
    let p = pod(json!([
        {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 0o4755,
            "items": [{"key": "a.conf", "path": "a", "mode": 0o6755}, {"key": "b.conf", "path": "b"}]}},
        {"name": "info", "downwardAPI": {"defaultMode": 0o2755, "items": [
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"name": "s", "secret": {"secretName": "sec", "defaultMode": 0o4755}},
        {"name": "all", "projected": {"defaultMode": 0o4755, "sources": [
            {"configMap": {"name": "cfg"}}]}}
    ]));
    let v = PodVolumes::prepare(&p, &f.dir, &objects(), &ctx()).unwrap();
    for (name, file) in [
        ("cfg", "a"),
        ("cfg", "b"),
        ("info", "name"),
        ("s", "password"),
        ("all", "a.conf"),
    ] {
        let root = v.volume_path(name).unwrap();
        let line = mount_options(root);
        let opts = line.split(' ').nth(5).unwrap();
        assert!(
            opts.split(',').any(|o| o == "nosuid") && opts.split(',').any(|o| o == "nodev"),
            "{name}: {line}"
        );
        assert_eq!(
            mode(&fs::canonicalize(root.join(file)).unwrap()),
            0o755,
            "{name}/{file}"
        );
    }
    drop(v);
    teardown(&f.dir).unwrap();
}

#[test]
fn config_map_missing_object_or_key() {
    let f = Fixture::new();
    let e = PodVolumes::prepare(
        &pod(json!([{"name": "v", "configMap": {"name": "cfg"}}])),
        &f.dir,
        &NoObjects,
        &ctx(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "MountVolume.SetUp failed for volume \"v\" : configmap \"cfg\" not found"
    );
    let v = PodVolumes::prepare(
        &pod(json!([{"name": "v", "configMap": {"name": "cfg", "optional": true}}])),
        &f.dir,
        &NoObjects,
        &ctx(),
    )
    .unwrap();
    let root = v.volume_path("v").unwrap();
    let visible: Vec<_> = fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with(".."))
        .collect();
    assert!(visible.is_empty(), "{visible:?}");
    let e = PodVolumes::prepare(
        &pod(json!([{"name": "k", "configMap": {"name": "cfg", "items": [{"key": "k", "path": "k"}]}}])),
        &f.dir,
        &objects(),
        &ctx(),
    )
    .unwrap_err();
    assert!(matches!(e, VolumeError::ConfigMapKeyNotFound { .. }));
    assert!(
        e.to_string()
            .ends_with("configmap references non-existent config key: k")
    );
}

#[test]
fn item_paths_cannot_escape() {
    let f = Fixture::new();
    for (path, reason) in [
        ("../evil", "must not contain '..'"),
        ("a/../../evil", "must not contain '..'"),
        ("/etc/evil", "must be relative path"),
        ("..evil", "must not start with '..'"),
    ] {
        let p = pod(json!([{"name": "cfg", "configMap": {
            "name": "cfg", "items": [{"key": "a.conf", "path": path}]
        }}]));
        let e = PodVolumes::prepare(&p, &f.dir, &objects(), &ctx()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("MountVolume.SetUp failed for volume \"cfg\" : invalid path: {reason}: {path}")
        );
    }
    assert!(!f.dir.parent().unwrap().join("evil").exists());
}

#[test]
fn secret_volume_is_on_tmpfs() {
    let f = Fixture::new();
    let p = pod(json!([{"name": "s", "secret": {"secretName": "sec", "defaultMode": 0o400}}]));
    let v = PodVolumes::prepare(&p, &f.dir, &objects(), &ctx()).unwrap();
    let root = v.volume_path("s").unwrap().to_path_buf();
    assert_eq!(mounts_at(&root), vec!["tmpfs".to_string()]);
    assert_eq!(
        fs::read_to_string(root.join("password")).unwrap(),
        "hunter2"
    );
    assert_eq!(fs::read_to_string(root.join("user")).unwrap(), "admin");
    assert_eq!(
        mode(&fs::canonicalize(root.join("password")).unwrap()),
        0o400
    );
    PodVolumes::prepare(&p, &f.dir, &objects(), &ctx()).unwrap();
    assert_eq!(mounts_at(&root).len(), 1);
    let e = PodVolumes::prepare(
        &pod(json!([{"name": "s2", "secret": {"secretName": "nope"}}])),
        &f.dir,
        &objects(),
        &ctx(),
    )
    .unwrap_err();
    assert!(e.to_string().ends_with("secret \"nope\" not found"), "{e}");
    drop(v);
    teardown(&f.dir).unwrap();
    assert!(mounts_at(&root).is_empty());
    assert!(!f.dir.exists());
}

#[test]
fn downward_api_files() {
    let f = Fixture::new();
    let p = pod(json!([{"name": "info", "downwardAPI": {"items": [
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
        {"path": "label-b", "fieldRef": {"fieldPath": "metadata.labels['b']"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}}
    ]}}]));
    let v = PodVolumes::prepare(&p, &f.dir, &NoObjects, &ctx()).unwrap();
    let root = v.volume_path("info").unwrap();
    let read = |n: &str| fs::read_to_string(root.join(n)).unwrap();
    assert_eq!(read("labels"), "a=\"x\\\"y\"\nb=\"2\"");
    assert_eq!(read("annotations"), "note=\"line1\\nline2\"");
    assert_eq!(read("name"), "web");
    assert_eq!(read("ns"), "ns");
    assert_eq!(read("label-b"), "2");
    assert_eq!(read("mem"), "64");
    let e = PodVolumes::prepare(
        &pod(json!([{"name": "bad", "downwardAPI": {"items": [
            {"path": "x", "resourceFieldRef": {"containerName": "nope", "resource": "limits.cpu"}}
        ]}}])),
        &f.dir,
        &NoObjects,
        &ctx(),
    )
    .unwrap_err();
    assert!(matches!(e, VolumeError::DownwardApi { .. }), "{e}");
}

#[test]
fn projected_volume_combines_sources_on_tmpfs() {
    let f = Fixture::new();
    let p = pod(
        json!([{"name": "all", "projected": {"defaultMode": 0o640, "sources": [
            {"configMap": {"name": "cfg", "items": [{"key": "a.conf", "path": "conf/a"}]}},
            {"secret": {"name": "sec", "items": [{"key": "password", "path": "pw", "mode": 0o400}]}},
            {"secret": {"name": "missing", "optional": true}},
            {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}}
        ]}}]),
    );
    let v = PodVolumes::prepare(&p, &f.dir, &objects(), &ctx()).unwrap();
    let root = v.volume_path("all").unwrap().to_path_buf();
    assert_eq!(mounts_at(&root), vec!["tmpfs".to_string()]);
    assert_eq!(fs::read_to_string(root.join("conf/a")).unwrap(), "A");
    assert_eq!(fs::read_to_string(root.join("pw")).unwrap(), "hunter2");
    assert_eq!(fs::read_to_string(root.join("name")).unwrap(), "web");
    assert_eq!(mode(&fs::canonicalize(root.join("conf/a")).unwrap()), 0o640);
    assert_eq!(mode(&fs::canonicalize(root.join("pw")).unwrap()), 0o400);
    drop(v);
    teardown(&f.dir).unwrap();
    assert!(mounts_at(&root).is_empty());
}

#[test]
fn unsupported_volumes_and_projections_are_refused() {
    let f = Fixture::new();
    let e = PodVolumes::prepare(
        &pod(json!([{"name": "data", "persistentVolumeClaim": {"claimName": "c"}}])),
        &f.dir,
        &NoObjects,
        &ctx(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "volume \"data\": volume type persistentVolumeClaim is not supported on Corral"
    );
    let e = PodVolumes::prepare(
        &pod(json!([{"name": "tok", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token"}}
        ]}}])),
        &f.dir,
        &NoObjects,
        &ctx(),
    )
    .unwrap_err();
    assert!(matches!(
        e,
        VolumeError::UnsupportedProjection {
            kind: "serviceAccountToken",
            ..
        }
    ));
    assert!(
        e.to_string()
            .contains("serviceAccountToken is not supported on Corral")
    );
}

#[test]
fn fs_group_sets_group_setgid_and_modes_without_following_symlinks() {
    let f = Fixture::new();
    let outside = tempfile::NamedTempFile::new().unwrap();
    fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o600)).unwrap();
    let outside_gid = fs::metadata(outside.path()).unwrap().gid();
    let p = pod_with(
        json!([
            {"name": "scratch", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 0o600}}
        ]),
        json!({"fsGroup": 4321}),
        json!([]),
    );
    let v = PodVolumes::prepare(&p, &f.dir, &objects(), &ctx()).unwrap();
    let scratch = v.volume_path("scratch").unwrap().to_path_buf();
    fs::create_dir(scratch.join("sub")).unwrap();
    fs::set_permissions(scratch.join("sub"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(scratch.join("sub/file"), "x").unwrap();
    fs::set_permissions(scratch.join("sub/file"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(outside.path(), scratch.join("link")).unwrap();
    // A restart re-applies ownership to what containers wrote.
    PodVolumes::prepare(&p, &f.dir, &objects(), &ctx()).unwrap();
    let meta = |p: &Path| fs::symlink_metadata(p).unwrap();
    assert_eq!(meta(&scratch).gid(), 4321);
    assert_eq!(mode(&scratch), 0o2777);
    assert_eq!(meta(&scratch.join("sub")).gid(), 4321);
    assert_eq!(mode(&scratch.join("sub")), 0o2770);
    assert_eq!(mode(&scratch.join("sub/file")), 0o660);
    assert_eq!(meta(&scratch.join("sub/file")).gid(), 4321);
    assert_eq!(meta(&scratch.join("link")).gid(), 4321);
    // The symlink's target is untouched.
    assert_eq!(meta(outside.path()).gid(), outside_gid);
    assert_eq!(mode(outside.path()), 0o600);

    let cfg = v.volume_path("cfg").unwrap();
    let file = fs::canonicalize(cfg.join("a.conf")).unwrap();
    assert_eq!(meta(&file).gid(), 4321);
    assert_eq!(mode(&file), 0o640);
    assert_eq!(mode(file.parent().unwrap()), 0o2755);
    // Unchanged contents with fsGroup applied count as unchanged.
    let before = fs::read_link(cfg.join("..data")).unwrap();
    PodVolumes::prepare(&p, &f.dir, &objects(), &ctx()).unwrap();
    assert_eq!(fs::read_link(cfg.join("..data")).unwrap(), before);
}

#[test]
fn refresh_swaps_data_and_drops_stale_files() {
    let f = Fixture::new();
    let p = pod(json!([
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}
    ]));
    let mut objs = objects();
    let v = PodVolumes::prepare(&p, &f.dir, &objs, &ctx()).unwrap();
    let root = v.volume_path("cfg").unwrap().to_path_buf();
    let old = fs::read_link(root.join("..data")).unwrap();
    let data = objs.config_maps[0].data.as_mut().unwrap();
    data.insert("a.conf".into(), "A2".into());
    data.remove("b.conf");
    data.insert("c.conf".into(), "C".into());
    let mut p2 = p.clone();
    p2.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("c".into(), "3".into());
    v.refresh(&p2, &objs, &ctx()).unwrap();
    let new = fs::read_link(root.join("..data")).unwrap();
    assert_ne!(old, new);
    assert!(!root.join(&old).exists(), "old data dir removed");
    assert_eq!(fs::read_to_string(root.join("a.conf")).unwrap(), "A2");
    assert_eq!(fs::read_to_string(root.join("c.conf")).unwrap(), "C");
    assert!(fs::symlink_metadata(root.join("b.conf")).is_err());
    assert!(!root.join(DATA_TMP_LINK).exists());
    let info = v.volume_path("info").unwrap();
    assert_eq!(
        fs::read_to_string(info.join("labels")).unwrap(),
        "a=\"x\\\"y\"\nb=\"2\"\nc=\"3\""
    );
    // A failing refresh keeps the old contents.
    objs.config_maps.clear();
    assert!(matches!(
        v.refresh(&p2, &objs, &ctx()),
        Err(VolumeError::ConfigMapNotFound { .. })
    ));
    assert_eq!(fs::read_to_string(root.join("a.conf")).unwrap(), "A2");
}

#[test]
fn mounts_map_read_only_and_propagation() {
    let f = Fixture::new();
    let host = tempfile::tempdir().unwrap();
    let p = pod_with(
        json!([
            {"name": "scratch", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "cfg"}},
            {"name": "host", "hostPath": {"path": host.path()}}
        ]),
        json!({}),
        json!([
            {"name": "scratch", "mountPath": "/scratch"},
            {"name": "cfg", "mountPath": "/etc/cfg"},
            {"name": "host", "mountPath": "/h1", "readOnly": true, "recursiveReadOnly": "Enabled", "mountPropagation": "HostToContainer"},
            {"name": "host", "mountPath": "/h2", "mountPropagation": "Bidirectional"},
            {"name": "host", "mountPath": "/h3", "mountPropagation": "None"}
        ]),
    );
    let v = PodVolumes::prepare(&p, &f.dir, &objects(), &ctx()).unwrap();
    let m = v.mounts(&container(&p), None).unwrap();
    assert_eq!(m.len(), 5);
    assert_eq!(m[0].container_path, "/scratch");
    assert_eq!(
        Path::new(&m[0].host_path),
        v.volume_path("scratch").unwrap()
    );
    assert!(!m[0].readonly);
    assert_eq!(
        m[0].propagation,
        MountPropagation::PropagationPrivate as i32
    );
    assert!(m[1].readonly, "configMap volumes are always read-only");
    assert_eq!(Path::new(&m[2].host_path), host.path());
    assert!(m[2].readonly && m[2].recursive_read_only);
    assert_eq!(
        m[2].propagation,
        MountPropagation::PropagationHostToContainer as i32
    );
    assert_eq!(
        m[3].propagation,
        MountPropagation::PropagationBidirectional as i32
    );
    assert!(!m[3].readonly && !m[3].recursive_read_only);
    assert_eq!(
        m[4].propagation,
        MountPropagation::PropagationPrivate as i32
    );

    let mut c = container(&p);
    c.volume_mounts.as_mut().unwrap()[0].name = "nope".into();
    let e = v.mounts(&c, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "cannot find volume \"nope\" to mount into container \"app\""
    );
}

#[test]
fn sub_paths_are_created_inside_and_escapes_refused() {
    let f = Fixture::new();
    let outside = tempfile::tempdir().unwrap();
    let p = pod_with(
        json!([
            {"name": "scratch", "emptyDir": {}},
            {"name": "cfg", "configMap": {"name": "cfg"}}
        ]),
        json!({}),
        json!([
            {"name": "scratch", "mountPath": "/a", "subPath": "x/y"},
            {"name": "scratch", "mountPath": "/b", "subPathExpr": "pods/$(POD)"},
            {"name": "cfg", "mountPath": "/etc/a.conf", "subPath": "a.conf"}
        ]),
    );
    let v = PodVolumes::prepare(&p, &f.dir, &objects(), &ctx()).unwrap();
    let scratch = fs::canonicalize(v.volume_path("scratch").unwrap()).unwrap();
    let env = Environment {
        vars: vec![("POD".into(), "web".into())],
        skipped: vec![],
    };
    let m = v.mounts(&container(&p), Some(&env)).unwrap();
    // Each subPath is bound from its descriptor under the pod's own `.subpaths`.
    let subpaths = fs::canonicalize(&f.dir).unwrap().join(".subpaths");
    assert!(Path::new(&m[0].host_path).starts_with(&subpaths), "{m:?}");
    assert!(same_file(&m[0].host_path, &scratch.join("x/y")));
    assert!(scratch.join("x/y").is_dir());
    assert_eq!(mode(&scratch.join("x")), 0o777);
    assert!(same_file(&m[1].host_path, &scratch.join("pods/web")));
    assert!(scratch.join("pods/web").is_dir());
    let cfg_file = fs::canonicalize(v.volume_path("cfg").unwrap().join("a.conf")).unwrap();
    assert!(same_file(&m[2].host_path, &cfg_file));
    assert!(m[2].readonly);

    // subPathExpr with an undefined variable.
    let e = v.mounts(&container(&p), None).unwrap_err();
    assert!(e.to_string().ends_with("missing value for POD"), "{e}");

    let mount_of = |sub: &str| {
        let mut c = container(&p);
        let vm = &mut c.volume_mounts.as_mut().unwrap()[0];
        vm.sub_path = Some(sub.into());
        v.mounts(&c, Some(&env)).map(|m| m[0].host_path.clone())
    };
    // Planted symlinks pointing out of the volume.
    std::os::unix::fs::symlink(outside.path(), scratch.join("out")).unwrap();
    std::os::unix::fs::symlink("../../../../..", scratch.join("up")).unwrap();
    for sub in [
        "out",
        "out/new/dir",
        "up",
        "up/etc",
        "../x",
        "/etc",
        "x/../../y",
    ] {
        let e = mount_of(sub).unwrap_err();
        assert!(matches!(e, VolumeError::SubPath { .. }), "{sub}: {e}");
    }
    assert!(
        !outside.path().join("new").exists(),
        "nothing created outside"
    );
    // A symlink that stays inside is fine.
    std::os::unix::fs::symlink("x", scratch.join("in")).unwrap();
    assert!(same_file(
        &mount_of("in/y/z").unwrap(),
        &scratch.join("x/y/z")
    ));
    teardown(&f.dir).unwrap();
    assert!(!f.dir.exists());
}

/// Whether `a` (a bind mount) shows the same file as `b`.
fn same_file(a: &str, b: &Path) -> bool {
    let (a, b) = (fs::metadata(a).unwrap(), fs::metadata(b).unwrap());
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

#[test]
fn mountinfo_escapes() {
    assert_eq!(unescape_mountinfo("/a\\040b\\011c\\134d"), "/a b\tc\\d");
    assert_eq!(unescape_mountinfo("/plain\\"), "/plain\\");
}
