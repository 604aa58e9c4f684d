//! Issue 14, items 5 to 8: put without read, soft invalidation, the off switch, and TTL
//! jitter, on every store and front-end.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fncache::clock::ManualClock;
use fncache::{Cache, CallOptions, Codec, DISABLED_ENV, ErrorKind, Policy};
use fncache_testing::RedisServer;

use crate::support::{Store, all_fronts, describe, unique_name};

/// Commands the server has processed (on one connection of the test's own, so that opening
/// it is not counted in between).
fn commands_processed(con: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

#[test]
fn put_stores_without_computing_and_replaces_what_is_there() {
    for (store, front) in all_fronts(|b| b) {
        let who = describe(&store, &front);
        let none = CallOptions::new();
        let execs = AtomicU64::new(0);
        assert!(front.put_with(&none, "f", 1, &77u64).unwrap(), "{who}");
        assert_eq!(
            front.call("f", 1, &execs),
            77,
            "{who}: the put value is a hit"
        );
        assert_eq!(execs.load(Ordering::SeqCst), 0, "{who}");
        // Over an existing entry: replaced.
        assert_eq!(front.call("f", 2, &execs), 20, "{who}");
        assert!(front.put_with(&none, "f", 2, &21u64).unwrap(), "{who}");
        assert_eq!(front.call("f", 2, &execs), 21, "{who}");
        let s = front.stats_for("f").unwrap();
        assert_eq!((s.writes, s.execs, s.errors), (3, 1, 0), "{who}");
    }
}

#[test]
fn put_obeys_the_options_and_the_policy() {
    for (store, front) in all_fronts(|b| b.policy(Policy::Fifo).maxsize(2)) {
        let who = describe(&store, &front);
        // A `None` the options leave out is not stored.
        let skip_none = CallOptions::new().cache_none(false);
        assert!(
            !front.put_with(&skip_none, "g", 1, &None::<u64>).unwrap(),
            "{who}"
        );
        assert!(!front.contains("g", 1), "{who}");
        // The codec of the options is the one written, and the one a call reads.
        let json = CallOptions::new().codec(Codec::Json);
        assert!(front.put_with(&json, "g", 2, &Some(5u64)).unwrap());
        assert_eq!(
            front.call_with(&json, "g", 2, || Some(6u64)).unwrap(),
            Some(5)
        );
        // A value the codec cannot give back exactly is refused, as a call would.
        let err = front.put_with(&json, "g", 3, &f64::NAN).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Encode, "{who}: {err}");
        assert!(!front.contains("g", 3), "{who}");
        // Full: the policy evicts (FIFO: the oldest, `g(2)`).
        let none = CallOptions::new();
        assert!(front.put_with(&none, "g", 4, &4u64).unwrap());
        assert!(front.put_with(&none, "g", 5, &5u64).unwrap());
        assert!(!front.contains("g", 2), "{who}: evicted");
        assert!(front.contains("g", 4) && front.contains("g", 5), "{who}");
        let s = front.stats_for("g").unwrap();
        assert_eq!((s.evictions, s.errors), (1, 1), "{who}");
    }
}

#[test]
fn expire_keeps_the_entry_as_a_fallback_until_a_refresh_replaces_it() {
    let configs: [fn(fncache::Builder) -> fncache::Builder; 2] =
        [|b| b, |b| b.entry_ttl(Duration::from_secs(60))];
    for configure in configs {
        for (store, front) in all_fronts(configure) {
            let who = describe(&store, &front);
            let none = CallOptions::new();
            let execs = AtomicU64::new(0);
            assert!(!front.expire("f", 1).unwrap(), "{who}: nothing to expire");
            assert_eq!(front.call("f", 1, &execs), 10);
            assert!(front.expire("f", 1).unwrap(), "{who}");
            assert!(!front.expire("f", 1).unwrap(), "{who}: already expired");
            assert!(!front.contains("f", 1), "{who}: not served as is");
            // The next call recomputes...
            let refreshed = front.try_call_with(&none, "f", 1, Ok(11)).unwrap();
            assert_eq!(refreshed, Ok(11), "{who}");
            assert!(front.contains("f", 1), "{who}: fresh again");
            // ... and when recomputing fails, the old value is served instead of the error.
            assert!(front.expire("f", 1).unwrap(), "{who}");
            let failed = front
                .try_call_with(&none, "f", 1, Err("down".to_owned()))
                .unwrap();
            assert_eq!(failed, Ok(11), "{who}: the fallback");
            let s = front.stats_for("f").unwrap();
            assert_eq!((s.refresh_failures, s.stale_served), (1, 1), "{who}");
        }
    }
}

