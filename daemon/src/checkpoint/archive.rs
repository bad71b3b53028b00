//! Writing a checkpoint archive where the client asked, and unpacking one the client gave.
//!
//! Writing: the tar goes to a temporary name beside `location` (created `O_EXCL|O_NOFOLLOW`,
//! mode 0600: it holds every memory page of the container), is fsynced and renamed over the
//! final name, so a symlink at the final component is replaced, never followed, and a reader
//! never sees half an archive.
//!
//! Unpacking (the archive is untrusted, as in CVE-2022-1708-style attacks on CRI-O's restore
//! path): only the entries a checkpoint archive has are kept (`checkpoint/` with files and
//! directories below it, and the metadata files at the top), every other top-level entry is
//! skipped; an absolute path, a `..`, a link or device under a kept name, a file twice, or a
//! JSON file over [`dump::MAX_JSON`] is refused. Files are created below a fresh private
//! directory, with `O_EXCL|O_NOFOLLOW`, in directories the unpacker made itself (it never
//! makes a symlink), so nothing lands outside it.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::renameat;
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::dump;
use super::{CheckpointError, Result};

/// Entries an archive may hold at most (CRIU writes tens of files; a rootfs diff is one).
const MAX_ENTRIES: usize = 100_000;

/// The metadata files kept from an archive (single files at its top level).
const TOP_FILES: &[&str] = &[
    dump::CONFIG_DUMP,
    dump::SPEC_DUMP,
    dump::ROOTFS_DIFF,
    dump::DELETED_FILES,
    dump::DUMP_LOG,
    dump::CONTAINER_LOG,
];

/// Writes the tar of everything in `contents` (a private directory the daemon filled) to
/// `location` atomically (see the module documentation).
pub fn write(contents: &Path, location: &Path) -> Result<()> {
    let bad =
        |why: &str| CheckpointError::io(location, io::Error::new(io::ErrorKind::InvalidInput, why));
    let name = location
        .file_name()
        .ok_or_else(|| bad("the location names no file"))?;
    let parent = location
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("/"));
    let dir = File::open(parent).map_err(|e| CheckpointError::io(parent, e))?;
    let tmp = PathBuf::from(format!(
        ".{}.tmp-{:016x}",
        name.to_string_lossy(),
        rand::random::<u64>()
    ));
    let dir_fd = dir.as_raw_fd();
    // Through the directory's descriptor: the parent is resolved once.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(Path::new(&format!("/proc/self/fd/{dir_fd}")).join(&tmp))
        .map_err(|e| CheckpointError::io(parent.join(&tmp), e))?;
    let written = (|| -> io::Result<()> {
        // Whatever the umask made of it.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        let mut builder = tar::Builder::new(BufWriter::new(&file));
        builder.follow_symlinks(false);
        let mut names: Vec<_> = std::fs::read_dir(contents)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        for n in names {
            let p = contents.join(&n);
            if std::fs::symlink_metadata(&p)?.is_dir() {
                builder.append_dir_all(&n, &p)?;
            } else {
                builder.append_path_with_name(&p, &n)?;
            }
        }
        builder.into_inner()?.flush()?;
        file.sync_all()?;
        renameat(Some(dir_fd), &tmp, Some(dir_fd), name)?;
        dir.sync_all()
    })();
    if let Err(e) = written {
        let _ = unlinkat(Some(dir_fd), &tmp, UnlinkatFlags::NoRemoveDir);
        return Err(CheckpointError::io(location, e));
    }
    Ok(())
}

