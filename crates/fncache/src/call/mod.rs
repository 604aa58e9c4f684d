//! The decisions of one cached call, as a state machine that performs no I/O.
//!
//! A front-end creates a [`Call`] and feeds it [`Input`]s; the call answers with the next
//! [`Action`]: send a store op, wait for this process's leader of the same key, sleep before
//! polling again, run the function (in the foreground or the background), or return. Both
//! front-ends drive the same machine, so freshness, stampede protection, fail-safe and
//! fail-open behave identically; they differ only in how they wait and run things.
//!
//! The flow of a normal call (mode read, write, exec; stampede protection on):
//!
//! 1. Look the key up; the lookup also takes the key's lease when the entry is missing,
//!    stale or expired (one lease across every process sharing the store).
//! 2. Fresh: return it, without touching this process's single-flight state (a hit must cost
//!    no more than the lookup). Stale: return it; the lease holder refreshes (in the
//!    background when the function is owned, else inline).
//! 3. Otherwise join this process's flight for the key. A follower (one that did not win the
//!    lease) waits for the leader's value instead of polling the store. The leader, or the
//!    lease holder, goes on: expired (kept as a fallback) or missing, the lease holder
//!    computes; others poll with a short backoff until the value appears, the lease frees up
//!    (its holder died), or `lock_timeout` passes.
//! 4. A computed value is stored, releasing the lease. A failed recomputation serves the
//!    fallback when there is one (fail-safe) and keeps the lease for `fail_safe_throttle`.
//!
//! Backend failures never stop a call unless it is strict: it computes instead (fail-open).

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::Codec;
use crate::core::{Core, Surface};
use crate::error::Error;
use crate::flight::Leader;
use crate::key::Member;
use crate::layout::Structure;
use crate::mode::Mode;
use crate::near::{Near, Ticket as NearTicket};
use crate::options::{Behaviour, TypedOptions};
use crate::stats::{Event, Recorder};
use crate::store::{Began, LeaseRequest, Token};
use crate::telemetry::{CallSpan, Outcome};

/// First pause between two polls for another caller's value; it doubles up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(50);
/// How often a follower whose leader gave up starts over before going it alone.
const MAX_RESTARTS: u8 = 3;

mod drive;
mod finish;
mod lookup;
mod near_copy;
#[cfg(test)]
mod tests;
mod ticket;

pub(crate) use drive::{Action, Computed, Input, Ran, computed, drive_call};
pub(crate) use ticket::{Ticket, put_op};

/// Where the call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Start,
    Following,
    LookingUp,
    Sleeping,
    Computing,
    Spawning,
    Storing,
    Releasing,
    Done,
}

/// What is returned once the pending store op (a put or a lease release) is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    Computed,
    Fallback,
    Stale,
    Default,
}

