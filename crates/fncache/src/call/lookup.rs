//! Before the computation: looking the key up, reading the answer, and waiting for another
//! caller of this process (its flight) or of any process (the key's lease).

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::decode_entry;
use crate::core::Surface;
use crate::duration::deadline;
use crate::error::Error;
use crate::flight::{Leader, Role};
use crate::stats::Event;
use crate::store::{Began, Freshness, LeaseState, Lookup, StoreOp, StoreReply};

use super::{Action, Call, MAX_RESTARTS, POLL_FIRST, POLL_MAX, Stage};

impl<'a, S: Surface, T: Serialize + DeserializeOwned> Call<'a, S, T> {
    /// Joins this process's flight for the key, once per pass, after a lookup found no value
    /// to serve as it is (`lease`: what the lookup said of the key's lease). `None`: go on with
    /// the lookup's answer (as the flight's leader, or as the lease holder); `Some`: the next
    /// action instead (follow the leader, or look up again as the new leader).
    pub(super) fn join_flight(&mut self, lease: LeaseState) -> Option<Action<T>> {
        if self.joined || self.request.is_none() {
            return None;
        }
        self.joined = true;
        let (_, member) = self.target.as_ref()?;
        match self.core.flights.join(*member) {
            Role::Leader(leader) => {
                // A borrow of the core's flights, which outlive the call.
                self.leader = Some(Box::new(leader));
                // Another caller held the lease when this call looked: if that was a leader of
                // this process, it may have stored its value and left since. Looking again
                // as the leader answers at once where polling would first sleep; a missing or
                // expired entry records no use, so the second lookup changes no policy state.
                (lease == LeaseState::Theirs).then(|| self.lookup())
            }
            // This call holds the lease, so it computes, and leads the flight in place of its
            // leader (which did not win the lease, and follows this call at its next poll).
            Role::Follower(_) if lease == LeaseState::Mine => {
                self.leader = Some(Box::new(self.core.flights.take_over(*member)));
                None
            }
            Role::Follower(flight) => {
                self.stage = Stage::Following;
                self.rec.add(Event::LockWait);
                Some(Action::Follow(flight, self.b.lock_timeout))
            }
        }
    }

    pub(super) fn followed(
        &mut self,
        outcome: Option<Option<Arc<Vec<u8>>>>,
    ) -> Result<Action<T>, S> {
        match outcome {
            Some(Some(entry)) => match decode_entry::<T>(self.codec, &entry) {
                Ok(value) => {
                    self.stage = Stage::Done;
                    // A leader whose flight was taken over hands the value on to its own.
                    if self.leader.is_some() {
                        self.shared = Some(entry);
                        self.release_followers();
                    }
                    Ok(Action::Return(value))
                }
                Err(_) => self.restart(),
            },
            Some(None) => self.restart(),
            None => {
                self.rec.add(Event::LockTimeout);
                if self.poll.is_some() {
                    // This call's whole lock timeout has passed (polling, then following the
                    // lease holder that took its flight over): as when polling times out.
                    return self.fallback_or_compute();
                }
                // The leader is slow: stop waiting for it, go to the store like anyone.
                Ok(self.lookup())
            }
        }
    }

    pub(super) fn restart(&mut self) -> Result<Action<T>, S> {
        self.restarts += 1;
        if self.restarts > MAX_RESTARTS {
            // Alone from here on: no more following.
            self.joined = true;
            return Ok(self.lookup());
        }
        self.joined = false;
        self.stage = Stage::Start;
        self.start()
    }

    pub(super) fn lookup(&mut self) -> Action<T> {
        let Some((structure, member)) = &self.target else {
            return self.compute_now(None);
        };
        self.stage = Stage::LookingUp;
        let stamp = self.is_tagged();
        if stamp {
            self.began = Some(Began {
                local: Instant::now(),
                store_us: None,
            });
        }
        if self.near.is_some() {
            self.near_ticket = self.near_ticket();
        }
        Action::Store(
            StoreOp::Get {
                structure: structure.clone(),
                member: *member,
                refresh_after: self.b.refresh_after,
                lease: self.request,
                stamp,
            },
            self.b.op_timeout,
        )
    }