/// Unpacks the checkpoint archive at `archive` into `dest` (an empty private directory), as
/// the module documentation says. A gzip-compressed archive (Podman's `--compress=gzip`) is
/// read too.
pub fn unpack(archive: &Path, dest: &Path) -> Result<()> {
    let invalid = |why: String| CheckpointError::Invalid {
        archive: archive.to_path_buf(),
        why,
    };
    let file = File::open(archive).map_err(|e| CheckpointError::io(archive, e))?;
    let meta = file
        .metadata()
        .map_err(|e| CheckpointError::io(archive, e))?;
    if !meta.is_file() {
        return Err(invalid("not a regular file".into()));
    }
    let mut reader = BufReader::new(file);
    let gzip = {
        use std::io::BufRead;
        let head = reader
            .fill_buf()
            .map_err(|e| CheckpointError::io(archive, e))?;
        head.starts_with(&[0x1f, 0x8b])
    };
    let source: Box<dyn Read> = if gzip {
        Box::new(flate2::read::GzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let mut tar = tar::Archive::new(source);
    let entries = tar
        .entries()
        .map_err(|e| invalid(format!("not a tar archive: {e}")))?;
    let mut count = 0usize;
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid(format!("not a tar archive: {e}")))?;
        count += 1;
        if count > MAX_ENTRIES {
            return Err(invalid(format!("more than {MAX_ENTRIES} entries")));
        }
        let raw = entry
            .path()
            .map_err(|e| invalid(format!("an entry's name: {e}")))?
            .into_owned();
        let Some(rel) = clean(&raw) else {
            return Err(invalid(format!(
                "entry {} leaves the archive (absolute or '..')",
                raw.display()
            )));
        };
        let kind = match entry.header().entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
            other => Kind::Other(format!("{other:?}")),
        };
        let size = entry.size();
        place(dest, &rel, &raw, kind, size, &mut entry, &invalid)?;
    }
    Ok(())
}

/// What an archive entry is.
enum Kind {
    Dir,
    File,
    /// Anything else (its type, for the error).
    Other(String),
}

/// Puts the entry `rel` (`raw` as the archive names it) of `kind` and `size` bytes, read from
/// `data`, below `dest` when a restore uses it (see the module documentation).
fn place(
    dest: &Path,
    rel: &Path,
    raw: &Path,
    kind: Kind,
    size: u64,
    data: &mut dyn Read,
    invalid: &dyn Fn(String) -> CheckpointError,
) -> Result<()> {
    let Some(top) = rel.components().next() else {
        return Ok(()); // "./"
    };
    let top = top.as_os_str().to_string_lossy();
    let in_images = top == dump::CHECKPOINT_DIR;
    let top_file = TOP_FILES.contains(&top.as_ref()) && rel.components().count() == 1;
    if !in_images && !top_file {
        tracing::debug!(entry = %raw.display(), "skipping a checkpoint entry restores do not use");
        return Ok(());
    }
    match kind {
        Kind::Dir if in_images => make_dirs(dest, rel),
        Kind::File => {
            let json = top.ends_with(".dump") || top == dump::DELETED_FILES;
            if top_file && json && size > dump::MAX_JSON {
                return Err(invalid(format!(
                    "{} is larger than {} bytes",
                    raw.display(),
                    dump::MAX_JSON
                )));
            }
            if let Some(parent) = rel.parent() {
                make_dirs(dest, parent)?;
            }
            let target = dest.join(rel);
            let mut out = match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&target)
            {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(invalid(format!("entry {} appears twice", raw.display())));
                }
                other => other.map_err(|e| CheckpointError::io(&target, e))?,
            };
            let copied = io::copy(&mut data.take(size), &mut out)
                .map_err(|e| invalid(format!("reading entry {}: {e}", raw.display())))?;
            if copied != size {
                return Err(invalid(format!("entry {} is cut short", raw.display())));
            }
            Ok(())
        }
        Kind::Dir => Err(invalid(format!(
            "entry {} is a directory: a checkpoint archive holds a file there",
            raw.display()
        ))),
        Kind::Other(what) => Err(invalid(format!(
            "entry {} is a {what}: a checkpoint archive holds only files and directories there",
            raw.display()
        ))),
    }
}

