//! User namespaces (`namespace_options.userns_options`): which pods get one, checking the
//! mappings, and the spec parts that put a container into its pod's.
//!
//! - Pod, mode `POD` with one UID and one GID mapping: the pod gets a user namespace of its own
//!   (the shim makes it and pins it as `ns/user`, and creates the pod's other namespaces in it).
//!   `POD` without mappings, `NODE`, or no `userns_options` at all (older kubelets): the host's.
//! - Container: no options, or `POD` without mappings, means the pod's; otherwise the options
//!   must be the pod's (the kubelet sends the same for the pod and each container).
//! - `CONTAINER` and `TARGET` are refused, as are several mappings per list, a mapping that
//!   does not start at container ID 0, an empty or overflowing one, mappings with `NODE`, and
//!   host network, PID or IPC together with a user namespace.
//!
//! [`apply`] joins the pod's pinned user namespace, sets `linux.uidMappings`/`gidMappings`
//! (the runtime checks the joined namespace has them) and idmaps every bind mount (volumes and
//! the pod's files appear inside with their on-disk owners). The rootfs is the daemon's overlay
//! over idmapped lower layers (`pods::rootfs::mount_overlay_idmapped`).

use std::path::Path;

use corral_cri_api::v1::{
    ContainerConfig, IdMapping, NamespaceMode, NamespaceOption, PodSandboxConfig, UserNamespace,
};
use corral_runtime::userns::{IdMappings, mapping};
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType, Spec};

use super::SpecError;

const POD: &str = "pod sandbox config: linux.security_context.namespace_options";
const CTR: &str = "container config: linux.security_context.namespace_options";

fn pod_options(pod: &PodSandboxConfig) -> Option<&NamespaceOption> {
    pod.linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
}

fn ctr_options(config: &ContainerConfig) -> Option<&NamespaceOption> {
    config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.as_ref())
}

fn mode(field: &str, v: i32) -> Result<NamespaceMode, SpecError> {
    NamespaceMode::try_from(v).map_err(|_| SpecError::invalid(format!("{field}: unknown mode {v}")))
}

/// One list of mappings: exactly one entry, not empty, no overflow, starting at container ID 0.
fn one(field: &str, list: &[IdMapping]) -> Result<IdMapping, SpecError> {
    let [m] = list else {
        return Err(SpecError::invalid(format!(
            "{field}: exactly one mapping is supported, got {}",
            list.len()
        )));
    };
    if m.length == 0 {
        return Err(SpecError::invalid(format!("{field}[0].length: is 0")));
    }
    let end = |start: u32| u64::from(start) + u64::from(m.length);
    if end(m.host_id) > 1 << 32 || end(m.container_id) > 1 << 32 {
        return Err(SpecError::invalid(format!(
            "{field}[0]: host_id {} / container_id {} + length {} overflows 32 bits",
            m.host_id, m.container_id, m.length
        )));
    }
    if m.container_id != 0 {
        return Err(SpecError::invalid(format!(
            "{field}[0].container_id: the mapping must cover the container's root (container_id 0), got {}",
            m.container_id
        )));
    }
    Ok(*m)
}

/// What one `userns_options` asks for: `Ok(None)` is "no mappings" (the host's user namespace
/// for a pod, the pod's for a container); `POD` with mappings gives them.
fn parse(field: &str, u: &UserNamespace) -> Result<Option<IdMappings>, SpecError> {
    let field = format!("{field}.userns_options");
    match mode(&format!("{field}.mode"), u.mode)? {
        NamespaceMode::Node => {
            if !u.uids.is_empty() || !u.gids.is_empty() {
                return Err(SpecError::invalid(format!(
                    "{field}: mode NODE takes no uids/gids mappings"
                )));
            }
            Ok(None)
        }
        m @ (NamespaceMode::Container | NamespaceMode::Target) => Err(SpecError::invalid(format!(
            "{field}.mode: {} is not supported for user namespaces (only POD and NODE)",
            m.as_str_name()
        ))),
        NamespaceMode::Pod => {
            if u.uids.is_empty() && u.gids.is_empty() {
                return Ok(None);
            }
            let uid = one(&format!("{field}.uids"), &u.uids)?;
            let gid = one(&format!("{field}.gids"), &u.gids)?;
            let oci = |m: IdMapping| mapping(m.container_id, m.host_id, m.length);
            Ok(Some(IdMappings {
                uids: vec![oci(uid)],
                gids: vec![oci(gid)],
            }))
        }
    }
}

