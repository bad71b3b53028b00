//! Stop signals a PID namespace's init would lose.
//!
//! The kernel drops a signal sent to a PID namespace's init (from an ancestor namespace too)
//! while the init leaves it at its default action; only SIGKILL and SIGSTOP are forced. A
//! container's init that is still `sh` about to exec, or a program that installs its SIGTERM
//! handler a moment after it starts, would lose a stop signal sent right after StartContainer
//! and die only by SIGKILL when the grace period ends. Slower runtimes hide that window by being
//! slow. So such a signal is held, not sent: the shim looks at the init's signal actions every
//! few milliseconds and sends it once the init catches it. The signal is sent exactly once, and
//! only when it cannot be lost; an init that never catches it is killed by the daemon's SIGKILL
//! at the end of the grace period, as before.

use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::log;
use crate::server::Shim;

/// How often a held signal's target is looked at.
const POLL: Duration = Duration::from_millis(5);

/// What a process does with one signal, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Default,
    Ignored,
    Caught,
}

/// The parts of `/proc/<pid>/status` that decide whether a signal can be lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalView {
    /// The process is its PID namespace's init (its innermost `NSpid` is 1).
    pub namespace_init: bool,
    ignored: u64,
    caught: u64,
}

impl SignalView {
    /// Parses a `/proc/<pid>/status` text; `None` when a field is missing or malformed.
    pub fn parse(status: &str) -> Option<SignalView> {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(str::trim)
        };
        let mask = |name: &str| u64::from_str_radix(field(name)?, 16).ok();
        let innermost = field("NSpid")?.split_whitespace().last()?;
        Some(SignalView {
            namespace_init: innermost == "1",
            ignored: mask("SigIgn")?,
            caught: mask("SigCgt")?,
        })
    }

    pub fn action(&self, signal: Signal) -> Action {
        let bit = 1u64 << ((signal as i32) - 1);
        if self.caught & bit != 0 {
            Action::Caught
        } else if self.ignored & bit != 0 {
            Action::Ignored
        } else {
            Action::Default
        }
    }

    /// Whether `signal` sent now would be dropped while the process could still catch it.
    pub fn would_lose(&self, signal: Signal) -> bool {
        self.namespace_init
            && !matches!(signal, Signal::SIGKILL | Signal::SIGSTOP)
            && self.action(signal) == Action::Default
    }
}

fn view(pid: i32) -> Option<SignalView> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    SignalView::parse(&status)
}

/// Whether `signal` to `pid` must wait (see the module documentation).
pub fn must_hold(pid: i32, signal: Signal) -> bool {
    view(pid).is_some_and(|v| v.would_lose(signal))
}

/// A signal held for a container's init.
#[derive(Debug, Clone, Copy)]
pub struct Held {
    pub signal: Signal,
    pub since: Instant,
}

impl Shim {
    /// When the held signals are next looked at.
    pub fn next_signal_poll(&self) -> Option<Instant> {
        self.ctrs
            .values()
            .any(|c| c.held_signal.is_some() && c.exit.is_none())
            .then(|| Instant::now() + POLL)
    }

    /// Sends each held signal whose target now catches it; forgets those of exited containers
    /// and those the target now ignores (sent or not, it would do nothing).
    pub fn deliver_held_signals(&mut self) {
        for ctr in self.ctrs.values_mut() {
            let Some(held) = ctr.held_signal else {
                continue;
            };
            if ctr.exit.is_some() {
                ctr.held_signal = None;
                continue;
            }
            let pid = ctr.pid();
            let Some(v) = view(pid) else {
                continue;
            };
            match v.action(held.signal) {
                Action::Default => {}
                Action::Ignored => ctr.held_signal = None,
                Action::Caught => {
                    ctr.held_signal = None;
                    // Our unreaped child: the pid cannot have been reused.
                    if let Err(e) = kill(Pid::from_raw(pid), held.signal) {
                        log!("sending a held {} to {}: {e}", held.signal, ctr.id);
                    } else {
                        log!(
                            "sent {} to {} once it caught it ({:?} later)",
                            held.signal,
                            ctr.id,
                            held.since.elapsed()
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tsh\nNSpid:\t4242\t1\nSigBlk:\t0000000000000000\n\
SigIgn:\t0000000000001000\nSigCgt:\t0000000000004002\n";

    #[test]
    fn actions_come_from_the_masks() {
        let v = SignalView::parse(STATUS).expect("parses");
        assert!(v.namespace_init);
        assert_eq!(v.action(Signal::SIGTERM), Action::Caught); // bit 15
        assert_eq!(v.action(Signal::SIGINT), Action::Caught); // bit 2
        assert_eq!(v.action(Signal::SIGPIPE), Action::Ignored); // bit 13
        assert_eq!(v.action(Signal::SIGHUP), Action::Default);
        assert!(!v.would_lose(Signal::SIGTERM));
        assert!(v.would_lose(Signal::SIGHUP));
        assert!(!v.would_lose(Signal::SIGKILL));
    }

    #[test]
    fn only_a_namespace_init_loses_signals() {
        let not_init = STATUS.replace("NSpid:\t4242\t1", "NSpid:\t4242\t7");
        let v = SignalView::parse(&not_init).expect("parses");
        assert!(!v.namespace_init);
        assert!(!v.would_lose(Signal::SIGHUP));
        let host = STATUS.replace("NSpid:\t4242\t1", "NSpid:\t1");
        assert!(SignalView::parse(&host).expect("parses").namespace_init);
        assert_eq!(SignalView::parse("Name:\tsh\n"), None);
    }
}
