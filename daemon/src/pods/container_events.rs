//! Container events as the kubelet's evented PLEG reads them: each carries the pod's status and
//! the statuses of all its containers at the time of the event (containerd's
//! `generateAndSendContainerEvent`). Pod sandboxes have events too, with the sandbox ID as the
//! container ID (as containerd 1.7+ sends them).

use corral_cri_api::v1::{ContainerEventResponse, ContainerEventType};
use corral_fsutil::time::unix_nanos;

use super::{Pods, Sandbox, view};

impl Pods {
    /// Publishes an event about container (or sandbox) `id` in `sandbox`. Cheap when nobody
    /// subscribes. `sandbox` may be one already forgotten (its last status is reported).
    pub(super) fn emit(&self, id: &str, sandbox: Option<&Sandbox>, kind: ContainerEventType) {
        if !self.events.has_subscribers() {
            return;
        }
        let (pod_sandbox_status, containers_statuses) = match sandbox {
            Some(sb) => (
                Some(view::sandbox_status(sb)),
                self.containers_of(&sb.meta.id)
                    .iter()
                    .map(|c| view::container_status(c))
                    .collect(),
            ),
            None => (None, Vec::new()),
        };
        tracing::debug!(id, event = kind.as_str_name(), "container event");
        self.events.publish(&ContainerEventResponse {
            container_id: id.to_owned(),
            container_event_type: kind as i32,
            created_at: unix_nanos(std::time::SystemTime::now()),
            pod_sandbox_status,
            containers_statuses,
        });
    }

    /// [`Pods::emit`] for a container of a pod looked up by ID.
    pub(super) fn emit_for(&self, id: &str, sandbox_id: &str, kind: ContainerEventType) {
        if !self.events.has_subscribers() {
            return;
        }
        let sandbox = self.sandbox(sandbox_id).ok();
        self.emit(id, sandbox.as_deref(), kind);
    }
}
