//! Sessions apart from the transport: a remote command session copies between the client's
//! streams (by role) and a backend process; a port-forward connection copies between a client
//! stream and a TCP connection into the pod. The WebSocket transport (and later SPDY) opens the
//! streams and calls these.
//!
//! Everything runs as futures inside the caller's task: nothing here spawns, so when the caller
//! drops the session (client gone, server shutdown) every stream and the [`ProcessIo`] go with it.

use std::io;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::backend::{BackendError, BoxReader, BoxStream, BoxWriter, ProcessIo};
use crate::remotecommand::{Protocol, ResizeDecoder, Status};

/// After the process exited, how long its output may take to reach end-of-file (a background
/// child can hold the pipe open forever) before the status is written anyway.
pub const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// After one direction of a forwarded connection ended, how long the other may go on
/// (containerd waits one second, like socat).
pub const PORT_FORWARD_LINGER: Duration = Duration::from_secs(1);

/// The client's side of a remote command session, one stream per role. A transport builds it:
/// WebSocket from channels 0–4, SPDY from the streams whose `streamtype` header names the role.
/// A role the client did not request is `None`.
pub struct RemoteCommandStreams {
    /// Client → process. Its end-of-file closes the process's stdin.
    pub stdin: Option<BoxReader>,
    /// Process → client.
    pub stdout: Option<BoxWriter>,
    /// Process → client; `None` with a TTY.
    pub stderr: Option<BoxWriter>,
    /// Server → client: the final status, then shut down.
    pub error: BoxWriter,
    /// Client → server: terminal sizes as a stream of JSON objects.
    pub resize: Option<BoxReader>,
}

/// What a remote command session runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandKind {
    /// An exec of this command: a non-zero exit is reported as `NonZeroExitCode`.
    Exec { cmd: Vec<String> },
    /// An attach: the session ends with success when the container exits, whatever its code
    /// (the kubelet's `ServeAttach`).
    Attach,
}

/// How a remote command session ended, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The process exited with this code and the status was written.
    Exited(i32),
    /// The backend failed; an internal-error status was written.
    BackendFailed(String),
}

/// Runs a remote command session to its end: starts the process (`start` is the backend's
/// `exec`/`attach` future), copies stdin, stdout, stderr and resize events until the process has
/// exited and its output is drained, then writes the status on the error stream.
pub async fn run_remote_command(
    streams: RemoteCommandStreams,
    protocol: Protocol,
    kind: CommandKind,
    start: BoxFuture<'static, Result<ProcessIo, BackendError>>,
) -> Outcome {
    let RemoteCommandStreams {
        stdin: client_stdin,
        stdout: client_stdout,
        stderr: client_stderr,
        error: mut client_error,
        resize: client_resize,
    } = streams;

    let (status, outcome) = match start.await {
        Ok(process) => {
            let exit = copy_until_exit(
                process,
                client_stdin,
                client_stdout,
                client_stderr,
                client_resize,
            )
            .await;
            status_for(&kind, exit)
        }
        Err(e) => status_for(&kind, Err(e)),
    };
    if let Some(bytes) = status.encode(protocol)
        && let Err(e) = client_error.write_all(&bytes).await
    {
        tracing::debug!(error = %e, "writing the session status");
    }
    // Best effort: the client may be gone already.
    let _ = client_error.shutdown().await;
    outcome
}

fn status_for(kind: &CommandKind, exit: Result<i32, BackendError>) -> (Status, Outcome) {
    match (kind, exit) {
        (CommandKind::Exec { cmd }, Ok(code)) if code != 0 => {
            (Status::non_zero_exit(code, cmd), Outcome::Exited(code))
        }
        (_, Ok(code)) => (Status::success(), Outcome::Exited(code)),
        (kind, Err(e)) => {
            let what = match kind {
                CommandKind::Exec { .. } => "error executing command in container",
                CommandKind::Attach => "error attaching to container",
            };
            let message = format!("{what}: {e}");
            tracing::warn!(error = %e, "{what}");
            (
                Status::internal_error(&message),
                Outcome::BackendFailed(message),
            )
        }
    }
}

async fn copy_until_exit(
    process: ProcessIo,
    client_stdin: Option<BoxReader>,
    client_stdout: Option<BoxWriter>,
    client_stderr: Option<BoxWriter>,
    client_resize: Option<BoxReader>,
) -> Result<i32, BackendError> {
    let ProcessIo {
        stdin,
        stdout,
        stderr,
        resize,
        exit,
    } = process;

    let stdin_done = copy_stdin(client_stdin, stdin);
    let resize_done = forward_resizes(client_resize, resize);
    let output_done = async {
        tokio::join!(
            copy_output(stdout, client_stdout, "stdout"),
            copy_output(stderr, client_stderr, "stderr")
        )
    };
    let main = async {
        tokio::pin!(output_done);
        tokio::pin!(exit);
        tokio::select! {
            code = &mut exit => {
                if tokio::time::timeout(OUTPUT_DRAIN_TIMEOUT, &mut output_done).await.is_err() {
                    tracing::debug!("output still open {OUTPUT_DRAIN_TIMEOUT:?} after the process exited");
                }
                code
            }
            _ = &mut output_done => exit.await,
        }
    };
    // stdin and resize end whenever the client says so; the session ends with the process.
    let client_side = async {
        tokio::join!(stdin_done, resize_done);
    };
    tokio::pin!(main, client_side);
    let mut client_side_done = false;
    loop {
        tokio::select! {
            code = &mut main => return code,
            () = &mut client_side, if !client_side_done => client_side_done = true,
        }
    }
}

