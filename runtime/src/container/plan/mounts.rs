//! The mount part of a plan: each OCI mount checked and turned into a `MountPlan` (flags,
//! propagation, `rro`, bind sources opened as detached trees in the caller, idmapped
//! mounts), and the check that the user namespace's root can reach the rootfs.

use super::*;

pub(super) fn mount_plan(
    m: &oci_spec::runtime::Mount,
    cgroups_path: &Path,
) -> Result<MountPlan, Error> {
    let dest = clean_relative(m.destination());
    if !m.destination().is_absolute() {
        return Err(invalid(format!(
            "mount destination {} is not absolute",
            m.destination().display()
        )));
    }
    let fstype = m.typ().clone().unwrap_or_default();
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    let mut propagation = Vec::new();
    let mut bind = fstype == "bind";
    let mut recursive = false;
    let mut recursive_readonly = false;
    for opt in m.options().as_deref().unwrap_or_default() {
        let (set, clear) = match opt.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rro" => {
                recursive_readonly = true;
                (MsFlags::MS_RDONLY, MsFlags::empty())
            }
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "bind" => {
                bind = true;
                continue;
            }
            "rbind" => {
                bind = true;
                recursive = true;
                continue;
            }
            "private" | "rprivate" | "slave" | "rslave" | "shared" | "rshared" | "unbindable"
            | "runbindable" => {
                let mut p = match opt.trim_start_matches('r') {
                    "private" => MsFlags::MS_PRIVATE,
                    "slave" => MsFlags::MS_SLAVE,
                    "shared" => MsFlags::MS_SHARED,
                    _ => MsFlags::MS_UNBINDABLE,
                };
                if opt.starts_with('r') {
                    p |= MsFlags::MS_REC;
                }
                propagation.push(p);
                continue;
            }
            // The mapping itself comes from uidMappings/gidMappings (see `with_idmap`).
            "defaults" | "tmpcopyup" | "idmap" | "ridmap" => continue,
            other => {
                data.push(other.to_owned());
                continue;
            }
        };
        flags = (flags | set) & !clear;
    }
    let source = m.source().clone().unwrap_or_default();
    let kind = if bind {
        if !source.is_absolute() {
            return Err(invalid(format!(
                "bind mount source {} is not absolute",
                source.display()
            )));
        }
        // A missing source is reported by the child as the mount failing (ENOENT).
        let dir = std::fs::metadata(&source)
            .map(|md| md.is_dir())
            .unwrap_or(true);
        MountKind::Bind {
            source,
            recursive,
            dir,
            tree: None,
        }
    } else if fstype == "cgroup" || fstype == "cgroup2" {
        let all = cgroups::hierarchies()?;
        if all.iter().all(|h| h.v2) {
            MountKind::Fs {
                fstype: "cgroup2".into(),
                source: "cgroup".into(),
            }
        } else {
            // The directories exist once the cgroup is created (after the plan); the child
            // skips the ones that do not.
            let binds = all
                .iter()
                .filter(|h| !h.v2 && !h.options.contains("name="))
                .filter_map(|h| {
                    let name = h.mount_point.file_name()?.to_string_lossy().into_owned();
                    Some((name, h.dir(cgroups_path)))
                })
                .collect();
            MountKind::CgroupV1 { binds }
        }
    } else {
        if fstype.is_empty() {
            return Err(invalid(format!(
                "mount {} has no type",
                m.destination().display()
            )));
        }
        let source = if source.as_os_str().is_empty() {
            fstype.clone()
        } else {
            source.to_string_lossy().into_owned()
        };
        MountKind::Fs { fstype, source }
    };
    if recursive_readonly && !matches!(kind, MountKind::Bind { .. }) {
        return Err(invalid(format!(
            "mount {}: rro applies to bind mounts only",
            m.destination().display()
        )));
    }
    let data = (!data.is_empty()).then(|| data.join(","));
    let mut kind = kind;
    if let MountKind::Bind {
        source,
        recursive,
        tree,
        ..
    } = &mut kind
        && propagation.iter().all(|p| p.contains(MsFlags::MS_PRIVATE))
    {
        *tree = detached_bind(source, *recursive);
    }
    Ok(MountPlan {
        dest,
        kind,
        flags,
        data,
        propagation,
        recursive_readonly,
    })
}

/// A private bind's source, cloned here (in the caller, before any container process exists)
/// as a detached tree the init attaches: the path is resolved once, so nothing written later
/// where the source lies (a symlink swapped in by another container) changes what is mounted.
/// A source that cannot be cloned (missing, or a kernel before 5.2) is bound by path in the
/// child, which reports the failure as before. Mounts with shared or slave propagation keep
/// the path bind: a detached copy joins no peer group on kernels before 6.15.
pub(super) fn detached_bind(source: &Path, recursive: bool) -> Option<OwnedFd> {
    let c = std::ffi::CString::new(source.as_os_str().as_encoded_bytes()).ok()?;
    crate::sys::open_tree_clone(&c, recursive).ok()
}

/// The container's init sets the container up as the user namespace's root, by host paths:
/// every directory above the rootfs must let that user through (search permission).
pub(super) fn searchable_by_root(rootfs: &Path, m: &IdMappings) -> Result<(), Error> {
    match m.unsearchable_ancestor(rootfs, 1)? {
        None => Ok(()),
        Some((dir, mode)) => Err(invalid(format!(
            "root.path: {} (mode {mode:o}) cannot be searched by the user namespace's root (host UID {}): it needs search permission for others",
            dir.display(),
            IdMappings::host_of(&m.uids, 0).unwrap_or(0)
        ))),
    }
}

/// For a mount with `uidMappings`/`gidMappings`: checks they are the container's own (the
/// mount is idmapped with the container's user namespace) and makes the idmapped tree.
pub(super) fn with_idmap(
    mut plan: MountPlan,
    i: usize,
    m: &oci_spec::runtime::Mount,
    userns: Option<&UsernsPlan>,
) -> Result<MountPlan, Error> {
    let uids = m.uid_mappings().clone().unwrap_or_default();
    let gids = m.gid_mappings().clone().unwrap_or_default();
    if uids.is_empty() && gids.is_empty() {
        return Ok(plan);
    }
    let field = format!("mounts[{i}] ({})", m.destination().display());
    let Some(u) = userns else {
        return Err(invalid(format!(
            "{field}: uidMappings/gidMappings need a user namespace"
        )));
    };
    let same = |a: &[oci_spec::runtime::LinuxIdMapping],
                b: &[oci_spec::runtime::LinuxIdMapping]| {
        crate::userns::triples(a) == crate::userns::triples(b)
    };
    if !same(&uids, &u.mappings.uids) || !same(&gids, &u.mappings.gids) {
        return Err(invalid(format!(
            "{field}: uidMappings/gidMappings must equal the container's linux.uidMappings/gidMappings"
        )));
    }
    match &mut plan.kind {
        MountKind::Bind {
            source,
            recursive,
            tree,
            ..
        } => {
            *tree = Some(crate::userns::idmapped_tree(
                source,
                u.fd.as_fd(),
                *recursive,
            )?);
        }
        _ => {
            return Err(invalid(format!(
                "{field}: uidMappings/gidMappings are only supported on bind mounts"
            )));
        }
    }
    Ok(plan)
}
