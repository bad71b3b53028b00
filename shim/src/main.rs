//! `corral-shim <pod-state-dir>`: started by corrald as a fresh program for one pod.
//!
//! The first process forks at once (it is single-threaded: nothing has run yet) and waits on a
//! pipe; the child becomes the shim: a session leader and child subreaper with its stdio on
//! `/dev/null` and `shim.log`, holding no inherited descriptor. It pins the pod's namespaces,
//! binds its socket, reports `ready <pid>` (or the error) through the pipe, and serves. The first
//! process prints what it was told and exits, so corrald's child is gone immediately and the
//! shim is re-parented away from the daemon.

mod checkpoints;
mod containers;
mod exec;
mod oci;
mod output;
mod server;
mod setup;
mod stop_signal;
mod streams;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;

use nix::fcntl::OFlag;
use nix::unistd::{ForkResult, fork, pipe2};

/// Writes one line to the shim's log (stderr, which is `shim.log` once detached). Never
/// `eprintln!`, which panics when the write fails: `shim.log` is on the state directory's file
/// system, which may be full, and a shim that died of it would take its pod with it. A line
/// that cannot be written is lost.
macro_rules! log {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "{} {}", corral_shim::timefmt::rfc3339_nano(
            corral_shim::timefmt::unix_nanos(std::time::SystemTime::now())), format_args!($($arg)*));
    }};
}
pub(crate) use log;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: corral-shim <pod-state-dir>");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    // Taken before the fork, so from the moment a shim process exists until the last one
    // exits the lock is held (see `proto::LOCK_FILE`): taken after it, a daemon that finds the
    // first process gone could look in between, see no shim, and leave the child serving.
    let life = match setup::life_lock(&dir) {
        Ok(lock) => lock,
        Err(e) => {
            eprintln!("corral-shim: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (rx, tx) = match pipe2(OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("corral-shim: pipe: {e}");
            return ExitCode::FAILURE;
        }
    };
    // SAFETY: nothing has started a thread yet: the process is single-threaded, so the child
    // may run any code.
    #[allow(unsafe_code)]
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => {
            drop(tx);
            // Not dropped: `Flock`'s drop unlocks, for the child too (the lock belongs to the
            // open file both share). The descriptor closes when this process exits.
            std::mem::forget(life);
            report(rx)
        }
        Ok(ForkResult::Child) => {
            drop(rx);
            run(dir, tx, life)
        }
        Err(e) => {
            eprintln!("corral-shim: fork: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The first process: relays the shim's verdict.
fn report(rx: OwnedFd) -> ExitCode {
    let mut text = String::new();
    let _ = std::fs::File::from(rx).read_to_string(&mut text);
    if text.starts_with("ready ") {
        print!("{text}");
        ExitCode::SUCCESS
    } else if text.is_empty() {
        eprintln!("corral-shim: the shim exited before it was ready (see shim.log)");
        ExitCode::FAILURE
    } else {
        eprint!("{text}");
        ExitCode::FAILURE
    }
}

/// The shim proper.
fn run(dir: PathBuf, tx: OwnedFd, life: nix::fcntl::Flock<std::fs::File>) -> ExitCode {
    let mut tx = std::fs::File::from(tx);
    let shim = match setup::detach(&dir, &[tx.as_raw_fd(), life.as_raw_fd()])
        .and_then(|()| server::Shim::new(dir))
    {
        Ok(shim) => shim,
        Err(e) => {
            log!("start failed: {e}");
            let _ = writeln!(tx, "{e}");
            return ExitCode::FAILURE;
        }
    };
    // A report nobody reads (EPIPE: SIGPIPE is blocked) means the first process died before
    // reading it, and the daemon saw a failed start: it will not call this shim, so it must
    // not stay. Written once the socket listens, so when the report is read but the first
    // process dies before printing it, the daemon's clean-up can still reach the socket.
    if writeln!(tx, "ready {}", std::process::id()).is_err() {
        log!("the ready report reached nobody (the first process is gone): exiting");
        shim.abandon();
        return ExitCode::FAILURE;
    }
    drop(tx);
    log!("serving pod {}", shim.pod_id());
    let served = shim.serve();
    drop(life);
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log!("event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}
