//! Pods and containers in protojson, as crictl prints them with `-o json|yaml` and `inspect`:
//! camelCase names, enum names, 64-bit integers as strings, defaults emitted, unset messages
//! as `null`.

use std::collections::HashMap;

use corral_cri_api::v1;
use serde_json::{Value, json};

use crate::output::image_spec_json;

fn map(m: &HashMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

fn opt<T>(v: Option<&T>, f: impl Fn(&T) -> Value) -> Value {
    v.map_or(Value::Null, f)
}

pub fn pod_state_name(state: i32) -> &'static str {
    v1::PodSandboxState::try_from(state).map_or("UNKNOWN", |s| s.as_str_name())
}

pub fn container_state_name(state: i32) -> &'static str {
    v1::ContainerState::try_from(state).map_or("UNKNOWN", |s| s.as_str_name())
}

fn namespace_mode(mode: i32) -> &'static str {
    v1::NamespaceMode::try_from(mode).map_or("UNKNOWN", |m| m.as_str_name())
}

fn pod_metadata(m: &v1::PodSandboxMetadata) -> Value {
    json!({ "name": m.name, "uid": m.uid, "namespace": m.namespace, "attempt": m.attempt })
}

fn container_metadata(m: &v1::ContainerMetadata) -> Value {
    json!({ "name": m.name, "attempt": m.attempt })
}

/// `PodSandbox` (an item of `ListPodSandboxResponse`).
pub fn pod_json(p: &v1::PodSandbox) -> Value {
    json!({
        "id": p.id,
        "metadata": opt(p.metadata.as_ref(), pod_metadata),
        "state": pod_state_name(p.state),
        "createdAt": p.created_at.to_string(),
        "labels": map(&p.labels),
        "annotations": map(&p.annotations),
        "runtimeHandler": p.runtime_handler,
    })
}

/// `ListPodSandboxResponse`.
pub fn pods_json(pods: &[v1::PodSandbox]) -> Value {
    json!({ "items": pods.iter().map(pod_json).collect::<Vec<_>>() })
}

/// `Container` (an item of `ListContainersResponse`).
pub fn container_json(c: &v1::Container) -> Value {
    json!({
        "id": c.id,
        "podSandboxId": c.pod_sandbox_id,
        "metadata": opt(c.metadata.as_ref(), container_metadata),
        "image": opt(c.image.as_ref(), image_spec_json),
        "imageRef": c.image_ref,
        "state": container_state_name(c.state),
        "createdAt": c.created_at.to_string(),
        "labels": map(&c.labels),
        "annotations": map(&c.annotations),
        "imageId": c.image_id,
    })
}

/// `ListContainersResponse`.
pub fn containers_json(containers: &[v1::Container]) -> Value {
    json!({ "containers": containers.iter().map(container_json).collect::<Vec<_>>() })
}

fn mount_json(m: &v1::Mount) -> Value {
    let propagation =
        v1::MountPropagation::try_from(m.propagation).map_or("UNKNOWN", |p| p.as_str_name());
    json!({
        "containerPath": m.container_path,
        "hostPath": m.host_path,
        "readonly": m.readonly,
        "selinuxRelabel": m.selinux_relabel,
        "propagation": propagation,
        "recursiveReadOnly": m.recursive_read_only,
        "image": opt(m.image.as_ref(), image_spec_json),
        "imageSubPath": m.image_sub_path,
    })
}

/// `LinuxContainerResources`.
pub fn linux_resources_json(r: &v1::LinuxContainerResources) -> Value {
    json!({
        "cpuPeriod": r.cpu_period.to_string(),
        "cpuQuota": r.cpu_quota.to_string(),
        "cpuShares": r.cpu_shares.to_string(),
        "memoryLimitInBytes": r.memory_limit_in_bytes.to_string(),
        "oomScoreAdj": r.oom_score_adj.to_string(),
        "cpusetCpus": r.cpuset_cpus,
        "cpusetMems": r.cpuset_mems,
        "hugepageLimits": r.hugepage_limits.iter()
            .map(|h| json!({ "pageSize": h.page_size, "limit": h.limit.to_string() }))
            .collect::<Vec<_>>(),
        "unified": map(&r.unified),
        "memorySwapLimitInBytes": r.memory_swap_limit_in_bytes.to_string(),
    })
}

