//! The two forked processes of `create`: the intermediate (joins and unshares namespaces,
//! creates the init as a sibling) and the init (sets everything up, waits for "start",
//! `execve`s).

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sched::CloneFlags;

use super::ChildStdio;
use super::mounts;
use super::plan::Plan;
use crate::report::{ChildError, ChildResult, Msg, Step, send};
use crate::sys::{self, Forked, KeepFds};

/// Descriptors the children use.
pub(super) struct ChildFds<'a> {
    pub status: &'a OwnedFd,
    pub sync: &'a OwnedFd,
    pub start: &'a OwnedFd,
    pub stdio: &'a ChildStdio,
    /// What the intermediate keeps open (namespace files, the init's).
    pub keep_intermediate: &'a KeepFds,
    /// What the init is born with (pipes, stdio, mount sources).
    pub keep_init: &'a KeepFds,
    /// What the init keeps once its stdio and mounts are in place (the pipes).
    pub keep_exec: &'a KeepFds,
}

/// The intermediate process: waits until the caller put it in the cgroup, joins and creates
/// namespaces, clones the init as a child of the caller, reports the init's PID and exits.
pub(super) fn intermediate(plan: &Plan, fds: &ChildFds<'_>) -> ! {
    sys::run_child(|| match intermediate_steps(plan, fds) {
        Ok(()) => 0,
        Err(e) => {
            send(fds.status, &Msg::Failed(e));
            1
        }
    })
}

fn intermediate_steps(plan: &Plan, fds: &ChildFds<'_>) -> ChildResult {
    // Non-dumpable from the start (the init inherits it): a process of the pod that can see
    // the init before its execve cannot open its /proc files or ptrace it.
    sys::set_non_dumpable().step("PR_SET_DUMPABLE")?;
    fds.keep_intermediate
        .close_others()
        .step("close inherited descriptors")?;
    let mut b = [0u8; 1];
    match nix::unistd::read(fds.sync.as_raw_fd(), &mut b) {
        Ok(1) => {}
        Ok(_) => return Err(Errno::ECANCELED).step("wait for cgroup"),
        Err(e) => return Err(e).step("wait for cgroup"),
    }
    // The pod's namespaces first: they may belong to the initial user namespace, which this
    // process can no longer join into once it is in a child user namespace.
    for (fd, flag) in &plan.join {
        nix::sched::setns(fd, *flag).step_with(|| format!("setns {flag:?}"))?;
    }
    // Then the user namespace, so every namespace unshared below belongs to it (mounting proc
    // and sysfs inside needs that).
    if let Some(u) = &plan.userns {
        nix::sched::setns(&u.fd, CloneFlags::CLONE_NEWUSER).step("setns user")?;
        crate::userns::enter_checked(u.expect.as_ref())?;
    }
    nix::sched::unshare(plan.unshare).step("unshare")?;
    fds.keep_init.close_others().step("close namespace files")?;
    match sys::clone_parent().step("clone init")? {
        Forked::Child => init(plan, fds),
        Forked::Parent(pid) => {
            send(fds.status, &Msg::Pid(pid.as_raw()));
            Ok(())
        }
    }
}

/// The container's init.
fn init(plan: &Plan, fds: &ChildFds<'_>) -> ! {
    sys::run_child(|| {
        if let Err(e) = init_steps(plan, fds) {
            send(fds.status, &Msg::Failed(e));
            return 1;
        }
        send(fds.status, &Msg::Ready);
        let mut b = [0u8; 1];
        loop {
            match nix::unistd::read(fds.start.as_raw_fd(), &mut b) {
                Ok(1) => break,
                Err(Errno::EINTR) => continue,
                // The caller dropped the container without starting it.
                _ => return 0,
            }
        }
        plan.process.exec_with(fds.status, || start_hooks(plan))
    })
}

/// Before `pivot_root`, when the spec has create-time hooks: lets the caller run prestart and
/// createRuntime (it answers on the start pipe), then runs createContainer here, in the
/// container's namespaces. A failed hook is reported as such and ends the process.
fn create_hooks(plan: &Plan, fds: &ChildFds<'_>) -> ChildResult {
    if !plan.hooks.any_at_create() {
        return Ok(());
    }
    send(fds.status, &Msg::Hooks);
    let mut b = [0u8; 1];
    loop {
        match nix::unistd::read(fds.start.as_raw_fd(), &mut b) {
            Ok(1) => break,
            Err(Errno::EINTR) => continue,
            // The caller gave up (a createRuntime hook failed): nothing to report.
            _ => sys::exit(1),
        }
    }
    if plan.hooks.create_container.is_empty() {
        return Ok(());
    }
    let state = plan
        .state
        .json("creating", Some(nix::unistd::getpid().as_raw()));
    let run = crate::hooks::run_all(
        crate::hooks::Kind::CreateContainer,
        &plan.hooks.create_container,
        &state,
        plan.bundle_c.as_deref(),
    );
    if let Err(f) = run {
        send(fds.status, &Msg::Hook(f));
        sys::exit(1);
    }
    Ok(())
}

/// After the start signal, confined like the process it precedes: the startContainer hooks
/// (paths resolve in the container). A failure becomes the init's report instead of `execve`.
fn start_hooks(plan: &Plan) -> Option<Msg> {
    if plan.hooks.start_container.is_empty() {
        return None;
    }
    let state = plan
        .state
        .json("created", Some(nix::unistd::getpid().as_raw()));
    crate::hooks::run_all(
        crate::hooks::Kind::StartContainer,
        &plan.hooks.start_container,
        &state,
        None,
    )
    .err()
    .map(Msg::Hook)
}

fn init_steps(plan: &Plan, fds: &ChildFds<'_>) -> ChildResult {
    // A terminal is made by `setup_rootfs`, once the container's devpts is mounted.
    if let ChildStdio::Fds(stdio) = fds.stdio {
        plan.process.setup_stdio(*stdio)?;
    }
    mounts::setup_rootfs(plan, fds.stdio, || create_hooks(plan, fds))?;
    if let Some(h) = &plan.hostname {
        nix::unistd::sethostname(h).step("sethostname")?;
    }
    if let Some(d) = &plan.domainname {
        std::fs::write("/proc/sys/kernel/domainname", d).step("set domainname")?;
    }
    for (path, value) in &plan.sysctls {
        std::fs::write(path, value).map_err(|e| ChildError {
            step: format!("write {}", path.display()),
            errno: e.raw_os_error().map(Errno::from_raw).unwrap_or(Errno::EIO),
        })?;
    }
    mounts::finalize(plan)?;
    mounts::create_cwd(plan.process.cwd())?;
    // Stdio is in place and every mount made: only the status and start pipes stay.
    fds.keep_exec.close_others().step("close descriptors")?;
    plan.process.apply_rlimits()?;
    plan.process.apply_credentials()?;
    plan.process.chdir()
}
