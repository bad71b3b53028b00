//! The numeric ids of pod and container security contexts: `runAsUser`, `runAsGroup`,
//! `fsGroup` and `supplementalGroups` are at least 0, as the API server's
//! `ValidateNonnegativeField` has them, and (a Corral rule, since such an id fails at every
//! container start) at most 4294967294: `(uid_t)-1` and above are no ids.

use k8s_openapi::api::core::v1::{Container, PodSecurityContext};

use super::PodCheck;
use crate::field::{FieldError, index};
use crate::validate::at;

/// The largest uid or gid.
pub const MAX_ID: i64 = u32::MAX as i64 - 1;

impl PodCheck<'_> {
    /// `spec.securityContext`.
    pub(super) fn pod_security(&mut self, sc: Option<&PodSecurityContext>) {
        let Some(sc) = sc else { return };
        let p = "spec.securityContext";
        self.id(&at(p, "runAsUser"), sc.run_as_user);
        self.id(&at(p, "runAsGroup"), sc.run_as_group);
        self.id(&at(p, "fsGroup"), sc.fs_group);
        for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
            self.id(&index(&at(p, "supplementalGroups"), i), Some(*g));
        }
    }

    /// `<container>.securityContext`.
    pub(super) fn container_security(&mut self, c: &Container, path: &str) {
        let Some(sc) = &c.security_context else {
            return;
        };
        let p = at(path, "securityContext");
        self.id(&at(&p, "runAsUser"), sc.run_as_user);
        self.id(&at(&p, "runAsGroup"), sc.run_as_group);
    }

    fn id(&mut self, path: &str, v: Option<i64>) {
        match v {
            Some(v) if v < 0 => self.push(FieldError::invalid(
                path,
                v,
                "must be greater than or equal to 0",
            )),
            Some(v) if v > MAX_ID => self.push(FieldError::invalid(
                path,
                v,
                "must be less than or equal to 4294967294",
            )),
            _ => {}
        }
    }
}
