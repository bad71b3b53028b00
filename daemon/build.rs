//! Link options for corrald's release build on x86_64-unknown-linux-gnu, where rustc links
//! with its own lld unless another linker is configured (see ARCHITECTURE.md, "Memory"):
//!
//! - The functions a daemon runs go first and together in `.text` (`--symbol-ordering-file`,
//!   list in `text-order.txt`, written by `scripts/text-order.sh`), so the kernel's
//!   fault-around does not map the code around them that never runs. Names the list has and
//!   the binary lacks (code changed since) are skipped.
//! - Relative relocations are packed (`-z pack-relative-relocs`, DT_RELR), which the dynamic
//!   loader reads at start-up and which otherwise stay mapped: 780 KiB of `.rela.dyn` become
//!   a few KiB. Only when the C library linked against knows DT_RELR (glibc 2.36 and later);
//!   the binary then needs such a glibc to run.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=text-order.txt");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    if !(release && rustc_links_with_its_lld()) {
        return;
    }
    let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    let list = std::path::Path::new(&dir).join("text-order.txt");
    if list.exists() {
        println!(
            "cargo:rustc-link-arg-bin=corrald=-Wl,--symbol-ordering-file={}",
            list.display()
        );
        println!("cargo:rustc-link-arg-bin=corrald=-Wl,--no-warn-symbol-ordering");
    }
    if glibc_knows_relr() {
        println!("cargo:rustc-link-arg-bin=corrald=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the link is rustc's own lld: the target's default since Rust 1.90, unless a linker is
/// configured (`target.<triple>.linker`, which cargo passes on as `RUSTC_LINKER`, or `-C linker`
/// and `-C linker-features` in the flags). Another linker may not know the options above.
fn rustc_links_with_its_lld() -> bool {
    let target = std::env::var("TARGET").is_ok_and(|t| t == "x86_64-unknown-linux-gnu");
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    target && std::env::var_os("RUSTC_LINKER").is_none() && !flags.contains("linker")
}

/// Whether the build host's glibc is 2.36 or later (`getconf GNU_LIBC_VERSION`: "glibc 2.36").
fn glibc_knows_relr() -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 36)
}
