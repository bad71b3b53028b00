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
        let mut header = [0u8; 4];
        stream
            .read_exact(&mut header)
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
