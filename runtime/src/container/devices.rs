//! Child side: device nodes and the `/dev` symlinks.

use std::path::Path;

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};

use super::mounts::{Root, fd_path, resolve_in_root};
use super::plan::Plan;
use crate::report::{ChildResult, Step};

/// Creates `linux.devices` (plus runc's defaults when `/dev` is a tmpfs) and, on a tmpfs
/// `/dev`, the `fd`, `stdin`, `stdout`, `stderr` and `ptmx` symlinks.
pub(super) fn create(root: &Root, plan: &Plan) -> ChildResult {
    for d in &plan.devices {
        let show = || format!("create device /{}", d.path.display());
        let host = in_root(root, &d.path).step_with(show)?;
        if let Some(parent) = host.parent() {
            std::fs::create_dir_all(parent).step_with(show)?;
        }
        let _ = std::fs::remove_file(&host);
        match nix::sys::stat::mknod(&host, d.kind, d.mode, d.dev) {
            Ok(()) => {
                // mknod applies the umask; set the exact mode.
                nix::sys::stat::fchmodat(
                    None,
                    &host,
                    d.mode,
                    nix::sys::stat::FchmodatFlags::NoFollowSymlink,
                )
                .step_with(show)?;
                nix::unistd::chown(
                    &host,
                    Some(nix::unistd::Uid::from_raw(d.uid)),
                    Some(nix::unistd::Gid::from_raw(d.gid)),
                )
                .step_with(show)?;
            }
            Err(Errno::EPERM) => {
                // No mknod here (e.g. nested): bind the host's node instead.
                let target = root.prepare(&d.path, false)?;
                let source = Path::new("/").join(&d.path);
                mount(
                    Some(&source),
                    &fd_path(&target),
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .step_with(show)?;
            }
            Err(e) => return Err(e).step_with(show),
        }
    }
    if plan.dev_is_tmpfs {
        for (link, target) in [
            ("dev/fd", "/proc/self/fd"),
            ("dev/stdin", "/proc/self/fd/0"),
            ("dev/stdout", "/proc/self/fd/1"),
            ("dev/stderr", "/proc/self/fd/2"),
            ("dev/ptmx", "pts/ptmx"),
        ] {
            let show = || format!("symlink /{link}");
            let host = in_root(root, Path::new(link)).step_with(show)?;
            let _ = std::fs::remove_file(&host);
            std::os::unix::fs::symlink(target, &host).step_with(show)?;
        }
    }
    Ok(())
}

/// The host path of `rel` with its parent resolved in the rootfs (the last component itself is
/// replaced, not followed).
fn in_root(root: &Root, rel: &Path) -> std::io::Result<std::path::PathBuf> {
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel
        .file_name()
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(root
        .path
        .join(resolve_in_root(&root.path, parent)?)
        .join(name))
}
