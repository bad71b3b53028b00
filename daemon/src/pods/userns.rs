//! Pods with a user namespace of their own: whether the host can run them, and the checks made
//! before one is started (see `spec::userns` for the request side).

use std::path::Path;

use corral_runtime::userns::IdMappings;

use super::{PodError, Pods, Result};

impl Pods {
    /// Whether user namespaces with idmapped mounts work on this host
    /// ([`corral_runtime::userns::probe`] on the state directory), probed once.
    pub fn userns_supported(&self) -> bool {
        *self
            .userns_supported
            .get_or_init(|| corral_runtime::userns::supported(&self.cfg.state))
    }

    /// Refuses a pod user namespace this host cannot give, or one whose root could not reach
    /// the containers' root filesystems under the state directory.
    pub(super) fn check_userns(&self, mappings: &IdMappings) -> Result<()> {
        if !self.userns_supported() {
            return Err(PodError::FailedPrecondition(
                "user namespaces (userns_options mode POD) are not supported on this host: it needs user.max_user_namespaces > 0 and idmapped mounts on the state directory's filesystem (see the daemon log)".into(),
            ));
        }
        searchable(&self.cfg.state, mappings)
    }
}

/// The container's init sets its container up as the pod's root (a host ID of the mappings),
/// through the state directory: it and every directory above must let that user search them.
fn searchable(state: &Path, mappings: &IdMappings) -> Result<()> {
    match mappings.unsearchable_ancestor(state, 0)? {
        None => Ok(()),
        Some((dir, mode)) => Err(PodError::FailedPrecondition(format!(
            "user namespaces need the state directory reachable by the pod's root (host UID {}): {} has mode {mode:o}; give others search permission (chmod o+x)",
            IdMappings::host_of(&mappings.uids, 0).unwrap_or(0),
            dir.display(),
        ))),
    }
}
