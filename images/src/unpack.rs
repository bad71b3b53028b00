//! Streaming, escape-proof extraction of one image layer into an overlayfs diff directory.
//!
//! [`unpack_layer`] reads a layer blob (a tar stream, optionally gzip or zstd compressed) as it
//! downloads and writes the layer's own upper directory: the thing overlayfs later stacks with
//! `lowerdir=...`. It is synchronous; the daemon runs it inside `spawn_blocking`.
//!
//! # Caller contract
//!
//! * `target` is an empty staging directory the caller created (mode 0755, owned by root: the
//!   layer's `./` entry, if any, is not applied to it, as in Docker).
//! * On any error the staging directory holds a partial layer. The caller deletes it; nothing
//!   outside it was touched.
//! * On success the caller compares [`UnpackStats::diff_id`] with the image config's
//!   `rootfs.diff_ids` before renaming the directory into place.
//! * Needs Linux 5.6 or newer (`openat2`), `CAP_MKNOD` for whiteouts and `CAP_SYS_ADMIN` for
//!   `trusted.*` xattrs (the daemon runs as root).
//!
//! # Security decisions
//!
//! Layer content is untrusted. All filesystem work is done with `*at` syscalls relative to a
//! directory fd for `target`; `tar`'s own `unpack_in` is not used.
//!
//! * **Entry paths are cleaned lexically** (like Go's `filepath.Clean`, which Docker uses): a
//!   leading `/` is stripped (absolute names are relative to the layer root, as Docker and tar
//!   do), `.` and empty components are dropped, `..` pops a component, and a `..` that would
//!   climb above the root rejects the entry ([`UnpackError::PathEscape`]). The kernel never sees
//!   a `..` from the archive. Paths of `PATH_MAX` bytes or more, and paths with NUL bytes, are
//!   rejected.
//! * **Parent directories are resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS |
//!   RESOLVE_NO_XDEV)`** relative to the target fd. A symlink the layer planted in a parent
//!   position (`x -> /etc`, `x -> ../../..`) is followed as if `target` were `/`, so the write
//!   lands inside `target` (the semantics of Docker's `FollowSymlinkInScope`) and the kernel
//!   guarantees it cannot resolve outside, even under concurrent renames. `RESOLVE_BENEATH |
//!   RESOLVE_NO_SYMLINKS` was the alternative; it would refuse layers Docker accepts.
//!   `/proc` magic links and mount crossings are refused. A dangling in-layer symlink in a
//!   parent position is an error: we do not create directories through symlinks.
//! * **The final component is never followed**: it is created with `mkdirat`, `symlinkat`,
//!   `linkat` (without `AT_SYMLINK_FOLLOW`), `mknodat` or `openat(O_CREAT | O_EXCL |
//!   O_NOFOLLOW)`; metadata is set through an fd we opened with `O_NOFOLLOW`, or with
//!   `AT_SYMLINK_NOFOLLOW` for symlinks and whiteout devices (which have no mode to set).
//! * **Hard links** must name an existing non-directory inside this layer; their target path is
//!   cleaned and resolved like any entry path, so `/etc/passwd` means `<target>/etc/passwd`
//!   (missing: rejected) and `../x` is rejected.
//! * **Device nodes** from the layer are skipped with a warning; the only devices created are
//!   the 0:0 whiteouts (a 0:0 character device entry, as found in layers made by tarring an
//!   overlay upper directory, is taken as the whiteout it already is).
//! * **Overlay metadata cannot be forged**: `trusted.overlay.*` and `user.overlay.*` (what
//!   overlayfs reads when mounted with `userxattr`) xattrs in the layer are dropped; only the
//!   unpacker sets `trusted.overlay.opaque`.
//! * **Limits**: the uncompressed stream (including what follows the end-of-archive marker) is
//!   capped at [`UnpackLimits::max_tar_bytes`]; the same cap bounds the total logical size of
//!   the files written (only GNU sparse entries can exceed their bytes in the stream); entries
//!   are capped at [`UnpackLimits::max_entries`]. What the `tar` crate keeps in memory to find an
//!   entry (its PAX extended header, GNU long name and link, GNU sparse map) is capped at
//!   [`MAX_HEADER_BYTES`] while it reads it (`headers`), so an unpack's memory is bounded
//!   whatever the layer says. Data an entry leaves unread (a skipped device node, say) is
//!   drained before the next entry and counts towards the logical size cap.
//!
//! # Format
//!
//! Regular files (including GNU sparse, expanded), directories, symlinks, hard links and FIFOs,
//! with numeric owners, modes (setuid/setgid/sticky: chmod after chown), mtimes (PAX `mtime`
//! for sub-second precision) and `SCHILY.xattr.*` records (ENOTSUP and EPERM skipped with a
//! log line, as Docker does). `dir/.wh.name` becomes a 0:0 character device `dir/name`,
//! `dir/.wh..wh..opq` sets `trusted.overlay.opaque=y` on `dir`, other `.wh..wh.*` names and
//! anything under a top-level `.wh..wh.*` directory (aufs bookkeeping) are skipped. Replacing an
//! existing path removes it first (recursively for a directory), except a directory over a
//! directory, which only updates metadata. Directory mtimes are set after all entries, since
//! creating children changes them.
//!
//! The compression is always decided from the magic bytes (registries mislabel layers); the
//! declared one only produces a warning when it disagrees. xz and bzip2 are refused clearly.
//!
//! Layout: this file holds the API and the stream plumbing (decompression, hashing, limits);
//! `layer` creates each entry, `headers` bounds the `tar` crate's header reads, `tree` resolves, creates and clears paths inside the target,
//! `meta` reads entry paths and metadata and wraps the few syscalls nix 0.29 lacks (the only
//! `unsafe` code).

