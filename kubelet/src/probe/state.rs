//! [`ProbeState`]: the probe worker's timing and threshold counting (the kubelet's
//! `worker.go`).

use super::*;

/// A probe worker's state for one container: the timing and the threshold counting of the
/// kubelet's `worker.go`.
///
/// The worker waits [`initial_delay`](Self::initial_delay) after the container started, then
/// probes every [`period`](Self::period) and feeds each [`Outcome`] to
/// [`record`](Self::record). Liveness and readiness probes only run once the container has
/// started (its startup probe, if any, succeeded); a startup probe stops once it succeeded.
/// After a liveness or startup failure the state is on hold (outcomes are ignored) until
/// [`reset`](Self::reset) for the replacement container.
#[derive(Clone, Debug)]
pub struct ProbeState {
    pub(super) kind: ProbeKind,
    pub(super) initial_delay: Duration,
    pub(super) period: Duration,
    pub(super) success_threshold: u32,
    pub(super) failure_threshold: u32,
    pub(super) result: Option<bool>,
    pub(super) last: Option<bool>,
    pub(super) run: u32,
    pub(super) on_hold: bool,
}

pub(super) fn positive_or(value: Option<i32>, default: u32) -> u32 {
    match value {
        Some(v) if v > 0 => v.unsigned_abs(),
        _ => default,
    }
}

impl ProbeState {
    /// The state of a new worker for `probe` (defaults applied where fields are unset or not
    /// positive, as the API server's defaulting does).
    pub fn new(probe: &Probe, kind: ProbeKind) -> Self {
        ProbeState {
            kind,
            initial_delay: Duration::from_secs(u64::from(positive_or(
                probe.initial_delay_seconds,
                0,
            ))),
            period: Duration::from_secs(u64::from(positive_or(probe.period_seconds, 10))),
            success_threshold: positive_or(probe.success_threshold, 1),
            failure_threshold: positive_or(probe.failure_threshold, 3),
            result: kind.initial(),
            last: None,
            run: 0,
            on_hold: false,
        }
    }

    /// The probe's kind.
    pub fn kind(&self) -> ProbeKind {
        self.kind
    }

    /// How long after the container started the first probe runs (`initialDelaySeconds`).
    pub fn initial_delay(&self) -> Duration {
        self.initial_delay
    }

    /// The time between probes (`periodSeconds`, default 10 s).
    pub fn period(&self) -> Duration {
        self.period
    }

    /// The current result: ready / alive / started. `None` for a startup probe that has not
    /// succeeded yet.
    pub fn result(&self) -> Option<bool> {
        self.result
    }

    /// Whether the worker is waiting for the container to be replaced after a liveness or
    /// startup failure; outcomes are ignored meanwhile.
    pub fn on_hold(&self) -> bool {
        self.on_hold
    }

    /// Counts one probe outcome. Returns `Some(new result)` when the result changes: after
    /// `successThreshold` consecutive successes or `failureThreshold` consecutive failures.
    /// [`Outcome::Unknown`] is not counted. A liveness or startup failure puts the state on
    /// hold.
    pub fn record(&mut self, outcome: &Outcome) -> Option<bool> {
        if self.on_hold {
            return None;
        }
        let ok = match outcome {
            Outcome::Success | Outcome::Warning(_) => true,
            Outcome::Failure(_) => false,
            Outcome::Unknown(_) => return None,
        };
        if self.last == Some(ok) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(ok);
            self.run = 1;
        }
        let threshold = if ok {
            self.success_threshold
        } else {
            self.failure_threshold
        };
        if self.run < threshold {
            return None;
        }
        let changed = self.result != Some(ok);
        self.result = Some(ok);
        if !ok && matches!(self.kind, ProbeKind::Liveness | ProbeKind::Startup) {
            self.on_hold = true;
            self.run = 0;
        }
        changed.then_some(ok)
    }

    /// Starts over for a new container (a restart): the initial result, no counts, no hold.
    pub fn reset(&mut self) {
        self.result = self.kind.initial();
        self.last = None;
        self.run = 0;
        self.on_hold = false;
    }
}
