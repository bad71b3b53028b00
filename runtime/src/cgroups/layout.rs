//! The host's cgroup hierarchies, from the mount table.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};

use crate::Error;

/// A mounted cgroup hierarchy.
#[derive(Debug, Clone)]
pub(crate) struct Hierarchy {
    /// Where it is mounted (e.g. `/sys/fs/cgroup/memory`).
    pub mount_point: PathBuf,
    /// `true` for cgroup2.
    pub v2: bool,
    /// The v1 super options (controllers, `name=...`); empty for v2.
    pub options: String,
    /// Mounted with `favordynmods` (see [`Layout::favordynmods`]).
    pub favordynmods: bool,
}

impl Hierarchy {
    /// The directory of `cgroups_path` in this hierarchy.
    pub fn dir(&self, cgroups_path: &Path) -> PathBuf {
        self.mount_point
            .join(cgroups_path.strip_prefix("/").unwrap_or(cgroups_path))
    }
    pub(crate) fn has_controller(&self, name: &str) -> bool {
        self.options.split(',').any(|o| o == name)
    }
}

/// The host's cgroup setup as reported to clients (`Status` verbose info).
#[derive(Debug, Clone)]
pub struct Layout {
    /// `v1`, `hybrid` (v1 controllers plus a cgroup2 mount) or `v2`.
    pub mode: &'static str,
    /// Each mounted hierarchy: mount point, and its controllers (`cgroup2` for v2).
    pub hierarchies: Vec<(PathBuf, String)>,
    /// Some hierarchy is mounted with `favordynmods`. Without it (the kernel's default), the
    /// first move of a process into a cgroup after a quiet spell waits for an RCU grace period
    /// (the kernel's threadgroup lock switching to its writer mode): measured at about 8 ms on
    /// a 2-core VM, most of a CreateContainer. The option makes that move about 0.2 ms, at a
    /// small cost to every fork and exit on the host, which is why Corral reports it and
    /// leaves it to the host's owner. A kernel built with `CONFIG_CGROUP_FAVOR_DYNMODS`, or a
    /// hierarchy that had the option and was unmounted, has the same effect unseen here.
    pub favordynmods: bool,
}

/// Reads the host's cgroup layout from `/proc/self/mountinfo`.
pub fn layout() -> Result<Layout, Error> {
    let all = hierarchies()?;
    let (v1, v2) = (all.iter().any(|h| !h.v2), all.iter().any(|h| h.v2));
    let mode = match (v1, v2) {
        (true, true) => "hybrid",
        (false, true) => "v2",
        _ => "v1",
    };
    Ok(Layout {
        mode,
        favordynmods: all.iter().any(|h| h.favordynmods),
        hierarchies: all
            .into_iter()
            .map(|h| {
                let what = if h.v2 {
                    "cgroup2".to_owned()
                } else {
                    h.options
                };
                (h.mount_point, what)
            })
            .collect(),
    })
}

/// Every cgroup (v1) and cgroup2 mount of this mount namespace, without duplicates.
pub(crate) fn hierarchies() -> Result<Vec<Hierarchy>, Error> {
    // Bytes, decoded lossily: one mount point elsewhere that is not UTF-8 (any user's FUSE
    // mount) must not fail every container creation, as `read_to_string` did.
    let bytes = std::fs::read("/proc/self/mountinfo").map_err(Error::io("/proc/self/mountinfo"))?;
    Ok(parse_mountinfo(&String::from_utf8_lossy(&bytes)))
}

/// A path field of the mount table, whose space, tab, newline and backslash the kernel writes
/// as three octal digits after a backslash (`\040`).
fn mount_path(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some((&b, tail)) = rest.split_first() {
        match tail {
            [
                d0 @ b'0'..=b'3',
                d1 @ b'0'..=b'7',
                d2 @ b'0'..=b'7',
                after @ ..,
            ] if b == b'\\' => {
                out.push((d0 - b'0') << 6 | (d1 - b'0') << 3 | (d2 - b'0'));
                rest = after;
            }
            _ => {
                out.push(b);
                rest = tail;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

/// The cgroup hierarchies of a mountinfo text.
pub(super) fn parse_mountinfo(text: &str) -> Vec<Hierarchy> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if pre.len() < 5 || post.len() < 3 {
            continue;
        }
        let v2 = match post[0] {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let favordynmods = post[2].split(',').any(|o| o == "favordynmods");
        let options = if v2 {
            String::new()
        } else {
            post[2].to_owned()
        };
        let key = if v2 {
            "cgroup2".to_owned()
        } else {
            options.clone()
        };
        if seen.insert(key) {
            out.push(Hierarchy {
                mount_point: mount_path(pre[4]),
                v2,
                options,
                favordynmods,
            });
        }
    }
    out
}
