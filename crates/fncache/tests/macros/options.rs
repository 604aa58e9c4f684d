//! The freshness, stampede and failure options of `#[cached]` (issue 4), each overriding the
//! cache's default for one function: `refresh_after` (in the background for owned arguments,
//! inline for borrowed ones), `wait = false` with `default`, `compute_timeout`, `max_stale`
//! with `fail_safe_throttle`, `strict`, `op_timeout`, `stampede_protection`, `lock_timeout`.
//!
//! Background work runs on other threads (or tasks), so the bodies here count their runs in
//! statics, one set per function, reset at the start of each scenario.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fncache::clock::ManualClock;
use fncache_testing::RedisServer;

use crate::support::{
    Scenario, asynchronous, blocking, current, eventually, install, on_every_store,
};

fn next(counter: &AtomicU64) -> u64 {
    counter.fetch_add(1, Ordering::SeqCst) + 1
}

fn count(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::SeqCst)
}

// --- refresh_after, owned: refreshed in the background -------------------------------------

static FEED: AtomicU64 = AtomicU64::new(0);
static FEED_ASYNC: AtomicU64 = AtomicU64::new(0);
static FEED_PLAIN: AtomicU64 = AtomicU64::new(0);

#[fncache::cached(cache = blocking(), refresh_after = Duration::from_millis(500))]
fn feed(page: u64) -> u64 {
    page * 100 + next(&FEED)
}

#[fncache::cached(cache = asynchronous(), refresh_after = Duration::from_millis(500))]
async fn feed_async(page: u64) -> Result<u64, String> {
    tokio::task::yield_now().await;
    Ok(page * 100 + next(&FEED_ASYNC))
}

/// The same function without the option: the cache's default (no refresh) applies.
#[fncache::cached(cache = blocking())]
fn feed_plain(page: u64) -> u64 {
    page * 100 + next(&FEED_PLAIN)
}

#[test]
fn refresh_after_serves_the_stale_value_and_refreshes_in_the_background() {
    let clock = Arc::new(ManualClock::new());
    on_every_store(
        |b| b.clock(clock.clone()),
        |s| {
            let who = s.label;
            for counter in [&FEED, &FEED_ASYNC, &FEED_PLAIN] {
                counter.store(0, Ordering::SeqCst);
            }
            assert_eq!(feed(1), 101, "{who}: computed");
            assert_eq!(feed(1), 101, "{who}: fresh");
            assert_eq!(s.block_on(feed_async(1)), Ok(101), "{who}");
            assert_eq!(feed_plain(1), 101, "{who}");
            s.pass(&clock, Duration::from_millis(600));

            // Owned arguments: the stale value at once, the refresh in the background.
            assert_eq!(feed(1), 101, "{who}: stale, served at once");
            eventually("the background refresh", || {
                s.blocking.stats().refreshes == 1
            });
            assert_eq!(feed(1), 102, "{who}: the refreshed value");
            assert_eq!(count(&FEED), 2, "{who}: exactly one refresh");
            let stats = s.blocking.stats();
            assert_eq!((stats.stale_served, stats.refreshes), (1, 1), "{who}");

            assert_eq!(s.block_on(feed_async(1)), Ok(101), "{who}: stale");
            s.eventually_async("the background refresh task", || {
                s.asynchronous.stats().refreshes == 1
            });
            assert_eq!(s.block_on(feed_async(1)), Ok(102), "{who}: refreshed");
            assert_eq!(count(&FEED_ASYNC), 2, "{who}");

            assert_eq!(feed_plain(1), 101, "{who}: no refresh_after, still fresh");
            assert_eq!(count(&FEED_PLAIN), 1, "{who}");
        },
    );
}

// --- refresh_after, borrowed: refreshed inline by the caller who wins the lease ------------

static GREETINGS: AtomicU64 = AtomicU64::new(0);
static GREETINGS_ASYNC: AtomicU64 = AtomicU64::new(0);

#[fncache::cached(cache = blocking(), refresh_after = Duration::from_millis(500))]
fn greeting(name: &str) -> String {
    format!("hello {name} #{}", next(&GREETINGS))
}