mod headers;
mod layer;
mod meta;
#[cfg(test)]
mod tests;
mod tree;

use std::io::{self, BufReader, Cursor, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tracing::{debug, warn};

pub use headers::MAX_HEADER_BYTES;
use layer::Unpacker;

/// The compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Declared plain tar.
    None,
    /// Declared gzip.
    Gzip,
    /// Declared zstd.
    Zstd,
    /// Nothing declared. [`unpack_layer`] always decides from the first bytes of the stream
    /// (gzip `1f 8b`, zstd `28 b5 2f fd`, else plain), since registries sometimes mislabel
    /// layers; a declared compression that disagrees only causes a warning.
    Auto,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00];
const BZIP2_MAGIC: &[u8] = b"BZh";

impl Compression {
    /// The compression a layer media type declares, or `None` if `mt` is not a layer type.
    pub fn from_media_type(mt: &str) -> Option<Compression> {
        let mt = mt.split(';').next().unwrap_or_default().trim();
        match mt {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
                Some(Compression::Gzip)
            }
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Some(Compression::Zstd)
            }
            _ => None,
        }
    }

    /// The compression the first bytes of a stream show (never `Auto`); anything that is neither
    /// gzip nor zstd is taken as plain tar.
    pub fn sniff(prefix: &[u8]) -> Compression {
        if prefix.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if prefix.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Bounds on what one layer may contain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Uncompressed stream bytes; also bounds the total logical size of the files written.
    pub max_tar_bytes: u64,
    /// Tar entries (GNU long-name and PAX headers are not counted separately).
    pub max_entries: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_tar_bytes: 64 << 30,
            max_entries: 2_000_000,
        }
    }
}

/// What an unpacked layer turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackStats {
    /// `sha256:<hex>` of the whole uncompressed stream, to compare with `rootfs.diff_ids`.
    pub diff_id: String,
    /// Length of the uncompressed stream.
    pub tar_bytes: u64,
    /// Sum of `st_blocks * 512` of what the layer left in the diff directory.
    pub disk_bytes: u64,
    /// Inodes the layer left in the diff directory (hard links count once).
    pub inodes: u64,
}

