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

use crate::codec::{Codec, Entry, Times, decode_entry};
use crate::core::{Core, Surface};
use crate::duration::deadline;
use crate::error::Error;
use crate::flight::{Flight, Leader, Role};
use crate::key::Member;
use crate::layout::Structure;
use crate::mode::Mode;
use crate::near::{Near, Ticket as NearTicket};
use crate::options::{Behaviour, TypedOptions, serializes_as_none};
use crate::stats::{Event, Recorder};
use crate::store::{
    Began, Freshness, LeaseRequest, LeaseState, Lookup, PutTags, StoreOp, StoreReply, Token,
};
use crate::telemetry::{CallSpan, Outcome};

/// First pause between two polls for another caller's value; it doubles up to [`POLL_MAX`].
const POLL_FIRST: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(50);
/// How often a follower whose leader gave up starts over before going it alone.
const MAX_RESTARTS: u8 = 3;

/// What a front-end feeds the call.
#[derive(Debug)]
pub(crate) enum Input<'v, T> {
    /// The first step.
    Start,
    /// The reply to [`Action::Store`].
    Stored(Result<StoreReply, Error>),
    /// The outcome of [`Action::Follow`]: the leader's entry, `Some(None)` when it gave up,
    /// `None` when the wait timed out.
    Followed(Option<Option<Arc<Vec<u8>>>>),
    /// [`Action::Sleep`] is over.
    Woke,
    /// The outcome of [`Action::Compute`].
    Computed(Computed<'v, T>),
    /// [`Action::Background`] was queued (`true`) or refused (`false`).
    Spawned(bool),
}

/// How a computation ended.
#[derive(Debug)]
pub(crate) enum Computed<'v, T> {
    /// It returned a value (to be stored).
    Value(&'v T),
    /// It returned a value, and the background work it ran under (an owned computation
    /// given a [`Ticket`] with its timeout) already stored it and released the lease.
    StoredElsewhere(&'v T),
    /// It returned the user's error.
    Failed,
    /// It panicked.
    Panicked,
    /// It ran past the compute timeout (owned computations go on in the background).
    TimedOut,
}

impl<T> Computed<'_, T> {
    fn describe(&self) -> &'static str {
        match self {
            Computed::Value(_) | Computed::StoredElsewhere(_) => "the function returned a value",
            Computed::Failed => "the function returned an error",
            Computed::Panicked => "the function panicked",
            Computed::TimedOut => "the function ran past compute_timeout",
        }
    }
}

impl<T> Input<'_, T> {
    fn name(&self) -> &'static str {
        match self {
            Input::Start => "start",
            Input::Stored(_) => "stored",
            Input::Followed(_) => "followed",
            Input::Woke => "woke",
            Input::Computed(_) => "computed",
            Input::Spawned(_) => "spawned",
        }
    }
}

