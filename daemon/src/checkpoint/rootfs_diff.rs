//! A container's writable layer (its overlay upper directory) as `rootfs-diff.tar` plus
//! `deleted.files`, and back.
//!
//! Writing reads the upper directory through descriptors (`corral_fsutil::walk`: `openat`
//! relative to the parent, `O_NOFOLLOW`, never a path longer than one name), so a container
//! that replaces a directory with a symlink while the checkpoint is written cannot make the
//! daemon read a file outside its layer: a symlink is stored as a symlink. Overlay whiteouts
//! (character devices 0:0) become `deleted.files` entries, and so does every entry of the
//! image (the lower directories) that an opaque directory (`trusted.overlay.opaque=y`: removed
//! and made again) hides; other devices, fifos and sockets are left out. A file is stored with the size it had when opened (cut or padded with zeros
//! if the still-running container changes it meanwhile).
//!
//! Applying fills the new container's upper directory *before* its overlay is mounted, which
//! is how overlayfs expects its layers to change: the tar's entries are unpacked with their
//! owners and modes but without extended attributes (a `trusted.overlay.*` attribute would
//! change what the overlay shows), devices refused; each deleted path becomes a whiteout. A
//! parent directory the tar does not carry is made with the owner and mode it has in the
//! image (the lower directories), so `/tmp` stays 1777.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use corral_fsutil::walk::{Entry, Visitor};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};

use super::archive::clean;
use super::{CheckpointError, Result};

/// Writes the tar of `upper` to `out` (created, 0600); returns the deleted paths (absolute,
/// as CRI-O's `deleted.files` lists them). `lowers` are the image's layer directories (for
/// what opaque directories hide).
pub fn write(upper: &Path, lowers: &[PathBuf], out: &Path) -> Result<Vec<String>> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .map_err(|e| CheckpointError::io(out, e))?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| CheckpointError::io(out, e))?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    tar.follow_symlinks(false);
    let mut w = DiffWriter {
        tar,
        path: Vec::new(),
        deleted: Vec::new(),
        lowers,
    };
    corral_fsutil::walk::walk(upper, &mut w).map_err(|e| CheckpointError::io(upper, e.into()))?;
    let DiffWriter {
        tar, mut deleted, ..
    } = w;
    deleted.sort();
    tar.into_inner()
        .and_then(|mut b| {
            b.flush()?;
            b.into_inner().map_err(|e| e.into_error())?.sync_all()
        })
        .map_err(|e| CheckpointError::io(out, e))?;
    Ok(deleted)
}

struct DiffWriter<'a, W: Write> {
    tar: tar::Builder<W>,
    /// The names from the root down to the entry being visited.
    path: Vec<OsString>,
    deleted: Vec<String>,
    lowers: &'a [PathBuf],
}

impl<W: Write> DiffWriter<'_, W> {
    /// Lists as deleted what the image has in directory `rel` that the opaque upper directory
    /// at `at` does not.
    fn hidden_by_opaque(&mut self, at: &Path, rel: &Path) -> io::Result<()> {
        let present: std::collections::HashSet<OsString> = std::fs::read_dir(at)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        let mut hidden = std::collections::BTreeSet::new();
        for lower in self.lowers {
            if let Some(dir) = real_dir(lower, rel)
                && let Ok(entries) = std::fs::read_dir(&dir)
            {
                hidden.extend(
                    entries
                        .flatten()
                        .map(|e| e.file_name())
                        .filter(|n| !present.contains(n)),
                );
            }
        }
        for name in hidden {
            self.deleted
                .push(format!("/{}", rel.join(name).to_string_lossy()));
        }
        Ok(())
    }
}

