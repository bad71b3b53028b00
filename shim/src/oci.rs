//! Containers of a pod on an OCI runtime handler: the shim drives the runtime's command line
//! (runc's, which crun, runsc and Kata's shim-less runtimes share) instead of the built-in
//! runtime, the way containerd's runc shim and CRI-O's conmon do.
//!
//! - The runtime keeps its state in `<pod-state-dir>/oci` (`--root`) and logs JSON lines to
//!   `<pod-state-dir>/oci.log` (`--log`), whose error lines become the error messages.
//! - `create`, `exec --detach` and `restore --detach` return once the process exists; the
//!   runtime's own process then exits and the new one is re-parented to the shim (a child
//!   subreaper), which reaps it through a pidfd like a container of the built-in runtime. The pid
//!   comes from `--pid-file`.
//! - Without a terminal the runtime is given the container's pipes as its stdio and hands them
//!   on; with one, the runtime sends the terminal's controller side to a console socket the shim
//!   listens on (`--console-socket`), bound by a relative name in the directory the runtime runs
//!   in, since a socket path has at most 107 bytes.
//! - Each command runs blocking (the shim is single-threaded, as it is for hooks) with a time
//!   limit, after which it is killed.

use std::io::{BufRead, Read, Seek};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio as CmdStdio};
use std::time::{Duration, Instant};

use corral_runtime::container::Stdio;
use corral_runtime::exec::Spawned;
use corral_shim::proto::OciRuntime;
use nix::unistd::Pid;
use oci_spec::runtime::Process;

use crate::server::Error;

/// How long `create`, `start`, `exec`, `restore` and `delete` may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Most bytes of the runtime's log read back for an error message.
const MAX_ERROR: usize = 4096;
/// Most bytes read from the end of CRIU's log for an error message.
const MAX_CRIU_LOG: u64 = 64 << 10;
/// The console socket's name in the directory the runtime runs in.
const CONSOLE_SOCKET: &str = "console.sock";

/// The pod's OCI runtime.
pub struct Runtime {
    config: OciRuntime,
    /// The pod's state directory.
    dir: PathBuf,
    root: PathBuf,
    log: PathBuf,
    pid_file: PathBuf,
}

/// What a command's stdio is.
enum Io {
    /// These descriptors (None: `/dev/null`).
    Fds {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// A terminal, sent to the console socket bound as `name` in the command's directory.
    Console {
        listener: UnixListener,
        path: PathBuf,
    },
}

impl Runtime {
    pub fn new(config: OciRuntime, dir: &Path) -> Runtime {
        Runtime {
            config,
            dir: dir.to_path_buf(),
            root: dir.join("oci"),
            log: dir.join("oci.log"),
            pid_file: dir.join("oci.pid"),
        }
    }

    /// `create`: the container's init exists, waiting for `start`.
    pub fn create(&self, id: &str, bundle: &Path, stdio: Stdio) -> Result<Spawned, Error> {
        let io = Io::new(stdio, bundle)?;
        let mut args = vec!["create".into(), "--bundle".into(), bundle.into()];
        args.extend(io.console_args());
        args.extend(["--pid-file".into(), self.pid_file.clone().into(), id.into()]);
        let made = self.spawn_detached(&args, io, bundle);
        if made.is_err() {
            self.delete(id);
        }
        made
    }

    /// `start`: the init execs the entrypoint.
    pub fn start(&self, id: &str) -> Result<(), Error> {
        self.run(&["start".into(), id.into()], COMMAND_TIMEOUT)
    }

    /// `exec --detach`: `process` (already confined like the init) runs in the container.
    pub fn exec(&self, id: &str, process: &Process, stdio: Stdio) -> Result<Spawned, Error> {
        let spec_path = self.dir.join("oci-exec.json");
        let body = serde_json::to_vec(process)
            .map_err(|e| Error::Protocol(format!("encoding the exec process: {e}")))?;
        // Left only by a shim killed mid-exec, which took its pod with it; never followed.
        let _ = std::fs::remove_file(&spec_path);
        corral_fsutil::mode::write_new(&spec_path, &body, 0o600)
            .map_err(|e| Error::io(&spec_path, e))?;
        let io = Io::new(stdio, &self.dir)?;
        let mut args = vec!["exec".into(), "--detach".into()];
        args.extend(io.console_args());
        args.extend([
            "--process".into(),
            spec_path.clone().into(),
            "--pid-file".into(),
            self.pid_file.clone().into(),
            id.into(),
        ]);
        let dir = self.dir.clone();
        let spawned = self.spawn_detached(&args, io, &dir);
        let _ = std::fs::remove_file(&spec_path);
        spawned
    }

