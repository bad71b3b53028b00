//! Validating a spec and turning it into a [`Plan`]: everything the container's processes need,
//! computed in the caller before the fork.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use nix::sys::stat::Mode;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, LinuxNamespaceType, LinuxResources, Spec};

use crate::Error;
use crate::cgroups;
use crate::hooks::{Hooks, State};
use crate::process::ProcessPlan;
use crate::userns::IdMappings;

mod devices;
mod mounts;

use devices::{default_device, device_plan};
use mounts::{mount_plan, searchable_by_root, with_idmap};

/// What kind of mount.
pub(super) enum MountKind {
    /// A bind of a host path (`recursive` for rbind); `dir` tells whether the destination must
    /// be a directory or a file.
    Bind {
        source: PathBuf,
        recursive: bool,
        dir: bool,
        /// The source as a detached tree made in the caller, attached with `move_mount`
        /// instead of a bind by path: idmapped with `uidMappings`/`gidMappings` (see
        /// [`crate::userns`]), else a plain clone of a private bind (`mounts::detached_bind`).
        tree: Option<OwnedFd>,
    },
    /// A filesystem (`proc`, `tmpfs`, ...).
    Fs { fstype: String, source: String },
    /// `cgroup` on a v1/hybrid host: a tmpfs with each hierarchy's container cgroup bound in.
    CgroupV1 { binds: Vec<(String, PathBuf)> },
}

/// One entry of `mounts`.
pub(super) struct MountPlan {
    /// Destination relative to the rootfs (lexically cleaned, still to be resolved in it).
    pub dest: PathBuf,
    pub kind: MountKind,
    pub flags: MsFlags,
    pub data: Option<String>,
    pub propagation: Vec<MsFlags>,
    /// `rro`: every mount below the bind is made read-only too (`mount_setattr` with
    /// `AT_RECURSIVE`).
    pub recursive_readonly: bool,
}

/// A device node to create.
pub(super) struct DevicePlan {
    pub path: PathBuf,
    pub kind: nix::sys::stat::SFlag,
    pub mode: Mode,
    pub dev: u64,
    pub uid: u32,
    pub gid: u32,
}

/// The user namespace the container joins (made by the caller when the spec has no path).
pub(super) struct UsernsPlan {
    pub fd: OwnedFd,
    /// The maps the namespace must have, as sorted triples, checked after joining one by path.
    pub expect: Option<crate::userns::ExpectedMaps>,
    pub mappings: IdMappings,
}

/// Everything needed to build the container.
pub(super) struct Plan {
    pub rootfs: PathBuf,
    pub root_propagation: MsFlags,
    pub mounts: Vec<MountPlan>,
    pub devices: Vec<DevicePlan>,
    /// `/dev` is a fresh tmpfs: create runc's default devices and the `/dev` symlinks.
    pub dev_is_tmpfs: bool,
    pub masked: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub root_readonly: bool,
    pub sysctls: Vec<(PathBuf, String)>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    /// Namespace files to `setns` into, in order (the user namespace is not among them).
    pub join: Vec<(OwnedFd, CloneFlags)>,
    /// Joined after `join` and before `unshare`, so the new namespaces belong to it.
    pub userns: Option<UsernsPlan>,
    /// The rootfs as a detached idmapped tree ([`crate::userns::ROOTFS_IDMAP_ANNOTATION`]).
    pub rootfs_tree: Option<OwnedFd>,
    pub unshare: CloneFlags,
    pub process: ProcessPlan,
    pub cgroups_path: PathBuf,
    pub resources: LinuxResources,
    /// The spec's hooks, and the state they read.
    pub hooks: Hooks,
    pub state: State,
    /// The bundle directory, the working directory of the createContainer hooks.
    pub bundle_c: Option<std::ffi::CString>,
}

