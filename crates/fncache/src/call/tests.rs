//! The machine alone, fed by hand: what a front-end would see, without any I/O.

use std::convert::Infallible;
use std::time::Duration;

use super::*;
use crate::codec::Times;
use crate::flight::Role;
use crate::mode::Ambient;
use crate::options::CallOptions;
use crate::store::{Freshness, LeaseState, Lookup, StoreOp, StoreReply};

fn core() -> Core {
    let (core, _) = crate::Cache::builder("machine")
        .wait(false)
        .core_for_tests()
        .unwrap();
    core
}

fn looked(freshness: Freshness, lease: LeaseState, entry: Option<Vec<u8>>) -> Input<'static, u32> {
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

/// A strict cache's core, and a call of it returning `T` (the strict tests below).
fn strict_core() -> Core {
    let (core, _) = crate::Cache::builder("machine")
        .strict(true)
        .core_for_tests()
        .unwrap();
    core
}

fn strict_call<T: serde::Serialize + serde::de::DeserializeOwned>(
    core: &Core,
) -> Call<'_, Error, T> {
    const NONE: CallOptions = CallOptions::new();
    let Ok(call) = core.begin::<Error, T, CallOptions>(
        "f",
        Ok([1; 16]),
        &NONE,
        &Ambient::default(),
        false,
        None,
    ) else {
        panic!("a call");
    };
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
    let Ok(Action::Store(StoreOp::Lease { hold: None, .. }, _)) = call.next(Input::Spawned(false))
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
    let Ok(Action::Store(StoreOp::Put { .. }, _)) = a.next(Input::Computed(Computed::Value(&9)))
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

/// A strict call whose put fails gives the key's lease back before it returns the failure
/// (it returned at once, and the lease stayed held until `lock_timeout`).
#[test]
fn a_strict_call_whose_put_fails_releases_the_lease_then_fails() {
    let core = strict_core();
    let mut call = strict_call::<u32>(&core);
    let _ = call.next(Input::Start);
    let compute = call.next(looked(Freshness::Missing, LeaseState::Mine, None));
    assert!(matches!(compute, Ok(Action::Compute { .. })), "{compute:?}");
    let put = call.next(Input::Computed(Computed::Value(&5)));
    assert!(
        matches!(put, Ok(Action::Store(StoreOp::Put { .. }, _))),
        "{put:?}"
    );
    let oom = Error::new(crate::ErrorKind::Backend, "OOM command not allowed");
    let release = call.next(Input::Stored(Err(oom)));
    assert!(
        matches!(
            release,
            Ok(Action::Store(StoreOp::Lease { hold: None, .. }, _))
        ),
        "the lease is released first: {release:?}"
    );
    let failed = call.next(Input::Stored(Ok(StoreReply::Flag(true))));
    assert!(
        matches!(&failed, Err(e) if e.to_string().contains("OOM")),
        "{failed:?}"
    );
    assert_eq!(core.stats.total().errors, 1);
}

/// When the release fails too, the strict call returns the failure that came first (the
/// value that would not encode faithfully), and counts both.
#[test]
fn a_strict_call_returns_its_first_failure_when_the_release_fails_too() {
    let core = strict_core();
    let mut call = strict_call::<Option<Option<u32>>>(&core);
    let _ = call.next(Input::Start);
    let miss = Input::Stored(Ok(StoreReply::Looked(Lookup {
        freshness: Freshness::Missing,
        lease: LeaseState::Mine,
        entry: None,
        store_us: None,
    })));
    let _ = call.next(miss);
    // MessagePack writes `Some(None)` as `None`: not stored, the lease is released.
    let release = call.next(Input::Computed(Computed::Value(&Some(None))));
    assert!(
        matches!(release, Ok(Action::Store(StoreOp::Lease { .. }, _))),
        "{release:?}"
    );
    let down = Error::new(crate::ErrorKind::Backend, "connection reset");
    let failed = call.next(Input::Stored(Err(down)));
    assert!(
        matches!(&failed, Err(e) if e.kind() == crate::ErrorKind::Encode),
        "{failed:?}"
    );
    assert_eq!(core.stats.total().errors, 2);
}

/// A call dropped while it holds its key's lease (an async caller's future dropped while it
/// computes or stores) hands the lease's release to the front-end; a call that ended, or
/// whose lease background work owns, hands nothing.
#[test]
fn a_call_dropped_while_it_holds_the_lease_hands_its_release_to_the_front_end() {
    let core = core();
    let sent: Arc<std::sync::Mutex<Vec<StoreOp>>> = Arc::default();
    let sink = sent.clone();
    core.abandoned.set(Box::new(move |op| {
        sink.lock().unwrap().push(op);
    }));
    let taken = || sent.lock().unwrap().drain(..).collect::<Vec<_>>();

    // Dropped while computing, and while storing: the lease goes back.
    let mut computing = call(&core, false, None);
    let _ = computing.next(Input::Start);
    let miss = looked(Freshness::Missing, LeaseState::Mine, None);
    assert!(matches!(computing.next(miss), Ok(Action::Compute { .. })));
    drop(computing);
    let released = taken();
    assert!(
        matches!(released[..], [StoreOp::Lease { hold: None, member, .. }] if member == [1; 16]),
        "{released:?}"
    );
    let mut storing = call(&core, false, None);
    let _ = storing.next(Input::Start);
    let _ = storing.next(looked(Freshness::Missing, LeaseState::Mine, None));
    let put = storing.next(Input::Computed(Computed::Value(&5)));
    assert!(matches!(put, Ok(Action::Store(StoreOp::Put { .. }, _))));
    drop(storing);
    assert_eq!(taken().len(), 1, "the put may not have been sent");

    // Ended: stored (the put gave the lease back) or handed to background work.
    let mut stored = call(&core, false, None);
    let _ = stored.next(Input::Start);
    let _ = stored.next(looked(Freshness::Missing, LeaseState::Mine, None));
    let _ = stored.next(Input::Computed(Computed::Value(&5)));
    let done = Input::Stored(Ok(StoreReply::Stored {
        evicted: 0,
        reclaimed: 0,
    }));
    assert!(matches!(stored.next(done), Ok(Action::ReturnComputed)));
    drop(stored);
    let mut queued = call(&core, true, Some(7));
    let _ = queued.next(Input::Start);
    let _ = queued.next(looked(Freshness::Missing, LeaseState::Mine, None));
    assert!(matches!(
        queued.next(Input::Spawned(true)),
        Ok(Action::Return(7))
    ));
    drop(queued);
    // A caller that never held the lease.
    let mut waiting = call(&core, false, None);
    let _ = waiting.next(Input::Start);
    let _ = waiting.next(looked(Freshness::Missing, LeaseState::Theirs, None));
    drop(waiting);
    assert!(taken().is_empty());
}
