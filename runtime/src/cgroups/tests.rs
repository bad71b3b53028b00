use super::layout::parse_mountinfo;
use std::path::PathBuf;

#[test]
fn mountinfo_gives_each_hierarchy_once_and_sees_favordynmods() {
    let text = "\
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
90 35 0:32 /pod /mnt/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
23 1 8:1 / / rw - ext4 /dev/vda rw
";
    let h = parse_mountinfo(text);
    let names: Vec<_> = h.iter().map(|h| h.mount_point.clone()).collect();
    assert_eq!(
        names,
        [
            "/sys/fs/cgroup/cpu",
            "/sys/fs/cgroup/memory",
            "/sys/fs/cgroup/unified"
        ]
        .map(PathBuf::from)
    );
    assert!(h.iter().all(|h| !h.favordynmods));
    assert!(h[2].v2 && h[1].has_controller("memory"));

    let v2 = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,favordynmods,memory_recursiveprot\n";
    let h = parse_mountinfo(v2);
    assert_eq!(h.len(), 1);
    assert!(h[0].v2 && h[0].favordynmods);
    let v1 = "46 27 0:40 / /tmp/x rw,relatime - cgroup cgroup rw,favordynmods,name=probe\n";
    assert!(parse_mountinfo(v1)[0].favordynmods);
}

/// A hierarchy mounted at a path with a space (or tab, newline, backslash) is found where it is:
/// the mount table writes those bytes as octal escapes.
#[test]
fn mount_points_with_escaped_bytes_are_read_back() {
    let text = "\
32 31 0:29 / /run/my\\040cgroups/cpu\\134x rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /run/café/memory rw,relatime - cgroup cgroup rw,memory
";
    let h = parse_mountinfo(text);
    assert_eq!(h[0].mount_point, PathBuf::from("/run/my cgroups/cpu\\x"));
    // Bytes the kernel leaves alone stay as they are.
    assert_eq!(h[1].mount_point, PathBuf::from("/run/caf\u{e9}/memory"));
}
