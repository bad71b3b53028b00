//! The kubelet's restart and image-pull back-off (`flowcontrol.Backoff` as `doBackOff` uses
//! it): per key (pod uid + container name), the first restart is immediate and sets a delay
//! of 10 s; each restart while the entry is live doubles it, up to 5 min. An entry expires, so
//! the next restart is immediate again, once the event (the container's exit) comes more than
//! twice the maximum (10 min) after the entry's last update, i.e. after the container ran for
//! 10 minutes.

use std::collections::HashMap;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The kubelet's initial back-off.
pub const INITIAL: SignedDuration = SignedDuration::from_secs(10);
/// The kubelet's maximum back-off (`MaxContainerBackOff`).
pub const MAX: SignedDuration = SignedDuration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    backoff: SignedDuration,
    last_update: Timestamp,
}

/// Back-off state for many keys.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: SignedDuration,
    max: SignedDuration,
    entries: HashMap<String, Entry>,
}

/// What to do about a container that exited (or an image that failed to pull).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead now; the next failure will wait `next`.
    Start {
        /// The delay armed for the next failure.
        next: SignedDuration,
    },
    /// Still backing off: wait `remaining` (the whole delay is `delay`).
    Wait {
        /// The current delay (what the message shows).
        delay: SignedDuration,
        /// Time left.
        remaining: SignedDuration,
    },
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(INITIAL, MAX)
    }
}

impl Backoff {
    /// A back-off starting at `initial` and capped at `max`.
    pub fn new(initial: SignedDuration, max: SignedDuration) -> Self {
        Backoff {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    /// The kubelet's crash-loop back-off (10 s to 5 min).
    pub fn crash_loop() -> Self {
        Self::default()
    }

    /// The kubelet's image-pull back-off (the same shape).
    pub fn image_pull() -> Self {
        Self::default()
    }

    fn expired(&self, event: Timestamp, e: &Entry) -> bool {
        event.duration_since(e.last_update) > self.max * 2
    }

    /// The current delay for `key`, if any.
    pub fn get(&self, key: &str) -> Option<SignedDuration> {
        self.entries.get(key).map(|e| e.backoff)
    }

    /// Whether `key` is backing off for an event (exit) at `event`: the time left, if so.
    pub fn in_backoff_since(
        &self,
        key: &str,
        event: Timestamp,
        now: Timestamp,
    ) -> Option<SignedDuration> {
        let e = self.entries.get(key)?;
        if self.expired(event, e) {
            return None;
        }
        let since = now.duration_since(event);
        (since < e.backoff).then(|| e.backoff - since)
    }

    /// Records a (re)start for an event at `event`: a fresh entry at the initial delay if none
    /// is live, otherwise the delay doubled (capped).
    pub fn next(&mut self, key: &str, event: Timestamp, now: Timestamp) -> SignedDuration {
        let backoff = match self.entries.get(key) {
            Some(e) if !self.expired(event, e) => (e.backoff * 2).min(self.max),
            _ => self.initial,
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                backoff,
                last_update: now,
            },
        );
        backoff
    }

    /// The kubelet's `doBackOff`: whether a container that exited at `finished_at` may start
    /// again at `now`, arming the next delay when it may.
    pub fn decide(&mut self, key: &str, finished_at: Timestamp, now: Timestamp) -> Decision {
        if let Some(remaining) = self.in_backoff_since(key, finished_at, now) {
            let delay = self.get(key).unwrap_or(self.initial);
            return Decision::Wait { delay, remaining };
        }
        Decision::Start {
            next: self.next(key, finished_at, now),
        }
    }

    /// Forgets `key` (the container was removed).
    pub fn reset(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Drops entries not updated for twice the maximum.
    pub fn gc(&mut self, now: Timestamp) {
        let limit = self.max * 2;
        self.entries
            .retain(|_, e| now.duration_since(e.last_update) <= limit);
    }
}

/// The key the kubelet uses: pod and container.
pub fn key(pod_uid: &str, container: &str) -> String {
    format!("{pod_uid}_{container}")
}

/// A whole-second duration as Go prints it: `10s`, `2m40s`, `5m0s`, `1h0m0s`.
pub fn go_duration(d: SignedDuration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    }
}

/// The waiting message of a container in CrashLoopBackOff.
pub fn crash_loop_message(
    delay: SignedDuration,
    container: &str,
    pod: &str,
    namespace: &str,
    uid: &str,
) -> String {
    format!(
        "back-off {} restarting failed container={container} pod={pod}_{namespace}({uid})",
        go_duration(delay)
    )
}

/// The waiting message of a container in ImagePullBackOff.
pub fn image_pull_message(image: &str) -> String {
    format!("Back-off pulling image {image:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    fn secs(s: i64) -> SignedDuration {
        SignedDuration::from_secs(s)
    }

    /// Crashes immediately after each start; returns the waits between exit and restart.
    fn waits(n: usize) -> Vec<i64> {
        let mut b = Backoff::crash_loop();
        let mut now = 0;
        let mut out = Vec::new();
        for _ in 0..n {
            let exit = now + 1;
            now = exit;
            loop {
                match b.decide("k", t(exit), t(now)) {
                    Decision::Start { .. } => break,
                    Decision::Wait { remaining, .. } => now += remaining.as_secs(),
                }
            }
            out.push(now - exit);
        }
        out
    }

    #[test]
    fn doubles_from_ten_seconds_to_five_minutes() {
        assert_eq!(waits(9), [0, 10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn resets_after_ten_minutes_of_running() {
        let mut b = Backoff::crash_loop();
        assert_eq!(
            b.decide("k", t(0), t(0)),
            Decision::Start { next: secs(10) }
        );
        assert!(
            matches!(b.decide("k", t(1), t(2)), Decision::Wait { delay, remaining } if delay == secs(10) && remaining == secs(9))
        );
        assert_eq!(
            b.decide("k", t(1), t(11)),
            Decision::Start { next: secs(20) }
        );
        // Ran 10 min + 1 s after that start: the entry expired, restart at once.
        assert_eq!(
            b.decide("k", t(11 + 601), t(11 + 601)),
            Decision::Start { next: secs(10) }
        );
        // Exactly 10 min does not expire it.
        let mut b = Backoff::crash_loop();
        b.next("k", t(0), t(0));
        assert!(b.in_backoff_since("k", t(600), t(600)).is_some());
    }

    #[test]
    fn keys_are_independent_and_gc_and_reset() {
        let mut b = Backoff::image_pull();
        b.next(&key("uid", "a"), t(0), t(0));
        assert!(b.in_backoff_since(&key("uid", "a"), t(0), t(5)).is_some());
        assert!(b.in_backoff_since(&key("uid", "b"), t(0), t(5)).is_none());
        b.gc(t(601));
        assert!(b.get("uid_a").is_none());
        b.next("x", t(0), t(0));
        b.reset("x");
        assert!(b.get("x").is_none());
    }

    #[test]
    fn messages() {
        assert_eq!(go_duration(secs(10)), "10s");
        assert_eq!(go_duration(secs(160)), "2m40s");
        assert_eq!(go_duration(secs(300)), "5m0s");
        assert_eq!(go_duration(secs(3600)), "1h0m0s");
        assert_eq!(
            crash_loop_message(secs(40), "web", "nginx", "default", "u1"),
            "back-off 40s restarting failed container=web pod=nginx_default(u1)"
        );
        assert_eq!(
            image_pull_message("nginx:bad"),
            r#"Back-off pulling image "nginx:bad""#
        );
    }
}
