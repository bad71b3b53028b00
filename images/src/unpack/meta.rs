//! Entry paths and metadata, and the few raw syscalls nix 0.29 lacks.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString, OsStr};
use std::io::{self, Read};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::{FileStat, Mode, fchmod};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchown};
use tracing::{debug, warn};

use super::UnpackError;

/// Ownership, mode, mtime and xattrs of an entry.
pub(super) struct Meta {
    pub(super) uid: Uid,
    pub(super) gid: Gid,
    pub(super) mode: Mode,
    pub(super) mtime: TimeSpec,
    pub(super) xattrs: Vec<(CString, Vec<u8>)>,
}

pub(super) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(super) fn io_err(entry: &[u8], op: &'static str) -> impl FnOnce(Errno) -> UnpackError {
    move |errno| UnpackError::Io {
        entry: lossy(entry),
        op,
        source: io::Error::from(errno),
    }
}

/// Cleans an archive path into its components; see the module documentation.
pub(super) fn clean_path(raw: &[u8]) -> Result<Vec<&[u8]>, UnpackError> {
    if raw.len() >= libc::PATH_MAX as usize {
        return Err(UnpackError::PathTooLong {
            entry: lossy(&raw[..256]),
            len: raw.len(),
        });
    }
    if raw.contains(&0) {
        return Err(invalid(raw, "NUL byte in path"));
    }
    let mut comps: Vec<&[u8]> = Vec::new();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                if comps.pop().is_none() {
                    return Err(UnpackError::PathEscape { entry: lossy(raw) });
                }
            }
            _ => comps.push(comp),
        }
    }
    Ok(comps)
}

pub(super) fn invalid(raw: &[u8], reason: impl Into<String>) -> UnpackError {
    UnpackError::Invalid {
        entry: lossy(raw),
        reason: reason.into(),
    }
}

pub(super) fn resolve_error(raw: &[u8], errno: Errno) -> UnpackError {
    match errno {
        Errno::ENOSYS => UnpackError::Openat2Unsupported,
        Errno::ENOTDIR => invalid(raw, "a parent path component is not a directory"),
        Errno::ELOOP => invalid(
            raw,
            "too many symlinks (or a magic link) in the parent path",
        ),
        Errno::EXDEV => invalid(raw, "parent path crosses a mount point"),
        e => io_err(raw, "resolve parent directory")(e),
    }
}

pub(super) fn owner(header: &tar::Header, raw: &[u8]) -> Result<(Uid, Gid), UnpackError> {
    // u32::MAX is "leave unchanged" to chown, so it is not a usable id.
    let id = |v: io::Result<u64>, what: &str| {
        v.ok()
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v != u32::MAX)
            .ok_or_else(|| invalid(raw, format!("{what} is missing or out of range")))
    };
    Ok((
        Uid::from_raw(id(header.uid(), "uid")?),
        Gid::from_raw(id(header.gid(), "gid")?),
    ))
}

/// Reads owner, mode, mtime (PAX `mtime` if present, for sub-second precision) and the
/// `SCHILY.xattr.*` records, minus overlay xattrs.
pub(super) fn read_meta<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    raw: &[u8],
) -> Result<Meta, UnpackError> {
    let header = entry.header();
    let (uid, gid) = owner(header, raw)?;
    let mode = header
        .mode()
        .map_err(|e| invalid(raw, format!("bad mode: {e}")))?;
    let secs = header
        .mtime()
        .map_err(|e| invalid(raw, format!("bad mtime: {e}")))?;
    let mut mtime = TimeSpec::new(i64::try_from(secs).unwrap_or(i64::MAX), 0);
    let mut xattrs = Vec::new();
    let pax = entry
        .pax_extensions()
        .map_err(|source| UnpackError::EntryData {
            entry: lossy(raw),
            source,
        })?;
    for ext in pax.into_iter().flatten() {
        let ext = ext.map_err(|source| UnpackError::EntryData {
            entry: lossy(raw),
            source,
        })?;
        let key = ext.key_bytes();
        if key == b"mtime" {
            if let Some(t) = parse_pax_time(ext.value_bytes()) {
                mtime = t;
            }
        } else if let Some(xname) = key.strip_prefix(b"SCHILY.xattr.") {
            if xname.starts_with(b"trusted.overlay.") || xname.starts_with(b"user.overlay.") {
                warn!(entry = %lossy(raw), xattr = %lossy(xname), "dropping overlay xattr from image layer");
                continue;
            }
            match CString::new(xname) {
                Ok(xname) if !xname.is_empty() => xattrs.push((xname, ext.value_bytes().to_vec())),
                _ => return Err(invalid(raw, "malformed xattr name")),
            }
        }
    }
    Ok(Meta {
        uid,
        gid,
        mode: Mode::from_bits_truncate(mode & 0o7777),
        mtime,
        xattrs,
    })
}

