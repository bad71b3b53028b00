//! Root integration tests. `harness = false`: a single-threaded `main` runs the scenarios one
//! after the other, because the crate forks and must not be called from a multi-threaded
//! process. Each scenario builds a busybox rootfs in a tempdir and a unique cgroup path, and
//! checks afterwards that no cgroup directory and no mount under the tempdir is left.

mod common;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use common::*;
use corral_runtime::{Error, cgroups, container, exec, sandbox};
use serde_json::json;

fn echo_and_exit_code(t: &Test) -> R {
    let spec = t.spec(
        json!(["sh", "-c", "echo hello; echo err >&2; exit 3"]),
        json!({}),
    );
    let (out, code) = t.run(&spec)?;
    check_eq(&out, "hello\nerr\n")?;
    check_eq(&code, &3)
}

fn new_pid_namespace(t: &Test) -> R {
    let spec = t.spec(
        json!(["sh", "-c", "echo $$; hostname"]),
        json!({"hostname": "box"}),
    );
    let (out, code) = t.run(&spec)?;
    check_eq(&out, "1\nbox\n")?;
    check_eq(&code, &0)
}

fn path_lookup_and_env(t: &Test) -> R {
    let spec = t.spec(
        json!(["sh", "-c", "echo $FOO"]),
        json!({"process": {"env": ["PATH=/nowhere:/bin", "FOO=bar"]}}),
    );
    let (out, _) = t.run(&spec)?;
    check_eq(&out, "bar\n")
}

fn joined_pod_namespaces(t: &Test) -> R {
    let pins = t.dir.path().join("pins");
    let sysctls = [("net.ipv4.ip_forward".to_owned(), "1".to_owned())];
    let pinned = sandbox::pin_namespaces(
        &pins,
        &sandbox::PodNamespaces {
            network: true,
            ipc: true,
            hostname: Some("podhost"),
            sysctls: &sysctls,
            userns: None,
        },
    )
    .map_err(|e| e.to_string())?;
    let result = (|| {
        let ns = json!([
            {"type": "pid"}, {"type": "mount"},
            {"type": "network", "path": pinned.net.as_ref().ok_or("no net pin")?},
            {"type": "ipc", "path": pinned.ipc.as_ref().ok_or("no ipc pin")?},
            {"type": "uts", "path": pinned.uts.as_ref().ok_or("no uts pin")?},
        ]);
        let cmd = "hostname; cat /sys/class/net/lo/flags; cat /proc/sys/net/ipv4/ip_forward";
        let spec = t.spec(
            json!(["sh", "-c", cmd]),
            json!({"linux": {"namespaces": ns.clone()}}),
        );
        let (out, _) = t.run(&spec)?;
        check_eq(&out, "podhost\n0x9\n1\n")?;
        // A second container sees the same UTS namespace.
        let spec = t.spec(json!(["hostname"]), json!({"linux": {"namespaces": ns}}));
        let (out, _) = t.run(&spec)?;
        check_eq(&out, "podhost\n")
    })();
    sandbox::unpin_namespaces(&pins).map_err(|e| e.to_string())?;
    check(!pins.join("net").exists(), "net pin still exists")?;
    result
}

