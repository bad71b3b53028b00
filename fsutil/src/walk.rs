//! Walking a directory tree a container may have shaped: thousands of levels deep with short
//! names (`mkdir n && mv d n/d && mv n d` in a loop), symlinks anywhere, directories renamed
//! while the walk runs.
//!
//! `std::fs::remove_dir_all` and a recursive `read_dir` walk recurse once per level (a stack
//! overflow aborts the whole daemon) and hold one or two descriptors per level (EMFILE). Here:
//!
//! - The walk is a loop over an explicit stack of frames on the heap. A frame remembers the
//!   directory's name in its parent, its device and inode, and the names still to visit (read
//!   in full when the directory is entered).
//! - Only the root and the deepest [`MAX_OPEN`] directories hold a descriptor. Climbing back to
//!   a directory whose descriptor was dropped reopens it as `..` of its child, and the reopened
//!   directory must have the device and inode recorded on the way down: a directory a
//!   container moved meanwhile ends the walk with [`WalkError::Moved`] instead of leading it
//!   elsewhere.
//! - Every entry is reached relative to its parent's descriptor (`fstatat`, `openat`,
//!   `unlinkat`), directories are opened `O_NOFOLLOW | O_DIRECTORY` and checked against the
//!   `fstatat` result, so a symlink is never followed and no path is ever longer than one name.
//! - Directories on another device (mount points) are visited but not entered.
//! - Depth is bounded ([`MAX_DEPTH`]): beyond it a walk fails with [`WalkError::TooDeep`],
//!   while a removal moves the too-deep subtree up to the root (a rename within one
//!   filesystem) and removes it from there, so removal needs no more memory than that depth
//!   and always finishes.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{OFlag, RenameFlags, renameat2};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};
use nix::unistd::{UnlinkatFlags, unlinkat};

/// Directory descriptors a walk keeps open besides the root's.
pub const MAX_OPEN: usize = 16;

/// How deep a walk goes below its root (about 100 bytes of memory per level).
pub const MAX_DEPTH: usize = 1 << 16;

/// Why a walk stopped.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("{root}: {op} at depth {depth} ({name:?}): {source}")]
    Io {
        root: PathBuf,
        op: &'static str,
        depth: usize,
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("{root}: the tree is more than {max} directories deep")]
    TooDeep { root: PathBuf, max: usize },
    #[error("{root}: a directory at depth {depth} moved during the walk")]
    Moved { root: PathBuf, depth: usize },
}

impl WalkError {
    /// The operating-system error behind this one, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            WalkError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// For callers whose errors carry an `io::Error`: the message is kept, the kind comes from
/// the operating-system error when there is one.
impl From<WalkError> for io::Error {
    fn from(e: WalkError) -> io::Error {
        let kind = match &e {
            WalkError::Io { source, .. } => source.kind(),
            WalkError::TooDeep { .. } | WalkError::Moved { .. } => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// One entry met by [`walk`].
#[derive(Debug)]
pub struct Entry<'a> {
    /// The directory holding the entry (a descriptor valid for the call only).
    pub dir: RawFd,
    /// The entry's name in `dir`.
    pub name: &'a CStr,
    /// The entry itself (`fstatat` without following a symlink).
    pub stat: &'a FileStat,
    /// 1 for the root's entries, 2 for theirs, and so on.
    pub depth: usize,
}

impl Entry<'_> {
    /// Whether the entry is a directory.
    pub fn is_dir(&self) -> bool {
        is_dir(self.stat)
    }

    /// `/proc/self/fd/<dir>/<name>`: the entry by a path that resolves through the directory's
    /// descriptor (open it with `O_NOFOLLOW` to get the entry itself).
    pub fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.dir))
            .join(OsStr::from_bytes(self.name.to_bytes()))
    }
}

