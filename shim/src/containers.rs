//! The pod's containers: create, start, signal, wait, exit, reopen the log, remove.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::SystemTime;

use corral_runtime::container::{self, Container, Stdio};
use corral_runtime::exec;
use corral_shim::crilog::{LogFile, Stream, Written};
use corral_shim::proto::{ContainerInfo, CreateRequest, ErrorKind, ExitRecord, LogDrops, Response};
use corral_shim::records;
use corral_shim::timefmt::unix_nanos;
use nix::fcntl::OFlag;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use nix::unistd::{Pid, pipe2};
use oci_spec::runtime::Spec;

use crate::log;
use crate::output::{self, Chunk};
use crate::server::{Error, Shim, Source};

/// One container of the pod.
pub struct Ctr {
    pub id: String,
    /// The init's pid, cgroup and confinement, which every exec in the container gets.
    pub target: exec::Target,
    pub(crate) process: Option<Init>,
    pub(crate) exit_token: Option<u64>,
    log: Option<LogFile>,
    /// The write end of the container's stdin (or the pty), kept for attach.
    pub stdin: Option<OwnedFd>,
    /// Whether the container has a terminal (its output is one stream, the pty).
    pub tty: bool,
    /// Copies of the output going to attached clients.
    pub sinks: Vec<crate::streams::Sink>,
    /// Connections attached to this container (answered `Exited` at its exit).
    pub attached: Vec<u64>,
    outputs: Vec<(u64, Stream, OwnedFd)>,
    pub(crate) started_at: Option<i64>,
    pub exit: Option<ExitRecord>,
    pub(crate) waiters: Vec<u64>,
    /// A stop signal the init would lose now, sent once it catches it.
    pub held_signal: Option<crate::stop_signal::Held>,
    /// The spec's poststop hooks, run once when the container is removed.
    poststop: Option<corral_runtime::hooks::Poststop>,
}

impl Ctr {
    /// Host PID of the container's init.
    pub fn pid(&self) -> i32 {
        self.target.init_pid
    }

    pub fn info(&self) -> ContainerInfo {
        ContainerInfo {
            id: self.id.clone(),
            pid: self.pid(),
            started_at: self.started_at,
            exit: self.exit,
        }
    }

    /// What the container's log lost, if anything.
    pub fn log_drops(&self) -> Option<LogDrops> {
        let log = self.log.as_ref().filter(|l| l.dropped_total() > 0)?;
        Some(LogDrops {
            id: self.id.clone(),
            path: log.path().to_path_buf(),
            bytes: log.dropped_total(),
            error: log.dropped().map(|d| d.error.clone()),
        })
    }

    /// Whether `pid` is this container's init and it has not been reaped yet.
    pub fn is_live(&self, pid: i32) -> bool {
        self.pid() == pid && self.exit.is_none()
    }

    pub fn running(&self) -> bool {
        self.started_at.is_some() && self.exit.is_none()
    }
}

/// The container's init as its runtime holds it.
pub(crate) enum Init {
    /// The built-in runtime's container (boxed: it is by far the largest).
    Builtin(Box<Container>),
    /// An OCI runtime's: a pidfd of the init (the shim's child once the runtime exited).
    Oci(OwnedFd),
    /// To be restored from a checkpoint's CRIU images at Start, with this stdio (OCI runtimes
    /// only); no process exists yet.
    Restore {
        bundle: PathBuf,
        images: PathBuf,
        stdio: Stdio,
    },
}

impl Init {
    fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Init::Builtin(c) => Some(c.pidfd()),
            Init::Oci(fd) => Some(fd.as_fd()),
            Init::Restore { .. } => None,
        }
    }
}

pub(crate) fn not_found(id: &str) -> Response {
    Response::error(
        ErrorKind::NotFound,
        format!("container {id} not found in the shim"),
    )
}

/// The descriptors a new container gets, and the ends the shim keeps.
struct Ends {
    stdin: Option<OwnedFd>,
    outputs: Vec<(Stream, OwnedFd)>,
}

/// The container's stdio. A terminal is made by the container's init in its own devpts; the
/// shim keeps its controller side once the container exists ([`Ends::terminal`]).
fn make_pipes(req: &CreateRequest) -> Result<(Stdio, Ends), Error> {
    let pipe = || pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::sys("pipe2", e));
    if req.tty {
        let ends = Ends {
            stdin: None,
            outputs: Vec::new(),
        };
        return Ok((Stdio::Terminal, ends));
    }
    let output::OutputPipes {
        stdout: out_w,
        stderr: err_w,
        readers: outputs,
    } = output::output_pipes()?;
    let (stdin_child, stdin_keep) = if req.stdin {
        let (r, w) = pipe()?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    let stdio = Stdio::Fds {
        stdin: stdin_child,
        stdout: out_w,
        stderr: err_w,
    };
    let ends = Ends {
        stdin: stdin_keep,
        outputs,
    };
    Ok((stdio, ends))
}

