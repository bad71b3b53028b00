//! A container's security context: the pod's fields merged under the container's
//! (`DetermineEffectiveSecurityContext`), into the CRI's (users, capabilities, seccomp,
//! AppArmor, SELinux, masked paths); the kubelet's `runAsNonRoot` check against the image.

use super::*;

/// `DetermineEffectiveSecurityContext`: the pod's SELinux options, users and `runAsNonRoot`
/// under the container's fields.
pub fn effective_security_context(pod: &Pod, c: &Container) -> SecurityContext {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let mut sc = SecurityContext {
        se_linux_options: psc.and_then(|p| p.se_linux_options.clone()),
        run_as_user: psc.and_then(|p| p.run_as_user),
        run_as_group: psc.and_then(|p| p.run_as_group),
        run_as_non_root: psc.and_then(|p| p.run_as_non_root),
        ..Default::default()
    };
    let Some(csc) = c.security_context.as_ref() else {
        return sc;
    };
    macro_rules! over {
        ($($f:ident),*) => { $( if csc.$f.is_some() { sc.$f = csc.$f.clone(); } )* };
    }
    over!(
        se_linux_options,
        capabilities,
        privileged,
        run_as_user,
        run_as_group,
        run_as_non_root,
        read_only_root_filesystem,
        allow_privilege_escalation,
        proc_mount
    );
    sc
}

pub(super) fn container_security_context(
    pod: &Pod,
    c: &Container,
    inputs: &ContainerInputs<'_>,
    field: &str,
) -> Result<LinuxContainerSecurityContext, TranslateError> {
    let spec = spec(pod)?;
    let sc = effective_security_context(pod, c);
    let (apparmor, apparmor_profile) = apparmor(pod, c, field)?;
    let unmasked = sc.proc_mount.as_deref() == Some("Unmasked");
    let paths = |l: &[&str]| {
        if unmasked {
            Vec::new()
        } else {
            l.iter().map(|s| s.to_string()).collect()
        }
    };
    #[allow(deprecated)] // the kubelet still fills the deprecated AppArmor field
    Ok(LinuxContainerSecurityContext {
        capabilities: sc.capabilities.as_ref().map(|caps| Capability {
            add_capabilities: caps.add.clone().unwrap_or_default(),
            drop_capabilities: caps.drop.clone().unwrap_or_default(),
            ..Default::default()
        }),
        privileged: sc.privileged.unwrap_or(false),
        namespace_options: Some(namespace_options(spec)?),
        selinux_options: sc.se_linux_options.as_ref().map(selinux),
        run_as_user: sc.run_as_user.map(int64),
        run_as_group: sc.run_as_group.map(int64),
        readonly_rootfs: sc.read_only_root_filesystem.unwrap_or(false),
        supplemental_groups: pod_supplemental_groups(spec),
        supplemental_groups_policy: supplemental_groups_policy(spec)? as i32,
        no_new_privs: sc.allow_privilege_escalation == Some(false),
        masked_paths: paths(&DEFAULT_MASKED_PATHS),
        readonly_paths: paths(&DEFAULT_READONLY_PATHS),
        seccomp: Some(seccomp(pod, c, inputs, field)?),
        apparmor,
        apparmor_profile,
        ..Default::default()
    })
}

/// `getSeccompProfile`: the container's profile, else the pod's, else `Unconfined` (or
/// `RuntimeDefault` with [`ContainerInputs::seccomp_default`]). Localhost profiles are paths
/// under [`ContainerInputs::seccomp_profile_root`].
pub(super) fn seccomp(
    pod: &Pod,
    c: &Container,
    inputs: &ContainerInputs<'_>,
    field: &str,
) -> Result<SecurityProfile, TranslateError> {
    let from_container = c
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref());
    let from_pod = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.seccomp_profile.as_ref());
    let (p, field): (&SeccompProfile, String) = match (from_container, from_pod) {
        (Some(p), _) => (p, format!("{field}.securityContext.seccompProfile")),
        (None, Some(p)) => (p, "spec.securityContext.seccompProfile".into()),
        (None, None) if inputs.seccomp_default => {
            return Ok(profile(ProfileType::RuntimeDefault, ""));
        }
        (None, None) => return Ok(profile(ProfileType::Unconfined, "")),
    };
    match p.type_.as_str() {
        "RuntimeDefault" => Ok(profile(ProfileType::RuntimeDefault, "")),
        "Localhost" => match p.localhost_profile.as_deref().filter(|l| !l.is_empty()) {
            Some(l) => {
                let path = inputs.seccomp_profile_root.join(l);
                Ok(profile(ProfileType::Localhost, &path.to_string_lossy()))
            }
            None => Err(TranslateError::Invalid {
                field: format!("{field}.localhostProfile"),
                value: String::new(),
                reason: "localhostProfile must be set if seccompProfile type is Localhost".into(),
            }),
        },
        _ => Ok(profile(ProfileType::Unconfined, "")),
    }
}

