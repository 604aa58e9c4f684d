//! `refresh_after_from`: each value's entry goes stale as long after its write as the hook
//! answers for it, in place of `refresh_after`, on both stores and front-ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fncache::clock::ManualClock;
use fncache::{Cache, CallOptions};
use fncache_testing::RedisServer;

use crate::support::{Store, all_fronts, describe, unique_name};

/// Seconds as the value: a value of 0 is "stale at once".
fn options() -> fncache::TypedOptions<u64> {
    CallOptions::new().refresh_after_from(|v: &u64| Duration::from_secs(*v / 100))
}

/// The entries of a cache on `server`: (format byte, refresh_at - written_at in ms).
fn stored(server: &RedisServer, cache: &str) -> Vec<(u8, u64)> {
    let values: Vec<Vec<u8>> = redis::cmd("HVALS")
        .arg(format!("func-cache:{cache}:lru_t:1"))
        .query(&mut server.connection())
        .unwrap();
    let mut out: Vec<(u8, u64)> = values
        .iter()
        .map(|v| {
            let word = |at: usize| u64::from_be_bytes(v[at..at + 8].try_into().unwrap());
            let own = if v[0] == 2 {
                (word(26) - word(2)) / 1000
            } else {
                0
            };
            (v[0], own)
        })
        .collect();
    out.sort_unstable();
    out
}

#[test]
fn each_entry_goes_stale_by_its_own_refresh_time() {
    // The cache's own refresh-after is a millisecond: only the hook keeps 3600_00 fresh.
    for (store, front) in all_fronts(|b| b.refresh_after(Duration::from_millis(1))) {
        let who = describe(&store, &front);
        let options = options();
        assert_eq!(
            front.call_with(&options, "f", 2, || 360_000u64).unwrap(),
            360_000
        );
        assert_eq!(front.call_with(&options, "f", 1, || 0u64).unwrap(), 0);
        // 0 is stale at once (a millisecond): this caller refreshes it inline.
        let start = Instant::now();
        while front.call_with(&options, "f", 1, || 7u64).unwrap() != 7 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{who}: never stale"
            );
        }
        // Past the cache's own refresh-after, the hour of 360_000 keeps it fresh.
        assert_eq!(
            front.call_with(&options, "f", 2, || 9u64).unwrap(),
            360_000,
            "{who}"
        );
        // The put companion stores it alike.
        assert!(
            front.put_with(&options, "f", 3, &720_000u64).unwrap(),
            "{who}"
        );
        if let Store::Redis(server) = &*store {
            assert_eq!(
                stored(server, front.name()),
                // 7 (refreshed, stale at once), then an hour and two.
                [(2, 1), (2, 3_600_000), (2, 7_200_000)],
                "{who}"
            );
        }
    }
}

#[test]
fn without_the_hook_entries_keep_the_first_format() {
    let server = RedisServer::spawn();
    let cache = Cache::builder(unique_name())
        .redis(server.url())
        .refresh_after(Duration::from_secs(60))
        .build_blocking()
        .unwrap();
    cache.get_or_compute("f", &1, || 5u64).unwrap();
    cache
        .get_or_compute_with(&CallOptions::new().tags(["t"]), "f", &2, || 6u64)
        .unwrap();
    assert_eq!(stored(&server, cache.name()), [(1, 0), (1, 0)]);
}

#[test]
fn the_embedded_store_goes_stale_at_the_entrys_time_by_its_clock() {
    let clock = Arc::new(ManualClock::new());
    let cache = Cache::builder(unique_name())
        .memory()
        .clock(clock.clone())
        .refresh_after(Duration::from_secs(1))
        .build_blocking()
        .unwrap();
    let options = options();
    // 1000 / 100: ten seconds.
    cache
        .get_or_compute_with(&options, "f", &1, || 1000u64)
        .unwrap();
    clock.advance(Duration::from_secs(5));
    assert_eq!(
        cache
            .get_or_compute_with(&options, "f", &1, || 1u64)
            .unwrap(),
        1000,
        "fresh past the cache's refresh_after"
    );
    // (The put came a little after the lookup on the store's op clock.)
    clock.advance(Duration::from_secs(5) + Duration::from_millis(1));
    assert_eq!(
        cache
            .get_or_compute_with(&options, "f", &1, || 2u64)
            .unwrap(),
        2,
        "stale at ten seconds: refreshed inline"
    );
    // Soft invalidation still expires an entry with a refresh time of its own.
    cache
        .get_or_compute_with(&options, "g", &1, || 1000u64)
        .unwrap();
    assert!(cache.expire("g", &1).unwrap());
    assert_eq!(
        cache
            .get_or_compute_with(&options, "g", &1, || 3u64)
            .unwrap(),
        3
    );
}

#[test]
fn negative_caching_keeps_the_hook_for_values() {
    for (store, front) in all_fronts(|b| b) {
        let who = describe(&store, &front);
        let options = CallOptions::new()
            .negative_ttl(Duration::from_secs(60))
            .refresh_after_from(|v: &u64| Duration::from_secs(*v));
        let server = store.server();
        let value: Result<Result<u64, String>, fncache::Error> = match &front {
            crate::front::Front::Blocking(c) => {
                c.try_get_or_compute_negative(&options, "n", &(1,), |_| true, || Ok(100))
            }
            crate::front::Front::Async(c, rt) => rt.block_on(c.try_get_or_compute_negative(
                &options,
                "n",
                &(1,),
                |_| true,
                || async { Ok(100) },
            )),
        };
        assert_eq!(value.unwrap(), Ok(100), "{who}");
        if let Some(server) = server {
            assert_eq!(stored(server, front.name()), [(2, 100_000)], "{who}");
        }
    }
}

#[test]
fn under_touch_batch_an_entrys_own_refresh_time_still_counts() {
    // Under touch_batch a lookup first reads the entry with HGET, and takes an entry that never
    // expires as a fresh hit without the script: one with a refresh time of its own must not be.
    // No structure TTL: no sliding renewal sends the script now and then either.
    for (store, front) in all_fronts(|b| b.touch_batch(Duration::from_secs(1)).no_ttl()) {
        let Some(_) = store.server() else { continue };
        let who = describe(&store, &front);
        let options = options();
        assert_eq!(front.call_with(&options, "t", 1, || 0u64).unwrap(), 0);
        let start = Instant::now();
        while front.call_with(&options, "t", 1, || 7u64).unwrap() != 7 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{who}: never stale"
            );
        }
    }
}