    /// `checkpoint`: CRIU's images of the container go to `images`, its logs to `work`.
    pub fn checkpoint(
        &self,
        id: &str,
        images: &Path,
        work: &Path,
        leave_running: bool,
        timeout: Option<Duration>,
    ) -> Result<(), Error> {
        let mut args: Vec<std::ffi::OsString> = vec![
            "checkpoint".into(),
            "--image-path".into(),
            images.into(),
            "--work-path".into(),
            work.into(),
        ];
        if leave_running {
            args.push("--leave-running".into());
        }
        args.push(id.into());
        self.run(&args, timeout.unwrap_or(Duration::MAX))
            .map_err(|e| with_criu_log(e, &work.join("dump.log")))
    }

    /// `restore --detach`: the container `id` of `bundle` comes back from CRIU's images.
    pub fn restore(
        &self,
        id: &str,
        bundle: &Path,
        images: &Path,
        work: &Path,
        stdio: Stdio,
    ) -> Result<Spawned, Error> {
        let io = Io::new(stdio, bundle)?;
        let mut args: Vec<std::ffi::OsString> = vec![
            "restore".into(),
            "--detach".into(),
            "--bundle".into(),
            bundle.into(),
            "--image-path".into(),
            images.into(),
            "--work-path".into(),
            work.into(),
        ];
        args.extend(io.console_args());
        args.extend(["--pid-file".into(), self.pid_file.clone().into(), id.into()]);
        let made = self
            .spawn_detached(&args, io, bundle)
            .map_err(|e| with_criu_log(e, &work.join("restore.log")));
        if made.is_err() {
            self.delete(id);
        }
        made
    }

    /// `delete --force`: the runtime forgets the container (its state and cgroup), killing
    /// what is left of it. A container it does not know is fine.
    pub fn delete(&self, id: &str) {
        if let Err(e) = self.run(
            &["delete".into(), "--force".into(), id.into()],
            COMMAND_TIMEOUT,
        ) && !e.to_string().contains("does not exist")
        {
            crate::log!("{}: deleting container {id}: {e}", self.config.handler);
        }
    }

    fn command(&self, args: &[std::ffi::OsString]) -> Command {
        let mut cmd = Command::new(&self.config.path);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&self.log)
            .arg("--log-format")
            .arg("json");
        // Only runtimes that take `--criu` get it (the daemon checked), and only for the
        // commands that run CRIU.
        let first = args.first().and_then(|a| a.to_str());
        if let Some(criu) = &self.config.criu
            && matches!(first, Some("checkpoint" | "restore"))
        {
            cmd.arg("--criu").arg(criu);
        }
        cmd.args(args).current_dir(&self.dir);
        cmd
    }

    /// Runs a command with no stdio of the container's; its error is the log's.
    fn run(&self, args: &[std::ffi::OsString], timeout: Duration) -> Result<(), Error> {
        let mut cmd = self.command(args);
        cmd.stdin(CmdStdio::null())
            .stdout(CmdStdio::null())
            .stderr(CmdStdio::piped());
        let from = self.log_len();
        let child = cmd.spawn().map_err(|e| Error::io(&self.config.path, e))?;
        self.finish(args, child, timeout, from)
    }

    /// Runs `create`, `exec` or `restore` (detached) with `io`, in `cwd`, and takes its process.
    fn spawn_detached(
        &self,
        args: &[std::ffi::OsString],
        io: Io,
        cwd: &Path,
    ) -> Result<Spawned, Error> {
        let _ = std::fs::remove_file(&self.pid_file);
        let mut cmd = self.command(args);
        cmd.current_dir(cwd);
        let console = match io {
            Io::Fds {
                stdin,
                stdout,
                stderr,
            } => {
                cmd.stdin(stdin.map_or_else(CmdStdio::null, CmdStdio::from))
                    .stdout(CmdStdio::from(stdout))
                    .stderr(CmdStdio::from(stderr));
                None
            }
            Io::Console { listener, path } => {
                cmd.stdin(CmdStdio::null())
                    .stdout(CmdStdio::null())
                    .stderr(CmdStdio::piped());
                Some((listener, path))
            }
        };
        let from = self.log_len();
        let child = cmd.spawn();
        // The parent's copies of the container's pipe ends go with `cmd`.
        drop(cmd);
        let child = child.map_err(|e| Error::io(&self.config.path, e));
        let finished = child.and_then(|c| self.finish(args, c, COMMAND_TIMEOUT, from));
        let terminal = match (&finished, &console) {
            (Ok(()), Some((listener, _))) => Some(receive_console(listener)?),
            _ => None,
        };
        if let Some((_, path)) = &console {
            let _ = std::fs::remove_file(path);
        }
        finished?;
        let pid = self.read_pid()?;
        let pidfd = corral_runtime::pidfd_open(Pid::from_raw(pid))
            .map_err(|e| Error::sys("pidfd_open of the runtime's process", e))?;
        Ok(Spawned {
            pid,
            pidfd,
            terminal,
            // The runtime placed it; whether it was born there is the runtime's business.
            born_in_cgroup: false,
        })
    }

