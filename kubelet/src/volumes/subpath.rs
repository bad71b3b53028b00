//! `subPath` and `subPathExpr`: expanded against the container's environment, resolved once
//! beneath the volume to a descriptor (`openat2(RESOLVE_BENEATH)`), and bind-mounted from it
//! under `.subpaths/`, where no container can reach (CVE-2017-1002101, CVE-2021-25741).

use super::*;

/// Expands `$(VAR)` in a `subPathExpr`; an undefined or empty variable is an error.
pub(super) fn expand_sub_path_expr(
    expr: &str,
    env: Option<&Environment>,
) -> Result<String, String> {
    let missing = std::cell::RefCell::new(BTreeSet::new());
    let out = env::expand(expr, |name| {
        match env.and_then(|e| e.get(name)).filter(|v| !v.is_empty()) {
            Some(v) => Some(v.to_string()),
            None => {
                missing.borrow_mut().insert(name.to_string());
                Some(String::new())
            }
        }
    });
    let missing = missing.into_inner();
    if !missing.is_empty() {
        return Err(format!(
            "missing value for {}",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(out)
}

/// Resolves `sub` beneath the volume at `root` once, to an `O_PATH` descriptor: the existing
/// part in one `openat2(RESOLVE_BENEATH)` (symlinks are followed only while they stay inside
/// the volume), then each missing directory created (with the root's mode) and opened relative
/// to its parent without following any symlink. Refuses absolute paths, `..` and anything that
/// resolves outside the volume. The descriptor, not a path, is what gets mounted
/// ([`bind_sub_path`]): a container that swaps a directory for a symlink afterwards changes
/// nothing (CVE-2017-1002101, CVE-2021-25741).
pub(super) fn resolve_sub_path(root: &Path, sub: &str) -> Result<File, String> {
    let rel = Path::new(sub);
    if rel.is_absolute() {
        return Err(format!("subPath {sub:?} must not be an absolute path"));
    }
    if rel.components().any(|c| c == Component::ParentDir) {
        return Err(format!("subPath {sub:?} must not contain '..'"));
    }
    let root_fd = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(root)
        .map_err(|e| format!("{}: {e}", root.display()))?;
    let escapes = || {
        format!(
            "subpath {sub:?} not within volume path {:?}",
            root.display().to_string()
        )
    };
    let parts: Vec<_> = rel
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    // The longest prefix that exists, resolved beneath the root.
    let mut existing = parts.len();
    let mut dir = loop {
        let prefix: PathBuf = parts[..existing].iter().collect();
        let prefix = if existing == 0 {
            PathBuf::from(".")
        } else {
            prefix
        };
        let resolve = ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS;
        match open_beneath(&root_fd, &prefix, OFlag::empty(), resolve) {
            Ok(f) => break f,
            Err(Errno::ENOENT) if existing > 0 => existing -= 1,
            Err(Errno::EXDEV | Errno::ELOOP) => return Err(escapes()),
            Err(e) => return Err(format!("{sub}: {e}")),
        }
    };
    if existing == parts.len() {
        return Ok(dir);
    }
    let mode = root_fd
        .metadata()
        .map(|m| m.mode() & 0o7777)
        .map_err(|e| e.to_string())?;
    for part in &parts[existing..] {
        let name = Path::new(part.as_os_str());
        let created = match nix::sys::stat::mkdirat(
            Some(dir.as_raw_fd()),
            name,
            nix::sys::stat::Mode::from_bits_truncate(mode),
        ) {
            Ok(()) => true,
            Err(Errno::EEXIST) => false,
            Err(e) => return Err(format!("{sub}: {e}")),
        };
        dir = match open_beneath(&dir, name, OFlag::O_DIRECTORY, no_symlinks()) {
            Ok(f) => f,
            Err(Errno::ENOTDIR) => {
                return Err(format!("subPath {sub:?}: {part:?} is not a directory"));
            }
            Err(Errno::ELOOP | Errno::EXDEV) => return Err(escapes()),
            Err(e) => return Err(format!("{sub}: {e}")),
        };
        if created {
            // The exact mode, whatever the umask took away.
            fs::set_permissions(fd_path(&dir), fs::Permissions::from_mode(mode))
                .map_err(|e| format!("{sub}: {e}"))?;
        }
    }
    Ok(dir)
}

pub(super) fn no_symlinks() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS
}

/// `openat2(dir, path, O_PATH | flags, resolve)`.
pub(super) fn open_beneath(
    dir: &File,
    path: &Path,
    flags: OFlag,
    resolve: ResolveFlag,
) -> nix::Result<File> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC | flags)
        .resolve(resolve);
    let fd = nix::fcntl::openat2(dir.as_raw_fd(), path, how)?;
    // SAFETY: openat2 returned a new descriptor that nobody else owns.
    #[allow(unsafe_code)]
    Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Where the subPath mounts of a pod's containers are bound (`<volumes>/.subpaths/<volume>/
/// <container>/<index of the volumeMount>`): under the pod's volume dir, which no container
/// reaches, so the runtime resolving this path again cannot be redirected. [`teardown`]
/// unmounts them with the rest.
pub(super) const SUBPATHS: &str = ".subpaths";

/// Binds the file or directory `resolved` refers to on `target` (created as a file or a
/// directory to match; an older bind there is detached first), from the descriptor.
pub(super) fn bind_sub_path(resolved: &File, target: &Path) -> io::Result<()> {
    let is_dir = resolved.metadata()?.is_dir();
    if let Some(parent) = target.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
    }
    // A container restarted: its earlier bind is detached (the old container keeps its own
    // copy of the mount in its namespace).
    for _ in 0..8 {
        if nix::mount::umount2(target, MntFlags::MNT_DETACH).is_err() {
            break;
        }
    }
    match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() == is_dir && !m.file_type().is_symlink() => {}
        Ok(m) if m.is_dir() => fs::remove_dir(target)?,
        Ok(_) => fs::remove_file(target)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if is_dir {
        match fs::DirBuilder::new().mode(0o700).create(target) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    } else {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(target)?;
    }
    nix::mount::mount(
        Some(&fd_path(resolved)),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(io::Error::from)
}