fn mounts(t: &Test) -> R {
    let host = t.dir.path().join("host");
    std::fs::create_dir_all(host.join("data")).map_err(s)?;
    std::fs::write(host.join("data/file"), "data\n").map_err(s)?;
    std::os::unix::fs::symlink(host.join("data"), host.join("data-link")).map_err(s)?;
    // The image has /escape -> <host>/outside (absolute host path: must resolve in the rootfs).
    let outside = host.join("outside");
    std::fs::create_dir_all(&outside).map_err(s)?;
    std::os::unix::fs::symlink(&outside, t.rootfs.join("escape")).map_err(s)?;
    let extra = json!([
        {"destination": "/ro", "type": "bind", "source": host.join("data"), "options": ["rbind", "ro"]},
        {"destination": "/via-link", "type": "bind", "source": host.join("data-link"), "options": ["bind"]},
        {"destination": "/escape/mnt", "type": "bind", "source": host.join("data"), "options": ["bind", "rprivate"]},
        {"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["mode=750", "size=65536k"]},
    ]);
    let cmd = "cat /ro/file; touch /ro/x 2>/dev/null && echo writable; cat /via-link/file; \
               stat -c %a /scratch; cat /escape/mnt/file; echo $(readlink /dev/ptmx) $(readlink /dev/fd)";
    let mut spec = t.spec(json!(["sh", "-c", cmd]), json!({}));
    append_mounts(&mut spec, extra);
    let (out, _) = t.run(&spec)?;
    check_eq(&out, "data\ndata\n750\ndata\npts/ptmx /proc/self/fd\n")?;
    check(
        !outside.join("mnt").exists(),
        "mount destination escaped the rootfs",
    )?;
    check(
        t.rootfs
            .join(outside.strip_prefix("/").map_err(s)?)
            .join("mnt")
            .is_dir(),
        "not created inside",
    )
}

fn masked_and_readonly(t: &Test) -> R {
    std::fs::create_dir_all(t.rootfs.join("etc/secrets")).map_err(s)?;
    std::fs::write(t.rootfs.join("etc/secret"), "hush\n").map_err(s)?;
    std::fs::write(t.rootfs.join("etc/secrets/a"), "hush\n").map_err(s)?;
    let cmd = "cat /etc/secret; ls /etc/secrets; (echo 1 > /proc/sys/kernel/ns_last_pid) 2>/dev/null || echo ro; \
               touch /x 2>/dev/null || echo rootro";
    let spec = t.spec(
        json!(["sh", "-c", cmd]),
        json!({"root": {"readonly": true},
               "linux": {"maskedPaths": ["/etc/secret", "/etc/secrets", "/nonexistent"],
                         "readonlyPaths": ["/proc/sys"]}}),
    );
    let (out, _) = t.run(&spec)?;
    check_eq(&out, "ro\nrootro\n")
}

fn user_groups_caps(t: &Test) -> R {
    let cmd =
        "id; grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status; pwd; ulimit -n";
    let spec = t.spec(
        json!(["sh", "-c", cmd]),
        json!({"process": {
            "user": {"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 18},
            "cwd": "/home/u",
            "noNewPrivileges": true,
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}],
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
                "inheritable": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]}}}),
    );
    let (out, _) = t.run(&spec)?;
    check_eq(
        &out,
        "uid=1000 gid=1001 groups=10,20,1001\nCapEff:\t0000000000000401\nNoNewPrivs:\t1\n/home/u\n100\n",
    )
}

fn memory_limit_and_remove(t: &Test) -> R {
    let spec = t.spec(
        json!(["true"]),
        json!({"linux": {"resources": {"memory": {"limit": 67108864}}}}),
    );
    let (stdio, _r) = t.stdio()?;
    let c = container::create(&spec, t.dir.path(), "test", stdio).map_err(|e| e.to_string())?;
    let pid = c.pid();
    let pids = cgroups::pids(&t.cgroup).map_err(|e| e.to_string())?;
    let limit = memory_file(&t.cgroup, "memory.limit_in_bytes", "memory.max");
    cgroups::update(
        &t.cgroup,
        &serde_json::from_value(json!({"memory": {"limit": 33554432}})).map_err(s)?,
    )
    .map_err(|e| e.to_string())?;
    let updated = memory_file(&t.cgroup, "memory.limit_in_bytes", "memory.max");
    cgroups::kill_and_remove(&t.cgroup).map_err(|e| e.to_string())?;
    let code = wait(c.into_pidfd().as_fd())?;
    check_eq(&pids, &vec![pid])?;
    check_eq(&limit.trim(), &"67108864")?;
    check_eq(&updated.trim(), &"33554432")?;
    check_eq(&code, &(128 + 9))
}

