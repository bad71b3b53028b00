//! The streaming side of Exec, Attach and PortForward: corrald's [`Backend`] for the
//! `corral-streaming` server. Sessions come from the pod subsystem (`pods::streams`); this
//! module wraps their descriptors for tokio and maps errors.

mod fdio;

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use corral_streaming::backend::{
    AttachSpec, Backend, BackendError, BoxReader, BoxStream, BoxWriter, ExecSpec, ProcessIo,
};
use futures::FutureExt as _;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use self::fdio::FdIo;
use crate::pods::streams::{Session, StreamsWanted};
use crate::pods::{PodError, Pods};

/// corrald's streaming backend.
pub struct PodsBackend {
    pub pods: Arc<Pods>,
}

fn backend_error(e: PodError) -> BackendError {
    match e {
        PodError::NotFound(msg) | PodError::FailedPrecondition(msg) => BackendError::Failed(msg),
        other => BackendError::Failed(crate::status::error_chain(&other)),
    }
}

fn io_error(e: std::io::Error) -> BackendError {
    BackendError::Failed(format!("session descriptors: {e}"))
}

fn reader(fd: Option<OwnedFd>) -> Result<Option<BoxReader>, BackendError> {
    fd.map(|fd| FdIo::new(fd).map(|io| Box::new(io) as BoxReader))
        .transpose()
        .map_err(io_error)
}

fn writer(fd: Option<OwnedFd>) -> Result<Option<BoxWriter>, BackendError> {
    fd.map(|fd| FdIo::new(fd).map(|io| Box::new(io) as BoxWriter))
        .transpose()
        .map_err(io_error)
}

/// Sets the terminal `pty`'s window size.
#[allow(unsafe_code)]
fn set_window_size(pty: &OwnedFd, width: u16, height: u16) {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which points to a live value;
    // `pty` is an open descriptor for the session's lifetime.
    let rc = unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "setting a terminal's size");
    }
}

/// A task applying resize events to `pty` until the session drops its sender.
fn resizer(pty: OwnedFd) -> mpsc::Sender<(u16, u16)> {
    let (tx, mut rx) = mpsc::channel::<(u16, u16)>(8);
    tokio::spawn(async move {
        while let Some((w, h)) = rx.recv().await {
            set_window_size(&pty, w, h);
        }
    });
    tx
}

/// Wraps a session's descriptors; `on_stdin_closed` runs when the client's stdin ends. With a
/// terminal, input goes to the pty; output comes from it (exec) or from the copy of the
/// container's output the shim passed (attach).
fn process_io(
    session: Session,
    wanted: StreamsWanted,
    on_stdin_closed: Option<Box<dyn FnOnce() + Send>>,
) -> Result<ProcessIo, BackendError> {
    let (streams, exit) = session.split();
    let (stdin, stdout, resize) = match streams.pty {
        Some(pty) => {
            let dup = |fd: &OwnedFd| fd.try_clone().map_err(io_error);
            let stdin = if wanted.stdin { Some(dup(&pty)?) } else { None };
            let stdout = match streams.stdout {
                Some(copy) => Some(copy),
                None if wanted.stdout => Some(dup(&pty)?),
                None => None,
            };
            (stdin, stdout, Some(resizer(pty)))
        }
        None => (streams.stdin, streams.stdout, None),
    };
    let stdin = writer(stdin)?.map(|w| match on_stdin_closed {
        Some(hook) => Box::new(OnClose {
            inner: w,
            hook: Some(hook),
        }) as BoxWriter,
        None => w,
    });
    Ok(ProcessIo {
        stdin,
        stdout: reader(stdout)?,
        stderr: reader(streams.stderr)?,
        resize,
        exit: async move {
            exit.wait()
                .await
                .map(|r| r.exit_code)
                .map_err(backend_error)
        }
        .boxed(),
    })
}

/// A writer that runs a hook once when it is shut down or dropped.
struct OnClose {
    inner: BoxWriter,
    hook: Option<Box<dyn FnOnce() + Send>>,
}

impl Drop for OnClose {
    fn drop(&mut self) {
        if let Some(hook) = self.hook.take() {
            hook();
        }
    }
}

impl tokio::io::AsyncWrite for OnClose {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_shutdown(cx);
        if r.is_ready()
            && let Some(hook) = self.hook.take()
        {
            hook();
        }
        r
    }
}

impl Backend for PodsBackend {
    fn exec(&self, spec: ExecSpec) -> BoxFuture<'static, Result<ProcessIo, BackendError>> {
        let pods = Arc::clone(&self.pods);
        async move {
            let wanted = StreamsWanted::new(spec.tty, spec.stdin, spec.stdout, spec.stderr);
            let session = pods
                .exec_stream(&spec.container_id, &spec.cmd, wanted)
                .await
                .map_err(backend_error)?;
            process_io(session, wanted, None)
        }
        .boxed()
    }

    fn attach(&self, spec: AttachSpec) -> BoxFuture<'static, Result<ProcessIo, BackendError>> {
        let pods = Arc::clone(&self.pods);
        async move {
            let wanted = StreamsWanted::new(spec.tty, spec.stdin, spec.stdout, spec.stderr);
            let session = pods
                .attach(&spec.container_id, wanted)
                .await
                .map_err(backend_error)?;
            let hook: Option<Box<dyn FnOnce() + Send>> = spec.stdin.then(|| {
                let id = spec.container_id.clone();
                let pods = Arc::clone(&pods);
                Box::new(move || {
                    if let Ok(rt) = tokio::runtime::Handle::try_current() {
                        rt.spawn(async move {
                            if let Err(e) = pods.attach_stdin_closed(&id).await {
                                tracing::debug!(container = %id, error = %e, "closing stdin after attach");
                            }
                        });
                    }
                }) as Box<dyn FnOnce() + Send>
            });
            process_io(session, wanted, hook)
        }
        .boxed()
    }

    fn port_forward(
        &self,
        pod_sandbox_id: &str,
        port: u16,
    ) -> BoxFuture<'static, Result<BoxStream, BackendError>> {
        let pods = Arc::clone(&self.pods);
        let id = pod_sandbox_id.to_owned();
        async move {
            let stream = pods.port_forward(&id, port).await.map_err(backend_error)?;
            Ok(Box::new(stream) as BoxStream)
        }
        .boxed()
    }
}