/// The loop that walks a [`Call`] to its end, written once for both front-ends. The front-end
/// names how it sleeps and waits for its leader; `.await` is passed for the async one and left
/// out for the blocking one, which is all that tells the two loops apart.
///
/// Expects `$cache` with `run_timed(op, timeout)`, a runner with `run`, `spawn` and `rejoin`,
/// and the call as `Call<'_, S, T>`; evaluates to the call's `Result<Result<T, E>, S>`.
macro_rules! drive_call {
    ($cache:expr, $call:ident, $runner:ident, sleep: $sleep:path, follow: $follow:ident
        $(, .$aw:tt)?) => {{
        let mut outcome = None;
        let mut action = $call.next($crate::call::Input::Start)?;
        loop {
            action = match action {
                $crate::call::Action::Store(op, timeout) => {
                    let started = $call.span().store_started();
                    let reply = $crate::telemetry::within!(
                        $call.span(), $cache.run_timed(op, timeout) $(, .$aw)?);
                    $call.span_mut().store_done(started);
                    $call.next($crate::call::Input::Stored(reply))?
                }
                $crate::call::Action::Follow(flight, timeout) => {
                    let outcome = flight.$follow(timeout) $(.$aw)?;
                    $call.next($crate::call::Input::Followed(outcome))?
                }
                $crate::call::Action::Sleep(pause) => {
                    $sleep(pause) $(.$aw)?;
                    $call.next($crate::call::Input::Woke)?
                }
                $crate::call::Action::Compute { timeout, ticket } => {
                    let ran = $crate::telemetry::within!(
                        $call.span(), $runner.run($cache, timeout, ticket) $(, .$aw)?);
                    let elsewhere = ran.stored_elsewhere;
                    outcome = ran.result;
                    let computed = $crate::call::computed(outcome.as_ref(), elsewhere);
                    $call.next($crate::call::Input::Computed(computed))?
                }
                $crate::call::Action::Background(ticket) => {
                    let queued = $runner.spawn($cache, ticket);
                    $call.next($crate::call::Input::Spawned(queued))?
                }
                $crate::call::Action::Return(value) => break Ok(Ok(value)),
                $crate::call::Action::ReturnComputed => {
                    let result = match outcome.take() {
                        Some(result) => result,
                        // A computation abandoned at its timeout: wait for it after all.
                        None => $runner.rejoin() $(.$aw)?,
                    };
                    break match result {
                        Ok(result) => Ok(result),
                        Err(panic) => std::panic::resume_unwind(panic),
                    };
                }
            };
        }
    }};
}

pub(crate) use drive_call;

/// What a front-end's run of the function came to.
pub(crate) struct Ran<T, E> {
    /// `None` when it ran past the timeout (it goes on in the background, or is dropped).
    pub(crate) result: Option<std::thread::Result<Result<T, E>>>,
    /// Background work already stored the value and released the lease.
    pub(crate) stored_elsewhere: bool,
}

/// Maps what a front-end's run saw to what the call is told.
pub(crate) fn computed<T, E>(
    outcome: Option<&std::thread::Result<Result<T, E>>>,
    elsewhere: bool,
) -> Computed<'_, T> {
    match outcome {
        Some(Ok(Ok(value))) if elsewhere => Computed::StoredElsewhere(value),
        Some(Ok(Ok(value))) => Computed::Value(value),
        Some(Ok(Err(_))) => Computed::Failed,
        Some(Err(_)) => Computed::Panicked,
        None => Computed::TimedOut,
    }
}

/// What the front-end does next.
#[derive(Debug)]
pub(crate) enum Action<T> {
    /// Send this op to the store (within `timeout`), then feed [`Input::Stored`].
    Store(StoreOp, Duration),
    /// Wait up to the duration for this process's leader of the key: [`Input::Followed`].
    Follow(Arc<Flight>, Duration),
    /// Sleep, then feed [`Input::Woke`].
    Sleep(Duration),
    /// Run the function, then feed [`Input::Computed`]. With a timeout, stop waiting after it
    /// (owned functions then finish in the background under `ticket`).
    Compute {
        timeout: Option<Duration>,
        ticket: Option<Ticket>,
    },
    /// Run the function in the background under `ticket`, then feed [`Input::Spawned`].
    Background(Ticket),
    /// Return this value (from the store, a leader, or the default).
    Return(T),
    /// Return what the function returned (its value, its error, or its panic).
    ReturnComputed,
}