/// Copies the client's stdin into the process's, then closes the process's stdin. A process
/// stdin without a client stdin is closed at once; client input without a process stdin is
/// dropped.
async fn copy_stdin(client: Option<BoxReader>, process: Option<BoxWriter>) {
    let Some(mut process) = process else {
        return;
    };
    if let Some(mut client) = client {
        match tokio::io::copy(&mut client, &mut process).await {
            Ok(_) => {}
            Err(e) if is_disconnect(&e) => {}
            Err(e) => tracing::debug!(error = %e, "copying stdin"),
        }
    }
    let _ = process.shutdown().await;
}

/// Copies a process output to the client until end-of-file. Output nobody asked for is read and
/// dropped so the process never blocks on a full pipe.
async fn copy_output(process: Option<BoxReader>, client: Option<BoxWriter>, name: &str) {
    let Some(mut process) = process else {
        return;
    };
    let result = match client {
        Some(mut client) => {
            let r = tokio::io::copy(&mut process, &mut client).await;
            let _ = client.shutdown().await;
            r
        }
        None => tokio::io::copy(&mut process, &mut tokio::io::sink()).await,
    };
    if let Err(e) = result
        && !is_disconnect(&e)
    {
        tracing::debug!(error = %e, "copying {name}");
    }
}

/// Decodes terminal sizes from the client and passes them to the process. Stops at the first
/// malformed message (as the kubelet does); without a TTY the sizes are read and dropped.
async fn forward_resizes(
    client: Option<BoxReader>,
    process: Option<tokio::sync::mpsc::Sender<(u16, u16)>>,
) {
    let Some(mut client) = client else {
        return;
    };
    let mut decoder = ResizeDecoder::default();
    let mut buf = [0u8; 1024];
    loop {
        let n = match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let sizes = match decoder.push(&buf[..n]) {
            Ok(sizes) => sizes,
            Err(e) => {
                tracing::debug!(error = %e, "ignoring the rest of the resize stream");
                return;
            }
        };
        if let Some(process) = &process {
            for size in sizes {
                if process.send((size.width, size.height)).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

/// Forwards one client connection to `port` of a pod: `target` is the backend's connection (or
/// why it failed), `data` the client's data stream, `error` the client's error stream, which gets
/// a message if forwarding fails (the kubelet's wording, with an empty pod UID).
pub async fn forward_port<D>(
    target: Result<BoxStream, BackendError>,
    pod_sandbox_id: &str,
    port: u16,
    data: D,
    mut error: BoxWriter,
) where
    D: AsyncRead + AsyncWrite + Send + Unpin,
{
    let failure = match target {
        Ok(target) => copy_both_ways(data, target).await.err(),
        Err(e) => Some(e.to_string()),
    };
    if let Some(message) = failure {
        let message =
            format!("error forwarding port {port} to pod {pod_sandbox_id}, uid : {message}");
        tracing::debug!("{message}");
        let _ = error.write_all(message.as_bytes()).await;
    }
    let _ = error.shutdown().await;
}

/// Copies both ways until one direction ends, then gives the other [`PORT_FORWARD_LINGER`]
/// (containerd's rule). A reset or broken pipe is a normal end, not an error.
async fn copy_both_ways<D>(client: D, target: BoxStream) -> Result<(), String>
where
    D: AsyncRead + AsyncWrite + Send + Unpin,
{
    let (mut client_rx, mut client_tx) = tokio::io::split(client);
    let (mut target_rx, mut target_tx) = tokio::io::split(target);
    let upstream = async {
        let r = tokio::io::copy(&mut client_rx, &mut target_tx).await;
        let _ = target_tx.shutdown().await;
        r
    };
    let downstream = async {
        let r = tokio::io::copy(&mut target_rx, &mut client_tx).await;
        let _ = client_tx.shutdown().await;
        r
    };
    tokio::pin!(upstream, downstream);
    let (first, other) = tokio::select! {
        r = &mut upstream => (r, tokio::time::timeout(PORT_FORWARD_LINGER, &mut downstream).await),
        r = &mut downstream => (r, tokio::time::timeout(PORT_FORWARD_LINGER, &mut upstream).await),
    };
    let other = other.unwrap_or(Ok(0));
    match first.and(other) {
        Ok(_) => Ok(()),
        Err(e) if is_disconnect(&e) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, DuplexStream, duplex};

    use super::*;

    /// A process whose streams are in-memory pipes; returns it and the "process side" ends.
    fn fake_process(
        exit: tokio::sync::oneshot::Receiver<i32>,
    ) -> (ProcessIo, DuplexStream, DuplexStream) {
        let (stdin, process_stdin) = duplex(64);
        let (process_stdout, stdout) = duplex(64);
        let io = ProcessIo {
            stdin: Some(Box::new(stdin)),
            stdout: Some(Box::new(stdout)),
            stderr: None,
            resize: None,
            exit: Box::pin(async move { Ok(exit.await.unwrap_or(-1)) }),
        };
        (io, process_stdin, process_stdout)
    }

    #[tokio::test]
    async fn a_session_over_plain_byte_streams() {
        let (exit_tx, exit_rx) = tokio::sync::oneshot::channel();
        let (io, mut process_stdin, mut process_stdout) = fake_process(exit_rx);
        // The "process": echo stdin to stdout until end-of-file, then exit 3.
        let process = async move {
            let mut input = Vec::new();
            process_stdin.read_to_end(&mut input).await.unwrap();
            process_stdout.write_all(&input).await.unwrap();
            drop(process_stdout);
            exit_tx.send(3).unwrap();
        };
        let (mut client_stdin, stdin) = duplex(64);
        let (stdout, mut client_stdout) = duplex(64);
        let (error, mut client_error) = duplex(1024);
        let streams = RemoteCommandStreams {
            stdin: Some(Box::new(stdin)),
            stdout: Some(Box::new(stdout)),
            stderr: None,
            error: Box::new(error),
            resize: None,
        };
        let client = async {
            client_stdin.write_all(b"hello").await.unwrap();
            client_stdin.shutdown().await.unwrap();
            let mut out = Vec::new();
            client_stdout.read_to_end(&mut out).await.unwrap();
            let mut status = Vec::new();
            client_error.read_to_end(&mut status).await.unwrap();
            (out, status)
        };
        let cmd = vec!["echo".to_owned()];
        let session = run_remote_command(
            streams,
            Protocol::V4,
            CommandKind::Exec { cmd: cmd.clone() },
            Box::pin(async move { Ok(io) }),
        );
        let (outcome, (out, status), ()) = tokio::join!(session, client, process);
        assert_eq!(outcome, Outcome::Exited(3));
        assert_eq!(out, b"hello");
        assert_eq!(
            status,
            Status::non_zero_exit(3, &cmd).encode(Protocol::V4).unwrap()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn output_held_open_after_exit_delays_the_status_only_so_long() {
        let (exit_tx, exit_rx) = tokio::sync::oneshot::channel();
        // A background child keeps stdout open: the process side is never dropped.
        let (io, _process_stdin, _process_stdout) = fake_process(exit_rx);
        exit_tx.send(0).unwrap();
        let (error, mut client_error) = duplex(1024);
        let streams = RemoteCommandStreams {
            stdin: None,
            stdout: Some(Box::new(tokio::io::sink())),
            stderr: None,
            error: Box::new(error),
            resize: None,
        };
        let started = tokio::time::Instant::now();
        let outcome = run_remote_command(
            streams,
            Protocol::V5,
            CommandKind::Attach,
            Box::pin(async move { Ok(io) }),
        )
        .await;
        assert_eq!(outcome, Outcome::Exited(0));
        assert_eq!(started.elapsed(), OUTPUT_DRAIN_TIMEOUT);
        let mut status = Vec::new();
        client_error.read_to_end(&mut status).await.unwrap();
        assert_eq!(status, br#"{"metadata":{},"status":"Success"}"#);
    }

    #[tokio::test]
    async fn forwarding_over_plain_byte_streams() {
        let (target, mut pod) = duplex(64);
        let (data, mut client) = duplex(64);
        let (error, mut client_error) = duplex(1024);
        let forward = forward_port(Ok(Box::new(target)), "sandbox", 80, data, Box::new(error));
        let peers = async {
            client.write_all(b"request").await.unwrap();
            let mut buf = [0u8; 7];
            pod.read_exact(&mut buf).await.unwrap();
            pod.write_all(b"response").await.unwrap();
            drop(pod);
            let mut out = Vec::new();
            client.read_to_end(&mut out).await.unwrap();
            let mut err = Vec::new();
            client_error.read_to_end(&mut err).await.unwrap();
            (buf, out, err)
        };
        let ((), (request, response, err)) = tokio::join!(forward, peers);
        assert_eq!(&request, b"request");
        assert_eq!(response, b"response");
        assert!(err.is_empty());

        let (error, mut client_error) = duplex(1024);
        forward_port(
            Err(BackendError::SandboxNotFound("gone".into())),
            "gone",
            8080,
            duplex(8).0,
            Box::new(error),
        )
        .await;
        let mut err = String::new();
        client_error.read_to_string(&mut err).await.unwrap();
        assert_eq!(
            err,
            "error forwarding port 8080 to pod gone, uid : pod sandbox gone not found"
        );
    }
}
