//! Time for the embedded store, injectable so expiry can be tested without sleeping.
//!
//! Redis-backed caches ignore this clock: there every timestamp is the server's `TIME`, so that
//! all processes agree.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in microseconds since the Unix epoch.
pub trait Clock: Send + Sync + Debug + 'static {
    /// Microseconds since the Unix epoch.
    fn now_micros(&self) -> u64;
}

/// The system clock (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_micros(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(saturating_micros)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to: for tests of TTLs and expiry.
///
/// ```
/// use std::time::Duration;
/// use fncache::clock::{Clock, ManualClock};
/// let clock = ManualClock::new();
/// let t0 = clock.now_micros();
/// clock.advance(Duration::from_millis(5));
/// assert_eq!(clock.now_micros() - t0, 5_000);
/// ```
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// A clock starting at an arbitrary fixed instant (2026-01-01T00:00:00Z).
    pub fn new() -> Self {
        ManualClock {
            now: AtomicU64::new(1_767_225_600_000_000),
        }
    }

    /// Moves the clock forward (to the end of time at most: it never wraps around).
    pub fn advance(&self, by: Duration) {
        let by = saturating_micros(by);
        let _ = self
            .now
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                Some(now.saturating_add(by))
            });
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now_micros(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// A duration in whole microseconds, saturating instead of overflowing.
pub(crate) fn saturating_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}
