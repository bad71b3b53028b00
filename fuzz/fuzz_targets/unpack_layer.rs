//! The layer unpacker (images/src/unpack.rs): a tar stream, plain, gzip or zstd (decided from
//! the magic bytes), unpacked into a fresh directory `<tmp>/a/b/inner`.
//!
//! Findings: a panic, a write outside `inner` (`<tmp>`, `a` and `b` must hold nothing but the
//! next directory afterwards), or an attempt to write anywhere else. For the last, the target
//! runs in a mount namespace of its own where `/` and the other host mounts are read-only and
//! only `<tmp>` (a tmpfs) and the fuzz directory (corpus, artifacts) are writable: a write that
//! escaped fails with EROFS, which is reported as a finding, and cannot harm the machine.
//! Memory stays bounded by the unpacker's own caps (run with `-rss_limit_mb=2048`); the stream
//! is capped at 16 MiB here so that every run stays fast.
#![no_main]

use std::error::Error as _;
use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use corral_images::unpack::{Compression, UnpackLimits, unpack_layer};
use libfuzzer_sys::fuzz_target;

fn mount(src: &str, target: &str, fstype: &str, flags: libc::c_ulong) -> io::Result<()> {
    let c = |s: &str| CString::new(s).map_err(io::Error::other);
    let (src, target, fstype) = (c(src)?, c(target)?, c(fstype)?);
    // SAFETY: plain syscall with valid NUL-terminated strings and no data argument.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Enters a private mount namespace with everything read-only but a tmpfs for the unpacks and
/// the fuzz directory; returns the tmpfs.
fn sandbox() -> &'static PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("corral-fuzz-unpack-{}", std::process::id()));
        std::fs::create_dir_all(&base).expect("create the unpack directory");
        // SAFETY: unshare of the calling thread's mount namespace; libFuzzer runs the target on
        // this one thread.
        assert_eq!(
            unsafe { libc::unshare(libc::CLONE_NEWNS) },
            0,
            "unshare: {}",
            io::Error::last_os_error()
        );
        mount("none", "/", "", libc::MS_REC | libc::MS_PRIVATE).expect("make / private");
        let fuzz_dir = env!("CARGO_MANIFEST_DIR");
        mount(fuzz_dir, fuzz_dir, "", libc::MS_BIND | libc::MS_REC)
            .expect("bind the fuzz directory");
        let b = base.to_str().expect("UTF-8 temporary directory");
        mount("corral-fuzz", b, "tmpfs", 0).expect("mount a tmpfs");
        let ro = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY;
        mount("none", "/", "", ro).expect("make / read-only");
        for other in ["/proc", "/sys", "/dev", "/dev/shm", "/sys/fs/cgroup"] {
            let _ = mount("none", other, "", ro);
        }
        base
    })
}

/// The names in `dir`.
fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .expect("read a directory")
        .map(|e| {
            e.expect("read a directory")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    out.sort();
    out
}

fuzz_target!(|data: &[u8]| {
    let base = sandbox();
    let run = base.join("run");
    let inner = run.join("a/b/inner");
    std::fs::create_dir_all(&inner).expect("create the target");
    let limits = UnpackLimits {
        max_tar_bytes: 16 << 20,
        max_entries: 10_000,
    };
    let result = unpack_layer(data, Compression::Auto, &inner, &limits);
    if let Err(e) = &result {
        let mut source = e.source();
        while let Some(s) = source {
            if let Some(io) = s.downcast_ref::<io::Error>() {
                assert_ne!(
                    io.raw_os_error(),
                    Some(libc::EROFS),
                    "write outside the target: {e}"
                );
            }
            source = s.source();
        }
    }
    assert_eq!(names(base), ["run"], "{result:?}");
    assert_eq!(names(&run), ["a"], "{result:?}");
    assert_eq!(names(&run.join("a")), ["b"], "{result:?}");
    assert_eq!(names(&run.join("a/b")), ["inner"], "{result:?}");
    std::fs::remove_dir_all(&run).expect("remove the target");
});