/// Host network, PID or IPC cannot go with a user namespace (the runtime could not mount
/// sysfs, proc or mqueue for them inside it).
fn no_host_namespaces(field: &str, o: Option<&NamespaceOption>) -> Result<(), SpecError> {
    let Some(o) = o else { return Ok(()) };
    for (name, v) in [("network", o.network), ("pid", o.pid), ("ipc", o.ipc)] {
        if NamespaceMode::try_from(v) == Ok(NamespaceMode::Node) {
            return Err(SpecError::invalid(format!(
                "{field}.{name}: NODE cannot be combined with a user namespace of the pod (userns_options mode POD)"
            )));
        }
    }
    Ok(())
}

/// The pod's user namespace mappings (`None`: the host's user namespace), validated.
pub fn pod_userns(pod: &PodSandboxConfig) -> Result<Option<IdMappings>, SpecError> {
    let opts = pod_options(pod);
    let Some(u) = opts.and_then(|o| o.userns_options.as_ref()) else {
        return Ok(None);
    };
    let m = parse(POD, u)?;
    if m.is_some() {
        no_host_namespaces(POD, opts)?;
    }
    Ok(m)
}

/// The user namespace mappings of a container of `pod` (its pod's), after checking the
/// container's options agree with the pod's.
pub fn container_userns(
    pod: &PodSandboxConfig,
    config: &ContainerConfig,
) -> Result<Option<IdMappings>, SpecError> {
    let pod_m = pod_userns(pod)?;
    let opts = ctr_options(config);
    if let Some(u) = opts.and_then(|o| o.userns_options.as_ref()) {
        let field = format!("{CTR}.userns_options");
        let is_node = mode(&format!("{field}.mode"), u.mode)? == NamespaceMode::Node;
        let own = parse(CTR, u)?;
        let differs = match (&own, &pod_m) {
            (Some(c), Some(p)) => c != p,
            (Some(_), None) => true,
            (None, Some(_)) => is_node,
            (None, None) => false,
        };
        if differs {
            return Err(SpecError::invalid(format!(
                "{field}: differs from the pod sandbox's user namespace (a pod's containers share it)"
            )));
        }
    }
    if pod_m.is_some() {
        no_host_namespaces(CTR, opts)?;
    }
    check_mounts(config, pod_m.as_ref())?;
    Ok(pod_m)
}

/// CRI mounts with `uid_mappings`/`gid_mappings` (the kubelet sets them on a user namespace
/// pod's volumes): the pod's own mappings, as every bind mount of such a pod is idmapped with
/// its user namespace anyway; anything else is refused.
fn check_mounts(config: &ContainerConfig, pod: Option<&IdMappings>) -> Result<(), SpecError> {
    for (i, m) in config.mounts.iter().enumerate() {
        if m.uid_mappings.is_empty() && m.gid_mappings.is_empty() {
            continue;
        }
        let field = format!("mounts[{i}]");
        let Some(pod) = pod else {
            return Err(SpecError::invalid(format!(
                "{field}.uid_mappings: id-mapped mounts need a pod user namespace (userns_options mode POD)"
            )));
        };
        let uid = one(&format!("{field}.uid_mappings"), &m.uid_mappings)?;
        let gid = one(&format!("{field}.gid_mappings"), &m.gid_mappings)?;
        let oci = |m: IdMapping| mapping(m.container_id, m.host_id, m.length);
        if vec![oci(uid)] != pod.uids || vec![oci(gid)] != pod.gids {
            return Err(SpecError::invalid(format!(
                "{field}.uid_mappings/gid_mappings: only the pod's user namespace mappings are supported"
            )));
        }
    }
    Ok(())
}