    /// Waits for `child` (killing it after `timeout`) and turns a failure into an error naming
    /// the command and what the runtime logged since `from`.
    fn finish(
        &self,
        args: &[std::ffi::OsString],
        mut child: Child,
        timeout: Duration,
        from: u64,
    ) -> Result<(), Error> {
        let what = args
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .unwrap_or_default();
        let status = wait_with_timeout(&mut child, timeout);
        let mut stderr = String::new();
        if let Some(mut err) = child.stderr.take() {
            let _ = (&mut err)
                .take(MAX_ERROR as u64)
                .read_to_string(&mut stderr);
        }
        let status = match status {
            Ok(Some(status)) => status,
            Ok(None) => {
                return Err(Error::TimedOut(format!(
                    "{} {what} did not finish within {timeout:?} and was killed",
                    self.config.handler
                )));
            }
            Err(e) => return Err(Error::io(&self.config.path, e)),
        };
        if status.success() {
            return Ok(());
        }
        let logged = self.log_errors(from);
        let why = [logged.trim(), stderr.trim()]
            .into_iter()
            .find(|s| !s.is_empty())
            .map_or_else(|| status.to_string(), str::to_owned);
        Err(Error::Oci(format!(
            "{} {what} failed: {why}",
            self.config.handler
        )))
    }

    fn log_len(&self) -> u64 {
        std::fs::metadata(&self.log).map_or(0, |m| m.len())
    }

    /// The `msg` of each error line the runtime logged after byte `from`, the last ones first
    /// kept when there are too many.
    fn log_errors(&self, from: u64) -> String {
        let Ok(mut file) = std::fs::File::open(&self.log) else {
            return String::new();
        };
        if file.seek(std::io::SeekFrom::Start(from)).is_err() {
            return String::new();
        }
        let mut out = Vec::new();
        for line in std::io::BufReader::new(file.take(1 << 20)).lines() {
            let Ok(line) = line else { break };
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let level = entry.get("level").and_then(|l| l.as_str()).unwrap_or("");
            if matches!(level, "error" | "fatal" | "panic")
                && let Some(msg) = entry.get("msg").and_then(|m| m.as_str())
            {
                out.push(msg.to_owned());
            }
        }
        let mut text = out.join("; ");
        if text.len() > MAX_ERROR {
            let mut cut = text.len() - MAX_ERROR;
            while !text.is_char_boundary(cut) {
                cut += 1;
            }
            text = text.split_off(cut);
        }
        text
    }

    fn read_pid(&self) -> Result<i32, Error> {
        let text =
            std::fs::read_to_string(&self.pid_file).map_err(|e| Error::io(&self.pid_file, e))?;
        let _ = std::fs::remove_file(&self.pid_file);
        text.trim()
            .parse::<i32>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                Error::Oci(format!(
                    "{}: the runtime wrote {text:?} as the pid",
                    self.config.handler
                ))
            })
    }
}

impl Io {
    /// `stdio` for a command that runs in `cwd`.
    fn new(stdio: Stdio, cwd: &Path) -> Result<Io, Error> {
        match stdio {
            Stdio::Fds {
                stdin,
                stdout,
                stderr,
            } => Ok(Io::Fds {
                stdin,
                stdout,
                stderr,
            }),
            Stdio::Terminal => Ok(Io::Console {
                listener: crate::server::bind_in(cwd, CONSOLE_SOCKET)?,
                path: cwd.join(CONSOLE_SOCKET),
            }),
        }
    }

    fn console_args(&self) -> Vec<std::ffi::OsString> {
        match self {
            Io::Fds { .. } => Vec::new(),
            Io::Console { .. } => vec!["--console-socket".into(), CONSOLE_SOCKET.into()],
        }
    }
}

/// The terminal the runtime sent to the console socket (it has exited, so its message waits).
fn receive_console(listener: &UnixListener) -> Result<OwnedFd, Error> {
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("console socket", e))?;
    let (stream, _) = listener.accept().map_err(|e| {
        Error::Oci(format!(
            "the runtime sent no terminal to its console socket: {e}"
        ))
    })?;
    let fd = OwnedFd::from(stream);
    Ok(corral_runtime::receive_terminal(&fd)?)
}

/// Waits for `child`, at most `timeout`; None when it was killed for taking longer.
fn wait_with_timeout(child: &mut Child, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now().checked_add(timeout);
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// `error` with the last error lines of CRIU's log at `log`, when there is one.
fn with_criu_log(error: Error, log: &Path) -> Error {
    if matches!(error, Error::TimedOut(_)) {
        return error;
    }
    // Its end: a restore's log runs to megabytes, and the errors come last.
    let Ok(mut file) = std::fs::File::open(log) else {
        return error;
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let mut bytes = Vec::new();
    if file
        .seek(std::io::SeekFrom::Start(len.saturating_sub(MAX_CRIU_LOG)))
        .and_then(|_| file.take(MAX_CRIU_LOG).read_to_end(&mut bytes))
        .is_err()
    {
        return error;
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("Error")).collect();
    if lines.is_empty() {
        return error;
    }
    let tail = lines[lines.len().saturating_sub(5)..].join("; ");
    Error::Oci(format!("{error} (CRIU: {tail})"))
}
