use super::*;
use crate::manifest::{Object, parse};
use crate::objects::Batch;

fn setup(yaml: &str) -> (Pod, Batch) {
    let mut pod = None;
    let mut batch = Batch::default();
    for mut o in parse(yaml).unwrap() {
        o.normalize();
        match o {
            Object::Pod(p) => pod = Some(*p),
            Object::ConfigMap(c) => batch.config_maps.push(c),
            Object::Secret(s) => batch.secrets.push(s),
            Object::Namespace(_) => {}
        }
    }
    (pod.unwrap(), batch)
}

fn ctx() -> PodContext {
    PodContext {
        pod_ips: vec!["10.88.0.5".into(), "fd00::5".into()],
        host_ips: vec!["192.168.1.2".into()],
        node_name: "host1".into(),
        node_allocatable: [
            ("cpu".to_string(), Quantity::parse("4").unwrap()),
            ("memory".to_string(), Quantity::parse("8Gi").unwrap()),
        ]
        .into(),
    }
}

fn build(yaml: &str) -> Result<Environment, EnvError> {
    let (pod, batch) = setup(yaml);
    let c = pod.spec.as_ref().unwrap().containers[0].clone();
    environment(&pod, &c, &ctx(), &batch)
}

const OBJECTS: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {LEVEL: debug, 'bad key': x, HOST: db}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
stringData: {PASSWORD: hunter2}
---
";

fn pod_with(env: &str) -> String {
    format!(
        "{OBJECTS}apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: default\n  uid: u-1234\n  labels: {{app: web}}\n  annotations: {{note: hi}}\nspec:\n  containers:\n  - name: app\n    image: busybox\n    resources:\n      requests: {{memory: 64Mi}}\n      limits: {{cpu: 250m, memory: 128Mi}}\n{env}"
    )
}

fn pairs(env: &Environment) -> Vec<(&str, &str)> {
    env.vars
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn env_from_then_env_with_expansion() {
    let env = build(&pod_with(
        "    envFrom:\n    - configMapRef: {name: cfg}\n      prefix: CFG_\n    - secretRef: {name: sec}\n    env:\n    - {name: URL, value: 'postgres://$(CFG_HOST):5432/$(LATER)'}\n    - {name: LATER, value: x}\n    - {name: ESC, value: '$$(CFG_HOST) costs $5'}\n    - {name: CFG_LEVEL, value: info}\n",
    ))
    .unwrap();
    assert_eq!(
        pairs(&env),
        [
            ("CFG_HOST", "db"),
            ("CFG_LEVEL", "info"),
            ("PASSWORD", "hunter2"),
            ("URL", "postgres://db:5432/$(LATER)"),
            ("LATER", "x"),
            ("ESC", "$(CFG_HOST) costs $5"),
        ]
    );
    assert_eq!(
        env.skipped,
        [
            "Keys [CFG_bad key] from the EnvFrom configMap default/cfg were skipped since they are considered invalid environment variable names."
        ]
    );
}

#[test]
fn downward_api() {
    let env = build(&pod_with(
        "    env:\n    - {name: NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n    - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}\n    - {name: U, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}\n    - {name: L, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}}\n    - {name: A, valueFrom: {fieldRef: {fieldPath: \"metadata.annotations['note']\"}}}\n    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}\n    - {name: SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}\n    - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}\n    - {name: IPS, valueFrom: {fieldRef: {fieldPath: status.podIPs}}}\n    - {name: HOST, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}\n",
    ))
    .unwrap();
    let want = [
        ("NAME", "web"),
        ("NS", "default"),
        ("U", "u-1234"),
        ("L", "web"),
        ("A", "hi"),
        ("NODE", "host1"),
        ("SA", "default"),
        ("IP", "10.88.0.5"),
        ("IPS", "10.88.0.5,fd00::5"),
        ("HOST", "192.168.1.2"),
    ];
    assert_eq!(pairs(&env), want);
}

#[test]
fn resource_field_refs() {
    let env = build(&pod_with(
        "    env:\n    - {name: CPU_LIMIT, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}\n    - {name: CPU_LIMIT_M, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}}\n    - {name: MEM_LIMIT_MI, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}\n    - {name: MEM_REQ, valueFrom: {resourceFieldRef: {resource: requests.memory}}}\n    - {name: CPU_REQ, valueFrom: {resourceFieldRef: {resource: requests.cpu, divisor: 1m}}}\n",
    ))
    .unwrap();
    assert_eq!(
        pairs(&env),
        [
            ("CPU_LIMIT", "1"),
            ("CPU_LIMIT_M", "250"),
            ("MEM_LIMIT_MI", "128"),
            ("MEM_REQ", "67108864"),
            ("CPU_REQ", "250"),
        ]
    );
    let no_limits = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: i\n    env:\n    - {name: M, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Gi}}}\n    - {name: C, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}\n    - {name: R, valueFrom: {resourceFieldRef: {resource: requests.cpu}}}\n";
    assert_eq!(
        pairs(&build(no_limits).unwrap()),
        [("M", "8"), ("C", "4"), ("R", "0")]
    );
}