/// What background work needs to store its result and account for it, owned so that it can
/// outlive the call.
#[derive(Debug, Clone)]
pub(crate) struct Ticket {
    pub(crate) function: String,
    structure: Structure,
    member: Member,
    codec: Codec,
    cache_none: bool,
    behaviour: Behaviour,
    /// The lease this work holds, released (or kept for the throttle) when it ends.
    lease: Option<Token>,
    /// True when the work refreshes an entry that exists (a failure is a refresh failure).
    refresh: bool,
    /// The work's execution of the function is not counted yet (the call counted it when it
    /// ran the function itself and only waits under this ticket).
    count_exec: bool,
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
    b: Behaviour,
    rec: Recorder<'a>,
    /// The function may run in the background (it is owned: `Send + 'static`).
    owned: bool,
    default: Option<T>,
    stage: Stage,
    leader: Option<Leader<'a>>,
    /// This call has consulted the flight of its key (since its last restart): it joins at
    /// most once per pass, and only after a lookup that found no fresh value.
    joined: bool,
    restarts: u8,
    /// The lease this call holds.
    lease: Option<Token>,
    /// The lease this call asks for at its lookups.
    request: Option<LeaseRequest>,
    /// A stale or expired value, with its entry, to serve if computing fails.
    fallback: Option<(T, Arc<Vec<u8>>)>,
    /// Polling for another caller's value: give up at this instant (`None`: never, the lock
    /// timeout reaching past what an instant holds); the next pause.
    poll: Option<(Option<Instant>, Duration)>,
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
/// function, a dropped future): its outcome goes to the span and the metrics here, once.
impl<S, T> Drop for Call<'_, S, T> {
    fn drop(&mut self) {
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

/// The parts of a call a front-end passes to [`Call::new`].
#[derive(Debug)]
pub(crate) struct Setup<'a, T> {
    pub(crate) function: &'a str,
    pub(crate) member: Result<Member, Error>,
    pub(crate) mode: Mode,
    pub(crate) codec: Codec,
    pub(crate) cache_none: bool,
    pub(crate) behaviour: Behaviour,
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
                    self.fail(e, "releasing the key's lease failed")?;
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

    /// A near miss while the near cache works: one caller of this process (the flight's
    /// leader) asks Redis and the others wait for its answer, so that a hot key whose copy
    /// ends costs one lookup, not one per concurrent caller. `Some`: follow the leader.
    #[inline(never)]
    fn refill_flight(&mut self) -> Option<Action<T>> {
        if !self.near.is_some_and(Near::is_up) || self.joined || self.request.is_none() {
            return None;
        }
        let (_, member) = self.target.as_ref()?;
        self.joined = true;
        match self.core.flights.join(*member) {
            Role::Leader(leader) => {
                self.leader = Some(leader);
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
    fn near_hit(&mut self) -> Option<T> {
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
    fn near_ticket(&self) -> Option<Box<NearTicket>> {
        let (near, (_, member)) = (self.near?, self.target.as_ref()?);
        near.begin(member).map(Box::new)
    }

    /// A fresh entry came from Redis: offered to the near cache under the lookup's ticket.
    #[inline(never)]
    fn keep_near(&mut self, entry: &Arc<Vec<u8>>) {
        if let (Some(near), Some(ticket), Some((structure, member))) =
            (self.near, self.near_ticket.take(), &self.target)
        {
            near.offer(*ticket, structure, *member, entry, self.b.refresh_after);
        }
    }

    /// Joins this process's flight for the key, once per pass, after a lookup found no value
    /// to serve as it is (`lease`: what the lookup said of the key's lease). `None`: go on with
    /// the lookup's answer (as the flight's leader, or as the lease holder); `Some`: the next
    /// action instead (follow the leader, or look up again as the new leader).
    fn join_flight(&mut self, lease: LeaseState) -> Option<Action<T>> {
        if self.joined || self.request.is_none() {
            return None;
        }
        self.joined = true;
        let (_, member) = self.target.as_ref()?;
        match self.core.flights.join(*member) {
            Role::Leader(leader) => {
                // A borrow of the core's flights, which outlive the call.
                self.leader = Some(leader);
                // Another caller held the lease when this call looked: if that was a leader of
                // this process, it may have stored its value and left since. Looking again
                // as the leader answers at once where polling would first sleep; a missing or
                // expired entry records no use, so the second lookup changes no policy state.
                (lease == LeaseState::Theirs).then(|| self.lookup())
            }
            // This call holds the lease, so it computes, and leads the flight in place of its
            // leader (which did not win the lease, and follows this call at its next poll).
            Role::Follower(_) if lease == LeaseState::Mine => {
                self.leader = Some(self.core.flights.take_over(*member));
                None
            }
            Role::Follower(flight) => {
                self.stage = Stage::Following;
                self.rec.add(Event::LockWait);
                Some(Action::Follow(flight, self.b.lock_timeout))
            }
        }
    }

    fn followed(&mut self, outcome: Option<Option<Arc<Vec<u8>>>>) -> Result<Action<T>, S> {
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

    fn restart(&mut self) -> Result<Action<T>, S> {
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

    fn lookup(&mut self) -> Action<T> {
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

    fn looked_up(&mut self, reply: Result<StoreReply, Error>) -> Result<Action<T>, S> {
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
                        self.fallback = Some((value, entry));
                        self.stage = Stage::Spawning;
                        return Ok(Action::Background(self.ticket(true)));
                    }
                    // A borrowed function cannot outlive the call: the caller who won the
                    // lease refreshes inline, everyone else keeps getting the stale value.
                    self.fallback = Some((value, entry));
                    return self.compute_or_refuse();
                }
                self.rec.add(Event::StaleServed);
                self.stage = Stage::Done;
                self.release_followers();
                Ok(Action::Return(value))
            }
            (Freshness::Expired, Some((value, entry))) => {
                self.fallback = Some((value, entry));
                self.after_miss(lease)
            }
            (_, _) => self.after_miss(lease),
        }
    }

    /// A miss (or an expired entry with a fallback): compute, wait for another caller, or
    /// answer the default.
    fn after_miss(&mut self, lease: LeaseState) -> Result<Action<T>, S> {
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
            return Ok(Action::Background(self.ticket(false)));
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
        let (until, pause) = match self.poll {
            None => {
                self.rec.add(Event::LockWait);
                (deadline(now, self.b.lock_timeout), POLL_FIRST)
            }
            Some((until, pause)) => (until, (pause * 2).min(POLL_MAX)),
        };
        let left = until.map(|until| until.saturating_duration_since(now));
        if left.is_some_and(|left| left.is_zero()) {
            self.rec.add(Event::LockTimeout);
            // Rather than join a stampede, serve the fallback; without one, compute (the
            // holder is stuck or gone).
            return self.fallback_or_compute();
        }
        self.poll = Some((until, pause));
        // The lease holder is a caller of this process that took this call's flight over:
        // wait for it as a follower would (until the lock timeout), rather than poll.
        if let Some(flight) = self.leader.as_ref().and_then(Leader::successor) {
            self.stage = Stage::Following;
            return Ok(Action::Follow(flight, left.unwrap_or(self.b.lock_timeout)));
        }
        self.stage = Stage::Sleeping;
        Ok(Action::Sleep(left.map_or(pause, |left| pause.min(left))))
    }

    /// Serves the fallback if there is one; otherwise computes, without the lease.
    fn fallback_or_compute(&mut self) -> Result<Action<T>, S> {
        let Some((value, entry)) = self.fallback.take() else {
            self.request = None;
            return self.compute_or_refuse();
        };
        self.shared = Some(entry);
        self.rec.add(Event::StaleServed);
        self.stage = Stage::Done;
        self.release_followers();
        Ok(Action::Return(value))
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
            Some((t, ticket)) => (Some(t), ticket),
            None => (None, None),
        };
        Action::Compute { timeout, ticket }
    }

    fn computed(&mut self, outcome: Computed<'_, T>) -> Result<Action<T>, S> {
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

    fn spawned(&mut self, queued: bool) -> Result<Action<T>, S> {
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

    fn stored(&mut self, reply: Result<StoreReply, Error>) -> Result<Action<T>, S> {
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
            Err(e) => self.fail(e, "storing the value failed")?,
        }
        self.release_then(self.then)
    }

    /// Releases the lease (if still held) and then returns per `then`.
    fn release_then(&mut self, then: Then) -> Result<Action<T>, S> {
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
    fn hold_then(&mut self, then: Then) -> Result<Action<T>, S> {
        self.then = then;
        match self.lease_op(Some(self.b.fail_safe_throttle)) {
            Some(op) => {
                self.stage = Stage::Releasing;
                Ok(Action::Store(op, self.b.op_timeout))
            }
            None => self.finish(),
        }
    }

    fn lease_op(&mut self, hold: Option<Duration>) -> Option<StoreOp> {
        let token = self.lease.take()?;
        let (structure, member) = self.target.as_ref()?;
        Some(StoreOp::Lease {
            structure: structure.clone(),
            member: *member,
            token,
            hold,
        })
    }

    fn finish(&mut self) -> Result<Action<T>, S> {
        self.stage = Stage::Done;
        self.release_followers();
        match self.then {
            Then::Computed => Ok(Action::ReturnComputed),
            Then::Fallback | Then::Stale => match self.fallback.take() {
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
    fn release_followers(&mut self) {
        if let Some(leader) = self.leader.take() {
            let shared = self
                .shared
                .take()
                .or_else(|| self.fallback.as_ref().map(|(_, e)| Arc::clone(e)));
            leader.finish(shared);
        }
    }

    fn share_computed(&mut self, value: &T) {
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
    fn store_op(&mut self, value: &T) -> Result<Option<StoreOp>, S> {
        let writes = self.mode.write && !self.backend_down;
        let target = self.target.as_ref().filter(|_| writes);
        if target.is_none() || (!self.cache_none && serializes_as_none(value)) {
            self.share_computed(value);
            return Ok(None);
        }
        // The hooks, if any: a value they refuse is returned (and shared) but not stored.
        let (behaviour, refresh_ms) = match self.typed.map(|typed| typed.judge(value)) {
            None => (self.b, 0),
            Some(Some(verdict)) => (verdict.apply(self.b), verdict.refresh_ms()),
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
                self.fail(
                    e,
                    "the value cannot be encoded faithfully, so it is not cached",
                )?;
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
    fn ticket(&mut self, refresh: bool) -> Ticket {
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
            behaviour: self.b,
            lease: self.lease.clone(),
            refresh,
            count_exec: true,
        }
    }

    /// Counts a failure; returns it when strict (and the surface can), logs it (throttled)
    /// otherwise.
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

#[cfg(test)]
mod tests {
    //! The machine alone, fed by hand: what a front-end would see, without any I/O.

    use std::convert::Infallible;
    use std::time::Duration;

    use super::*;
    use crate::mode::Ambient;
    use crate::options::CallOptions;
    use crate::store::{Freshness, LeaseState, Lookup};

    fn core() -> Core {
        let (core, _) = crate::Cache::builder("machine")
            .wait(false)
            .core_for_tests()
            .unwrap();
        core
    }

    fn looked(
        freshness: Freshness,
        lease: LeaseState,
        entry: Option<Vec<u8>>,
    ) -> Input<'static, u32> {
        Input::Stored(Ok(StoreReply::Looked(Lookup {
            freshness,
            lease,
            entry: entry.map(Arc::new),
            store_us: None,
        })))
    }

    fn call<'a>(core: &'a Core, owned: bool, default: Option<u32>) -> Call<'a, Infallible, u32> {
        let Ok(call) = core.begin::<Infallible, u32, CallOptions>(
            "f",
            Ok([1; 16]),
            {
                const NONE: CallOptions = CallOptions::new();
                &NONE
            },
            &Ambient::default(),
            owned,
            default,
        );
        call
    }

    #[test]
    fn a_refused_background_fill_gives_the_lease_back_before_the_default() {
        let core = core();
        let mut call = call(&core, true, Some(7));
        assert!(matches!(
            call.next(Input::Start),
            Ok(Action::Store(StoreOp::Get { .. }, _))
        ));
        let miss = looked(Freshness::Missing, LeaseState::Mine, None);
        assert!(matches!(call.next(miss), Ok(Action::Background(_))));
        // The worker pool was full: the lease must not stay held until it expires.
        let Ok(Action::Store(StoreOp::Lease { hold: None, .. }, _)) =
            call.next(Input::Spawned(false))
        else {
            panic!("the lease is released");
        };
        let released = Input::Stored(Ok(StoreReply::Flag(true)));
        assert!(matches!(call.next(released), Ok(Action::Return(7))));
        assert_eq!(core.stats.total().defaults_served, 1);
    }

    #[test]
    fn a_queued_background_fill_answers_the_default_at_once() {
        let core = core();
        let mut call = call(&core, true, Some(7));
        let _ = call.next(Input::Start);
        let _ = call.next(looked(Freshness::Missing, LeaseState::Mine, None));
        assert!(matches!(
            call.next(Input::Spawned(true)),
            Ok(Action::Return(7))
        ));
    }

    #[test]
    fn another_callers_lease_means_polling_then_computing_after_the_lock_timeout() {
        let (core, _) = crate::Cache::builder("machine")
            .lock_timeout(Duration::from_millis(1))
            .core_for_tests()
            .unwrap();
        let mut call = call(&core, false, None);
        let _ = call.next(Input::Start);
        // Leading this process's flight, the call looks again before it polls.
        let again = call.next(looked(Freshness::Missing, LeaseState::Theirs, None));
        assert!(matches!(again, Ok(Action::Store(StoreOp::Get { .. }, _))));
        let Ok(Action::Sleep(_)) = call.next(looked(Freshness::Missing, LeaseState::Theirs, None))
        else {
            panic!("a poll");
        };
        std::thread::sleep(Duration::from_millis(2)); // past the lock timeout
        let _ = call.next(Input::Woke); // looks up again
        let next = call.next(looked(Freshness::Missing, LeaseState::Theirs, None));
        assert!(
            matches!(next, Ok(Action::Compute { .. })),
            "computes without the lease"
        );
        let s = core.stats.total();
        assert_eq!((s.lock_waits, s.lock_timeouts), (1, 1));
    }

    fn entry_of(value: u32) -> Vec<u8> {
        crate::codec::Entry::assemble(
            Codec::MessagePack.head(),
            Times::default(),
            &Codec::MessagePack.encode(&value).unwrap(),
        )
    }

    #[test]
    fn a_fresh_hit_never_touches_the_flights() {
        let core = core();
        // Another caller of this process is computing the same key.
        let _other = core.flights.join([1; 16]);
        let mut call = call(&core, false, None);
        assert!(
            matches!(
                call.next(Input::Start),
                Ok(Action::Store(StoreOp::Get { .. }, _))
            ),
            "a call looks up before it joins any flight"
        );
        let fresh = looked(Freshness::Fresh, LeaseState::NotAsked, Some(entry_of(5)));
        assert!(matches!(call.next(fresh), Ok(Action::Return(5))));
        assert_eq!(
            core.flights.in_progress(),
            1,
            "only the other caller's flight"
        );
        assert_eq!(core.stats.total().lock_waits, 0);
    }

    #[test]
    fn a_miss_follows_this_processs_leader_when_another_caller_holds_the_lease() {
        let core = core();
        let _other = core.flights.join([1; 16]);
        let mut call = call(&core, false, None);
        let _ = call.next(Input::Start);
        let miss = looked(Freshness::Missing, LeaseState::Theirs, None);
        assert!(matches!(call.next(miss), Ok(Action::Follow(..))));
        assert_eq!(core.stats.total().lock_waits, 1);
    }

    #[test]
    fn a_miss_that_wins_the_lease_computes_and_leads_the_flight() {
        let core = core();
        let mut call = call(&core, false, None);
        let _ = call.next(Input::Start);
        let miss = looked(Freshness::Missing, LeaseState::Mine, None);
        assert!(matches!(call.next(miss), Ok(Action::Compute { .. })));
        assert_eq!(core.flights.in_progress(), 1, "followers can find it");
        assert!(
            matches!(core.flights.join([1; 16]), Role::Follower(_)),
            "a later caller follows"
        );
    }

    #[test]
    fn a_lease_winner_computes_even_when_a_flight_is_in_progress() {
        let core = core();
        // A leader that did not win the lease (it polls for the value).
        let _other = core.flights.join([1; 16]);
        let mut call = call(&core, false, None);
        let _ = call.next(Input::Start);
        let miss = looked(Freshness::Missing, LeaseState::Mine, None);
        assert!(matches!(call.next(miss), Ok(Action::Compute { .. })));
    }

    #[test]
    fn the_lease_winner_takes_the_flight_over_and_its_leader_follows_it() {
        let core = core();
        // B looks first and finds A's lease, but joins the flight before A does.
        let mut b = call(&core, false, None);
        let _ = b.next(Input::Start);
        let again = b.next(looked(Freshness::Missing, LeaseState::Theirs, None));
        assert!(matches!(again, Ok(Action::Store(StoreOp::Get { .. }, _))));
        let mut a = call(&core, false, None);
        let _ = a.next(Input::Start);
        let miss = looked(Freshness::Missing, LeaseState::Mine, None);
        assert!(matches!(a.next(miss), Ok(Action::Compute { .. })));
        // B waits for A as a follower would (until its lock timeout), instead of polling
        // the store until A's lease runs out.
        let Ok(Action::Follow(flight, _)) =
            b.next(looked(Freshness::Missing, LeaseState::Theirs, None))
        else {
            panic!("B follows A");
        };
        assert!(
            matches!(core.flights.join([1; 16]), Role::Follower(_)),
            "later callers follow A too"
        );
        let Ok(Action::Store(StoreOp::Put { .. }, _)) =
            a.next(Input::Computed(Computed::Value(&9)))
        else {
            panic!("A stores");
        };
        let stored = Input::Stored(Ok(StoreReply::Stored {
            evicted: 0,
            reclaimed: 0,
        }));
        assert!(matches!(a.next(stored), Ok(Action::ReturnComputed)));
        let handed = flight.wait_blocking(Duration::from_secs(5));
        assert!(matches!(
            b.next(Input::Followed(handed)),
            Ok(Action::Return(9))
        ));
        assert_eq!(core.stats.total().execs, 1);
    }

    #[test]
    fn a_new_leader_that_saw_another_callers_lease_looks_again_at_once() {
        let core = core();
        let mut call = call(&core, false, None);
        let _ = call.next(Input::Start);
        let miss = looked(Freshness::Missing, LeaseState::Theirs, None);
        assert!(matches!(
            call.next(miss),
            Ok(Action::Store(StoreOp::Get { .. }, _))
        ));
        let fresh = looked(Freshness::Fresh, LeaseState::NotAsked, Some(entry_of(6)));
        assert!(matches!(call.next(fresh), Ok(Action::Return(6))));
        assert_eq!(
            core.flights.in_progress(),
            0,
            "the flight ended with the call"
        );
    }

    #[test]
    fn a_held_back_lease_serves_the_fallback_without_computing() {
        let core = core();
        let mut call = call(&core, false, None);
        let _ = call.next(Input::Start);
        let entry = crate::codec::Entry::assemble(
            Codec::MessagePack.head(),
            Times::default(),
            &Codec::MessagePack.encode(&5u32).unwrap(),
        );
        let expired = looked(Freshness::Expired, LeaseState::Throttled, Some(entry));
        assert!(matches!(call.next(expired), Ok(Action::Return(5))));
        assert_eq!(core.stats.total().execs, 0);
    }
}