impl<W: Write> Visitor for DiffWriter<'_, W> {
    fn entry(&mut self, e: &Entry<'_>) -> io::Result<()> {
        self.path.truncate(e.depth.saturating_sub(1));
        self.path
            .push(std::ffi::OsStr::from_bytes(e.name.to_bytes()).to_os_string());
        let rel: PathBuf = self.path.iter().collect();
        let st = e.stat;
        let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        let mut header = tar::Header::new_gnu();
        header.set_mode(st.st_mode & 0o7777);
        header.set_uid(u64::from(st.st_uid));
        header.set_gid(u64::from(st.st_gid));
        header.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
        header.set_size(0);
        // `/proc/self/fd/<dir>/<name>`: the entry itself through its directory's descriptor.
        let at = e.proc_path();
        match kind {
            SFlag::S_IFDIR => {
                header.set_entry_type(tar::EntryType::Directory);
                self.tar.append_data(&mut header, &rel, io::empty())?;
                if is_opaque(&at) {
                    self.hidden_by_opaque(&at, &rel)?;
                }
                Ok(())
            }
            SFlag::S_IFREG => {
                let file = match std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_NONBLOCK)
                    .open(&at)
                {
                    // Removed (or replaced by a symlink) by the running container since the
                    // walk saw it.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(()),
                    other => other?,
                };
                let now = file.metadata()?;
                if !now.is_file() {
                    return Ok(());
                }
                let size = now.len();
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(size);
                let data = Exact {
                    inner: file,
                    left: size,
                };
                self.tar.append_data(&mut header, &rel, data)
            }
            SFlag::S_IFLNK => {
                let target = match std::fs::read_link(&at) {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    other => other?,
                };
                header.set_entry_type(tar::EntryType::Symlink);
                self.tar.append_link(&mut header, &rel, &target)
            }
            SFlag::S_IFCHR if st.st_rdev == 0 => {
                self.deleted.push(format!("/{}", rel.to_string_lossy()));
                Ok(())
            }
            _ => {
                tracing::debug!(path = %rel.display(), "rootfs diff: leaving out a device, fifo or socket");
                Ok(())
            }
        }
    }
}

