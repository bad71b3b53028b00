//! Streaming sessions. An exec'd process whose stdio (pipes, or a pty) the daemon holds: the
//! shim only reaps it and reports its exit. An attach to a container's main process: the
//! daemon gets the container's stdin (or pty) and a pipe per output stream that the shim feeds
//! with a copy of what it writes to the log.
//!
//! Either way the request's connection stays open: the shim answers `Streams` with the
//! descriptors at once and `Exited` at the end; a connection the daemon closes first kills the
//! exec'd process, or detaches.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use corral_runtime::container::Stdio;
use corral_shim::crilog::Stream;
use corral_shim::proto::{
    AttachRequest, ErrorKind, ExecStreamRequest, ExitRecord, Response, StreamFd,
};
use corral_shim::timefmt::unix_nanos;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::{Pid, pipe2};

use crate::log;
use crate::output;
use crate::server::{Error, Shim, Source};

/// How much an attach pipe buffers before output for a slow client is dropped.
const SINK_PIPE_BYTES: i32 = 1 << 20;

/// An exec'd process of a streaming session.
pub struct StreamExec {
    pub conn: u64,
    pub pid: i32,
    pidfd: OwnedFd,
    exit_token: u64,
}

/// A copy of one output stream of a container, for an attached client.
pub struct Sink {
    pub conn: u64,
    pub stream: Stream,
    fd: OwnedFd,
}

/// Writes `data` to every sink of `stream`. The shim never blocks on a client: what does not
/// fit in a sink's pipe is dropped for that client; a sink whose reader is gone is removed.
pub fn feed_sinks(sinks: &mut Vec<Sink>, stream: Stream, data: &[u8]) {
    sinks.retain(|sink| {
        if sink.stream != stream {
            return true;
        }
        loop {
            return match nix::unistd::write(&sink.fd, data) {
                Ok(_) | Err(Errno::EAGAIN) => true,
                Err(Errno::EINTR) => continue,
                Err(_) => false,
            };
        }
    });
}

fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe2", e))
}

fn dev_null() -> Result<OwnedFd, Error> {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .map(OwnedFd::from)
        .map_err(|e| Error::io("/dev/null", e))
}

fn dup(fd: &OwnedFd) -> Result<OwnedFd, Error> {
    fd.try_clone().map_err(|e| Error::io("dup", e))
}

/// The process's stdio and the ends passed to the daemon, by role. A terminal is made by the
/// process inside the container; its controller side is passed once it is spawned.
fn exec_stdio(req: &ExecStreamRequest) -> Result<(Stdio, Vec<(StreamFd, OwnedFd)>), Error> {
    if req.tty {
        return Ok((Stdio::Terminal, Vec::new()));
    }
    let mut passed = Vec::new();
    let stdin = if req.stdin {
        let (r, w) = pipe()?;
        passed.push((StreamFd::Stdin, w));
        Some(r)
    } else {
        None
    };
    let mut output = |wanted: bool, role: StreamFd| -> Result<OwnedFd, Error> {
        if !wanted {
            return dev_null();
        }
        let (r, w) = pipe()?;
        passed.push((role, r));
        Ok(w)
    };
    let stdout = output(req.stdout, StreamFd::Stdout)?;
    let stderr = output(req.stderr, StreamFd::Stderr)?;
    Ok((
        Stdio::Fds {
            stdin,
            stdout,
            stderr,
        },
        passed,
    ))
}

fn exit_of(status: nix::Result<WaitStatus>) -> ExitRecord {
    let (exit_code, signal) = match status {
        Ok(WaitStatus::Exited(_, code)) => (code, None),
        Ok(WaitStatus::Signaled(_, sig, _)) => (128 + sig as i32, Some(sig as i32)),
        _ => (255, None),
    };
    ExitRecord {
        exit_code,
        signal,
        finished_at: unix_nanos(std::time::SystemTime::now()),
        oom_killed: false,
    }
}

impl Shim {
    pub fn exec_stream(&mut self, conn: u64, req: ExecStreamRequest) -> Option<Response> {
        let (target, process) = match self.exec_target(&req.id, req.process.clone()) {
            Ok(t) => t,
            Err(answer) => return Some(answer),
        };
        let spawned = exec_stdio(&req).and_then(|(stdio, mut passed)| {
            let mut spawned = self.spawn_in(&req.id, &target, &process, stdio)?;
            if let Some(pty) = spawned.terminal.take() {
                passed.push((StreamFd::Pty, pty));
            }
            Ok((spawned, passed))
        });
        let (spawned, passed) = match spawned {
            Ok(s) => s,
            Err(e) => return Some(Response::error(ErrorKind::Internal, format!("exec: {e}"))),
        };
        let exec = (1..)
            .find(|id| !self.stream_execs.contains_key(id))
            .unwrap_or(0);
        let exit_token = match self
            .reg
            .add(spawned.pidfd.as_fd(), Source::StreamExit { exec })
        {
            Ok(t) => t,
            Err(e) => {
                let _ = kill(Pid::from_raw(spawned.pid), Signal::SIGKILL);
                let _ = waitid(Id::PIDFd(spawned.pidfd.as_fd()), WaitPidFlag::WEXITED);
                return Some(Response::error(ErrorKind::Internal, e.to_string()));
            }
        };
        let pid = spawned.pid;
        self.stream_execs.insert(
            exec,
            StreamExec {
                conn,
                pid,
                pidfd: spawned.pidfd,
                exit_token,
            },
        );
        let (roles, fds): (Vec<StreamFd>, Vec<OwnedFd>) = passed.into_iter().unzip();
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        // On failure the connection is dropped, which kills the process.
        self.respond_keep(conn, &Response::Streams { pid, fds: roles }, &borrowed);
        None
    }

