//! After the computation: what a call does with its value (store it, hand it to this
//! process's followers, run it as background work) and with the key's lease.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{Entry, Times};
use crate::core::Surface;
use crate::error::Error;
use crate::options::serializes_as_none;
use crate::stats::Event;
use crate::store::{PutTags, StoreOp, StoreReply};

use super::{Action, Call, Computed, Stage, Then, Ticket, put_op};

impl<'a, S: Surface, T: Serialize + DeserializeOwned> Call<'a, S, T> {
    pub(super) fn computed(&mut self, outcome: Computed<'_, T>) -> Result<Action<T>, S> {
        match outcome {
            Computed::Value(value) => match self.store_op(value)? {
                Some(op) => {
                    self.stage = Stage::Storing;
                    self.then = Then::Computed;
                    Ok(Action::Store(op, self.b.op_timeout))
                }
                None => self.release_then(Then::Computed),
            },
            Computed::StoredElsewhere(value) => {
                self.share_computed(value);
                self.then = Then::Computed;
                self.finish()
            }
            Computed::TimedOut if self.in_background && self.fallback.is_some() => {
                // The computation goes on in the background and will store its value.
                self.rec.add(Event::StaleServed);
                self.then = Then::Fallback;
                self.finish()
            }
            Computed::Failed | Computed::Panicked | Computed::TimedOut => {
                if self.fallback.is_some() {
                    self.rec.add(Event::RefreshFailure);
                    self.rec.add(Event::StaleServed);
                    self.core.warnings.warn(
                        &self.core.name,
                        self.function,
                        "recomputing a stale entry failed; fail-safe serves the stale value",
                        &Error::new(crate::ErrorKind::Backend, outcome.describe()),
                    );
                    return self.hold_then(Then::Fallback);
                }
                self.release_then(Then::Computed)
            }
        }
    }

    pub(super) fn spawned(&mut self, queued: bool) -> Result<Action<T>, S> {
        if queued {
            // The background work now owns the lease.
            self.lease = None;
        }
        self.stage = Stage::Done;
        if self.fallback.is_none()
            && let Some(default) = self.default.take()
        {
            if !queued {
                // Nobody fills the cache: give the lease back before answering the default.
                self.default = Some(default);
                return self.release_then(Then::Default);
            }
            self.release_followers();
            return Ok(Action::Return(default));
        }
        self.then = Then::Stale;
        if !queued && self.lease.is_some() {
            return self.release_then(Then::Stale);
        }
        self.finish()
    }

    pub(super) fn stored(&mut self, reply: Result<StoreReply, Error>) -> Result<Action<T>, S> {
        match reply.and_then(StoreReply::into_stored) {
            Ok((evicted, _reclaimed)) => {
                self.lease = None; // the put released it
                self.rec.add(Event::Write);
                if self.fallback.is_some() {
                    self.rec.add(Event::Refresh);
                }
                if evicted > 0 {
                    self.rec.add(Event::Evictions(evicted));
                }
            }
            Err(e) => self.fail_after_computing(e, "storing the value failed"),
        }
        self.release_then(self.then)
    }

    /// Releases the lease (if still held) and then returns per `then`.
    pub(super) fn release_then(&mut self, then: Then) -> Result<Action<T>, S> {
        self.then = then;
        match self.lease_op(None) {
            Some(op) => {
                self.stage = Stage::Releasing;
                Ok(Action::Store(op, self.b.op_timeout))
            }
            None => self.finish(),
        }
    }

    /// Keeps the lease for the fail-safe throttle (if held) and then returns per `then`.
    pub(super) fn hold_then(&mut self, then: Then) -> Result<Action<T>, S> {
        self.then = then;
        match self.lease_op(Some(self.b.fail_safe_throttle)) {
            Some(op) => {
                self.stage = Stage::Releasing;
                Ok(Action::Store(op, self.b.op_timeout))
            }
            None => self.finish(),
        }
    }

    pub(super) fn finish(&mut self) -> Result<Action<T>, S> {
        if let Some(surfaced) = self.deferred.take() {
            // The lease is given back: now the strict failure (this process's followers
            // start over, as after any failure of their leader).
            self.release_followers();
            return Err(*surfaced);
        }
        self.stage = Stage::Done;
        self.release_followers();
        match self.then {
            Then::Computed => Ok(Action::ReturnComputed),
            Then::Fallback | Then::Stale => match self.fallback.take().map(|f| *f) {
                Some((value, _)) => Ok(Action::Return(value)),
                None => Ok(Action::ReturnComputed),
            },
            Then::Default => match self.default.take() {
                Some(value) => Ok(Action::Return(value)),
                None => Ok(Action::ReturnComputed),
            },
        }
    }

