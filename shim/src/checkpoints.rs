//! Checkpoint and restore of a pod's containers, through the pod's OCI runtime (the built-in
//! runtime has no CRIU integration): `Checkpoint` runs the runtime's `checkpoint`; a container
//! created from a checkpoint has no process until its Start runs `restore --detach`
//! ([`Init::Restore`]), and a signal before that ends it as a killed one.

use std::os::fd::AsFd;
use std::time::{Duration, SystemTime};

use corral_shim::proto::{CheckpointRequest, ErrorKind, ExitRecord, Response};
use corral_shim::records;
use corral_shim::timefmt::unix_nanos;
use nix::sys::signal::Signal;

use crate::containers::{Init, not_found};
use crate::log;
use crate::server::{Error, Shim, Source};

impl Shim {
    /// Checkpoints a running container with CRIU, through the pod's OCI runtime.
    pub fn checkpoint(&mut self, req: CheckpointRequest) -> Response {
        let Some(ctr) = self.ctrs.get(&req.id) else {
            return not_found(&req.id);
        };
        let Some(rt) = &self.oci else {
            return Response::error(
                ErrorKind::FailedPrecondition,
                "the built-in runtime cannot checkpoint containers; run the pod with an OCI runtime handler (runc)",
            );
        };
        if !ctr.running() {
            let msg = format!("container {} is not running", req.id);
            return Response::error(ErrorKind::FailedPrecondition, msg);
        }
        let timeout = (req.timeout_ms > 0).then(|| Duration::from_millis(req.timeout_ms));
        match rt.checkpoint(
            &req.id,
            &req.images_dir,
            &req.work_dir,
            req.leave_running,
            timeout,
        ) {
            Ok(()) => {
                log!("checkpointed container {}", req.id);
                Response::Ok
            }
            Err(e @ Error::TimedOut(_)) => {
                Response::error(ErrorKind::DeadlineExceeded, e.to_string())
            }
            Err(e) => Response::error(ErrorKind::Internal, e.to_string()),
        }
    }

    /// Start of a container created from a checkpoint: the OCI runtime restores its process
    /// tree from the CRIU images.
    pub(crate) fn restore(&mut self, id: &str) -> Response {
        let (Some(rt), Some(ctr)) = (&self.oci, self.ctrs.get_mut(id)) else {
            return not_found(id);
        };
        let Some(Init::Restore {
            bundle,
            images,
            stdio,
        }) = ctr.process.take()
        else {
            return not_found(id);
        };
        let work = bundle.join("restore-work");
        if let Err(e) = corral_fsutil::mode::create_dir(&work, 0o700) {
            let msg = format!("{}: {e}", work.display());
            return Response::error(ErrorKind::Internal, msg);
        }
        let spawned = match rt.restore(id, &bundle, &images, &work, stdio) {
            Ok(s) => s,
            Err(e) => {
                // No second try: the stdio went to the failed restore.
                return Response::error(ErrorKind::FailedPrecondition, e.to_string());
            }
        };
        let token = match self
            .reg
            .add(spawned.pidfd.as_fd(), Source::Exit { ctr: id.to_owned() })
        {
            Ok(t) => t,
            Err(e) => return Response::error(ErrorKind::Internal, e.to_string()),
        };
        let started_at = unix_nanos(SystemTime::now());
        let Some(ctr) = self.ctrs.get_mut(id) else {
            return not_found(id);
        };
        ctr.target.init_pid = spawned.pid;
        ctr.exit_token = Some(token);
        ctr.process = Some(Init::Oci(spawned.pidfd));
        ctr.started_at = Some(started_at);
        log!("restored container {id} (pid {})", spawned.pid);
        Response::Started {
            pid: spawned.pid,
            started_at,
        }
    }

    /// Records the exit of a container that has no process (one waiting to be restored), as
    /// if `sig` had killed it, and answers its waiters.
    pub(crate) fn end_unstarted(&mut self, id: &str, sig: Signal) {
        let Some(ctr) = self.ctrs.get_mut(id) else {
            return;
        };
        let record = ExitRecord {
            exit_code: 128 + sig as i32,
            signal: Some(sig as i32),
            finished_at: unix_nanos(SystemTime::now()),
            oom_killed: false,
        };
        ctr.exit = Some(record);
        ctr.process = None;
        log!("container {id} ended before its restore: {record:?}");
        if let Err(e) = records::write(&self.dir, id, &record) {
            log!("container {id}: writing the exit record: {e}");
        }
        let waiters = std::mem::take(&mut ctr.waiters);
        let attached = std::mem::take(&mut ctr.attached);
        for conn in waiters.into_iter().chain(attached) {
            self.respond(conn, Response::Exited(record));
        }
    }
}