fn oom_kill_counted(t: &Test) -> R {
    let spec = t.spec(
        json!([
            "sh",
            "-c",
            "x=$(head -c 200m /dev/zero | tr '\\0' x 2>/dev/null); echo survived"
        ]),
        json!({"linux": {"resources": {"memory": {"limit": 33554432}}}}),
    );
    let (stdio, r) = t.stdio()?;
    let mut c = container::create(&spec, t.dir.path(), "test", stdio).map_err(|e| e.to_string())?;
    c.start().map_err(|e| e.to_string())?;
    let out = read_all(r)?;
    let code = wait(c.pidfd())?;
    let kills = cgroups::oom_kills(&t.cgroup).map_err(|e| e.to_string())?;
    cgroups::kill_and_remove(&t.cgroup).map_err(|e| e.to_string())?;
    check_eq(&out, "")?;
    check_eq(&code, &(128 + 9))?;
    check(kills > 0, "no oom_kill counted")
}

fn exec_into_running(t: &Test) -> R {
    let spec = t.spec(json!(["sleep", "100"]), json!({"hostname": "exechost"}));
    let (stdio, _r) = t.stdio()?;
    let mut c = container::create(&spec, t.dir.path(), "test", stdio).map_err(|e| e.to_string())?;
    let result = (|| {
        c.start().map_err(|e| e.to_string())?;
        let target = exec::Target::of(&spec, c.pid()).map_err(|e| e.to_string())?;
        let (out, code, _) = t.exec(
            &target,
            &["sh", "-c", "hostname; cat /proc/1/comm; echo $(( $$ > 1 ))"],
        )?;
        check_eq(&code, &0)?;
        check_eq(&out, "exechost\nsleep\n1\n")?;
        let bad = serde_json::from_value(
            json!({"args": ["nope"], "cwd": "/", "user": {"uid": 0, "gid": 0}}),
        )
        .map_err(s)?;
        let (stdio, _r) = t.stdio()?;
        match exec::spawn(&target, &bad, stdio) {
            Err(Error::NotFound(name)) => check_eq(&name.as_str(), &"nope"),
            other => Err(format!(
                "exec of a missing binary: {:?}",
                other.map(|s| s.pid)
            )),
        }
    })();
    cgroups::kill_and_remove(&t.cgroup).map_err(|e| e.to_string())?;
    wait(c.pidfd())?;
    result
}

fn start_missing_binary(t: &Test) -> R {
    let spec = t.spec(json!(["nonexistent-binary"]), json!({}));
    let (stdio, _r) = t.stdio()?;
    let mut c = container::create(&spec, t.dir.path(), "test", stdio).map_err(|e| e.to_string())?;
    let err = match c.start() {
        Ok(_) => return Err("start succeeded".into()),
        Err(e) => e.to_string(),
    };
    check_eq(
        &err.as_str(),
        &"executable file not found: nonexistent-binary",
    )?;
    no_children()
}

fn bad_mount_source(t: &Test) -> R {
    let mut spec = t.spec(json!(["true"]), json!({}));
    append_mounts(
        &mut spec,
        json!([{"destination": "/x", "type": "bind", "source": "/nonexistent/dir", "options": ["bind"]}]),
    );
    let (stdio, _r) = t.stdio()?;
    match container::create(&spec, t.dir.path(), "test", stdio) {
        Ok(_) => return Err("create succeeded".into()),
        Err(Error::Child { step, .. }) => check(step.contains("/nonexistent/dir"), &step)?,
        Err(e) => return Err(format!("unexpected error {e}")),
    }
    no_children()
}

fn unsupported_is_rejected(t: &Test) -> R {
    for extra in [
        json!({"linux": {"seccomp": {"defaultAction": "SCMP_ACT_NOTIFY"}}}),
        json!({"linux": {"namespaces": [{"type": "user"}, {"type": "mount"}]}}),
        json!({"process": {"apparmorProfile": "x"}}),
    ] {
        let spec = t.spec(json!(["true"]), extra);
        let (stdio, _r) = t.stdio()?;
        match container::create(&spec, t.dir.path(), "test", stdio) {
            Err(Error::InvalidSpec(_)) => {}
            Err(e) => return Err(format!("unexpected error {e}")),
            Ok(_) => return Err("unsupported spec accepted".into()),
        }
    }
    no_children()
}