/// Why a layer could not be unpacked. The staging directory then holds a partial layer, which
/// the caller deletes.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("cannot open unpack target {path}: {source}")]
    Target {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("the kernel lacks openat2(2); Linux 5.6 or newer is needed to unpack layers safely")]
    Openat2Unsupported,

    #[error("unsupported layer compression: {0}")]
    UnsupportedCompression(&'static str),

    #[error("{op}: {source}")]
    Other {
        op: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("reading the layer stream: {source}")]
    Stream {
        #[source]
        source: io::Error,
    },

    #[error("entry {entry:?}: reading its data from the layer stream: {source}")]
    EntryData {
        entry: String,
        #[source]
        source: io::Error,
    },

    #[error("layer is larger than the limit of {limit} uncompressed bytes")]
    TooLarge { limit: u64 },

    #[error(
        "a tar header (PAX extended header, GNU long name or link, or sparse map) is larger \
         than the limit of {limit} bytes"
    )]
    HeaderTooLarge { limit: u64 },

    #[error("layer has more than the limit of {limit} entries")]
    TooManyEntries { limit: u64 },

    #[error("entry {entry:?}: path climbs above the layer root")]
    PathEscape { entry: String },

    #[error("entry {entry:?}: path of {len} bytes is longer than PATH_MAX")]
    PathTooLong { entry: String, len: usize },

    #[error("entry {entry:?}: hard link to {target:?} rejected: {reason}")]
    Hardlink {
        entry: String,
        target: String,
        reason: &'static str,
    },

    #[error("entry {entry:?}: {reason}")]
    Invalid { entry: String, reason: String },

    #[error("entry {entry:?}: {op}: {source}")]
    Io {
        entry: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

impl UnpackError {
    /// An I/O error around unpacking (opening the blob, reading past the layer) with what was
    /// being done.
    pub fn from_io(op: &'static str, source: io::Error) -> UnpackError {
        UnpackError::Other { op, source }
    }
}

/// Extracts one layer from `reader` into the empty directory `target`.
///
/// See the module documentation for the format handling, the security rules and the caller's
/// duties (delete `target` on error, compare the diff ID on success).
pub fn unpack_layer<R: Read>(
    mut reader: R,
    compression: Compression,
    target: &Path,
    limits: &UnpackLimits,
) -> Result<UnpackStats, UnpackError> {
    let root = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(target)
        .map_err(|source| UnpackError::Target {
            path: target.to_path_buf(),
            source,
        })?;

    // Registries sometimes mislabel layers: the magic bytes decide, the declared compression
    // only shows up in a warning when they disagree.
    let prefix = read_prefix(&mut reader, XZ_MAGIC.len())?;
    if prefix.starts_with(XZ_MAGIC) {
        return Err(UnpackError::UnsupportedCompression("xz"));
    }
    if prefix.starts_with(BZIP2_MAGIC) && prefix.get(3).is_some_and(|b| (b'1'..=b'9').contains(b)) {
        return Err(UnpackError::UnsupportedCompression("bzip2"));
    }
    let sniffed = Compression::sniff(&prefix);
    if compression != Compression::Auto && compression != sniffed {
        warn!(dir = %target.display(), declared = ?compression, actual = ?sniffed,
            "layer compression differs from its media type; using what the bytes show");
    }
    let stream = Cursor::new(prefix).chain(reader);
    let decoder = match sniffed {
        Compression::Gzip => Decoder::Gzip(Box::new(flate2::read::MultiGzDecoder::new(stream))),
        Compression::Zstd => Decoder::Zstd(
            zstd::stream::read::Decoder::new(stream)
                .map_err(|source| UnpackError::Stream { source })?,
        ),
        Compression::None | Compression::Auto => Decoder::Plain(stream),
    };

    let tee = Tee {
        inner: decoder,
        hasher: Sha256::new(),
        bytes: 0,
        limit: limits.max_tar_bytes,
        exceeded: false,
    };
    let budget = headers::HeaderBudget::default();
    let mut archive = tar::Archive::new(headers::Bounded {
        inner: tee,
        budget: budget.clone(),
    });
    let mut unpacker = Unpacker::new(OwnedFd::from(root), limits);
    let result = unpacker.run(&mut archive, &budget);
    let mut tee = archive.into_inner().inner;
    let too_large = UnpackError::TooLarge {
        limit: limits.max_tar_bytes,
    };
    if tee.exceeded {
        return Err(too_large);
    }
    if budget.exceeded() {
        return Err(UnpackError::HeaderTooLarge {
            limit: MAX_HEADER_BYTES,
        });
    }
    result?;
    // The diff ID covers the whole stream: the end-of-archive blocks and any padding after them.
    if let Err(source) = io::copy(&mut tee, &mut io::sink()) {
        return Err(if tee.exceeded {
            too_large
        } else {
            UnpackError::Stream { source }
        });
    }
    unpacker.finish_dirs()?;

    let stats = UnpackStats {
        diff_id: format!("sha256:{}", hex::encode(tee.hasher.finalize())),
        tar_bytes: tee.bytes,
        disk_bytes: unpacker.disk_bytes,
        inodes: unpacker.inodes,
    };
    debug!(dir = %target.display(), diff_id = %stats.diff_id, tar_bytes = stats.tar_bytes,
        disk_bytes = stats.disk_bytes, inodes = stats.inodes, "layer unpacked");
    Ok(stats)
}

/// Reads up to `len` bytes (fewer only at end of stream) to sniff the compression.
fn read_prefix<R: Read>(reader: &mut R, len: usize) -> Result<Vec<u8>, UnpackError> {
    let mut prefix = vec![0; len];
    let mut filled = 0;
    while filled < len {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(UnpackError::Stream { source }),
        }
    }
    prefix.truncate(filled);
    Ok(prefix)
}

enum Decoder<R: Read> {
    Plain(R),
    Gzip(Box<flate2::read::MultiGzDecoder<R>>),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<R>>),
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

/// Hashes and counts the uncompressed stream, failing once it passes `limit` bytes.
struct Tee<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
    limit: u64,
    exceeded: bool,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.exceeded {
            return Err(io::Error::other("layer byte limit exceeded"));
        }
        // Let one byte past the limit through so that a stream of exactly `limit` bytes passes.
        let allowed = self.limit.saturating_sub(self.bytes).saturating_add(1);
        let len = buf
            .len()
            .min(usize::try_from(allowed).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..len])?;
        self.bytes += n as u64;
        if self.bytes > self.limit {
            self.exceeded = true;
            return Err(io::Error::other("layer byte limit exceeded"));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
