//! Ownership of the root and state directories and of the socket.
//!
//! A daemon holds an exclusive `flock` on `corrald.lock` in both its root and its state
//! directory for its whole life, so a second daemon pointed at the same directories refuses to
//! start instead of sharing them. A socket path that answers a connection belongs to a live
//! server and is never replaced; one that refuses connections is stale and is replaced.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Why the daemon cannot take its directories or socket.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{dir} is in use by another corrald ({holder}); refusing to share it")]
    Busy { dir: PathBuf, holder: String },
    #[error("socket {0} is served by another live process; refusing to replace it")]
    SocketInUse(PathBuf),
    #[error("{0} exists and is not a socket; refusing to replace it")]
    NotASocket(PathBuf),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LockError {
    let path = path.to_path_buf();
    move |source| LockError::Io { op, path, source }
}

/// Held locks; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DirLock {
    _file: Flock<std::fs::File>,
}

/// Takes the lock file in `dir`, creating the directory.
pub fn lock_dir(dir: &Path) -> Result<DirLock, LockError> {
    std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
    let path = dir.join("corrald.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io("open", &path))?;
    let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((_, errno)) if errno == nix::errno::Errno::EWOULDBLOCK => {
            let holder = std::fs::read_to_string(&path)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .map_or_else(|| "pid unknown".into(), |pid| format!("pid {pid}"));
            return Err(LockError::Busy {
                dir: dir.to_path_buf(),
                holder,
            });
        }
        Err((_, errno)) => return Err(io("lock", &path)(errno.into())),
    };
    locked.set_len(0).map_err(io("truncate", &path))?;
    writeln!(locked, "{}", std::process::id()).map_err(io("write", &path))?;
    Ok(DirLock { _file: locked })
}

/// Binds the CRI socket: replaces a stale socket file, refuses a live one or a non-socket.
pub fn bind_socket(
    path: &Path,
    mode: u32,
    gid: Option<u32>,
) -> Result<tokio::net::UnixListener, LockError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io("create directory", parent))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(LockError::SocketInUse(path.to_path_buf()));
            }
            tracing::info!(socket = %path.display(), "replacing stale socket");
            std::fs::remove_file(path).map_err(io("remove stale socket", path))?;
        }
        Ok(_) => return Err(LockError::NotASocket(path.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("stat", path)(e)),
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(io("bind", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(io("chmod", path))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(io("chown", path))?;
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_and_names_the_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = lock_dir(dir.path()).expect("first lock");
        let err = lock_dir(dir.path()).expect_err("second lock");
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        lock_dir(dir.path()).expect("lock after release");
    }

    #[tokio::test]
    async fn live_socket_is_kept_and_stale_one_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sock");
        let live = bind_socket(&path, 0o660, None).expect("bind");
        assert!(matches!(
            bind_socket(&path, 0o660, None),
            Err(LockError::SocketInUse(_))
        ));
        drop(live);
        let again = bind_socket(&path, 0o600, None).expect("rebind stale");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        drop(again);
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").expect("write");
        assert!(matches!(
            bind_socket(&file, 0o660, None),
            Err(LockError::NotASocket(_))
        ));
    }
}