#[fncache::cached(cache = asynchronous(), refresh_after = Duration::from_millis(500))]
async fn greeting_async(name: &str) -> String {
    tokio::task::yield_now().await;
    format!("hello {name} #{}", next(&GREETINGS_ASYNC))
}

#[test]
fn refresh_after_refreshes_inline_when_the_arguments_are_borrowed() {
    let clock = Arc::new(ManualClock::new());
    on_every_store(
        |b| b.clock(clock.clone()),
        |s| {
            let who = s.label;
            GREETINGS.store(0, Ordering::SeqCst);
            GREETINGS_ASYNC.store(0, Ordering::SeqCst);
            assert_eq!(greeting("ada"), "hello ada #1", "{who}");
            assert_eq!(s.block_on(greeting_async("ada")), "hello ada #1", "{who}");
            s.pass(&clock, Duration::from_millis(600));
            // A `&str` cannot outlive the call: the caller refreshes, and gets the new value.
            assert_eq!(greeting("ada"), "hello ada #2", "{who}: refreshed inline");
            assert_eq!(s.blocking.stats().refreshes, 1, "{who}: already done");
            assert_eq!(greeting("ada"), "hello ada #2", "{who}: fresh again");
            assert_eq!(
                s.block_on(greeting_async("ada")),
                "hello ada #2",
                "{who}: refreshed inline"
            );
            assert_eq!(s.asynchronous.stats().refreshes, 1, "{who}");
        },
    );
}

// --- wait = false with a default -----------------------------------------------------------

static REPORTS: AtomicU64 = AtomicU64::new(0);

#[fncache::cached(cache = blocking(), wait = false, default = 0)]
fn report(id: u64) -> u64 {
    next(&REPORTS);
    id * 10
}

/// The default of a `Result` function is a value of its `T`.
#[fncache::cached(cache = asynchronous(), wait = false, default = 0)]
async fn report_async(id: u64) -> Result<u64, String> {
    tokio::task::yield_now().await;
    next(&REPORTS);
    Ok(id * 10)
}

/// A default, and the cache's own `wait` setting.
#[fncache::cached(cache = blocking(), default = u64::MAX)]
fn report_as_configured(id: u64) -> u64 {
    id * 10
}

#[test]
fn wait_false_answers_the_default_and_fills_the_cache_in_the_background() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            REPORTS.store(0, Ordering::SeqCst);
            assert_eq!(report(4), 0, "{who}: the default, at once");
            eventually("the background fill", || s.blocking.stats().writes == 1);
            assert_eq!(report(4), 40, "{who}: the filled value");
            assert_eq!(
                count(&REPORTS),
                1,
                "{who}: computed once, in the background"
            );
            assert_eq!(s.blocking.stats().defaults_served, 1, "{who}");

            assert_eq!(s.block_on(report_async(4)), Ok(0), "{who}: the default");
            s.eventually_async("the background fill", || s.asynchronous.stats().writes == 1);
            assert_eq!(s.block_on(report_async(4)), Ok(40), "{who}: filled");
            assert_eq!(s.asynchronous.stats().defaults_served, 1, "{who}");

            // This cache waits (the builder's default): the default is not used.
            assert_eq!(report_as_configured(4), 40, "{who}: waited for the value");
        },
    );
}

#[test]
fn a_default_is_answered_when_the_cache_does_not_wait() {
    on_every_store(
        |b| b.wait(false),
        |s| {
            let who = s.label;
            assert_eq!(report_as_configured(5), u64::MAX, "{who}: the default");
            eventually("the background fill", || s.blocking.stats().writes == 1);
            assert_eq!(report_as_configured(5), 50, "{who}: filled");
        },
    );
}

// --- compute_timeout: a slow recomputation is abandoned for the stale value ----------------

static SLOW: AtomicU64 = AtomicU64::new(0);
static SLOW_GATED: AtomicBool = AtomicBool::new(false);

#[fncache::cached(
    cache = blocking(),
    entry_ttl = Duration::from_millis(500),
    max_stale = Duration::from_secs(60),
    compute_timeout = Duration::from_millis(50)
)]
fn slow_rate(id: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    while SLOW_GATED.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    id + next(&SLOW)
}

