//! The near cache (`Builder::near_cache`): copies served with no I/O, dropped in every process
//! when their entry changes anywhere. "Process A" and "process B" are two caches of the same
//! name with connections of their own, which is what two processes look like to Redis (B, the
//! writer, has no near cache: publishing never depends on the writer's settings); the tests of
//! every kind of change and of an eviction run B as a real child process.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fncache::{Cache, CallOptions, ErrorKind, Layout, Mode, Policy, blocking};
use fncache_testing::RedisServer;

use crate::front::unique_name;

/// How soon a change in B must reach A's near cache.
const COHERENT_WITHIN: Duration = Duration::from_millis(100);
/// What A computes when its entry is gone (never a value B writes).
const RECOMPUTED: u64 = 1000;

fn builder(server: &RedisServer, name: &str) -> fncache::Builder {
    Cache::builder(name).redis(server.url())
}

fn near_a(
    server: &RedisServer,
    name: &str,
    configure: impl Fn(fncache::Builder) -> fncache::Builder,
) -> blocking::Cache {
    configure(builder(server, name).near_cache(100))
        .build_blocking()
        .unwrap()
}

/// A's read of `f(x)`: the cached value, or [`RECOMPUTED`] on a miss.
fn read(a: &blocking::Cache, x: u64) -> u64 {
    a.get_or_compute("f", &(x,), || RECOMPUTED).unwrap()
}

