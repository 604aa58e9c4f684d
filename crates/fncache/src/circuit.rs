//! A circuit breaker for the backend: after consecutive failures, skip it for a cool-down,
//! then let one probe through; the probe's success closes the circuit again.
//!
//! Pure state plus the current time, so it is tested without waiting.

use std::sync::Mutex;
use std::time::Duration;

use crate::clock::saturating_micros;

/// When the breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitBreaker {
    /// Consecutive backend failures that open the circuit (0 disables the breaker).
    pub failures: u32,
    /// How long an open circuit skips the backend before one probe is let through.
    pub cool_down: Duration,
}

impl CircuitBreaker {
    /// Five consecutive failures open the circuit for one second.
    pub const DEFAULT: CircuitBreaker = CircuitBreaker {
        failures: 5,
        cool_down: Duration::from_secs(1),
    };
    /// Never open: every call tries the backend.
    pub const DISABLED: CircuitBreaker = CircuitBreaker {
        failures: 0,
        cool_down: Duration::ZERO,
    };
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        CircuitBreaker::DEFAULT
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Calls go through; counting consecutive failures.
    Closed { failures: u32 },
    /// Calls skip the backend until the given time (µs).
    Open { until_us: u64 },
    /// One probe is out; others skip the backend until it reports.
    Probing,
}

/// The live breaker of one cache.
#[derive(Debug)]
pub(crate) struct Breaker {
    settings: CircuitBreaker,
    state: Mutex<State>,
}

/// Whether a call may use the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Use it.
    Go,
    /// Use it: this call is the probe of a half-open circuit.
    Probe,
    /// Skip it: the circuit is open.
    Skip,
}

impl Breaker {
    pub(crate) fn new(settings: CircuitBreaker) -> Breaker {
        Breaker {
            settings,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// May a call use the backend at `now_us`?
    #[cfg(test)]
    pub(crate) fn admit(&self, now_us: u64) -> Admission {
        self.admit_at(|| now_us)
    }

    /// [`Breaker::admit`] with the clock read only when the circuit is open: a closed circuit,
    /// the usual case of every op, needs no time.
    pub(crate) fn admit_at(&self, now_us: impl FnOnce() -> u64) -> Admission {
        if self.settings.failures == 0 {
            return Admission::Go;
        }
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => Admission::Go,
            State::Open { until_us } if now_us() >= until_us => {
                *state = State::Probing;
                Admission::Probe
            }
            State::Open { .. } | State::Probing => Admission::Skip,
        }
    }

    /// Reports the outcome of a call that used the backend; returns true when this report
    /// opened the circuit (worth a log line).
    #[cfg(test)]
    pub(crate) fn report(&self, ok: bool, now_us: u64) -> bool {
        self.report_at(ok, || now_us)
    }

    /// [`Breaker::report`] with the clock read only when a failure opens the circuit.
    pub(crate) fn report_at(&self, ok: bool, now_us: impl FnOnce() -> u64) -> bool {
        if self.settings.failures == 0 {
            return false;
        }
        let mut state = self.lock();
        let cool_down = saturating_micros(self.settings.cool_down);
        let open = move || State::Open {
            until_us: now_us().saturating_add(cool_down),
        };
        match (*state, ok) {
            (_, true) => {
                *state = State::Closed { failures: 0 };
                false
            }
            (State::Closed { failures }, false) if failures + 1 >= self.settings.failures => {
                *state = open();
                true
            }
            (State::Closed { failures }, false) => {
                *state = State::Closed {
                    failures: failures + 1,
                };
                false
            }
            (State::Probing, false) => {
                *state = open();
                true
            }
            // A late report from before the circuit opened changes nothing.
            (State::Open { .. }, false) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000;

    fn breaker() -> Breaker {
        Breaker::new(CircuitBreaker {
            failures: 3,
            cool_down: Duration::from_millis(100),
        })
    }

    #[test]
    fn opens_after_consecutive_failures_and_recovers_through_a_probe() {
        let b = breaker();
        assert!(!b.report(false, 0));
        assert!(!b.report(false, 0));
        assert_eq!(b.admit(0), Admission::Go);
        assert!(b.report(false, 0), "the third failure opens");
        assert_eq!(b.admit(50 * MS), Admission::Skip);
        assert_eq!(b.admit(100 * MS), Admission::Probe);
        assert_eq!(b.admit(100 * MS), Admission::Skip, "one probe at a time");
        assert!(b.report(false, 100 * MS), "a failed probe opens again");
        assert_eq!(b.admit(150 * MS), Admission::Skip);
        assert_eq!(b.admit(200 * MS), Admission::Probe);
        assert!(!b.report(true, 200 * MS));
        assert_eq!(b.admit(200 * MS), Admission::Go);
    }

    #[test]
    fn a_success_resets_the_count() {
        let b = breaker();
        b.report(false, 0);
        b.report(false, 0);
        b.report(true, 0);
        b.report(false, 0);
        b.report(false, 0);
        assert_eq!(b.admit(0), Admission::Go);
    }

    #[test]
    fn disabled_never_opens() {
        let b = Breaker::new(CircuitBreaker::DISABLED);
        for _ in 0..100 {
            b.report(false, 0);
        }
        assert_eq!(b.admit(0), Admission::Go);
    }
}
