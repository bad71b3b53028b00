//! `linux.seccomp`: the built-in RuntimeDefault profile, Localhost profiles read from the node,
//! and Unconfined.
//!
//! Which profile applies follows the CRI: the `seccomp` security profile when set, else the
//! deprecated `seccomp_profile_path` (`runtime/default`, `docker/default`, `unconfined`,
//! `localhost/<path>`), else none (an empty path means unconfined). A privileged container is
//! always unconfined.
//!
//! The default profile has the shape of the one Docker, containerd and CRI-O ship: an allowlist
//! (every other syscall fails with `EPERM`), where the syscalls that only make sense with a
//! capability are allowed only when the container's bounding set has it, `clone` may not create
//! namespaces without `CAP_SYS_ADMIN`, and `clone3` (whose flags a filter cannot read) fails
//! with `ENOSYS` so that libcs fall back to `clone`.

use corral_cri_api::v1::LinuxContainerSecurityContext;
use corral_cri_api::v1::security_profile::ProfileType;
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

use super::SpecError;

/// Syscalls every container may make.
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "mseal",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "ptrace",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "uretprobe",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
];

/// Syscalls of one architecture family.
const ALLOWED_X86_64: &[&str] = &["arch_prctl", "modify_ldt"];
const ALLOWED_ARM: &[&str] = &[
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "breakpoint",
    "cacheflush",
    "set_tls",
    "sync_file_range2",
];
const ALLOWED_RISCV: &[&str] = &["riscv_flush_icache"];

/// Syscalls allowed only with a capability in the bounding set.
const BY_CAPABILITY: &[(&str, &[&str])] = &[
    ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
    (
        "CAP_SYS_ADMIN",
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    ("CAP_SYS_BOOT", &["reboot"]),
    ("CAP_SYS_CHROOT", &["chroot"]),
    (
        "CAP_SYS_MODULE",
        &["delete_module", "init_module", "finit_module"],
    ),
    ("CAP_SYS_PACCT", &["acct"]),
    (
        "CAP_SYS_PTRACE",
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
        ],
    ),
    ("CAP_SYS_RAWIO", &["iopl", "ioperm"]),
    (
        "CAP_SYS_TIME",
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
    ),
    ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
    (
        "CAP_SYS_NICE",
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    ("CAP_SYSLOG", &["syslog"]),
    ("CAP_BPF", &["bpf"]),
    ("CAP_PERFMON", &["perf_event_open"]),
];

/// The namespace flags `clone` may not carry without `CAP_SYS_ADMIN`.
const CLONE_NS_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// `AF_VSOCK`: sockets of this family reach the host's hypervisor and stay refused.
const AF_VSOCK: u64 = 40;

fn rule(names: &[&str], action: LinuxSeccompAction, args: Vec<LinuxSeccompArg>) -> LinuxSyscall {
    let mut s = LinuxSyscall::default();
    s.set_names(names.iter().map(|n| n.to_string()).collect());
    s.set_action(action);
    if !args.is_empty() {
        s.set_args(Some(args));
    }
    s
}

fn arg(
    index: usize,
    value: u64,
    value_two: Option<u64>,
    op: LinuxSeccompOperator,
) -> LinuxSeccompArg {
    let mut b = LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .op(op);
    if let Some(v) = value_two {
        b = b.value_two(v);
    }
    b.build().expect("index, value and op are set")
}

/// The RuntimeDefault profile for a container whose bounding set is `bounding` (capability names
/// as in the OCI spec, `CAP_...`).
pub fn default_profile(bounding: &[String]) -> LinuxSeccomp {
    let has = |cap: &str| bounding.iter().any(|c| c == cap);
    let mut syscalls = vec![rule(ALLOWED, LinuxSeccompAction::ScmpActAllow, Vec::new())];
    let arch_extra = match std::env::consts::ARCH {
        "x86_64" | "x86" => ALLOWED_X86_64,
        "aarch64" | "arm" => ALLOWED_ARM,
        "riscv64" => ALLOWED_RISCV,
        _ => &[],
    };
    syscalls.push(rule(
        arch_extra,
        LinuxSeccompAction::ScmpActAllow,
        Vec::new(),
    ));
    // personality(2): only the plain Linux personalities and the query.
    for p in [0x0, 0x0008, 0x20000, 0x20008, 0xffff_ffff] {
        syscalls.push(rule(
            &["personality"],
            LinuxSeccompAction::ScmpActAllow,
            vec![arg(0, p, None, LinuxSeccompOperator::ScmpCmpEq)],
        ));
    }
    syscalls.push(rule(
        &["socket"],
        LinuxSeccompAction::ScmpActAllow,
        vec![arg(0, AF_VSOCK, None, LinuxSeccompOperator::ScmpCmpNe)],
    ));
    for (cap, names) in BY_CAPABILITY {
        if has(cap) {
            syscalls.push(rule(names, LinuxSeccompAction::ScmpActAllow, Vec::new()));
        }
    }
    if !has("CAP_SYS_ADMIN") {
        // The flags are the first argument everywhere but s390 (not a Corral target).
        syscalls.push(rule(
            &["clone"],
            LinuxSeccompAction::ScmpActAllow,
            vec![arg(
                0,
                CLONE_NS_FLAGS,
                Some(0),
                LinuxSeccompOperator::ScmpCmpMaskedEq,
            )],
        ));
        let mut clone3 = rule(&["clone3"], LinuxSeccompAction::ScmpActErrno, Vec::new());
        clone3.set_errno_ret(Some(libc::ENOSYS as u32));
        syscalls.push(clone3);
    }
    let mut s = LinuxSeccomp::default();
    s.set_default_action(LinuxSeccompAction::ScmpActErrno);
    s.set_default_errno_ret(Some(libc::EPERM as u32));
    s.set_architectures(Some(native_arches()));
    s.set_syscalls(Some(syscalls));
    s
}

fn native_arches() -> Vec<Arch> {
    match std::env::consts::ARCH {
        "x86_64" => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        "aarch64" => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
        "riscv64" => vec![Arch::ScmpArchRiscv64],
        _ => Vec::new(),
    }
}

/// Which profile a container asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wanted {
    Unconfined,
    RuntimeDefault,
    Localhost(String),
}

