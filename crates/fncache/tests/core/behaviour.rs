//! Calls, modes, stats, sizes, purge and configuration errors.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fncache::{Cache, ErrorKind, Layout, Mode, Policy, Stats, blocking};

use crate::support::{all_fronts, describe};

fn stats(calls: u64, hits: u64, misses: u64, execs: u64, writes: u64) -> (u64, u64, u64, u64, u64) {
    (calls, hits, misses, execs, writes)
}

fn key(s: Stats) -> (u64, u64, u64, u64, u64) {
    (s.calls, s.hits, s.misses, s.execs, s.writes)
}

#[test]
fn a_repeat_is_a_hit_and_distinct_arguments_are_distinct_entries() {
    for (store, front) in all_fronts(|b| b) {
        let who = describe(&store, &front);
        let execs = AtomicU64::new(0);
        assert_eq!(front.call("f", 1, &execs), 10);
        assert_eq!(
            key(front.stats()),
            stats(1, 0, 1, 1, 1),
            "{who}: first call"
        );
        assert_eq!(front.call("f", 1, &execs), 10);
        assert_eq!(key(front.stats()), stats(2, 1, 1, 1, 1), "{who}: repeat");
        front.call("f", 2, &execs);
        front.call("g", 1, &execs);
        assert_eq!(execs.load(Ordering::SeqCst), 3, "{who}");
        assert_eq!(front.len(), 3, "{who}");
        assert_eq!(
            key(front.stats_for("f").unwrap()),
            stats(3, 1, 2, 2, 2),
            "{who}: stats_for f"
        );
        assert_eq!(
            key(front.stats_for("g").unwrap()),
            stats(1, 0, 1, 1, 1),
            "{who}: stats_for g"
        );
        assert_eq!(front.stats_for("never"), None, "{who}: unknown");
    }
}

#[test]
fn purge_empties_and_counts_in_both_layouts() {
    for layout in [Layout::Shared, Layout::PerFunction] {
        for (store, front) in all_fronts(|b| b.layout(layout)) {
            let who = format!("{layout:?} {}", describe(&store, &front));
            let execs = AtomicU64::new(0);
            for function in ["a", "b", "c"] {
                for x in 0..5 {
                    front.call(function, x, &execs);
                }
            }
            assert_eq!(front.len(), 15, "{who}");
            assert_eq!(front.purge(), 15, "{who}");
            assert_eq!(front.len(), 0, "{who}");
            assert!(!front.contains("a", 0), "{who}");
            assert_eq!(front.purge(), 0, "{who}");
            if let Some(server) = store.server() {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg("*")
                    .query(&mut server.connection())
                    .unwrap();
                // The registry and shared counters describe functions, not entries: purge
                // keeps them.
                let keys: Vec<String> = keys
                    .into_iter()
                    .filter(|k: &String| !k.ends_with(":registry") && !k.ends_with(":stats"))
                    .collect();
                assert!(keys.is_empty(), "{who}: left behind {keys:?}");
            }
        }
    }
}

#[test]
fn purge_spans_many_scan_batches() {
    let server = fncache_testing::RedisServer::spawn();
    let cache = Cache::builder("many")
        .layout(Layout::PerFunction)
        .redis(server.url())
        .build_blocking()
        .unwrap();
    for f in 0..1200 {
        cache.get_or_compute(&format!("f{f}"), &(), || f).unwrap();
    }
    assert_eq!(cache.len().unwrap(), 1200);
    assert_eq!(cache.purge().unwrap(), 1200);
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query(&mut server.connection())
        .unwrap();
    // The registry and shared counters describe functions, not entries: purge keeps them.
    let left: Vec<String> = left
        .into_iter()
        .filter(|k: &String| !k.ends_with(":registry") && !k.ends_with(":stats"))
        .collect();
    assert_eq!(left, Vec::<String>::new());
}

