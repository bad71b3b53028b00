//! The `linux` section: namespaces, devices, cgroup resources, masked and read-only paths.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use corral_cri_api::paths::{DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS};
use corral_cri_api::v1::{LinuxContainerResources, LinuxContainerSecurityContext, NamespaceMode};
use oci_spec::runtime::{
    Linux, LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, LinuxNamespace, LinuxNamespaceType,
};

use super::{ContainerInputs, SpecError, check_no_nul, clean_container_path};

/// The devices every container gets (created in its `/dev`, mode 0666, and allowed `rwm`).
const DEFAULT_DEVICES: [(&str, i64, i64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// What a container does for one namespace type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ns {
    /// Stay in the host's (no entry in the spec).
    Host,
    /// Create a new one.
    New,
    /// Join the one pinned at this path.
    Join(PathBuf),
}

/// The namespaces of a container, from its namespace options and the pod's pins.
#[derive(Debug, Clone)]
pub(super) struct NsPlan {
    pub net: Ns,
    pub ipc: Ns,
    pub uts: Ns,
    pub pid: Ns,
}

impl NsPlan {
    /// Network and IPC follow the container's mode (`POD`: the pod's pin, or the host's when the
    /// pod has none; `NODE`: the host's; `CONTAINER`: a new one). UTS follows the pod's pin. PID:
    /// `POD` joins the pod-wide namespace if the pod has one (else a new one), `CONTAINER` is
    /// new, `NODE` the host's, `TARGET` the target container's.
    pub(super) fn new(
        input: &ContainerInputs<'_>,
        sc: Option<&LinuxContainerSecurityContext>,
    ) -> Result<Self, SpecError> {
        let opts = sc.and_then(|s| s.namespace_options.as_ref());
        let p = &input.pod_paths;
        let mode = |field: &str, v: i32| {
            NamespaceMode::try_from(v).map_err(|_| {
                SpecError::invalid(format!(
                    "security_context.namespace_options.{field}: unknown mode {v}"
                ))
            })
        };
        let shared = |field: &str, v: i32, pin: Option<&Path>| -> Result<Ns, SpecError> {
            Ok(match mode(field, v)? {
                NamespaceMode::Pod => pin.map_or(Ns::Host, |p| Ns::Join(p.to_path_buf())),
                NamespaceMode::Node => Ns::Host,
                NamespaceMode::Container => Ns::New,
                NamespaceMode::Target => {
                    return Err(SpecError::invalid(format!(
                        "security_context.namespace_options.{field}: TARGET is only supported for pid"
                    )));
                }
            })
        };
        let net = shared("network", opts.map_or(0, |o| o.network), p.net)?;
        let ipc = shared("ipc", opts.map_or(0, |o| o.ipc), p.ipc)?;
        let pid = match mode("pid", opts.map_or(0, |o| o.pid))? {
            NamespaceMode::Pod => p.pid.map_or(Ns::New, |p| Ns::Join(p.to_path_buf())),
            NamespaceMode::Container => Ns::New,
            NamespaceMode::Node => Ns::Host,
            NamespaceMode::Target => match input.target_pid_ns {
                Some(path) => Ns::Join(path.to_path_buf()),
                None => {
                    return Err(SpecError::invalid(format!(
                        "security_context.namespace_options.target_id: target {:?} has no PID namespace to join",
                        opts.map_or("", |o| o.target_id.as_str())
                    )));
                }
            },
        };
        let uts = p.uts.map_or(Ns::Host, |p| Ns::Join(p.to_path_buf()));
        Ok(Self { net, ipc, uts, pid })
    }

    /// Whether the container has a UTS namespace other than the host's (so a hostname may be set).
    pub(super) fn has_own_uts(&self) -> bool {
        self.uts != Ns::Host
    }

    fn namespaces(&self) -> Vec<LinuxNamespace> {
        let mut out = Vec::new();
        let mut push = |typ, ns: &Ns| {
            let path = match ns {
                Ns::Host => return,
                Ns::New => None,
                Ns::Join(p) => Some(p.clone()),
            };
            let mut n = LinuxNamespace::default();
            n.set_typ(typ);
            n.set_path(path);
            out.push(n);
        };
        push(LinuxNamespaceType::Mount, &Ns::New);
        push(LinuxNamespaceType::Pid, &self.pid);
        push(LinuxNamespaceType::Network, &self.net);
        push(LinuxNamespaceType::Ipc, &self.ipc);
        push(LinuxNamespaceType::Uts, &self.uts);
        push(LinuxNamespaceType::Cgroup, &Ns::New);
        out
    }
}

/// Builds `linux` and returns it with the process's `oomScoreAdj`.
pub(super) fn build(
    input: &ContainerInputs<'_>,
    sc: Option<&LinuxContainerSecurityContext>,
    plan: &NsPlan,
    rootfs_propagation: Option<String>,
) -> Result<(Linux, i32), SpecError> {
    let privileged = sc.is_some_and(|s| s.privileged);
    let (mut devices, mut rules) = devices(input)?;
    if privileged {
        for d in host_devices(Path::new("/dev")) {
            if !devices.iter().any(|x| x.path() == d.path()) {
                devices.push(d);
            }
        }
        // Every device, any access.
        rules = vec![{
            let mut all = LinuxDeviceCgroup::default();
            all.set_allow(true);
            all.set_access(Some("rwm".into()));
            all
        }];
    }
    let empty = LinuxContainerResources::default();
    let res = input
        .config
        .linux
        .as_ref()
        .and_then(|l| l.resources.as_ref())
        .unwrap_or(&empty);
    let (mut resources, oom_score_adj) = super::resources::resources(res)?;
    let mut all_rules = if privileged {
        Vec::new()
    } else {
        default_device_rules()
    };
    all_rules.append(&mut rules);
    resources.set_devices(Some(all_rules));

    let mut linux = Linux::default();
    linux.set_namespaces(Some(plan.namespaces()));
    linux.set_devices(Some(devices));
    linux.set_resources(Some(resources));
    linux.set_cgroups_path(Some(input.cgroups_path.to_path_buf()));
    let (masked, readonly) = if privileged {
        (Vec::new(), Vec::new())
    } else {
        (
            path_list(
                sc,
                "masked_paths",
                |s| &s.masked_paths,
                &DEFAULT_MASKED_PATHS,
            )?,
            path_list(
                sc,
                "readonly_paths",
                |s| &s.readonly_paths,
                &DEFAULT_READONLY_PATHS,
            )?,
        )
    };
    linux.set_masked_paths(Some(masked));
    linux.set_readonly_paths(Some(readonly));
    linux.set_rootfs_propagation(rootfs_propagation);
    linux.set_sysctl(None);
    linux.set_seccomp(None);
    Ok((linux, oom_score_adj))
}

/// The CRI's list when it has entries (kubelet sends the defaults for `procMount: Default` and
/// nothing for `Unmasked`), else the defaults.
fn path_list(
    sc: Option<&LinuxContainerSecurityContext>,
    field: &str,
    get: impl Fn(&LinuxContainerSecurityContext) -> &Vec<String>,
    defaults: &[&str],
) -> Result<Vec<String>, SpecError> {
    match sc.map(get).filter(|l| !l.is_empty()) {
        None => Ok(defaults.iter().map(|p| p.to_string()).collect()),
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, p)| clean_container_path(&format!("security_context.{field}[{i}]"), p))
            .collect(),
    }
}