#[test]
fn expire_does_not_outlive_max_stale() {
    let clock = Arc::new(ManualClock::new());
    let cache = Cache::builder(unique_name())
        .memory()
        .clock(clock.clone())
        .entry_ttl(Duration::from_secs(10))
        .max_stale(Duration::from_secs(30))
        .build_blocking()
        .unwrap();
    cache.get_or_compute("f", &1, || 1u64).unwrap();
    clock.advance(Duration::from_secs(5));
    assert!(cache.expire("f", &1).unwrap());
    clock.advance(Duration::from_secs(20)); // 25 s after the write: still a fallback
    let failed: Result<u64, &str> = cache.try_get_or_compute("f", &1, || Err("down")).unwrap();
    assert_eq!(failed, Ok(1));
    clock.advance(Duration::from_secs(10)); // 35 s: past max_stale, gone
    let failed: Result<u64, &str> = cache.try_get_or_compute("f", &1, || Err("down")).unwrap();
    assert_eq!(failed, Err("down"));
}

#[test]
fn a_disabled_cache_runs_every_call_with_no_store_traffic() {
    for (store, front) in all_fronts(|b| b.enabled(false)) {
        let who = describe(&store, &front);
        let none = CallOptions::new();
        let execs = AtomicU64::new(0);
        assert!(!front.is_enabled(), "{who}");
        let mut con = store.server().map(RedisServer::connection);
        let before = con.as_mut().map(commands_processed);
        for _ in 0..3 {
            assert_eq!(front.call("f", 1, &execs), 10, "{who}");
        }
        assert!(!front.put_with(&none, "f", 1, &5u64).unwrap(), "{who}");
        assert!(!front.expire("f", 1).unwrap(), "{who}");
        if let (Some(con), Some(before)) = (con.as_mut(), before) {
            // One command in between: the first INFO itself.
            assert_eq!(commands_processed(con), before + 1, "{who}: no traffic");
        }
        let s = front.stats();
        assert_eq!(
            (s.calls, s.execs, s.hits, s.misses, s.writes),
            (3, 3, 0, 0, 0),
            "{who}"
        );
        // Switched on at run time: cached as usual; off again: computed again.
        front.set_enabled(true);
        assert_eq!(front.call("f", 1, &execs), 10);
        assert!(front.is_hit("f", 1), "{who}");
        front.set_enabled(false);
        assert!(!front.is_hit("f", 1), "{who}: off, the entry is not read");
        assert_eq!(execs.load(Ordering::SeqCst), 4, "{who}");
    }
}

#[test]
fn a_disabled_cache_runs_the_function_whatever_the_mode() {
    for (store, front) in all_fronts(|b| b.enabled(false)) {
        let who = describe(&store, &front);
        let execs = AtomicU64::new(0);
        let got = front.call_in_mode(fncache::Mode::READ_ONLY, "f", 1, &execs);
        assert_eq!(got.unwrap(), 10, "{who}");
        let got = front.call_in_mode(
            fncache::Mode {
                read: true,
                write: false,
                exec: false,
            },
            "f",
            2,
            &execs,
        );
        assert_eq!(got.unwrap(), 20, "{who}: off means the function runs");
    }
}

/// Runs this test binary again with `FNCACHE_DISABLED` set as given; the child checks what a
/// cache built without `enabled(..)` does (a process cannot change its own environment
/// safely while tests run in parallel).
const ENV_CASE: &str = "FNCACHE_TEST_DISABLED_CASE";

