//! Root tests: each builds a layer in memory and checks what lands on disk.

#![allow(unsafe_code, clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use tar::{Builder, Header};

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tar::EntryType;

use super::*;

const MTIME: u64 = 1_600_000_000;

/// An in-memory layer tar.
struct Layer(Builder<Vec<u8>>);

fn header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h
}

impl Layer {
    fn new() -> Self {
        Layer(Builder::new(Vec::new()))
    }

    fn add(&mut self, mut h: Header, path: &str, data: &[u8]) -> &mut Self {
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.add(
            header(EntryType::Regular, mode, data.len() as u64),
            path,
            data,
        )
    }

    fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.add(header(EntryType::Directory, mode, 0), path, &[])
    }

    /// Writes name and link name bytes straight into the header, bypassing the builder's
    /// checks, as a malicious archive would.
    fn raw(&mut self, kind: EntryType, name: &[u8], link: &[u8], data: &[u8]) -> &mut Self {
        let mut h = header(kind, 0o644, data.len() as u64);
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(EntryType::Symlink, path.as_bytes(), target.as_bytes(), &[])
    }

    fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.raw(EntryType::Link, path.as_bytes(), target.as_bytes(), &[])
    }

    /// A PAX extended header applying to the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (key, value) in records {
            let body = key.len() + value.len() + 3; // ' ', '=', '\n'
            let mut len = body + 1;
            while body + len.to_string().len() != len {
                len = body + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {key}=").as_bytes());
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        let h = header(EntryType::XHeader, 0o644, data.len() as u64);
        self.add(h, "PaxHeaders/x", &data.clone())
    }

    fn finish(&mut self) -> Vec<u8> {
        self.0.finish().unwrap();
        self.0.get_ref().clone()
    }
}

/// A temporary base directory holding the target `root` and whatever a test puts beside it.
fn setup() -> (tempfile::TempDir, PathBuf) {
    let base = tempfile::tempdir().unwrap();
    let target = base.path().join("root");
    fs::create_dir(&target).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755)).unwrap();
    (base, target)
}

fn unpack(tar: &[u8], target: &Path) -> Result<UnpackStats, UnpackError> {
    unpack_layer(tar, Compression::Auto, target, &UnpackLimits::default())
}

