//! The worker registry: one worker task per pod, spawned on apply or at start, woken on the
//! pod's container events or changes, stopped at shutdown; and the change broadcast behind
//! Watch.

use super::*;

impl Kubelet {
    pub(super) fn worker_done(&self, key: &PodKey) {
        lock(&self.workers).remove(&key.uid);
    }

    pub(super) fn spawn_worker(&self, pod: &Pod) {
        let Some(this) = self.this.upgrade() else {
            return;
        };
        let key = PodKey {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        };
        let notify = Arc::new(Notify::new());
        let mut workers = lock(&self.workers);
        if let Some(w) = workers.get(&key.uid) {
            w.notify.notify_one();
            return;
        }
        let uid = key.uid.clone();
        let worker = worker::Worker::new(this, key, Arc::clone(&notify));
        let abort = tokio::spawn(worker.run()).abort_handle();
        workers.insert(
            uid,
            WorkerEntry {
                notify,
                abort: Some(abort),
            },
        );
    }

    pub(super) fn wake(&self, uid: &str) {
        if let Some(w) = lock(&self.workers).get(uid) {
            w.notify.notify_one();
        }
    }

    /// Wakes every worker (a ConfigMap or Secret changed).
    pub fn wake_all(&self) {
        for w in lock(&self.workers).values() {
            w.notify.notify_one();
        }
    }

    /// Stops every worker (the daemon is shutting down; pods keep running and are adopted at
    /// the next start).
    pub fn shutdown(&self) {
        if let Some(rotation) = lock(&self.log_rotation).take() {
            rotation.abort();
        }
        for (_, w) in lock(&self.workers).drain() {
            if let Some(a) = w.abort {
                a.abort();
            }
        }
    }

    /// Wakes the worker of the pod a CRI container event is about.
    pub fn wake_pod_of(&self, ev: &corral_cri_api::v1::ContainerEventResponse) {
        if let Some(uid) = ev
            .pod_sandbox_status
            .as_ref()
            .and_then(|s| s.metadata.as_ref())
            .map(|m| m.uid.as_str())
        {
            self.wake(uid);
        }
    }

    /// Subscribes to changes of stored objects.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Whether a worker still drives pod `uid`.
    pub fn has_worker(&self, uid: &str) -> bool {
        lock(&self.workers).contains_key(uid)
    }
}

#[cfg(test)]
mod change_tests {
    /// The changes channel holds 1 024 of them from the start.
    #[test]
    fn a_change_is_a_pointer_not_an_object() {
        let size = std::mem::size_of::<crate::Change>();
        assert!(size <= 32, "Change is {size} bytes");
    }
}