impl Plan {
    /// Descriptors the init uses while it sets up its mounts (detached trees).
    pub fn init_fds(&self) -> Vec<RawFd> {
        let binds = self.mounts.iter().filter_map(|m| match &m.kind {
            MountKind::Bind { tree, .. } => tree.as_ref().map(AsRawFd::as_raw_fd),
            _ => None,
        });
        self.rootfs_tree
            .iter()
            .map(AsRawFd::as_raw_fd)
            .chain(binds)
            .collect()
    }

    /// Namespace files the intermediate joins.
    pub fn namespace_fds(&self) -> Vec<RawFd> {
        self.join
            .iter()
            .map(|(fd, _)| fd.as_raw_fd())
            .chain(self.userns.iter().map(|u| u.fd.as_raw_fd()))
            .collect()
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidSpec(msg.into())
}

/// Builds the plan; opens the namespace files to join.
pub(super) fn build(spec: &Spec, bundle: &Path, id: &str) -> Result<Plan, Error> {
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| invalid("linux section missing"))?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("process missing"))?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root missing"))?;
    let mappings = IdMappings {
        uids: linux.uid_mappings().clone().unwrap_or_default(),
        gids: linux.gid_mappings().clone().unwrap_or_default(),
    };
    let has_mappings = !mappings.uids.is_empty() || !mappings.gids.is_empty();
    if linux
        .mount_label()
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        return Err(invalid("linux.mountLabel: no SELinux on this host"));
    }
    let process_plan = ProcessPlan::new(process)?.with_seccomp(linux.seccomp().as_ref())?;
    let hooks = Hooks::of(spec)?;
    let state = State::new(spec, id, bundle);

    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    let rootfs = rootfs.canonicalize().map_err(Error::io(&rootfs))?;

    // Namespaces: joined ones are opened now (paths resolve in the caller's mount namespace).
    let mut join = Vec::new();
    let mut unshare = CloneFlags::CLONE_NEWNS;
    let (mut net, mut ipc, mut uts) = (false, false, false);
    let mut uts_new = false;
    let mut userns = None;
    let order = [
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Time,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::User,
    ];
    let namespaces = linux.namespaces().as_deref().unwrap_or_default();
    for typ in order {
        let Some(ns) = namespaces.iter().find(|n| n.typ() == typ) else {
            continue;
        };
        let flag = CloneFlags::from_bits_retain(typ as i32);
        match typ {
            LinuxNamespaceType::User => {
                if !has_mappings {
                    return Err(invalid(
                        "linux.namespaces: a user namespace needs linux.uidMappings and linux.gidMappings",
                    ));
                }
                mappings.validate()?;
                let (fd, expect) = match ns.path() {
                    Some(path) => {
                        let fd = open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                            .map_err(|source| Error::Io {
                                path: path.clone(),
                                source: source.into(),
                            })?;
                        let expect = (
                            crate::userns::triples(&mappings.uids),
                            crate::userns::triples(&mappings.gids),
                        );
                        (owned(fd), Some(expect))
                    }
                    None => (crate::userns::create(&mappings)?, None),
                };
                userns = Some(UsernsPlan {
                    fd,
                    expect,
                    mappings: mappings.clone(),
                });
                continue;
            }
            LinuxNamespaceType::Mount if ns.path().is_some() => {
                return Err(invalid(
                    "joining a mount namespace by path is not supported",
                ));
            }
            LinuxNamespaceType::Network => net = true,
            LinuxNamespaceType::Ipc => ipc = true,
            LinuxNamespaceType::Uts => uts = true,
            _ => {}
        }
        match ns.path() {
            Some(path) => {
                let fd = open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()).map_err(
                    |source| Error::Io {
                        path: path.clone(),
                        source: source.into(),
                    },
                )?;
                join.push((owned(fd), flag));
            }
            None => {
                unshare |= flag;
                if typ == LinuxNamespaceType::Uts {
                    uts_new = true;
                }
            }
        }
    }

    if let Some(u) = &userns {
        searchable_by_root(&rootfs, &u.mappings)?;
    }
    if has_mappings && userns.is_none() {
        return Err(invalid(
            "linux.uidMappings/gidMappings: given without a user namespace in linux.namespaces",
        ));
    }
    let rootfs_idmap = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(crate::userns::ROOTFS_IDMAP_ANNOTATION))
        .is_some_and(|v| v == "true");
    let rootfs_tree = match (&userns, rootfs_idmap) {
        (_, false) => None,
        (Some(u), true) => Some(crate::userns::idmapped_tree(&rootfs, u.fd.as_fd(), true)?),
        (None, true) => {
            return Err(invalid(format!(
                "annotations[{}]: needs a user namespace",
                crate::userns::ROOTFS_IDMAP_ANNOTATION
            )));
        }
    };

    let mut sysctls = Vec::new();
    if let Some(map) = linux.sysctl() {
        for (key, value) in map {
            let ok = if key.starts_with("net.") {
                net
            } else if key.starts_with("kernel.shm")
                || key.starts_with("kernel.msg")
                || key == "kernel.sem"
                || key.starts_with("fs.mqueue.")
            {
                ipc
            } else if key == "kernel.hostname" || key == "kernel.domainname" {
                uts
            } else {
                false
            };
            if !ok {
                return Err(invalid(format!(
                    "linux.sysctl {key}: not namespaced, or its namespace is the host's"
                )));
            }
            if key.contains('/') || key.split('.').any(|p| p.is_empty() || p == "..") {
                return Err(invalid(format!("linux.sysctl {key}: bad name")));
            }
            sysctls.push((
                Path::new("/proc/sys").join(key.replace('.', "/")),
                value.clone(),
            ));
        }
    }

    let root_propagation = match linux.rootfs_propagation().as_deref().unwrap_or("") {
        "" | "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        other => return Err(invalid(format!("linux.rootfsPropagation {other:?}"))),
    };

    let cgroups_path = linux
        .cgroups_path()
        .clone()
        .ok_or_else(|| invalid("linux.cgroupsPath missing"))?;
    let mut mounts = Vec::new();
    let mut dev_is_tmpfs = false;
    for (i, m) in spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let plan =
            mount_plan(m, &cgroups_path).and_then(|p| with_idmap(p, i, m, userns.as_ref()))?;
        if plan.dest == Path::new("dev") {
            dev_is_tmpfs = !matches!(plan.kind, MountKind::Bind { .. });
        }
        mounts.push(plan);
    }

    let mut devices = Vec::new();
    if dev_is_tmpfs {
        for (name, minor) in [
            ("null", 3),
            ("zero", 5),
            ("full", 7),
            ("random", 8),
            ("urandom", 9),
        ] {
            devices.push(default_device(name, 1, minor));
        }
        devices.push(default_device("tty", 5, 0));
    }
    for d in linux.devices().as_deref().unwrap_or_default() {
        let dp = device_plan(d)?;
        devices.retain(|x| x.path != dp.path);
        devices.push(dp);
    }

    let clean_list = |list: &Option<Vec<String>>| -> Vec<PathBuf> {
        list.as_deref()
            .unwrap_or_default()
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .collect()
    };
    Ok(Plan {
        rootfs,
        root_propagation,
        mounts,
        devices,
        dev_is_tmpfs,
        masked: clean_list(linux.masked_paths()),
        readonly_paths: clean_list(linux.readonly_paths()),
        root_readonly: root.readonly().unwrap_or(false),
        sysctls,
        hostname: spec.hostname().clone().filter(|h| !h.is_empty() && uts_new),
        domainname: spec
            .domainname()
            .clone()
            .filter(|h| !h.is_empty() && uts_new),
        join,
        userns,
        rootfs_tree,
        unshare,
        process: process_plan,
        cgroups_path,
        resources: linux.resources().clone().unwrap_or_default(),
        hooks,
        bundle_c: state.bundle_cstring(),
        state,
    })
}

#[allow(unsafe_code)]
fn owned(fd: std::os::fd::RawFd) -> OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: `fd` was just returned by open(2) and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Cleans a container path lexically into a path relative to the rootfs (`..` cannot climb
/// above `/`). Symlinks are resolved later, inside the rootfs.
pub(super) fn clean_relative(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}
