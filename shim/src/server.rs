//! The shim's single-threaded event loop: one epoll over the socket, the connections, the
//! containers' output pipes, their pidfds and a signalfd.

use std::collections::HashMap;
use std::io::{ErrorKind as IoKind, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use corral_runtime::sandbox::{self, PidHolder, PodNamespaces};
use corral_shim::crilog::Stream;
use corral_shim::proto::{
    self, CONFIG_FILE, ErrorKind, Request, Response, SOCKET_FILE, ShimConfig,
};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::signal::{Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;

use crate::containers::Ctr;
use crate::exec::ExecSession;
use crate::log;
use crate::setup::handled_signals;
use crate::streams::StreamExec;

/// The shim's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{step}: {source}")]
    Sys {
        step: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Runtime(#[from] corral_runtime::Error),
    #[error("{0}")]
    Protocol(String),
    /// The pod's OCI runtime failed (its message).
    #[error("{0}")]
    Oci(String),
    /// A command of the OCI runtime took too long and was killed.
    #[error("{0}")]
    TimedOut(String),
    /// What this pod's runtime cannot do.
    #[error("{0}")]
    Unsupported(String),
}

impl Error {
    pub fn sys(step: &'static str, source: nix::Error) -> Error {
        Error::Sys { step, source }
    }
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
}

/// What an epoll token stands for. The descriptors themselves live with their owners.
#[derive(Debug, Clone)]
pub enum Source {
    Listener,
    Signals,
    Conn,
    Output { ctr: String, stream: Stream },
    Exit { ctr: String },
    ExecOutput { exec: u64, stream: Stream },
    ExecExit { exec: u64 },
    StreamExit { exec: u64 },
    Holder,
}

/// Returns the heap's free pages to the kernel (`malloc_trim`).
#[allow(unsafe_code)]
fn trim_heap() {
    // SAFETY: malloc_trim only releases memory the allocator holds free; the shim is
    // single-threaded.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// How long after a create used the spare the next one is made.
const SPARE_AFTER: Duration = Duration::from_secs(1);

/// A client connection: reading its request, or parked until its answer is ready.
pub struct Conn {
    stream: UnixStream,
    buf: Vec<u8>,
    parked: bool,
}

/// The epoll set and what each of its tokens stands for.
pub struct Registry {
    epoll: Epoll,
    sources: HashMap<u64, Source>,
    next_token: u64,
}

impl Registry {
    /// Adds `fd` (level-triggered input) and returns its token.
    pub fn add(&mut self, fd: BorrowedFd<'_>, source: Source) -> Result<u64, Error> {
        let token = self.next_token;
        self.next_token += 1;
        let flags = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
        self.epoll
            .add(fd, EpollEvent::new(flags, token))
            .map_err(|e| Error::sys("epoll_ctl add", e))?;
        self.sources.insert(token, source);
        Ok(token)
    }

    /// Removes `fd`, registered as `token`.
    pub fn remove(&mut self, token: u64, fd: BorrowedFd<'_>) {
        let _ = self.epoll.delete(fd);
        self.sources.remove(&token);
    }
}

pub struct Shim {
    pub dir: PathBuf,
    config: ShimConfig,
    pub reg: Registry,
    listener: UnixListener,
    signals: SignalFd,
    holder: Option<(PidHolder, u64)>,
    conns: HashMap<u64, Conn>,
    pub ctrs: HashMap<String, Ctr>,
    pub execs: HashMap<u64, ExecSession>,
    pub stream_execs: HashMap<u64, StreamExec>,
    /// The pod's OCI runtime, when its handler names one (None: the built-in runtime).
    pub oci: Option<crate::oci::Runtime>,
    /// The report of lost log output: its number, and the connections waiting for the next.
    log_seq: u64,
    log_watchers: Vec<u64>,
    exiting: bool,
    /// The next container's intermediate, already in a cgroup of its own (v1 and hybrid
    /// hosts; see `corral_runtime::container::spare`).
    pub spare: Option<corral_runtime::container::Spare>,
    /// No spare is made (none asked for, v2 host, or making one failed).
    spare_off: bool,
    /// When to make the next spare: at once for the first container, else after the pod was
    /// a while without a create (see `replenish_spare`).
    spare_due: Option<Instant>,
}

/// A socket listening at `dir/name` (anything there before is replaced), bound by its relative
/// name from inside `dir`: the full path may exceed the 107 bytes a socket path has. The shim
/// is single-threaded, so changing its working directory for the call is safe.
pub fn bind_in(dir: &Path, name: &str) -> Result<UnixListener, Error> {
    let path = dir.join(name);
    let _ = std::fs::remove_file(&path);
    std::env::set_current_dir(dir).map_err(|e| Error::io(dir, e))?;
    let bound = UnixListener::bind(name).map_err(|e| Error::io(&path, e));
    std::env::set_current_dir("/").map_err(|e| Error::io("/", e))?;
    bound
}

/// How long the shim waits for a SIGKILLed process to be gone.
pub const KILL_WAIT: Duration = Duration::from_secs(10);

impl Shim {
    /// Reads the pod's configuration, pins its namespaces and binds the socket.
    pub fn new(dir: PathBuf) -> Result<Shim, Error> {
        let config_path = dir.join(CONFIG_FILE);
        let raw = std::fs::read(&config_path).map_err(|e| Error::io(&config_path, e))?;
        let config: ShimConfig = serde_json::from_slice(&raw)
            .map_err(|e| Error::Protocol(format!("{}: {e}", config_path.display())))?;
        let ns_dir = dir.join("ns");
        let pinned = sandbox::pin_namespaces(
            &ns_dir,
            &PodNamespaces {
                network: config.network,
                ipc: config.ipc,
                hostname: config.hostname.as_deref(),
                sysctls: &config.sysctls,
                userns: config.userns.as_ref(),
            },
        )?;
        drop(pinned);
        let rest = Self::finish(dir, config);
        if rest.is_err() {
            let _ = sandbox::unpin_namespaces(&ns_dir);
        }
        rest
    }

    fn finish(dir: PathBuf, config: ShimConfig) -> Result<Shim, Error> {
        let holder = if config.pid {
            let ns = dir.join("ns");
            let userns = config.userns.is_some().then(|| ns.join("user"));
            Some(sandbox::spawn_pid_holder_in(&ns, userns.as_deref())?)
        } else {
            None
        };
        let sock = dir.join(SOCKET_FILE);
        let listener = bind_in(&dir, SOCKET_FILE)?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io(&sock, e))?;
        let signals = SignalFd::with_flags(
            &handled_signals(),
            SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
        )
        .map_err(|e| Error::sys("signalfd", e))?;
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)
            .map_err(|e| Error::sys("epoll_create", e))?;
        let mut reg = Registry {
            epoll,
            sources: HashMap::new(),
            next_token: 1,
        };
        reg.add(listener.as_fd(), Source::Listener)?;
        reg.add(signals.as_fd(), Source::Signals)?;
        let holder = match holder {
            Some(h) => {
                let token = reg.add(h.pidfd.as_fd(), Source::Holder)?;
                Some((h, token))
            }
            None => None,
        };
        let oci = config
            .oci_runtime
            .clone()
            .map(|rt| crate::oci::Runtime::new(rt, &dir));
        Ok(Shim {
            dir,
            config,
            reg,
            listener,
            signals,
            holder,
            conns: HashMap::new(),
            ctrs: HashMap::new(),
            execs: HashMap::new(),
            stream_execs: HashMap::new(),
            oci,
            log_seq: 0,
            log_watchers: Vec::new(),
            exiting: false,
            spare: None,
            spare_off: false,
            spare_due: Some(Instant::now()),
        })
    }

    pub fn pod_id(&self) -> &str {
        &self.config.pod_id
    }

    /// Ends a shim that will never serve: its start-up report reached nobody (the first
    /// process was killed before reading it), so the daemon took the start as failed and will
    /// not tell it to shut down. Kills the PID holder, removes the socket and releases the
    /// pod's namespaces, as a failed start does.
    pub fn abandon(mut self) {
        self.teardown();
        let _ = sandbox::unpin_namespaces(&self.dir.join("ns"));
    }

    /// Runs until a `Shutdown` request has been answered.
    pub fn serve(mut self) -> Result<(), Error> {
        let mut events = vec![EpollEvent::empty(); 64];
        while !self.exiting {
            self.replenish_spare();
            let next = [
                self.next_deadline(),
                self.next_signal_poll(),
                self.spare_due,
            ]
            .into_iter()
            .flatten()
            .min();
            let timeout = next.map_or(EpollTimeout::NONE, |d| {
                let left = d.saturating_duration_since(Instant::now()) + Duration::from_millis(1);
                EpollTimeout::try_from(left).unwrap_or(EpollTimeout::MAX)
            });
            let n = match self.reg.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::sys("epoll_wait", e)),
            };
            for event in &events[..n] {
                let token = event.data();
                // An earlier event of this batch may have removed the source.
                if let Some(source) = self.reg.sources.get(&token).cloned() {
                    self.dispatch(token, source);
                }
            }
            self.expire_execs();
            self.deliver_held_signals();
        }
        self.teardown();
        Ok(())
    }

    /// Starts a spare intermediate when one is due: right after the ready report, for the
    /// pod's first container, and `SPARE_AFTER` after a create used the last one. Not at once
    /// then: the spare's join holds the kernel's cgroup mutex through its grace period, which
    /// a stop or another create right after would wait for, and pods that live shorter than
    /// that (churn) never need a second one.
    fn replenish_spare(&mut self) {
        if self.spare.is_some() || self.spare_off {
            return;
        }
        match self.spare_due {
            Some(due) if due <= Instant::now() => self.spare_due = None,
            Some(_) => return,
            None => {
                // The last spare was used (or failed): the next one later.
                self.spare_due = Some(Instant::now() + SPARE_AFTER);
                return;
            }
        }
        let Some(parent) = self.config.cgroup_parent.as_deref() else {
            self.spare_off = true;
            return;
        };
        match corral_runtime::container::Spare::spawn(Path::new(parent), &self.config.pod_id) {
            Ok(Some(spare)) => {
                self.spare = Some(spare);
                // Reading the mount table and the cgroups left freed heap behind, below what
                // the spare keeps: given back, so a waiting spare costs the pod nothing.
                trim_heap();
            }
            Ok(None) => self.spare_off = true,
            Err(e) => {
                log!("no spare intermediate: {e}");
                self.spare_off = true;
            }
        }
    }

    fn dispatch(&mut self, token: u64, source: Source) {
        match source {
            Source::Listener => self.accept(),
            Source::Signals => self.on_signals(),
            Source::Conn => self.on_conn(token),
            Source::Output { ctr, stream } => self.on_output(&ctr, token, stream),
            Source::Exit { ctr } => self.on_exit(&ctr),
            Source::ExecOutput { exec, stream } => self.on_exec_output(exec, token, stream),
            Source::ExecExit { exec } => self.on_exec_exit(exec),
            Source::StreamExit { exec } => self.on_stream_exit(exec),
            Source::Holder => self.holder_gone(),
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    match self.reg.add(stream.as_fd(), Source::Conn) {
                        Ok(token) => {
                            self.conns.insert(
                                token,
                                Conn {
                                    stream,
                                    buf: Vec::new(),
                                    parked: false,
                                },
                            );
                        }
                        Err(e) => log!("accept: {e}"),
                    }
                }
                Err(e) if e.kind() == IoKind::WouldBlock => return,
                Err(e) => {
                    log!("accept: {e}");
                    return;
                }
            }
        }
    }

    /// Forgets a connection the client closed (ending any session it held).
    fn drop_conn(&mut self, token: u64) {
        if let Some(conn) = self.conns.remove(&token) {
            self.reg.remove(token, conn.stream.as_fd());
            self.session_closed(token);
        }
    }

    fn on_conn(&mut self, token: u64) {
        let Some(conn) = self.conns.get_mut(&token) else {
            return;
        };
        let mut chunk = [0u8; 4096];
        let n = match conn.stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == IoKind::WouldBlock => return,
            Err(_) => 0,
        };
        if n == 0 || conn.parked {
            // The client went away (a parked client has nothing more to say).
            if n == 0 {
                self.drop_conn(token);
            }
            return;
        }
        conn.buf.extend_from_slice(&chunk[..n]);
        if conn.buf.len() < 4 {
            return;
        }
        let header: [u8; 4] = [conn.buf[0], conn.buf[1], conn.buf[2], conn.buf[3]];
        let len = match proto::frame_len(header) {
            Ok(len) => len,
            Err(e) => {
                return self.respond(
                    token,
                    Response::error(ErrorKind::InvalidArgument, e.to_string()),
                );
            }
        };
        if conn.buf.len() < 4 + len {
            return;
        }
        let request: Request = match serde_json::from_slice(&conn.buf[4..4 + len]) {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("malformed request: {e}");
                return self.respond(token, Response::error(ErrorKind::InvalidArgument, msg));
            }
        };
        conn.parked = true;
        conn.buf = Vec::new();
        if let Some(response) = self.handle(token, request) {
            self.respond(token, response);
        }
    }

    /// Handles a request; `None` means the answer comes later (the connection stays parked).
    fn handle(&mut self, conn: u64, request: Request) -> Option<Response> {
        Some(match request {
            Request::Info => self.info(),
            Request::Create(req) => self.create(req),
            Request::Start { id } => self.start(&id),
            Request::Signal { id, signal } => self.signal(&id, signal),
            Request::Wait { id } => return self.wait(conn, &id),
            Request::Exec(req) => return self.exec(conn, req),
            Request::ExecStream(req) => return self.exec_stream(conn, req),
            Request::Attach(req) => return self.attach(conn, req),
            Request::CloseStdin { id } => self.close_stdin(&id),
            Request::ReopenLog { id } => self.reopen_log(&id),
            Request::LogDrops { since } => return self.log_drops(conn, since),
            Request::Checkpoint(req) => self.checkpoint(req),
            Request::Remove { id } => self.remove(&id),
            Request::Shutdown => {
                self.exiting = true;
                Response::Ok
            }
        })
    }

    /// Sends the answer on a parked connection and closes it.
    pub fn respond(&mut self, token: u64, response: Response) {
        let Some(conn) = self.conns.remove(&token) else {
            return;
        };
        self.reg.remove(token, conn.stream.as_fd());
        let mut stream = conn.stream;
        let sent = stream
            .set_nonblocking(false)
            .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(5))))
            .map_err(proto::FrameError::from)
            .and_then(|()| proto::write_frame(&mut stream, &response));
        if let Err(e) = sent {
            log!("answering a request: {e}");
        }
    }

    /// Sends a first answer with descriptors on a parked connection and keeps it parked (its
    /// final answer comes later). A connection that cannot take it is dropped.
    pub fn respond_keep(&mut self, token: u64, response: &Response, fds: &[BorrowedFd<'_>]) {
        let Some(conn) = self.conns.get(&token) else {
            return;
        };
        let stream = &conn.stream;
        let sent = stream
            .set_nonblocking(false)
            .and_then(|()| stream.set_write_timeout(Some(Duration::from_secs(5))))
            .map_err(proto::FrameError::from)
            .and_then(|()| proto::send_with_fds(stream, response, fds))
            .and_then(|()| Ok(stream.set_nonblocking(true)?));
        if let Err(e) = sent {
            log!("answering a streaming request: {e}");
            self.drop_conn(token);
        }
    }

    /// The report of lost log output now, or later (parked) when it has not changed since
    /// `since`.
    fn log_drops(&mut self, conn: u64, since: u64) -> Option<Response> {
        let news = if since == 0 {
            self.ctrs.values().any(|c| c.log_drops().is_some())
        } else {
            since != self.log_seq
        };
        if news {
            return Some(self.log_drops_report());
        }
        self.log_watchers.push(conn);
        None
    }

    fn log_drops_report(&self) -> Response {
        Response::LogDrops {
            seq: self.log_seq,
            containers: self.ctrs.values().filter_map(Ctr::log_drops).collect(),
        }
    }

    /// Forgets `conn` if it waits for a report of lost log output (its client went away).
    pub fn forget_log_watcher(&mut self, conn: u64) {
        self.log_watchers.retain(|c| *c != conn);
    }

    /// A run of lost log output began or ended: a new report for whoever waits.
    pub fn log_drops_changed(&mut self) {
        self.log_seq += 1;
        let report = self.log_drops_report();
        for conn in std::mem::take(&mut self.log_watchers) {
            self.respond(conn, report.clone());
        }
    }

    fn info(&self) -> Response {
        Response::Info {
            shim_pid: std::process::id() as i32,
            pid_holder: self.holder.as_ref().map(|(h, _)| h.pid),
            containers: self.ctrs.values().map(Ctr::info).collect(),
        }
    }

    fn on_signals(&mut self) {
        let mut child_exited = false;
        while let Ok(Some(info)) = self.signals.read_signal() {
            if info.ssi_signo == Signal::SIGCHLD as u32 {
                child_exited = true;
            } else {
                log!("ignoring signal {}", info.ssi_signo);
            }
        }
        if child_exited {
            self.reap_children();
        }
    }

    /// Reaps every exited child: tracked ones through their exit handlers, orphans that were
    /// re-parented to us (we are a subreaper) directly.
    fn reap_children(&mut self) {
        loop {
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            let pid = match waitid(Id::All, flags) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => match status.pid() {
                    Some(pid) => pid.as_raw(),
                    None => return,
                },
            };
            if let Some(id) = self
                .ctrs
                .values()
                .find(|c| c.is_live(pid))
                .map(|c| c.id.clone())
            {
                self.on_exit(&id);
            } else if let Some(exec) = self
                .execs
                .iter()
                .find(|(_, s)| s.pid == pid)
                .map(|(k, _)| *k)
            {
                self.on_exec_exit(exec);
            } else if let Some(exec) = self.stream_exec_of(pid) {
                self.on_stream_exit(exec);
            } else if self.holder.as_ref().is_some_and(|(h, _)| h.pid == pid) {
                self.holder_gone();
            } else {
                let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
            }
        }
    }

    /// Blocks until `done` holds, reaping every child that exits meanwhile through its own
    /// handler. Killing a PID namespace's init makes the kernel wait until every other process
    /// of the namespace is reaped, and the exec'd ones are our children: a `waitid` on that
    /// init alone would wait for us forever. Gives up after `limit` (a process stuck in the
    /// kernel), saying so in the log.
    pub fn reap_until(&mut self, done: impl Fn(&Self) -> bool, what: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            self.reap_children();
            if done(self) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                log!("gave up waiting for {what} after {limit:?}");
                return;
            }
            // SIGCHLD wakes us through the signalfd; the timeout covers one already consumed.
            let wait = left.min(Duration::from_millis(50));
            let mut fds = [nix::poll::PollFd::new(
                self.signals.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let ms = u16::try_from(wait.as_millis()).unwrap_or(50);
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
            while let Ok(Some(_)) = self.signals.read_signal() {}
        }
    }

    fn holder_gone(&mut self) {
        if let Some((holder, token)) = self.holder.take() {
            let _ = waitid(Id::PIDFd(holder.pidfd.as_fd()), WaitPidFlag::WEXITED);
            self.reg.remove(token, holder.pidfd.as_fd());
            log!("the pod's PID namespace holder exited");
        }
    }

    /// On shutdown: kill whatever still runs so nothing outlives the pod.
    fn teardown(&mut self) {
        // Killed, not waited for: it may be in its cgroup join's grace period. Its cgroup goes
        // with the pod's (the daemon's RemovePodSandbox).
        if let Some(spare) = self.spare.take() {
            spare.abandon();
        }
        let ids: Vec<String> = self.ctrs.keys().cloned().collect();
        for id in ids {
            self.remove(&id);
        }
        if let Some((holder, _)) = &self.holder {
            let _ = kill(Pid::from_raw(holder.pid), Signal::SIGKILL);
            self.reap_until(|s| s.holder.is_none(), "the PID holder", KILL_WAIT);
        }
        let _ = std::fs::remove_file(self.dir.join(SOCKET_FILE));
        log!("shut down");
    }
}
