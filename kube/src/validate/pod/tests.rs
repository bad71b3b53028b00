use super::*;
use crate::manifest::{Object, parse};
use crate::objects::{Batch, NoObjects};

fn pod_of(yaml: &str) -> Pod {
    match parse(yaml).unwrap().remove(0) {
        Object::Pod(p) => *p,
        _ => panic!("not a pod"),
    }
}

fn errors_with(yaml: &str, objects: &dyn Objects) -> Vec<String> {
    pod(&pod_of(yaml), objects)
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn errors(yaml: &str) -> Vec<String> {
    errors_with(yaml, &NoObjects)
}

fn with_spec(spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n{spec}")
}

const ONE: &str = "  containers:\n  - name: web\n    image: nginx\n";

#[test]
fn a_good_pod_has_no_errors() {
    assert_eq!(errors(&with_spec(ONE)), Vec::<String>::new());
}

#[test]
fn names_images_and_duplicates_all_reported() {
    let e = errors(&with_spec(
        "  initContainers:\n  - name: web\n    image: busybox\n  containers:\n  - name: web\n    image: nginx\n  - name: Side_Car\n  - name: ''\n    image: x\n",
    ));
    assert_eq!(e.len(), 4, "{e:#?}");
    assert_eq!(e[0], r#"spec.containers[0].name: Duplicate value: "web""#);
    assert!(e[1].starts_with(
        r#"spec.containers[1].name: Invalid value: "Side_Car": a lowercase RFC 1123 label"#
    ));
    assert_eq!(e[2], "spec.containers[1].image: Required value");
    assert_eq!(e[3], "spec.containers[2].name: Required value");
    let e = errors("apiVersion: v1\nkind: Pod\nmetadata: {name: Foo_}\nspec:\n  containers: []\n");
    assert!(e[0].starts_with(
        r#"metadata.name: Invalid value: "Foo_": a lowercase RFC 1123 subdomain must consist of"#
    ));
    assert_eq!(e[1], "spec.containers: Required value");
}

#[test]
fn volumes_and_mounts() {
    let e = errors(&with_spec(
        "  containers:\n  - name: web\n    image: nginx\n    volumeMounts:\n    - {name: data, mountPath: /d}\n    - {name: cache, mountPath: /d}\n    - {name: cache, mountPath: /e, subPath: /abs}\n    - {name: cache, mountPath: /f, subPath: a/../../b}\n  volumes:\n  - name: cache\n    emptyDir: {}\n  - name: cache\n    emptyDir: {}\n  - name: none\n  - name: both\n    emptyDir: {}\n    hostPath: {path: /x}\n  - name: hp\n    hostPath: {path: /x, type: Dir}\n",
    ));
    let want = [
        r#"spec.volumes[1].name: Duplicate value: "cache""#,
        "spec.volumes[2]: Required value: must specify a volume type",
        "spec.volumes[3].hostPath: Forbidden: may not specify more than 1 volume type",
        r#"spec.volumes[4].hostPath.type: Unsupported value: "Dir": supported values: "", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice""#,
        r#"spec.containers[0].volumeMounts[0].name: Not found: "data""#,
        r#"spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/d": must be unique"#,
        r#"spec.containers[0].volumeMounts[2].subPath: Invalid value: "/abs": must be a relative path"#,
        r#"spec.containers[0].volumeMounts[3].subPath: Invalid value: "a/../../b": must not contain '..'"#,
    ];
    assert_eq!(e, want);
}

#[test]
fn policies_and_durations() {
    let e = errors(&with_spec(&format!(
        "{ONE}  restartPolicy: Sometimes\n  dnsPolicy: None\n  activeDeadlineSeconds: 0\n  terminationGracePeriodSeconds: -1\n"
    )));
    assert_eq!(
        e,
        [
            r#"spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never""#,
            "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None",
            "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
            "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0",
        ]
    );
    let e = errors(&with_spec(&format!("{ONE}  dnsPolicy: Cluster\n")));
    assert!(e[0].starts_with(r#"spec.dnsPolicy: Unsupported value: "Cluster""#));
    let ok = format!(
        "{ONE}  dnsPolicy: None\n  dnsConfig: {{nameservers: [1.1.1.1]}}\n  restartPolicy: OnFailure\n"
    );
    assert!(errors(&with_spec(&ok)).is_empty());
}

#[test]
fn probes() {
    let e = errors(&with_spec(
        "  containers:\n  - name: web\n    image: nginx\n    livenessProbe:\n      successThreshold: 2\n      periodSeconds: -1\n    readinessProbe:\n      exec: {command: ['true']}\n      tcpSocket: {port: 80}\n      successThreshold: 3\n    startupProbe:\n      httpGet: {port: 0}\n",
    ));
    assert_eq!(
        e,
        [
            "spec.containers[0].livenessProbe: Required value: must specify a handler type",
            "spec.containers[0].livenessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
            "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
            "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
            "spec.containers[0].startupProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive",
        ]
    );
}

#[test]
fn ports() {
    let e = errors(&with_spec(
        "  hostNetwork: true\n  containers:\n  - name: web\n    image: nginx\n    ports:\n    - {containerPort: 80, hostPort: 8080, name: http}\n    - {containerPort: 70000, name: http}\n    - {containerPort: 81, name: '8080', protocol: ICMP}\n",
    ));
    assert_eq!(
        e,
        [
            "spec.containers[0].ports[0].hostPort: Invalid value: 8080: must match `containerPort` when `hostNetwork` is true",
            r#"spec.containers[0].ports[1].name: Duplicate value: "http""#,
            "spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            r#"spec.containers[0].ports[2].name: Invalid value: "8080": must contain at least one letter (a-z)"#,
            r#"spec.containers[0].ports[2].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP""#,
        ]
    );
}

#[test]
fn env_and_resources() {
    let e = errors(&with_spec(
        "  containers:\n  - name: web\n    image: nginx\n    env:\n    - {name: 1BAD, value: x}\n    - name: BOTH\n      value: x\n      valueFrom: {fieldRef: {fieldPath: metadata.name}}\n    - name: F\n      valueFrom: {fieldRef: {fieldPath: spec.host}}\n    - name: L\n      valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}\n    resources:\n      requests: {cpu: '2', memory: 1Gb}\n      limits: {cpu: '1'}\n",
    ));
    assert_eq!(e.len(), 5, "{e:#?}");
    assert!(e[0].starts_with(r#"spec.containers[0].env[0].name: Invalid value: "1BAD": a valid environment variable name"#));
    assert_eq!(
        e[1],
        r#"spec.containers[0].env[1].valueFrom: Invalid value: "": may not be specified when `value` is not empty"#
    );
    assert!(e[2].starts_with(
        r#"spec.containers[0].env[2].valueFrom.fieldRef.fieldPath: Unsupported value: "spec.host""#
    ));
    assert!(e[3].starts_with(r#"spec.containers[0].resources.requests[memory]: Invalid value: "1Gb": quantities must match"#));
    assert_eq!(
        e[4],
        r#"spec.containers[0].resources.requests[cpu]: Invalid value: "2": must be less than or equal to cpu limit of 1"#
    );
}

#[test]
fn labels_on_pods() {
    let e = errors(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {app: 'bad value'}\nspec:\n  containers: [{name: a, image: b}]\n",
    );
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with(r#"metadata.labels: Invalid value: "bad value""#));
}

#[test]
fn references_through_objects() {
    let yaml = with_spec(
        "  containers:\n  - name: web\n    image: nginx\n    env:\n    - name: A\n      valueFrom: {configMapKeyRef: {name: cfg, key: x}}\n    - name: B\n      valueFrom: {secretKeyRef: {name: missing, key: why}}\n    - name: C\n      valueFrom: {secretKeyRef: {name: gone, key: why, optional: true}}\n    envFrom:\n    - configMapRef: {name: nope}\n  volumes:\n  - name: v\n    configMap: {name: cfg, items: [{key: a, path: a}, {key: zz, path: z}]}\n",
    );
    let batch =
        match &parse("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '1'}\n")
            .unwrap()[0]
        {
            Object::ConfigMap(c) => Batch {
                config_maps: vec![c.clone()],
                secrets: vec![],
            },
            _ => panic!(),
        };
    let e = errors_with(&yaml, &batch);
    assert_eq!(
        e,
        [
            r#"spec.volumes[0].configMap.items[1].key: Not found: "zz""#,
            r#"spec.containers[0].envFrom[0].configMapRef.name: Not found: "nope": configmap "nope" not found in namespace "default""#,
            r#"spec.containers[0].env[0].valueFrom.configMapKeyRef.key: Not found: "x": couldn't find key x in ConfigMap default/cfg"#,
            r#"spec.containers[0].env[1].valueFrom.secretKeyRef.name: Not found: "missing": secret "missing" not found in namespace "default""#,
        ]
    );
}

#[test]
fn subscripts() {
    assert_eq!(
        subscript("metadata.labels['a.b/c']", "metadata.labels"),
        Some("a.b/c")
    );
    assert_eq!(subscript("metadata.labels", "metadata.labels"), None);
    assert_eq!(
        subscript("metadata.annotations['x']", "metadata.labels"),
        None
    );
}

#[test]
fn volume_file_modes_above_0777_are_refused() {
    // Decimal in the YAML: 2541 is 04755 (the manifest reader does not take YAML 1.1 octal).
    let e = errors(&with_spec(&format!(
        "{ONE}  volumes:\n  - name: a\n    configMap: {{name: c, optional: true, defaultMode: 2541, items: [{{key: k, path: p, mode: 1517}}]}}\n  - name: b\n    secret: {{secretName: s, optional: true, defaultMode: -1, items: [{{key: k, path: p, mode: 511}}]}}\n  - name: c\n    downwardAPI: {{defaultMode: 1023, items: [{{path: p, mode: 2048, fieldRef: {{fieldPath: metadata.name}}}}]}}\n  - name: d\n    projected:\n      defaultMode: 420\n      sources:\n      - configMap: {{name: c, optional: true, items: [{{key: k, path: p, mode: 3565}}]}}\n      - secret: {{name: s, optional: true, items: [{{key: k, path: q, mode: 512}}]}}\n      - downwardAPI: {{items: [{{path: r, mode: 2468, fieldRef: {{fieldPath: metadata.name}}}}]}}\n"
    )));
    let msg = "must be a number between 0 and 0777 (octal), both inclusive";
    let want: Vec<String> = [
        "spec.volumes[0].configMap.defaultMode: Invalid value: 2541",
        "spec.volumes[0].configMap.items[0].mode: Invalid value: 1517",
        "spec.volumes[1].secret.defaultMode: Invalid value: -1",
        "spec.volumes[2].downwardAPI.defaultMode: Invalid value: 1023",
        "spec.volumes[2].downwardAPI.items[0].mode: Invalid value: 2048",
        "spec.volumes[3].projected.sources[0].configMap.items[0].mode: Invalid value: 3565",
        "spec.volumes[3].projected.sources[1].secret.items[0].mode: Invalid value: 512",
        "spec.volumes[3].projected.sources[2].downwardAPI.items[0].mode: Invalid value: 2468",
    ]
    .iter()
    .map(|s| format!("{s}: {msg}"))
    .collect();
    assert_eq!(e, want);
}

#[test]
fn volume_item_paths_host_paths_and_termination_paths() {
    let e = errors(&with_spec(
        "  containers:\n  - name: web\n    image: nginx\n    terminationMessagePath: dev/log\n  - name: side\n    image: nginx\n    terminationMessagePath: /dev/../etc/x\n  volumes:\n  - name: a\n    configMap: {name: c, optional: true, items: [{key: '', path: /abs}, {key: k, path: 'x/../../y'}, {key: k, path: '..data'}, {key: k, path: ''}]}\n  - name: b\n    downwardAPI: {items: [{path: ok}, {path: ../up, fieldRef: {fieldPath: metadata.name}, resourceFieldRef: {resource: limits.cpu}}]}\n  - name: c\n    hostPath: {path: 'rel/../x'}\n  - name: d\n    projected: {sources: [{serviceAccountToken: {path: /token}}]}\n",
    ));
    let want = [
        "spec.volumes[0].configMap.items[0].key: Required value",
        r#"spec.volumes[0].configMap.items[0].path: Invalid value: "/abs": must be a relative path"#,
        r#"spec.volumes[0].configMap.items[1].path: Invalid value: "x/../../y": must not contain '..'"#,
        r#"spec.volumes[0].configMap.items[2].path: Invalid value: "..data": must not start with '..'"#,
        "spec.volumes[0].configMap.items[3].path: Required value",
        "spec.volumes[1].downwardAPI.items[0]: Required value: one of fieldRef and resourceFieldRef is required",
        r#"spec.volumes[1].downwardAPI.items[1].path: Invalid value: "../up": must not contain '..'"#,
        r#"spec.volumes[1].downwardAPI.items[1]: Invalid value: "resource": fieldRef and resourceFieldRef can not be specified simultaneously"#,
        r#"spec.volumes[2].hostPath.path: Invalid value: "rel/../x": must not contain '..'"#,
        r#"spec.volumes[2].hostPath.path: Invalid value: "rel/../x": must be an absolute path"#,
        r#"spec.volumes[3].projected.sources[0].serviceAccountToken.path: Invalid value: "/token": must be a relative path"#,
        r#"spec.containers[0].terminationMessagePath: Invalid value: "dev/log": must be an absolute path"#,
        r#"spec.containers[1].terminationMessagePath: Invalid value: "/dev/../etc/x": must not contain '..'"#,
    ];
    assert_eq!(e, want);
}

#[test]
fn security_context_ids_must_be_ids() {
    let e = errors(&with_spec(
        "  securityContext: {fsGroup: -5, runAsUser: -1, runAsGroup: 4294967295, supplementalGroups: [1, -2]}\n  containers:\n  - name: web\n    image: nginx\n    securityContext: {runAsUser: -3, runAsGroup: -4}\n  initContainers:\n  - name: init\n    image: nginx\n    securityContext: {runAsUser: 4294967296}\n",
    ));
    let want = [
        "spec.securityContext.runAsUser: Invalid value: -1: must be greater than or equal to 0",
        "spec.securityContext.runAsGroup: Invalid value: 4294967295: must be less than or equal to 4294967294",
        "spec.securityContext.fsGroup: Invalid value: -5: must be greater than or equal to 0",
        "spec.securityContext.supplementalGroups[1]: Invalid value: -2: must be greater than or equal to 0",
        "spec.initContainers[0].securityContext.runAsUser: Invalid value: 4294967296: must be less than or equal to 4294967294",
        "spec.containers[0].securityContext.runAsUser: Invalid value: -3: must be greater than or equal to 0",
        "spec.containers[0].securityContext.runAsGroup: Invalid value: -4: must be greater than or equal to 0",
    ];
    assert_eq!(e, want);
    let ok = "  securityContext: {fsGroup: 0, runAsUser: 0, runAsGroup: 4294967294, supplementalGroups: [0]}\n  containers:\n  - name: web\n    image: nginx\n    securityContext: {runAsUser: 1000}\n    terminationMessagePath: /dev/termination-log\n";
    assert_eq!(errors(&with_spec(ok)), Vec::<String>::new());
}
