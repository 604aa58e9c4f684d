//! What passes between a front-end and a [`Call`](super::Call): the inputs it feeds, the
//! actions it gets back, and the loop (`drive_call!`) that both front-ends share.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::flight::Flight;
use crate::store::{StoreOp, StoreReply};

use super::Ticket;

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
    pub(super) fn describe(&self) -> &'static str {
        match self {
            Computed::Value(_) | Computed::StoredElsewhere(_) => "the function returned a value",
            Computed::Failed => "the function returned an error",
            Computed::Panicked => "the function panicked",
            Computed::TimedOut => "the function ran past compute_timeout",
        }
    }
}

impl<T> Input<'_, T> {
    pub(super) fn name(&self) -> &'static str {
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

/// The loop that walks a [`Call`](super::Call) to its end, written once for both front-ends. The front-end
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
                        $call.span(), $runner.run($cache, timeout, ticket.map(|t| *t)) $(, .$aw)?);
                    let elsewhere = ran.stored_elsewhere;
                    outcome = ran.result;
                    let computed = $crate::call::computed(outcome.as_ref(), elsewhere);
                    $call.next($crate::call::Input::Computed(computed))?
                }
                $crate::call::Action::Background(ticket) => {
                    let queued = $runner.spawn($cache, *ticket);
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

/// What the front-end does next. Every step of every call moves one by value, a hit's too:
/// the rare actions box their large parts (a [`Ticket`]) so that it stays the size of a
/// store op.
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
        ticket: Option<Box<Ticket>>,
    },
    /// Run the function in the background under `ticket`, then feed [`Input::Spawned`].
    Background(Box<Ticket>),
    /// Return this value (from the store, a leader, or the default).
    Return(T),
    /// Return what the function returned (its value, its error, or its panic).
    ReturnComputed,
}