/// [`unpack`] for an archive's contents already unpacked as a directory (the layer of a
/// checkpoint OCI image): the same entries are kept and the same ones refused; `name` (the
/// image) is what errors call the archive. Nothing is followed: symlinks are refused where
/// a file or directory is kept, and the walk goes at most [`MAX_DEPTH`] directories deep.
pub fn copy_dir(src: &Path, dest: &Path, name: &Path) -> Result<()> {
    let invalid = |why: String| CheckpointError::Invalid {
        archive: name.to_path_buf(),
        why,
    };
    let mut count = 0usize;
    let mut todo = vec![PathBuf::new()];
    while let Some(rel_dir) = todo.pop() {
        let dir = src.join(&rel_dir);
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| CheckpointError::io(&dir, e))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(|e| CheckpointError::io(&dir, e))?;
        names.sort();
        for n in names {
            count += 1;
            if count > MAX_ENTRIES {
                return Err(invalid(format!("more than {MAX_ENTRIES} entries")));
            }
            let rel = rel_dir.join(&n);
            let at = src.join(&rel);
            let meta = std::fs::symlink_metadata(&at).map_err(|e| CheckpointError::io(&at, e))?;
            let top_level_skipped = rel_dir.as_os_str().is_empty()
                && n != dump::CHECKPOINT_DIR
                && !TOP_FILES.iter().any(|f| n == *f);
            if top_level_skipped {
                continue;
            }
            if meta.is_dir() {
                if rel.components().count() > MAX_DEPTH {
                    return Err(invalid(format!("{} is nested too deep", rel.display())));
                }
                place(dest, &rel, &rel, Kind::Dir, 0, &mut io::empty(), &invalid)?;
                todo.push(rel);
            } else if meta.is_file() {
                let mut file = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                    .open(&at)
                    .map_err(|e| CheckpointError::io(&at, e))?;
                place(
                    dest,
                    &rel,
                    &rel,
                    Kind::File,
                    meta.len(),
                    &mut file,
                    &invalid,
                )?;
            } else {
                let what = if meta.file_type().is_symlink() {
                    "symlink"
                } else {
                    "special file"
                };
                place(
                    dest,
                    &rel,
                    &rel,
                    Kind::Other(what.into()),
                    0,
                    &mut io::empty(),
                    &invalid,
                )?;
            }
        }
    }
    Ok(())
}

/// How deep [`copy_dir`] goes (CRIU writes its images in one directory).
const MAX_DEPTH: usize = 16;