#[test]
fn key_refs_and_their_errors() {
    let env = build(&pod_with(
        "    env:\n    - {name: L, valueFrom: {configMapKeyRef: {name: cfg, key: LEVEL}}}\n    - {name: P, valueFrom: {secretKeyRef: {name: sec, key: PASSWORD}}}\n    - {name: O, valueFrom: {secretKeyRef: {name: nope, key: k, optional: true}}}\n    - {name: O2, valueFrom: {configMapKeyRef: {name: cfg, key: nokey, optional: true}}}\n",
    ))
    .unwrap();
    assert_eq!(pairs(&env), [("L", "debug"), ("P", "hunter2")]);
    let e = build(&pod_with(
        "    env:\n    - {name: X, valueFrom: {configMapKeyRef: {name: cfg, key: x}}}\n",
    ))
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "couldn't find key x in ConfigMap default/cfg"
    );
    let e = build(&pod_with(
        "    env:\n    - {name: X, valueFrom: {configMapKeyRef: {name: other, key: x}}}\n",
    ))
    .unwrap_err();
    assert_eq!(e.to_string(), r#"configmap "other" not found"#);
    let e = build(&pod_with(
        "    env:\n    - {name: X, valueFrom: {secretKeyRef: {name: sec, key: x}}}\n",
    ))
    .unwrap_err();
    assert_eq!(e.to_string(), "couldn't find key x in Secret default/sec");
    let e = build(&pod_with("    envFrom:\n    - secretRef: {name: gone}\n")).unwrap_err();
    assert_eq!(e.to_string(), r#"secret "gone" not found"#);
    let ok = build(&pod_with(
        "    envFrom:\n    - secretRef: {name: gone, optional: true}\n",
    ))
    .unwrap();
    assert!(ok.vars.is_empty());
}

#[test]
fn expansion_rules() {
    let vars: BTreeMap<&str, &str> = [("A", "1"), ("B", "two")].into();
    let x = |s: &str| expand(s, |n| vars.get(n).map(|v| v.to_string()));
    assert_eq!(x("$(A)-$(B)"), "1-two");
    assert_eq!(x("$(C)"), "$(C)");
    assert_eq!(x("$$(A)"), "$(A)");
    assert_eq!(x("$$$(A)"), "$1");
    assert_eq!(x("$A"), "$A");
    assert_eq!(x("$(A"), "$(A");
    assert_eq!(x("end$"), "end$");
    assert_eq!(x("$()"), "$()");
    assert_eq!(x("€$(A)€"), "€1€");
    assert_eq!(x("$€"), "$€");
    assert_eq!(x("no refs"), "no refs");
}

#[test]
fn command_and_args_expand() {
    let (pod, batch) = setup(&pod_with(
        "    command: [sh, -c, 'echo $(MSG) $$(MSG) $(NOPE)']\n    args: ['$(MSG)']\n    env:\n    - {name: MSG, value: hello}\n",
    ));
    let c = &pod.spec.as_ref().unwrap().containers[0];
    let env = environment(&pod, c, &ctx(), &batch).unwrap();
    let (cmd, args) = command_and_args(c, &env);
    assert_eq!(cmd, ["sh", "-c", "echo hello $(MSG) $(NOPE)"]);
    assert_eq!(args, ["hello"]);
}

#[test]
fn unsupported_paths() {
    let pod = Pod::default();
    assert_eq!(
        field_value("spec.host", &pod, &ctx()),
        Err(EnvError::UnsupportedFieldPath("spec.host".into()))
    );
    let c = Container::default();
    assert!(matches!(
        resource_value("limits.gpu", None, &c, &ctx()),
        Err(EnvError::UnsupportedResource(_))
    ));
    assert!(matches!(
        resource_value("limits.cpu", Some("0"), &c, &ctx()),
        Err(EnvError::Divisor(_))
    ));
}
