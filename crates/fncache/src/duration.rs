//! The one rule for every `Duration` setting, so that both stores and both front-ends read a
//! setting the same way and no value can overflow anything downstream.
//!
//! A setting is counted in whole milliseconds, rounded up (the unit the Redis scripts
//! receive), and at most [`MAX_DURATION`]: a longer one, up to `Duration::MAX`, means "as long
//! as can be represented", identically on both stores. Zero is left alone: the builder refuses
//! it (see [`crate::Builder`]).
//!
//! Why 100 years: the Redis scripts compute in Lua doubles, exact for integers only up to 2^53,
//! and they add durations to server microseconds (`TIME`: about 1.8 × 10^15 in 2026); an entry's
//! expiry `now + d` stays below 2^53 µs (the year 2255) for any `d` up to 100 years until the
//! year 2155. Lua also prints numbers with 14 significant digits when it passes them to
//! `PEXPIRE` or `SET PX`: 100 years is 3.2 × 10^12 ms, printed exactly. And a deadline
//! `Instant::now() + d` cannot overflow.

use std::time::{Duration, Instant};

/// The longest any duration setting lasts: 100 years (36,500 days). A longer setting, up to
/// `Duration::MAX`, means this much on both stores.
pub const MAX_DURATION: Duration = Duration::from_secs(36_500 * 86_400);

const MAX_MILLIS: u64 = MAX_DURATION.as_secs() * 1000;

// The bound is exact in Lua: printed with 14 significant digits, and an expiry in microseconds
// (now + the bound) an exact double until the year 2155 (5,838,336,000 s after the epoch).
const _: () = assert!(MAX_MILLIS < 100_000_000_000_000);
const _: () = assert!(5_838_336_000_000_000 + MAX_MILLIS * 1000 < 1 << 53);

/// A setting in the stores' unit: whole milliseconds, rounded up, at most [`MAX_DURATION`].
pub(crate) fn store_millis(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).map_or(MAX_MILLIS, |ms| ms.min(MAX_MILLIS))
}

/// [`store_millis`] in microseconds (the stores' clocks count microseconds).
pub(crate) fn store_micros(d: Duration) -> u64 {
    // At most 3.2 × 10^15: no overflow.
    store_millis(d) * 1000
}

/// A setting as it takes effect: [`store_millis`] as a `Duration`. Zero stays zero.
pub(crate) fn setting(d: Duration) -> Duration {
    Duration::from_millis(store_millis(d))
}

/// `d` after `now`; `None` when that instant cannot be represented, which means never.
pub(crate) fn deadline(now: Instant, d: Duration) -> Option<Instant> {
    now.checked_add(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_whole_milliseconds_rounded_up_and_bounded() {
        assert_eq!(store_millis(Duration::ZERO), 0);
        assert_eq!(store_millis(Duration::from_nanos(1)), 1);
        assert_eq!(store_millis(Duration::from_micros(1500)), 2);
        assert_eq!(store_millis(Duration::from_millis(7)), 7);
        assert_eq!(store_millis(Duration::from_secs(86_400)), 86_400_000);
        for huge in [MAX_DURATION, Duration::from_secs(u64::MAX), Duration::MAX] {
            assert_eq!(store_millis(huge), MAX_MILLIS);
            assert_eq!(setting(huge), MAX_DURATION);
        }
        assert_eq!(setting(Duration::from_nanos(1)), Duration::from_millis(1));
    }

    #[test]
    fn a_deadline_past_what_an_instant_holds_is_never() {
        let now = Instant::now();
        assert_eq!(deadline(now, Duration::MAX), None);
        assert!(deadline(now, MAX_DURATION).is_some());
    }
}