/// What a walk does with each entry.
pub trait Visitor {
    /// Called for every entry below the root, a directory before its contents.
    fn entry(&mut self, entry: &Entry<'_>) -> io::Result<()>;

    /// Called once a directory's contents were visited, with its parent and its name.
    fn leave(&mut self, _parent: RawFd, _name: &CStr, _depth: usize) -> io::Result<()> {
        Ok(())
    }
}

/// Visits every entry below `root` (not `root` itself) in depth-first order, within `root`'s
/// filesystem, never following a symlink. `root` itself must be a directory, not a symlink.
pub fn walk(root: &Path, visitor: &mut impl Visitor) -> Result<(), WalkError> {
    let dir = open_root(root)?;
    Walk::new(root, dir, MAX_DEPTH)?.run(visitor, false)
}

/// [`walk`] with a depth limit of `max_depth` (for tests and callers that want less).
pub fn walk_with_depth(
    root: &Path,
    max_depth: usize,
    visitor: &mut impl Visitor,
) -> Result<(), WalkError> {
    let dir = open_root(root)?;
    Walk::new(root, dir, max_depth.max(1))?.run(visitor, false)
}

/// Removes `path` whatever it is (a directory with everything below it); a missing path is
/// fine. Never follows a symlink, however deep the tree.
pub fn remove_tree(path: &Path) -> Result<(), WalkError> {
    remove_tree_with_depth(path, MAX_DEPTH)
}

/// [`remove_tree`] moving subtrees up to the root below `max_depth` (for tests).
pub fn remove_tree_with_depth(path: &Path, max_depth: usize) -> Result<(), WalkError> {
    let io_err = |op, source| WalkError::Io {
        root: path.to_path_buf(),
        op,
        depth: 0,
        name: String::new(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("inspect", e)),
        Ok(m) if !m.is_dir() => {
            return match std::fs::remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("unlink", e)),
                _ => Ok(()),
            };
        }
        Ok(_) => {}
    }
    let dir = match open_root(path) {
        Err(WalkError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(());
        }
        other => other?,
    };
    Walk::new(path, dir, max_depth.max(1))?.run(&mut Remover(|_: &FileStat| {}), true)?;
    match std::fs::remove_dir(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("rmdir", e)),
        _ => Ok(()),
    }
}

/// Removes the directory `name` in `parent` and everything below it, calling `removed` with
/// each non-directory unlinked. `shown` names the tree in errors.
pub fn remove_tree_at(
    parent: RawFd,
    name: &CStr,
    shown: &Path,
    removed: impl FnMut(&FileStat),
) -> Result<(), WalkError> {
    let dir =
        Dir::openat(Some(parent), name, DIR_FLAGS, Mode::empty()).map_err(|e| WalkError::Io {
            root: shown.to_path_buf(),
            op: "open directory",
            depth: 0,
            name: lossy(name),
            source: e.into(),
        })?;
    Walk::new(shown, dir, MAX_DEPTH)?.run(&mut Remover(removed), true)?;
    unlinkat(Some(parent), name, UnlinkatFlags::RemoveDir).map_err(|e| WalkError::Io {
        root: shown.to_path_buf(),
        op: "rmdir",
        depth: 0,
        name: lossy(name),
        source: e.into(),
    })
}

/// Unlinks every non-directory when met and every directory once empty.
struct Remover<F: FnMut(&FileStat)>(F);