#[test]
fn compute_timeout_serves_the_stale_value_while_the_recomputation_goes_on() {
    let clock = Arc::new(ManualClock::new());
    on_every_store(
        |b| b.clock(clock.clone()),
        |s| {
            let who = s.label;
            SLOW.store(0, Ordering::SeqCst);
            assert_eq!(slow_rate(10), 11, "{who}");
            s.pass(&clock, Duration::from_millis(600)); // past the entry TTL: expired
            SLOW_GATED.store(true, Ordering::SeqCst);
            // The recomputation cannot finish before the gate opens, so this call stops
            // waiting for it at the compute timeout and answers the stale value.
            assert_eq!(slow_rate(10), 11, "{who}: stale, the recomputation goes on");
            SLOW_GATED.store(false, Ordering::SeqCst);
            eventually("the abandoned recomputation stores its value", || {
                s.blocking.stats().writes == 2
            });
            assert_eq!(slow_rate(10), 12, "{who}: its value");
            assert_eq!(count(&SLOW), 2, "{who}");
        },
    );
}

// --- max_stale and fail_safe_throttle: fail-safe -------------------------------------------

static RATE_DOWN: AtomicBool = AtomicBool::new(false);
static RATE_TRIES: AtomicU64 = AtomicU64::new(0);
static BARE_TRIES: AtomicU64 = AtomicU64::new(0);

fn rate_of(id: u64, tries: &AtomicU64) -> Result<u64, String> {
    next(tries);
    if RATE_DOWN.load(Ordering::SeqCst) {
        Err("the rates service is down".to_owned())
    } else {
        Ok(id * 3)
    }
}

#[fncache::cached(
    cache = blocking(),
    entry_ttl = Duration::from_millis(300),
    max_stale = Duration::from_secs(3),
    fail_safe_throttle = Duration::from_millis(800)
)]
fn rate(id: u64) -> Result<u64, String> {
    rate_of(id, &RATE_TRIES)
}

/// The same without fail-safe (the cache's default): the error surfaces at once.
#[fncache::cached(cache = blocking(), entry_ttl = Duration::from_millis(300))]
fn rate_bare(id: u64) -> Result<u64, String> {
    rate_of(id, &BARE_TRIES)
}

#[test]
fn max_stale_serves_the_stale_value_when_the_body_fails_and_the_throttle_spaces_retries() {
    let clock = Arc::new(ManualClock::new());
    on_every_store(
        |b| b.clock(clock.clone()),
        |s| {
            let who = s.label;
            let down = Err("the rates service is down".to_owned());
            RATE_DOWN.store(false, Ordering::SeqCst);
            RATE_TRIES.store(0, Ordering::SeqCst);
            BARE_TRIES.store(0, Ordering::SeqCst);
            assert_eq!(rate(2), Ok(6), "{who}");
            assert_eq!(rate_bare(2), Ok(6), "{who}");
            RATE_DOWN.store(true, Ordering::SeqCst);
            s.pass(&clock, Duration::from_millis(400)); // past the entry TTL

            assert_eq!(rate(2), Ok(6), "{who}: fail-safe serves the stale value");
            assert_eq!(count(&RATE_TRIES), 2, "{who}: it did try");
            assert_eq!(rate_bare(2), down, "{who}: no max_stale, no fallback");
            assert_eq!(rate(2), Ok(6), "{who}: within the throttle");
            assert_eq!(count(&RATE_TRIES), 2, "{who}: no retry within the throttle");

            s.pass(&clock, Duration::from_millis(900)); // past the throttle
            assert_eq!(rate(2), Ok(6), "{who}: retried, failed, stale again");
            assert_eq!(count(&RATE_TRIES), 3, "{who}");

            s.pass(&clock, Duration::from_secs(2)); // past max_stale
            assert_eq!(rate(2), down, "{who}: nothing left to serve");
            RATE_DOWN.store(false, Ordering::SeqCst);
            assert_eq!(rate(2), Ok(6), "{who}: recovered");
            let stats = s.blocking.stats();
            assert_eq!(
                (stats.refresh_failures, stats.stale_served),
                (2, 3),
                "{who}"
            );
        },
    );
}