fn pid_holder(t: &Test) -> R {
    let pins = t.dir.path().join("pins");
    let holder = sandbox::spawn_pid_holder(&pins).map_err(|e| e.to_string())?;
    let result = (|| {
        let ns = json!([{"type": "pid", "path": pins.join("pid")}, {"type": "mount"}]);
        let spec = t.spec(
            json!(["sh", "-c", "echo $$; cat /proc/1/comm"]),
            json!({"linux": {"namespaces": ns}}),
        );
        let (out, _) = t.run(&spec)?;
        let name = std::fs::read_to_string(format!("/proc/{}/comm", holder.pid)).map_err(s)?;
        check(
            out.lines().next() != Some("1"),
            "joined pid namespace gave pid 1",
        )?;
        check_eq(&out.lines().nth(1), &Some(name.trim()))
    })();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(holder.pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .map_err(s)?;
    let code = wait(holder.pidfd.as_fd())?;
    sandbox::unpin_namespaces(&pins).map_err(|e| e.to_string())?;
    result?;
    check_eq(&code, &0)
}

/// Reads a pty's controller side until every replica descriptor is closed (then EIO).
fn read_terminal(controller: &OwnedFd) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = nix::unistd::read(controller.as_raw_fd(), &mut buf) {
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).replace('\r', "")
}

/// Prints `own-devpts` when the terminal on stdin is a node of the devpts mounted on /dev/pts.
const OWN_DEVPTS: &str =
    "[ \"$(stat -c %d /dev/pts)\" = \"$(stat -c %d \"$(tty)\")\" ] && echo own-devpts";

fn terminal(t: &Test) -> R {
    let cmd = format!(
        "test -t 0 && echo tty; stat -c %t /dev/console; cut -d' ' -f7 /proc/self/stat; {OWN_DEVPTS}"
    );
    let spec = t.spec(
        json!(["sh", "-c", cmd]),
        json!({"process": {"terminal": true}}),
    );
    let mut c = container::create(&spec, t.dir.path(), "test", container::Stdio::Terminal)
        .map_err(|e| e.to_string())?;
    let controller = c.take_terminal().ok_or("no terminal from create")?;
    c.start().map_err(|e| e.to_string())?;
    let code = wait(c.pidfd())?;
    let out = read_terminal(&controller);
    let mut lines = out.lines();
    check_eq(&lines.next(), &Some("tty"))?;
    check_eq(&lines.next(), &Some("88"))?;
    check(
        lines.next().is_some_and(|n| n != "0"),
        "no controlling terminal",
    )?;
    check_eq(&lines.next(), &Some("own-devpts"))?;
    check_eq(&code, &0)
}