fn sha256_id(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = vec![0u8; 1024];
    // SAFETY: both strings are NUL-terminated, and `buf` is a live buffer of the given length.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let len = usize::try_from(r).ok()?;
    buf.truncate(len);
    Some(buf)
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// Deterministic incompressible bytes.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn unpack_plain_files_dirs_modes_owners_mtimes() {
    let (_base, target) = setup();
    let mut l = Layer::new();
    let mut h = header(EntryType::Directory, 0o750, 0);
    h.set_mtime(1_500_000_000);
    l.add(h, "etc/", &[]);
    let mut h = header(EntryType::Regular, 0o640, 5);
    h.set_uid(1000);
    h.set_gid(2000);
    l.add(h, "etc/conf", b"hello");
    l.pax(&[("mtime", b"1600000000.25")])
        .file("etc/precise", 0o644, b"x");
    let mut h = header(EntryType::Directory, 0o700, 0);
    h.set_uid(33);
    l.add(h, "var/lib/app/", &[]);
    l.file("var/lib/app/data", 0o600, b"data");
    l.add(header(EntryType::Fifo, 0o620, 0), "run/fifo", &[]);
    let tar = l.finish();

    let stats = unpack(&tar, &target).unwrap();
    assert_eq!(stats.diff_id, sha256_id(&tar));
    assert_eq!(stats.tar_bytes, tar.len() as u64);
    // etc, conf, precise, var, lib, app, data, run, fifo
    assert_eq!(stats.inodes, 9);
    assert!(stats.disk_bytes > 0);

    let conf = target.join("etc/conf");
    assert_eq!(fs::read(&conf).unwrap(), b"hello");
    let md = fs::metadata(&conf).unwrap();
    assert_eq!(
        (md.uid(), md.gid(), md.mode() & 0o7777),
        (1000, 2000, 0o640)
    );
    assert_eq!(md.mtime(), MTIME as i64);
    let etc = fs::metadata(target.join("etc")).unwrap();
    assert_eq!(etc.mode() & 0o7777, 0o750);
    assert_eq!(
        etc.mtime(),
        1_500_000_000,
        "directory mtime set after its children"
    );
    let precise = fs::metadata(target.join("etc/precise")).unwrap();
    assert_eq!(
        (precise.mtime(), precise.mtime_nsec()),
        (1_600_000_000, 250_000_000)
    );
    // Parents the tar did not list: 0755, root.
    for p in ["var", "var/lib", "run"] {
        let md = fs::metadata(target.join(p)).unwrap();
        assert_eq!(
            (md.mode() & 0o7777, md.uid(), md.gid()),
            (0o755, 0, 0),
            "{p}"
        );
    }
    let app = fs::metadata(target.join("var/lib/app")).unwrap();
    assert_eq!(
        (app.mode() & 0o7777, app.uid(), app.mtime()),
        (0o700, 33, MTIME as i64)
    );
    assert_eq!(fs::read(target.join("var/lib/app/data")).unwrap(), b"data");
    let fifo = fs::symlink_metadata(target.join("run/fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o7777, 0o620);
}

#[test]
fn unpack_keeps_setuid_setgid_sticky() {
    let (_base, target) = setup();
    let mut l = Layer::new();
    let mut h = header(EntryType::Regular, 0o4755, 3);
    h.set_uid(1000);
    h.set_gid(1000);
    l.add(h, "bin/su", b"elf");
    let mut h = header(EntryType::Regular, 0o2755, 3);
    h.set_gid(50);
    l.add(h, "bin/sg", b"elf");
    l.dir("tmp/", 0o1777);
    unpack(&l.finish(), &target).unwrap();

    let su = fs::metadata(target.join("bin/su")).unwrap();
    assert_eq!((su.mode() & 0o7777, su.uid()), (0o4755, 1000));
    let sg = fs::metadata(target.join("bin/sg")).unwrap();
    assert_eq!((sg.mode() & 0o7777, sg.gid()), (0o2755, 50));
    assert_eq!(mode(&target.join("tmp")), 0o1777);
}

#[test]
fn unpack_symlinks_and_hardlinks_inside() {
    let (_base, target) = setup();
    let mut l = Layer::new();
    l.file("f", 0o644, b"content");
    let mut h = header(EntryType::Symlink, 0o777, 0);
    h.set_link_name("f").unwrap();
    h.set_uid(5);
    h.set_mtime(1_234_567_890);
    l.add(h, "l", &[]);
    l.symlink("abs", "/etc/passwd").hardlink("h", "f");
    let stats = unpack(&l.finish(), &target).unwrap();

    assert_eq!(fs::read_link(target.join("l")).unwrap(), Path::new("f"));
    let lmd = fs::symlink_metadata(target.join("l")).unwrap();
    assert_eq!((lmd.uid(), lmd.mtime()), (5, 1_234_567_890));
    assert_eq!(
        fs::read_link(target.join("abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    let f = fs::metadata(target.join("f")).unwrap();
    let h = fs::metadata(target.join("h")).unwrap();
    assert_eq!((f.ino(), f.nlink()), (h.ino(), 2));
    assert_eq!(stats.inodes, 3, "a hard link is not a new inode");
}

#[test]
fn unpack_whiteout_becomes_char_device() {
    let (_base, target) = setup();
    let mut l = Layer::new();
    l.dir("usr/", 0o755).file("usr/lib", 0o644, b"old");
    l.file("usr/.wh.bin", 0o644, b"")
        .file("usr/.wh.lib", 0o644, b"");
    let mut h = header(EntryType::Char, 0o600, 0);
    h.set_device_major(0).unwrap();
    h.set_device_minor(0).unwrap();
    l.add(h, "etc/gone", &[]);
    unpack(&l.finish(), &target).unwrap();

    for p in ["usr/bin", "usr/lib", "etc/gone"] {
        let md = fs::symlink_metadata(target.join(p)).unwrap();
        assert!(md.file_type().is_char_device(), "{p}");
        assert_eq!(md.rdev(), 0, "{p}");
    }
    assert!(!target.join("usr/.wh.bin").exists());
}

#[test]
fn unpack_opaque_dir_gets_xattr_and_aufs_metadata_is_ignored() {
    let (_base, target) = setup();
    let mut l = Layer::new();
    l.dir("d/", 0o755)
        .file("d/.wh..wh..opq", 0o644, b"")
        .file("d/f", 0o644, b"f");
    l.dir(".wh..wh.plnk/", 0o700)
        .file(".wh..wh.plnk/1.2", 0o644, b"x");
    l.file(".wh..wh.aufs", 0o644, b"");
    unpack(&l.finish(), &target).unwrap();

    assert_eq!(
        xattr(&target.join("d"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(xattr(&target, "trusted.overlay.opaque"), None);
    assert!(target.join("d/f").exists());
    assert!(!target.join("d/.wh..wh..opq").exists());
    assert!(!target.join(".wh..wh.plnk").exists());
    assert!(!target.join(".wh..wh.aufs").exists());
}

#[test]
fn unpack_replaces_file_by_dir_and_dir_by_file() {
    let (_base, target) = setup();
    let mut l = Layer::new();
    l.file("a", 0o644, b"file")
        .dir("a/", 0o755)
        .file("a/inner", 0o644, b"in");
    l.dir("b/", 0o755)
        .file("b/child", 0o644, b"c")
        .dir("b/sub/", 0o755);
    l.file("b/sub/deep", 0o644, b"d").file("b", 0o600, b"new");
    l.dir("c/", 0o700).file("c/x", 0o644, b"x").dir("c/", 0o751);
    let stats = unpack(&l.finish(), &target).unwrap();

    assert!(fs::symlink_metadata(target.join("a")).unwrap().is_dir());
    assert_eq!(fs::read(target.join("a/inner")).unwrap(), b"in");
    assert!(fs::symlink_metadata(target.join("b")).unwrap().is_file());
    assert_eq!(fs::read(target.join("b")).unwrap(), b"new");
    assert_eq!(
        mode(&target.join("c")),
        0o751,
        "directory over directory updates metadata"
    );
    assert_eq!(
        fs::read(target.join("c/x")).unwrap(),
        b"x",
        "and keeps the children"
    );
    // a, a/inner, b, c, c/x: what was removed is not counted.
    assert_eq!(stats.inodes, 5);
}

#[test]
fn unpack_follows_replacements_of_parent_dirs() {
    let (_base, target) = setup();
    let mut l = Layer::new();
    l.dir("d/", 0o755).file("d/f", 0o644, b"f").dir("e/", 0o755);
    l.symlink("d", "e").file("d/g", 0o644, b"g");
    unpack(&l.finish(), &target).unwrap();

    assert!(fs::symlink_metadata(target.join("d")).unwrap().is_symlink());
    assert_eq!(fs::read(target.join("e/g")).unwrap(), b"g");
    assert!(!target.join("e/f").exists());
}

#[test]
fn unpack_gzip_zstd_and_plain_give_the_same_diff_id() {
    let mut l = Layer::new();
    l.dir("data/", 0o755)
        .file("data/blob", 0o644, &noise(100_000));
    let tar = l.finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&tar[..], 3).unwrap();

    let cases: [(&[u8], Compression); 7] = [
        (&tar, Compression::None),
        (&tar, Compression::Auto),
        (&gz, Compression::Gzip),
        (&gz, Compression::Auto),
        (&zst, Compression::Zstd),
        (&zst, Compression::Auto),
        // Mislabeled by the registry: the magic bytes win.
        (&gz, Compression::None),
    ];
    for (input, compression) in cases {
        let (_base, target) = setup();
        let stats = unpack_layer(input, compression, &target, &UnpackLimits::default()).unwrap();
        assert_eq!(stats.diff_id, sha256_id(&tar), "{compression:?}");
        assert_eq!(stats.tar_bytes, tar.len() as u64);
        assert_eq!(fs::read(target.join("data/blob")).unwrap().len(), 100_000);
    }
}

#[test]
fn compression_from_media_type_and_magic() {
    use Compression as C;
    let mt = |s| Compression::from_media_type(s);
    assert_eq!(mt("application/vnd.oci.image.layer.v1.tar"), Some(C::None));
    assert_eq!(
        mt("application/vnd.oci.image.layer.v1.tar+gzip"),
        Some(C::Gzip)
    );
    assert_eq!(
        mt("application/vnd.docker.image.rootfs.diff.tar.gzip"),
        Some(C::Gzip)
    );
    assert_eq!(
        mt("application/vnd.oci.image.layer.v1.tar+zstd"),
        Some(C::Zstd)
    );
    assert_eq!(mt("application/vnd.oci.image.config.v1+json"), None);
    assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), C::Gzip);
    assert_eq!(Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]), C::Zstd);
    assert_eq!(Compression::sniff(b"etc/"), C::None);
    let (_base, target) = setup();
    let xz = [0xfd, b'7', b'z', b'X', b'Z', 0, 1, 2];
    let err = unpack(&xz, &target).unwrap_err();
    assert!(
        matches!(err, UnpackError::UnsupportedCompression("xz")),
        "{err}"
    );
}

#[test]
fn unpack_rejects_dotdot_escape() {
    for name in [&b"../evil"[..], b"a/../../evil", b"./../evil"] {
        let (base, target) = setup();
        let tar = Layer::new()
            .raw(EntryType::Regular, name, b"", b"pwn")
            .finish();
        let err = unpack(&tar, &target).unwrap_err();
        assert!(matches!(err, UnpackError::PathEscape { .. }), "{err}");
        assert!(!base.path().join("evil").exists());
    }
    // `..` that stays inside is cleaned like filepath.Clean.
    let (base, target) = setup();
    let tar = Layer::new()
        .raw(EntryType::Regular, b"a/b/../c", b"", b"ok")
        .finish();
    unpack(&tar, &target).unwrap();
    assert_eq!(fs::read(target.join("a/c")).unwrap(), b"ok");
    assert!(!base.path().join("c").exists());
}

#[test]
fn unpack_strips_absolute_paths() {
    let (base, target) = setup();
    let outside = base.path().join("abs-evil");
    let name = outside.as_os_str().as_bytes();
    let tar = Layer::new()
        .raw(EntryType::Regular, name, b"", b"pwn")
        .finish();
    unpack(&tar, &target).unwrap();
    assert!(!outside.exists());
    let inside = target.join(outside.strip_prefix("/").unwrap());
    assert_eq!(fs::read(inside).unwrap(), b"pwn");
}

#[test]
fn unpack_symlink_parent_to_root_stays_inside() {
    let (_base, target) = setup();
    let name = format!("corral-unpack-evil-{}", std::process::id());
    let tar = Layer::new()
        .symlink("x", "/")
        .file(&format!("x/{name}"), 0o644, b"pwn")
        .finish();
    let result = unpack(&tar, &target);
    assert!(
        !Path::new("/").join(&name).exists(),
        "wrote outside the target"
    );
    result.unwrap();
    assert_eq!(fs::read(target.join(&name)).unwrap(), b"pwn");
}

#[test]
fn unpack_symlink_parent_to_outside_dir_fails_inside() {
    let (base, target) = setup();
    let outside = base.path().to_str().unwrap().to_owned();
    let tar = Layer::new()
        .symlink("x", &outside)
        .file("x/evil", 0o644, b"pwn")
        .finish();
    let result = unpack(&tar, &target);
    assert!(
        !base.path().join("evil").exists(),
        "wrote outside the target"
    );
    let err = result.unwrap_err();
    assert!(matches!(err, UnpackError::Invalid { .. }), "{err}");
}

#[test]
fn unpack_symlink_parent_dotdot_stays_inside() {
    let (base, target) = setup();
    let tar = Layer::new()
        .symlink("x", "../../..")
        .symlink("y", "x/..")
        .file("x/evil", 0o644, b"pwn")
        .file("y/evil2", 0o644, b"pwn")
        .finish();
    let result = unpack(&tar, &target);
    for dir in [base.path(), base.path().parent().unwrap()] {
        assert!(!dir.join("evil").exists() && !dir.join("evil2").exists());
    }
    result.unwrap();
    assert_eq!(fs::read(target.join("evil")).unwrap(), b"pwn");
    assert_eq!(fs::read(target.join("evil2")).unwrap(), b"pwn");
}

#[test]
fn unpack_rejects_hardlink_to_host_file() {
    let nlink = || fs::metadata("/etc/passwd").unwrap().nlink();
    let before = nlink();
    for tar in [
        Layer::new().hardlink("h", "/etc/passwd").finish(),
        Layer::new()
            .symlink("s", "/etc")
            .hardlink("h", "s/passwd")
            .finish(),
    ] {
        let (_base, target) = setup();
        let err = unpack(&tar, &target).unwrap_err();
        assert!(matches!(err, UnpackError::Hardlink { .. }), "{err}");
        assert!(fs::symlink_metadata(target.join("h")).is_err());
    }
    assert_eq!(nlink(), before);
}

#[test]
fn unpack_rejects_hardlink_outside_or_missing() {
    let (base, target) = setup();
    let outside = base.path().join("outside");
    fs::write(&outside, b"secret").unwrap();
    let tar = Layer::new().hardlink("h", "../outside").finish();
    let err = unpack(&tar, &target).unwrap_err();
    assert!(matches!(err, UnpackError::Hardlink { .. }), "{err}");
    assert_eq!(fs::metadata(&outside).unwrap().nlink(), 1);
    assert!(fs::symlink_metadata(target.join("h")).is_err());

    let (_base, target) = setup();
    let tar = Layer::new().dir("d/", 0o755).hardlink("h", "d").finish();
    let err = unpack(&tar, &target).unwrap_err();
    assert!(matches!(
        err,
        UnpackError::Hardlink {
            reason: "target is a directory",
            ..
        }
    ));
    let tar = Layer::new().hardlink("h2", "nope").finish();
    let err = unpack(&tar, &target).unwrap_err();
    assert!(matches!(err, UnpackError::Hardlink { .. }), "{err}");
}

#[test]
fn unpack_skips_device_nodes() {
    let (_base, target) = setup();
    let mut l = Layer::new();
    let mut h = header(EntryType::Char, 0o666, 0);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    l.add(h, "dev/null", &[]);
    let mut h = header(EntryType::Block, 0o660, 0);
    h.set_device_major(8).unwrap();
    h.set_device_minor(0).unwrap();
    l.add(h, "dev/sda", &[]);
    l.file("after", 0o644, b"ok");
    unpack(&l.finish(), &target).unwrap();
    assert!(fs::symlink_metadata(target.join("dev/null")).is_err());
    assert!(fs::symlink_metadata(target.join("dev/sda")).is_err());
    assert_eq!(fs::read(target.join("after")).unwrap(), b"ok");
}

#[test]
fn unpack_enforces_entry_limit() {
    let mut l = Layer::new();
    for i in 0..5 {
        l.file(&format!("f{i}"), 0o644, b"x");
    }
    let tar = l.finish();
    let limits = |max_entries| UnpackLimits {
        max_entries,
        ..UnpackLimits::default()
    };
    let (_base, target) = setup();
    let err = unpack_layer(&tar[..], Compression::Auto, &target, &limits(4)).unwrap_err();
    assert!(
        matches!(err, UnpackError::TooManyEntries { limit: 4 }),
        "{err}"
    );
    assert!(!target.join("f4").exists());
    let (_base, target) = setup();
    unpack_layer(&tar[..], Compression::Auto, &target, &limits(5)).unwrap();
    assert!(target.join("f4").exists());
}

#[test]
fn unpack_enforces_byte_limit() {
    let mut l = Layer::new();
    for i in 0..3 {
        l.file(&format!("f{i}"), 0o644, &[7; 4096]);
    }
    let tar = l.finish();
    let limits = |max_tar_bytes| UnpackLimits {
        max_tar_bytes,
        ..UnpackLimits::default()
    };
    for limit in [8192, tar.len() as u64 - 1] {
        let (_base, target) = setup();
        let err = unpack_layer(&tar[..], Compression::Auto, &target, &limits(limit)).unwrap_err();
        assert!(
            matches!(err, UnpackError::TooLarge { .. }),
            "{limit}: {err}"
        );
    }
    let (_base, target) = setup();
    let stats = unpack_layer(
        &tar[..],
        Compression::Auto,
        &target,
        &limits(tar.len() as u64),
    )
    .unwrap();
    assert_eq!(stats.tar_bytes, tar.len() as u64);
}

#[test]
fn unpack_drops_forged_overlay_xattrs() {
    let (_base, target) = setup();
    let mut l = Layer::new();
    l.pax(&[
        ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
        ("SCHILY.xattr.user.overlay.opaque", b"y"),
        ("SCHILY.xattr.user.keep", b"1"),
    ]);
    l.dir("d/", 0o755);
    l.pax(&[(
        "SCHILY.xattr.security.capability",
        &[
            1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    )]);
    l.file("d/ping", 0o755, b"elf");
    unpack(&l.finish(), &target).unwrap();

    let d = target.join("d");
    assert_eq!(xattr(&d, "trusted.overlay.opaque"), None);
    assert_eq!(xattr(&d, "trusted.overlay.redirect"), None);
    assert_eq!(xattr(&d, "user.overlay.opaque"), None);
    assert_eq!(xattr(&d, "user.keep").as_deref(), Some(&b"1"[..]));
    assert!(
        xattr(&target.join("d/ping"), "security.capability").is_some(),
        "set after chown"
    );
}

#[test]
fn unpack_fails_on_truncated_or_corrupt_gzip() {
    let tar = Layer::new().file("blob", 0o644, &noise(200_000)).finish();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();

    let half = gz[..gz.len() / 2].to_vec();
    // Only the CRC/size trailer is missing: the tar itself is complete.
    let no_trailer = gz[..gz.len() - 8].to_vec();
    let mut corrupt = gz.clone();
    let mid = corrupt.len() / 2;
    for b in &mut corrupt[mid..mid + 64] {
        *b ^= 0x5a;
    }
    for (what, input) in [
        ("half", half),
        ("no trailer", no_trailer),
        ("corrupt", corrupt),
    ] {
        let (_base, target) = setup();
        let result = unpack_layer(
            &input[..],
            Compression::Gzip,
            &target,
            &UnpackLimits::default(),
        );
        assert!(result.is_err(), "{what}: {result:?}");
    }
}

#[test]
fn unpack_rejects_paths_longer_than_path_max() {
    let (_base, target) = setup();
    // 4402 bytes, each component within NAME_MAX; the builder writes a GNU long name.
    let long = "d".repeat(200) + "/f" + &"/x".repeat(2100);
    let tar = Layer::new().file(&long, 0o644, b"x").finish();
    let err = unpack(&tar, &target).unwrap_err();
    assert!(matches!(err, UnpackError::PathTooLong { .. }), "{err}");
}

#[test]
fn unpack_refuses_oversized_pax_and_long_name_headers() {
    let big = vec![b'a'; (MAX_HEADER_BYTES + 1) as usize];
    // A PAX header (one huge record), a GNU long name and a GNU long link, each past the cap.
    let mut pax = Layer::new();
    pax.pax(&[("comment", &big)]).file("f", 0o644, b"x");
    let mut name = Layer::new();
    name.add(
        header(EntryType::GNULongName, 0o644, big.len() as u64),
        "././@LongLink",
        &big,
    )
    .file("f", 0o644, b"x");
    let mut link = Layer::new();
    link.add(
        header(EntryType::GNULongLink, 0o644, big.len() as u64),
        "././@LongLink",
        &big,
    )
    .symlink("l", "t");
    for (what, mut l) in [("pax", pax), ("long name", name), ("long link", link)] {
        let (_base, target) = setup();
        let e = unpack(&l.finish(), &target).unwrap_err();
        assert!(
            matches!(
                e,
                UnpackError::HeaderTooLarge {
                    limit: MAX_HEADER_BYTES
                }
            ),
            "{what}: {e}"
        );
    }
    // Below the cap, and skipped data (a global header, a device node with data) around it,
    // is fine.
    let (_base, target) = setup();
    let mut l = Layer::new();
    let ok = vec![b'a'; 512 << 10];
    l.add(
        header(EntryType::XGlobalHeader, 0o644, big.len() as u64),
        "g",
        &big,
    );
    let mut h = header(EntryType::Char, 0o666, big.len() as u64);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    l.add(h, "dev/null", &big);
    l.pax(&[("comment", &ok)]).file("f", 0o644, b"x");
    unpack(&l.finish(), &target).unwrap();
    assert_eq!(fs::read(target.join("f")).unwrap(), b"x");
}