    /// A streaming exec'd process exited: reap it and answer its session.
    pub fn on_stream_exit(&mut self, exec: u64) {
        let Some(session) = self.stream_execs.remove(&exec) else {
            return;
        };
        let status = waitid(Id::PIDFd(session.pidfd.as_fd()), WaitPidFlag::WEXITED);
        self.reg.remove(session.exit_token, session.pidfd.as_fd());
        self.respond(session.conn, Response::Exited(exit_of(status)));
    }

    /// The streaming exec with this pid, if any.
    pub fn stream_exec_of(&self, pid: i32) -> Option<u64> {
        self.stream_execs
            .iter()
            .find(|(_, s)| s.pid == pid)
            .map(|(id, _)| *id)
    }

    pub fn attach(&mut self, conn: u64, req: AttachRequest) -> Option<Response> {
        let Some(ctr) = self.ctrs.get_mut(&req.id) else {
            let msg = format!("container {} not found in the shim", req.id);
            return Some(Response::error(ErrorKind::NotFound, msg));
        };
        if let Some(exit) = ctr.exit {
            return Some(Response::Exited(exit));
        }
        let mut passed: Vec<(StreamFd, OwnedFd)> = Vec::new();
        let mut sinks = Vec::new();
        let built = (|| -> Result<(), Error> {
            if req.stdin || ctr.tty {
                match &ctr.stdin {
                    Some(fd) => {
                        let role = if ctr.tty {
                            StreamFd::Pty
                        } else {
                            StreamFd::Stdin
                        };
                        passed.push((role, dup(fd)?));
                    }
                    None if req.stdin => {
                        return Err(Error::Protocol(format!(
                            "container {} was not created with stdin",
                            req.id
                        )));
                    }
                    None => {}
                }
            }
            let streams = if ctr.tty {
                vec![(req.stdout || req.stderr, Stream::Stdout, StreamFd::Stdout)]
            } else {
                vec![
                    (req.stdout, Stream::Stdout, StreamFd::Stdout),
                    (req.stderr, Stream::Stderr, StreamFd::Stderr),
                ]
            };
            for (wanted, stream, role) in streams {
                if !wanted {
                    continue;
                }
                let (r, w) = pipe()?;
                output::set_cloexec_nonblock(&w)?;
                let _ = fcntl(w.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(SINK_PIPE_BYTES));
                sinks.push(Sink {
                    conn,
                    stream,
                    fd: w,
                });
                passed.push((role, r));
            }
            Ok(())
        })();
        if let Err(e) = built {
            return Some(Response::error(
                ErrorKind::FailedPrecondition,
                e.to_string(),
            ));
        }
        ctr.sinks.extend(sinks);
        ctr.attached.push(conn);
        let pid = ctr.pid();
        let (roles, fds): (Vec<StreamFd>, Vec<OwnedFd>) = passed.into_iter().unzip();
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        self.respond_keep(conn, &Response::Streams { pid, fds: roles }, &borrowed);
        None
    }

    /// Closes the shim's end of a container's stdin: once the clients' copies are closed too,
    /// the container reads end-of-file.
    pub fn close_stdin(&mut self, id: &str) -> Response {
        match self.ctrs.get_mut(id) {
            Some(ctr) => {
                ctr.stdin = None;
                Response::Ok
            }
            None => Response::error(
                ErrorKind::NotFound,
                format!("container {id} not found in the shim"),
            ),
        }
    }

    /// A connection closed before its answer: a streaming exec's client went away (kill the
    /// process; its exit is reaped as usual), or an attached client detached.
    pub fn session_closed(&mut self, conn: u64) {
        for s in self.stream_execs.values().filter(|s| s.conn == conn) {
            log!("exec pid {}: client gone; killing it", s.pid);
            let _ = kill(Pid::from_raw(s.pid), Signal::SIGKILL);
        }
        self.forget_log_watcher(conn);
        for ctr in self.ctrs.values_mut() {
            ctr.sinks.retain(|s| s.conn != conn);
            ctr.attached.retain(|c| *c != conn);
        }
    }
}
