//! What the threaded paths share: values on their own cache lines, waiting by spinning, and a
//! flag that tells the waiting threads a thread has failed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A value alone on its cache lines (two, for the adjacent-line prefetcher), so that threads
/// writing neighbouring values do not take the line from each other.
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// Spins of a waiting thread before it starts yielding its core: about ten microseconds, so a
/// thread that shares its core with another (more threads than cores) lets it run soon.
const SPINS: u32 = 256;

/// Waits, spinning and then yielding, until `done()` holds; `false` as soon as `failed` is set
/// (and then also if it is set when `done()` first holds).
pub(crate) fn spin_until(failed: &AtomicBool, done: impl Fn() -> bool) -> bool {
    let mut spins = 0u32;
    while !done() {
        if failed.load(Ordering::Acquire) {
            return false;
        }
        if spins < SPINS {
            spins += 1;
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    !failed.load(Ordering::Acquire)
}

/// Sets its flag when its thread unwinds, so the threads waiting for this one stop.
pub(crate) struct FailOnPanic<'a>(pub(crate) &'a AtomicBool);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Release);
        }
    }
}

/// The mutex's value, also after a panic elsewhere (the threaded paths' own flags say whether
/// to trust the results).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
