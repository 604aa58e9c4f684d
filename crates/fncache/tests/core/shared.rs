//! Shared per-function counters and the registry: every process adds its counters to ones in
//! Redis, in batches off the hot path and when its cache is dropped; `shared_stats()` reads
//! the totals. Two caches with one name on one server are two processes here.

use fncache::{Cache, Layout, blocking};
use fncache_testing::RedisServer;
use redis::Commands;

use crate::front::{runtime, unique_name};

fn calls(cache: &blocking::Cache, function: &str, args: &[u64]) {
    for &x in args {
        cache.get_or_compute(function, &(x,), || x * 2).unwrap();
    }
}

#[test]
fn totals_add_up_across_processes_and_a_dropped_cache_sends_its_last_batch() {
    let server = RedisServer::spawn();
    let name = unique_name();
    let make = || {
        Cache::builder(&name)
            .redis(server.url())
            .build_blocking()
            .unwrap()
    };
    let (a, b, c) = (make(), make(), make());
    calls(&a, "f", &[1, 1, 1]); // a miss, then two hits
    calls(&b, "f", &[1, 2]); // a hit, a miss
    calls(&b, "g", &[7]);
    calls(&c, "g", &[7, 8]);
    drop(c); // its last batch goes now

    let from_a = a.shared_stats().unwrap();
    let shared = b.shared_stats().unwrap();
    assert_eq!(shared.total.calls, 8, "{shared:?}");
    let f = shared.for_function("f").unwrap();
    assert_eq!((f.calls, f.hits, f.misses, f.writes), (5, 3, 2, 2));
    let g = shared.for_function("g").unwrap();
    assert_eq!((g.calls, g.hits, g.misses), (3, 1, 2));
    // `a` read after its own and c's last batch (b's batches may have landed or not).
    assert!(from_a.total.calls >= 5, "{from_a:?}");
    assert_eq!(shared.for_function("h"), None);
    // Reading again counts nothing twice.
    assert_eq!(a.shared_stats().unwrap(), shared);
}

#[test]
fn the_async_front_end_shares_its_counters_too() {
    let server = RedisServer::spawn();
    let name = unique_name();
    let rt = runtime();
    let a = Cache::builder(&name).redis(server.url()).build().unwrap();
    let b = Cache::builder(&name)
        .redis(server.url())
        .build_blocking()
        .unwrap();
    rt.block_on(async {
        for x in [1u64, 1, 2] {
            a.get_or_compute("f", &(x,), || async move { x })
                .await
                .unwrap();
        }
    });
    calls(&b, "f", &[1]);
    rt.block_on(a.shared_stats()).unwrap();
    let shared = b.shared_stats().unwrap();
    let f = shared.for_function("f").unwrap();
    assert_eq!((f.calls, f.hits, f.misses), (4, 2, 2));
}

#[test]
fn the_registry_names_each_function_and_survives_purge_and_scans() {
    let server = RedisServer::spawn();
    for layout in [Layout::Shared, Layout::PerFunction] {
        let name = unique_name();
        let cache = Cache::builder(&name)
            .layout(layout)
            .redis(server.url())
            .build_blocking()
            .unwrap();
        calls(&cache, "app::load@v2#0123456789abcdef", &[1, 2]);
        calls(&cache, "plain", &[1]);
        cache.shared_stats().unwrap();

        let tag = if layout == Layout::Shared {
            "lru_t"
        } else {
            "lru_t-m"
        };
        let registry = format!("func-cache:{name}:{tag}:registry");
        let mut con = server.connection();
        let record: String = con.hget(&registry, "cache").unwrap();
        let record: serde_json::Value = serde_json::from_str(&record).unwrap();
        assert_eq!(record["name"], name.as_str());
        let function: String = con
            .hget(&registry, "fn:app::load@v2#0123456789abcdef")
            .unwrap();
        let function: serde_json::Value = serde_json::from_str(&function).unwrap();
        assert_eq!(function["path"], "app::load");
        assert_eq!(function["version"], 2);
        assert_eq!(function["code_hash"], "0123456789abcdef");
        assert_eq!(function["codec"], "msgpack");
        let ttl: i64 = con.pttl(&registry).unwrap();
        assert!(
            ttl > 0,
            "the registry expires when no process uses the cache"
        );

        // Neither counted nor purged as a structure, in any layout.
        assert_eq!(cache.len().unwrap(), 3, "{layout:?}");
        assert_eq!(cache.vacuum().unwrap(), 0);
        assert_eq!(cache.purge().unwrap(), 3);
        let exists: bool = con.exists(&registry).unwrap();
        assert!(exists, "{layout:?}: purge keeps the registry");
        let stats_key = format!("func-cache:{name}:{tag}:stats");
        let exists: bool = con.exists(&stats_key).unwrap();
        assert!(exists, "{layout:?}: purge keeps the shared counters");
    }
}

#[test]
fn a_store_that_is_down_fails_no_call_and_shared_stats_says_so() {
    let mut server = RedisServer::spawn();
    let url = server.url();
    server.stop();
    let cache = Cache::builder(unique_name())
        .redis(url)
        .build_blocking()
        .unwrap();
    calls(&cache, "f", &[1, 1]);
    assert_eq!(cache.stats().calls, 2);
    assert!(cache.shared_stats().is_err());
}

#[test]
fn a_cache_with_sharing_off_sends_nothing_but_still_reads() {
    let server = RedisServer::spawn();
    let name = unique_name();
    let on = Cache::builder(&name)
        .redis(server.url())
        .build_blocking()
        .unwrap();
    let off = Cache::builder(&name)
        .redis(server.url())
        .shared_stats(false)
        .build_blocking()
        .unwrap();
    calls(&off, "f", &[1, 2]);
    calls(&on, "f", &[1]);
    let read = off.shared_stats().unwrap();
    assert_eq!(read.total.calls, 0, "nothing sent yet: {read:?}");
    drop(off);
    let shared = on.shared_stats().unwrap();
    assert_eq!(
        shared.total.calls, 1,
        "only the sharing cache counts: {shared:?}"
    );
    assert_eq!(off_keys(&server), 2, "the registry and counters of `on`");
}

fn off_keys(server: &RedisServer) -> usize {
    let keys: Vec<String> = server.connection().keys("*:registry").unwrap();
    let stats: Vec<String> = server.connection().keys("*:stats").unwrap();
    keys.len() + stats.len()
}

#[test]
fn an_async_cache_dropped_in_its_runtime_sends_its_last_batch_from_a_task() {
    let server = RedisServer::spawn();
    let name = unique_name();
    let reader = Cache::builder(&name)
        .redis(server.url())
        .build_blocking()
        .unwrap();
    let rt = runtime();
    rt.block_on(async {
        let cache = Cache::builder(&name).redis(server.url()).build().unwrap();
        for x in [1u64, 1, 1] {
            cache
                .get_or_compute("f", &(x,), || async move { x })
                .await
                .unwrap();
        }
        drop(cache); // inside the runtime: a task sends the batch
        // The task runs when this one yields: wait for its batch (bounded), not for a time.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            tokio::task::yield_now().await;
            let calls = reader.shared_stats().unwrap().total.calls;
            if calls == 3 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the batch never came: {calls}"
            );
        }
    });
}