impl Ends {
    /// For a terminal: the shim reads the container's output from the controller side, and
    /// writes its stdin there when it has one.
    fn terminal(&mut self, req: &CreateRequest, pty: OwnedFd) -> Result<(), Error> {
        output::set_cloexec_nonblock(&pty)?;
        if req.stdin {
            self.stdin = Some(pty.try_clone().map_err(|e| Error::io("dup", e))?);
        }
        self.outputs = vec![(Stream::Stdout, pty)];
        Ok(())
    }
}

impl Shim {
    pub fn create(&mut self, req: CreateRequest) -> Response {
        if self.ctrs.contains_key(&req.id) {
            let msg = format!("container {} already exists in the shim", req.id);
            return Response::error(ErrorKind::AlreadyExists, msg);
        }
        match self.try_create(req) {
            Ok(pid) => Response::Created { pid },
            Err(e) => {
                // A volume the host cannot idmap for a user namespace is the node's limit.
                let kind = match &e {
                    Error::Runtime(corral_runtime::Error::Idmap { .. }) => {
                        ErrorKind::FailedPrecondition
                    }
                    _ => ErrorKind::Internal,
                };
                Response::error(kind, format!("creating the container: {e}"))
            }
        }
    }

    fn try_create(&mut self, req: CreateRequest) -> Result<i32, Error> {
        let config = req.bundle.join("config.json");
        let spec = Spec::load(&config)
            .map_err(|e| Error::Protocol(format!("{}: {e}", config.display())))?;
        // Checked before anything is created; the pid is known once the init exists.
        let mut target = exec::Target::of(&spec, 0)?;
        let log = match &req.log_path {
            Some(path) => Some(LogFile::open(path).map_err(|e| Error::io(path, e))?),
            None => None,
        };
        let (stdio, mut pipes) = make_pipes(&req)?;
        let mut poststop = None;
        let (process, pid) = match (&self.oci, &req.restore) {
            (None, Some(_)) => {
                return Err(Error::Unsupported(
                    "the built-in runtime cannot restore checkpoints; run the pod with an OCI runtime handler".into(),
                ));
            }
            (Some(_), Some(_)) if req.tty => {
                return Err(Error::Unsupported(
                    "restoring a container with a terminal is not supported".into(),
                ));
            }
            (Some(_), Some(images)) => {
                let init = Init::Restore {
                    bundle: req.bundle.clone(),
                    images: images.clone(),
                    stdio,
                };
                (init, 0)
            }
            (Some(rt), None) => {
                let mut spawned = rt.create(&req.id, &req.bundle, stdio)?;
                if let Some(pty) = spawned.terminal.take() {
                    pipes.terminal(&req, pty)?;
                }
                (Init::Oci(spawned.pidfd), spawned.pid)
            }
            (None, None) => {
                let mut process =
                    container::create_with(&spec, &req.bundle, &req.id, stdio, &mut self.spare)?;
                poststop = Some(process.poststop()).filter(|p| !p.is_empty());
                if let Some(pty) = process.take_terminal() {
                    pipes.terminal(&req, pty)?;
                }
                let pid = process.pid();
                (Init::Builtin(Box::new(process)), pid)
            }
        };
        target.init_pid = pid;
        let mut ctr = Ctr {
            id: req.id.clone(),
            target,
            process: None,
            exit_token: None,
            log,
            stdin: pipes.stdin,
            tty: req.tty,
            sinks: Vec::new(),
            attached: Vec::new(),
            outputs: Vec::new(),
            started_at: None,
            exit: None,
            waiters: Vec::new(),
            held_signal: None,
            poststop,
        };
        if let Some(pidfd) = process.pidfd() {
            ctr.exit_token = Some(self.reg.add(
                pidfd,
                Source::Exit {
                    ctr: req.id.clone(),
                },
            )?);
        }
        for (stream, fd) in pipes.outputs {
            let source = Source::Output {
                ctr: req.id.clone(),
                stream,
            };
            let token = self.reg.add(fd.as_fd(), source)?;
            ctr.outputs.push((token, stream, fd));
        }
        ctr.process = Some(process);
        log!("created container {} (pid {pid})", req.id);
        self.ctrs.insert(req.id, ctr);
        Ok(pid)
    }