    pub(super) fn looked_up(&mut self, reply: Result<StoreReply, Error>) -> Result<Action<T>, S> {
        let lookup = match reply.and_then(StoreReply::into_lookup) {
            Ok(lookup) => lookup,
            Err(e) => {
                self.fail(e, "the cache lookup failed")?;
                self.rec.add(Event::FailOpen);
                // This process's callers of the key still share one computation.
                if let Some(action) = self.join_flight(LeaseState::NotAsked) {
                    return Ok(action);
                }
                self.backend_down = true;
                // Without the store there is nothing to wait for and no lease to hold, and
                // no point in a second op timeout for the put.
                self.request = None;
                return self.compute_or_refuse();
            }
        };
        let Lookup {
            freshness,
            lease,
            entry,
            store_us,
        } = lookup;
        self.looked = true;
        if let Some(began) = &mut self.began {
            began.store_us = store_us;
        }
        if lease == LeaseState::Mine
            && let Some(request) = &self.request
        {
            self.lease = Some(request.token());
        }
        let value = match entry.as_deref().map(|e| decode_entry::<T>(self.codec, e)) {
            Some(Ok(value)) => entry.map(|e| (value, e)),
            Some(Err(e)) => {
                self.rec.add(Event::Error(e.kind()));
                self.core.warnings.warn(
                    &self.core.name,
                    self.function,
                    "a stored value does not decode and will be recomputed",
                    &e,
                );
                None
            }
            None => None,
        };
        let served_as_is = match (freshness, &value) {
            (Freshness::Fresh, Some(_)) => true,
            (Freshness::Stale, Some(_)) => lease != LeaseState::Mine || !self.mode.exec,
            _ => false,
        };
        if !served_as_is && let Some(action) = self.join_flight(lease) {
            return Ok(action);
        }
        match (freshness, value) {
            (Freshness::Fresh, Some((value, entry))) => {
                if self.near.is_some() {
                    self.keep_near(&entry);
                }
                // Only a leader (a call that looked again after missing) has followers.
                if self.leader.is_some() {
                    self.shared = Some(entry);
                }
                self.stage = Stage::Done;
                self.release_followers();
                Ok(Action::Return(value))
            }
            (Freshness::Stale, Some((value, entry))) => {
                if self.leader.is_some() {
                    self.shared = Some(Arc::clone(&entry));
                }
                if self.lease.is_some() && self.mode.exec {
                    if self.owned {
                        self.rec.add(Event::StaleServed);
                        self.fallback = Some(Box::new((value, entry)));
                        self.stage = Stage::Spawning;
                        return Ok(Action::Background(Box::new(self.ticket(true))));
                    }
                    // A borrowed function cannot outlive the call: the caller who won the
                    // lease refreshes inline, everyone else keeps getting the stale value.
                    self.fallback = Some(Box::new((value, entry)));
                    return self.compute_or_refuse();
                }
                self.rec.add(Event::StaleServed);
                self.stage = Stage::Done;
                self.release_followers();
                Ok(Action::Return(value))
            }
            (Freshness::Expired, Some((value, entry))) => {
                self.fallback = Some(Box::new((value, entry)));
                self.after_miss(lease)
            }
            (_, _) => self.after_miss(lease),
        }
    }

    /// A miss (or an expired entry with a fallback): compute, wait for another caller, or
    /// answer the default.
    pub(super) fn after_miss(&mut self, lease: LeaseState) -> Result<Action<T>, S> {
        if !self.b.wait
            && self.fallback.is_none()
            && self.mode.exec
            && self.owned
            && let Some(default) = self.default.take()
        {
            self.rec.add(Event::DefaultServed);
            self.serving_default = true;
            if lease == LeaseState::Theirs {
                self.stage = Stage::Done;
                return Ok(Action::Return(default));
            }
            self.default = Some(default);
            self.stage = Stage::Spawning;
            return Ok(Action::Background(Box::new(self.ticket(false))));
        }
        if lease == LeaseState::Throttled {
            // A recomputation just failed: serve the fallback until the throttle passes.
            return self.fallback_or_compute();
        }
        if lease != LeaseState::Theirs || !self.mode.exec {
            return self.compute_or_refuse();
        }
        // Another caller computes: poll until its value shows, its lease frees up (then this
        // call's lookup takes it), or the lock timeout passes.
        let now = Instant::now();
        let (until, pause) = match self.poll.as_deref() {
            None => {
                self.rec.add(Event::LockWait);
                (deadline(now, self.b.lock_timeout), POLL_FIRST)
            }
            Some(&(until, pause)) => (until, (pause * 2).min(POLL_MAX)),
        };
        let left = until.map(|until| until.saturating_duration_since(now));
        if left.is_some_and(|left| left.is_zero()) {
            self.rec.add(Event::LockTimeout);
            // Rather than join a stampede, serve the fallback; without one, compute (the
            // holder is stuck or gone).
            return self.fallback_or_compute();
        }
        self.poll = Some(Box::new((until, pause)));
        // The lease holder is a caller of this process that took this call's flight over:
        // wait for it as a follower would (until the lock timeout), rather than poll.
        if let Some(flight) = self.leader.as_deref().and_then(Leader::successor) {
            self.stage = Stage::Following;
            return Ok(Action::Follow(flight, left.unwrap_or(self.b.lock_timeout)));
        }
        self.stage = Stage::Sleeping;
        Ok(Action::Sleep(left.map_or(pause, |left| pause.min(left))))
    }

    /// Serves the fallback if there is one; otherwise computes, without the lease.
    pub(super) fn fallback_or_compute(&mut self) -> Result<Action<T>, S> {
        let Some((value, entry)) = self.fallback.take().map(|f| *f) else {
            self.request = None;
            return self.compute_or_refuse();
        };
        self.shared = Some(entry);
        self.rec.add(Event::StaleServed);
        self.stage = Stage::Done;
        self.release_followers();
        Ok(Action::Return(value))
    }
}
