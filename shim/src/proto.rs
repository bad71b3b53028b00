//! The daemon ↔ shim protocol: one request and one response per connection on the shim's Unix
//! socket, each a frame of a 4-byte big-endian length followed by that many bytes of JSON.
//!
//! The daemon opens a fresh connection per request (cheap on a Unix socket), so a request that
//! waits (`Wait`, `Exec`) never holds up another.

use std::io::{Read, Write};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Largest frame either side accepts (ExecSync output is bounded well below it).
pub const MAX_FRAME: usize = 64 << 20;

/// Most bytes of stdout (and, separately, stderr) an `Exec` returns; the rest is dropped.
pub const MAX_EXEC_OUTPUT: usize = 16 << 20;

/// The file the daemon writes into the pod's state directory before starting the shim.
pub const CONFIG_FILE: &str = "shim.json";
/// The shim's socket in the pod's state directory.
pub const SOCKET_FILE: &str = "shim.sock";

/// Locked (`flock`, exclusive) by the shim from before it sets anything up until it exits: a
/// daemon that finds no socket yet can tell a shim still starting from none at all.
pub const LOCK_FILE: &str = "shim.lock";
/// The directory of exit records in the pod's state directory (`exits/<container-id>.json`).
pub const EXITS_DIR: &str = "exits";

/// What the shim sets up for its pod before it serves (read from [`CONFIG_FILE`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimConfig {
    pub pod_id: String,
    /// New network namespace (false: host network).
    pub network: bool,
    /// New IPC namespace (false: host IPC).
    pub ipc: bool,
    /// New UTS namespace with this hostname (None: host UTS).
    pub hostname: Option<String>,
    /// A pod-wide PID namespace (NamespaceMode POD).
    pub pid: bool,
    /// Namespaced sysctls set inside the pod's namespaces.
    pub sysctls: Vec<(String, String)>,
    /// A user namespace of the pod's own (NamespaceMode POD with mappings), pinned as
    /// `ns/user`; the pod's other namespaces are created inside it. None: the host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns: Option<corral_runtime::userns::IdMappings>,
    /// The pod's runtime handler runs its containers through this OCI runtime's command line
    /// (runc, crun, ...) instead of the built-in runtime. None: the built-in runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci_runtime: Option<OciRuntime>,
    /// The pod's cgroup (cgroupfs path), under which containers' cgroups go: the built-in
    /// runtime keeps a spare intermediate there (`corral_runtime::container::spare`). None:
    /// no spare.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
}

/// An external OCI runtime with runc's command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OciRuntime {
    /// The runtime handler's name (for messages).
    pub handler: String,
    /// The runtime's program.
    pub path: PathBuf,
    /// The CRIU program the runtime checkpoints and restores with (`--criu`); None: the
    /// runtime's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criu: Option<PathBuf>,
}

/// A request from the daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// The shim's view of its pod, for reconciliation after a daemon restart.
    Info,
    /// Creates a container from the OCI bundle at `bundle` (its `config.json`), leaving it
    /// ready to exec.
    Create(CreateRequest),
    /// Lets a created container exec its entrypoint.
    Start { id: String },
    /// Sends `signal` to the container's init process.
    Signal { id: String, signal: i32 },
    /// Answers once the container has exited, with its exit record.
    Wait { id: String },
    /// Runs a process in a running container and returns its output.
    Exec(ExecRequest),
    /// Runs a process in a running container for a streaming session: answers
    /// [`Response::Streams`] with the process's stdio descriptors attached, keeps the connection
    /// open and answers [`Response::Exited`] when the process ends. Closing the connection
    /// first kills the process.
    ExecStream(ExecStreamRequest),
    /// Attaches to a container's main process: answers [`Response::Streams`] with descriptors
    /// for its stdin (the shim's) and a copy of its output, then [`Response::Exited`] when the
    /// container exits. Closing the connection detaches.
    Attach(AttachRequest),
    /// Closes the shim's end of the container's stdin (after a `stdin_once` attach ends).
    CloseStdin { id: String },
    /// Closes and reopens the container's log file (after a log rotation).
    ReopenLog { id: String },
    /// Answers [`Response::LogDrops`] once the pod's report of lost log output has changed
    /// since report `since` (0: at once if any container has lost output): a run of losses
    /// began, output is written again, or a container exited while its log could not be
    /// written. The daemon keeps one of these waiting per pod.
    LogDrops { since: u64 },
    /// Checkpoints a running container with CRIU into `images_dir` (answers [`Response::Ok`]).
    /// Only a pod on an OCI runtime handler can; the built-in runtime answers
    /// `FailedPrecondition`.
    Checkpoint(CheckpointRequest),
    /// Forgets an exited (or never started) container, killing a created one.
    Remove { id: String },
    /// Stops the pod's PID holder and exits once every container is gone.
    Shutdown,
}

