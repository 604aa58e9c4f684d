//! Striping by thread: state that every call writes (counters, the embedded store's buffer of
//! uses) is kept once per stripe, each on cache lines of its own, so that two threads calling
//! at once do not write the same line (which would move between their cores on every call).

use std::sync::atomic::{AtomicUsize, Ordering};

/// Keeps `T` on cache lines of its own (128 bytes: adjacent-line prefetching pairs lines).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

/// The calling thread's number: threads are numbered as they first ask, so that a few threads
/// fall on distinct stripes (`thread_stripe() % stripes`).
pub(crate) fn thread_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    STRIPE.with(|s| *s)
}

/// How many stripes a striped structure gets: twice the CPUs (threads beyond share), at
/// least 4, at most 64, and a power of two (a stripe is found with a mask).
pub(crate) fn stripe_count() -> usize {
    static COUNT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNT.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(4, |n| n.get() * 2)
            .clamp(4, 64)
            .next_power_of_two()
    })
}
