//! What the pod's status shows: each container's observed state, and the status written to
//! the store when it changed.

use super::*;

impl Worker {
    /// What the status shows of one container.
    pub(super) fn observe(
        &self,
        c: &Container,
        inst: Option<&Instances>,
    ) -> Option<ContainerObserved> {
        let latest = inst.and_then(Instances::latest);
        let image = self.images.get(c.image.as_deref().unwrap_or("")).cloned();
        let Some((cc, st)) = latest else {
            return self.waiting.get(&c.name).map(|w| ContainerObserved {
                state: State::Waiting {
                    reason: w.reason.clone(),
                    message: Some(w.message.clone()),
                },
                last_terminated: None,
                restart_count: 0,
                ready: false,
                started: Some(false),
                image,
                image_id: None,
                container_id: None,
            });
        };
        let mut state = match st.state() {
            CriState::ContainerCreated => State::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
            CriState::ContainerRunning => State::Running {
                started_at: to_timestamp(st.started_at).unwrap_or_else(now),
            },
            CriState::ContainerExited | CriState::ContainerUnknown => {
                State::Terminated(terminated_of(st))
            }
        };
        let mut last_terminated = inst
            .and_then(Instances::previous)
            .map(|(_, s)| terminated_of(s));
        let restart_count = i32::try_from(attempt(cc)).unwrap_or(i32::MAX);
        // A container waiting for its restart shows the back-off (or image/config error).
        if let (State::Terminated(t), Some(w)) = (&state, self.waiting.get(&c.name)) {
            last_terminated = Some(t.clone());
            state = State::Waiting {
                reason: w.reason.clone(),
                message: Some(w.message.clone()),
            };
        }
        Some(ContainerObserved {
            state,
            last_terminated,
            restart_count,
            ready: false,
            started: None,
            image: image.or_else(|| Some(st.image_ref.clone()).filter(|s| !s.is_empty())),
            image_id: Some(st.image_ref.clone()).filter(|s| !s.is_empty()),
            container_id: Some(format!("corral://{}", st.id)),
        })
    }

    /// Writes the pod's status when it changed.
    pub(super) fn write_status(&mut self, pod: &Pod, observed: &Observed) {
        let mut status = corral_kube::status::pod_status(pod, observed, now());
        status.host_ip = self.kubelet.host_ips().first().cloned();
        let value = serde_json::to_value(&status).unwrap_or_default();
        if self.last_status.as_ref() == Some(&value) {
            return;
        }
        if pod
            .status
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok())
            == Some(value.clone())
        {
            self.last_status = Some(value);
            return;
        }
        if self.kubelet.set_status(&self.key, status) {
            self.last_status = Some(value);
        }
    }
}
