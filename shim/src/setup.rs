//! The shim's process-wide setup, done once, before anything else runs.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::sys::prctl;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::unistd::{chdir, dup2, setsid};

use crate::server::Error;

/// Signals the shim takes through its signalfd instead of their default action: it must not
/// die with the daemon's process group or a terminal, and it reaps children itself. Container
/// processes get an empty mask back before they exec (corral-runtime resets it).
pub fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGPIPE,
    ] {
        set.add(sig);
    }
    set
}

/// Detaches: new session, child subreaper, non-dumpable, `/` as cwd, stdin from `/dev/null`, stdout and
/// stderr appended to `<dir>/shim.log`, and every inherited descriptor closed except `keep`.
pub fn detach(dir: &Path, extra: &[RawFd]) -> Result<(), Error> {
    setsid().map_err(|e| Error::sys("setsid", e))?;
    prctl::set_child_subreaper(true).map_err(|e| Error::sys("PR_SET_CHILD_SUBREAPER", e))?;
    // Nothing of the shim (descriptors, memory, environment) is for the pod's processes, even
    // one that shares the host PID namespace and runs as root.
    prctl::set_dumpable(false).map_err(|e| Error::sys("PR_SET_DUMPABLE", e))?;
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled_signals()), None)
        .map_err(|e| Error::sys("sigprocmask", e))?;
    let null = File::open("/dev/null").map_err(|e| Error::io("/dev/null", e))?;
    let log_path = dir.join("shim.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| Error::io(&log_path, e))?;
    for (from, to) in [(&null, 0), (&log, 1), (&log, 2)] {
        dup2(from.as_raw_fd(), to).map_err(|e| Error::sys("dup2", e))?;
    }
    let mut keep = vec![0, 1, 2, null.as_raw_fd(), log.as_raw_fd()];
    keep.extend_from_slice(extra);
    close_inherited(&keep)?;
    chdir("/").map_err(|e| Error::sys("chdir /", e))?;
    Ok(())
}

/// Takes the pod directory's `shim.lock` (see [`corral_shim::proto::LOCK_FILE`]); fails when
/// another shim holds it.
pub fn life_lock(dir: &Path) -> Result<nix::fcntl::Flock<File>, Error> {
    let path = dir.join(corral_shim::proto::LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| Error::sys("flock shim.lock (another shim serves this pod?)", e))
}

/// Closes every descriptor not in `keep` (the daemon's sockets, its log files, ...).
fn close_inherited(keep: &[RawFd]) -> Result<(), Error> {
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| Error::io("/proc/self/fd", e))?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    for fd in fds {
        if !keep.contains(&fd) {
            // The directory iterator's own descriptor is already closed: EBADF is fine.
            let _ = nix::unistd::close(fd);
        }
    }
    Ok(())
}