#[test]
fn the_environment_switches_off_caches_that_do_not_say() {
    if let Ok(case) = std::env::var(ENV_CASE) {
        let expect_enabled = case == "on";
        let cache = Cache::builder(unique_name()).memory().build_blocking();
        if case == "bad" {
            assert_eq!(cache.unwrap_err().kind(), ErrorKind::Config);
            return;
        }
        let cache = cache.unwrap();
        assert_eq!(cache.is_enabled(), expect_enabled, "case {case}");
        let explicit = Cache::builder(unique_name())
            .memory()
            .enabled(true)
            .build_blocking()
            .unwrap();
        assert!(explicit.is_enabled(), "an explicit setting wins");
        let runs = AtomicU64::new(0);
        for _ in 0..2 {
            cache
                .get_or_compute("f", &1, || runs.fetch_add(1, Ordering::SeqCst))
                .unwrap();
        }
        assert_eq!(
            runs.load(Ordering::SeqCst),
            if expect_enabled { 1 } else { 2 }
        );
        return;
    }
    for (value, case) in [
        (Some("1"), "off"),
        (Some("true"), "off"),
        (Some("0"), "on"),
        (Some(""), "on"),
        (None, "on"),
        (Some("maybe"), "bad"),
    ] {
        let mut child = Command::new(std::env::current_exe().unwrap());
        child
            .args([
                "--exact",
                "features::the_environment_switches_off_caches_that_do_not_say",
            ])
            .env(ENV_CASE, case);
        match value {
            Some(v) => child.env(DISABLED_ENV, v),
            None => child.env_remove(DISABLED_ENV),
        };
        let out = child.output().unwrap();
        assert!(
            out.status.success(),
            "{DISABLED_ENV}={value:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "the child ran the case"
        );
    }
}

/// The entry TTLs (expire_at - written_at, in ms) a Redis cache wrote.
fn redis_ttls(server: &RedisServer, cache: &str) -> Vec<u64> {
    let values: Vec<Vec<u8>> = redis::cmd("HVALS")
        .arg(format!("func-cache:{cache}:lru_t:1"))
        .query(&mut server.connection())
        .unwrap();
    values
        .iter()
        .map(|v| {
            let word = |at: usize| u64::from_be_bytes(v[at..at + 8].try_into().unwrap());
            (word(10) - word(2)) / 1000
        })
        .collect()
}

#[test]
fn jitter_spreads_entry_ttls_by_key_the_same_way_everywhere() {
    let server = RedisServer::spawn();
    let ttl = Duration::from_secs(10);
    let configure = |b: fncache::Builder| {
        b.entry_ttl(ttl)
            .ttl_jitter(Duration::from_secs(2))
            .entry_ttl_jitter(0.3)
    };
    // Per key, the TTL one Redis cache writes; a second cache (another process) writes the
    // same, and the embedded store keeps the entry exactly as long.
    let mut seen = Vec::new();
    for x in 0..24u64 {
        let mut per_cache = Vec::new();
        for _ in 0..2 {
            let name = unique_name();
            let cache = configure(Cache::builder(&name).redis(server.url()))
                .build_blocking()
                .unwrap();
            cache.get_or_compute("f", &(x,), || x).unwrap();
            per_cache.push(redis_ttls(&server, &name));
        }
        assert_eq!(per_cache[0].len(), 1);
        assert_eq!(per_cache[0], per_cache[1], "key {x}: every process agrees");
        let ms = per_cache[0][0];
        assert!((10_000..15_000).contains(&ms), "key {x}: {ms} ms");
        seen.push(ms);

        let clock = Arc::new(ManualClock::new());
        let mem = configure(Cache::builder(unique_name()).memory().clock(clock.clone()))
            .build_blocking()
            .unwrap();
        mem.get_or_compute("f", &(x,), || x).unwrap();
        clock.advance(Duration::from_millis(ms) - Duration::from_micros(1));
        assert!(
            mem.contains("f", &(x,)).unwrap(),
            "key {x}: alive at {ms} - 1 ms"
        );
        // The store's op clock moves a microsecond per op (the put came after the lookup).
        clock.advance(Duration::from_millis(1));
        assert!(
            !mem.contains("f", &(x,)).unwrap(),
            "key {x}: expired at {ms} ms + 1 µs"
        );
    }
    seen.sort_unstable();
    seen.dedup();
    assert!(seen.len() > 16, "spread: {seen:?}");
}

#[test]
fn jitter_applies_to_puts_and_per_call_options() {
    for (store, front) in all_fronts(|b| b) {
        let Store::Redis(server) = &*store else {
            continue;
        };
        let who = describe(&store, &front);
        let options = CallOptions::new()
            .entry_ttl(Duration::from_secs(100))
            .entry_ttl_jitter(0.5);
        for x in 0..8 {
            assert!(front.put_with(&options, "p", x, &x).unwrap());
            front.call_with(&options, "c", x, || x).unwrap();
        }
        let ttls = redis_ttls(server, front.name());
        assert_eq!(ttls.len(), 16, "{who}");
        assert!(
            ttls.iter().all(|ms| (100_000..150_000).contains(ms)),
            "{who}: {ttls:?}"
        );
        assert!(ttls.iter().any(|ms| *ms != 100_000), "{who}: spread");
        // Without jitter, the entry TTL exactly.
        let plain = CallOptions::new().entry_ttl(Duration::from_secs(100));
        let before = ttls.len();
        front.call_with(&plain, "q", 1, || 1u64).unwrap();
        let ttls = redis_ttls(server, front.name());
        assert_eq!(ttls.len(), before + 1);
        assert_eq!(ttls.iter().filter(|ms| **ms == 100_000).count(), 1, "{who}");
    }
}