/// One cached call in progress; `S` says how failures surface, `T` is the value type.
pub(crate) struct Call<'a, S, T> {
    core: &'a Core,
    function: &'a str,
    mode: Mode,
    target: Option<(Structure, Member)>,
    codec: Codec,
    cache_none: bool,
    b: CallBehaviour<'a>,
    rec: Recorder<'a>,
    /// The function may run in the background (it is owned: `Send + 'static`).
    owned: bool,
    default: Option<T>,
    stage: Stage,
    /// Boxed, as the other parts only a call that misses has: every call is moved by value.
    leader: Option<Box<Leader<'a>>>,
    /// This call has consulted the flight of its key (since its last restart): it joins at
    /// most once per pass, and only after a lookup that found no fresh value.
    joined: bool,
    restarts: u8,
    /// The lease this call holds.
    lease: Option<Token>,
    /// The lease this call asks for at its lookups.
    request: Option<LeaseRequest>,
    /// A stale or expired value, with its entry, to serve if computing fails.
    fallback: Option<Box<(T, Arc<Vec<u8>>)>>,
    /// Polling for another caller's value: give up at this instant (`None`: never, the lock
    /// timeout reaching past what an instant holds); the next pause. Boxed: only a waiting
    /// call has it, and every call is moved by value.
    poll: Option<Box<(Option<Instant>, Duration)>>,
    /// The entry handed to this process's followers when the call ends.
    shared: Option<Arc<Vec<u8>>>,
    then: Then,
    /// The function has run (or runs in the background for this call).
    computed: bool,
    /// The function runs as background work that stores its own value.
    in_background: bool,
    /// The lookup failed: the call does not try the backend again (one op timeout at most).
    backend_down: bool,
    /// A lookup answered: the call ends as a hit or a miss.
    looked: bool,
    /// The value returned is the function's default.
    serving_default: bool,
    /// Hooks that judge a computed value before it is stored.
    typed: Option<&'a TypedOptions<T>>,
    /// The call returned a failure of the cache (strict).
    raised: bool,
    /// A strict failure after the computation (its value would not encode faithfully, or its
    /// put failed), returned once the key's lease is given back: returned at once, it left
    /// the lease held until `lock_timeout`, and the key's next caller waited for nothing.
    /// Boxed: a call without one pays only for a pointer.
    deferred: Option<Box<S>>,
    /// The call's `tracing` span.
    span: CallSpan,
    /// A tagged call: when its last lookup was sent (else when its computation began), and
    /// the store's clock when it answered, so that its put can tell whether the value's
    /// computation began before an invalidation of its tags.
    began: Option<Began>,
    /// The cache's near cache, unless it has none or the call opted out.
    near: Option<&'a Near>,
    /// The last lookup's claim to keep its answer as a near copy (boxed: a call without a near
    /// cache moves the call around, and pays only for a pointer).
    near_ticket: Option<Box<NearTicket>>,
    surface: PhantomData<fn() -> S>,
}

/// A call ends when it is dropped, whichever way it ended (a value, a failure, a panic of the
/// function, a dropped future): its outcome goes to the span and the metrics here, once. A
/// call that still holds its key's lease was dropped before it ended (its value neither
/// stored nor given up on): the lease goes back through the front-end, so the key's next
/// caller does not wait `lock_timeout` for a computation nobody does.
impl<S, T> Drop for Call<'_, S, T> {
    fn drop(&mut self) {
        if self.lease.is_some() {
            self.abandon_lease();
        }
        let outcome = if self.stage == Stage::Done {
            Outcome::of(self.rec.seen())
        } else if self.raised {
            Outcome::Error
        } else {
            Outcome::Cancelled
        };
        self.rec.end(outcome);
        self.span.end(outcome);
    }
}

impl<S, T> std::fmt::Debug for Call<'_, S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("function", &self.function)
            .field("stage", &self.stage)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// A call's behaviour: the cache's own, borrowed (a call without overrides: the hot path), or
/// the call's resolved overrides, boxed. A call is moved by value at every step, and a
/// pointer keeps it smaller than a [`Behaviour`] would.
#[derive(Debug)]
pub(crate) enum CallBehaviour<'a> {
    Cache(&'a Behaviour),
    Own(Box<Behaviour>),
}

impl std::ops::Deref for CallBehaviour<'_> {
    type Target = Behaviour;

    fn deref(&self) -> &Behaviour {
        match self {
            CallBehaviour::Cache(b) => b,
            CallBehaviour::Own(b) => b,
        }
    }
}

/// The parts of a call a front-end passes to [`Call::new`].
#[derive(Debug)]
pub(crate) struct Setup<'a, T> {
    pub(crate) function: &'a str,
    pub(crate) member: Result<Member, Error>,
    pub(crate) mode: Mode,
    pub(crate) codec: Codec,
    pub(crate) cache_none: bool,
    pub(crate) behaviour: CallBehaviour<'a>,
    pub(crate) rec: Recorder<'a>,
    pub(crate) owned: bool,
    pub(crate) default: Option<T>,
    /// The per-call options were invalid: skip the cache (counted as an error).
    pub(crate) invalid: Option<Error>,
    /// Hooks that judge a computed value before it is stored.
    pub(crate) typed: Option<&'a TypedOptions<T>>,
    /// The near cache the call may use.
    pub(crate) near: Option<&'a Near>,
}