/// Creating a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateRequest {
    pub id: String,
    pub bundle: PathBuf,
    /// Absolute CRI log path; None: output is discarded.
    pub log_path: Option<PathBuf>,
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
    /// A CRIU image directory (a checkpoint's `checkpoint/`): Start restores the process tree
    /// from it instead of running the entrypoint. The bundle's rootfs already holds the
    /// checkpointed writable layer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<PathBuf>,
}

/// Checkpointing a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointRequest {
    pub id: String,
    /// Empty directory that receives the CRIU images.
    pub images_dir: PathBuf,
    /// Directory for CRIU's own logs (`dump.log`); kept by the caller for errors.
    pub work_dir: PathBuf,
    /// Keep the container running after the dump (CRI's default); false stops it.
    pub leave_running: bool,
    /// Kill the dump and answer `DeadlineExceeded` after this many milliseconds (0: never).
    #[serde(default)]
    pub timeout_ms: u64,
}

/// Running a process inside a container (ExecSync).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecRequest {
    pub id: String,
    /// The OCI process to run (`oci_spec::runtime::Process` as JSON).
    pub process: serde_json::Value,
    /// Kill the process and answer `DeadlineExceeded` after this many milliseconds (0: never).
    pub timeout_ms: u64,
}

/// A streaming exec.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecStreamRequest {
    pub id: String,
    /// The OCI process to run (`terminal` set for a TTY).
    pub process: serde_json::Value,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// Attaching to a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttachRequest {
    pub id: String,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// What a descriptor passed with [`Response::Streams`] is, in the order they are attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamFd {
    /// Write end: the process's stdin.
    Stdin,
    /// Read end: the process's stdout.
    Stdout,
    /// Read end: the process's stderr.
    Stderr,
    /// The terminal's controller side: read output, write input, set the window size.
    Pty,
}

/// How a container (or exec) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// Exit status, or 128 + signal when killed by a signal.
    pub exit_code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// Nanoseconds since the Unix epoch.
    pub finished_at: i64,
    /// The kernel's OOM killer killed a process of the container's cgroup.
    pub oom_killed: bool,
}

/// A container as the shim sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub id: String,
    pub pid: i32,
    /// Nanoseconds since the Unix epoch; None while created.
    pub started_at: Option<i64>,
    pub exit: Option<ExitRecord>,
}

/// A container whose log lost output (a full or failing log disk): the shim drops the output
/// its log cannot take, in whole records, and marks the log when it is written again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogDrops {
    pub id: String,
    /// The container's log file.
    pub path: PathBuf,
    /// Bytes of output lost since the container was created, in all.
    pub bytes: u64,
    /// While output is being lost: the error that began the run (None once written again).
    pub error: Option<String>,
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    InvalidArgument,
    FailedPrecondition,
    DeadlineExceeded,
    Internal,
}

/// The shim's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Ok,
    Info {
        shim_pid: i32,
        pid_holder: Option<i32>,
        containers: Vec<ContainerInfo>,
    },
    Created {
        pid: i32,
    },
    Started {
        pid: i32,
        started_at: i64,
    },
    Exited(ExitRecord),
    /// Descriptors for a streaming session, attached to the message (`SCM_RIGHTS`) in order.
    Streams {
        pid: i32,
        fds: Vec<StreamFd>,
    },
    ExecDone {
        exit_code: i32,
        #[serde(with = "b64")]
        stdout: Vec<u8>,
        #[serde(with = "b64")]
        stderr: Vec<u8>,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
    /// The pod's report of lost log output (see [`Request::LogDrops`]): report `seq`, with
    /// each container that has lost any.
    LogDrops {
        seq: u64,
        containers: Vec<LogDrops>,
    },
}

impl Response {
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Response {
        Response::Error {
            kind,
            message: message.into(),
        }
    }
}

/// A short path to the shim socket in `dir`, valid while the returned descriptor is open:
/// `/proc/self/fd/<n>/shim.sock` through an `O_PATH` descriptor of `dir`. Socket paths are
/// limited to 107 bytes, which a deep state directory plus a 64-digit pod id exceeds.
pub fn socket_path(dir: &std::path::Path) -> std::io::Result<(std::os::fd::OwnedFd, PathBuf)> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let fd: std::os::fd::OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)?
        .into();
    let path = PathBuf::from(format!("/proc/self/fd/{}/{SOCKET_FILE}", fd.as_raw_fd()));
    Ok((fd, path))
}

/// Frame errors.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("malformed message: {0}")]
    Json(#[from] serde_json::Error),
}

/// Encodes `msg` as one frame.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let body = serde_json::to_vec(msg)?;
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    let len = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge(body.len()))?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// The body length announced by a frame header, checked against [`MAX_FRAME`].
pub fn frame_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len));
    }
    Ok(len)
}

/// Reads one frame (blocking).
pub fn read_frame<T: for<'de> Deserialize<'de>>(r: &mut impl Read) -> Result<T, FrameError> {
    let mut header = [0u8; 4];
    r.read_exact(&mut header)?;
    let mut body = vec![0u8; frame_len(header)?];
    r.read_exact(&mut body)?;
    Ok(serde_json::from_slice(&body)?)
}

