//! glibc allocator tuning for a daemon that works in bursts (pulls) and then idles.
//!
//! glibc gives each thread that allocates its own arena and keeps freed memory there; with
//! layers unpacking on several blocking threads that doubled resident memory after a pull.
//! [`limit_arenas`] caps the arenas at start-up; [`trim`] hands free memory back to the kernel
//! after a burst, and [`trim_when_quiet`] does so once calls stop coming (a burst of pod
//! creations leaves its freed memory in the arenas otherwise). All are no-ops on other C
//! libraries.

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

/// How often [`trim_when_quiet`] looks.
const QUIET: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs for ever: calls `trim` (off the async workers) once whenever a period of [`QUIET`]
/// without an answered call follows one with calls. `answered` counts the calls answered so far.
pub async fn trim_when_quiet(answered: impl Fn() -> u64, trim: fn()) {
    let mut tick = tokio::time::interval(QUIET);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut seen, mut busy) = (answered(), false);
    loop {
        tick.tick().await;
        let now = answered();
        if now != seen {
            (seen, busy) = (now, true);
        } else if busy {
            busy = false;
            let _ = tokio::task::spawn_blocking(trim).await;
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
    async fn trims_once_per_quiet_spell_after_calls() {
        let calls = Arc::new(AtomicU64::new(0));
        let c = Arc::clone(&calls);
        let task = tokio::spawn(trim_when_quiet(move || c.load(Ordering::SeqCst), count));
        let wait = |secs| tokio::time::sleep(std::time::Duration::from_secs(secs));
        wait(7).await;
        assert_eq!(TRIMS.load(Ordering::SeqCst), 0, "no calls, no trim");
        calls.fetch_add(3, Ordering::SeqCst);
        wait(7).await;
        assert_eq!(
            TRIMS.load(Ordering::SeqCst),
            1,
            "one trim once the calls stopped"
        );
        wait(10).await;
        assert_eq!(TRIMS.load(Ordering::SeqCst), 1, "not again while quiet");
        calls.fetch_add(1, Ordering::SeqCst);
        wait(7).await;
        assert_eq!(TRIMS.load(Ordering::SeqCst), 2);
        task.abort();
    }
}