// --- strict: backend errors through the function's `Result` --------------------------------

#[derive(Debug)]
enum LoadError {
    Cache(fncache::Error),
}

impl From<fncache::Error> for LoadError {
    fn from(e: fncache::Error) -> Self {
        LoadError::Cache(e)
    }
}

static LOADS: AtomicU64 = AtomicU64::new(0);

#[fncache::cached(cache = blocking(), strict = true)]
fn load_strict(id: u64) -> Result<u64, LoadError> {
    next(&LOADS);
    Ok(id)
}

#[fncache::cached(cache = asynchronous(), strict = true)]
async fn load_strict_async(id: u64) -> Result<u64, LoadError> {
    next(&LOADS);
    Ok(id)
}

#[fncache::cached(cache = blocking())]
fn load_lenient(id: u64) -> Result<u64, LoadError> {
    next(&LOADS);
    Ok(id)
}

fn is_backend(result: Result<u64, LoadError>) -> bool {
    matches!(result, Err(LoadError::Cache(e)) if e.is_backend())
}

#[test]
fn strict_returns_backend_errors_through_the_functions_result() {
    let mut s = Scenario::new(Some(RedisServer::spawn()), |b| b);
    let loads = || count(&LOADS);
    assert_eq!(load_strict(1).unwrap(), 1);
    assert_eq!(load_strict(1).unwrap(), 1);
    assert_eq!(s.block_on(load_strict_async(1)).unwrap(), 1);
    assert_eq!(load_lenient(1).unwrap(), 1);
    assert_eq!(loads(), 3, "cached while the server is up");

    s.server.as_mut().unwrap().stop();
    assert!(
        is_backend(load_strict(1)),
        "the backend error, as LoadError"
    );
    assert!(is_backend(s.block_on(load_strict_async(1))));
    assert_eq!(
        loads(),
        3,
        "a strict function does not run its body instead"
    );
    assert_eq!(
        load_lenient(1).unwrap(),
        1,
        "the cache's default: fail open"
    );
    assert_eq!(loads(), 4);
}

// --- op_timeout -----------------------------------------------------------------------------

static PATIENCE: AtomicU64 = AtomicU64::new(0);

#[fncache::cached(cache = blocking(), op_timeout = Duration::from_millis(100))]
fn impatient(id: u64) -> u64 {
    next(&PATIENCE);
    id
}

#[fncache::cached(cache = asynchronous(), op_timeout = Duration::from_millis(100))]
async fn impatient_async(id: u64) -> u64 {
    next(&PATIENCE);
    id
}

/// The cache's op timeout.
#[fncache::cached(cache = blocking())]
fn patient(id: u64) -> u64 {
    next(&PATIENCE);
    id
}

#[test]
fn op_timeout_bounds_each_backend_operation_of_its_function() {
    // The cache waits up to 30 s for an op, longer than the pause below: only the functions'
    // own op timeout makes them give up on the paused server.
    let s = Scenario::new(Some(RedisServer::spawn()), |b| {
        b.op_timeout(Duration::from_secs(30))
    });
    impatient(1);
    s.block_on(impatient_async(1));
    patient(1);
    assert_eq!(count(&PATIENCE), 3);
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(1500)
        .arg("ALL")
        .exec(&mut s.redis().unwrap())
        .unwrap();

    assert_eq!(impatient(1), 1, "past its op timeout: the body answers");
    assert_eq!(s.block_on(impatient_async(1)), 1);
    assert_eq!(count(&PATIENCE), 5);
    assert_eq!(s.blocking.stats().fail_open, 1);
    assert_eq!(s.asynchronous.stats().fail_open, 1);

    assert_eq!(patient(1), 1, "waits the pause out: a hit");
    assert_eq!(count(&PATIENCE), 5, "no run");
    assert_eq!(s.blocking.stats().fail_open, 1);
}

// --- stampede_protection and lock_timeout ---------------------------------------------------