#[test]
fn cache_if_returns_what_it_refuses_without_storing_it() {
    for (store, front) in all_fronts(|b| b) {
        let who = describe(&store, &front);
        let options = CallOptions::new().cache_if(|v: &u64| *v < 100);
        assert_eq!(front.call_with(&options, "f", 1, || 500u64).unwrap(), 500);
        assert!(!front.contains("f", 1), "{who}: refused");
        assert_eq!(front.call_with(&options, "f", 1, || 5u64).unwrap(), 5);
        assert_eq!(
            front.call_with(&options, "f", 1, || 6u64).unwrap(),
            5,
            "{who}"
        );
        // A `Result` function: the hook sees the `Ok` value; errors are never stored.
        let options = CallOptions::new().cache_if(|v: &u64| v.is_multiple_of(2));
        assert_eq!(front.try_call_with(&options, "g", 1, Ok(3)).unwrap(), Ok(3));
        assert!(!front.contains("g", 1), "{who}");
        assert_eq!(front.try_call_with(&options, "g", 1, Ok(4)).unwrap(), Ok(4));
        assert!(front.contains("g", 1), "{who}");
        // A put obeys the hook like any put.
        assert!(!front.put_with(&options, "g", 2, &7u64).unwrap(), "{who}");
        assert!(!front.contains("g", 2), "{who}");
        assert!(front.put_with(&options, "g", 2, &8u64).unwrap(), "{who}");
        let s = front.stats();
        assert_eq!((s.errors, s.writes), (0, 3), "{who}");
    }
}

#[test]
fn entry_ttl_from_sets_each_entrys_ttl_from_its_value() {
    // On Redis, read back what was written.
    for (store, front) in all_fronts(|b| b.entry_ttl(Duration::from_secs(5))) {
        let Store::Redis(server) = &*store else {
            continue;
        };
        let who = describe(&store, &front);
        let options = CallOptions::new().entry_ttl_from(|v: &u64| Duration::from_secs(*v));
        front.call_with(&options, "f", 1, || 40u64).unwrap();
        assert!(front.put_with(&options, "f", 2, &70u64).unwrap());
        // Zero: not stored (as `max-age=0`).
        assert_eq!(front.call_with(&options, "f", 3, || 0u64).unwrap(), 0);
        assert!(!front.put_with(&options, "f", 4, &0u64).unwrap(), "{who}");
        let mut ttls = redis_ttls(server, front.name());
        ttls.sort_unstable();
        assert_eq!(ttls, [40_000, 70_000], "{who}");
        // Jitter applies to it as to the entry TTL.
        let jittered = CallOptions::new()
            .ttl_jitter(Duration::from_secs(1))
            .entry_ttl_from(|v: &u64| Duration::from_secs(*v));
        for x in 10..20 {
            front.call_with(&jittered, "j", x, || 100u64).unwrap();
        }
        let ttls = redis_ttls(server, front.name());
        let spread: Vec<_> = ttls.iter().filter(|ms| **ms >= 100_000).collect();
        assert_eq!(spread.len(), 10, "{who}: {ttls:?}");
        assert!(spread.iter().all(|ms| **ms < 101_000), "{who}: {ttls:?}");
        assert!(spread.iter().any(|ms| **ms != 100_000), "{who}: {ttls:?}");
    }
    // On the embedded store, by its clock.
    let clock = Arc::new(ManualClock::new());
    let cache = Cache::builder(unique_name())
        .memory()
        .clock(clock.clone())
        .entry_ttl(Duration::from_secs(5))
        .build_blocking()
        .unwrap();
    let options = CallOptions::new().entry_ttl_from(|v: &u64| Duration::from_secs(*v));
    cache
        .get_or_compute_with(&options, "f", &1, || 40u64)
        .unwrap();
    clock.advance(Duration::from_secs(39));
    assert!(cache.contains("f", &1).unwrap());
    // (The put came a microsecond after the lookup on the store's op clock.)
    clock.advance(Duration::from_secs(1) + Duration::from_micros(1));
    assert!(!cache.contains("f", &1).unwrap());
}

