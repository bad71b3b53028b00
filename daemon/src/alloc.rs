//! glibc allocator tuning for a daemon that works in bursts (pulls) and then idles.
//!
//! glibc gives each thread that allocates its own arena and keeps freed memory there; with
//! layers unpacking on several blocking threads that doubled resident memory after a pull.
//! [`limit_arenas`] caps the arenas at start-up; [`trim`] hands free memory back to the kernel
//! after a burst. Both are no-ops on other C libraries.

/// Caps malloc arenas; call before any other thread exists.
#[allow(unsafe_code)]
pub fn limit_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only adjusts allocator tuning; it runs before other threads exist, and
    // M_ARENA_MAX with a positive value is a documented, valid parameter.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns free heap memory to the kernel (takes a few milliseconds; run it off the async
/// workers).
#[allow(unsafe_code)]
pub fn trim() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim is thread-safe and only releases memory the allocator holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}