/// The device nodes under the host's `/dev` (not its `pts`, `shm`, `mqueue` or `fd`, which the
/// container gets its own of), for a privileged container. Unreadable entries are skipped.
fn host_devices(dev: &Path) -> Vec<LinuxDevice> {
    const SKIP: [&str; 6] = ["pts", "shm", "mqueue", "fd", ".lxc", ".udev"];
    let mut out = Vec::new();
    let mut stack = vec![dev.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if dir == dev && SKIP.iter().any(|s| e.file_name() == *s) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            let typ = if ft.is_dir() {
                stack.push(path);
                continue;
            } else if ft.is_char_device() {
                LinuxDeviceType::C
            } else if ft.is_block_device() {
                LinuxDeviceType::B
            } else {
                continue;
            };
            // /dev/console is the container's own terminal, when it has one.
            if path == dev.join("console") {
                continue;
            }
            let mut d = LinuxDevice::default();
            d.set_path(path);
            d.set_typ(typ);
            d.set_major(nix::sys::stat::major(meta.rdev()) as i64);
            d.set_minor(nix::sys::stat::minor(meta.rdev()) as i64);
            d.set_file_mode(Some(meta.mode() & 0o7777));
            d.set_uid(Some(meta.uid()));
            d.set_gid(Some(meta.gid()));
            out.push(d);
        }
    }
    out.sort_by(|a, b| a.path().cmp(b.path()));
    out
}

