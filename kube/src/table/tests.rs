use super::*;
use crate::manifest::parse;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStatus, PodIP, PodStatus,
};

fn secs(s: i64) -> SignedDuration {
    SignedDuration::from_secs(s)
}

#[test]
fn human_durations_like_kubectl() {
    let cases = [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (45, "45s"),
        (119, "119s"),
        (120, "2m"),
        (182, "3m2s"),
        (599, "9m59s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (5 * 3600 + 3 * 60, "5h3m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (2 * 86400 + 5 * 3600, "2d5h"),
        (8 * 86400, "8d"),
        (30 * 86400, "30d"),
        (2 * 365 * 86400, "2y"),
        (3 * 365 * 86400 + 10 * 86400, "3y10d"),
        (9 * 365 * 86400, "9y"),
    ];
    for (s, want) in cases {
        assert_eq!(human_duration(secs(s)), want, "{s}s");
    }
    assert_eq!(age(None, Timestamp::UNIX_EPOCH), "<unknown>");
}

#[test]
fn tabwriter_alignment() {
    let t = Table {
        headers: vec!["NAME".into(), "READY".into(), "AGE".into()],
        rows: vec![
            vec!["nginx".into(), "1/1".into(), "5m".into()],
            vec!["a".into(), "0/1".into(), "10s".into()],
        ],
    };
    assert_eq!(
        t.render(),
        "NAME    READY   AGE\nnginx   1/1     5m\na       0/1     10s\n"
    );
    let narrow = Table {
        headers: vec!["A".into(), "B".into()],
        rows: vec![],
    };
    assert_eq!(narrow.render(), "A     B\n", "min width 6");
}

fn running_pod(name: &str, ns: &str, created: Timestamp) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    p.metadata.namespace = Some(ns.into());
    p.metadata.creation_timestamp = Some(Time(created));
    p.metadata.labels = Some(
        [
            ("app".to_string(), name.to_string()),
            ("run".to_string(), "x".to_string()),
        ]
        .into(),
    );
    p.spec = Some(k8s_openapi::api::core::v1::PodSpec {
        containers: vec![k8s_openapi::api::core::v1::Container {
            name: "c".into(),
            ..Default::default()
        }],
        node_name: Some("host1".into()),
        ..Default::default()
    });
    p.status = Some(PodStatus {
        phase: Some("Running".into()),
        pod_ips: Some(vec![PodIP {
            ip: "10.88.0.7".into(),
        }]),
        container_statuses: Some(vec![ContainerStatus {
            name: "c".into(),
            ready: true,
            state: Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(created)),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    });
    p
}

#[test]
fn get_pods_plain_wide_all_labels() {
    let now = Timestamp::from_second(1_000_000).unwrap();
    let created = Timestamp::from_second(1_000_000 - 182).unwrap();
    let pods = [
        running_pod("nginx", "default", created),
        running_pod("web-1", "prod", created),
    ];
    assert_eq!(
        super::pods(&pods, PodOptions::default(), now).render(),
        "NAME    READY   STATUS    RESTARTS   AGE\nnginx   1/1     Running   0          3m2s\nweb-1   1/1     Running   0          3m2s\n"
    );
    let wide = super::pods(
        &pods[..1],
        PodOptions {
            wide: true,
            all_namespaces: true,
            show_labels: true,
        },
        now,
    );
    assert_eq!(
        wide.headers,
        [
            "NAMESPACE",
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES",
            "LABELS"
        ]
    );
    assert_eq!(
        wide.rows[0],
        [
            "default",
            "nginx",
            "1/1",
            "Running",
            "0",
            "3m2s",
            "10.88.0.7",
            "host1",
            "<none>",
            "<none>",
            "app=nginx,run=x"
        ]
    );
}

#[test]
fn other_kinds() {
    let now = Timestamp::from_second(100_000).unwrap();
    let mut objs = parse(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b, c: d}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {x: z}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n",
    )
    .unwrap();
    for o in &mut objs {
        o.normalize();
        o.metadata_mut().creation_timestamp =
            Some(Time(Timestamp::from_second(100_000 - 7200).unwrap()));
    }
    let (Object::ConfigMap(c), Object::Secret(s), Object::Namespace(n)) =
        (&objs[0], &objs[1], &objs[2])
    else {
        panic!()
    };
    assert_eq!(
        config_maps(std::slice::from_ref(c), false, now).render(),
        "NAME   DATA   AGE\ncfg    2      120m\n"
    );
    assert_eq!(
        secrets(std::slice::from_ref(s), true, now).render(),
        "NAMESPACE   NAME   TYPE     DATA   AGE\ndefault     s      Opaque   1      120m\n"
    );
    assert_eq!(
        namespaces(std::slice::from_ref(n), now).render(),
        "NAME   STATUS   AGE\nprod   Active   120m\n"
    );
    assert_eq!(names(&objs), "configmap/cfg\nsecret/s\nnamespace/prod\n");
    assert_eq!(
        no_resources(Some("default")),
        "No resources found in default namespace."
    );
}

#[test]
fn json_and_yaml_output() {
    let objs =
        parse("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n").unwrap();
    let json = to_json(&objs);
    assert_eq!(
        json,
        "{\n    \"apiVersion\": \"v1\",\n    \"data\": {\n        \"a\": \"b\"\n    },\n    \"kind\": \"ConfigMap\",\n    \"metadata\": {\n        \"name\": \"cfg\"\n    }\n}\n"
    );
    assert_eq!(
        to_yaml(&objs).unwrap(),
        "apiVersion: v1\ndata:\n  a: b\nkind: ConfigMap\nmetadata:\n  name: cfg\n"
    );
    let two = [objs[0].clone(), objs[0].clone()];
    let v = output_value(&two);
    assert_eq!(v["kind"], "List");
    assert_eq!(v["items"].as_array().unwrap().len(), 2);
    let pod = parse("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: i\n    args: [\"line1\\nline2\"]\n").unwrap();
    let y = to_yaml(&pod).unwrap();
    assert!(y.contains("spec:\n  containers:\n  - args:\n"), "{y}");
}