/// Writes one frame (blocking).
pub fn write_frame<T: Serialize>(w: &mut impl Write, msg: &T) -> Result<(), FrameError> {
    w.write_all(&encode(msg)?)?;
    Ok(())
}

/// Most descriptors one message carries.
pub const MAX_FDS: usize = 4;

/// Writes one frame on a Unix socket with `fds` attached to its first bytes (blocking).
pub fn send_with_fds<T: Serialize>(
    sock: &std::os::unix::net::UnixStream,
    msg: &T,
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> Result<(), FrameError> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    use std::os::fd::AsRawFd;
    let frame = encode(msg)?;
    let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsgs = [ControlMessage::ScmRights(&raw)];
    let iov = [std::io::IoSlice::new(&frame)];
    let sent = loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => break other.map_err(std::io::Error::from)?,
        }
    };
    // The descriptors went with the first bytes; the rest (if any) is plain data.
    let mut writer = sock;
    writer.write_all(&frame[sent..])?;
    Ok(())
}

/// Splits what `recvmsg` delivered: the data bytes and the descriptors of any `SCM_RIGHTS`
/// control messages, owned (closed on drop).
#[allow(unsafe_code)]
pub fn take_fds(
    cmsgs: impl Iterator<Item = nix::sys::socket::ControlMessageOwned>,
) -> Vec<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let mut out = Vec::new();
    for c in cmsgs {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel just installed `fd` in this process for this message;
                // nothing else owns it.
                out.push(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    out
}

/// Reads one frame from a Unix socket, with the descriptors attached to it (blocking). Reads
/// nothing past the frame: the descriptors come with the 4-byte header, the body is read
/// exactly.
pub fn recv_with_fds<T: for<'de> Deserialize<'de>>(
    sock: &std::os::unix::net::UnixStream,
) -> Result<(T, Vec<std::os::fd::OwnedFd>), FrameError> {
    use nix::sys::socket::{MsgFlags, recvmsg};
    use std::os::fd::AsRawFd;
    let mut header = [0u8; 4];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; MAX_FDS]);
    let (n, fds) = loop {
        let mut iov = [std::io::IoSliceMut::new(&mut header)];
        let flags = MsgFlags::MSG_CMSG_CLOEXEC;
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), flags) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(std::io::Error::from(e).into()),
            Ok(msg) => {
                let fds = take_fds(msg.cmsgs().map_err(std::io::Error::from)?);
                break (msg.bytes, fds);
            }
        }
    };
    if n == 0 {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    let mut reader = sock;
    reader.read_exact(&mut header[n..])?;
    let mut body = vec![0u8; frame_len(header)?];
    reader.read_exact(&mut body)?;
    Ok((serde_json::from_slice(&body)?, fds))
}

mod b64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let msg = Response::ExecDone {
            exit_code: 3,
            stdout: b"out\n\0\xff".to_vec(),
            stderr: Vec::new(),
        };
        let bytes = encode(&msg).unwrap();
        assert_eq!(
            u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize,
            bytes.len() - 4
        );
        let back: Response = read_frame(&mut &bytes[..]).unwrap();
        match back {
            Response::ExecDone {
                exit_code,
                stdout,
                stderr,
            } => {
                assert_eq!(exit_code, 3);
                assert_eq!(stdout, b"out\n\0\xff");
                assert!(stderr.is_empty());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn oversized_frames_are_refused_before_reading() {
        let header = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(matches!(frame_len(header), Err(FrameError::TooLarge(_))));
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(b"{}");
        let err = read_frame::<Request>(&mut &bytes[..]).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge(_)));
    }

    #[test]
    fn descriptors_travel_with_a_frame() {
        use std::io::{Read as _, Write as _};
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let (r, w) = std::os::unix::net::UnixStream::pair().unwrap();
        let msg = Response::Streams {
            pid: 7,
            fds: vec![StreamFd::Stdin],
        };
        send_with_fds(&a, &msg, &[std::os::fd::AsFd::as_fd(&w)]).unwrap();
        drop(w);
        let (back, fds): (Response, _) = recv_with_fds(&b).unwrap();
        assert!(matches!(back, Response::Streams { pid: 7, .. }));
        assert_eq!(fds.len(), 1);
        let mut passed = std::os::unix::net::UnixStream::from(fds.into_iter().next().unwrap());
        passed.write_all(b"hi").unwrap();
        drop(passed);
        let mut got = String::new();
        (&r).read_to_string(&mut got).unwrap();
        assert_eq!(got, "hi");
        // A second, plain frame on the same connection.
        write_frame(&mut &a, &Response::Ok).unwrap();
        let (ok, none): (Response, _) = recv_with_fds(&b).unwrap();
        assert!(matches!(ok, Response::Ok) && none.is_empty());
    }

    #[test]
    fn requests_are_tagged() {
        let json = serde_json::to_string(&Request::Start { id: "abc".into() }).unwrap();
        assert_eq!(json, r#"{"op":"start","id":"abc"}"#);
    }
}