/// Reads until A serves `f(x)` from its near cache (its link is up and a copy was made), and
/// returns that value.
fn warm(a: &blocking::Cache, x: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = a.stats().near_hits;
        let value = read(a, x);
        if a.stats().near_hits > before {
            return value;
        }
        assert!(Instant::now() < deadline, "no near hit within 10 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Polls A until it serves `want` for `f(x)`, within `within` of now (never an old value after
/// that: checked over the next reads).
fn converges(a: &blocking::Cache, x: u64, old: u64, want: u64, within: Duration, what: &str) {
    let start = Instant::now();
    loop {
        let value = read(a, x);
        if value == want {
            break;
        }
        assert_eq!(value, old, "{what}: neither the old nor the new value");
        assert!(
            start.elapsed() < within,
            "{what}: A still served the old value {:?} after the change",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    for _ in 0..200 {
        assert_eq!(read(a, x), want, "{what}: the old value came back");
    }
}

/// A change B makes to `f(1)`.
type Change = fn(&blocking::Cache);

/// Every kind of change B makes, by name (B runs them as a child process, see
/// [`near_child_writer`]), and the value A must serve after it.
const CHANGES: [(&str, Change, u64); 7] = [
    (
        "put",
        |b| {
            b.put("f", &(1u64,), &2u64).unwrap();
        },
        2,
    ),
    (
        "write-only overwrite",
        |b| {
            b.with_mode(Mode::WRITE_ONLY, || {
                b.get_or_compute("f", &(1u64,), || 3u64)
            })
            .unwrap();
        },
        3,
    ),
    (
        "invalidate",
        |b| assert!(b.invalidate("f", &(1u64,)).unwrap()),
        RECOMPUTED,
    ),
    (
        "expire",
        |b| assert!(b.expire("f", &(1u64,)).unwrap()),
        RECOMPUTED,
    ),
    ("purge", |b| assert_eq!(b.purge().unwrap(), 1), RECOMPUTED),
    (
        "purge_function",
        |b| assert_eq!(b.purge_function("f").unwrap(), 1),
        RECOMPUTED,
    ),
    (
        "invalidate_tag",
        |b| assert_eq!(b.invalidate_tag("t").unwrap(), 1),
        RECOMPUTED,
    ),
];

/// The settings both processes of a near test share, by the name the child is given.
fn shared_settings(settings: &str) -> impl Fn(fncache::Builder) -> fncache::Builder {
    let settings = settings.to_owned();
    move |b: fncache::Builder| match settings.as_str() {
        "per-function" => b.layout(Layout::PerFunction),
        // FIFO: the first entry in is the one evicted, whatever A's near hits.
        "fifo2" => b.policy(Policy::Fifo).maxsize(2),
        _ => b,
    }
}

/// Runs `change` (a name in [`CHANGES`], or `evict`: two puts into a full FIFO structure) as
/// process B: a child process of this test binary, with a cache of its own on `server`.
fn in_child_process(server: &RedisServer, name: &str, settings: &str, change: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "near::near_child_writer",
            "--exact",
            "--nocapture",
            "--quiet",
        ])
        .env("FNCACHE_NEAR_CHILD_URL", server.url())
        .env("FNCACHE_NEAR_CHILD_NAME", name)
        .env("FNCACHE_NEAR_CHILD_SETTINGS", settings)
        .env("FNCACHE_NEAR_CHILD_CHANGE", change)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{change}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The child ran its change (a test filtered out of the run says `0 passed`).
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{change}: the child did not run its change"
    );
}

/// Process B of the near tests, run as a child process by [`in_child_process`]: it does
/// nothing unless started so.
#[test]
fn near_child_writer() {
    let (Ok(url), Ok(name), Ok(settings), Ok(change)) = (
        std::env::var("FNCACHE_NEAR_CHILD_URL"),
        std::env::var("FNCACHE_NEAR_CHILD_NAME"),
        std::env::var("FNCACHE_NEAR_CHILD_SETTINGS"),
        std::env::var("FNCACHE_NEAR_CHILD_CHANGE"),
    ) else {
        return;
    };
    let b = shared_settings(&settings)(Cache::builder(name).redis(url))
        .build_blocking()
        .unwrap();
    if change == "evict" {
        b.put("f", &(2u64,), &2u64).unwrap();
        b.put("f", &(3u64,), &3u64).unwrap(); // evicts f(1)
        assert_eq!(b.stats().evictions, 1);
        return;
    }
    let (_, change, _) = CHANGES
        .iter()
        .find(|(what, ..)| *what == change)
        .expect("a known change");
    change(&b);
}

/// Every kind of change made in B, another OS process: A serves the new value (or
/// recomputes) within [`COHERENT_WITHIN`] of B's exit, and never the old one after that.
#[test]
fn every_change_in_another_process_reaches_the_near_copies() {
    let server = RedisServer::spawn();
    for (what, _, want) in CHANGES {
        let name = unique_name();
        let layout = shared_settings("per-function");
        let a = near_a(&server, &name, &layout);
        // The entry, tagged (for the tag's invalidation), written by another cache.
        let b = layout(builder(&server, &name)).build_blocking().unwrap();
        let tagged = CallOptions::new().tags::<u64, _>(["t"]);
        b.get_or_compute_with(&tagged, "f", &(1u64,), || 1u64)
            .unwrap();
        drop(b);
        assert_eq!(warm(&a, 1), 1, "{what}");
        in_child_process(&server, &name, "per-function", what);
        converges(&a, 1, 1, want, COHERENT_WITHIN, what);
        assert!(
            a.stats().near_invalidations + a.stats().near_resets > 0,
            "{what}"
        );
    }
}

/// B, another OS process, puts into a full structure: the entry its put evicts leaves A.
#[test]
fn an_eviction_by_another_processs_put_drops_the_copy() {
    let server = RedisServer::spawn();
    let name = unique_name();
    let a = near_a(&server, &name, shared_settings("fifo2"));
    a.put("f", &(1u64,), &1u64).unwrap();
    assert_eq!(warm(&a, 1), 1);
    in_child_process(&server, &name, "fifo2", "evict");
    converges(&a, 1, 1, RECOMPUTED, COHERENT_WITHIN, "eviction");
}

#[test]
fn a_process_reads_its_own_writes_at_once() {
    let server = RedisServer::spawn();
    let a = near_a(&server, &unique_name(), |b| b);
    a.put("f", &(1u64,), &1u64).unwrap();
    assert_eq!(warm(&a, 1), 1);
    for value in 2..50u64 {
        a.put("f", &(1u64,), &value).unwrap();
        assert_eq!(read(&a, 1), value, "no wait for the channel's message");
    }
}

#[test]
fn the_async_front_end_keeps_coherent_copies_too() {
    let server = RedisServer::spawn();
    let name = unique_name();
    let a = builder(&server, &name).near_cache(10).build().unwrap();
    let b = builder(&server, &name).build_blocking().unwrap();
    b.put("f", &(1u64,), &1u64).unwrap();
    let rt = crate::front::runtime();
    rt.block_on(async {
        let read = || a.get_or_compute("f", &(1u64,), || async { RECOMPUTED });
        let deadline = Instant::now() + Duration::from_secs(10);
        while a.stats().near_hits == 0 {
            assert_eq!(read().await.unwrap(), 1);
            assert!(Instant::now() < deadline, "no near hit");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        b.put("f", &(1u64,), &2u64).unwrap();
        let start = Instant::now();
        while read().await.unwrap() != 2 {
            assert!(start.elapsed() < COHERENT_WITHIN, "the old value");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for _ in 0..100 {
            assert_eq!(read().await.unwrap(), 2);
        }
    });
}

/// The ids of the near links of cache `name` (`CLIENT LIST`, by the name they give themselves).
fn links(server: &RedisServer, name: &str) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut server.connection())
        .unwrap();
    list.lines()
        .filter(|line| {
            line.split(' ').any(|f| {
                f.strip_prefix("name=fncache-near:")
                    .is_some_and(|n| n.contains(&format!(":{name}:")))
            })
        })
        .filter_map(|line| {
            line.split(' ')
                .find_map(|f| f.strip_prefix("id="))
                .map(str::to_owned)
        })
        .collect()
}

#[test]
fn a_killed_link_drops_every_copy_and_comes_back() {
    let server = RedisServer::spawn();
    let name = unique_name();
    let a = near_a(&server, &name, |b| b);
    let b = builder(&server, &name).build_blocking().unwrap();
    b.put("f", &(1u64,), &1u64).unwrap();
    assert_eq!(warm(&a, 1), 1);
    let ids = links(&server, &name);
    assert_eq!(ids.len(), 1, "one link, named for its cache");
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&ids[0])
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(killed, 1);
    // A change that the killed link cannot hear.
    b.put("f", &(1u64,), &2u64).unwrap();
    // A notices within a bounded time (the read fails at once; a silent link within a PING),
    // and from then on serves nothing old.
    let start = Instant::now();
    while a.stats().near_resets == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the lost link went unnoticed"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    for _ in 0..50 {
        assert_eq!(read(&a, 1), 2, "a copy outlived the link");
    }
    // The link comes back, under its name, and copies with it.
    assert_eq!(warm(&a, 1), 2);
    assert_eq!(links(&server, &name).len(), 1);
}