#[test]
fn hooks_keep_refreshes_inline_so_no_background_work_stores_a_refused_value() {
    let clock = Arc::new(ManualClock::new());
    let builder = || {
        Cache::builder(unique_name())
            .memory()
            .clock(clock.clone())
            .refresh_after(Duration::from_secs(1))
    };
    let options = CallOptions::new().cache_if(|v: &u64| *v < 100);
    let read = |v: Result<Result<u64, ()>, fncache::Error>| v.unwrap().unwrap();
    // Blocking.
    let cache = builder().build_blocking().unwrap();
    let call = |v: u64| cache.try_get_or_compute_owned_with(&options, None, "f", &1, move || Ok(v));
    assert_eq!(read(call(1)), 1);
    clock.advance(Duration::from_secs(2));
    // Stale: this caller refreshes inline, gets its own (refused) value, and nothing stores it.
    assert_eq!(read(call(500)), 500);
    let stale = cache.with_mode(fncache::Mode::READ_ONLY, || call(7));
    assert_eq!(read(stale), 1, "the refused value was not stored");
    // Async.
    let rt = crate::front::runtime();
    let cache = builder().build().unwrap();
    let call = |v: u64| {
        rt.block_on(cache.try_get_or_compute_owned_with(
            &options,
            None,
            "f",
            &1,
            move || async move { Ok(v) },
        ))
    };
    assert_eq!(read(call(1)), 1);
    clock.advance(Duration::from_secs(2));
    assert_eq!(read(call(500)), 500);
    let stale = rt.block_on(cache.with_mode(fncache::Mode::READ_ONLY, async {
        cache
            .try_get_or_compute_owned_with(&options, None, "f", &1, || async { Ok(7) })
            .await
    }));
    assert_eq!(read(stale), 1, "async: the refused value was not stored");
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum LookupError {
    NotFound,
    Timeout,
}

fn negative(
    front: &crate::support::Front,
    options: &CallOptions,
    x: u64,
    answer: Result<u64, LookupError>,
    execs: &AtomicU64,
) -> Result<u64, LookupError> {
    let not_found = |e: &LookupError| *e == LookupError::NotFound;
    let compute = || {
        execs.fetch_add(1, Ordering::SeqCst);
        answer
    };
    match front {
        crate::support::Front::Blocking(c) => {
            c.try_get_or_compute_negative(options, "find", &(x,), not_found, compute)
        }
        crate::support::Front::Async(c, rt) => rt.block_on(c.try_get_or_compute_negative(
            options,
            "find",
            &(x,),
            not_found,
            || async { compute() },
        )),
    }
    .unwrap()
}

#[test]
fn negative_caching_stores_the_chosen_errors_for_negative_ttl_and_serves_them_as_errors() {
    for (store, front) in all_fronts(|b| b.entry_ttl(Duration::from_secs(300))) {
        let who = describe(&store, &front);
        let options = CallOptions::new().negative_ttl(Duration::from_secs(10));
        let execs = AtomicU64::new(0);
        let ran = || execs.load(Ordering::SeqCst);
        // The chosen error is cached, and served as that error, never as a value.
        let got = negative(&front, &options, 1, Err(LookupError::NotFound), &execs);
        assert_eq!(got, Err(LookupError::NotFound), "{who}");
        let got = negative(&front, &options, 1, Ok(5), &execs);
        assert_eq!(got, Err(LookupError::NotFound), "{who}: the negative entry");
        assert_eq!(ran(), 1, "{who}");
        // Another error passes through, uncached.
        let got = negative(&front, &options, 2, Err(LookupError::Timeout), &execs);
        assert_eq!(got, Err(LookupError::Timeout), "{who}");
        assert!(!front.contains("find", 2), "{who}");
        // A value is cached as usual, and served as a value.
        assert_eq!(negative(&front, &options, 2, Ok(7), &execs), Ok(7));
        let got = negative(&front, &options, 2, Err(LookupError::NotFound), &execs);
        assert_eq!(got, Ok(7), "{who}");
        assert_eq!(ran(), 3, "{who}");
        // Fail-safe still holds for errors that are not cached: an expired value is served.
        assert!(front.expire("find", 2).unwrap());
        let got = negative(&front, &options, 2, Err(LookupError::Timeout), &execs);
        assert_eq!(got, Ok(7), "{who}: the fallback");
        if let Store::Redis(server) = &*store {
            // The negative entry lives negative_ttl; the value (expired since) was written
            // for the entry TTL, whose expiry is now its expire time.
            let ttls = redis_ttls(server, front.name());
            assert_eq!(ttls.len(), 2, "{who}");
            assert!(ttls.contains(&10_000), "{who}: {ttls:?}");
            assert!(ttls.iter().all(|ms| *ms <= 10_000), "{who}: {ttls:?}");
        }
        // Without a negative_ttl: a configuration error, nothing runs.
        let before = ran();
        let err = match &front {
            crate::support::Front::Blocking(c) => c
                .try_get_or_compute_negative(
                    &CallOptions::new(),
                    "find",
                    &(3,),
                    |_| true,
                    || Ok::<u64, LookupError>(1),
                )
                .unwrap_err(),
            crate::support::Front::Async(c, rt) => rt
                .block_on(c.try_get_or_compute_negative(
                    &CallOptions::new(),
                    "find",
                    &(3,),
                    |_| true,
                    || async { Ok::<u64, LookupError>(1) },
                ))
                .unwrap_err(),
        };
        assert_eq!(err.kind(), ErrorKind::Config, "{who}");
        assert_eq!(ran(), before);
    }
}

#[test]
fn a_negative_entry_expires_after_negative_ttl() {
    let clock = Arc::new(ManualClock::new());
    let cache = Cache::builder(unique_name())
        .memory()
        .clock(clock.clone())
        .build_blocking()
        .unwrap();
    let options = CallOptions::new().negative_ttl(Duration::from_secs(10));
    let find = |answer: Result<u64, LookupError>| {
        cache
            .try_get_or_compute_negative(
                &options,
                "f",
                &1,
                |e| *e == LookupError::NotFound,
                || answer,
            )
            .unwrap()
    };
    assert_eq!(find(Err(LookupError::NotFound)), Err(LookupError::NotFound));
    clock.advance(Duration::from_secs(9));
    assert_eq!(find(Ok(1)), Err(LookupError::NotFound));
    clock.advance(Duration::from_secs(2));
    assert_eq!(find(Ok(1)), Ok(1), "the negative entry is gone after 10 s");
    clock.advance(Duration::from_secs(3600));
    assert_eq!(find(Ok(2)), Ok(1), "a value has no entry TTL here");
}

/// Red team: the blocking front-end called from inside a tokio runtime (either flavour), on
/// both stores, with a background refresh, a batch and a near cache: values, no panic.
#[test]
fn the_blocking_front_end_works_inside_a_tokio_runtime() {
    let server = RedisServer::spawn();
    for multi in [false, true] {
        let rt = if multi {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        for redis in [false, true] {
            rt.block_on(async {
                let b = Cache::builder(unique_name()).refresh_after(Duration::from_millis(1));
                let b = if redis {
                    b.redis(server.url()).near_cache(10)
                } else {
                    b.memory()
                };
                let cache = b.build_blocking().unwrap();
                for _ in 0..3 {
                    assert_eq!(cache.get_or_compute("f", &(1u64,), || 10u64).unwrap(), 10);
                    assert_eq!(
                        cache.get_or_compute_owned("g", &(1u64,), || 20u64).unwrap(),
                        20
                    );
                    let many = cache
                        .get_or_compute_many("h", &[1u64, 2, 1], |xs: Vec<u64>| {
                            xs.iter().map(|x| x * 3).collect::<Vec<u64>>()
                        })
                        .unwrap();
                    assert_eq!(many, [3, 6, 3]);
                    std::thread::sleep(Duration::from_millis(2));
                }
                cache.put("f", &(2u64,), &5u64).unwrap();
                cache.expire("f", &(2u64,)).unwrap();
                cache.invalidate_tag("t").unwrap();
                cache.purge().unwrap();
                drop(cache);
            });
        }
    }
}

/// Red team: function names that look like key syntax, are empty, or are long never share
/// entries, in either layout.
#[test]
fn odd_function_names_never_share_entries() {
    let long = "x".repeat(10_000);
    let names: Vec<&str> = vec![
        "", " ", "a", "a ", "{a}", "{", "}", "*", "?", "a:0", "a:1", "a\n", "a\0", "é", "e\u{301}",
        "a#b", "a@v1", &long,
    ];
    for layout in [fncache::Layout::Shared, fncache::Layout::PerFunction] {
        for (store, front) in all_fronts(|b| b.layout(layout).prefix("p{x}*?:")) {
            let who = describe(&store, &front);
            for (i, name) in names.iter().enumerate() {
                let v = front
                    .call_with(&CallOptions::new(), name, 1, || i as u64)
                    .unwrap();
                assert_eq!(v, i as u64, "{who} {layout:?}: {name:?}");
            }
            for (i, name) in names.iter().enumerate() {
                let v = front
                    .call_with(&CallOptions::new(), name, 1, || 9999u64)
                    .unwrap();
                assert_eq!(v, i as u64, "{who} {layout:?}: {name:?} read back");
            }
            if layout == fncache::Layout::Shared {
                continue;
            }
            front.purge_function("a").unwrap();
            let v = front
                .call_with(&CallOptions::new(), "a ", 1, || 9999u64)
                .unwrap();
            assert_eq!(v, 3, "{who} {layout:?}: purging `a` spared `a `");
        }
    }
}

/// Red team: settings at their extremes either are refused as configuration errors or work:
/// never a panic, never a wrong value.
#[test]
fn extreme_settings_are_refused_or_work() {
    let server = RedisServer::spawn();
    type Setting = fn(fncache::Builder) -> fncache::Builder;
    let settings: Vec<(&str, Setting)> = vec![
        ("maxsize 0", |b| b.maxsize(0)),
        ("maxsize max", |b| b.maxsize(usize::MAX)),
        ("ttl max", |b| b.ttl(Duration::MAX)),
        ("touch_batch max", |b| b.touch_batch(Duration::MAX)),
        ("entry_ttl max + jitter", |b| {
            b.entry_ttl(Duration::MAX)
                .ttl_jitter(Duration::MAX)
                .entry_ttl_jitter(1.0)
        }),
        ("refresh_after max", |b| b.refresh_after(Duration::MAX)),
        ("max_stale max", |b| {
            b.entry_ttl(Duration::from_secs(1)).max_stale(Duration::MAX)
        }),
        ("lock_timeout max", |b| b.lock_timeout(Duration::MAX)),
        ("op_timeout max", |b| b.op_timeout(Duration::MAX)),
        ("near 1", |b| b.near_cache(1)),
        ("near 0", |b| b.near_cache(0)),
        ("near max", |b| {
            b.near_cache(usize::MAX).near_cache_ttl(Duration::MAX)
        }),
        ("tiny", |b| {
            b.entry_ttl(Duration::from_nanos(1))
                .refresh_after(Duration::from_nanos(1))
                .max_stale(Duration::from_nanos(1))
                .ttl(Duration::from_nanos(1))
        }),
        ("tlfu 1", |b| b.policy(Policy::TinyLfu).maxsize(1)),
        ("tlfu max", |b| {
            b.policy(Policy::TinyLfu).maxsize(usize::MAX)
        }),
    ];
    for (what, setting) in settings {
        for redis in [false, true] {
            let b = Cache::builder(unique_name());
            let b = if redis {
                b.redis(server.url())
            } else {
                b.memory()
            };
            let cache = match setting(b).build_blocking() {
                Ok(cache) => cache,
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Config, "{what} redis {redis}: {e}");
                    continue;
                }
            };
            for round in 0..3 {
                for x in 0..4u64 {
                    let v = cache.get_or_compute("f", &(x,), || x * 10).unwrap();
                    assert_eq!(v, x * 10, "{what} redis {redis} round {round}");
                }
                let many = cache
                    .get_or_compute_many("g", &[1u64, 2, 1], |xs: Vec<u64>| {
                        xs.iter().map(|x| x * 3).collect::<Vec<u64>>()
                    })
                    .unwrap();
                assert_eq!(many, [3, 6, 3], "{what} redis {redis}");
            }
            cache.put("f", &(9u64,), &90u64).unwrap();
            cache.expire("f", &(9u64,)).unwrap();
            cache.len().unwrap();
            cache.vacuum().unwrap();
            cache.purge().unwrap();
        }
    }
}