/// Meets the other caller inside the body: returns once `entered` callers are in, or after
/// `patience` (not a timing assertion: it only bounds a body that has no partner).
fn meet(entered: &AtomicU64, patience: Duration) {
    entered.fetch_add(1, Ordering::SeqCst);
    let deadline = Instant::now() + patience;
    while entered.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

async fn meet_async(entered: &AtomicU64, patience: Duration) {
    entered.fetch_add(1, Ordering::SeqCst);
    let deadline = Instant::now() + patience;
    while entered.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// How long a body waits for the other caller: shorter than the default lock timeout (5 s),
/// so that a caller who waits for the other's value never meets it in the body.
const MEET: Duration = Duration::from_secs(2);
/// How long a body waits for a caller that is expected to wait for its value instead.
const ALONE: Duration = Duration::from_millis(200);

static UNPROTECTED: AtomicU64 = AtomicU64::new(0);
static UNPROTECTED_ASYNC: AtomicU64 = AtomicU64::new(0);
static IMPATIENT_LOCK: AtomicU64 = AtomicU64::new(0);
static PROTECTED: AtomicU64 = AtomicU64::new(0);
static PROTECTED_ASYNC: AtomicU64 = AtomicU64::new(0);

#[fncache::cached(cache = blocking(), stampede_protection = false)]
fn unprotected(id: u64) -> u64 {
    meet(&UNPROTECTED, MEET);
    id
}

#[fncache::cached(cache = asynchronous(), stampede_protection = false)]
async fn unprotected_async(id: u64) -> u64 {
    meet_async(&UNPROTECTED_ASYNC, MEET).await;
    id
}

/// Protected, but the second caller waits for the first only 50 ms.
#[fncache::cached(cache = blocking(), lock_timeout = Duration::from_millis(50))]
fn short_lock(id: u64) -> u64 {
    meet(&IMPATIENT_LOCK, MEET);
    id
}

#[fncache::cached(cache = blocking())]
fn protected(id: u64) -> u64 {
    meet(&PROTECTED, ALONE);
    id
}

#[fncache::cached(cache = asynchronous())]
async fn protected_async(id: u64) -> u64 {
    meet_async(&PROTECTED_ASYNC, ALONE).await;
    id
}

/// Calls `f` on two threads at once (each with this scenario's caches).
fn twice_at_once(f: fn(u64) -> u64) {
    let caches = current();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let caches = caches.clone();
            scope.spawn(move || {
                install(caches);
                assert_eq!(f(7), 7);
            });
        }
    });
}

#[test]
fn stampede_protection_false_lets_concurrent_callers_all_compute() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            for counter in [
                &UNPROTECTED,
                &UNPROTECTED_ASYNC,
                &IMPATIENT_LOCK,
                &PROTECTED,
                &PROTECTED_ASYNC,
            ] {
                counter.store(0, Ordering::SeqCst);
            }
            // Each body waits (up to 2 s) for a second caller to enter it too: without
            // stampede protection both callers miss and compute, and meet there.
            twice_at_once(unprotected);
            assert_eq!(count(&UNPROTECTED), 2, "{who}: both computed");
            s.block_on(async { tokio::join!(unprotected_async(7), unprotected_async(7)) });
            assert_eq!(count(&UNPROTECTED_ASYNC), 2, "{who}: both computed");
            let waits = s.blocking.stats().lock_waits + s.asynchronous.stats().lock_waits;
            assert_eq!(waits, 0, "{who}: nobody waited for anybody");

            // With a short lock timeout the second caller stops waiting and computes too.
            twice_at_once(short_lock);
            assert_eq!(count(&IMPATIENT_LOCK), 2, "{who}: the waiter gave up");
            assert!(s.blocking.stats().lock_timeouts >= 1, "{who}");

            // The cache's defaults: the second caller waits for the first one's value.
            twice_at_once(protected);
            assert_eq!(count(&PROTECTED), 1, "{who}: one computation");
            s.block_on(async { tokio::join!(protected_async(7), protected_async(7)) });
            assert_eq!(count(&PROTECTED_ASYNC), 1, "{who}: one computation");
        },
    );
}
