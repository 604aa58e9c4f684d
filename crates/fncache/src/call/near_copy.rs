//! The near cache's part in a call: serving a near copy, sharing one refill among this
//! process's callers, and offering a fresh entry from Redis.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::decode_entry;
use crate::core::Surface;
use crate::flight::Role;
use crate::near::Ticket as NearTicket;
use crate::stats::Event;

use super::{Action, Call, Stage};

impl<'a, S: Surface, T: Serialize + DeserializeOwned> Call<'a, S, T> {
    /// A near miss while the near cache works: one caller of this process (the flight's
    /// leader) asks Redis and the others wait for its answer, so that a hot key whose copy
    /// ends costs one lookup, not one per concurrent caller. `Some`: follow the leader.
    #[inline(never)]
    pub(super) fn refill_flight(&mut self) -> Option<Action<T>> {
        if self.joined || self.request.is_none() {
            return None;
        }
        let (structure, member) = self.target.as_ref()?;
        if !self.near.is_some_and(|near| near.is_up(structure)) {
            return None;
        }
        self.joined = true;
        match self.core.flights.join(*member) {
            Role::Leader(leader) => {
                self.leader = Some(Box::new(leader));
                None
            }
            Role::Follower(flight) => {
                self.stage = Stage::Following;
                Some(Action::Follow(flight, self.b.lock_timeout))
            }
        }
    }

    /// The near copy of the call's entry, decoded, if the near cache may serve one now (see
    /// `Near::get`): no I/O, no flight, no lease, as a fresh hit in Redis would be.
    #[inline(never)]
    pub(super) fn near_hit(&mut self) -> Option<T> {
        let near = self.near?;
        let (_, member) = self.target.as_ref()?;
        let entry = near.get(member, self.b.refresh_after)?;
        match decode_entry::<T>(self.codec, &entry) {
            Ok(value) => {
                self.rec.add(Event::NearHit);
                Some(value)
            }
            Err(_) => {
                // Another codec or type than the copy's maker: Redis answers, as it would.
                near.forget(member);
                None
            }
        }
    }

    /// The near cache's claim for the lookup about to be sent.
    #[inline(never)]
    pub(super) fn near_ticket(&self) -> Option<Box<NearTicket>> {
        let (near, (structure, member)) = (self.near?, self.target.as_ref()?);
        near.begin(structure, member).map(Box::new)
    }

    /// A fresh entry came from Redis: offered to the near cache under the lookup's ticket.
    #[inline(never)]
    pub(super) fn keep_near(&mut self, entry: &Arc<Vec<u8>>) {
        if let (Some(near), Some(ticket), Some((structure, member))) =
            (self.near, self.near_ticket.take(), &self.target)
        {
            near.offer(*ticket, structure, *member, entry, self.b.refresh_after);
        }
    }
}
