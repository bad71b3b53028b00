//! Talking to a pod's shim: starting it, and one request per connection on its socket.

use std::path::{Path, PathBuf};
use std::time::Duration;

use corral_shim::proto::{self, ErrorKind, Request, Response, SOCKET_FILE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::PodError;

/// How long the shim may take to set the pod up and report ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A pod's shim, reached through `<dir>/shim.sock`.
#[derive(Debug, Clone)]
pub struct ShimClient {
    dir: PathBuf,
}

impl ShimClient {
    pub fn new(dir: &Path) -> ShimClient {
        ShimClient {
            dir: dir.to_path_buf(),
        }
    }

    /// Starts `bin` for the pod directory `dir` (its `shim.json` written already) and waits
    /// until the shim serves. The program forks and its first process exits at once, so the
    /// daemon never keeps a child. Returns the shim's pid.
    pub async fn spawn(bin: &Path, dir: &Path) -> Result<i32, PodError> {
        let mut cmd = tokio::process::Command::new(bin);
        cmd.arg(dir)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(false);
        let output = tokio::time::timeout(START_TIMEOUT, cmd.output())
            .await
            .map_err(|_| PodError::Shim(format!("{} did not report ready in time", bin.display())))?
            .map_err(|e| PodError::Shim(format!("starting {}: {e}", bin.display())))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if output.status.success()
            && let Some(pid) = stdout
                .trim()
                .strip_prefix("ready ")
                .and_then(|p| p.parse().ok())
        {
            return Ok(pid);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(PodError::Shim(format!(
            "the shim failed to set up the pod: {}",
            stderr.trim()
        )))
    }

    /// Sends `request` and waits for the answer (without a time limit: `Wait` may take long).
    pub async fn call(&self, request: &Request) -> Result<Response, PodError> {
        let mut stream = self.send(request).await?;
        read_answer(&mut stream, [0u8; 4], 0).await
    }

    /// Sends a streaming request (`ExecStream`, `Attach`) and returns its first answer with the
    /// descriptors attached to it, and the connection, on which the final answer follows.
    /// Dropping the connection ends the session on the shim's side.
    pub async fn call_stream(
        &self,
        request: &Request,
    ) -> Result<(Response, Vec<std::os::fd::OwnedFd>, UnixStream), PodError> {
        use nix::sys::socket::{MsgFlags, recvmsg};
        use std::os::fd::AsRawFd;
        let mut stream = self.send(request).await?;
        let mut header = [0u8; 4];
        let (n, fds) = loop {
            stream
                .readable()
                .await
                .map_err(|e| PodError::Shim(format!("the shim did not answer: {e}")))?;
            let got = stream.try_io(tokio::io::Interest::READABLE, || {
                let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; proto::MAX_FDS]);
                let mut iov = [std::io::IoSliceMut::new(&mut header)];
                let msg = recvmsg::<()>(
                    stream.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT,
                )
                .map_err(std::io::Error::from)?;
                let fds = proto::take_fds(msg.cmsgs().map_err(std::io::Error::from)?);
                Ok((msg.bytes, fds))
            });
            match got {
                Ok(v) => break v,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(PodError::Shim(format!("the shim did not answer: {e}"))),
            }
        };
        if n == 0 {
            return Err(PodError::Shim("the shim closed the connection".into()));
        }
        let response = read_answer(&mut stream, header, n).await?;
        Ok((response, fds, stream))
    }

    async fn send(&self, request: &Request) -> Result<UnixStream, PodError> {
        let sock = self.dir.join(SOCKET_FILE);
        let connect_err = |e: std::io::Error| {
            PodError::Shim(format!("connecting to the shim at {}: {e}", sock.display()))
        };
        let (_dir_fd, short) = proto::socket_path(&self.dir).map_err(connect_err)?;
        let mut stream = UnixStream::connect(&short).await.map_err(connect_err)?;
        let frame = proto::encode(request).map_err(|e| PodError::Internal(e.to_string()))?;
        stream
            .write_all(&frame)
            .await
            .map_err(|e| PodError::Shim(format!("sending to the shim: {e}")))?;
        Ok(stream)
    }

    /// [`call`](Self::call) bounded by `limit`.
    pub async fn call_within(
        &self,
        request: &Request,
        limit: Duration,
    ) -> Result<Response, PodError> {
        tokio::time::timeout(limit, self.call(request))
            .await
            .map_err(|_| PodError::Shim(format!("the shim did not answer within {limit:?}")))?
    }
}

/// Reads an answer whose header's first `have` bytes are already in `header`.
pub async fn read_answer(
    stream: &mut UnixStream,
    mut header: [u8; 4],
    have: usize,
) -> Result<Response, PodError> {
    stream
        .read_exact(&mut header[have..])
        .await
        .map_err(|e| PodError::Shim(format!("the shim did not answer: {e}")))?;
    let len = proto::frame_len(header).map_err(|e| PodError::Shim(e.to_string()))?;
    let mut body = vec![0u8; len];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| PodError::Shim(format!("reading the shim's answer: {e}")))?;
    let response: Response = serde_json::from_slice(&body)
        .map_err(|e| PodError::Shim(format!("malformed answer from the shim: {e}")))?;
    match response {
        Response::Error { kind, message } => Err(shim_error(kind, message)),
        other => Ok(other),
    }
}

fn shim_error(kind: ErrorKind, message: String) -> PodError {
    match kind {
        ErrorKind::NotFound => PodError::NotFound(message),
        ErrorKind::AlreadyExists => PodError::AlreadyExists(message),
        ErrorKind::InvalidArgument => PodError::InvalidArgument(message),
        ErrorKind::FailedPrecondition => PodError::FailedPrecondition(message),
        ErrorKind::DeadlineExceeded => PodError::DeadlineExceeded(message),
        ErrorKind::Internal => PodError::Internal(message),
    }
}
