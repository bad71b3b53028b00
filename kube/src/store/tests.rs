use super::*;
use crate::manifest::parse;

fn now() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap()
}

fn one(yaml: &str) -> Object {
    parse(yaml).unwrap().remove(0)
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}\nspec:\n  containers: [{name: c, image: nginx}]\n";

#[test]
fn create_assigns_metadata_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), now()).unwrap();
    assert!(
        s.get(Kind::Namespace, "", "default").is_some(),
        "default namespace made"
    );
    let o = s.create(one(POD), now()).unwrap();
    let m = o.metadata();
    let uid = m.uid.clone().unwrap();
    assert_eq!(uid.len(), 36);
    assert_eq!(&uid[14..15], "4", "UUID v4");
    assert!(matches!(&uid[19..20], "8" | "9" | "a" | "b"));
    assert_eq!(m.namespace.as_deref(), Some("default"));
    assert_eq!(m.generation, Some(1));
    assert_eq!(m.creation_timestamp.as_ref().unwrap().0, now());
    let rv: u64 = m.resource_version.as_deref().unwrap().parse().unwrap();
    assert!(dir.path().join("pods/default/web.json").is_file());
    drop(s);
    let s = Store::open(dir.path(), now()).unwrap();
    let back = s.get(Kind::Pod, "default", "web").unwrap();
    assert_eq!(back.metadata().uid.as_deref(), Some(uid.as_str()));
    assert_eq!(s.resource_version(), rv);
    assert!(s.skipped().is_empty());
}

#[test]
fn create_twice_is_already_exists() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), now()).unwrap();
    s.create(one(POD), now()).unwrap();
    let e = s.create(one(POD), now()).unwrap_err();
    assert!(matches!(
        e,
        StoreError::AlreadyExists {
            resource: "pods",
            ..
        }
    ));
    assert_eq!(e.to_string(), r#"pods "web" already exists"#);
}

#[test]
fn apply_creates_configures_or_leaves_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), now()).unwrap();
    let (o, a) = s.apply(one(POD), now()).unwrap();
    assert_eq!(a, Applied::Created);
    let uid = o.metadata().uid.clone();
    let later = Timestamp::from_second(1_700_000_100).unwrap();
    let (_, a) = s.apply(one(POD), later).unwrap();
    assert_eq!(a, Applied::Unchanged);
    let relabeled = POD.replace("app: web", "app: web2");
    let (o2, a) = s.apply(one(&relabeled), later).unwrap();
    assert_eq!(a, Applied::Configured);
    assert_eq!(o2.metadata().generation, Some(1), "metadata only");
    let new_image = relabeled.replace("image: nginx", "image: nginx:2");
    let (o3, a) = s.apply(one(&new_image), later).unwrap();
    assert_eq!(a, Applied::Configured);
    assert_eq!(o3.metadata().generation, Some(2));
    assert_eq!(o3.metadata().uid, uid);
    assert_eq!(o3.metadata().creation_timestamp.as_ref().unwrap().0, now());
    let rv = |o: &Object| {
        o.metadata()
            .resource_version
            .as_deref()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(rv(&o3) > rv(&o2) && rv(&o2) > rv(&o));
}

#[test]
fn status_is_kept_by_apply() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), now()).unwrap();
    s.create(one(POD), now()).unwrap();
    let st = PodStatus {
        phase: Some("Running".into()),
        ..Default::default()
    };
    s.set_pod_status("default", "web", st).unwrap();
    let (o, _) = s
        .apply(one(&POD.replace("nginx", "nginx:2")), now())
        .unwrap();
    let Object::Pod(p) = o else { panic!() };
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
    assert!(matches!(
        s.set_pod_status("default", "nope", PodStatus::default()),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn namespaces_must_exist_and_be_empty_to_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), now()).unwrap();
    let e = s
        .create(
            one(&POD.replace("name: web,", "name: web, namespace: prod,")),
            now(),
        )
        .unwrap_err();
    assert_eq!(e.to_string(), r#"namespaces "prod" not found"#);
    s.create(
        one("apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n"),
        now(),
    )
    .unwrap();
    s.create(
        one(&POD.replace("name: web,", "name: web, namespace: prod,")),
        now(),
    )
    .unwrap();
    assert!(matches!(
        s.delete(Kind::Namespace, "", "prod"),
        Err(StoreError::NamespaceNotEmpty(_))
    ));
    s.delete(Kind::Pod, "prod", "web").unwrap();
    assert!(!dir.path().join("pods/prod/web.json").exists());
    s.delete(Kind::Namespace, "", "prod").unwrap();
    assert!(matches!(
        s.delete(Kind::Pod, "prod", "web"),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn list_by_namespace_and_selector() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), now()).unwrap();
    s.create(
        one("apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n"),
        now(),
    )
    .unwrap();
    s.create(one(POD), now()).unwrap();
    s.create(
        one(&POD
            .replace("name: web,", "name: db,")
            .replace("app: web", "app: db")),
        now(),
    )
    .unwrap();
    s.create(
        one(&POD.replace("name: web,", "name: web, namespace: prod,")),
        now(),
    )
    .unwrap();
    let names = |v: Vec<&Object>| {
        v.iter()
            .map(|o| format!("{}/{}", o.namespace(), o.name()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(s.list(Kind::Pod, Some("default"), None)),
        ["default/db", "default/web"]
    );
    assert_eq!(
        names(s.list(Kind::Pod, None, None)),
        ["default/db", "default/web", "prod/web"]
    );
    let sel = Selector::parse("app=web").unwrap();
    assert_eq!(
        names(s.list(Kind::Pod, None, Some(&sel))),
        ["default/web", "prod/web"]
    );
    assert_eq!(s.list(Kind::Namespace, Some("default"), None).len(), 2);
}

#[test]
fn store_answers_reference_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), now()).unwrap();
    s.create(
        one("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n"),
        now(),
    )
    .unwrap();
    s.create(
        one("apiVersion: v1\nkind: Secret\nmetadata: {name: sec}\nstringData: {p: q}\n"),
        now(),
    )
    .unwrap();
    assert!(s.config_map("default", "cfg").is_some());
    let sec = s.secret("default", "sec").unwrap();
    assert_eq!(
        sec.data.as_ref().unwrap()["p"].0,
        b"q",
        "stringData folded into data"
    );
    assert!(s.config_map("default", "sec").is_none());
}