    pub fn start(&mut self, id: &str) -> Response {
        let Some(ctr) = self.ctrs.get_mut(id) else {
            return not_found(id);
        };
        if ctr.started_at.is_some() || ctr.exit.is_some() {
            let msg = format!("container {id} was already started");
            return Response::error(ErrorKind::FailedPrecondition, msg);
        }
        let started = match ctr.process.as_mut() {
            None => return not_found(id),
            Some(Init::Builtin(process)) => process
                .start()
                .map(|poststart_failures| {
                    for e in poststart_failures {
                        log!("container {id}: {e} (ignored: poststart)");
                    }
                })
                .map_err(|e| e.to_string()),
            Some(Init::Oci(_)) => match &self.oci {
                Some(rt) => rt.start(id).map_err(|e| e.to_string()),
                None => return not_found(id),
            },
            Some(Init::Restore { .. }) => return self.restore(id),
        };
        let Some(ctr) = self.ctrs.get_mut(id) else {
            return not_found(id);
        };
        match started {
            Ok(()) => {
                let started_at = unix_nanos(SystemTime::now());
                ctr.started_at = Some(started_at);
                log!("started container {id}");
                Response::Started {
                    pid: ctr.pid(),
                    started_at,
                }
            }
            Err(e) => Response::error(ErrorKind::FailedPrecondition, e),
        }
    }

    pub fn signal(&mut self, id: &str, signal: i32) -> Response {
        let Some(ctr) = self.ctrs.get(id) else {
            return not_found(id);
        };
        let Ok(sig) = Signal::try_from(signal) else {
            return Response::error(ErrorKind::InvalidArgument, format!("bad signal {signal}"));
        };
        if ctr.exit.is_some() {
            return Response::Ok;
        }
        // A container waiting to be restored has no process yet: a signal ends it as it would
        // end a created container's init (its restore is forgotten).
        if ctr.pid() <= 0 {
            self.end_unstarted(id, sig);
            return Response::Ok;
        }
        // A namespace init that would drop it now gets it once it catches it (stop_signal.rs).
        if crate::stop_signal::must_hold(ctr.pid(), sig) {
            log!("holding {sig} for {id} until its init catches it");
            if let Some(ctr) = self.ctrs.get_mut(id) {
                ctr.held_signal = Some(crate::stop_signal::Held {
                    signal: sig,
                    since: std::time::Instant::now(),
                });
            }
            return Response::Ok;
        }
        // The init is our child and unreaped until `on_exit`, so its pid cannot be reused yet.
        if let Err(e) = kill(Pid::from_raw(ctr.pid()), sig)
            && e != nix::errno::Errno::ESRCH
        {
            return Response::error(ErrorKind::Internal, format!("kill: {e}"));
        }
        Response::Ok
    }

    pub fn wait(&mut self, conn: u64, id: &str) -> Option<Response> {
        let Some(ctr) = self.ctrs.get_mut(id) else {
            return Some(not_found(id));
        };
        if let Some(exit) = ctr.exit {
            return Some(Response::Exited(exit));
        }
        ctr.waiters.push(conn);
        None
    }

    pub fn reopen_log(&mut self, id: &str) -> Response {
        let Some(ctr) = self.ctrs.get_mut(id) else {
            return not_found(id);
        };
        match ctr.log.as_mut().map(LogFile::reopen) {
            Some(Err(e)) => Response::error(ErrorKind::Internal, format!("reopening the log: {e}")),
            _ => Response::Ok,
        }
    }

    /// Forgets the container; one that is still alive is killed and reaped first.
    pub fn remove(&mut self, id: &str) -> Response {
        let Some(ctr) = self.ctrs.get(id) else {
            return Response::Ok;
        };
        // A container waiting to be restored has no process (and pid 0 would name our group).
        if ctr.exit.is_none() && ctr.pid() > 0 {
            let _ = kill(Pid::from_raw(ctr.pid()), Signal::SIGKILL);
            // The init may be its PID namespace's init, waiting for its exec'd processes
            // (our children) to be reaped before it can exit.
            let exited = |s: &Shim| s.ctrs.get(id).is_none_or(|c| c.exit.is_some());
            self.reap_until(exited, "a killed container", crate::server::KILL_WAIT);
            if !exited(self) {
                return Response::error(
                    ErrorKind::Internal,
                    format!("container {id} did not exit after SIGKILL"),
                );
            }
        }
        let Some(mut ctr) = self.ctrs.remove(id) else {
            return Response::Ok;
        };
        for (token, _, fd) in ctr.outputs.drain(..) {
            self.reg.remove(token, fd.as_fd());
        }
        records::remove(&self.dir, id);
        if let Some(rt) = &self.oci {
            rt.delete(id);
        }
        // The container is deleted (its process and cgroup gone) before its poststop hooks
        // run; the daemon unmounts its rootfs and removes its bundle afterwards.
        if let Some(poststop) = ctr.poststop.take() {
            if let Err(e) = corral_runtime::cgroups::kill_and_remove(&ctr.target.cgroups_path) {
                log!("container {id}: removing its cgroup before the poststop hooks: {e}");
            }
            for e in poststop.run() {
                log!("container {id}: {e} (ignored: poststop)");
            }
        }
        Response::Ok
    }