fn exec_with_terminal(t: &Test) -> R {
    let spec = t.spec(json!(["sleep", "100"]), json!({}));
    let (stdio, _r) = t.stdio()?;
    let mut c = container::create(&spec, t.dir.path(), "test", stdio).map_err(|e| e.to_string())?;
    let result = (|| {
        c.start().map_err(|e| e.to_string())?;
        let target = exec::Target::of(&spec, c.pid()).map_err(|e| e.to_string())?;
        let cmd = format!("test -t 1 && echo tty; {OWN_DEVPTS}");
        let process = serde_json::from_value(json!({
            "args": ["sh", "-c", cmd], "terminal": true,
            "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}}))
        .map_err(s)?;
        let mut spawned = exec::spawn(&target, &process, container::Stdio::Terminal)
            .map_err(|e| e.to_string())?;
        let controller = spawned.terminal.take().ok_or("no terminal from spawn")?;
        let out = read_terminal(&controller);
        check_eq(&wait(spawned.pidfd.as_fd())?, &0)?;
        check_eq(&out.as_str(), &"tty\nown-devpts\n")
    })();
    cgroups::kill_and_remove(&t.cgroup).map_err(|e| e.to_string())?;
    wait(c.pidfd())?;
    result
}

fn seccomp(t: &Test) -> R {
    // Deny-list: mkdir fails with EPERM, sethostname with a custom errno; the rest is allowed.
    // mkdir also has a conditional entry, which must not narrow the unconditional one; kill
    // has two conditions on one argument, which are ORed (as runc does): `kill -0` is denied.
    let cmd = "mkdir /tmp/x 2>/dev/null || echo denied; hostname other 2>/dev/null || echo sethostname-denied; \
               kill -0 $$ 2>/dev/null || echo kill-denied; grep Seccomp: /proc/self/status; echo ok";
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 2, "value": 0o123, "op": "SCMP_CMP_EQ"}]},
        {"names": ["mkdir", "mkdirat", "no_such_syscall"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["sethostname"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"},
                  {"index": 1, "value": 28, "op": "SCMP_CMP_EQ"}]},
    ]});
    let spec = t.spec(
        json!(["sh", "-c", cmd]),
        json!({"linux": {"seccomp": profile}}),
    );
    let (out, _) = t.run(&spec)?;
    check_eq(
        &out,
        "denied\nsethostname-denied\nkill-denied\nSeccomp:\t2\nok\n",
    )?;
    // Allow-list with a default errno: what busybox sh needs is allowed, mkdir is denied by
    // the default action, personality only with argument 0 (exercises conditions).
    let profile = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]},
    ]});
    let mut all = profile.clone();
    let everything = [
        "read",
        "write",
        "openat",
        "open",
        "close",
        "execve",
        "brk",
        "mmap",
        "munmap",
        "mprotect",
        "arch_prctl",
        "set_tid_address",
        "exit_group",
        "exit",
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "getpid",
        "getppid",
        "getuid",
        "geteuid",
        "getgid",
        "getegid",
        "ioctl",
        "fcntl",
        "dup2",
        "dup3",
        "fstat",
        "newfstatat",
        "stat",
        "lstat",
        "statx",
        "wait4",
        "clone",
        "fork",
        "vfork",
        "uname",
        "getcwd",
        "chdir",
        "readlink",
        "access",
        "faccessat",
        "faccessat2",
        "prlimit64",
        "getrlimit",
        "set_robust_list",
        "rseq",
        "poll",
        "ppoll",
        "lseek",
        "getdents64",
        "close_range",
        "sysinfo",
        "madvise",
        "futex",
        "getrandom",
        "clock_gettime",
        "gettid",
        "tgkill",
        "kill",
        "pipe",
        "pipe2",
        "setgroups",
        "setresgid",
        "setresuid",
        "umask",
        "prctl",
        "capget",
        "capset",
    ];
    all["syscalls"]
        .as_array_mut()
        .ok_or("syscalls")?
        .push(json!({"names": everything.to_vec(), "action": "SCMP_ACT_ALLOW"}));
    let spec = t.spec(
        json!([
            "sh",
            "-c",
            "mkdir /tmp/y 2>/dev/null || echo denied; echo ok"
        ]),
        json!({"linux": {"seccomp": all}}),
    );
    let (out, _) = t.run(&spec)?;
    check_eq(&out, "denied\nok\n")
}