#[test]
fn purge_leaves_other_caches_alone() {
    let server = fncache_testing::RedisServer::spawn();
    let build = |name: &str| {
        Cache::builder(name)
            .layout(Layout::PerFunction)
            .redis(server.url())
            .build_blocking()
            .unwrap()
    };
    let (mine, other) = (build("mine"), build("mine-too"));
    mine.get_or_compute("f", &1, || 1).unwrap();
    other.get_or_compute("f", &1, || 1).unwrap();
    assert_eq!(mine.purge().unwrap(), 1);
    assert_eq!(other.len().unwrap(), 1);
}

#[test]
fn size_stays_at_maxsize_under_continuous_overflow() {
    for policy in Policy::ALL {
        for layout in [Layout::Shared, Layout::PerFunction] {
            for (store, front) in all_fronts(|b| b.policy(policy).layout(layout).maxsize(8)) {
                let who = format!("{policy:?} {layout:?} {}", describe(&store, &front));
                let execs = AtomicU64::new(0);
                for x in 0..40 {
                    front.call("f", x, &execs);
                    front.call("g", x, &execs);
                }
                let want = if layout == Layout::Shared { 8 } else { 16 };
                assert_eq!(front.len(), want, "{who}");
                if let Some(server) = store.server() {
                    let mut con = server.connection();
                    let keys: Vec<String> = redis::cmd("KEYS").arg("*:1").query(&mut con).unwrap();
                    for k in keys {
                        let n: u64 = redis::cmd("HLEN").arg(&k).query(&mut con).unwrap();
                        assert_eq!(n, 8, "{who}: {k}");
                    }
                }
            }
        }
    }
}

#[test]
fn modes_read_write_and_exec() {
    for (store, front) in all_fronts(|b| b) {
        let who = describe(&store, &front);
        let execs = AtomicU64::new(0);
        let n = || execs.load(Ordering::SeqCst);

        // BYPASS: computes every time, stores nothing.
        front.call_in_mode(Mode::BYPASS, "f", 1, &execs).unwrap();
        front.call_in_mode(Mode::BYPASS, "f", 1, &execs).unwrap();
        assert_eq!(n(), 2, "{who}: bypass computes");
        assert!(!front.contains("f", 1), "{who}: bypass stores nothing");

        // READ_ONLY: a miss computes but does not store.
        front.call_in_mode(Mode::READ_ONLY, "f", 1, &execs).unwrap();
        assert_eq!(n(), 3);
        assert!(!front.contains("f", 1), "{who}: read-only stores nothing");

        // Default stores; READ_ONLY then reads it.
        front.call("f", 1, &execs);
        assert_eq!(n(), 4);
        front.call_in_mode(Mode::READ_ONLY, "f", 1, &execs).unwrap();
        assert_eq!(n(), 4, "{who}: read-only reads");

        // WRITE_ONLY: always computes and overwrites.
        front
            .call_in_mode(Mode::WRITE_ONLY, "f", 1, &execs)
            .unwrap();
        assert_eq!(n(), 5, "{who}: write-only computes");
        front
            .call_in_mode(Mode::WRITE_ONLY, "f", 2, &execs)
            .unwrap();
        assert!(front.contains("f", 2), "{who}: write-only stores");

        // read without exec: a hit is served, a miss is an error of kind miss.
        let no_exec = Mode {
            read: true,
            write: true,
            exec: false,
        };
        assert_eq!(front.call_in_mode(no_exec, "f", 1, &execs).unwrap(), 10);
        let err = front.call_in_mode(no_exec, "f", 99, &execs).unwrap_err();
        assert!(err.is_miss(), "{who}: {err}");
        assert_eq!(err.kind(), ErrorKind::Miss);
        assert_eq!(n(), 6, "{who}: exec=false never computes");

        // The mode is restored after the scope.
        front.call("f", 99, &execs);
        assert_eq!(n(), 7, "{who}: default mode after the scope");
    }
}