/// `path` made relative with only normal components (a leading `./` dropped); None when it is
/// absolute or has a `..`.
pub fn clean(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::RootDir | Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Makes `rel` (and its parents) below `root` as private directories, each checked to be a
/// directory and not a symlink.
fn make_dirs(root: &Path, rel: &Path) -> Result<()> {
    let mut at = root.to_path_buf();
    for c in rel.components() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => {
                return Err(CheckpointError::io(
                    &at,
                    io::Error::new(io::ErrorKind::AlreadyExists, "not a directory"),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                crate::dirs::create(&at, crate::dirs::PRIVATE)
                    .map_err(|e| CheckpointError::io(&at, e))?;
            }
            Err(e) => return Err(CheckpointError::io(&at, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A tar entry with `name` written as is (the tar crate's setters refuse `..`).
    /// An entry for [`raw_entry`]: name, type, link name, data.
    pub type Raw<'a> = (&'a str, tar::EntryType, &'a str, &'a [u8]);

    pub fn raw_entry(
        b: &mut tar::Builder<Vec<u8>>,
        name: &str,
        kind: tar::EntryType,
        link: &str,
        data: &[u8],
    ) {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn archive_of(entries: &[Raw]) -> tempfile::NamedTempFile {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, link, data) in entries {
            raw_entry(&mut b, name, *kind, link, data);
        }
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), b.into_inner().unwrap()).unwrap();
        f
    }

    #[test]
    fn an_archive_round_trips_and_the_file_is_private() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("checkpoint/sub")).unwrap();
        std::fs::write(src.path().join("checkpoint/pages-1.img"), b"pages").unwrap();
        std::fs::write(src.path().join("checkpoint/sub/x"), b"x").unwrap();
        std::fs::write(src.path().join("config.dump"), b"{}").unwrap();
        std::fs::write(src.path().join("spec.dump"), b"{}").unwrap();
        let out = tempfile::tempdir().unwrap();
        let location = out.path().join("c.tar");
        // A symlink where the archive goes is replaced, not followed.
        let victim = out.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, &location).unwrap();
        write(src.path(), &location).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let meta = std::fs::symlink_metadata(&location).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(out.path()).unwrap().count(),
            2,
            "no temporary left"
        );

        let dest = tempfile::tempdir().unwrap();
        unpack(&location, dest.path()).unwrap();
        assert_eq!(
            std::fs::read(dest.path().join("checkpoint/pages-1.img")).unwrap(),
            b"pages"
        );
        assert_eq!(
            std::fs::read(dest.path().join("checkpoint/sub/x")).unwrap(),
            b"x"
        );
        assert_eq!(std::fs::read(dest.path().join("spec.dump")).unwrap(), b"{}");
    }

    #[test]
    fn hostile_archives_are_refused_and_write_nothing_outside() {
        use tar::EntryType as T;
        let cases: &[(&[Raw], &str)] = &[
            (&[("../escape", T::Regular, "", b"x")], "leaves the archive"),
            (
                &[("/etc/escape", T::Regular, "", b"x")],
                "leaves the archive",
            ),
            (
                &[("checkpoint/../../escape", T::Regular, "", b"x")],
                "leaves the archive",
            ),
            (&[("checkpoint/l", T::Symlink, "/etc", b"")], "Symlink"),
            (&[("checkpoint/h", T::Link, "/etc/passwd", b"")], "Link"),
            (&[("checkpoint/d", T::Char, "", b"")], "Char"),
            (
                &[
                    ("config.dump", T::Regular, "", b"{}"),
                    ("config.dump", T::Regular, "", b"{}"),
                ],
                "appears twice",
            ),
        ];
        for (entries, want) in cases {
            let a = archive_of(entries);
            let dest = tempfile::tempdir().unwrap();
            std::fs::create_dir(dest.path().join("in")).unwrap();
            let err = unpack(a.path(), &dest.path().join("in"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{entries:?}: {err}");
            assert!(!dest.path().join("escape").exists());
        }
        // Unknown top-level entries are skipped, not refused.
        let a = archive_of(&[
            ("other/x", T::Symlink, "/etc", b""),
            ("spec.dump", T::Regular, "", b"{}"),
        ]);
        let dest = tempfile::tempdir().unwrap();
        unpack(a.path(), dest.path()).unwrap();
        assert!(!dest.path().join("other").exists());
    }

    #[test]
    fn a_directory_is_copied_by_the_same_rules() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        std::fs::create_dir_all(s.join("checkpoint/sub")).unwrap();
        std::fs::write(s.join("checkpoint/pages-1.img"), b"pages").unwrap();
        std::fs::write(s.join("checkpoint/sub/x"), b"x").unwrap();
        std::fs::write(s.join("spec.dump"), b"{}").unwrap();
        std::fs::write(s.join("unrelated"), b"skip").unwrap();
        std::os::unix::fs::symlink("/etc", s.join("other")).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let name = Path::new("registry/ckpt:1");
        copy_dir(s, dest.path(), name).unwrap();
        assert_eq!(
            std::fs::read(dest.path().join("checkpoint/sub/x")).unwrap(),
            b"x"
        );
        assert_eq!(std::fs::read(dest.path().join("spec.dump")).unwrap(), b"{}");
        assert!(!dest.path().join("unrelated").exists() && !dest.path().join("other").exists());

        std::os::unix::fs::symlink("/etc/shadow", s.join("checkpoint/evil")).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let err = copy_dir(s, dest.path(), name).unwrap_err().to_string();
        assert!(
            err.contains("registry/ckpt:1") && err.contains("symlink"),
            "{err}"
        );
        std::fs::remove_file(s.join("checkpoint/evil")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", s.join("config.dump")).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let err = copy_dir(s, dest.path(), name).unwrap_err().to_string();
        assert!(
            err.contains("config.dump") && err.contains("symlink"),
            "{err}"
        );
    }

    #[test]
    fn an_oversize_dump_file_and_a_non_archive_are_refused() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(dump::MAX_JSON + 1);
        h.set_mode(0o600);
        h.set_entry_type(tar::EntryType::Regular);
        let big = vec![b' '; dump::MAX_JSON as usize + 1];
        b.append_data(&mut h, "spec.dump", big.as_slice()).unwrap();
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), b.into_inner().unwrap()).unwrap();
        let dest = tempfile::tempdir().unwrap();
        let err = unpack(f.path(), dest.path()).unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");

        std::fs::write(
            f.path(),
            b"this is not a tar archive at all, just some text....",
        )
        .unwrap();
        let err = unpack(f.path(), dest.path()).unwrap_err();
        assert!(matches!(err, CheckpointError::Invalid { .. }), "{err}");
        let err = unpack(dest.path(), dest.path()).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
