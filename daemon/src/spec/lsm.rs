//! AppArmor and SELinux: `process.apparmorProfile` and `process.selinuxLabel`.
//!
//! Corral ships no AppArmor policy of its own, so RuntimeDefault and Unconfined both leave the
//! container without a profile. A Localhost profile is applied when the host runs AppArmor and
//! the profile is loaded; on a host without AppArmor it is refused, since running the container
//! without the confinement it asked for would be silently weaker. SELinux options work the same
//! way: empty options are accepted everywhere, a label is refused where SELinux is off.

use std::path::Path;

use corral_cri_api::v1::security_profile::ProfileType;
use corral_cri_api::v1::{LinuxContainerSecurityContext, SeLinuxOption};

use super::SpecError;

/// Where the host's LSM state is read (a test may point it elsewhere).
#[derive(Debug, Clone, Copy)]
pub struct LsmHost<'a> {
    /// `/sys/module/apparmor/parameters/enabled` (`Y` when AppArmor is on).
    pub apparmor_enabled: &'a str,
    /// `/sys/kernel/security/apparmor/profiles` (the loaded profiles, `name (mode)` per line).
    pub apparmor_profiles: &'a str,
    /// `/sys/fs/selinux/enforce` (present when SELinux is on).
    pub selinux_enforce: &'a str,
}

impl LsmHost<'static> {
    /// The real host.
    pub const HOST: Self = Self {
        apparmor_enabled: "/sys/module/apparmor/parameters/enabled",
        apparmor_profiles: "/sys/kernel/security/apparmor/profiles",
        selinux_enforce: "/sys/fs/selinux/enforce",
    };
}

impl LsmHost<'_> {
    /// Whether AppArmor is enabled.
    pub fn apparmor(&self) -> bool {
        std::fs::read_to_string(self.apparmor_enabled).is_ok_and(|s| s.trim() == "Y")
    }

    /// Whether SELinux is enabled.
    pub fn selinux(&self) -> bool {
        Path::new(self.selinux_enforce).exists()
    }

    fn apparmor_loaded(&self, name: &str) -> bool {
        std::fs::read_to_string(self.apparmor_profiles).is_ok_and(|text| {
            text.lines().any(|l| {
                l.rsplit_once(" (")
                    .map_or(l, |(profile, _mode)| profile)
                    .trim()
                    == name
            })
        })
    }
}

/// The AppArmor profile to apply (`None`: none).
pub(super) fn apparmor(
    host: &LsmHost<'_>,
    sc: Option<&LinuxContainerSecurityContext>,
    privileged: bool,
) -> Result<Option<String>, SpecError> {
    let Some(sc) = sc else { return Ok(None) };
    let (field, wanted) = if let Some(p) = &sc.apparmor {
        let field = "security_context.apparmor";
        let typ = ProfileType::try_from(p.profile_type).map_err(|_| {
            SpecError::invalid(format!(
                "{field}.profile_type: unknown value {}",
                p.profile_type
            ))
        })?;
        match typ {
            ProfileType::Localhost => (field, Some(p.localhost_ref.clone())),
            _ if !p.localhost_ref.is_empty() => {
                return Err(SpecError::invalid(format!(
                    "{field}.localhost_ref: set with profile type {}",
                    typ.as_str_name()
                )));
            }
            _ => (field, None),
        }
    } else {
        let field = "security_context.apparmor_profile";
        #[allow(deprecated)] // still sent by older kubelets
        let profile = sc.apparmor_profile.as_str();
        match profile {
            "" | "runtime/default" | "unconfined" => (field, None),
            p => match p.strip_prefix("localhost/") {
                Some(name) => (field, Some(name.to_string())),
                None => {
                    return Err(SpecError::invalid(format!(
                        "{field}: {p:?} is not runtime/default, unconfined or localhost/<name>"
                    )));
                }
            },
        }
    };
    let Some(name) = wanted else { return Ok(None) };
    if privileged {
        return Ok(None);
    }
    super::check_no_nul(field, &name)?;
    if name.is_empty() {
        return Err(SpecError::invalid(format!(
            "{field}: a Localhost profile needs a profile name"
        )));
    }
    if !host.apparmor() {
        return Err(SpecError::FailedPrecondition(format!(
            "{field}: AppArmor is not enabled on this host, so profile {name:?} cannot be applied"
        )));
    }
    if !host.apparmor_loaded(&name) {
        return Err(SpecError::NotFound(format!(
            "{field}: AppArmor profile {name:?} is not loaded"
        )));
    }
    Ok(Some(name))
}

/// The SELinux process label to apply (`None`: none).
pub(super) fn selinux(
    host: &LsmHost<'_>,
    options: Option<&SeLinuxOption>,
    privileged: bool,
) -> Result<Option<String>, SpecError> {
    const FIELD: &str = "security_context.selinux_options";
    let Some(o) = options else { return Ok(None) };
    let parts = [&o.user, &o.role, &o.r#type, &o.level];
    if parts.iter().all(|p| p.is_empty()) || privileged {
        return Ok(None);
    }
    for p in parts {
        super::check_no_nul(FIELD, p)?;
        if p.contains(':') && !std::ptr::eq(p, &o.level) {
            return Err(SpecError::invalid(format!(
                "{FIELD}: {p:?} must not contain ':'"
            )));
        }
    }
    if !host.selinux() {
        return Err(SpecError::FailedPrecondition(format!(
            "{FIELD}: SELinux is not enabled on this host, so a label cannot be applied"
        )));
    }
    let or = |v: &str, d: &str| {
        if v.is_empty() {
            d.to_string()
        } else {
            v.to_string()
        }
    };
    Ok(Some(format!(
        "{}:{}:{}:{}",
        or(&o.user, "system_u"),
        or(&o.role, "system_r"),
        or(&o.r#type, "container_t"),
        or(&o.level, "s0")
    )))
}
