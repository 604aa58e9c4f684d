//! Freshness, stampede protection, fail-safe and fail-open, against real `redis-server`
//! processes (stopped, paused, flushed and tampered with mid-workload) and the embedded store
//! (with a manual clock). No mocks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod failsafe;
mod freshness;
mod outage;
mod stampede;

use std::time::{Duration, Instant};

/// Waits for background work to reach a state (not a timing assertion: the deadline only
/// turns a hang into a failure).
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A cache name no other test uses.
pub fn unique_name(tag: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
