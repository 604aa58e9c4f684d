//! Per-call options (entry TTL, codec, `None` rule) and purging one function, on every store
//! and front-end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fncache::clock::ManualClock;
use fncache::{Cache, CallOptions, Codec, ErrorKind, Layout, Policy};
use fncache_testing::RedisServer;

use crate::support::{all_fronts, describe};

#[test]
fn purge_function_removes_exactly_one_function_in_the_per_function_layout() {
    for (store, front) in all_fronts(|b| b.layout(Layout::PerFunction)) {
        let who = describe(&store, &front);
        let execs = AtomicU64::new(0);
        for x in 0..3 {
            front.call("f", x, &execs);
        }
        for x in 0..2 {
            front.call("g", x, &execs);
        }
        assert_eq!(front.purge_function("f").unwrap(), 3, "{who}");
        assert!(!front.contains("f", 0), "{who}");
        assert!(front.contains("g", 0) && front.contains("g", 1), "{who}");
        assert_eq!(front.len(), 2, "{who}");
        assert_eq!(front.purge_function("f").unwrap(), 0, "{who}: nothing left");
        assert_eq!(front.purge_function("never").unwrap(), 0, "{who}");
        if let Some(server) = store.server() {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("*-m:f#*")
                .query(&mut server.connection())
                .unwrap();
            assert!(keys.is_empty(), "{who}: left behind {keys:?}");
        }
    }
}

#[test]
fn purge_function_in_the_shared_layout_is_a_config_error_that_removes_nothing() {
    for (store, front) in all_fronts(|b| b.layout(Layout::Shared)) {
        let who = describe(&store, &front);
        let execs = AtomicU64::new(0);
        front.call("f", 1, &execs);
        let err = front.purge_function("f").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{who}");
        assert!(err.to_string().contains("PerFunction"), "{who}: {err}");
        assert!(front.contains("f", 1), "{who}");
    }
}

#[test]
fn none_is_cached_unless_the_options_say_not_to() {
    for (store, front) in all_fronts(|b| b) {
        let who = describe(&store, &front);
        let execs = AtomicU64::new(0);
        let find = |options: &CallOptions, x: u64, found: Option<u64>| {
            front
                .call_with(options, "find", x, || {
                    execs.fetch_add(1, Ordering::SeqCst);
                    found
                })
                .unwrap()
        };
        let keep_none = CallOptions::new();
        assert_eq!(find(&keep_none, 1, None), None);
        assert_eq!(find(&keep_none, 1, Some(9)), None, "{who}: None is a hit");
        assert_eq!(execs.load(Ordering::SeqCst), 1, "{who}");

        let skip_none = CallOptions::new().cache_none(false);
        assert_eq!(find(&skip_none, 2, None), None);
        assert!(!front.contains("find", 2), "{who}: None was not stored");
        assert_eq!(
            find(&skip_none, 2, Some(4)),
            Some(4),
            "{who}: computed again"
        );
        assert_eq!(
            find(&skip_none, 2, Some(5)),
            Some(4),
            "{who}: Some is cached"
        );
        assert_eq!(execs.load(Ordering::SeqCst), 3, "{who}");
        assert_eq!(front.stats().errors, 0, "{who}");
    }
}

#[test]
fn a_per_call_codec_is_written_and_required_when_reading() {
    for (store, front) in all_fronts(|b| b) {
        let who = describe(&store, &front);
        let json = CallOptions::new().codec(Codec::Json);
        assert_eq!(front.call_with(&json, "f", 1, || 7u32).unwrap(), 7);
        assert_eq!(front.call_with(&json, "f", 1, || 8u32).unwrap(), 7, "{who}");
        if let Some(server) = store.server() {
            let values: Vec<Vec<u8>> = redis::cmd("HVALS")
                .arg(format!("func-cache:{}:lru_t:1", front.name()))
                .query(&mut server.connection())
                .unwrap();
            assert_eq!(values.len(), 1, "{who}");
            assert_eq!(values[0][1], 2, "{who}: codec id of JSON");
            assert_eq!(
                &values[0][26..],
                b"7",
                "{who}: a JSON payload after the 26-byte header"
            );
        }
        // The cache's default codec (MessagePack) does not read the JSON entry: a miss,
        // counted as an error, recomputed and overwritten.
        let default = CallOptions::new();
        assert_eq!(
            front.call_with(&default, "f", 1, || 9u32).unwrap(),
            9,
            "{who}"
        );
        assert_eq!(front.stats().errors, 1, "{who}");
        assert_eq!(
            front.call_with(&default, "f", 1, || 10u32).unwrap(),
            9,
            "{who}"
        );
    }
}

#[test]
fn a_per_call_entry_ttl_overrides_the_cache_default_on_the_memory_store() {
    let clock = Arc::new(ManualClock::new());
    let cache = Cache::builder("per-call-ttl")
        .entry_ttl(Duration::from_secs(100))
        .clock(clock.clone())
        .build_blocking()
        .unwrap();
    let short = CallOptions::new().entry_ttl(Duration::from_secs(5));
    cache.get_or_compute_with(&short, "f", &1, || 1).unwrap();
    cache.get_or_compute("f", &2, || 2).unwrap();
    clock.advance(Duration::from_secs(6));
    assert!(!cache.contains("f", &1).unwrap(), "the per-call TTL passed");
    assert!(cache.contains("f", &2).unwrap(), "the cache's TTL did not");
}

#[test]
fn a_per_call_entry_ttl_overrides_the_cache_default_on_redis() {
    let server = RedisServer::spawn();
    let cache = Cache::builder("per-call-ttl")
        .policy(Policy::Lru)
        .redis(server.url())
        .build_blocking()
        .unwrap();
    let short = CallOptions::new().entry_ttl(Duration::from_millis(150));
    cache.get_or_compute_with(&short, "f", &1, || 1).unwrap();
    cache.get_or_compute("f", &2, || 2).unwrap();
    let with_expiry: u64 = redis::cmd("ZCARD")
        .arg("func-cache:per-call-ttl:lru:2")
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(with_expiry, 1, "only the per-call entry has an expiry time");
    // Wait for server time to pass the entry TTL (this is what is under test).
    std::thread::sleep(Duration::from_millis(200));
    assert!(!cache.contains("f", &1).unwrap(), "the per-call TTL passed");
    assert!(cache.contains("f", &2).unwrap(), "no TTL by default");
}

#[test]
fn a_zero_per_call_entry_ttl_skips_the_cache_or_is_an_error_when_strict() {
    for strict in [false, true] {
        for (store, front) in all_fronts(|b| b.strict(strict)) {
            let who = format!("strict={strict} {}", describe(&store, &front));
            let zero = CallOptions::new().entry_ttl(Duration::ZERO);
            let result = front.call_with(&zero, "f", 1, || 1u8);
            if strict {
                assert_eq!(result.unwrap_err().kind(), ErrorKind::Config, "{who}");
            } else {
                assert_eq!(result.unwrap(), 1, "{who}");
                assert_eq!(front.stats().errors, 1, "{who}");
            }
            assert!(!front.contains("f", 1), "{who}: nothing stored");
        }
    }
}
