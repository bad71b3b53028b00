//! Locking std mutexes whose data stay valid whatever a panicking holder left (plain records,
//! maps and counters): a poisoned lock is taken anyway. Shared by `pods`, `network` and
//! `stats`, below all of them.

use std::sync::{Mutex, MutexGuard};

/// Locks a std mutex, recovering from poisoning (the data are plain records).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
