use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use nix::dir::Dir;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, mkdirat};

use super::*;

/// Makes `root/d/d/.../d` (`depth` levels) with one file at the bottom, relative to
/// descriptors so no path is long.
fn deep_tree(root: &Path, depth: usize) {
    let mut dir = Dir::open(root, DIR_FLAGS, Mode::empty()).expect("open root");
    for _ in 0..depth {
        mkdirat(Some(dir.as_raw_fd()), c"d", Mode::from_bits_truncate(0o755)).expect("mkdirat");
        dir = Dir::openat(Some(dir.as_raw_fd()), c"d", DIR_FLAGS, Mode::empty()).expect("open");
    }
    nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        c"leaf",
        OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .map(|fd| nix::unistd::close(fd).expect("close"))
    .expect("create leaf");
}

/// A scratch directory on tmpfs when there is one: removing 20 000 directories from ext4
/// takes a minute on these machines, from tmpfs half a second.
fn scratch() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().expect("tempdir"))
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("fds").count()
}

/// Runs `f` on a thread with a small stack, as a recursive walk would overflow it.
fn small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("join")
}

struct Count {
    entries: usize,
    deepest: usize,
    max_fds: usize,
}

impl Visitor for Count {
    fn entry(&mut self, e: &Entry<'_>) -> io::Result<()> {
        self.entries += 1;
        self.deepest = self.deepest.max(e.depth);
        if e.depth.is_multiple_of(512) {
            self.max_fds = self.max_fds.max(open_fds());
        }
        Ok(())
    }
}

#[test]
fn deep_tree_is_walked_and_removed_on_a_small_stack_with_few_descriptors() {
    let tmp = scratch();
    let root = tmp.path().join("t");
    std::fs::create_dir(&root).expect("mkdir");
    deep_tree(&root, 20_000);
    let before = open_fds();
    let walked = root.clone();
    let count = small_stack(move || {
        let mut c = Count {
            entries: 0,
            deepest: 0,
            max_fds: 0,
        };
        walk(&walked, &mut c).map(|()| c)
    })
    .expect("walk");
    assert_eq!(count.entries, 20_001);
    assert_eq!(count.deepest, 20_001);
    assert!(
        count.max_fds <= before + MAX_OPEN + 4,
        "{} descriptors open during the walk ({before} before)",
        count.max_fds
    );
    let removed = root.clone();
    small_stack(move || remove_tree(&removed)).expect("remove");
    assert!(!root.exists());
}

#[test]
fn walk_refuses_a_tree_deeper_than_its_limit() {
    let tmp = scratch();
    deep_tree(tmp.path(), 50);
    let mut c = Count {
        entries: 0,
        deepest: 0,
        max_fds: 0,
    };
    let err = walk_with_depth(tmp.path(), 20, &mut c).expect_err("too deep");
    assert!(matches!(err, WalkError::TooDeep { max: 20, .. }), "{err}");
}

#[test]
fn removal_moves_subtrees_beyond_its_depth_up_and_finishes() {
    let tmp = scratch();
    let root = tmp.path().join("t");
    std::fs::create_dir(&root).expect("mkdir");
    deep_tree(&root, 1000);
    std::fs::create_dir(root.join("other")).expect("mkdir");
    remove_tree_with_depth(&root, 7).expect("remove");
    assert!(!root.exists());
}

#[test]
fn symlinks_are_removed_not_followed() {
    let tmp = scratch();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    std::fs::write(outside.join("keep"), b"x").expect("write");
    let root = tmp.path().join("t");
    std::fs::create_dir_all(root.join("a")).expect("mkdir");
    std::os::unix::fs::symlink(&outside, root.join("a/link")).expect("symlink");
    std::os::unix::fs::symlink(&outside, root.join("top")).expect("symlink");
    remove_tree(&root).expect("remove");
    assert!(!root.exists());
    assert!(outside.join("keep").exists());
    // A symlink given as the path is unlinked, not followed.
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&outside, &link).expect("symlink");
    remove_tree(&link).expect("remove link");
    assert!(outside.join("keep").exists());
    assert!(std::fs::symlink_metadata(&link).is_err());
    // walk() refuses a symlinked root.
    std::os::unix::fs::symlink(&outside, &link).expect("symlink");
    let mut c = Count {
        entries: 0,
        deepest: 0,
        max_fds: 0,
    };
    assert!(walk(&link, &mut c).is_err());
}

#[test]
fn missing_paths_are_removed_already() {
    let tmp = scratch();
    remove_tree(&tmp.path().join("absent")).expect("absent");
    let file = tmp.path().join("f");
    std::fs::write(&file, b"x").expect("write");
    remove_tree(&file).expect("file");
    assert!(!file.exists());
}

#[test]
fn remove_at_reports_each_removed_file() {
    let tmp = scratch();
    std::fs::create_dir_all(tmp.path().join("d/e")).expect("mkdir");
    std::fs::write(tmp.path().join("d/f"), b"x").expect("write");
    std::fs::write(tmp.path().join("d/e/g"), b"x").expect("write");
    let parent = Dir::open(tmp.path(), DIR_FLAGS, Mode::empty()).expect("open");
    let mut files = 0;
    remove_tree_at(parent.as_raw_fd(), c"d", tmp.path(), |_| files += 1).expect("remove");
    assert_eq!(files, 2);
    assert!(!tmp.path().join("d").exists());
}

/// A visitor that renames a directory the walk dropped the descriptor of, so climbing back
/// through `..` meets another directory.
struct Mover<'a> {
    root: &'a Path,
    done: bool,
}

impl Visitor for Mover<'_> {
    fn entry(&mut self, e: &Entry<'_>) -> io::Result<()> {
        if !self.done && e.depth == MAX_OPEN + 10 {
            self.done = true;
            // Move the chain below depth 2 elsewhere: `..` of the frames below now leads to
            // a directory whose inode is not the one recorded.
            std::fs::rename(self.root.join("d/d"), self.root.join("moved"))?;
        }
        Ok(())
    }

    fn leave(&mut self, _parent: RawFd, _name: &CStr, _depth: usize) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_directory_moved_during_the_walk_stops_it() {
    let tmp = scratch();
    deep_tree(tmp.path(), MAX_OPEN + 40);
    let mut m = Mover {
        root: tmp.path(),
        done: false,
    };
    // The moved chain is still walked through its descriptors; the climb back above the
    // point where descriptors were dropped finds `..` changed.
    let err = walk(tmp.path(), &mut m).expect_err("moved");
    assert!(matches!(err, WalkError::Moved { .. }), "{err}");
}