/// Red team: per-value durations at their extremes (`entry_ttl_from`, `refresh_after_from`).
#[test]
fn per_value_durations_at_their_extremes() {
    for extreme in [Duration::MAX, Duration::from_nanos(1), Duration::ZERO] {
        for (store, front) in all_fronts(|b| b) {
            let who = format!("{} {extreme:?}", describe(&store, &front));
            let ttl = CallOptions::new().entry_ttl_from(move |_: &u64| extreme);
            let refresh = CallOptions::new()
                .max_stale(Duration::from_secs(60))
                .refresh_after_from(move |_: &u64| extreme);
            for (i, options) in [ttl, refresh].iter().enumerate() {
                let f = format!("f{i}");
                assert_eq!(
                    front.call_with(options, &f, 1, || 10u64).unwrap(),
                    10,
                    "{who}"
                );
                let again = front.call_with(options, &f, 1, || 11u64).unwrap();
                assert!(again == 10 || again == 11, "{who}: {again}");
                assert!(front.put_with(options, &f, 2, &20u64).is_ok(), "{who}");
                let v = front.call_with(options, &f, 2, || 21u64).unwrap();
                assert!(v == 20 || v == 21, "{who}: {v}");
            }
        }
    }
}

/// Red team: values of odd types (zero-sized, empty, extreme) come back as they went in.
#[test]
fn odd_values_round_trip() {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug, Clone)]
    struct Unit;
    for (store, front) in all_fronts(|b| b) {
        let who = describe(&store, &front);
        fn twice<
            T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + Clone,
        >(
            front: &crate::front::Front,
            who: &str,
            f: &str,
            v: T,
        ) {
            let opts = CallOptions::new().cache_none(true);
            assert_eq!(
                front.call_with(&opts, f, 1, || v.clone()).unwrap(),
                v,
                "{who} {f}"
            );
            let again = front
                .call_with(&opts, f, 1, || -> T { panic!("{who} {f}: not cached") })
                .unwrap();
            assert_eq!(again, v, "{who} {f}");
        }
        twice(&front, &who, "unit", ());
        twice(&front, &who, "unit struct", Unit);
        twice(&front, &who, "units", vec![(); 1000]);
        twice(&front, &who, "none", None::<u64>);
        twice(&front, &who, "empty", String::new());
        twice(&front, &who, "u128", u128::MAX);
        twice(&front, &who, "i128", i128::MIN);
        twice(&front, &who, "char", '\u{10FFFF}');
        twice(&front, &who, "big", vec![7u8; 4 << 20]);
        twice(&front, &who, "unit result", Ok::<(), String>(()));
    }
}

