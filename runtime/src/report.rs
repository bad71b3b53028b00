//! The close-on-exec status pipe between the caller and its forked helpers.
//!
//! Children write fixed-size records (smaller than `PIPE_BUF`, so each write is atomic); the
//! caller reads them. EOF after the last expected record means every writer either exited or
//! `execve`d successfully (the write end is close-on-exec).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::errno::Errno;

use crate::Error;

const RECORD: usize = 1024;
const STEP_MAX: usize = RECORD - 8;

/// A child-side failure: the step that failed and its errno.
#[derive(Debug)]
pub(crate) struct ChildError {
    pub step: String,
    pub errno: Errno,
}

/// Result type of code running in a forked child.
pub(crate) type ChildResult<T = ()> = Result<T, ChildError>;

/// Adds a step name to a nix result in child code.
pub(crate) trait Step<T> {
    fn step(self, step: &str) -> ChildResult<T>;
    fn step_with(self, f: impl FnOnce() -> String) -> ChildResult<T>;
}

impl<T> Step<T> for Result<T, Errno> {
    fn step(self, step: &str) -> ChildResult<T> {
        self.map_err(|errno| ChildError {
            step: step.to_owned(),
            errno,
        })
    }
    fn step_with(self, f: impl FnOnce() -> String) -> ChildResult<T> {
        self.map_err(|errno| ChildError { step: f(), errno })
    }
}

impl<T> Step<T> for std::io::Result<T> {
    fn step(self, step: &str) -> ChildResult<T> {
        self.map_err(|e| ChildError {
            step: step.to_owned(),
            errno: io_errno(&e),
        })
    }
    fn step_with(self, f: impl FnOnce() -> String) -> ChildResult<T> {
        self.map_err(|e| ChildError {
            step: f(),
            errno: io_errno(&e),
        })
    }
}

fn io_errno(e: &std::io::Error) -> Errno {
    e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO)
}

/// What a child reports.
#[derive(Debug)]
pub(crate) enum Msg {
    /// The intermediate process created this (host) PID.
    Pid(i32),
    /// The init finished its setup and waits for "start".
    Ready,
    /// A setup step failed.
    Failed(ChildError),
    /// `process.args[0]` was not found in `PATH`.
    NotFound(String),
    /// The init reached its create-time hooks (before `pivot_root`) and waits for the caller
    /// to run prestart and createRuntime.
    Hooks,
    /// A hook run by the init (createContainer, startContainer) failed.
    Hook(crate::hooks::HookFailure),
}

const K_PID: u8 = 1;
const K_READY: u8 = 2;
const K_FAILED: u8 = 3;
const K_NOT_FOUND: u8 = 4;
const K_HOOKS: u8 = 5;
const K_HOOK: u8 = 6;

/// Writes one record; errors are ignored (the reader treats a missing record as a failure).
pub(crate) fn send(fd: impl AsFd, msg: &Msg) {
    let mut buf = [0u8; RECORD];
    let hook;
    let (kind, value, text): (u8, i32, &str) = match msg {
        Msg::Pid(pid) => (K_PID, *pid, ""),
        Msg::Ready => (K_READY, 0, ""),
        Msg::Failed(e) => (K_FAILED, e.errno as i32, &e.step),
        Msg::NotFound(name) => (K_NOT_FOUND, Errno::ENOENT as i32, name),
        Msg::Hooks => (K_HOOKS, 0, ""),
        Msg::Hook(f) => {
            hook = format!("{}\0{}\0{}", f.kind, f.path, f.reason);
            (K_HOOK, 0, &hook)
        }
    };
    let mut len = text.len().min(STEP_MAX);
    while !text.is_char_boundary(len) {
        len -= 1;
    }
    let text = &text.as_bytes()[..len];
    buf[0] = kind;
    buf[1..5].copy_from_slice(&value.to_le_bytes());
    buf[5..7].copy_from_slice(&(text.len() as u16).to_le_bytes());
    buf[8..8 + text.len()].copy_from_slice(text);
    let _ = nix::unistd::write(fd, &buf);
}

