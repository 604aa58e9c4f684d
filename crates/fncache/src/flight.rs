//! Single-flight within a process: concurrent calls for one key share one computation.
//!
//! Only calls that looked the key up and found no value to serve join (a hit never touches
//! this state). The first caller of a key becomes the leader and computes; later callers
//! follow and wait for the leader's outcome: the encoded value, or nothing when the leader
//! failed, was cancelled or panicked (its [`Leader`] guard is dropped without finishing).
//! Followers that get nothing try again from the start, so a dropped leader never strands
//! them.
//!
//! The bookkeeping is shared by both front-ends; only waiting differs (a condition variable
//! for threads, a `Notify` for tasks).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::key::Member;

/// The encoded value a leader hands to its followers (codec payload, not an envelope).
pub(crate) type Shared = Arc<Vec<u8>>;

/// The flights in progress of one cache, by member.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<Member, Arc<Flight>>>,
}

/// One computation in progress.
#[derive(Debug, Default)]
pub(crate) struct Flight {
    outcome: Mutex<Option<Option<Shared>>>,
    threads: Condvar,
    tasks: tokio::sync::Notify,
}

/// What a caller is in a flight.
#[derive(Debug)]
pub(crate) enum Role<'a> {
    /// Compute, then [`Leader::finish`].
    Leader(Leader<'a>),
    /// Wait for the leader.
    Follower(Arc<Flight>),
}

/// The leader's duty to finish its flight; dropping it unfinished releases the followers
/// with no value.
#[derive(Debug)]
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    member: Member,
    flight: Arc<Flight>,
    finished: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Flights {
    /// Joins the flight for `member`, leading it if none is in progress.
    pub(crate) fn join(&self, member: Member) -> Role<'_> {
        let mut map = lock(&self.map);
        if let Some(flight) = map.get(&member) {
            return Role::Follower(Arc::clone(flight));
        }
        let flight = Arc::new(Flight::default());
        map.insert(member, Arc::clone(&flight));
        Role::Leader(Leader {
            flights: self,
            member,
            flight,
            finished: false,
        })
    }

    /// Leads a new flight for `member` in place of the one in progress, if any: a caller that
    /// won the key's lease computes, so later callers should follow it. The replaced flight's
    /// leader goes on and still finishes its own followers (see [`Leader::successor`]).
    pub(crate) fn take_over(&self, member: Member) -> Leader<'_> {
        let flight = Arc::new(Flight::default());
        lock(&self.map).insert(member, Arc::clone(&flight));
        Leader {
            flights: self,
            member,
            flight,
            finished: false,
        }
    }

    /// Flights in progress (for tests and stats).
    #[cfg(test)]
    pub(crate) fn in_progress(&self) -> usize {
        lock(&self.map).len()
    }
}

impl Leader<'_> {
    /// The flight that took this one's place (see [`Flights::take_over`]), if any.
    pub(crate) fn successor(&self) -> Option<Arc<Flight>> {
        lock(&self.flights.map)
            .get(&self.member)
            .filter(|f| !Arc::ptr_eq(f, &self.flight))
            .cloned()
    }

    /// Ends the flight, handing `value` (or nothing) to the followers.
    pub(crate) fn finish(mut self, value: Option<Shared>) {
        self.complete(value);
    }

    fn complete(&mut self, value: Option<Shared>) {
        if self.finished {
            return;
        }
        self.finished = true;
        {
            let mut map = lock(&self.flights.map);
            if map
                .get(&self.member)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                map.remove(&self.member);
            }
        }
        *lock(&self.flight.outcome) = Some(value);
        // Out of the map, the flight can gain no follower: every follower cloned it from the
        // map before (under the map's lock, so this count sees those clones). Nobody else
        // holding it means nobody waits, and the wake-ups are skipped: std's `notify_all` is a
        // `FUTEX_WAKE` system call whether or not a thread waits, and nearly every miss leads
        // a flight of one.
        if Arc::strong_count(&self.flight) > 1 {
            self.flight.threads.notify_all();
            self.flight.tasks.notify_waiters();
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.complete(None);
    }
}