/// Red team: with `wait(false)` and a default, a second caller of a cold key whose background
/// fill (started by the first caller) is still running answers the default at once too,
/// rather than waiting for that fill.
#[test]
fn a_second_cold_caller_without_wait_answers_the_default_at_once() {
    use std::sync::atomic::AtomicBool;
    let server = RedisServer::spawn();
    // The stores stay alive with their fronts (a dropped store stops its server).
    let mut stores = Vec::new();
    let mut fronts: Vec<(String, crate::front::Front)> = Vec::new();
    for (store, front) in all_fronts(|b| b.lock_timeout(Duration::from_secs(5))) {
        fronts.push((describe(&store, &front), front));
        stores.push(store);
    }
    // With a near cache, whose misses share one lookup per process.
    for front in crate::front::Front::both(|| {
        Cache::builder(unique_name())
            .redis(server.url())
            .near_cache(10)
            .lock_timeout(Duration::from_secs(5))
    }) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while front.stats().near_hits == 0 {
            front
                .call_with(&CallOptions::new(), "warm", 1, || 1u64)
                .unwrap();
            assert!(std::time::Instant::now() < deadline, "no near hit");
        }
        fronts.push((format!("near/{}", front.label()), front));
    }
    for (who, front) in fronts {
        let options = CallOptions::new().wait(false);
        let released = Arc::new(AtomicBool::new(false));
        let call = |released: &Arc<AtomicBool>| -> u64 {
            let released = Arc::clone(released);
            match &front {
                crate::front::Front::Blocking(c) => c
                    .try_get_or_compute_owned_with(
                        &options,
                        Some(0u64),
                        "slow",
                        &(1u64,),
                        move || {
                            while !released.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(5));
                            }
                            Ok::<u64, String>(10)
                        },
                    )
                    .unwrap()
                    .unwrap(),
                crate::front::Front::Async(c, rt) => rt
                    .block_on(c.try_get_or_compute_owned_with(
                        &options,
                        Some(0u64),
                        "slow",
                        &(1u64,),
                        move || async move {
                            while !released.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            Ok::<u64, String>(10)
                        },
                    ))
                    .unwrap()
                    .unwrap(),
            }
        };
        assert_eq!(
            call(&released),
            0,
            "{who}: the first cold caller gets the default"
        );
        let start = std::time::Instant::now();
        let second = call(&released);
        let waited = start.elapsed();
        released.store(true, Ordering::SeqCst);
        assert_eq!(second, 0, "{who}");
        assert!(
            waited < Duration::from_millis(2500),
            "{who}: the second caller waited {waited:?} for the first one's background fill"
        );
    }
}
