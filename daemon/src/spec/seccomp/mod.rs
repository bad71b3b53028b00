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

mod allowlist;

use allowlist::{ALLOWED, ALLOWED_ARM, ALLOWED_RISCV, ALLOWED_X86_64, BY_CAPABILITY};

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
