//! ExecSync: a process run inside a container whose output is collected and returned.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use corral_runtime::container::Stdio;
use corral_runtime::exec::{Spawned, Target};
use corral_shim::crilog::Stream;
use corral_shim::proto::{ErrorKind, ExecRequest, MAX_EXEC_OUTPUT, Response};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::Pid;
use oci_spec::runtime::Process;

use crate::log;
use crate::output::{self, Chunk};
use crate::server::{Error, Shim, Source};

/// A running exec and the connection waiting for its result.
pub struct ExecSession {
    conn: u64,
    pub pid: i32,
    pidfd: OwnedFd,
    exit_token: u64,
    outputs: Vec<(u64, Stream, OwnedFd)>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    deadline: Option<Instant>,
    timeout: Duration,
    answered: bool,
}

impl ExecSession {
    fn keep(&mut self, stream: Stream, data: &[u8]) {
        let buf = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        let room = MAX_EXEC_OUTPUT.saturating_sub(buf.len());
        buf.extend_from_slice(&data[..data.len().min(room)]);
    }
}

impl Shim {
    /// Running container `id` (its init, cgroup and confinement), and `process` decoded; the
    /// answer to give otherwise.
    pub fn exec_target(
        &self,
        id: &str,
        process: serde_json::Value,
    ) -> Result<(Target, Process), Response> {
        let Some(ctr) = self.ctrs.get(id) else {
            let msg = format!("container {id} not found in the shim");
            return Err(Response::error(ErrorKind::NotFound, msg));
        };
        if !ctr.running() {
            let msg = format!("container {id} is not running");
            return Err(Response::error(ErrorKind::FailedPrecondition, msg));
        }
        let process: Process = serde_json::from_value(process).map_err(|e| {
            Response::error(ErrorKind::InvalidArgument, format!("exec process: {e}"))
        })?;
        Ok((ctr.target.clone(), process))
    }

    pub fn exec(&mut self, conn: u64, req: ExecRequest) -> Option<Response> {
        let (target, process) = match self.exec_target(&req.id, req.process) {
            Ok(t) => t,
            Err(answer) => return Some(answer),
        };
        match self.spawn_exec(conn, &req.id, &target, &process, req.timeout_ms) {
            Ok(()) => None,
            Err(e) => Some(Response::error(ErrorKind::Internal, format!("exec: {e}"))),
        }
    }

    /// Starts `process` in container `id` (`target`) through the pod's runtime: confined like
    /// the container's init either way.
    pub fn spawn_in(
        &self,
        id: &str,
        target: &Target,
        process: &Process,
        stdio: Stdio,
    ) -> Result<Spawned, Error> {
        match &self.oci {
            Some(rt) => rt.exec(id, &target.confined(process), stdio),
            None => Ok(corral_runtime::exec::spawn(target, process, stdio)?),
        }
    }

    fn spawn_exec(
        &mut self,
        conn: u64,
        id: &str,
        target: &Target,
        process: &Process,
        timeout_ms: u64,
    ) -> Result<(), Error> {
        let output::OutputPipes {
            stdout: out_w,
            stderr: err_w,
            readers,
        } = output::output_pipes()?;
        let stdio = Stdio::Fds {
            stdin: None,
            stdout: out_w,
            stderr: err_w,
        };
        let spawned = self.spawn_in(id, target, process, stdio)?;
        let exec = self.next_exec_id();
        let exit_token = self
            .reg
            .add(spawned.pidfd.as_fd(), Source::ExecExit { exec })?;
        let mut outputs = Vec::new();
        for (stream, fd) in readers {
            let token = self
                .reg
                .add(fd.as_fd(), Source::ExecOutput { exec, stream })?;
            outputs.push((token, stream, fd));
        }
        let timeout = Duration::from_millis(timeout_ms);
        self.execs.insert(
            exec,
            ExecSession {
                conn,
                pid: spawned.pid,
                pidfd: spawned.pidfd,
                exit_token,
                outputs,
                stdout: Vec::new(),
                stderr: Vec::new(),
                deadline: (timeout_ms > 0).then(|| Instant::now() + timeout),
                timeout,
                answered: false,
            },
        );
        Ok(())
    }

