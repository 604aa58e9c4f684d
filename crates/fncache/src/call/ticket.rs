//! Background work's ticket (what it needs to store its value once the call has gone) and
//! the put op every stored value goes through.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::Codec;
use crate::error::Error;
use crate::key::Member;
use crate::layout::Structure;
use crate::options::{Behaviour, serializes_as_none};
use crate::stats::Event;
use crate::store::{PutTags, StoreOp, StoreReply, Token};

/// What background work needs to store its result and account for it, owned so that it can
/// outlive the call.
#[derive(Debug, Clone)]
pub(crate) struct Ticket {
    pub(crate) function: String,
    pub(super) structure: Structure,
    pub(super) member: Member,
    pub(super) codec: Codec,
    pub(super) cache_none: bool,
    pub(super) behaviour: Behaviour,
    /// The lease this work holds, released (or kept for the throttle) when it ends.
    pub(super) lease: Option<Token>,
    /// True when the work refreshes an entry that exists (a failure is a refresh failure).
    pub(super) refresh: bool,
    /// The work's execution of the function is not counted yet (the call counted it when it
    /// ran the function itself and only waits under this ticket).
    pub(super) count_exec: bool,
}

impl Ticket {
    /// The op that finishes the work: store the value (releasing the lease), or, after a
    /// failure, keep the lease for the fail-safe throttle so nobody retries sooner.
    ///
    /// A value the codec cannot store exactly is not stored: the lease is given back and the
    /// refusal returned, for [`Core::close_ticket`](crate::core::Core::close_ticket) to count.
    pub(crate) fn finish<T: Serialize + DeserializeOwned>(
        &self,
        value: Option<&T>,
    ) -> (Option<StoreOp>, Option<Error>) {
        let release = || self.lease.clone().map(|token| self.lease_op(token, None));
        match value {
            Some(value) if self.cache_none || !serializes_as_none(value) => {
                match self.codec.encode_faithful(value) {
                    Ok(payload) => (
                        Some(put_op(
                            &self.structure,
                            self.member,
                            self.codec,
                            payload,
                            &self.behaviour,
                            // Nor has it a refresh time of its own (a hook's).
                            0,
                            self.lease.clone(),
                            // Tagged calls are typed, and typed calls never run as
                            // background work: a ticket's value has no tags.
                            None,
                        )),
                        None,
                    ),
                    Err(refused) => (release(), Some(refused)),
                }
            }
            Some(_) => (release(), None),
            None => (
                self.lease.clone().map(|token| {
                    let hold = self.refresh.then_some(self.behaviour.fail_safe_throttle);
                    self.lease_op(token, hold)
                }),
                None,
            ),
        }
    }

    /// The events of the work's end (its store reply already in).
    pub(crate) fn events(
        &self,
        stored: Option<&Result<StoreReply, Error>>,
        ok: bool,
        refused: Option<crate::ErrorKind>,
    ) -> Vec<Event> {
        let mut events = Vec::new();
        if self.count_exec {
            events.push(Event::Exec);
        }
        if ok {
            if matches!(stored, Some(Ok(StoreReply::Stored { .. }))) {
                events.push(Event::Write);
                if self.refresh {
                    events.push(Event::Refresh);
                }
            }
        } else if self.refresh {
            events.push(Event::RefreshFailure);
        }
        if let Some(kind) = stored
            .and_then(|s| s.as_ref().err())
            .map(Error::kind)
            .or(refused)
        {
            events.push(Event::Error(kind));
        }
        events
    }

    /// The op timeout of the work's store ops.
    pub(crate) fn op_timeout(&self) -> Duration {
        self.behaviour.op_timeout
    }

    fn lease_op(&self, token: Token, hold: Option<Duration>) -> StoreOp {
        StoreOp::Lease {
            structure: self.structure.clone(),
            member: self.member,
            token,
            hold,
        }
    }
}

/// The put of `payload` at `member`, under `behaviour` (its entry TTL spread by the jitter
/// that `member` decides), stale `refresh_ms` after the write (0: by the lookups'
/// refresh-after), releasing `release` if it holds the key's lease.
#[allow(clippy::too_many_arguments)]
pub(crate) fn put_op(
    structure: &Structure,
    member: Member,
    codec: Codec,
    payload: Vec<u8>,
    behaviour: &Behaviour,
    refresh_ms: u64,
    release: Option<Token>,
    tagged: Option<Box<PutTags>>,
) -> StoreOp {
    StoreOp::Put {
        structure: structure.clone(),
        member,
        head: codec.head(),
        payload,
        entry_ttl: behaviour.entry_ttl_for(&member),
        refresh_ms,
        keep: behaviour.max_stale,
        release,
        tagged,
    }
}