fn device_rule(
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(true);
    r.set_typ(Some(typ));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.to_string()));
    r
}

/// Deny everything, then allow `mknod` of any device, the default devices, `/dev/ptmx` and the
/// pty replicas (containerd's and runc's list).
pub(super) fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    let mut deny = LinuxDeviceCgroup::default();
    deny.set_allow(false);
    deny.set_access(Some("rwm".into()));
    let mut out = vec![
        deny,
        device_rule(LinuxDeviceType::C, None, None, "m"),
        device_rule(LinuxDeviceType::B, None, None, "m"),
    ];
    for (_, major, minor) in DEFAULT_DEVICES {
        out.push(device_rule(
            LinuxDeviceType::C,
            Some(major),
            Some(minor),
            "rwm",
        ));
    }
    out.push(device_rule(LinuxDeviceType::C, Some(5), Some(2), "rwm")); // /dev/ptmx
    out.push(device_rule(LinuxDeviceType::C, Some(136), None, "rwm")); // /dev/pts/*
    out
}

/// The default devices plus the CRI `devices` (stat'ed on the host), and the cgroup rules for
/// the CRI ones.
fn devices(
    input: &ContainerInputs<'_>,
) -> Result<(Vec<LinuxDevice>, Vec<LinuxDeviceCgroup>), SpecError> {
    let mut out = Vec::new();
    for (path, major, minor) in DEFAULT_DEVICES {
        let mut d = LinuxDevice::default();
        d.set_path(PathBuf::from(path));
        d.set_typ(LinuxDeviceType::C);
        d.set_major(major);
        d.set_minor(minor);
        d.set_file_mode(Some(0o666));
        d.set_uid(Some(0));
        d.set_gid(Some(0));
        out.push(d);
    }
    let mut rules = Vec::new();
    for (i, dev) in input.config.devices.iter().enumerate() {
        let field = format!("devices[{i}]");
        let dest = clean_container_path(&format!("{field}.container_path"), &dev.container_path)?;
        check_no_nul(&format!("{field}.host_path"), &dev.host_path)?;
        if !dev.host_path.starts_with('/') {
            return Err(SpecError::invalid(format!(
                "{field}.host_path: {:?} is not an absolute path",
                dev.host_path
            )));
        }
        let perms = if dev.permissions.is_empty() {
            "rwm"
        } else {
            dev.permissions.as_str()
        };
        let mut seen = String::new();
        for c in perms.chars() {
            if !"rwm".contains(c) || seen.contains(c) {
                return Err(SpecError::invalid(format!(
                    "{field}.permissions: {perms:?} is not a combination of r, w and m"
                )));
            }
            seen.push(c);
        }
        let meta = std::fs::metadata(&dev.host_path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SpecError::NotFound(format!(
                "{field}.host_path: {:?} does not exist",
                dev.host_path
            )),
            _ => SpecError::io(&dev.host_path, e),
        })?;
        let ft = meta.file_type();
        let typ = if ft.is_char_device() {
            LinuxDeviceType::C
        } else if ft.is_block_device() {
            LinuxDeviceType::B
        } else {
            return Err(SpecError::invalid(format!(
                "{field}.host_path: {:?} is not a device",
                dev.host_path
            )));
        };
        let (major, minor) = (
            nix::sys::stat::major(meta.rdev()) as i64,
            nix::sys::stat::minor(meta.rdev()) as i64,
        );
        let mut d = LinuxDevice::default();
        d.set_path(PathBuf::from(dest));
        d.set_typ(typ);
        d.set_major(major);
        d.set_minor(minor);
        d.set_file_mode(Some(meta.mode() & 0o7777));
        d.set_uid(Some(meta.uid()));
        d.set_gid(Some(meta.gid()));
        out.push(d);
        rules.push(device_rule(typ, Some(major), Some(minor), perms));
    }
    Ok((out, rules))
}