/// On a cgroup v2 host the container's processes are born in its cgroup (`CLONE_INTO_CGROUP`),
/// with its limits already written, instead of being moved there after the fork.
fn v2_born_in_cgroup(t: &Test) -> R {
    in_v2_mount_namespace(|| {
        let spec = t.spec(
            json!(["sleep", "100"]),
            json!({
                // The base spec's without its cgroup mount.
                "mounts": [
                    {"destination": "/proc", "type": "proc", "source": "proc"},
                    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                     "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}
                ],
                "linux": {"resources": {"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}}
            }),
        );
        let want = format!("0::{}", t.cgroup.display());
        let (stdio, _r) = t.stdio()?;
        let mut c =
            container::create(&spec, t.dir.path(), "test", stdio).map_err(|e| e.to_string())?;
        let result = (|| {
            let membership =
                std::fs::read_to_string(format!("/proc/{}/cgroup", c.pid())).map_err(s)?;
            let dir = Path::new("/sys/fs/cgroup").join(t.cgroup.strip_prefix("/").map_err(s)?);
            let limit = std::fs::read_to_string(dir.join("hugetlb.2MB.max")).map_err(s)?;
            check(
                c.born_in_cgroup(),
                "the container was moved into its cgroup, not born in it",
            )?;
            check(
                membership.lines().any(|l| l == want),
                &format!("the init is not in {want}"),
            )?;
            check_eq(&limit.trim(), &"0")?;
            c.start().map_err(|e| e.to_string())?;
            let target = exec::Target::of(&spec, c.pid()).map_err(|e| e.to_string())?;
            let (out, code, born) = t.exec(&target, &["cat", "/proc/self/cgroup"])?;
            check_eq(&code, &0)?;
            check(born, "the exec was moved into the cgroup, not born in it")?;
            check(
                out.lines().any(|l| l == want),
                &format!("the exec is not in {want}: {out}"),
            )
        })();
        cgroups::kill_and_remove(&t.cgroup).map_err(|e| e.to_string())?;
        check_eq(&wait(c.pidfd())?, &(128 + 9))?;
        result
    })
}

/// Runs `body` in a child process whose mount namespace has the host's cgroup2 hierarchy at
/// `/sys/fs/cgroup` and nothing else there: what libcgroups and Corral read as a cgroup v2
/// host, on any host with a cgroup2 hierarchy (a hybrid one's holds few controllers).
#[allow(unsafe_code)]
fn in_v2_mount_namespace(body: impl FnOnce() -> R) -> R {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(s)?;
    // SAFETY: this test binary is single-threaded (no harness), so the child is a full copy.
    match unsafe { nix::unistd::fork() }.map_err(s)? {
        nix::unistd::ForkResult::Child => {
            drop(r);
            let result = (|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(s)?;
                mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    None::<&str>,
                )
                .map_err(s)?;
                umount2("/sys/fs/cgroup", MntFlags::MNT_DETACH).map_err(s)?;
                mount(
                    Some("cgroup2"),
                    "/sys/fs/cgroup",
                    Some("cgroup2"),
                    MsFlags::empty(),
                    None::<&str>,
                )
                .map_err(s)?;
                body()
            })();
            let msg = match &result {
                Ok(()) => String::new(),
                Err(e) => e.clone(),
            };
            let _ = nix::unistd::write(&w, msg.as_bytes());
            // SAFETY: ends the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(i32::from(result.is_err())) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let msg = read_all(r)?;
            let status = nix::sys::wait::waitpid(child, None).map_err(s)?;
            match status {
                nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
                _ if !msg.is_empty() => Err(msg),
                other => Err(format!("the v2 child ended with {other:?}")),
            }
        }
    }
}

fn append_mounts(spec: &mut oci_spec::runtime::Spec, extra: serde_json::Value) {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    let extra: Vec<oci_spec::runtime::Mount> = serde_json::from_value(extra).expect("mounts");
    mounts.extend(extra);
    spec.set_mounts(Some(mounts));
}

fn memory_file(cg: &Path, v1: &str, v2: &str) -> String {
    for p in [
        Path::new("/sys/fs/cgroup/memory")
            .join(cg.strip_prefix("/").unwrap_or(cg))
            .join(v1),
        Path::new("/sys/fs/cgroup")
            .join(cg.strip_prefix("/").unwrap_or(cg))
            .join(v2),
    ] {
        if let Ok(s) = std::fs::read_to_string(p) {
            return s;
        }
    }
    String::new()
}

fn main() {
    run_all(&[
        ("echo_and_exit_code", echo_and_exit_code),
        ("new_pid_namespace", new_pid_namespace),
        ("path_lookup_and_env", path_lookup_and_env),
        ("joined_pod_namespaces", joined_pod_namespaces),
        ("mounts", mounts),
        ("masked_and_readonly", masked_and_readonly),
        ("user_groups_caps", user_groups_caps),
        ("memory_limit_and_remove", memory_limit_and_remove),
        ("oom_kill_counted", oom_kill_counted),
        ("exec_into_running", exec_into_running),
        ("start_missing_binary", start_missing_binary),
        ("bad_mount_source", bad_mount_source),
        ("unsupported_is_rejected", unsupported_is_rejected),
        ("pid_holder", pid_holder),
        ("terminal", terminal),
        ("exec_with_terminal", exec_with_terminal),
        ("seccomp", seccomp),
        ("v2_born_in_cgroup", v2_born_in_cgroup),
    ]);
}
