//! Pod events, as the kubelet's event recorder makes them: an event repeated with the same
//! type, reason, message and object is counted (`count`, `lastTimestamp`) instead of stored
//! again. Kept in memory per pod (a daemon restart forgets them, as an API server's events
//! expire), at most [`MAX_PER_POD`] per pod, the oldest dropped first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use corral_cri_api::corral::Event;

/// Events kept per pod.
pub const MAX_PER_POD: usize = 200;

/// Normal or Warning, as Kubernetes names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The events of every pod, by pod uid.
#[derive(Default)]
pub struct Recorder {
    pods: Mutex<HashMap<String, VecDeque<Event>>>,
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Recorder {
    /// Records an event about pod `uid` (and its container `field_path`, or "" for the pod).
    pub fn record(
        &self,
        uid: &str,
        field_path: &str,
        kind: EventType,
        reason: &str,
        message: &str,
    ) {
        self.record_at(uid, field_path, kind, reason, message, now_secs());
    }

    fn record_at(
        &self,
        uid: &str,
        field_path: &str,
        kind: EventType,
        reason: &str,
        message: &str,
        now: i64,
    ) {
        tracing::debug!(pod_uid = uid, field_path, reason, message, "pod event");
        let mut pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let list = pods.entry(uid.to_string()).or_default();
        if let Some(e) = list.iter_mut().find(|e| {
            e.r#type == kind.as_str()
                && e.reason == reason
                && e.message == message
                && e.field_path == field_path
        }) {
            e.count += 1;
            e.last_timestamp = now;
            return;
        }
        if list.len() >= MAX_PER_POD {
            list.pop_front();
        }
        list.push_back(Event {
            r#type: kind.as_str().into(),
            reason: reason.into(),
            message: message.into(),
            count: 1,
            first_timestamp: now,
            last_timestamp: now,
            field_path: field_path.into(),
            source: "kubelet".into(),
        });
    }

    /// The events of pod `uid`, by first time.
    pub fn events(&self, uid: &str) -> Vec<Event> {
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Event> = pods
            .get(uid)
            .map(|l| l.iter().cloned().collect())
            .unwrap_or_default();
        v.sort_by_key(|e| e.first_timestamp);
        v
    }

    /// Forgets a deleted pod's events.
    pub fn forget(&self, uid: &str) {
        self.pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uid);
    }
}

/// The field path the kubelet gives events about one container.
pub fn container_path(init: bool, name: &str) -> String {
    if init {
        format!("spec.initContainers{{{name}}}")
    } else {
        format!("spec.containers{{{name}}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_events_are_counted_and_others_kept_apart() {
        let r = Recorder::default();
        r.record_at(
            "u",
            "spec.containers{web}",
            EventType::Warning,
            "BackOff",
            "m",
            10,
        );
        r.record_at(
            "u",
            "spec.containers{web}",
            EventType::Warning,
            "BackOff",
            "m",
            20,
        );
        r.record_at(
            "u",
            "spec.containers{db}",
            EventType::Warning,
            "BackOff",
            "m",
            30,
        );
        r.record_at("v", "", EventType::Normal, "Scheduled", "x", 5);
        let e = r.events("u");
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].count, e[0].first_timestamp, e[0].last_timestamp),
            (2, 10, 20)
        );
        assert_eq!(e[1].field_path, "spec.containers{db}");
        assert_eq!(r.events("v").len(), 1);
        r.forget("u");
        assert!(r.events("u").is_empty());
    }

    #[test]
    fn the_oldest_events_go_first_past_the_limit() {
        let r = Recorder::default();
        for i in 0..(MAX_PER_POD + 5) {
            r.record_at("u", "", EventType::Normal, "R", &format!("m{i}"), i as i64);
        }
        let e = r.events("u");
        assert_eq!(e.len(), MAX_PER_POD);
        assert_eq!(e[0].message, "m5");
    }

    #[test]
    fn container_paths_name_the_list() {
        assert_eq!(container_path(true, "init"), "spec.initContainers{init}");
        assert_eq!(container_path(false, "web"), "spec.containers{web}");
    }
}
