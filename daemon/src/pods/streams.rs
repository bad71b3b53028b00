//! Streaming sessions' runtime side: exec and attach through the pod's shim (which passes the
//! process's stdio descriptors back), and port-forward connections made inside the pod's
//! network namespace. The streaming server turns these into client sessions.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use corral_shim::proto::{
    AttachRequest, ExecStreamRequest, ExitRecord, Request, Response, StreamFd,
};
use tokio::net::UnixStream;

use super::model::SandboxState;
use super::shim_client::read_answer;
use super::{PodError, Pods, Result};
use crate::spec;

/// How long a port-forward connection inside a pod may take to be accepted.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Which standard streams a session carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamsWanted {
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// A live exec or attach: the descriptors the shim passed, and the connection on which the
/// exit arrives. Dropping it ends the session (the shim kills an exec'd process; an attach
/// detaches).
pub struct Session {
    pub pid: i32,
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// The terminal (TTY sessions): input, output (exec) and window size.
    pub pty: Option<OwnedFd>,
    conn: UnixStream,
}

impl Session {
    fn new(response: Response, fds: Vec<OwnedFd>, conn: UnixStream) -> Result<Session> {
        let Response::Streams { pid, fds: roles } = response else {
            return Err(PodError::Shim(format!(
                "unexpected answer to a streaming request: {response:?}"
            )));
        };
        if roles.len() != fds.len() {
            return Err(PodError::Shim(format!(
                "the shim announced {} descriptors and passed {}",
                roles.len(),
                fds.len()
            )));
        }
        let mut s = Session {
            pid,
            stdin: None,
            stdout: None,
            stderr: None,
            pty: None,
            conn,
        };
        for (role, fd) in roles.into_iter().zip(fds) {
            let slot = match role {
                StreamFd::Stdin => &mut s.stdin,
                StreamFd::Stdout => &mut s.stdout,
                StreamFd::Stderr => &mut s.stderr,
                StreamFd::Pty => &mut s.pty,
            };
            *slot = Some(fd);
        }
        Ok(s)
    }

    /// Takes the connection, leaving the descriptors: await [`Exit::wait`] for the end.
    pub fn split(self) -> (Streams, Exit) {
        (
            Streams {
                stdin: self.stdin,
                stdout: self.stdout,
                stderr: self.stderr,
                pty: self.pty,
            },
            Exit { conn: self.conn },
        )
    }
}

/// The descriptors of a [`Session`].
pub struct Streams {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub pty: Option<OwnedFd>,
}

/// The end of a [`Session`].
pub struct Exit {
    conn: UnixStream,
}

impl Exit {
    /// Waits until the process (exec) or the container (attach) exits.
    pub async fn wait(mut self) -> Result<ExitRecord> {
        match read_answer(&mut self.conn, [0u8; 4], 0).await? {
            Response::Exited(record) => Ok(record),
            other => Err(PodError::Shim(format!(
                "unexpected end of a streaming session: {other:?}"
            ))),
        }
    }
}

fn check_streams(what: &str, w: StreamsWanted) -> Result<()> {
    if !w.stdin && !w.stdout && !w.stderr {
        return Err(PodError::InvalidArgument(format!(
            "{what}: one of stdin, stdout and stderr must be set"
        )));
    }
    if w.tty && w.stderr {
        return Err(PodError::InvalidArgument(format!(
            "{what}: tty and stderr cannot both be set (a terminal has one output stream)"
        )));
    }
    Ok(())
}

impl StreamsWanted {
    pub fn new(tty: bool, stdin: bool, stdout: bool, stderr: bool) -> StreamsWanted {
        StreamsWanted {
            tty,
            stdin,
            stdout,
            stderr,
        }
    }
}

impl Pods {
    /// Checks an Exec request before a URL is handed out; returns the container's full id.
    pub fn check_exec(&self, id: &str, cmd: &[String], w: StreamsWanted) -> Result<String> {
        if cmd.is_empty() {
            return Err(PodError::InvalidArgument("Exec: cmd is empty".into()));
        }
        check_streams("Exec", w)?;
        Ok(self.running(id)?.meta.id.clone())
    }

    /// Checks an Attach request before a URL is handed out; returns the container's full id.
    pub fn check_attach(&self, id: &str, w: StreamsWanted) -> Result<String> {
        check_streams("Attach", w)?;
        let ctr = self.running(id)?;
        if w.tty != ctr.config.tty {
            return Err(PodError::InvalidArgument(format!(
                "Attach: tty is {} but container {} was created with tty {}",
                w.tty, ctr.meta.id, ctr.config.tty
            )));
        }
        if w.stdin && !ctr.config.stdin {
            return Err(PodError::InvalidArgument(format!(
                "Attach: container {} was not created with stdin",
                ctr.meta.id
            )));
        }
        Ok(ctr.meta.id.clone())
    }