impl Flight {
    /// Waits (blocking the thread) for the outcome: `Some(Some(v))` a value, `Some(None)` the
    /// leader gave up, `None` the wait timed out.
    pub(crate) fn wait_blocking(&self, timeout: Duration) -> Option<Option<Shared>> {
        // No deadline (too far to represent) means waiting until the leader is done.
        let deadline = crate::duration::deadline(Instant::now(), timeout);
        let mut outcome = lock(&self.outcome);
        loop {
            if let Some(done) = outcome.as_ref() {
                return Some(done.clone());
            }
            outcome = match deadline {
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    self.threads
                        .wait_timeout(outcome, left)
                        .map(|(guard, _)| guard)
                        .unwrap_or_else(|e| e.into_inner().0)
                }
                None => self
                    .threads
                    .wait(outcome)
                    .unwrap_or_else(|e| e.into_inner()),
            };
        }
    }

    /// Waits (in a task) for the outcome; see [`Flight::wait_blocking`].
    pub(crate) async fn wait_async(&self, timeout: Duration) -> Option<Option<Shared>> {
        // No deadline (too far to represent) means waiting until the leader is done.
        let deadline = tokio::time::Instant::now().checked_add(timeout);
        loop {
            let notified = self.tasks.notified();
            tokio::pin!(notified);
            // Register before checking, so a finish between the check and the await is seen.
            notified.as_mut().enable();
            if let Some(done) = lock(&self.outcome).as_ref() {
                return Some(done.clone());
            }
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return lock(&self.outcome).clone();
                    }
                }
                None => notified.await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_caller_leads_and_followers_get_its_value() {
        let flights = Flights::default();
        let Role::Leader(leader) = flights.join([1; 16]) else {
            panic!("first caller leads")
        };
        let Role::Follower(flight) = flights.join([1; 16]) else {
            panic!("second caller follows")
        };
        assert!(
            matches!(flights.join([2; 16]), Role::Leader(_)),
            "other keys are independent"
        );
        std::thread::scope(|s| {
            let waiter = s.spawn(|| flight.wait_blocking(Duration::from_secs(5)));
            leader.finish(Some(Arc::new(vec![7])));
            assert_eq!(waiter.join().unwrap(), Some(Some(Arc::new(vec![7]))));
        });
        assert_eq!(flights.in_progress(), 0);
    }

    #[test]
    fn a_dropped_leader_releases_followers_with_nothing() {
        let flights = Flights::default();
        let leader = flights.join([1; 16]);
        let Role::Follower(flight) = flights.join([1; 16]) else {
            panic!("follows")
        };
        drop(leader);
        assert_eq!(flight.wait_blocking(Duration::from_secs(5)), Some(None));
        assert!(
            matches!(flights.join([1; 16]), Role::Leader(_)),
            "the next caller leads"
        );
    }

    #[test]
    fn waiting_times_out() {
        let flights = Flights::default();
        let _leader = flights.join([1; 16]);
        let Role::Follower(flight) = flights.join([1; 16]) else {
            panic!("follows")
        };
        assert_eq!(flight.wait_blocking(Duration::from_millis(1)), None);
    }

    #[tokio::test]
    async fn tasks_wait_for_the_leader_and_survive_its_cancellation() {
        let flights = Arc::new(Flights::default());
        let leader = flights.join([1; 16]);
        let Role::Follower(flight) = flights.join([1; 16]) else {
            panic!("follows")
        };
        let waiter = tokio::spawn(async move { flight.wait_async(Duration::from_secs(5)).await });
        tokio::task::yield_now().await;
        drop(leader); // the leader's future was dropped mid-computation
        assert_eq!(waiter.await.unwrap(), Some(None));
    }
}