/// `getAppArmorProfile`: the container's field, else the beta annotation, else the pod's
/// field; the profile and the deprecated string form.
pub(super) fn apparmor(
    pod: &Pod,
    c: &Container,
    field: &str,
) -> Result<(Option<SecurityProfile>, String), TranslateError> {
    let annotation = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(&format!("{APPARMOR_ANNOTATION_PREFIX}{}", c.name)))
        .and_then(|v| apparmor_from_annotation(v));
    let from_pod = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.app_armor_profile.clone());
    let chosen = c
        .security_context
        .as_ref()
        .and_then(|s| s.app_armor_profile.clone())
        .or(annotation)
        .or(from_pod);
    let Some(p) = chosen else {
        return Ok((None, String::new()));
    };
    let field = format!("{field}.securityContext.appArmorProfile");
    match p.type_.as_str() {
        "RuntimeDefault" => Ok((
            Some(profile(ProfileType::RuntimeDefault, "")),
            "runtime/default".into(),
        )),
        "Unconfined" => Ok((
            Some(profile(ProfileType::Unconfined, "")),
            "unconfined".into(),
        )),
        "Localhost" => match p.localhost_profile.as_deref().filter(|l| !l.is_empty()) {
            Some(l) => Ok((
                Some(profile(ProfileType::Localhost, l)),
                format!("localhost/{l}"),
            )),
            None => Err(invalid(
                format!("{field}.localhostProfile"),
                "",
                "missing localhost apparmor profile name",
            )),
        },
        other => Err(invalid(
            format!("{field}.type"),
            other,
            "unknown apparmor profile type",
        )),
    }
}

pub(super) fn apparmor_from_annotation(v: &str) -> Option<AppArmorProfile> {
    let (type_, localhost_profile) = match v {
        "runtime/default" => ("RuntimeDefault", None),
        "unconfined" => ("Unconfined", None),
        other => (
            "Localhost",
            Some(other.strip_prefix("localhost/")?.to_owned()),
        ),
    };
    Some(AppArmorProfile {
        type_: type_.into(),
        localhost_profile,
    })
}

/// The kubelet's `verifyRunAsNonRoot`, with the image's user as `ImageStatus` gives it: its
/// numeric `image_uid`, else its `image_user` name; neither means root. A name that the image
/// `User` parser refuses (ImageStatus reports those whole) is refused naming the problem.
pub fn verify_run_as_non_root(
    pod: &Pod,
    c: &Container,
    image_uid: Option<i64>,
    image_user: &str,
) -> Result<(), String> {
    let sc = effective_security_context(pod, c);
    if sc.run_as_non_root != Some(true) {
        return Ok(());
    }
    let who = format!(
        "pod: \"{}_{}({})\", container: {}",
        meta_str(&pod.metadata.name),
        meta_str(&pod.metadata.namespace),
        meta_str(&pod.metadata.uid),
        c.name
    );
    if let Some(uid) = sc.run_as_user {
        if uid == 0 {
            return Err(format!(
                "container's runAsUser breaks non-root policy ({who})"
            ));
        }
        return Ok(());
    }
    match (image_uid, image_user) {
        (Some(0), _) | (None, "") => Err(format!(
            "container has runAsNonRoot and image will run as root ({who})"
        )),
        (None, name) => match corral_images::user::parse_user(name) {
            // ImageStatus reports a `User` its parser refuses whole, as a name.
            Err(e) => Err(format!(
                "container has runAsNonRoot and image has an invalid user: {e} ({who})"
            )),
            Ok(_) => Err(format!(
                "container has runAsNonRoot and image has non-numeric user ({name}), cannot \
                 verify user is non-root ({who})"
            )),
        },
        (Some(uid), _) if u32::try_from(uid).map_or(true, |u| u > corral_images::user::MAX_ID) => {
            Err(format!(
                "container has runAsNonRoot and image has an invalid uid {uid} ({who})"
            ))
        }
        (Some(_), _) => Ok(()),
    }
}
