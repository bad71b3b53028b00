//! A Pod into `RunPodSandbox`'s `PodSandboxConfig` (the kubelet's `generatePodSandboxConfig`):
//! metadata, labels, hostname, port mappings, namespaces, and the Linux part (users and
//! groups, SELinux, seccomp, sysctls).

use super::*;

/// The pod's `PodSandboxConfig`, as the kubelet's `generatePodSandboxConfig`.
pub fn sandbox_config(
    pod: &Pod,
    opts: &SandboxOptions,
) -> Result<PodSandboxConfig, TranslateError> {
    let spec = spec(pod)?;
    let host_network = spec.host_network.unwrap_or(false);
    let hostname = if host_network {
        String::new()
    } else {
        let (name, domain) = hostname_and_domain(pod, opts.cluster_domain.as_deref())?;
        kernel_hostname(spec, &name, &domain)?
    };
    Ok(PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: meta_str(&pod.metadata.name).to_owned(),
            uid: meta_str(&pod.metadata.uid).to_owned(),
            namespace: meta_str(&pod.metadata.namespace).to_owned(),
            attempt: opts.attempt,
        }),
        hostname,
        log_directory: opts.log_dir.to_string_lossy().into_owned(),
        dns_config: dns_config(pod, opts)?,
        port_mappings: port_mappings(spec),
        labels: pod_labels(pod).into_iter().collect(),
        annotations: pod
            .metadata
            .annotations
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        linux: Some(sandbox_linux(pod, spec, opts)?),
        ..Default::default()
    })
}

/// The pod's labels plus `io.kubernetes.pod.{name,namespace,uid}` (`newPodLabels`).
pub fn pod_labels(pod: &Pod) -> BTreeMap<String, String> {
    let mut labels = pod.metadata.labels.clone().unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), meta_str(&pod.metadata.name).into());
    labels.insert(
        POD_NAMESPACE_LABEL.into(),
        meta_str(&pod.metadata.namespace).into(),
    );
    labels.insert(POD_UID_LABEL.into(), meta_str(&pod.metadata.uid).into());
    labels
}

/// The pod's hostname and domain (`GeneratePodHostNameAndDomain`): `hostnameOverride`, else
/// `spec.hostname`, else the pod's name cut to 63 characters (without a trailing `-` or `.`);
/// the domain is `<subdomain>.<namespace>.svc.<cluster domain>` when `subdomain` is set and
/// there is a cluster domain, else empty.
pub fn hostname_and_domain(
    pod: &Pod,
    cluster_domain: Option<&str>,
) -> Result<(String, String), TranslateError> {
    let spec = spec(pod)?;
    if let Some(o) = spec.hostname_override.as_deref().filter(|o| !o.is_empty()) {
        return Ok((o.to_owned(), String::new()));
    }
    let hostname = match spec.hostname.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => {
            check_dns_label("spec.hostname", h)?;
            h.to_owned()
        }
        None => truncate_hostname(meta_str(&pod.metadata.name)),
    };
    let domain = match (
        spec.subdomain.as_deref().filter(|s| !s.is_empty()),
        cluster_domain,
    ) {
        (Some(sub), Some(cd)) if !cd.is_empty() => {
            check_dns_label("spec.subdomain", sub)?;
            format!("{sub}.{}.svc.{cd}", meta_str(&pod.metadata.namespace))
        }
        _ => String::new(),
    };
    Ok((hostname, domain))
}

pub(super) fn truncate_hostname(name: &str) -> String {
    if name.len() <= MAX_HOSTNAME_LEN {
        return name.to_owned();
    }
    let cut = name.get(..MAX_HOSTNAME_LEN).unwrap_or(name);
    cut.trim_end_matches(['-', '.']).to_owned()
}

pub(super) fn check_dns_label(field: &str, v: &str) -> Result<(), TranslateError> {
    let ok = !v.is_empty()
        && v.len() <= MAX_HOSTNAME_LEN
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !v.starts_with('-')
        && !v.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            v,
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
             and must start and end with an alphanumeric character",
        ))
    }
}

/// `GetNodenameForKernel`: the FQDN with `setHostnameAsFQDN` (at most 64 characters).
pub(super) fn kernel_hostname(
    spec: &PodSpec,
    hostname: &str,
    domain: &str,
) -> Result<String, TranslateError> {
    if !spec.set_hostname_as_fqdn.unwrap_or(false) || domain.is_empty() {
        return Ok(hostname.to_owned());
    }
    let fqdn = format!("{hostname}.{domain}");
    if fqdn.len() > 64 {
        return Err(invalid(
            "spec.setHostnameAsFQDN",
            &fqdn,
            format!(
                "FQDN is too long (64 characters is the max, {} characters requested)",
                fqdn.len()
            ),
        ));
    }
    Ok(fqdn)
}

/// Every container port (`MakePortMappings`, a port name used twice in a container counting
/// once), protocol TCP unless UDP or SCTP. Ports without `hostPort` are kept (host port 0), as
/// the kubelet does; Corral's port mapping skips them.
pub(super) fn port_mappings(spec: &PodSpec) -> Vec<PortMapping> {
    let mut out = Vec::new();
    for c in &spec.containers {
        let mut names = std::collections::HashSet::new();
        for p in c.ports.iter().flatten() {
            if !names.insert(port_key(p)) {
                continue;
            }
            out.push(PortMapping {
                protocol: protocol(p.protocol.as_deref()) as i32,
                container_port: p.container_port,
                host_port: p.host_port.unwrap_or(0),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            });
        }
    }
    out
}