fn wanted(sc: Option<&LinuxContainerSecurityContext>) -> Result<Wanted, SpecError> {
    let Some(sc) = sc else {
        return Ok(Wanted::Unconfined);
    };
    if let Some(p) = &sc.seccomp {
        let typ = ProfileType::try_from(p.profile_type).map_err(|_| {
            SpecError::invalid(format!(
                "security_context.seccomp.profile_type: unknown value {}",
                p.profile_type
            ))
        })?;
        if typ != ProfileType::Localhost && !p.localhost_ref.is_empty() {
            return Err(SpecError::invalid(format!(
                "security_context.seccomp.localhost_ref: set with profile type {}",
                typ.as_str_name()
            )));
        }
        return Ok(match typ {
            ProfileType::Unconfined => Wanted::Unconfined,
            ProfileType::RuntimeDefault => Wanted::RuntimeDefault,
            ProfileType::Localhost => Wanted::Localhost(p.localhost_ref.clone()),
        });
    }
    #[allow(deprecated)] // still sent by older kubelets
    let path = sc.seccomp_profile_path.as_str();
    Ok(match path {
        "" | "unconfined" => Wanted::Unconfined,
        "runtime/default" | "docker/default" => Wanted::RuntimeDefault,
        _ => match path.strip_prefix("localhost/") {
            Some(p) => Wanted::Localhost(p.to_string()),
            None => {
                return Err(SpecError::invalid(format!(
                    "security_context.seccomp_profile_path: {path:?} is not runtime/default, \
                     unconfined or localhost/<path>"
                )));
            }
        },
    })
}

/// The container's `linux.seccomp` (`None`: unconfined). `bounding` is its bounding set, which
/// the default profile follows.
pub(super) fn profile(
    sc: Option<&LinuxContainerSecurityContext>,
    privileged: bool,
    bounding: &[String],
) -> Result<Option<LinuxSeccomp>, SpecError> {
    let wanted = wanted(sc)?;
    if privileged {
        return Ok(None);
    }
    match wanted {
        Wanted::Unconfined => Ok(None),
        Wanted::RuntimeDefault => Ok(Some(default_profile(bounding))),
        Wanted::Localhost(path) => load(&path, bounding).map(Some),
    }
}