/// Reads the next record; `None` on EOF.
pub(crate) fn recv(fd: &OwnedFd) -> Result<Option<Msg>, Error> {
    let mut buf = [0u8; RECORD];
    let mut got = 0;
    while got < RECORD {
        match nix::unistd::read(fd.as_raw_fd(), &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => continue,
            Err(source) => {
                return Err(Error::Sys {
                    step: "read status pipe",
                    source,
                });
            }
        }
    }
    if got == 0 {
        return Ok(None);
    }
    if got < RECORD {
        return Err(Error::Sys {
            step: "read status pipe (short record)",
            source: Errno::EIO,
        });
    }
    let value = i32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]);
    let len = (u16::from_le_bytes([buf[5], buf[6]]) as usize).min(STEP_MAX);
    let text = String::from_utf8_lossy(&buf[8..8 + len]).into_owned();
    Ok(Some(match buf[0] {
        K_PID => Msg::Pid(value),
        K_READY => Msg::Ready,
        K_NOT_FOUND => Msg::NotFound(text),
        K_HOOKS => Msg::Hooks,
        K_HOOK => {
            let mut parts = text.splitn(3, '\0');
            let mut next = || parts.next().unwrap_or_default().to_owned();
            Msg::Hook(crate::hooks::HookFailure {
                kind: next(),
                path: next(),
                reason: next(),
            })
        }
        _ => Msg::Failed(ChildError {
            step: text,
            errno: Errno::from_raw(value),
        }),
    }))
}

impl From<ChildError> for Error {
    fn from(e: ChildError) -> Self {
        Error::Child {
            step: e.step,
            errno: e.errno,
        }
    }
}

/// Turns an unexpected message into an error.
/// Reads the pid an intermediate reports for the process it cloned with `CLONE_PARENT`. That
/// process runs at once and writes to the same pipe, so its own first report (Ready, or a quick
/// failure) can arrive before its pid does; it is returned beside the pid, for the caller to
/// take in its place. An intermediate that failed reports that failure.
pub(crate) fn recv_pid(
    fd: &OwnedFd,
    waiting_for: &'static str,
) -> Result<(nix::unistd::Pid, Option<Msg>), Error> {
    let mut early = None;
    loop {
        match recv(fd)? {
            Some(Msg::Pid(pid)) => return Ok((nix::unistd::Pid::from_raw(pid), early)),
            Some(m) if early.is_none() => early = Some(m),
            other => return Err(unexpected(early.or(other), waiting_for)),
        }
    }
}

pub(crate) fn unexpected(msg: Option<Msg>, waiting_for: &'static str) -> Error {
    match msg {
        Some(Msg::Failed(e)) => e.into(),
        Some(Msg::NotFound(name)) => Error::NotFound(name),
        Some(Msg::Hook(f)) => f.into(),
        Some(other) => Error::Child {
            step: format!("protocol: got {other:?} while waiting for {waiting_for}"),
            errno: Errno::EPROTO,
        },
        None => Error::Child {
            step: format!("child exited before reporting {waiting_for}"),
            errno: Errno::ECHILD,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe() -> (OwnedFd, OwnedFd) {
        nix::unistd::pipe().expect("pipe")
    }

    #[test]
    fn a_report_that_overtakes_the_pid_is_kept_for_later() {
        let (r, w) = pipe();
        send(&w, &Msg::Ready);
        send(&w, &Msg::Pid(42));
        drop(w);
        let (pid, early) = recv_pid(&r, "the init's pid").expect("a pid");
        assert_eq!(pid.as_raw(), 42);
        assert!(matches!(early, Some(Msg::Ready)), "{early:?}");
    }

    #[test]
    fn the_pid_first_leaves_nothing_early() {
        let (r, w) = pipe();
        send(&w, &Msg::Pid(7));
        send(&w, &Msg::Ready);
        drop(w);
        let (pid, early) = recv_pid(&r, "the init's pid").expect("a pid");
        assert_eq!(pid.as_raw(), 7);
        assert!(early.is_none());
        assert!(matches!(recv(&r), Ok(Some(Msg::Ready))));
    }

    #[test]
    fn a_hook_failure_keeps_its_kind_path_and_reason() {
        let (r, w) = pipe();
        let reason = format!("exited with status 3; output: {}", "é".repeat(600));
        send(
            &w,
            &Msg::Hook(crate::hooks::HookFailure {
                kind: "createContainer".into(),
                path: "/hooks/x.sh".into(),
                reason,
            }),
        );
        drop(w);
        let e = unexpected(recv(&r).expect("a record"), "setup").to_string();
        assert!(
            e.starts_with("createContainer hook /hooks/x.sh failed: exited with status 3"),
            "{e}"
        );
    }

    #[test]
    fn an_intermediate_that_failed_reports_its_failure() {
        let (r, w) = pipe();
        send(
            &w,
            &Msg::Failed(ChildError {
                step: "unshare".into(),
                errno: Errno::EPERM,
            }),
        );
        drop(w);
        let e = recv_pid(&r, "the init's pid").expect_err("no pid");
        assert!(e.to_string().contains("unshare"), "{e}");
    }
}