    /// Hands this process's followers what the call ends with (nothing: they start over).
    pub(super) fn release_followers(&mut self) {
        if let Some(leader) = self.leader.take() {
            let shared = self
                .shared
                .take()
                .or_else(|| self.fallback.as_deref().map(|(_, e)| Arc::clone(e)));
            (*leader).finish(shared);
        }
    }

    pub(super) fn share_computed(&mut self, value: &T) {
        // Followers decode what they are handed: only a faithful payload may be shared.
        if self.leader.is_some()
            && let Ok(payload) = self.codec.encode_faithful(value)
        {
            let entry = Entry::assemble(self.codec.head(), Times::default(), &payload);
            self.shared = Some(Arc::new(entry));
        }
    }

    /// The put for a computed value, if the mode writes (and the value is not a `None` the
    /// options say not to cache).
    pub(super) fn store_op(&mut self, value: &T) -> Result<Option<StoreOp>, S> {
        let writes = self.mode.write && !self.backend_down;
        let target = self.target.as_ref().filter(|_| writes);
        if target.is_none() || (!self.cache_none && serializes_as_none(value)) {
            self.share_computed(value);
            return Ok(None);
        }
        // The hooks, if any: a value they refuse is returned (and shared) but not stored.
        let (behaviour, refresh_ms) = match self.typed.map(|typed| typed.judge(value)) {
            None => (*self.b, 0),
            Some(Some(verdict)) => (verdict.apply(*self.b), verdict.refresh_ms()),
            Some(None) => {
                self.share_computed(value);
                return Ok(None);
            }
        };
        // One encoding serves the put and this process's followers; a value the codec
        // cannot give back exactly is neither (they compute their own).
        let payload = match self.codec.encode_faithful(value) {
            Ok(payload) => payload,
            Err(e) => {
                self.fail_after_computing(
                    e,
                    "the value cannot be encoded faithfully, so it is not cached",
                );
                return Ok(None);
            }
        };
        if self.leader.is_some() {
            let entry = Entry::assemble(self.codec.head(), Times::default(), &payload);
            self.shared = Some(Arc::new(entry));
        }
        Ok(target.map(|(structure, member)| {
            put_op(
                structure,
                *member,
                self.codec,
                payload,
                &behaviour,
                refresh_ms,
                self.lease.clone(),
                self.typed
                    .and_then(|typed| PutTags::new(typed.tag_list(), self.began)),
            )
        }))
    }

    /// Background work for this call's key, taking over the call's lease.
    pub(super) fn ticket(&mut self, refresh: bool) -> Ticket {
        let (structure, member) = match &self.target {
            Some((s, m)) => (s.clone(), *m),
            None => (self.core.settings.naming.structure(self.function), [0; 16]),
        };
        Ticket {
            function: self.function.to_owned(),
            structure,
            member,
            codec: self.codec,
            cache_none: self.cache_none,
            behaviour: *self.b,
            lease: self.lease.clone(),
            refresh,
            count_exec: true,
        }
    }
}

/// Needs no bound on the value: `Drop` gives an abandoned lease back with it.
impl<S, T> Call<'_, S, T> {
    /// Hands the release of the lease this call still holds to the front-end (see `Drop`).
    /// Out of line and cold: a call that ended holds no lease, and its drop pays one test.
    #[cold]
    #[inline(never)]
    pub(super) fn abandon_lease(&mut self) {
        if let Some(op) = self.lease_op(None) {
            self.core.abandoned.give_back(op);
        }
    }

    /// The op that gives the key's lease back (`hold` `None`) or keeps it for `hold`, if the
    /// call holds it; from then on the call does not.
    pub(super) fn lease_op(&mut self, hold: Option<Duration>) -> Option<StoreOp> {
        let token = self.lease.take()?;
        let (structure, member) = self.target.as_ref()?;
        Some(StoreOp::Lease {
            structure: structure.clone(),
            member: *member,
            token,
            hold,
        })
    }
}