#[test]
fn corrupt_and_temporary_files_do_not_stop_loading() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = Store::open(dir.path(), now()).unwrap();
        s.create(one(POD), now()).unwrap();
    }
    let pods = dir.path().join("pods/default");
    fs::write(pods.join("broken.json"), b"{not json").unwrap();
    fs::write(
        pods.join("other.json"),
        fs::read(pods.join("web.json")).unwrap(),
    )
    .unwrap();
    fs::write(pods.join(".tmp-web.json-0000"), b"partial").unwrap();
    let s = Store::open(dir.path(), now()).unwrap();
    assert!(s.get(Kind::Pod, "default", "web").is_some());
    assert_eq!(s.skipped().len(), 2, "{:?}", s.skipped());
    assert!(!pods.join(".tmp-web.json-0000").exists());
}

#[test]
fn replace_and_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path(), now()).unwrap();
    let o = s.create(one(POD), now()).unwrap();
    let mut changed = o.clone();
    changed.metadata_mut().deletion_timestamp = Some(Time(now()));
    changed.metadata_mut().uid = Some("forged".into());
    let r = s.replace(changed).unwrap();
    assert_eq!(r.metadata().uid, o.metadata().uid);
    assert!(r.metadata().deletion_timestamp.is_some());
    let e = s
        .create(one(&POD.replace("name: web,", "name: ../x,")), now())
        .unwrap_err();
    assert!(matches!(e, StoreError::InvalidName(_)));
    assert!(matches!(
        s.replace(one(&POD.replace("name: web,", "name: nope,"))),
        Err(StoreError::NotFound { .. })
    ));
}

#[test]
fn atomic_write_replaces_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a/b.json");
    write_atomic(&p, b"first").unwrap();
    write_atomic(&p, b"second").unwrap();
    assert_eq!(fs::read(&p).unwrap(), b"second");
    assert_eq!(
        fs::read_dir(dir.path().join("a")).unwrap().count(),
        1,
        "no temporary left"
    );
    assert_ne!(new_uid(), new_uid());
}

#[test]
fn objects_are_root_only_and_an_old_open_store_is_closed_at_open() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let mut s = Store::open(&store_dir, now()).unwrap();
    s.create(
        one("apiVersion: v1\nkind: Secret\nmetadata: {name: sec}\nstringData: {p: q}\n"),
        now(),
    )
    .unwrap();
    let secret = store_dir.join("secrets/default/sec.json");
    assert_eq!(mode(&secret), 0o600);
    assert_eq!(mode(&store_dir.join("secrets/default")), 0o700);
    assert_eq!(mode(&store_dir.join("secrets")), 0o700);
    assert_eq!(mode(&store_dir), 0o700);
    drop(s);
    // As an older version left it.
    for (p, m) in [
        (&store_dir, 0o755),
        (&store_dir.join("secrets"), 0o755),
        (&store_dir.join("secrets/default"), 0o755),
        (&secret, 0o644),
    ] {
        fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
    }
    let _s = Store::open(&store_dir, now()).unwrap();
    assert_eq!(mode(&secret), 0o600);
    assert_eq!(mode(&store_dir.join("secrets/default")), 0o700);
    assert_eq!(mode(&store_dir.join("secrets")), 0o700);
    assert_eq!(mode(&store_dir), 0o700);
}
