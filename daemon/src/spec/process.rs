//! The container's process: args, env, cwd, user, capabilities.

use std::collections::HashSet;

use corral_cri_api::v1::LinuxContainerSecurityContext;
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, Process, User};

use super::{ContainerInputs, SpecError, check_no_nul, user};

/// `PATH` when the image sets none (containerd's and Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// containerd's default capabilities (bounding, effective and permitted).
const DEFAULT_CAPS: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Every capability oci-spec knows, for `ALL`.
pub(super) const ALL_CAP_NAMES: [&str; 41] = [
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETGID",
    "SETFCAP",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
];

/// Builds the process part of the container's spec (all but `oomScoreAdj`, set with resources).
pub(super) fn build(
    input: &ContainerInputs<'_>,
    sc: Option<&LinuxContainerSecurityContext>,
    hostname: &str,
    privileged: bool,
) -> Result<Process, SpecError> {
    let config = input.config;
    let image = input.image.config().as_ref();
    let empty = Vec::new();
    let entrypoint = image
        .and_then(|c| c.entrypoint().as_ref())
        .unwrap_or(&empty);
    let cmd = image.and_then(|c| c.cmd().as_ref()).unwrap_or(&empty);
    let args = merge_args(&config.command, &config.args, entrypoint, cmd)?;

    let mut env = Env::default();
    env.set("PATH", &format!("PATH={DEFAULT_PATH}"));
    env.set("HOSTNAME", &format!("HOSTNAME={hostname}"));
    for (i, e) in image
        .and_then(|c| c.env().as_ref())
        .unwrap_or(&empty)
        .iter()
        .enumerate()
    {
        check_no_nul(&format!("image config Env[{i}]"), e)?;
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        if key.is_empty() {
            return Err(SpecError::invalid(format!(
                "image config Env[{i}]: {e:?} has an empty name"
            )));
        }
        if e.contains('=') {
            env.set(key, e);
        } else {
            // No value: unsets (containerd's rule), never an entry without '='.
            env.remove(key);
        }
    }
    for (i, kv) in config.envs.iter().enumerate() {
        if kv.key.is_empty() {
            return Err(SpecError::invalid(format!("envs[{i}].key is empty")));
        }
        if kv.key.contains('=') {
            return Err(SpecError::invalid(format!(
                "envs[{i}].key: {:?} contains '='",
                kv.key
            )));
        }
        check_no_nul(&format!("envs[{i}].key"), &kv.key)?;
        check_no_nul(&format!("envs[{i}].value"), &kv.value)?;
        env.set(&kv.key, &format!("{}={}", kv.key, kv.value));
    }

    let cwd = if !config.working_dir.is_empty() {
        ("working_dir", config.working_dir.as_str())
    } else {
        match image.and_then(|c| c.working_dir().as_deref()) {
            Some(w) if !w.is_empty() => ("image config WorkingDir", w),
            _ => ("", "/"),
        }
    };
    check_no_nul(cwd.0, cwd.1)?;
    if !cwd.1.starts_with('/') {
        return Err(SpecError::invalid(format!(
            "{}: {:?} is not an absolute path",
            cwd.0, cwd.1
        )));
    }

    let image_user = image.and_then(|c| c.user().as_deref()).unwrap_or("");
    let resolved = user::resolve(input.rootfs, image_user, sc)?;
    // runc sets HOME from /etc/passwd when it is unset; our runtime does not read the image's
    // files, so it is set here.
    if !env.has("HOME") {
        let home = resolved.home.as_deref().unwrap_or("/");
        env.set("HOME", &format!("HOME={home}"));
    }
    if config.tty && !env.has("TERM") {
        env.set("TERM", "TERM=xterm");
    }
    let mut user = User::default();
    user.set_uid(resolved.uid);
    user.set_gid(resolved.gid);
    user.set_additional_gids(Some(resolved.additional_gids));

    let mut process = Process::default();
    process.set_terminal(Some(config.tty));
    process.set_args(Some(args));
    process.set_env(Some(env.into_vec()));
    process.set_cwd(cwd.1.into());
    process.set_user(user);
    process.set_capabilities(Some(if privileged {
        privileged_capabilities()
    } else {
        capabilities(sc)?
    }));
    process.set_no_new_privileges(Some(sc.is_some_and(|s| s.no_new_privs)));
    process.set_rlimits(None);
    process.set_apparmor_profile(None);
    process.set_selinux_label(None);
    Ok(process)
}

/// The Kubernetes rules: `command` replaces the image's Entrypoint *and* Cmd; `args` alone
/// replaces only Cmd.
pub(super) fn merge_args(
    command: &[String],
    args: &[String],
    entrypoint: &[String],
    cmd: &[String],
) -> Result<Vec<String>, SpecError> {
    for (field, list) in [("command", command), ("args", args)] {
        for (i, a) in list.iter().enumerate() {
            check_no_nul(&format!("{field}[{i}]"), a)?;
        }
    }
    for (field, list) in [
        ("image config Entrypoint", entrypoint),
        ("image config Cmd", cmd),
    ] {
        for (i, a) in list.iter().enumerate() {
            check_no_nul(&format!("{field}[{i}]"), a)?;
        }
    }
    let out: Vec<String> = if !command.is_empty() {
        command.iter().chain(args).cloned().collect()
    } else if !args.is_empty() {
        entrypoint.iter().chain(args).cloned().collect()
    } else {
        entrypoint.iter().chain(cmd).cloned().collect()
    };
    if out.first().is_none_or(|a| a.is_empty()) {
        return Err(SpecError::invalid("no command specified"));
    }
    Ok(out)
}