pub(super) fn port_key(p: &ContainerPort) -> String {
    if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
        return n.to_owned();
    }
    let host_ip = p.host_ip.as_deref().unwrap_or("");
    let family = match host_ip.parse::<std::net::IpAddr>() {
        _ if host_ip.is_empty() => "any",
        Ok(std::net::IpAddr::V6(_)) => "v6",
        _ => "v4",
    };
    format!(
        "{family}-{}-{host_ip}:{}:{}",
        p.protocol.as_deref().unwrap_or("TCP"),
        p.container_port,
        p.host_port.unwrap_or(0)
    )
}

pub(super) fn protocol(p: Option<&str>) -> Protocol {
    match p {
        Some("UDP") => Protocol::Udp,
        Some("SCTP") => Protocol::Sctp,
        _ => Protocol::Tcp,
    }
}

pub(super) fn sandbox_linux(
    pod: &Pod,
    spec: &PodSpec,
    opts: &SandboxOptions,
) -> Result<LinuxPodSandboxConfig, TranslateError> {
    let psc = spec.security_context.as_ref();
    let sysctls = psc
        .and_then(|s| s.sysctls.as_ref())
        .into_iter()
        .flatten()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    let security_context = LinuxSandboxSecurityContext {
        namespace_options: Some(namespace_options(spec)?),
        selinux_options: psc.and_then(|s| s.se_linux_options.as_ref()).map(selinux),
        run_as_user: psc.and_then(|s| s.run_as_user).map(int64),
        run_as_group: psc.and_then(|s| s.run_as_group).map(int64),
        readonly_rootfs: false,
        supplemental_groups: pod_supplemental_groups(spec),
        supplemental_groups_policy: supplemental_groups_policy(spec)? as i32,
        privileged: has_privileged_container(spec),
        // The kubelet runs every sandbox RuntimeDefault so a pod-level profile can be strict.
        seccomp: Some(profile(ProfileType::RuntimeDefault, "")),
        ..Default::default()
    };
    Ok(LinuxPodSandboxConfig {
        cgroup_parent: opts.cgroup_parent.clone(),
        security_context: Some(security_context),
        sysctls,
        overhead: Some(overhead_resources(spec)),
        resources: Some(pod_resources(pod)),
    })
}

pub(super) fn int64(value: i64) -> Int64Value {
    Int64Value { value }
}

pub(super) fn selinux(o: &SELinuxOptions) -> SeLinuxOption {
    SeLinuxOption {
        user: o.user.clone().unwrap_or_default(),
        role: o.role.clone().unwrap_or_default(),
        r#type: o.type_.clone().unwrap_or_default(),
        level: o.level.clone().unwrap_or_default(),
    }
}

pub(super) fn profile(t: ProfileType, localhost_ref: &str) -> SecurityProfile {
    SecurityProfile {
        profile_type: t as i32,
        localhost_ref: localhost_ref.to_owned(),
    }
}

/// `NamespacesForPod`: host network, IPC and PID from the spec; PID `POD` with
/// `shareProcessNamespace`, else `CONTAINER`; the host's user namespace.
pub fn namespace_options(spec: &PodSpec) -> Result<NamespaceOption, TranslateError> {
    let node_or = |host: Option<bool>, other: NamespaceMode| {
        if host.unwrap_or(false) {
            NamespaceMode::Node
        } else {
            other
        }
    };
    let pid = if spec.host_pid.unwrap_or(false) {
        NamespaceMode::Node
    } else if spec.share_process_namespace.unwrap_or(false) {
        NamespaceMode::Pod
    } else {
        NamespaceMode::Container
    };
    if spec.host_users == Some(false) {
        return Err(TranslateError::Unsupported {
            field: "spec.hostUsers".into(),
            reason: "user namespaces need ID mappings, which the pod manager does not allocate"
                .into(),
        });
    }
    Ok(NamespaceOption {
        network: node_or(spec.host_network, NamespaceMode::Pod) as i32,
        pid: pid as i32,
        ipc: node_or(spec.host_ipc, NamespaceMode::Pod) as i32,
        target_id: String::new(),
        userns_options: Some(UserNamespace {
            mode: NamespaceMode::Node as i32,
            ..Default::default()
        }),
    })
}

/// `fsGroup` then `supplementalGroups`, as the kubelet appends them.
pub(super) fn pod_supplemental_groups(spec: &PodSpec) -> Vec<i64> {
    let psc = spec.security_context.as_ref();
    psc.and_then(|s| s.fs_group)
        .into_iter()
        .chain(
            psc.and_then(|s| s.supplemental_groups.clone())
                .into_iter()
                .flatten(),
        )
        .collect()
}

pub(super) fn supplemental_groups_policy(
    spec: &PodSpec,
) -> Result<SupplementalGroupsPolicy, TranslateError> {
    let p = spec
        .security_context
        .as_ref()
        .and_then(|s| s.supplemental_groups_policy.as_deref());
    match p {
        None | Some("Merge") => Ok(SupplementalGroupsPolicy::Merge),
        Some("Strict") => Ok(SupplementalGroupsPolicy::Strict),
        Some(other) => Err(invalid(
            "spec.securityContext.supplementalGroupsPolicy",
            other,
            "supported values: \"Merge\", \"Strict\"",
        )),
    }
}

pub(super) fn all_containers(spec: &PodSpec) -> impl Iterator<Item = &Container> {
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
}

/// `HasPrivilegedContainer`: any container or init container privileged.
pub(super) fn has_privileged_container(spec: &PodSpec) -> bool {
    all_containers(spec).any(|c| {
        c.security_context
            .as_ref()
            .and_then(|s| s.privileged)
            .unwrap_or(false)
    })
}
