//! Who may enter the daemon's directories (CVE-2021-41103 class: a host user who reaches a
//! container's filesystem can run a setuid-root file the container wrote).
//!
//! Everything the daemon keeps is root's alone (0700): container filesystems, snapshots,
//! records, the pod manager's objects. Two directories of the state tree are 0711 (search
//! only, nothing listable), each for a reason:
//! - `<state>`: the CRI socket's group (`[grpc] socket_gid`) must reach `corral.sock`, and a
//!   user-namespaced pod's root (a host UID) must reach its rootfs;
//! - `<state>/containers`: that same pod root reaches `<id>/rootfs`; each `<id>` below is 0700,
//!   owned by the pod's root for a user-namespaced container and by root otherwise.
//!
//! Modes are set at creation and set again (`chmod`) whatever the umask (`corral_fsutil::mode`), and [`secure`] puts
//! them back at every start, so a tree made by an older daemon (0755) is closed on upgrade.

use std::io;
use std::path::Path;

/// Root's alone.
pub const PRIVATE: u32 = 0o700;
/// Searchable, not listable, by others (see the module documentation for where and why).
pub const SEARCHABLE: u32 = 0o711;

/// The directories of `<root>` the daemon's subsystems make.
const ROOT_DIRS: &[&str] = &[
    "content",
    "snapshots",
    "images",
    "pods",
    "containers",
    "cni",
    "kubelet",
];

pub use corral_fsutil::mode::create_dir as create;
use corral_fsutil::mode::restrict;

/// At start-up: the modes above on `<root>`, `<state>` and their top-level directories, and
/// 0700 on every container bundle directory an older daemon left open.
pub fn secure(root: &Path, state: &Path) -> io::Result<()> {
    let at = |p: &Path| {
        let shown = p.display().to_string();
        move |e: io::Error| io::Error::new(e.kind(), format!("{shown}: {e}"))
    };
    create(root, PRIVATE).map_err(at(root))?;
    for name in ROOT_DIRS {
        let dir = root.join(name);
        create(&dir, PRIVATE).map_err(at(&dir))?;
    }
    create(state, SEARCHABLE).map_err(at(state))?;
    let pods = state.join("pods");
    create(&pods, PRIVATE).map_err(at(&pods))?;
    let containers = state.join("containers");
    create(&containers, SEARCHABLE).map_err(at(&containers))?;
    for entry in std::fs::read_dir(&containers).map_err(at(&containers))? {
        let path = entry.map_err(at(&containers))?.path();
        if let Err(e) = restrict(&path, PRIVATE) {
            tracing::warn!(path = %path.display(), error = %e, "closing a container bundle directory");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("stat").mode() & 0o7777
    }

    #[test]
    fn an_old_open_tree_is_closed_at_start() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (root, state) = (tmp.path().join("root"), tmp.path().join("state"));
        for d in [
            root.join("containers/c1/upper"),
            root.join("kubelet/store"),
            state.join("containers/c1/rootfs"),
            state.join("pods/p1"),
        ] {
            std::fs::create_dir_all(&d).expect("mkdir");
        }
        for d in [
            &root,
            &state,
            &root.join("containers"),
            &state.join("containers/c1"),
        ] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        secure(&root, &state).expect("secure");
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("containers")), 0o700);
        assert_eq!(mode(&root.join("snapshots")), 0o700);
        assert_eq!(mode(&state), 0o711);
        assert_eq!(mode(&state.join("containers")), 0o711);
        assert_eq!(mode(&state.join("containers/c1")), 0o700);
        assert_eq!(mode(&state.join("pods")), 0o700);
    }

    #[test]
    fn create_sets_the_mode_whatever_the_umask() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let d = tmp.path().join("a/b");
        create(&d, SEARCHABLE).expect("create");
        assert_eq!(mode(&d), 0o711);
        create(&d, PRIVATE).expect("again");
        assert_eq!(mode(&d), 0o700);
    }
}