/// Parses a PAX time, `[-]secs[.fraction]`.
fn parse_pax_time(value: &[u8]) -> Option<TimeSpec> {
    let value = std::str::from_utf8(value).ok()?;
    let (neg, digits) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let (secs, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut secs: i64 = secs.parse().ok()?;
    let mut nanos: i64 = format!("{:0<9}", &frac[..frac.len().min(9)]).parse().ok()?;
    if neg {
        secs = -secs;
        if nanos > 0 {
            secs -= 1;
            nanos = 1_000_000_000 - nanos;
        }
    }
    Some(TimeSpec::new(secs, nanos))
}

/// Owner, then mode (chown clears setuid/setgid), then xattrs (chown clears
/// `security.capability`) on an fd opened without following symlinks.
pub(super) fn apply_meta(raw: &[u8], fd: RawFd, meta: &Meta) -> Result<(), UnpackError> {
    fchown(fd, Some(meta.uid), Some(meta.gid)).map_err(io_err(raw, "chown"))?;
    fchmod(fd, meta.mode).map_err(io_err(raw, "chmod"))?;
    for (name, value) in &meta.xattrs {
        xattr_result(raw, name, set_xattr(fd, name, value))?;
    }
    Ok(())
}

/// Tolerates xattrs the filesystem cannot store (as Docker does); fails on anything else.
pub(super) fn xattr_result(
    raw: &[u8],
    name: &CStr,
    result: Result<(), Errno>,
) -> Result<(), UnpackError> {
    match result {
        Ok(()) => Ok(()),
        Err(Errno::ENOTSUP) => {
            debug!(entry = %lossy(raw), xattr = ?name, "filesystem does not support xattr");
            Ok(())
        }
        Err(Errno::EPERM) => {
            warn!(entry = %lossy(raw), xattr = ?name, "xattr not permitted here; skipped");
            Ok(())
        }
        Err(e) => Err(io_err(raw, "set xattr")(e)),
    }
}

pub(super) fn set_xattr(fd: RawFd, name: &CStr, value: &[u8]) -> Result<(), Errno> {
    // SAFETY: `name` is NUL-terminated and `value` is a live slice whose pointer and length are
    // passed together; the kernel only reads them during the call.
    let res = unsafe { libc::fsetxattr(fd, name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    Errno::result(res).map(drop)
}

/// Sets an xattr on `parent/name` without following a symlink there. fsetxattr would need an
/// fd, which O_PATH cannot give for a symlink; lsetxattr through the parent's /proc magic link
/// acts on the entry itself.
pub(super) fn set_xattr_nofollow(
    parent: RawFd,
    name: &OsStr,
    xname: &CStr,
    value: &[u8],
) -> Result<(), Errno> {
    let mut path = format!("/proc/self/fd/{parent}/").into_bytes();
    path.extend_from_slice(name.as_bytes());
    let path = CString::new(path).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `path` and `xname` are NUL-terminated and live across the call; `value` is a live
    // slice whose pointer and length are passed together; the kernel only reads them.
    let res = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            xname.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(res).map(drop)
}

pub(super) fn open_nofollow(parent: RawFd, name: &OsStr, flags: OFlag) -> Result<OwnedFd, Errno> {
    openat(
        Some(parent),
        name,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map(own)
}

pub(super) fn own(fd: RawFd) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful open syscall, so it is a valid descriptor
    // that nothing else owns; the OwnedFd becomes its only owner and closes it.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

pub(super) fn is_dir(st: &FileStat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

pub(super) fn blocks_bytes(st: &FileStat) -> u64 {
    u64::try_from(st.st_blocks).unwrap_or(0) * 512
}
