//! `pow` and `log2` defined in corrald itself, so the linker (which links with `--as-needed`)
//! leaves glibc's libm out.
//!
//! Those are the only two libm functions corrald calls: tokio's scheduler statistics raise a
//! float to a power on every scheduling tick, libcgroups converts cgroup v2 CPU weights with
//! both. For them the dynamic loader mapped all of libm, and about 0.55 MiB of it stayed
//! resident (its loaded segments, with the kernel's fault-around), a twentieth of the daemon's
//! idle memory. The `libm` crate is the Rust port of musl's, the one Rust's own `core` falls
//! back on where there is no C library. A definition in the executable takes the place of the
//! shared library's for every caller.

/// `pow(3)`.
#[allow(unsafe_code)]
// SAFETY: a plain C-ABI function of two doubles, the signature C declares for `pow`; nothing
// else in the process defines the symbol once libm is not loaded.
#[unsafe(no_mangle)]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

/// `log2(3)`.
#[allow(unsafe_code)]
// SAFETY: as for `pow`: the C signature of `log2`.
#[unsafe(no_mangle)]
pub extern "C" fn log2(x: f64) -> f64 {
    libm::log2(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_c_semantics() {
        assert_eq!(pow(2.0, 10.0), 1024.0);
        assert_eq!(pow(0.5, 0.0), 1.0);
        assert!((pow(0.9, 7.0) - 0.478_296_9).abs() < 1e-12);
        assert!(pow(-1.0, 0.5).is_nan());
        assert_eq!(log2(1024.0), 10.0);
        assert_eq!(log2(0.0), f64::NEG_INFINITY);
        assert!(log2(-1.0).is_nan());
    }
}
