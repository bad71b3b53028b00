//! The container's mounts: containerd's defaults, the pod's files, then the CRI mounts.

use std::path::Path;

use corral_cri_api::v1::{LinuxContainerSecurityContext, MountPropagation};
use oci_spec::runtime::Mount;

use super::linux::{Ns, NsPlan};
use super::{ContainerInputs, SpecError, check_no_nul, clean_container_path};

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(dest.into());
    m.set_typ(Some(typ.to_string()));
    m.set_source(Some(source.into()));
    m.set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    m
}

fn bind(dest: &str, source: &Path, options: &[&str]) -> Mount {
    let mut m = mount(dest, "bind", "", options);
    m.set_source(Some(source.to_path_buf()));
    m
}

/// containerd's default mounts, `/dev/shm` as the IPC namespace requires, and the pod's
/// `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` (read-only with a read-only rootfs).
pub(super) fn defaults(
    input: &ContainerInputs<'_>,
    readonly_rootfs: bool,
    plan: &NsPlan,
    privileged: bool,
) -> Vec<Mount> {
    // A privileged container gets sysfs and its cgroups writable.
    let sys_rw = if privileged { "rw" } else { "ro" };
    let p = &input.pod_paths;
    let shm_opts = ["rbind", "rprivate", "nosuid", "nodev", "noexec", "rw"];
    let shm = match (&plan.ipc, p.shm) {
        // A private IPC namespace gets a private /dev/shm.
        (Ns::New, _) => mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        (_, Some(dir)) => bind("/dev/shm", dir, &shm_opts),
        (_, None) => bind("/dev/shm", Path::new("/dev/shm"), &shm_opts),
    };
    let file_opts: &[&str] = if readonly_rootfs {
        &["rbind", "rprivate", "ro"]
    } else {
        &["rbind", "rprivate", "rw"]
    };
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        shm,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys_rw],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", sys_rw],
        ),
        bind("/etc/hosts", p.hosts, file_opts),
        bind("/etc/resolv.conf", p.resolv_conf, file_opts),
        bind("/etc/hostname", p.hostname, file_opts),
    ]
}

/// All mounts in order, and `linux.rootfsPropagation` when a CRI mount needs one (`rslave` for
/// `HOST_TO_CONTAINER`, `rshared` for `BIDIRECTIONAL`, so that propagation reaches the mount).
///
/// A CRI mount replaces the default with the same destination (a CRI `/dev` replaces every
/// default under `/dev` too). CRI mounts are sorted (stably) by depth so that a parent is mounted
/// before what goes inside it.
pub(super) fn build(
    input: &ContainerInputs<'_>,
    sc: Option<&LinuxContainerSecurityContext>,
    plan: &NsPlan,
    privileged: bool,
) -> Result<(Vec<Mount>, Option<String>), SpecError> {
    let mut cri = Vec::new();
    let mut propagation: Option<&str> = None;
    for (i, m) in input.config.mounts.iter().enumerate() {
        let field = format!("mounts[{i}]");
        // uid_mappings/gid_mappings: checked against the pod's user namespace (`userns`).
        let dest = clean_container_path(&format!("{field}.container_path"), &m.container_path)?;
        if m.image.as_ref().is_some_and(|s| !s.image.is_empty()) {
            // Mounted by the caller, read-only, nosuid, nodev and noexec; the bind keeps that.
            let source = input
                .image_volumes
                .iter()
                .find(|(n, _)| *n == i)
                .map(|(_, p)| p.clone())
                .ok_or_else(|| SpecError::invalid(format!("{field}.image: not mounted")))?;
            cri.push(bind(
                &dest,
                &source,
                &["rbind", "rprivate", "ro", "nosuid", "nodev", "noexec"],
            ));
            continue;
        }
        let source = host_source(&format!("{field}.host_path"), &m.host_path)?;
        let prop = MountPropagation::try_from(m.propagation).map_err(|_| {
            SpecError::invalid(format!(
                "{field}.propagation: unknown value {}",
                m.propagation
            ))
        })?;
        let prop = match prop {
            MountPropagation::PropagationPrivate => "rprivate",
            MountPropagation::PropagationHostToContainer => {
                propagation.get_or_insert("rslave");
                "rslave"
            }
            MountPropagation::PropagationBidirectional => {
                propagation = Some("rshared");
                "rshared"
            }
        };
        let rw = match (m.readonly, m.recursive_read_only) {
            (_, false) if m.readonly => "ro",
            (_, false) => "rw",
            (true, true) if prop == "rprivate" => "rro",
            (false, true) => {
                return Err(SpecError::invalid(format!(
                    "{field}.recursive_read_only: needs readonly to be true"
                )));
            }
            (true, true) => {
                return Err(SpecError::invalid(format!(
                    "{field}.recursive_read_only: needs propagation PROPAGATION_PRIVATE"
                )));
            }
        };
        if m.recursive_read_only && !corral_runtime::has_mount_setattr() {
            return Err(SpecError::FailedPrecondition(format!(
                "{field}.recursive_read_only: this kernel lacks mount_setattr (Linux 5.12)"
            )));
        }
        cri.push(bind(&dest, &source, &["rbind", prop, rw]));
    }
    cri.sort_by_key(|m| m.destination().components().count());

    let has = |d: &str| cri.iter().any(|m| m.destination() == Path::new(d));
    let readonly_rootfs = sc.is_some_and(|s| s.readonly_rootfs);
    let mut out: Vec<Mount> = defaults(input, readonly_rootfs, plan, privileged)
        .into_iter()
        .filter(|m| {
            let d = m.destination();
            let replaced = cri.iter().any(|c| c.destination() == d);
            let under_cri_dev = has("/dev") && d.starts_with("/dev");
            !replaced && !under_cri_dev
        })
        .collect();
    out.extend(cri);
    Ok((out, propagation.map(String::from)))
}

/// A CRI `host_path`: absolute and existing (`NotFound` otherwise), symlinks resolved.
fn host_source(field: &str, host_path: &str) -> Result<std::path::PathBuf, SpecError> {
    check_no_nul(field, host_path)?;
    if host_path.is_empty() {
        return Err(SpecError::invalid(format!("{field} is empty")));
    }
    if !host_path.starts_with('/') {
        return Err(SpecError::invalid(format!(
            "{field}: {host_path:?} is not an absolute path"
        )));
    }
    std::fs::canonicalize(host_path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            SpecError::NotFound(format!("{field}: {host_path:?} does not exist"))
        }
        _ => SpecError::io(host_path, e),
    })
}