impl<F: FnMut(&FileStat)> Visitor for Remover<F> {
    fn entry(&mut self, e: &Entry<'_>) -> io::Result<()> {
        if e.is_dir() {
            return Ok(());
        }
        match unlinkat(Some(e.dir), e.name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => {
                (self.0)(e.stat);
                Ok(())
            }
            Err(Errno::ENOENT) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    fn leave(&mut self, parent: RawFd, name: &CStr, _depth: usize) -> io::Result<()> {
        match unlinkat(Some(parent), name, UnlinkatFlags::RemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

fn is_dir(st: &FileStat) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits()
}

fn lossy(name: &CStr) -> String {
    String::from_utf8_lossy(name.to_bytes()).into_owned()
}

fn open_root(root: &Path) -> Result<Dir, WalkError> {
    Dir::open(root, DIR_FLAGS, Mode::empty()).map_err(|e| WalkError::Io {
        root: root.to_path_buf(),
        op: "open directory",
        depth: 0,
        name: String::new(),
        source: e.into(),
    })
}

/// One directory on the way down.
struct Frame {
    /// Open for the root and the deepest [`MAX_OPEN`] frames only.
    dir: Option<Dir>,
    dev: u64,
    ino: u64,
    /// The directory's name in its parent (unused for the root).
    name: CString,
    /// Entries not visited yet.
    pending: Vec<CString>,
}

struct Walk<'a> {
    root: &'a Path,
    max_depth: usize,
    stack: Vec<Frame>,
    /// Index of the shallowest open frame other than the root (`stack.len()` when none is).
    lowest_open: usize,
    /// Counter for the names of subtrees moved up to the root.
    moved: u64,
}

impl<'a> Walk<'a> {
    fn new(root: &'a Path, mut dir: Dir, max_depth: usize) -> Result<Walk<'a>, WalkError> {
        let mut walk = Walk {
            root,
            max_depth,
            stack: Vec::new(),
            lowest_open: 1,
            moved: 0,
        };
        let st = fstat(dir.as_raw_fd()).map_err(walk.err("stat", 0, c"."))?;
        let pending = read_names(&mut dir).map_err(walk.err("read directory", 0, c"."))?;
        walk.stack.push(Frame {
            dir: Some(dir),
            dev: st.st_dev,
            ino: st.st_ino,
            name: CString::default(),
            pending,
        });
        Ok(walk)
    }

    fn err(
        &self,
        op: &'static str,
        depth: usize,
        name: &CStr,
    ) -> impl FnOnce(Errno) -> WalkError + use<> {
        let (root, name) = (self.root.to_path_buf(), lossy(name));
        move |e| WalkError::Io {
            root,
            op,
            depth,
            name,
            source: e.into(),
        }
    }

    fn visit_err(&self, depth: usize, name: &CStr) -> impl FnOnce(io::Error) -> WalkError + use<> {
        let (root, name) = (self.root.to_path_buf(), lossy(name));
        move |source| WalkError::Io {
            root,
            op: "visit",
            depth,
            name,
            source,
        }
    }

    /// The open descriptor of frame `i` (the top frame and the root always have one).
    fn fd(&self, i: usize) -> Result<RawFd, WalkError> {
        self.stack
            .get(i)
            .and_then(|f| f.dir.as_ref())
            .map(AsRawFd::as_raw_fd)
            .ok_or(WalkError::Moved {
                root: self.root.to_path_buf(),
                depth: i,
            })
    }

    fn run(mut self, visitor: &mut impl Visitor, removing: bool) -> Result<(), WalkError> {
        let root_dev = self.stack[0].dev;
        loop {
            let top = self.stack.len() - 1;
            let depth = top + 1;
            let Some(name) = self.stack[top].pending.pop() else {
                if top == 0 {
                    return Ok(());
                }
                self.climb(visitor)?;
                continue;
            };
            let dirfd = self.fd(top)?;
            let st = match fstatat(
                Some(dirfd),
                name.as_c_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(st) => st,
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(self.err("stat", depth, &name)(e)),
            };
            visitor
                .entry(&Entry {
                    dir: dirfd,
                    name: &name,
                    stat: &st,
                    depth,
                })
                .map_err(self.visit_err(depth, &name))?;
            if !is_dir(&st) || st.st_dev != root_dev {
                continue;
            }
            if depth >= self.max_depth {
                if !removing {
                    return Err(WalkError::TooDeep {
                        root: self.root.to_path_buf(),
                        max: self.max_depth,
                    });
                }
                self.move_to_root(dirfd, &name, depth)?;
                continue;
            }
            let mut child =
                match Dir::openat(Some(dirfd), name.as_c_str(), DIR_FLAGS, Mode::empty()) {
                    Ok(d) => d,
                    Err(Errno::ENOENT) => continue,
                    Err(e) => return Err(self.err("open directory", depth, &name)(e)),
                };
            let cst = fstat(child.as_raw_fd()).map_err(self.err("stat", depth, &name))?;
            if (cst.st_dev, cst.st_ino) != (st.st_dev, st.st_ino) {
                return Err(WalkError::Moved {
                    root: self.root.to_path_buf(),
                    depth,
                });
            }
            let pending =
                read_names(&mut child).map_err(self.err("read directory", depth, &name))?;
            if self.stack.len() - self.lowest_open >= MAX_OPEN {
                self.stack[self.lowest_open].dir = None;
                self.lowest_open += 1;
            }
            self.stack.push(Frame {
                dir: Some(child),
                dev: cst.st_dev,
                ino: cst.st_ino,
                name,
                pending,
            });
        }
    }

    /// Leaves the finished top frame for its parent, reopening the parent as `..` when its
    /// descriptor was dropped.
    fn climb(&mut self, visitor: &mut impl Visitor) -> Result<(), WalkError> {
        let Some(done) = self.stack.pop() else {
            return Ok(());
        };
        let parent = self.stack.len() - 1;
        if self.stack[parent].dir.is_none() {
            let (depth, dotdot) = (parent, c"..");
            let fd = done
                .dir
                .as_ref()
                .map(AsRawFd::as_raw_fd)
                .ok_or(WalkError::Moved {
                    root: self.root.to_path_buf(),
                    depth: parent + 1,
                })?;
            let up = Dir::openat(Some(fd), dotdot, DIR_FLAGS, Mode::empty()).map_err(self.err(
                "open parent",
                depth,
                dotdot,
            ))?;
            let st = fstat(up.as_raw_fd()).map_err(self.err("stat parent", depth, dotdot))?;
            let frame = &mut self.stack[parent];
            if (st.st_dev, st.st_ino) != (frame.dev, frame.ino) {
                return Err(WalkError::Moved {
                    root: self.root.to_path_buf(),
                    depth,
                });
            }
            frame.dir = Some(up);
        }
        if self.lowest_open > parent {
            self.lowest_open = parent.max(1);
        }
        drop(done.dir);
        let fd = self.fd(parent)?;
        visitor
            .leave(fd, &done.name, parent + 1)
            .map_err(self.visit_err(parent + 1, &done.name))
    }

    /// Moves the directory `name` in `dirfd` (too deep to enter) into the root under a fresh
    /// name, to be removed from there.
    fn move_to_root(&mut self, dirfd: RawFd, name: &CStr, depth: usize) -> Result<(), WalkError> {
        let root_fd = self.fd(0)?;
        loop {
            self.moved += 1;
            let fresh = CString::new(format!(".corral-deep-{}", self.moved)).unwrap_or_default();
            match renameat2(
                Some(dirfd),
                name,
                Some(root_fd),
                fresh.as_c_str(),
                RenameFlags::RENAME_NOREPLACE,
            ) {
                Ok(()) => {
                    self.stack[0].pending.push(fresh);
                    return Ok(());
                }
                Err(Errno::EEXIST) => continue,
                Err(Errno::ENOENT) => return Ok(()),
                Err(e) => return Err(self.err("move up a deep directory", depth, name)(e)),
            }
        }
    }
}

/// The names in `dir` other than `.` and `..`.
fn read_names(dir: &mut Dir) -> Result<Vec<CString>, Errno> {
    let mut names = Vec::new();
    for item in dir.iter() {
        let item = item?;
        let n = item.file_name();
        if n != c"." && n != c".." {
            names.push(n.to_owned());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests;