    pub fn on_output(&mut self, id: &str, token: u64, stream: Stream) {
        let Some(ctr) = self.ctrs.get_mut(id) else {
            return;
        };
        let Some(pos) = ctr.outputs.iter().position(|(t, _, _)| *t == token) else {
            return;
        };
        let chunk = output::read_chunk(ctr.outputs[pos].2.as_fd());
        match chunk {
            Chunk::Data(data) => {
                if write_output(ctr, stream, &data) {
                    self.log_drops_changed();
                }
            }
            Chunk::Again => {}
            Chunk::Eof => {
                let (token, _, fd) = ctr.outputs.remove(pos);
                self.reg.remove(token, fd.as_fd());
            }
        }
    }

    /// The init exited (its pidfd is readable): reap it, collect the rest of its output, check
    /// the cgroup's OOM counter and record the exit.
    pub fn on_exit(&mut self, id: &str) {
        let Some(ctr) = self.ctrs.get_mut(id) else {
            return;
        };
        if ctr.exit.is_some() {
            return;
        }
        let Some(process) = ctr.process.take() else {
            return;
        };
        let Some(pidfd) = process.pidfd() else {
            ctr.process = Some(process);
            return;
        };
        let status = waitid(Id::PIDFd(pidfd), WaitPidFlag::WEXITED);
        if let Some(token) = ctr.exit_token.take() {
            self.reg.remove(token, pidfd);
        }
        drop(process);
        let (exit_code, signal) = match status {
            Ok(WaitStatus::Exited(_, code)) => (code, None),
            Ok(WaitStatus::Signaled(_, sig, _)) => (128 + sig as i32, Some(sig as i32)),
            other => {
                log!("container {id}: unexpected wait status {other:?}");
                (255, None)
            }
        };
        let rest: Vec<(Stream, Vec<u8>)> = ctr
            .outputs
            .iter()
            .flat_map(|(_, stream, fd)| output::drain(fd.as_fd()).into_iter().map(|d| (*stream, d)))
            .collect();
        let mut drops_changed = false;
        for (stream, data) in rest {
            drops_changed |= write_output(ctr, stream, &data);
        }
        // Still losing output at the end: the report gets the run's final count.
        drops_changed |= ctr.log.as_ref().is_some_and(|l| l.dropped().is_some());
        let oom_killed = corral_runtime::cgroups::oom_kills(&ctr.target.cgroups_path)
            .map(|n| n > 0)
            .unwrap_or_else(|e| {
                log!("container {id}: reading the OOM counter: {e}");
                false
            });
        let record = ExitRecord {
            exit_code,
            signal,
            finished_at: unix_nanos(SystemTime::now()),
            oom_killed,
        };
        ctr.exit = Some(record);
        log!("container {id} exited: {record:?}");
        if let Err(e) = records::write(&self.dir, id, &record) {
            log!("container {id}: writing the exit record: {e}");
        }
        let waiters = std::mem::take(&mut ctr.waiters);
        // Attached clients see their output end, then the exit.
        ctr.sinks.clear();
        let attached = std::mem::take(&mut ctr.attached);
        for conn in waiters.into_iter().chain(attached) {
            self.respond(conn, Response::Exited(record));
        }
        if drops_changed {
            self.log_drops_changed();
        }
    }
}

/// Output of the container: to its log and to every attached client. True when a run of lost
/// log output began or ended (the daemon is told).
fn write_output(ctr: &mut Ctr, stream: Stream, data: &[u8]) -> bool {
    crate::streams::feed_sinks(&mut ctr.sinks, stream, data);
    write_log(ctr, stream, data)
}

fn write_log(ctr: &mut Ctr, stream: Stream, data: &[u8]) -> bool {
    let Some(log) = ctr.log.as_mut() else {
        return false;
    };
    // The container goes on whatever happens to its log; one line per run of losses.
    let written = log.write(stream, data, unix_nanos(SystemTime::now()));
    let changed = matches!(written, Written::Dropped(Some(_)) | Written::Resumed(_));
    match written {
        Written::Ok | Written::Dropped(None) => {}
        Written::Dropped(Some(e)) => log!(
            "container {}: writing {}: {e}; dropping its output until the log can be written",
            ctr.id,
            log.path().display()
        ),
        Written::Resumed(d) => log!(
            "container {}: writing {} again after dropping {} bytes",
            ctr.id,
            log.path().display(),
            d.bytes
        ),
    }
    changed
}