/// Reads a Localhost profile: an absolute path on the node holding an OCI (or Docker-format)
/// seccomp JSON profile.
fn load(path: &str, bounding: &[String]) -> Result<LinuxSeccomp, SpecError> {
    const FIELD: &str = "security_context.seccomp.localhost_ref";
    super::check_no_nul(FIELD, path)?;
    if !path.starts_with('/') {
        return Err(SpecError::invalid(format!(
            "{FIELD}: {path:?} is not an absolute path"
        )));
    }
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SpecError::NotFound(format!(
                "{FIELD}: seccomp profile {path:?} does not exist"
            )));
        }
        Err(e) => return Err(SpecError::io(path, e)),
    };
    const MAX: usize = 4 << 20;
    if text.len() > MAX {
        return Err(SpecError::invalid(format!(
            "{FIELD}: seccomp profile {path:?} is larger than {MAX} bytes"
        )));
    }
    let mut value: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
        SpecError::invalid(format!(
            "{FIELD}: seccomp profile {path:?} is not JSON: {e}"
        ))
    })?;
    docker_compat(&mut value, bounding);
    serde_json::from_value(value).map_err(|e| {
        SpecError::invalid(format!(
            "{FIELD}: seccomp profile {path:?} is not a seccomp profile: {e}"
        ))
    })
}

/// Docker-format profiles may name one syscall per rule (`name`) and carry fields the OCI form
/// lacks (`archMap`, `comment`, and `includes`/`excludes` conditions on capabilities and
/// architectures). A conditional rule is kept only when its conditions hold for this container,
/// the way Docker evaluates them: every included capability in the bounding set, no excluded one;
/// the native architecture in `includes.arches` and not in `excludes.arches`; the kernel at least
/// `includes.minKernel`.
fn docker_compat(v: &mut serde_json::Value, bounding: &[String]) {
    let Some(obj) = v.as_object_mut() else {
        return;
    };
    if let Some(arch_map) = obj.remove("archMap")
        && !obj.contains_key("architectures")
        && let Some(list) = arch_map.as_array()
    {
        let mut arches = Vec::new();
        for entry in list {
            if let Some(a) = entry.get("architecture") {
                arches.push(a.clone());
            }
            if let Some(subs) = entry.get("subArchitectures").and_then(|s| s.as_array()) {
                arches.extend(subs.iter().cloned());
            }
        }
        obj.insert("architectures".into(), serde_json::Value::Array(arches));
    }
    for k in ["defaultErrno", "comment"] {
        obj.remove(k);
    }
    let Some(rules) = obj.get_mut("syscalls").and_then(|s| s.as_array_mut()) else {
        return;
    };
    rules.retain(|r| applies(r, bounding));
    for r in rules.iter_mut() {
        let Some(r) = r.as_object_mut() else { continue };
        for k in ["comment", "includes", "excludes"] {
            r.remove(k);
        }
        if !r.contains_key("names")
            && let Some(name) = r.remove("name")
        {
            r.insert("names".into(), serde_json::Value::Array(vec![name]));
        }
    }
}

/// Docker's names for the architectures (Go's `GOARCH`).
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

fn strings(v: Option<&serde_json::Value>, key: &str) -> Vec<String> {
    v.and_then(|c| c.get(key))
        .and_then(|l| l.as_array())
        .map(|l| {
            l.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn applies(rule: &serde_json::Value, bounding: &[String]) -> bool {
    let (inc, exc) = (rule.get("includes"), rule.get("excludes"));
    let has = |c: &String| bounding.contains(c);
    let arch = go_arch().to_string();
    if strings(exc, "caps").iter().any(has) || strings(exc, "arches").contains(&arch) {
        return false;
    }
    if !strings(inc, "caps").iter().all(has) {
        return false;
    }
    let arches = strings(inc, "arches");
    if !arches.is_empty() && !arches.contains(&arch) {
        return false;
    }
    match inc
        .and_then(|c| c.get("minKernel"))
        .and_then(|k| k.as_str())
    {
        Some(min) => kernel_at_least(min),
        None => true,
    }
}

fn version(s: &str) -> Vec<u32> {
    s.split(['.', '-'])
        .map_while(|p| p.parse().ok())
        .take(2)
        .collect()
}

fn kernel_at_least(min: &str) -> bool {
    let running = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    version(&running) >= version(min)
}