/// `ContainerStatus`.
pub fn container_status_json(s: &v1::ContainerStatus) -> Value {
    let resources = opt(
        s.resources.as_ref(),
        |r| json!({ "linux": opt(r.linux.as_ref(), linux_resources_json), "windows": null }),
    );
    let user = opt(s.user.as_ref(), |u| {
        json!({ "linux": opt(u.linux.as_ref(), |l| json!({
            "uid": l.uid.to_string(),
            "gid": l.gid.to_string(),
            "supplementalGroups": l.supplemental_groups.iter().map(i64::to_string).collect::<Vec<_>>(),
        })) })
    });
    json!({
        "id": s.id,
        "metadata": opt(s.metadata.as_ref(), container_metadata),
        "state": container_state_name(s.state),
        "createdAt": s.created_at.to_string(),
        "startedAt": s.started_at.to_string(),
        "finishedAt": s.finished_at.to_string(),
        "exitCode": s.exit_code,
        "image": opt(s.image.as_ref(), image_spec_json),
        "imageRef": s.image_ref,
        "reason": s.reason,
        "message": s.message,
        "labels": map(&s.labels),
        "annotations": map(&s.annotations),
        "mounts": s.mounts.iter().map(mount_json).collect::<Vec<_>>(),
        "logPath": s.log_path,
        "resources": resources,
        "imageId": s.image_id,
        "user": user,
    })
}

/// `PodSandboxStatus`.
pub fn pod_status_json(s: &v1::PodSandboxStatus) -> Value {
    let network = opt(s.network.as_ref(), |n| {
        json!({
            "ip": n.ip,
            "additionalIps": n.additional_ips.iter().map(|ip| json!({ "ip": ip.ip })).collect::<Vec<_>>(),
        })
    });
    let linux = opt(s.linux.as_ref(), |l| {
        json!({ "namespaces": opt(l.namespaces.as_ref(), |ns| json!({
            "options": opt(ns.options.as_ref(), |o| json!({
                "network": namespace_mode(o.network),
                "pid": namespace_mode(o.pid),
                "ipc": namespace_mode(o.ipc),
                "targetId": o.target_id,
                "usernsOptions": null,
            })),
        })) })
    });
    json!({
        "id": s.id,
        "metadata": opt(s.metadata.as_ref(), pod_metadata),
        "state": pod_state_name(s.state),
        "createdAt": s.created_at.to_string(),
        "network": network,
        "linux": linux,
        "labels": map(&s.labels),
        "annotations": map(&s.annotations),
        "runtimeHandler": s.runtime_handler,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_json_uses_names_and_string_int64() {
        let pod = v1::PodSandbox {
            id: "abc".into(),
            metadata: Some(v1::PodSandboxMetadata {
                name: "n".into(),
                attempt: 1,
                ..Default::default()
            }),
            state: v1::PodSandboxState::SandboxNotready as i32,
            created_at: 1_700_000_000_000_000_000,
            ..Default::default()
        };
        let value = pods_json(&[pod]);
        let item = &value["items"][0];
        assert_eq!(item["state"], "SANDBOX_NOTREADY");
        assert_eq!(item["createdAt"], "1700000000000000000");
        assert_eq!(item["metadata"]["attempt"], 1);
        assert_eq!(item["runtimeHandler"], "");
    }

    #[test]
    fn container_status_json_covers_resources_and_mounts() {
        let status = v1::ContainerStatus {
            id: "c1".into(),
            state: v1::ContainerState::ContainerExited as i32,
            exit_code: 3,
            log_path: "/l".into(),
            mounts: vec![v1::Mount {
                container_path: "/data".into(),
                propagation: v1::MountPropagation::PropagationBidirectional as i32,
                ..Default::default()
            }],
            resources: Some(v1::ContainerResources {
                linux: Some(v1::LinuxContainerResources {
                    memory_limit_in_bytes: 1024,
                    ..Default::default()
                }),
                windows: None,
            }),
            ..Default::default()
        };
        let value = container_status_json(&status);
        assert_eq!(value["state"], "CONTAINER_EXITED");
        assert_eq!(value["exitCode"], 3);
        assert_eq!(value["logPath"], "/l");
        assert_eq!(
            value["mounts"][0]["propagation"],
            "PROPAGATION_BIDIRECTIONAL"
        );
        assert_eq!(
            value["resources"]["linux"]["memoryLimitInBytes"],
            json!("1024")
        );
        assert_eq!(value["metadata"], Value::Null);
    }
}