    fn next_exec_id(&mut self) -> u64 {
        (1..).find(|id| !self.execs.contains_key(id)).unwrap_or(0)
    }

    pub fn on_exec_output(&mut self, exec: u64, token: u64, stream: Stream) {
        let Some(session) = self.execs.get_mut(&exec) else {
            return;
        };
        let Some(pos) = session.outputs.iter().position(|(t, _, _)| *t == token) else {
            return;
        };
        match output::read_chunk(session.outputs[pos].2.as_fd()) {
            Chunk::Data(data) => session.keep(stream, &data),
            Chunk::Again => {}
            Chunk::Eof => {
                let (token, _, fd) = session.outputs.remove(pos);
                self.reg.remove(token, fd.as_fd());
            }
        }
    }

    /// The exec'd process exited: reap it, take what is left in its pipes, answer. Output a
    /// background child keeps writing after that is not waited for.
    pub fn on_exec_exit(&mut self, exec: u64) {
        let Some(mut session) = self.execs.remove(&exec) else {
            return;
        };
        let status = waitid(Id::PIDFd(session.pidfd.as_fd()), WaitPidFlag::WEXITED);
        self.reg.remove(session.exit_token, session.pidfd.as_fd());
        let exit_code = match status {
            Ok(WaitStatus::Exited(_, code)) => code,
            Ok(WaitStatus::Signaled(_, sig, _)) => 128 + sig as i32,
            _ => 255,
        };
        let outputs = std::mem::take(&mut session.outputs);
        for (token, stream, fd) in outputs {
            for data in output::drain(fd.as_fd()) {
                session.keep(stream, &data);
            }
            self.reg.remove(token, fd.as_fd());
        }
        if !session.answered {
            let response = Response::ExecDone {
                exit_code,
                stdout: session.stdout,
                stderr: session.stderr,
            };
            self.respond(session.conn, response);
        }
    }

    /// The soonest exec deadline, for the event loop's timeout.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.execs
            .values()
            .filter(|s| !s.answered)
            .filter_map(|s| s.deadline)
            .min()
    }

    /// Kills execs past their deadline and answers `DeadlineExceeded`; they are reaped later.
    pub fn expire_execs(&mut self) {
        let now = Instant::now();
        let expired: Vec<u64> = self
            .execs
            .iter()
            .filter(|(_, s)| !s.answered && s.deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for exec in expired {
            let Some(session) = self.execs.get_mut(&exec) else {
                continue;
            };
            session.answered = true;
            let _ = kill(Pid::from_raw(session.pid), Signal::SIGKILL);
            let (conn, timeout) = (session.conn, session.timeout);
            log!(
                "exec pid {} timed out after {timeout:?}; killed",
                session.pid
            );
            let msg = format!(
                "command timed out after {}s and was killed",
                timeout.as_secs_f64()
            );
            self.respond(conn, Response::error(ErrorKind::DeadlineExceeded, msg));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(affinity: &str) -> Result<Process, serde_json::Error> {
        serde_json::from_value(serde_json::json!({
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "args": ["true"],
            "execCPUAffinity": {"initial": affinity, "final": "0"},
        }))
    }

    /// The process decoder checks CPU lists itself (vendor/oci-spec/PATCHED.md), as the
    /// published crate did with a regular expression: numbers and ranges, comma-separated.
    #[test]
    fn exec_cpu_affinity_lists_are_checked_without_a_regex() {
        for good in ["0", "0-3", "0-3,7", "12,14-15,3", "007"] {
            let process = decode(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
            let affinity = process.exec_cpu_affinity().as_ref().expect("affinity kept");
            assert_eq!(affinity.initial().as_deref(), Some(good));
        }
        for bad in [
            "", ",", "0,", ",0", "0-", "-3", "0--3", "0-3-5", "a", "1 ", "٣", "0;1",
        ] {
            let err = decode(bad).expect_err(bad).to_string();
            assert!(
                err.contains("Invalid execCPUAffinity format"),
                "{bad:?}: {err}"
            );
        }
    }
}