/// An environment kept in order, a later value replacing an earlier one in place.
#[derive(Default)]
struct Env {
    entries: Vec<(String, String)>,
}

impl Env {
    fn set(&mut self, key: &str, entry: &str) {
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = entry.to_string(),
            None => self.entries.push((key.to_string(), entry.to_string())),
        }
    }
    fn remove(&mut self, key: &str) {
        self.entries.retain(|(k, _)| k != key);
    }
    fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }
    fn into_vec(self) -> Vec<String> {
        self.entries.into_iter().map(|(_, e)| e).collect()
    }
}

/// Parses a capability name as the CRI gives it (`NET_ADMIN`, `CAP_NET_ADMIN`, any case).
pub(super) fn parse_capability(field: &str, name: &str) -> Result<Capability, SpecError> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| SpecError::invalid(format!("{field}: unknown capability {name:?}")))
}

/// Every capability this process holds: what `ALL` and privileged mean (containerd's rule: on a
/// host where root lacks one, e.g. `CAP_SYS_RESOURCE`, granting it would make `capset` fail).
pub(super) fn held_capabilities() -> Capabilities {
    let held = caps::read(None, caps::CapSet::Permitted).unwrap_or_default();
    let mut all = Capabilities::new();
    for name in ALL_CAP_NAMES {
        if let Ok(cap) = parse_capability("capabilities", name)
            && let Ok(c) = format!("CAP_{name}").parse::<caps::Capability>()
            && held.contains(&c)
        {
            all.insert(cap);
        }
    }
    all
}

/// A privileged container's capabilities: all held ones in the bounding, effective and
/// permitted sets.
pub(super) fn privileged_capabilities() -> LinuxCapabilities {
    let all = held_capabilities();
    let mut out = LinuxCapabilities::default();
    out.set_bounding(Some(all.clone()));
    out.set_effective(Some(all.clone()));
    out.set_permitted(Some(all));
    out.set_inheritable(Some(Capabilities::new()));
    out.set_ambient(Some(Capabilities::new()));
    out
}

/// containerd's defaults, then `ALL` (add, then drop), then the individual adds and drops, like
/// containerd: added capabilities go to the bounding, effective and permitted sets (not
/// inheritable: CVE-2022-24769), ambient ones to every set; a drop removes from every set.
pub(super) fn capabilities(
    sc: Option<&LinuxContainerSecurityContext>,
) -> Result<LinuxCapabilities, SpecError> {
    let c = sc.and_then(|s| s.capabilities.as_ref());
    let add = c.map_or(&[][..], |c| &c.add_capabilities[..]);
    let drop = c.map_or(&[][..], |c| &c.drop_capabilities[..]);
    let ambient_add = c.map_or(&[][..], |c| &c.add_ambient_capabilities[..]);
    let is_all = |s: &String| s.eq_ignore_ascii_case("ALL");

    let mut main: Capabilities = DEFAULT_CAPS.into_iter().collect();
    let mut inheritable = Capabilities::new();
    let mut ambient = Capabilities::new();
    if add.iter().any(is_all) {
        main.extend(held_capabilities());
    }
    if drop.iter().any(is_all) {
        main.clear();
        inheritable.clear();
        ambient.clear();
    }
    for (i, name) in add.iter().enumerate().filter(|(_, n)| !is_all(n)) {
        main.insert(parse_capability(
            &format!("capabilities.add_capabilities[{i}]"),
            name,
        )?);
    }
    for (i, name) in ambient_add.iter().enumerate() {
        let field = format!("capabilities.add_ambient_capabilities[{i}]");
        if is_all(name) {
            return Err(SpecError::invalid(format!(
                "{field}: \"ALL\" is not allowed"
            )));
        }
        let cap = parse_capability(&field, name)?;
        main.insert(cap);
        inheritable.insert(cap);
        ambient.insert(cap);
    }
    let mut dropped = HashSet::new();
    for (i, name) in drop.iter().enumerate().filter(|(_, n)| !is_all(n)) {
        dropped.insert(parse_capability(
            &format!("capabilities.drop_capabilities[{i}]"),
            name,
        )?);
    }
    for set in [&mut main, &mut inheritable, &mut ambient] {
        set.retain(|c| !dropped.contains(c));
    }
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(main.clone()));
    caps.set_effective(Some(main.clone()));
    caps.set_permitted(Some(main));
    caps.set_inheritable(Some(inheritable));
    caps.set_ambient(Some(ambient));
    Ok(caps)
}

/// The process of an `ExecSync`/`Exec` in a container built by [`super::container_spec`]: the
/// container's user, groups, capabilities, env, cwd and `no_new_privileges`, with `cmd` as args
/// (resolved through `PATH` like the container's). With `tty`, `TERM=xterm` is set.
pub fn exec_process(
    container: &oci_spec::runtime::Spec,
    cmd: &[String],
    tty: bool,
) -> Result<Process, SpecError> {
    let mut process = container
        .process()
        .clone()
        .ok_or_else(|| SpecError::invalid("the container's spec has no process"))?;
    if cmd.first().is_none_or(|a| a.is_empty()) {
        return Err(SpecError::invalid("cmd: no command specified"));
    }
    for (i, a) in cmd.iter().enumerate() {
        check_no_nul(&format!("cmd[{i}]"), a)?;
    }
    process.set_args(Some(cmd.to_vec()));
    process.set_command_line(None);
    process.set_terminal(Some(tty));
    process.set_console_size(None);
    if tty {
        let mut env = Env::default();
        for e in process.env().clone().unwrap_or_default() {
            let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k).to_string();
            env.set(&key, &e);
        }
        env.set("TERM", "TERM=xterm");
        process.set_env(Some(env.into_vec()));
    }
    Ok(process)
}