#[test]
fn a_restarted_or_flushed_server_leaves_no_copy() {
    let mut server = RedisServer::spawn();
    let name = unique_name();
    let a = near_a(&server, &name, |b| b);
    a.put("f", &(1u64,), &1u64).unwrap();
    assert_eq!(warm(&a, 1), 1);
    server.stop();
    let start = Instant::now();
    while a.stats().near_resets == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the stopped server went unnoticed"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    server.restart(); // empty: persistence is off
    assert_eq!(read(&a, 1), RECOMPUTED, "a copy survived the restart");
    // A flush, which no script sees: the link hears it through client-side tracking.
    a.put("f", &(1u64,), &5u64).unwrap();
    assert_eq!(warm(&a, 1), 5);
    let resets = a.stats().near_resets;
    let _: () = redis::cmd("FLUSHALL")
        .query(&mut server.connection())
        .unwrap();
    let start = Instant::now();
    loop {
        let value = read(&a, 1);
        if value == RECOMPUTED && a.stats().near_resets > resets {
            break;
        }
        assert!(
            start.elapsed() < COHERENT_WITHIN * 5,
            "the flush went unheard"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn hot_keys_cost_a_few_redis_calls_per_key_per_near_ttl() {
    let server = RedisServer::spawn();
    let name = unique_name();
    let near_ttl = Duration::from_secs(5);
    let a = builder(&server, &name)
        .near_cache(1000)
        .near_cache_ttl(near_ttl)
        .op_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    let execs = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        for key in 0..100u64 {
            a.get_or_compute("hot", &(key,), move || async move { key })
                .await
                .unwrap();
        }
        // The link is up once a copy is served.
        let deadline = Instant::now() + Duration::from_secs(10);
        while a.stats().near_hits == 0 {
            a.get_or_compute("hot", &(0u64,), || async { 0 })
                .await
                .unwrap();
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut server.connection())
        .unwrap();
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (a, execs) = (a.clone(), Arc::clone(&execs));
                tokio::spawn(async move {
                    for _ in 0..20 {
                        for key in 0..100u64 {
                            let execs = Arc::clone(&execs);
                            let v = a
                                .get_or_compute("hot", &(key,), || async move {
                                    execs.fetch_add(1, Ordering::Relaxed);
                                    key
                                })
                                .await
                                .unwrap();
                            assert_eq!(v, key);
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    let elapsed = start.elapsed();
    // Each key: one lookup per near TTL (a few when tasks miss together), plus the batched
    // application of its near hits.
    let periods = u64::try_from(elapsed.as_millis() / near_ttl.as_millis()).unwrap() + 1;
    // Lookups are scripts (commands inside scripts count too, so only the scripts are
    // counted); the near hits' uses are plain `ZADD`s, at most one per near TTL.
    let lookups = server.command_stats("evalsha").calls;
    assert_eq!(execs.load(Ordering::Relaxed), 0, "{}", a.stats());
    assert!(
        lookups <= 3 * 100 * periods,
        "{lookups} Redis lookups for 128000 reads of 100 keys in {elapsed:?}: {}",
        a.stats()
    );
    // The rest are near hits, but for the callers that waited for a refill's lookup.
    assert!(
        a.stats().near_hits >= 128_000 - 64 * 100 * periods,
        "{}",
        a.stats()
    );
}

#[test]
fn a_function_opted_out_always_asks_redis() {
    let server = RedisServer::spawn();
    let a = near_a(&server, &unique_name(), |b| b);
    let off = CallOptions::new().near_cache(false);
    a.put("f", &(1u64,), &1u64).unwrap();
    assert_eq!(warm(&a, 1), 1, "the cache's near cache works");
    for _ in 0..20 {
        let v: u64 = a.get_or_compute_with(&off, "g", &(1u64,), || 5u64).unwrap();
        assert_eq!(v, 5);
    }
    assert_eq!(a.stats_for("g").unwrap().near_hits, 0);
    assert_eq!(a.stats_for("g").unwrap().hits, 19);
}

static OPTED_OUT: std::sync::OnceLock<blocking::Cache> = std::sync::OnceLock::new();

#[fncache::cached(cache = OPTED_OUT.get().expect("set by the test"), near_cache = false)]
fn opted_out(x: u64) -> u64 {
    x + 1
}

#[fncache::cached(cache = OPTED_OUT.get().expect("set by the test"))]
fn near_cached(x: u64) -> u64 {
    x + 2
}

#[test]
fn the_attribute_opts_a_function_out() {
    let server = RedisServer::spawn();
    let cache = OPTED_OUT.get_or_init(|| near_a(&server, &unique_name(), |b| b));
    let deadline = Instant::now() + Duration::from_secs(10);
    while near_cached_stats().near_hits == 0 {
        assert_eq!(near_cached(1), 3);
        assert!(Instant::now() < deadline, "no near hit");
        std::thread::sleep(Duration::from_millis(2));
    }
    for _ in 0..20 {
        assert_eq!(opted_out(1), 2);
    }
    assert_eq!(opted_out_stats().near_hits, 0);
    assert_eq!(opted_out_stats().hits, 19);
    assert!(cache.stats().near_hits > 0);
}

#[test]
fn settings_it_cannot_keep_its_promises_under_are_refused() {
    let server = RedisServer::spawn();
    let refused = [
        Cache::builder(unique_name()).memory().near_cache(10),
        builder(&server, &unique_name())
            .near_cache(10)
            .update_ttl(false),
        builder(&server, &unique_name()).near_cache(0),
        builder(&server, &unique_name())
            .near_cache(10)
            .near_cache_ttl(Duration::ZERO),
        Cache::builder(unique_name())
            .redis_pool(fncache::r2d2::Pool::builder().build_unchecked(server.client()))
            .near_cache(10),
    ];
    for builder in refused {
        let e = builder.build_blocking().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    }
    // No structure TTL at all is fine.
    builder(&server, &unique_name())
        .near_cache(10)
        .no_ttl()
        .build_blocking()
        .unwrap();
}

/// Near hits reach the Redis policy: an entry used only through A's near cache is not the one
/// B's put evicts (under each policy whose use changes the order: a time, a counter, a count).
#[test]
fn near_hits_reach_the_redis_policy() {
    let server = RedisServer::spawn();
    for policy in [Policy::LruT, Policy::Lru, Policy::Lfu] {
        let name = unique_name();
        let sized = |b: fncache::Builder| b.policy(policy).maxsize(2);
        // `touch_batch(0)`: A applies what it recorded with its next op, which the test sends.
        let a = near_a(&server, &name, |b| sized(b).touch_batch(Duration::ZERO));
        let b = sized(builder(&server, &name)).build_blocking().unwrap();
        b.put("f", &(1u64,), &1u64).unwrap();
        assert_eq!(warm(&a, 1), 1);
        b.put("f", &(2u64,), &2u64).unwrap();
        // f(2) now ranks above f(1) by every rule: more recent, and for LFU more used than
        // f(1) was through A's lookups in Redis.
        let redis_reads_of_1 = a.stats().hits - a.stats().near_hits;
        for _ in 0..redis_reads_of_1 + 2 {
            assert_eq!(b.get_or_compute("f", &(2u64,), || RECOMPUTED).unwrap(), 2);
        }
        let near_hits = a.stats().near_hits;
        for _ in 0..redis_reads_of_1 + 10 {
            assert_eq!(read(&a, 1), 1);
        }
        assert_eq!(
            a.stats().near_hits - near_hits,
            redis_reads_of_1 + 10,
            "{policy:?}: near hits only"
        );
        // A's next op carries its near hits to the index, then B's put evicts.
        assert!(a.contains("f", &(2u64,)).unwrap());
        b.put("f", &(3u64,), &3u64).unwrap();
        assert!(
            b.contains("f", &(1u64,)).unwrap(),
            "{policy:?}: evicted despite its near hits"
        );
        assert!(!b.contains("f", &(2u64,)).unwrap(), "{policy:?}");
    }
}

/// A copy never outlives its entry's TTL, nor the age past which the calling function's
/// `refresh_after` makes its entry stale (then Redis answers, and the refresh happens as it
/// would without a near cache), whatever the near TTL.
#[test]
fn a_copy_never_outlives_its_entry_ttl_nor_refresh_after() {
    let server = RedisServer::spawn();
    let life = Duration::from_millis(300);
    // Time from a read's decision to its check in this loop.
    let slack = Duration::from_millis(20);
    for refresh in [false, true] {
        let name = unique_name();
        let a = near_a(&server, &name, |b| {
            b.near_cache_ttl(Duration::from_secs(60))
        });
        let b = builder(&server, &name).build_blocking().unwrap();
        let options = if refresh {
            CallOptions::new().refresh_after(life)
        } else {
            CallOptions::new().entry_ttl(life)
        };
        b.put_with(&options, "f", &(1u64,), &1u64).unwrap();
        let written = Instant::now();
        let read = || -> (u64, bool) {
            let before = a.stats().near_hits;
            let v = a
                .get_or_compute_with(&options, "f", &(1u64,), || RECOMPUTED)
                .unwrap();
            (v, a.stats().near_hits > before)
        };
        let mut near_hits = 0;
        loop {
            let (value, near) = read();
            if value == RECOMPUTED {
                break;
            }
            if near {
                near_hits += 1;
                assert!(
                    written.elapsed() < life + slack,
                    "refresh {refresh}: a copy served {:?} after its write",
                    written.elapsed()
                );
            }
            assert!(
                written.elapsed() < Duration::from_secs(5),
                "never recomputed"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(
            near_hits > 0,
            "refresh {refresh}: copies were served at first"
        );
    }
}

/// ACL users: a writer that cannot ask whether anyone listens (no `+pubsub|numsub`, as the
/// README's minimal user) writes as before, publishing nothing; one that finds a listener but
/// may not publish is refused before it changes anything.
#[test]
fn a_writer_that_may_not_announce_changes_nothing() {
    let server = RedisServer::spawn();
    let minimal = [
        "~func-cache:*",
        "+@read",
        "+@write",
        "+evalsha",
        "+script|load",
        "+time",
    ];
    server.add_acl_user("minimal", "pw", &minimal);
    let mut asks = minimal.to_vec();
    asks.push("+pubsub|numsub");
    server.add_acl_user("asks", "pw", &asks);
    let name = unique_name();
    let a = near_a(&server, &name, |b| b);
    a.put("f", &(1u64,), &1u64).unwrap();
    assert_eq!(warm(&a, 1), 1);
    let url = |user: &str| format!("redis://{user}:pw@127.0.0.1:{}/", server.port());
    let as_user = |user: &str| {
        Cache::builder(&name)
            .redis(url(user))
            .shared_stats(false)
            .build_blocking()
            .unwrap()
    };
    let asks = as_user("asks");
    let e = asks.put("f", &(1u64,), &2u64).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    let b = builder(&server, &name).build_blocking().unwrap();
    let in_redis: u64 = b.get_or_compute("f", &(1u64,), || RECOMPUTED).unwrap();
    assert_eq!(in_redis, 1, "the entry is unchanged");
    let minimal = as_user("minimal");
    assert!(
        minimal.put("f", &(2u64,), &2u64).unwrap(),
        "writes as before"
    );
}

/// An idle link proves itself with a `PING` after a second of silence, and stays up.
#[test]
fn an_idle_link_stays_up() {
    let server = RedisServer::spawn();
    let a = near_a(&server, &unique_name(), |b| b);
    a.put("f", &(1u64,), &1u64).unwrap();
    assert_eq!(warm(&a, 1), 1);
    let pings = server.command_stats("ping").calls;
    std::thread::sleep(Duration::from_millis(2500)); // time for the link's pings to go out
    assert!(
        server.command_stats("ping").calls > pings,
        "the idle link pinged"
    );
    assert_eq!(a.stats().near_resets, 0, "and stayed up");
    let before = a.stats().near_hits;
    assert_eq!(read(&a, 1), 1);
    assert_eq!(a.stats().near_hits, before + 1);
}

/// A process whose user may not subscribe never gets a link: it serves every call from Redis,
/// and its link backs off instead of spinning.
#[test]
fn a_link_that_cannot_subscribe_backs_off_and_calls_go_to_redis() {
    let server = RedisServer::spawn();
    let user = [
        "~func-cache:*",
        "+@read",
        "+@write",
        "+evalsha",
        "+script|load",
        "+time",
        "+client",
        "+ping",
        "-subscribe",
    ];
    server.add_acl_user("nosub", "pw", &user);
    let a = Cache::builder(unique_name())
        .redis(format!("redis://nosub:pw@127.0.0.1:{}/", server.port()))
        .near_cache(10)
        .shared_stats(false)
        .build_blocking()
        .unwrap();
    a.put("f", &(1u64,), &1u64).unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        assert_eq!(read(&a, 1), 1, "{}", a.stats());
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(a.stats().near_hits, 0);
    assert_eq!(a.stats().errors, 0);
    // Each attempt is one SUBSCRIBE the ACL refuses.
    let attempts = server.command_stats("subscribe").rejected_calls;
    assert!(
        (1..=12).contains(&attempts),
        "{attempts} link attempts in a second"
    );
}

/// The link speaks RESP3 too (a `?protocol=resp3` URL): subscribed, coherent, reset when lost.
#[test]
fn a_resp3_link_is_coherent_too() {
    let server = RedisServer::spawn();
    let name = unique_name();
    let a = Cache::builder(&name)
        .redis(format!("{}?protocol=resp3", server.url()))
        .near_cache(10)
        .build_blocking()
        .unwrap();
    let b = builder(&server, &name).build_blocking().unwrap();
    b.put("f", &(1u64,), &1u64).unwrap();
    assert_eq!(warm(&a, 1), 1);
    b.put("f", &(1u64,), &2u64).unwrap();
    converges(&a, 1, 1, 2, COHERENT_WITHIN, "resp3 put");
    assert_eq!(warm(&a, 1), 2);
    let _: () = redis::cmd("FLUSHALL")
        .query(&mut server.connection())
        .unwrap();
    converges(&a, 1, 2, RECOMPUTED, COHERENT_WITHIN * 5, "resp3 flush");
}

/// With batches and per-entry refresh times (`refresh_after_from`): a batch's puts reach the
/// copies like any put, and a copy ends at its entry's own refresh time.
#[test]
fn batches_and_own_refresh_times_keep_copies_coherent() {
    let server = RedisServer::spawn();
    let name = unique_name();
    let a = near_a(&server, &name, |b| {
        b.near_cache_ttl(Duration::from_secs(60))
    });
    let b = builder(&server, &name).build_blocking().unwrap();
    b.put("f", &(1u64,), &1u64).unwrap();
    assert_eq!(warm(&a, 1), 1);
    let stored: Vec<u64> = b
        .with_mode(Mode::WRITE_ONLY, || {
            b.get_or_compute_many("f", &[(1u64,), (2u64,)], |missing| {
                missing.iter().map(|_| 7u64).collect()
            })
        })
        .unwrap();
    assert_eq!(stored, [7, 7]);
    converges(&a, 1, 1, 7, COHERENT_WITHIN, "a batch's put");

    let life = Duration::from_millis(300);
    let own = CallOptions::new().refresh_after_from(move |_: &u64| life);
    b.put_with(&own, "f", &(3u64,), &3u64).unwrap();
    let written = Instant::now();
    let mut near_hits = 0;
    loop {
        let before = a.stats().near_hits;
        let value = read(&a, 3);
        if value == RECOMPUTED {
            break;
        }
        if a.stats().near_hits > before {
            near_hits += 1;
            assert!(
                written.elapsed() < life + Duration::from_millis(20),
                "a copy served {:?} after its write",
                written.elapsed()
            );
        }
        assert!(
            written.elapsed() < Duration::from_secs(5),
            "never refreshed"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(near_hits > 0);
}

/// Near hits of a `TinyLfu` structure reach its bookkeeping as Redis hits would
/// (`uses_tlfu.lua`): each counts for the hill climber (the `h` field of the sketch's header,
/// `BITFIELD …:5 GET i64 #3`) and for the sketch and the segments.
#[test]
fn near_hits_reach_tinylfu() {
    let server = RedisServer::spawn();
    let name = unique_name();
    let sized = |b: fncache::Builder| b.policy(Policy::TinyLfu).maxsize(100);
    // `touch_batch(0)`: A applies what it recorded with its next op, which the test sends.
    let a = near_a(&server, &name, |b| sized(b).touch_batch(Duration::ZERO));
    let b = sized(builder(&server, &name)).build_blocking().unwrap();
    b.put("f", &(1u64,), &1u64).unwrap();
    assert_eq!(warm(&a, 1), 1);
    // An op that goes to Redis (f(9) has no copy) carries the near hit that warmed A.
    assert!(!a.contains("f", &(9u64,)).unwrap());
    let mut con = server.connection();
    let sketch = format!("func-cache:{name}:tlfu:5");
    let mut climber_hits = || -> i64 {
        redis::cmd("BITFIELD")
            .arg(&sketch)
            .arg(&["GET", "i64", "#3"])
            .query::<Vec<i64>>(&mut con)
            .unwrap()[0]
    };
    let before = climber_hits();
    let near_hits = a.stats().near_hits;
    for _ in 0..5 {
        assert_eq!(read(&a, 1), 1);
    }
    assert_eq!(a.stats().near_hits - near_hits, 5, "near hits only");
    assert!(!a.contains("f", &(10u64,)).unwrap());
    assert_eq!(climber_hits(), before + 5);
}

/// Round trips a private server took: read events (one per request or pipeline a client sent)
/// less the link's `PING`s (it pings after a second of silence).
fn round_trips(con: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("all").query(con).unwrap();
    let field = |name: &str| -> u64 {
        info.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|rest| rest.trim().parse().unwrap())
            .unwrap_or(0)
    };
    let calls = |command: &str| -> u64 {
        info.lines()
            .find_map(|line| line.strip_prefix(&format!("cmdstat_{command}:calls=")))
            .map(|rest| rest.split(',').next().unwrap().parse().unwrap())
            .unwrap_or(0)
    };
    field("total_reads_processed:") - calls("ping")
}

/// A batch serves the keys that have near copies without I/O, looks up only the others (in
/// one round trip), makes copies of what Redis answers fresh, and a change in another process
/// drops the copies a batch serves as it drops a single call's.
#[test]
fn batches_serve_and_make_near_copies() {
    let server = RedisServer::spawn();
    let name = unique_name();
    // Near hits applied to the index only after a minute: no extra op in the rounds counted.
    let a = near_a(&server, &name, |b| {
        b.near_cache_ttl(Duration::from_secs(60))
            .touch_batch(Duration::from_secs(60))
            .shared_stats(false)
    });
    let b = builder(&server, &name).build_blocking().unwrap();
    for x in 1..=6u64 {
        b.put("f", &(x,), &x).unwrap();
    }
    for x in 1..=3 {
        assert_eq!(warm(&a, x), x);
    }
    let batch = |xs: &[u64]| -> Vec<u64> {
        let args: Vec<(u64,)> = xs.iter().map(|&x| (x,)).collect();
        a.get_or_compute_many("f", &args, |missing: Vec<(u64,)>| {
            missing.iter().map(|_| RECOMPUTED).collect()
        })
        .unwrap()
    };
    let mut con = server.connection();
    // Only copies: no round trip (the second INFO is the one read).
    let (hits, reads) = (a.stats().near_hits, round_trips(&mut con));
    assert_eq!(batch(&[1, 2, 3, 1]), [1, 2, 3, 1]);
    let after = round_trips(&mut con);
    assert_eq!(after - reads, 1, "near hits only");
    assert_eq!(a.stats().near_hits - hits, 3);
    // Copies and keys without: one round trip, for those only.
    let (hits, reads) = (a.stats().near_hits, round_trips(&mut con));
    assert_eq!(batch(&[4, 1, 5, 2]), [4, 1, 5, 2]);
    let after = round_trips(&mut con);
    assert_eq!(
        after - reads,
        2,
        "one round trip, for the two keys without copies"
    );
    assert_eq!(a.stats().near_hits - hits, 2);
    // What the batch found fresh in Redis is a copy now.
    let (hits, reads) = (a.stats().near_hits, round_trips(&mut con));
    assert_eq!(batch(&[4, 5]), [4, 5]);
    let after = round_trips(&mut con);
    assert_eq!(after - reads, 1, "copies made by a batch");
    assert_eq!(a.stats().near_hits - hits, 2);
    // A change in B reaches the copies a batch serves.
    b.put("f", &(4u64,), &40u64).unwrap();
    assert!(b.invalidate("f", &(1u64,)).unwrap());
    let start = Instant::now();
    loop {
        let values = batch(&[1, 4, 5]);
        if values == [RECOMPUTED, 40, 5] {
            break;
        }
        assert!(
            values[0] == 1 || values[0] == RECOMPUTED,
            "neither old nor new: {values:?}"
        );
        assert!(
            values[1] == 4 || values[1] == 40,
            "neither old nor new: {values:?}"
        );
        assert!(
            start.elapsed() < COHERENT_WITHIN,
            "a batch served an old copy {:?} after the change",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    for _ in 0..50 {
        assert_eq!(
            batch(&[1, 4, 5]),
            [RECOMPUTED, 40, 5],
            "an old copy came back"
        );
    }
}

/// Red team: a `Policy::TinyLfu` put that evicts an entry (W-TinyLFU's admission picks the
/// loser) announces it, as the other policies' evictions are: A's copy of the evicted entry
/// goes, and A recomputes.
#[test]
fn an_eviction_by_a_tinylfu_put_drops_the_copy() {
    let server = RedisServer::spawn();
    let name = unique_name();
    let sized = |b: fncache::Builder| b.policy(Policy::TinyLfu).maxsize(2);
    let a = near_a(&server, &name, sized);
    // B: another connection, without a near cache of its own, as another process.
    let b = sized(builder(&server, &name)).build_blocking().unwrap();
    b.put("f", &(1u64,), &1u64).unwrap();
    assert_eq!(warm(&a, 1), 1);
    let evicted = (2..1000u64).any(|k| {
        b.put("f", &(k,), &k).unwrap();
        // Popular candidates win admission (their hits count in the sketch).
        for _ in 0..3 {
            b.get_or_compute("f", &(k,), || k).unwrap();
        }
        !b.contains("f", &(1u64,)).unwrap()
    });
    assert!(evicted, "f(1) was never evicted");
    assert!(b.stats().evictions > 0);
    converges(&a, 1, 1, RECOMPUTED, COHERENT_WITHIN, "tinylfu eviction");
}

/// Red team: readers of A race a writer B (another connection, no near cache) that puts,
/// invalidates, expires, purges and invalidates tags of a few keys; once both stop, A's copies
/// agree with Redis (what C, a third cache without a near cache, reads) within
/// [`COHERENT_WITHIN`]: no interleaving of a lookup with a change left an old copy behind.
#[test]
fn copies_agree_with_redis_after_racing_every_kind_of_change() {
    let server = RedisServer::spawn();
    for policy in [Policy::Lru, Policy::TinyLfu] {
        racing_changes(&server, policy);
    }
}

fn racing_changes(server: &RedisServer, policy: Policy) {
    let name = unique_name();
    let configure = move |b: fncache::Builder| b.policy(policy).maxsize(3);
    let a = Arc::new(near_a(server, &name, |b| {
        configure(b).near_cache_ttl(Duration::from_secs(60))
    }));
    let b = configure(builder(server, &name)).build_blocking().unwrap();
    let c = configure(builder(server, &name)).build_blocking().unwrap();
    let tagged = CallOptions::new().tags::<u64, _>(["t"]);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (a, stop) = (Arc::clone(&a), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    read(&a, i % 5);
                    i += 1;
                }
            })
        })
        .collect();
    let mut rng = 7u64;
    let until = Instant::now() + Duration::from_millis(1000);
    let mut value = 0u64;
    while Instant::now() < until {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let x = (rng >> 33) % 5;
        value += 1;
        match (rng >> 40) % 10 {
            0..=4 => {
                b.put_with(&tagged, "f", &(x,), &value).unwrap();
            }
            5 => {
                b.invalidate("f", &(x,)).unwrap();
            }
            6 => {
                b.expire("f", &(x,)).unwrap();
            }
            7 => {
                b.invalidate_tag("t").unwrap();
            }
            8 => {
                b.purge().unwrap();
            }
            _ => {
                b.get_or_compute("f", &(x,), || value).unwrap();
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    for x in 0..5u64 {
        let start = Instant::now();
        loop {
            let (near, redis) = (
                read(&a, x),
                c.get_or_compute("f", &(x,), || RECOMPUTED).unwrap(),
            );
            if near == redis {
                break;
            }
            assert!(
                start.elapsed() < COHERENT_WITHIN,
                "{policy:?} f({x}): A serves {near}, Redis holds {redis}"
            );
        }
        let settled = c.get_or_compute("f", &(x,), || RECOMPUTED).unwrap();
        for _ in 0..50 {
            assert_eq!(read(&a, x), settled, "{policy:?} f({x})");
        }
    }
}
