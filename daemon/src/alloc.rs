//! glibc allocator tuning for a daemon that works in bursts (pulls) and then idles.
//!
//! glibc gives each thread that allocates its own arena and keeps freed memory there; with
//! layers unpacking on several blocking threads that doubled resident memory after a pull.
//! [`tune`] caps the arenas and fixes the size from which an allocation gets its own mapping;
//! [`trim`] hands free memory back to the kernel after a burst, and [`trim_when_quiet`] does
//! so once calls stop coming (a burst of pod creations leaves its freed memory in the arenas
//! otherwise). All are no-ops on other C libraries.

/// From this size an allocation is a mapping of its own, given back whole when freed.
///
/// glibc starts at 128 KiB and raises the threshold to the size of each mapped block freed
/// (up to 32 MiB), so after the first pull the layers' megabyte buffers came from the arenas
/// and left them fragmented: in the bench's shorter runs corrald's two arenas held 3.3-4.3
/// MiB resident for 1.0 MB in use when idle, and anonymous memory ranged 3.7-7.5 MiB; with the
/// threshold fixed, resident memory right after the pulls fell from 14.3-14.7 to 9.8 MiB, the
/// peak from 43-44 to 37 MiB, at the same pull times. Setting it also stops glibc moving the
/// trim threshold.
const MMAP_THRESHOLD: i32 = 256 * 1024;

/// Caps malloc arenas and fixes the mapping threshold; call before any other thread exists.
#[allow(unsafe_code)]
pub fn tune() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only adjusts allocator tuning; it runs before other threads exist, and
    // M_ARENA_MAX and M_MMAP_THRESHOLD with positive values (the latter under the 32 MiB
    // maximum) are documented, valid parameters.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
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

/// How often [`trim_when_quiet`] looks.
const QUIET: std::time::Duration = std::time::Duration::from_secs(2);

/// Quiet looks after which [`trim_when_quiet`] trims a second time: 12 s after the first trim
/// (14-16 s after the last call), past tokio's blocking threads' keep-alive (10 s; the first
/// trim's thread is the last to go), since an exiting thread gives its cached chunks back to
/// its arena. In the bench, a trim by hand 15 s after the last call still freed 0.5 MiB.
const AFTER_THREADS_EXIT: u32 = 7;

/// Runs for ever: calls `trim` (off the async workers) when a period of [`QUIET`] without an
/// answered call follows one with calls, and again once the quiet has outlasted the blocking
/// threads. `answered` counts the calls answered so far.
pub async fn trim_when_quiet(answered: impl Fn() -> u64, trim: fn()) {
    let mut tick = tokio::time::interval(QUIET);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Quiet looks since the last call; none until a call came.
    let (mut seen, mut quiet) = (answered(), None);
    loop {
        tick.tick().await;
        let now = answered();
        if now != seen {
            (seen, quiet) = (now, Some(0));
            continue;
        }
        let Some(n) = quiet.as_mut() else { continue };
        *n += 1;
        if *n == 1 || *n == AFTER_THREADS_EXIT {
            let _ = tokio::task::spawn_blocking(trim).await;
        }
        if *n >= AFTER_THREADS_EXIT {
            quiet = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    static TRIMS: AtomicU64 = AtomicU64::new(0);

    fn count() {
        TRIMS.fetch_add(1, Ordering::SeqCst);
    }

    #[tokio::test(start_paused = true)]
    async fn trims_twice_per_quiet_spell_after_calls() {
        let calls = Arc::new(AtomicU64::new(0));
        let c = Arc::clone(&calls);
        let task = tokio::spawn(trim_when_quiet(move || c.load(Ordering::SeqCst), count));
        let wait = |secs| tokio::time::sleep(std::time::Duration::from_secs(secs));
        let trims = || TRIMS.load(Ordering::SeqCst);
        wait(7).await;
        assert_eq!(trims(), 0, "no calls, no trim");
        calls.fetch_add(3, Ordering::SeqCst);
        wait(7).await;
        assert_eq!(trims(), 1, "one trim once the calls stopped");
        wait(5).await;
        assert_eq!(trims(), 1, "not again at once");
        wait(6).await;
        assert_eq!(trims(), 2, "again once the blocking threads have exited");
        wait(60).await;
        assert_eq!(trims(), 2, "not again while quiet");
        calls.fetch_add(1, Ordering::SeqCst);
        wait(7).await;
        assert_eq!(trims(), 3, "calls, then quiet: a trim");
        task.abort();
    }
}