#[test]
fn blocking_modes_are_per_thread_and_per_cache() {
    let a = Cache::builder("a").build_blocking().unwrap();
    let b = Cache::builder("b").build_blocking().unwrap();
    a.with_mode(Mode::BYPASS, || {
        b.get_or_compute("f", &1, || 1).unwrap();
        a.get_or_compute("f", &1, || 1).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| a.get_or_compute("g", &1, || 1).unwrap());
        });
    });
    assert!(b.contains("f", &1).unwrap(), "another cache keeps its mode");
    assert!(!a.contains("f", &1).unwrap(), "bypassed");
    assert!(
        a.contains("g", &1).unwrap(),
        "another thread keeps the default mode"
    );
}

#[tokio::test]
async fn async_modes_and_collectors_are_per_task() {
    let cache = Cache::builder("tasks").build().unwrap();
    let (_, inside) = cache
        .collect_stats(cache.with_mode(Mode::BYPASS, async {
            cache.get_or_compute("f", &1, || async { 1 }).await.unwrap();
            let other = cache.clone();
            tokio::spawn(
                async move { other.get_or_compute("g", &1, || async { 1 }).await.unwrap() },
            )
            .await
            .unwrap();
        }))
        .await;
    assert_eq!((inside.calls, inside.execs, inside.writes), (1, 1, 0));
    assert!(!cache.contains("f", &1).await.unwrap());
    assert!(
        cache.contains("g", &1).await.unwrap(),
        "a spawned task has the default mode"
    );
    assert_eq!(cache.stats().calls, 2);
}

#[test]
fn collect_stats_counts_only_the_scope() {
    let cache = Cache::builder("scoped").build_blocking().unwrap();
    cache.get_or_compute("f", &1, || 1).unwrap();
    let (value, scoped) = cache.collect_stats(|| {
        cache.get_or_compute("f", &1, || 1).unwrap();
        let (_, inner) = cache.collect_stats(|| cache.get_or_compute("f", &2, || 2).unwrap());
        assert_eq!((inner.calls, inner.misses), (1, 1));
        7
    });
    assert_eq!(value, 7);
    assert_eq!((scoped.calls, scoped.hits, scoped.misses), (2, 1, 1));
    assert_eq!(cache.stats().calls, 3);
}

#[test]
fn errors_pass_through_and_are_never_cached() {
    for (store, front) in all_fronts(|b| b) {
        let who = describe(&store, &front);
        let run = |fail: bool| -> Result<u64, String> {
            let compute = || {
                if fail {
                    Err("boom".to_owned())
                } else {
                    Ok(5u64)
                }
            };
            match &front {
                crate::support::Front::Blocking(c) => {
                    c.try_get_or_compute("t", &(), compute).unwrap()
                }
                crate::support::Front::Async(c, rt) => rt
                    .block_on(c.try_get_or_compute("t", &(), || async { compute() }))
                    .unwrap(),
            }
        };
        assert_eq!(run(true), Err("boom".to_owned()), "{who}");
        assert_eq!(front.stats().writes, 0, "{who}: an Err is not stored");
        assert_eq!(run(false), Ok(5), "{who}");
        assert_eq!(run(true), Ok(5), "{who}: now cached");
    }
}

#[test]
fn none_and_unit_are_cached_values() {
    let server = fncache_testing::RedisServer::spawn();
    for cache in [
        Cache::builder("none").build_blocking().unwrap(),
        Cache::builder("none")
            .redis(server.url())
            .build_blocking()
            .unwrap(),
    ] {
        let execs = AtomicU64::new(0);
        for _ in 0..3 {
            let v: Option<u32> = cache
                .get_or_compute("maybe", &(1,), || {
                    execs.fetch_add(1, Ordering::SeqCst);
                    None
                })
                .unwrap();
            assert_eq!(v, None);
            cache
                .get_or_compute("unit", &(1,), || {
                    execs.fetch_add(1, Ordering::SeqCst);
                })
                .unwrap();
        }
        assert_eq!(execs.load(Ordering::SeqCst), 2, "{cache:?}");
        assert_eq!(cache.stats().hits, 4);
    }
}

