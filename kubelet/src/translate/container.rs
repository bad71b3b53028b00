//! A container into `CreateContainer`'s `ContainerConfig` (`generateContainerConfig`): command,
//! env, mounts and the termination-message file, the `io.kubernetes.*` labels and annotations,
//! and the container hash that notices a changed spec.

use super::*;

pub(super) fn container_field(pod: &Pod, c: &Container, kind: ContainerKind) -> String {
    let spec = pod.spec.as_ref();
    let (list, name) = match kind {
        ContainerKind::Init => (
            spec.and_then(|s| s.init_containers.as_deref())
                .unwrap_or(&[]),
            "initContainers",
        ),
        ContainerKind::Regular => (spec.map_or(&[][..], |s| &s.containers[..]), "containers"),
    };
    let i = list.iter().position(|x| x.name == c.name).unwrap_or(0);
    format!("spec.{name}[{i}]")
}

/// The container's `ContainerConfig`, as the kubelet's `generateContainerConfig`.
pub fn container_config(
    pod: &Pod,
    c: &Container,
    inputs: ContainerInputs<'_>,
) -> Result<ContainerConfig, TranslateError> {
    let field = container_field(pod, c, inputs.kind);
    let (command, args) = command_and_args(c, inputs.env);
    let mut mounts = inputs.mounts.clone();
    if let Some(host) = &inputs.termination_message_file {
        mounts.push(Mount {
            container_path: termination_message_path(c).to_owned(),
            host_path: host.to_string_lossy().into_owned(),
            ..Default::default()
        });
    }
    Ok(ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: c.name.clone(),
            attempt: inputs.attempt,
        }),
        image: Some(ImageSpec {
            image: inputs.image.to_owned(),
            user_specified_image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command,
        args,
        working_dir: c.working_dir.clone().unwrap_or_default(),
        envs: inputs
            .env
            .vars
            .iter()
            .map(|(k, v)| KeyValue {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        mounts,
        labels: container_labels(pod, c).into_iter().collect(),
        annotations: container_annotations(pod, c, inputs.attempt)
            .into_iter()
            .collect(),
        log_path: inputs.log_path.clone(),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        linux: Some(LinuxContainerConfig {
            resources: Some(container_resources(pod, c, &inputs)),
            security_context: Some(container_security_context(pod, c, &inputs, &field)?),
        }),
        stop_signal: stop_signal(c, &field)? as i32,
        ..Default::default()
    })
}

/// `terminationMessagePath`, `/dev/termination-log` when unset.
pub fn termination_message_path(c: &Container) -> &str {
    c.termination_message_path
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_TERMINATION_MESSAGE_PATH)
}

pub(super) fn stop_signal(c: &Container, field: &str) -> Result<Signal, TranslateError> {
    let Some(s) = c.lifecycle.as_ref().and_then(|l| l.stop_signal.as_deref()) else {
        return Ok(Signal::RuntimeDefault);
    };
    match Signal::from_str_name(s) {
        Some(sig) if sig != Signal::RuntimeDefault => Ok(sig),
        _ => Err(invalid(
            format!("{field}.lifecycle.stopSignal"),
            s,
            "not a signal name",
        )),
    }
}

/// `newContainerLabels`: the pod's name, namespace and UID and the container's name.
pub fn container_labels(pod: &Pod, c: &Container) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    labels.insert(POD_NAME_LABEL.into(), meta_str(&pod.metadata.name).into());
    labels.insert(
        POD_NAMESPACE_LABEL.into(),
        meta_str(&pod.metadata.namespace).into(),
    );
    labels.insert(POD_UID_LABEL.into(), meta_str(&pod.metadata.uid).into());
    labels.insert(CONTAINER_NAME_LABEL.into(), c.name.clone());
    labels
}

/// `newContainerAnnotations`, with the API server's defaults for unset fields.
pub fn container_annotations(
    pod: &Pod,
    c: &Container,
    restart_count: u32,
) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    a.insert(CONTAINER_HASH_ANNOTATION.into(), container_hash(c));
    a.insert(RESTART_COUNT_ANNOTATION.into(), restart_count.to_string());
    a.insert(
        TERMINATION_MESSAGE_PATH_ANNOTATION.into(),
        termination_message_path(c).into(),
    );
    a.insert(
        TERMINATION_MESSAGE_POLICY_ANNOTATION.into(),
        c.termination_message_policy
            .clone()
            .unwrap_or_else(|| "File".into()),
    );
    if let Some(g) = pod.metadata.deletion_grace_period_seconds {
        a.insert(DELETION_GRACE_PERIOD_ANNOTATION.into(), g.to_string());
    }
    let grace = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(DEFAULT_TERMINATION_GRACE_PERIOD);
    a.insert(
        TERMINATION_GRACE_PERIOD_ANNOTATION.into(),
        grace.to_string(),
    );
    if let Some(pre_stop) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
        && let Ok(json) = serde_json::to_string(pre_stop)
    {
        a.insert(PRE_STOP_ANNOTATION.into(), json);
    }
    if let Some(ports) = c.ports.as_ref().filter(|p| !p.is_empty()) {
        a.insert(PORTS_ANNOTATION.into(), ports_json(ports));
    }
    a
}

/// The ports as Go's `json.Marshal` writes `[]v1.ContainerPort` (its field order, empty fields
/// left out, protocol defaulted to TCP).
pub(super) fn ports_json(ports: &[ContainerPort]) -> String {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let items: Vec<String> = ports
        .iter()
        .map(|p| {
            let mut f = Vec::new();
            if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
                f.push(format!("\"name\":{}", q(n)));
            }
            if let Some(h) = p.host_port.filter(|h| *h != 0) {
                f.push(format!("\"hostPort\":{h}"));
            }
            f.push(format!("\"containerPort\":{}", p.container_port));
            f.push(format!(
                "\"protocol\":{}",
                q(p.protocol.as_deref().unwrap_or("TCP"))
            ));
            if let Some(ip) = p.host_ip.as_deref().filter(|i| !i.is_empty()) {
                f.push(format!("\"hostIP\":{}", q(ip)));
            }
            format!("{{{}}}", f.join(","))
        })
        .collect();
    format!("[{}]", items.join(","))
}

/// A stable hash of the whole container spec (FNV-1a 64 over its JSON, in hex): any change to
/// the spec changes it. (The kubelet's own hash covers less and is not reproduced.)
pub fn container_hash(c: &Container) -> String {
    let bytes = serde_json::to_vec(c).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:x}")
}