    /// Checks a PortForward request before a URL is handed out; returns the pod's full id.
    pub fn check_port_forward(&self, pod_id: &str, ports: &[i32]) -> Result<String> {
        if let Some(p) = ports.iter().find(|p| !(1..=65535).contains(*p)) {
            return Err(PodError::InvalidArgument(format!(
                "PortForward: port {p} is not a port (1 to 65535)"
            )));
        }
        Ok(self.ready_sandbox(pod_id)?.meta.id.clone())
    }

    fn ready_sandbox(&self, pod_id: &str) -> Result<std::sync::Arc<super::Sandbox>> {
        let sb = self.sandbox(pod_id)?;
        if sb.state() != SandboxState::Ready {
            return Err(PodError::FailedPrecondition(format!(
                "pod sandbox {} is not ready",
                sb.meta.id
            )));
        }
        Ok(sb)
    }

    /// Starts `cmd` in container `id` with the streams asked for.
    pub async fn exec_stream(&self, id: &str, cmd: &[String], w: StreamsWanted) -> Result<Session> {
        self.check_exec(id, cmd, w)?;
        let ctr = self.running(id)?;
        let sandbox = self.sandbox(&ctr.meta.sandbox_id)?;
        let spec = Self::load_spec(&ctr)?;
        let process = spec::exec_process(&spec, cmd, w.tty)?;
        let process =
            serde_json::to_value(&process).map_err(|e| PodError::Internal(e.to_string()))?;
        let request = Request::ExecStream(ExecStreamRequest {
            id: ctr.meta.id.clone(),
            process,
            tty: w.tty,
            stdin: w.stdin,
            stdout: w.stdout,
            stderr: w.stderr,
        });
        let (response, fds, conn) = sandbox.shim.call_stream(&request).await?;
        Session::new(response, fds, conn)
    }

    /// Attaches to container `id`'s main process.
    pub async fn attach(&self, id: &str, w: StreamsWanted) -> Result<Session> {
        self.check_attach(id, w)?;
        let ctr = self.running(id)?;
        let sandbox = self.sandbox(&ctr.meta.sandbox_id)?;
        let request = Request::Attach(AttachRequest {
            id: ctr.meta.id.clone(),
            stdin: w.stdin,
            stdout: w.stdout,
            stderr: w.stderr,
        });
        let (response, fds, conn) = sandbox.shim.call_stream(&request).await?;
        Session::new(response, fds, conn)
    }

    /// After an attach whose client closed stdin: with `stdin_once`, the container's stdin is
    /// closed for good.
    pub async fn attach_stdin_closed(&self, id: &str) -> Result<()> {
        let ctr = self.container(id)?;
        if !ctr.config.stdin_once {
            return Ok(());
        }
        let sandbox = self.sandbox(&ctr.meta.sandbox_id)?;
        sandbox
            .shim
            .call(&Request::CloseStdin {
                id: ctr.meta.id.clone(),
            })
            .await
            .map(|_| ())
    }

    /// A TCP connection to `port` on the pod's loopback (IPv4, else IPv6), made from inside the
    /// pod's network namespace (the host's for host-network pods).
    pub async fn port_forward(&self, pod_id: &str, port: u16) -> Result<tokio::net::TcpStream> {
        let sb = self.ready_sandbox(pod_id)?;
        let pin = sb.dir.join("ns").join("net");
        let netns = if pin.exists() {
            Some(std::fs::File::open(&pin).map_err(|e| PodError::io(&pin, e))?)
        } else {
            None
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A thread of its own: joining the pod's network namespace changes only the calling
        // thread, which ends right after the connection is made.
        std::thread::Builder::new()
            .name("corral-portfwd".into())
            .spawn(move || {
                let _ = tx.send(connect_in(netns.as_ref().map(AsFd::as_fd), port));
            })
            .map_err(|e| PodError::Internal(format!("starting a port-forward thread: {e}")))?;
        let stream = rx
            .await
            .map_err(|_| PodError::Internal("the port-forward thread died".into()))?
            .map_err(|e| {
                PodError::FailedPrecondition(format!(
                    "connecting to port {port} in pod sandbox {}: {e}",
                    sb.meta.id
                ))
            })?;
        stream
            .set_nonblocking(true)
            .and_then(|()| tokio::net::TcpStream::from_std(stream))
            .map_err(|e| PodError::Internal(format!("port-forward socket: {e}")))
    }
}

/// Joins `netns` (when given) and connects to `port` on 127.0.0.1, then on ::1.
fn connect_in(netns: Option<std::os::fd::BorrowedFd<'_>>, port: u16) -> std::io::Result<TcpStream> {
    if let Some(ns) = netns {
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
    }
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
        Ok(s) => Ok(s),
        Err(e4) => {
            let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
            TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT).map_err(|_| e4)
        }
    }
}