/// Whether the directory at `path` (not followed if a symlink) is an opaque overlay directory.
#[allow(unsafe_code)]
fn is_opaque(path: &Path) -> bool {
    let Ok(p) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut value = [0u8; 2];
    // SAFETY: both strings are NUL-terminated and live across the call; the buffer is ours and
    // its length is passed.
    let n = unsafe {
        libc::lgetxattr(
            p.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    n == 1 && value[0] == b'y'
}

/// `lower/rel` when every component of it is a directory and none a symlink.
fn real_dir(lower: &Path, rel: &Path) -> Option<PathBuf> {
    let mut at = lower.to_path_buf();
    for c in rel.components() {
        at.push(c);
        if !std::fs::symlink_metadata(&at).ok()?.is_dir() {
            return None;
        }
    }
    Some(at)
}

/// Reads exactly `left` bytes: the file's, then zeros if it shrank.
struct Exact<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        let n = match self.inner.read(&mut buf[..want])? {
            0 => {
                buf[..want].fill(0);
                want
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// Applies `diff` (a `rootfs-diff.tar`, if the archive has one) and `deleted` (the paths of
/// `deleted.files`) to `upper`, the new container's empty upper directory, before its overlay
/// is mounted; `lowers` are the image's layer directories, topmost first. `archive` names the
/// checkpoint archive in errors.
pub fn apply(
    diff: Option<&Path>,
    deleted: &[String],
    upper: &Path,
    lowers: &[PathBuf],
    archive: &Path,
) -> Result<()> {
    let invalid = |why: String| CheckpointError::Invalid {
        archive: archive.to_path_buf(),
        why: format!("{}: {why}", super::dump::ROOTFS_DIFF),
    };
    if let Some(diff) = diff {
        let file = File::open(diff).map_err(|e| CheckpointError::io(diff, e))?;
        let mut tar = tar::Archive::new(io::BufReader::new(file));
        tar.set_preserve_permissions(true);
        tar.set_preserve_ownerships(true);
        tar.set_preserve_mtime(true);
        tar.set_unpack_xattrs(false);
        tar.set_overwrite(true);
        let entries = tar
            .entries()
            .map_err(|e| invalid(format!("not a tar archive: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| invalid(format!("not a tar archive: {e}")))?;
            let raw = entry
                .path()
                .map_err(|e| invalid(format!("an entry's name: {e}")))?
                .into_owned();
            let rel = clean(&raw).ok_or_else(|| {
                invalid(format!(
                    "entry {} leaves the rootfs (absolute or '..')",
                    raw.display()
                ))
            })?;
            if rel.as_os_str().is_empty() {
                continue;
            }
            use tar::EntryType as T;
            match entry.header().entry_type() {
                T::Regular | T::Continuous | T::Directory | T::Symlink | T::Link => {}
                other => {
                    return Err(invalid(format!(
                        "entry {} is a {other:?}: devices and fifos are not restored",
                        raw.display()
                    )));
                }
            }
            if let Some(parent) = rel.parent() {
                make_parents(upper, lowers, parent, &invalid)?;
            }
            let inside = entry.unpack_in(upper).map_err(|e| {
                let cause = std::error::Error::source(&e)
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default();
                invalid(format!("unpacking {}: {e}{cause}", raw.display()))
            })?;
            if !inside {
                return Err(invalid(format!(
                    "entry {} leaves the rootfs (through a link)",
                    raw.display()
                )));
            }
        }
    }
    for path in deleted {
        // CRI-O lists them from the rootfs' root: `/tmp/gone`.
        let rel = clean(Path::new(path.trim_start_matches('/'))).ok_or_else(|| {
            CheckpointError::Invalid {
                archive: archive.to_path_buf(),
                why: format!("{}: {path:?} leaves the rootfs", super::dump::DELETED_FILES),
            }
        })?;
        let Some(parent) = rel.parent() else { continue };
        if rel.as_os_str().is_empty() {
            continue;
        }
        make_parents(upper, lowers, parent, &invalid)?;
        let target = upper.join(&rel);
        if std::fs::symlink_metadata(&target).is_ok() {
            continue; // the diff made it again
        }
        mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
            .map_err(|e| CheckpointError::io(&target, e.into()))?;
    }
    Ok(())
}

/// Makes the directories of `rel` below `upper` that are missing, each with the owner and mode
/// the image gives it; one that exists must be a directory (not a symlink the diff made).
fn make_parents(
    upper: &Path,
    lowers: &[PathBuf],
    rel: &Path,
    invalid: &dyn Fn(String) -> CheckpointError,
) -> Result<()> {
    let mut at = upper.to_path_buf();
    let mut sub = PathBuf::new();
    for c in rel.components() {
        at.push(c);
        sub.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => {
                return Err(invalid(format!(
                    "{} is not a directory, yet entries go below it",
                    sub.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir(&at).map_err(|e| CheckpointError::io(&at, e))?;
                let (mode, uid, gid) = lower_dir(lowers, &sub).unwrap_or((0o755, 0, 0));
                std::os::unix::fs::lchown(&at, Some(uid), Some(gid))
                    .map_err(|e| CheckpointError::io(&at, e))?;
                std::fs::set_permissions(&at, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| CheckpointError::io(&at, e))?;
            }
            Err(e) => return Err(CheckpointError::io(&at, e)),
        }
    }
    Ok(())
}

/// Mode, owner and group of directory `rel` in the topmost lower layer that has it as a
/// directory reached without a symlink.
fn lower_dir(lowers: &[PathBuf], rel: &Path) -> Option<(u32, u32, u32)> {
    'layers: for lower in lowers {
        let mut at = lower.clone();
        let mut meta = None;
        for c in rel.components() {
            at.push(c);
            match std::fs::symlink_metadata(&at) {
                Ok(m) if m.is_dir() => meta = Some(m),
                _ => continue 'layers,
            }
        }
        return meta.map(|m| (m.mode() & 0o7777, m.uid(), m.gid()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::archive::tests::{Raw, raw_entry};

    #[allow(unsafe_code)]
    fn set_opaque(path: &std::ffi::CStr) -> bool {
        // SAFETY: NUL-terminated strings and a buffer with its length.
        unsafe {
            libc::lsetxattr(
                path.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                b"y".as_ptr().cast(),
                1,
                0,
            ) == 0
        }
    }

    #[test]
    fn a_writable_layer_round_trips_with_whiteouts_and_symlinks_kept_as_links() {
        let upper = tempfile::tempdir().unwrap();
        let u = upper.path();
        std::fs::create_dir_all(u.join("tmp/deep")).unwrap();
        std::fs::set_permissions(u.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
        std::fs::write(u.join("tmp/deep/count"), b"42").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", u.join("tmp/link")).unwrap();
        mknod(
            &u.join("tmp/gone"),
            SFlag::S_IFCHR,
            Mode::empty(),
            makedev(0, 0),
        )
        .unwrap();
        let out = tempfile::tempdir().unwrap();
        let tar_path = out.path().join("rootfs-diff.tar");
        // The image has /etc/{a,b} and /tmp/old; the container removed and made /etc again
        // (opaque, now holding only b) and removed /tmp/gone.
        let lower = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(lower.path().join("etc")).unwrap();
        std::fs::write(lower.path().join("etc/a"), b"").unwrap();
        std::fs::write(lower.path().join("etc/b"), b"").unwrap();
        std::fs::create_dir(u.join("etc")).unwrap();
        std::fs::write(u.join("etc/b"), b"new b").unwrap();
        let opaque = std::ffi::CString::new(u.join("etc").as_os_str().as_bytes()).unwrap();
        assert!(
            set_opaque(&opaque),
            "setting trusted.overlay.opaque (needs root)"
        );
        let deleted = write(u, &[lower.path().to_path_buf()], &tar_path).unwrap();
        assert_eq!(deleted, ["/etc/a", "/tmp/gone"]);

        let fresh = tempfile::tempdir().unwrap();
        let f = fresh.path();
        apply(Some(&tar_path), &deleted, f, &[], Path::new("/a.tar")).unwrap();
        assert_eq!(std::fs::read(f.join("tmp/deep/count")).unwrap(), b"42");
        assert_eq!(
            std::fs::read_link(f.join("tmp/link")).unwrap(),
            Path::new("/etc/shadow")
        );
        let m = std::fs::metadata(f.join("tmp")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o1777);
        let w = std::fs::symlink_metadata(f.join("tmp/gone")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(
            &w.file_type()
        ));
        assert_eq!(w.rdev(), 0);
    }

    #[test]
    fn a_missing_parent_takes_the_image_s_mode_and_owner() {
        let lower = tempfile::tempdir().unwrap();
        std::fs::create_dir(lower.path().join("tmp")).unwrap();
        std::fs::set_permissions(
            lower.path().join("tmp"),
            std::fs::Permissions::from_mode(0o1777),
        )
        .unwrap();
        let mut b = tar::Builder::new(Vec::new());
        raw_entry(&mut b, "tmp/count", tar::EntryType::Regular, "", b"7");
        let out = tempfile::tempdir().unwrap();
        let diff = out.path().join("d.tar");
        std::fs::write(&diff, b.into_inner().unwrap()).unwrap();
        let upper = tempfile::tempdir().unwrap();
        let lowers = [lower.path().to_path_buf()];
        let deleted = ["/etc/motd".to_owned()];
        apply(
            Some(&diff),
            &deleted,
            upper.path(),
            &lowers,
            Path::new("/a.tar"),
        )
        .unwrap();
        let m = std::fs::metadata(upper.path().join("tmp")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o1777);
        assert!(std::fs::symlink_metadata(upper.path().join("etc/motd")).is_ok());
    }

    #[test]
    fn a_hostile_diff_is_refused_and_writes_nothing_outside() {
        use tar::EntryType as T;
        let outside = tempfile::tempdir().unwrap();
        let o = outside.path().display().to_string();
        let cases: Vec<(Vec<Raw>, &str)> = vec![
            (
                vec![("../escape", T::Regular, "", b"x")],
                "leaves the rootfs",
            ),
            (vec![("/escape", T::Regular, "", b"x")], "leaves the rootfs"),
            (
                vec![
                    ("l", T::Symlink, &o, b""),
                    ("l/escape", T::Regular, "", b"x"),
                ],
                "not a directory",
            ),
            (vec![("dev", T::Block, "", b"")], "devices"),
            (vec![("h", T::Link, "../../etc/passwd", b"")], "unpacking"),
            (vec![("h", T::Link, "/etc/passwd", b"")], "unpacking"),
        ];
        for (entries, want) in cases {
            let mut b = tar::Builder::new(Vec::new());
            for (name, kind, link, data) in &entries {
                raw_entry(&mut b, name, *kind, link, data);
            }
            let dir = tempfile::tempdir().unwrap();
            let diff = dir.path().join("d.tar");
            std::fs::write(&diff, b.into_inner().unwrap()).unwrap();
            let upper = dir.path().join("upper");
            std::fs::create_dir(&upper).unwrap();
            let err = apply(Some(&diff), &[], &upper, &[], Path::new("/a.tar"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{entries:?}: {err}");
            assert!(!outside.path().join("escape").exists());
            assert!(!dir.path().join("escape").exists());
        }
        let upper = tempfile::tempdir().unwrap();
        let err = apply(
            None,
            &["/../x".into()],
            upper.path(),
            &[],
            Path::new("/a.tar"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("leaves the rootfs"), "{err}");
    }
}