impl<'a, S: Surface, T: Serialize + DeserializeOwned> Call<'a, S, T> {
    /// Starts a call; fails only when a strict call cannot use the cache at all.
    pub(crate) fn new(core: &'a Core, setup: Setup<'a, T>) -> Result<Call<'a, S, T>, S> {
        setup.rec.add(Event::Call);
        let mut call = Call {
            core,
            function: setup.function,
            mode: setup.mode,
            target: None,
            codec: setup.codec,
            cache_none: setup.cache_none,
            b: setup.behaviour,
            rec: setup.rec,
            owned: setup.owned,
            default: setup.default,
            stage: Stage::Start,
            leader: None,
            joined: false,
            restarts: 0,
            lease: None,
            request: None,
            fallback: None,
            poll: None,
            shared: None,
            then: Then::Computed,
            computed: false,
            in_background: false,
            backend_down: false,
            looked: false,
            serving_default: false,
            typed: setup.typed,
            raised: false,
            deferred: None,
            span: CallSpan::new(&core.name, setup.function),
            began: None,
            near: setup.near,
            near_ticket: None,
            surface: PhantomData,
        };
        if let Some(e) = setup.invalid {
            call.fail(e, "the call's options are invalid, so the cache is skipped")?;
            return Ok(call);
        }
        match setup.member {
            Ok(member) => {
                call.target = Some((core.settings.naming.structure(call.function), member))
            }
            Err(e) => call.fail(e, "the arguments cannot be turned into a key")?,
        }
        // Only a call that reads, computes and writes takes part in stampede protection: a
        // reader that will not store must not make others wait for it.
        let protect = call.b.stampede_protection && call.mode == Mode::DEFAULT;
        call.request = protect.then(|| LeaseRequest::new(call.b.lock_timeout));
        Ok(call)
    }

    /// The call's span.
    pub(crate) fn span(&self) -> &CallSpan {
        &self.span
    }

    pub(crate) fn span_mut(&mut self) -> &mut CallSpan {
        &mut self.span
    }

    /// The next action, given the outcome of the previous one.
    pub(crate) fn next(&mut self, input: Input<'_, T>) -> Result<Action<T>, S> {
        let action = self.step(input)?;
        if let Action::Return(_) | Action::ReturnComputed = action {
            // Whichever path returned, the call is over (`drop` reads its outcome from that).
            self.stage = Stage::Done;
        }
        // A call counts one outcome, when it returns: a value from the store (or from this
        // process's leader) is a hit; the function's own result, or its default, a miss.
        match &action {
            Action::Return(_) if !self.serving_default => self.rec.add(Event::Hit),
            Action::Return(_) | Action::ReturnComputed if self.looked => self.rec.add(Event::Miss),
            _ => {}
        }
        Ok(action)
    }

    fn step(&mut self, input: Input<'_, T>) -> Result<Action<T>, S> {
        match (self.stage, input) {
            (Stage::Start, Input::Start) => self.start(),
            (Stage::Following, Input::Followed(outcome)) => self.followed(outcome),
            (Stage::LookingUp, Input::Stored(reply)) => self.looked_up(reply),
            (Stage::Sleeping, Input::Woke) => Ok(self.lookup()),
            (Stage::Computing, Input::Computed(outcome)) => self.computed(outcome),
            (Stage::Spawning, Input::Spawned(queued)) => self.spawned(queued),
            (Stage::Storing, Input::Stored(reply)) => self.stored(reply),
            (Stage::Releasing, Input::Stored(reply)) => {
                if let Err(e) = reply {
                    // Raised by `finish`, unless a failure came first (a strict call then
                    // returns that one).
                    self.fail_after_computing(e, "releasing the key's lease failed");
                }
                self.finish()
            }
            (stage, input) => {
                // A front-end bug: count it, and still give the caller a value.
                let e = Error::new(
                    crate::ErrorKind::Backend,
                    format!(
                        "fncache internal: a call at {stage:?} was fed `{}`",
                        input.name()
                    ),
                );
                self.fail(e, "internal error")?;
                if self.computed {
                    self.stage = Stage::Done;
                    Ok(Action::ReturnComputed)
                } else {
                    Ok(self.compute_now(None))
                }
            }
        }
    }

    fn start(&mut self) -> Result<Action<T>, S> {
        if self.target.is_none() || !self.mode.read {
            return self.compute_or_refuse();
        }
        // The near cache's paths stay out of line, so that a call without one pays a test.
        if self.near.is_some() {
            if let Some(value) = self.near_hit() {
                self.stage = Stage::Done;
                return Ok(Action::Return(value));
            }
            if let Some(follow) = self.refill_flight() {
                return Ok(follow);
            }
        }
        // Look up first: a hit never joins a flight (see `join_flight`).
        Ok(self.lookup())
    }

    fn compute_or_refuse(&mut self) -> Result<Action<T>, S> {
        if !self.mode.exec
            && let Ok(miss) = S::raise(Error::miss(self.function))
        {
            if self.looked {
                self.rec.add(Event::Miss);
            }
            self.stage = Stage::Done;
            return Err(miss);
        }
        // A compute timeout matters only when there is a fallback to serve instead.
        let timeout = self.fallback.as_ref().and(self.b.compute_timeout);
        match timeout {
            Some(t) if self.owned => {
                // The computation runs as background work that stores its own value, so it
                // can go on if this call stops waiting for it.
                let mut ticket = self.ticket(true);
                ticket.count_exec = false;
                self.lease = None;
                self.in_background = true;
                Ok(self.compute_now(Some((t, Some(ticket)))))
            }
            Some(t) => Ok(self.compute_now(Some((t, None)))),
            None => Ok(self.compute_now(None)),
        }
    }

    /// Does the call tag its entry? (Only then does it note the time of its lookup.)
    fn is_tagged(&self) -> bool {
        self.typed.is_some_and(|typed| !typed.tag_list().is_empty())
    }

    fn compute_now(&mut self, timeout: Option<(Duration, Option<Ticket>)>) -> Action<T> {
        if self.began.is_none() && self.is_tagged() {
            self.began = Some(Began {
                local: Instant::now(),
                store_us: None,
            });
        }
        self.rec.add(Event::Exec);
        self.computed = true;
        self.stage = Stage::Computing;
        let (timeout, ticket) = match timeout {
            Some((t, ticket)) => (Some(t), ticket.map(Box::new)),
            None => (None, None),
        };
        Action::Compute { timeout, ticket }
    }

    /// Counts a failure; returns it when strict (and the surface can), logs it (throttled)
    /// otherwise.
    /// [`Call::fail`] for a failure after the computation, while the call may hold the key's
    /// lease: a strict call raises it from [`Call::finish`], after the release (the first
    /// such failure, if the release fails too).
    fn fail_after_computing(&mut self, error: Error, what: &str) {
        if let Err(surfaced) = self.fail(error, what)
            && self.deferred.is_none()
        {
            self.deferred = Some(Box::new(surfaced));
        }
    }

    fn fail(&mut self, error: Error, what: &str) -> Result<(), S> {
        self.rec.add(Event::Error(error.kind()));
        let error = if self.b.strict {
            match S::raise(error) {
                Ok(surfaced) => {
                    self.raised = true;
                    return Err(surfaced);
                }
                Err(error) => error,
            }
        } else {
            error
        };
        self.core
            .warnings
            .warn(&self.core.name, self.function, what, &error);
        Ok(())
    }
}