/// Puts the container into the pod's user namespace pinned at `pin`: the namespace, its
/// mappings, idmapped bind mounts and an idmapped rootfs.
pub fn apply(spec: &mut Spec, mappings: &IdMappings, pin: &Path) {
    if let Some(linux) = spec.linux_mut() {
        let mut namespaces = linux.namespaces().clone().unwrap_or_default();
        namespaces.retain(|n| n.typ() != LinuxNamespaceType::User);
        let mut user = LinuxNamespace::default();
        user.set_typ(LinuxNamespaceType::User);
        user.set_path(Some(pin.to_path_buf()));
        namespaces.push(user);
        linux.set_namespaces(Some(namespaces));
        linux.set_uid_mappings(Some(mappings.uids.clone()));
        linux.set_gid_mappings(Some(mappings.gids.clone()));
    }
    if let Some(mounts) = spec.mounts_mut() {
        for m in mounts.iter_mut() {
            if m.typ().as_deref() != Some("bind") {
                continue;
            }
            let mut options = m.options().clone().unwrap_or_default();
            let recursive = options.iter().any(|o| o == "rbind");
            options.push(if recursive { "ridmap" } else { "idmap" }.to_owned());
            m.set_options(Some(options));
            m.set_uid_mappings(Some(mappings.uids.clone()));
            m.set_gid_mappings(Some(mappings.gids.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use corral_cri_api::v1::{
        LinuxContainerConfig, LinuxContainerSecurityContext, LinuxPodSandboxConfig,
        LinuxSandboxSecurityContext,
    };

    use super::*;

    fn ns(mode: NamespaceMode, uids: Vec<IdMapping>, gids: Vec<IdMapping>) -> NamespaceOption {
        NamespaceOption {
            userns_options: Some(UserNamespace {
                mode: mode as i32,
                uids,
                gids,
            }),
            ..Default::default()
        }
    }

    fn m(host_id: u32, container_id: u32, length: u32) -> IdMapping {
        IdMapping {
            host_id,
            container_id,
            length,
        }
    }

    fn pod(o: NamespaceOption) -> PodSandboxConfig {
        PodSandboxConfig {
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(o),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ctr(o: Option<NamespaceOption>) -> ContainerConfig {
        ContainerConfig {
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: o,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn good() -> NamespaceOption {
        ns(
            NamespaceMode::Pod,
            vec![m(100000, 0, 65536)],
            vec![m(100000, 0, 65536)],
        )
    }

    #[test]
    fn pod_modes_and_mappings() {
        let got = pod_userns(&pod(good())).unwrap().unwrap();
        assert_eq!(got.uids, vec![mapping(0, 100000, 65536)]);
        assert!(pod_userns(&PodSandboxConfig::default()).unwrap().is_none());
        assert!(
            pod_userns(&pod(ns(NamespaceMode::Node, vec![], vec![])))
                .unwrap()
                .is_none()
        );
        let two = vec![m(100000, 0, 10), m(200000, 10, 10)];
        let cases = [
            (
                ns(NamespaceMode::Container, vec![], vec![]),
                "mode: CONTAINER",
            ),
            (ns(NamespaceMode::Target, vec![], vec![]), "mode: TARGET"),
            (
                ns(NamespaceMode::Node, vec![m(1, 0, 1)], vec![m(1, 0, 1)]),
                "NODE takes no",
            ),
            (
                ns(NamespaceMode::Pod, two.clone(), vec![m(1, 0, 1)]),
                "uids: exactly one mapping is supported, got 2",
            ),
            (
                ns(NamespaceMode::Pod, vec![m(1, 0, 1)], vec![]),
                "gids: exactly one mapping is supported, got 0",
            ),
            (
                ns(NamespaceMode::Pod, vec![m(1, 5, 10)], vec![m(1, 0, 10)]),
                "uids[0].container_id: the mapping must cover",
            ),
            (
                ns(NamespaceMode::Pod, vec![m(1, 0, 0)], vec![m(1, 0, 10)]),
                "uids[0].length: is 0",
            ),
            (
                ns(
                    NamespaceMode::Pod,
                    vec![m(1, 0, 1)],
                    vec![m(u32::MAX, 0, 2)],
                ),
                "gids[0]: host_id",
            ),
        ];
        for (o, want) in cases {
            let e = pod_userns(&pod(o)).unwrap_err().to_string();
            assert!(
                e.contains("userns_options") && e.contains(want),
                "{want}: {e}"
            );
            assert!(e.starts_with("pod sandbox config:"), "{e}");
        }
        let mut host_net = good();
        host_net.network = NamespaceMode::Node as i32;
        let e = pod_userns(&pod(host_net)).unwrap_err().to_string();
        assert!(e.contains("namespace_options.network: NODE cannot"), "{e}");
    }

    #[test]
    fn containers_share_the_pods() {
        let p = pod(good());
        assert!(container_userns(&p, &ctr(None)).unwrap().is_some());
        assert!(container_userns(&p, &ctr(Some(good()))).unwrap().is_some());
        let same_mode = ns(NamespaceMode::Pod, vec![], vec![]);
        assert!(
            container_userns(&p, &ctr(Some(same_mode)))
                .unwrap()
                .is_some()
        );
        let other = ns(
            NamespaceMode::Pod,
            vec![m(200000, 0, 65536)],
            vec![m(200000, 0, 65536)],
        );
        for c in [other, ns(NamespaceMode::Node, vec![], vec![])] {
            let e = container_userns(&p, &ctr(Some(c))).unwrap_err().to_string();
            assert!(e.contains("differs from the pod sandbox's"), "{e}");
        }
        let host = PodSandboxConfig::default();
        let e = container_userns(&host, &ctr(Some(good())))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("container config:") && e.contains("differs"),
            "{e}"
        );
        let mut host_pid = NamespaceOption {
            pid: NamespaceMode::Node as i32,
            ..Default::default()
        };
        host_pid.userns_options = None;
        let e = container_userns(&p, &ctr(Some(host_pid)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("namespace_options.pid: NODE cannot"), "{e}");
        // Volumes with the pod's mappings (as the kubelet sends them) are fine, others not.
        let vol = |uids: Vec<IdMapping>| corral_cri_api::v1::Mount {
            container_path: "/v".into(),
            host_path: "/tmp".into(),
            uid_mappings: uids,
            gid_mappings: vec![m(100000, 0, 65536)],
            ..Default::default()
        };
        let mut c = ctr(None);
        c.mounts.push(vol(vec![m(100000, 0, 65536)]));
        assert!(container_userns(&p, &c).unwrap().is_some());
        c.mounts.push(vol(vec![m(300000, 0, 65536)]));
        let e = container_userns(&p, &c).unwrap_err().to_string();
        assert!(
            e.contains("mounts[1].uid_mappings/gid_mappings: only the pod's"),
            "{e}"
        );
        let e = container_userns(&host, &c).unwrap_err().to_string();
        assert!(
            e.contains("mounts[0].uid_mappings: id-mapped mounts need"),
            "{e}"
        );
    }

    #[test]
    fn apply_joins_and_idmaps() {
        let mut spec = Spec::default();
        let mappings = pod_userns(&pod(good())).unwrap().unwrap();
        let mut bind = oci_spec::runtime::Mount::default();
        bind.set_typ(Some("bind".into()));
        bind.set_options(Some(vec!["rbind".into()]));
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        mounts.push(bind);
        spec.set_mounts(Some(mounts));
        apply(&mut spec, &mappings, Path::new("/run/pod/ns/user"));
        let linux = spec.linux().as_ref().unwrap();
        let user = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .find(|n| n.typ() == LinuxNamespaceType::User)
            .unwrap();
        assert_eq!(user.path().as_deref(), Some(Path::new("/run/pod/ns/user")));
        assert_eq!(linux.uid_mappings().as_ref(), Some(&mappings.uids));
        let mounts = spec.mounts().as_ref().unwrap();
        let b = mounts.last().unwrap();
        assert_eq!(b.uid_mappings().as_ref(), Some(&mappings.uids));
        assert!(b.options().as_ref().unwrap().contains(&"ridmap".to_owned()));
        // Other mounts (proc, tmpfs, ...) are not idmapped.
        assert!(mounts[0].uid_mappings().is_none());
        // The rootfs is idmapped by the daemon's overlay (idmapped lower layers), not the
        // runtime.
        assert!(spec.annotations().as_ref().is_none_or(|a| a.is_empty()));
    }
}