#[test]
fn argument_types_make_distinct_entries() {
    let cache = Cache::builder("types").build_blocking().unwrap();
    let a: String = cache
        .get_or_compute("f", &(1u8,), || "u8".to_owned())
        .unwrap();
    let b: String = cache
        .get_or_compute("f", &("1",), || "str".to_owned())
        .unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("u8", "str"));
}

#[test]
fn contains_does_not_change_eviction_order() {
    for (store, front) in all_fronts(|b| b.policy(Policy::Lru).maxsize(3)) {
        let who = describe(&store, &front);
        let execs = AtomicU64::new(0);
        for x in 0..3 {
            front.call("f", x, &execs);
        }
        assert!(front.contains("f", 0));
        front.call("f", 3, &execs); // evicts 0: the peek did not count as a use
        assert!(!front.contains("f", 0), "{who}");
        assert!(front.contains("f", 1), "{who}");
    }
}

#[test]
fn invalidate_removes_one_entry() {
    for (store, front) in all_fronts(|b| b.layout(Layout::PerFunction)) {
        let who = describe(&store, &front);
        let execs = AtomicU64::new(0);
        front.call("f", 1, &execs);
        front.call("f", 2, &execs);
        assert!(front.invalidate("f", 1), "{who}");
        assert!(!front.invalidate("f", 1), "{who}: already gone");
        assert!(!front.contains("f", 1) && front.contains("f", 2), "{who}");
        front.call("f", 1, &execs);
        assert_eq!(
            execs.load(Ordering::SeqCst),
            3,
            "{who}: recomputed after invalidate"
        );
    }
}

#[test]
fn bad_configuration_is_an_error_not_a_panic() {
    let cases = [
        Cache::builder(""),
        Cache::builder("x").prefix(""),
        Cache::builder("x").maxsize(0),
        Cache::builder("x").ttl(Duration::ZERO),
        Cache::builder("x").entry_ttl(Duration::ZERO),
        Cache::builder("x").redis("not a url"),
        Cache::builder("x").redis("http://example.com"),
    ];
    for builder in cases {
        let described = format!("{builder:?}");
        let err = builder.clone().build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{described}: {err}");
        assert_eq!(
            builder.build_blocking().unwrap_err().kind(),
            ErrorKind::Config
        );
    }
}

#[test]
fn credentials_never_show_in_debug() {
    let builder = Cache::builder("x").redis("redis://user:hunter2@127.0.0.1:1/");
    assert!(!format!("{builder:?}").contains("hunter2"));
    let cache = builder.clone().build().unwrap();
    assert!(!format!("{cache:?}").contains("hunter2"), "{cache:?}");
    let blocking = builder.build_blocking().unwrap();
    assert!(!format!("{blocking:?}").contains("hunter2"));
    // The server does not exist: the error must not carry the password either.
    let strict = Cache::builder("x")
        .redis("redis://user:hunter2@127.0.0.1:1/")
        .strict(true)
        .build_blocking()
        .unwrap();
    let err = strict.get_or_compute("f", &1, || 1).unwrap_err();
    assert!(err.is_backend());
    assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
}

static LAZY: LazyLock<blocking::Cache> = LazyLock::new(|| {
    Cache::builder("lazy")
        .build_blocking()
        .expect("valid config")
});
static LAZY_ASYNC: LazyLock<Cache> =
    LazyLock::new(|| Cache::builder("lazy").build().expect("valid config"));

#[test]
fn caches_are_clone_send_sync_debug_and_live_in_statics() {
    fn assert_traits<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    assert_traits::<Cache>();
    assert_traits::<blocking::Cache>();
    fn assert_error<T: Send + Sync + std::fmt::Debug + std::error::Error + 'static>() {}
    assert_error::<fncache::Error>();
    assert_eq!(LAZY.get_or_compute("f", &1, || 2).unwrap(), 2);
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(
        rt.block_on(LAZY_ASYNC.get_or_compute("f", &1, || async { 3 }))
            .unwrap(),
        3
    );
}
