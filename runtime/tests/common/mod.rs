//! Helpers of the root integration tests: a busybox rootfs, a base spec, stdio pipes, waiting
//! on pidfds, and the leftover checks run after every scenario.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use corral_runtime::{cgroups, container, exec};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
use serde_json::{Value, json};

/// Scenario result: the error says what differed.
pub type R = Result<(), String>;

/// A scenario function.
pub type Scenario = fn(&Test) -> R;

/// One scenario's tempdir, rootfs and cgroup path.
pub struct Test {
    pub dir: tempfile::TempDir,
    pub rootfs: PathBuf,
    pub cgroup: PathBuf,
}

pub fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

pub fn check(ok: bool, what: &str) -> R {
    if ok { Ok(()) } else { Err(what.to_owned()) }
}

pub fn check_eq<A, B>(got: &A, want: &B) -> R
where
    A: PartialEq<B> + std::fmt::Debug + ?Sized,
    B: std::fmt::Debug + ?Sized,
{
    if got == want {
        Ok(())
    } else {
        Err(format!("got {got:?}, want {want:?}"))
    }
}

impl Test {
    fn new(n: usize) -> Result<Test, String> {
        let dir = tempfile::Builder::new()
            .prefix("corral-rt-")
            .tempdir()
            .map_err(s)?;
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
            std::fs::create_dir_all(rootfs.join(d)).map_err(s)?;
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).map_err(s)?;
        let list = std::process::Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .map_err(s)?;
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
                    .map_err(s)?;
            }
        }
        let cgroup = PathBuf::from(format!("/corral-test-{}-{n}", std::process::id()));
        Ok(Test {
            dir,
            rootfs,
            cgroup,
        })
    }

    /// A runc-like default spec running `args`, with `extra` merged in (one level deep for
    /// `process`, `linux` and `root`).
    pub fn spec(&self, args: Value, extra: Value) -> oci_spec::runtime::Spec {
        let mut base = json!({
            "ociVersion": "1.0.2",
            "process": {"user": {"uid": 0, "gid": 0}, "args": args, "cwd": "/",
                        "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                 "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                 "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
                {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                 "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
                {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                 "options": ["nosuid", "noexec", "nodev"]},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs",
                 "options": ["nosuid", "noexec", "nodev", "ro"]},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                 "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
            ],
            "linux": {
                "cgroupsPath": self.cgroup,
                "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                               {"type": "uts"}, {"type": "mount"}],
                "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
                "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
            }
        });
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                match (b.get_mut(k).and_then(Value::as_object_mut), v.as_object()) {
                    (Some(bo), Some(vo)) => {
                        for (k2, v2) in vo {
                            bo.insert(k2.clone(), v2.clone());
                        }
                    }
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        serde_json::from_value(base).expect("spec")
    }

    /// Stdio whose stdout and stderr go to one pipe; returns its read end.
    pub fn stdio(&self) -> Result<(container::Stdio, OwnedFd), String> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(s)?;
        let stderr = w.try_clone().map_err(s)?;
        Ok((
            container::Stdio::Fds {
                stdin: None,
                stdout: w,
                stderr,
            },
            r,
        ))
    }

    /// Runs `args` as root (`PATH=/bin`) in the running container `target` and waits for it:
    /// its output, exit code, and whether it was born in the container's cgroup.
    pub fn exec(
        &self,
        target: &exec::Target,
        args: &[&str],
    ) -> Result<(String, i32, bool), String> {
        let process = serde_json::from_value(json!({
            "args": args, "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}))
        .map_err(s)?;
        let (stdio, r) = self.stdio()?;
        let spawned = exec::spawn(target, &process, stdio).map_err(|e| e.to_string())?;
        let out = read_all(r)?;
        let code = wait(spawned.pidfd.as_fd())?;
        Ok((out, code, spawned.born_in_cgroup))
    }

    /// Creates, starts and waits for a container; removes its cgroup. Output and exit code.
    pub fn run(&self, spec: &oci_spec::runtime::Spec) -> Result<(String, i32), String> {
        let (stdio, r) = self.stdio()?;
        let mut c =
            container::create(spec, self.dir.path(), "test", stdio).map_err(|e| e.to_string())?;
        if let Err(e) = c.start() {
            return Err(format!("start: {e}"));
        }
        let out = read_all(r)?;
        let code = wait(c.pidfd())?;
        cgroups::kill_and_remove(&self.cgroup).map_err(|e| e.to_string())?;
        Ok((out, code))
    }
}

pub fn read_all(fd: OwnedFd) -> Result<String, String> {
    let mut out = String::new();
    std::fs::File::from(fd)
        .read_to_string(&mut out)
        .map_err(s)?;
    Ok(out)
}

/// Reaps the process behind `pidfd`: its exit code, or 128 + signal.
pub fn wait(pidfd: BorrowedFd<'_>) -> Result<i32, String> {
    match waitid(Id::PIDFd(pidfd), WaitPidFlag::WEXITED).map_err(s)? {
        WaitStatus::Exited(_, code) => Ok(code),
        WaitStatus::Signaled(_, sig, _) => Ok(128 + sig as i32),
        other => Err(format!("unexpected wait status {other:?}")),
    }
}

/// The test process has no child left (nothing leaked, nothing unreaped).
pub fn no_children() -> R {
    match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        Err(nix::errno::Errno::ECHILD) => Ok(()),
        other => Err(format!("a child process is left: {other:?}")),
    }
}

fn leftovers(t: &Test) -> R {
    let rel = t.cgroup.strip_prefix("/").map_err(s)?;
    for entry in std::fs::read_dir("/sys/fs/cgroup").map_err(s)?.flatten() {
        let p = entry.path().join(rel);
        check(!p.exists(), &format!("cgroup left: {}", p.display()))?;
    }
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        check(
            !Path::new("/sys/fs/cgroup").join(rel).exists(),
            "cgroup left",
        )?;
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(s)?;
    let dir = t.dir.path().to_string_lossy().into_owned();
    if let Some(line) = mountinfo.lines().find(|l| l.contains(&dir)) {
        return Err(format!("mount left: {line}"));
    }
    no_children()
}

/// Runs the scenarios one by one (as root), each with its own tempdir and cgroup path, then
/// checks for leftovers; exits 1 if any failed.
pub fn run_all(scenarios: &[(&str, Scenario)]) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // cargo-nextest lists tests with `--list --format terse` and runs each with `--exact NAME`.
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            for (name, _) in scenarios {
                println!("{name}: test");
            }
        }
        return;
    }
    let exact = args.iter().any(|a| a == "--exact");
    if !nix::unistd::geteuid().is_root() {
        eprintln!("root integration tests skipped: not root");
        return;
    }
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let mut failed = 0;
    for (n, (name, f)) in scenarios.iter().enumerate() {
        if filter
            .as_deref()
            .is_some_and(|f| if exact { name != &f } else { !name.contains(f) })
        {
            continue;
        }
        let t = match Test::new(n) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{name}: setup failed: {e}");
                failed += 1;
                continue;
            }
        };
        let result = f(&t);
        let _ = cgroups::kill_and_remove(&t.cgroup);
        let result = result.and_then(|()| leftovers(&t));
        match result {
            Ok(()) => eprintln!("test {name} ... ok"),
            Err(e) => {
                eprintln!("test {name} ... FAILED: {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} scenario(s) failed");
        std::process::exit(1);
    }
}
