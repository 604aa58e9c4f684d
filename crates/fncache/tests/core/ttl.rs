//! Structure TTL (sliding or fixed) and per-entry TTL, on Redis (server time, observed through
//! PTTL and short real waits) and on the embedded store (a manual clock, no waiting).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use fncache::clock::ManualClock;
use fncache::{Cache, Mode, Policy};
use fncache_testing::RedisServer;

fn pttl(server: &RedisServer, key: &str) -> i64 {
    redis::cmd("PTTL")
        .arg(key)
        .query(&mut server.connection())
        .unwrap()
}

fn set_pttl(server: &RedisServer, key: &str, ms: u64) {
    let _: i64 = redis::cmd("PEXPIRE")
        .arg(key)
        .arg(ms)
        .query(&mut server.connection())
        .unwrap();
}

#[test]
fn redis_sliding_ttl_is_renewed_by_hits_and_puts_not_by_misses() {
    let server = RedisServer::spawn();
    let cache = Cache::builder("slide")
        .policy(Policy::Lru)
        .ttl(Duration::from_secs(100))
        .redis(server.url())
        .build_blocking()
        .unwrap();
    let (index, values) = ("func-cache:slide:lru:0", "func-cache:slide:lru:1");
    cache.get_or_compute("f", &1, || 1).unwrap();
    assert!(pttl(&server, index) > 99_000);

    for key in [index, values] {
        set_pttl(&server, key, 5_000);
    }
    cache
        .with_mode(Mode::READ_ONLY, || cache.get_or_compute("f", &2, || 2))
        .unwrap();
    assert!(pttl(&server, index) <= 5_000, "a miss does not slide");

    cache.get_or_compute("f", &1, || 1).unwrap(); // hit
    assert!(pttl(&server, index) > 99_000, "a hit slides the index");
    assert!(pttl(&server, values) > 99_000, "a hit slides the values");

    for key in [index, values] {
        set_pttl(&server, key, 5_000);
    }
    cache.get_or_compute("f", &3, || 3).unwrap(); // put
    assert!(pttl(&server, index) > 99_000, "a put slides");
}

/// `Policy::TinyLfu`'s sketch (`:5`) slides with the structure: a hit renews it like the index
/// (the get script names the sketch last among its keys).
#[test]
fn redis_sliding_ttl_renews_the_tinylfu_sketch_on_a_hit() {
    let server = RedisServer::spawn();
    let cache = Cache::builder("slide")
        .policy(Policy::TinyLfu)
        .ttl(Duration::from_secs(100))
        .redis(server.url())
        .build_blocking()
        .unwrap();
    let (index, sketch) = ("func-cache:slide:tlfu:0", "func-cache:slide:tlfu:5");
    cache.get_or_compute("f", &1, || 1).unwrap();
    assert!(pttl(&server, sketch) > 99_000);
    for key in [index, sketch] {
        set_pttl(&server, key, 5_000);
    }
    cache.get_or_compute("f", &1, || 1).unwrap(); // hit
    assert!(pttl(&server, index) > 99_000, "a hit slides the index");
    assert!(pttl(&server, sketch) > 99_000, "a hit slides the sketch");
}

#[test]
fn redis_fixed_ttl_runs_from_creation() {
    let server = RedisServer::spawn();
    let cache = Cache::builder("fixed")
        .policy(Policy::Lru)
        .ttl(Duration::from_secs(100))
        .update_ttl(false)
        .redis(server.url())
        .build_blocking()
        .unwrap();
    let (index, values) = ("func-cache:fixed:lru:0", "func-cache:fixed:lru:1");
    cache.get_or_compute("f", &1, || 1).unwrap();
    assert!(pttl(&server, index) > 99_000, "set on creation");
    for key in [index, values] {
        set_pttl(&server, key, 5_000);
    }
    cache.get_or_compute("f", &1, || 1).unwrap(); // hit
    cache.get_or_compute("f", &2, || 2).unwrap(); // put
    assert!(
        pttl(&server, index) <= 5_000,
        "neither a hit nor a put slides"
    );
    assert!(pttl(&server, values) <= 5_000);
    // The expiry structure, created later by an entry with a TTL, gets the same deadline.
    let with_entry_ttl = Cache::builder("fixed")
        .policy(Policy::Lru)
        .ttl(Duration::from_secs(100))
        .update_ttl(false)
        .entry_ttl(Duration::from_secs(50))
        .redis(server.url())
        .build_blocking()
        .unwrap();
    with_entry_ttl.get_or_compute("f", &3, || 3).unwrap();
    assert!(pttl(&server, "func-cache:fixed:lru:2") <= 5_000);
    // When the structure expires, the cache starts over.
    for key in [index, values, "func-cache:fixed:lru:2"] {
        set_pttl(&server, key, 1);
    }
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(cache.len().unwrap(), 0);
    cache.get_or_compute("f", &1, || 1).unwrap();
    assert!(
        pttl(&server, index) > 99_000,
        "a new structure gets a new TTL"
    );
}

#[test]
fn no_ttl_leaves_keys_persistent() {
    let server = RedisServer::spawn();
    let cache = Cache::builder("forever")
        .policy(Policy::Lru)
        .no_ttl()
        .redis(server.url())
        .build_blocking()
        .unwrap();
    cache.get_or_compute("f", &1, || 1).unwrap();
    assert_eq!(pttl(&server, "func-cache:forever:lru:0"), -1);
}

#[test]
fn memory_structure_ttl_sliding_and_fixed() {
    for sliding in [true, false] {
        let clock = Arc::new(ManualClock::new());
        let cache = Cache::builder("mem")
            .ttl(Duration::from_secs(10))
            .update_ttl(sliding)
            .clock(clock.clone())
            .build_blocking()
            .unwrap();
        cache.get_or_compute("f", &1, || 1).unwrap();
        clock.advance(Duration::from_secs(6));
        cache
            .with_mode(Mode::READ_ONLY, || cache.get_or_compute("f", &2, || 2))
            .unwrap(); // miss
        cache.get_or_compute("f", &1, || 1).unwrap(); // hit at t=6
        clock.advance(Duration::from_secs(6)); // t=12
        assert_eq!(
            cache.contains("f", &1).unwrap(),
            sliding,
            "sliding={sliding}"
        );
        clock.advance(Duration::from_secs(5)); // t=17
        assert!(!cache.contains("f", &1).unwrap());
        assert_eq!(cache.len().unwrap(), 0);
    }
}

#[test]
fn memory_miss_does_not_slide() {
    let clock = Arc::new(ManualClock::new());
    let cache = Cache::builder("mem")
        .ttl(Duration::from_secs(10))
        .clock(clock.clone())
        .build_blocking()
        .unwrap();
    cache.get_or_compute("f", &1, || 1).unwrap();
    clock.advance(Duration::from_secs(9));
    cache
        .with_mode(Mode::READ_ONLY, || cache.get_or_compute("f", &2, || 2))
        .unwrap();
    clock.advance(Duration::from_secs(2));
    assert!(!cache.contains("f", &1).unwrap());
}

#[test]
fn memory_entry_ttl_expires_reclaims_and_vacuums() {
    let clock = Arc::new(ManualClock::new());
    let cache = Cache::builder("entries")
        .policy(Policy::Lru)
        .maxsize(3)
        .entry_ttl(Duration::from_secs(5))
        .clock(clock.clone())
        .build_blocking()
        .unwrap();
    let execs = AtomicU64::new(0);
    let call = |x: u64| {
        cache
            .get_or_compute("f", &x, || {
                execs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                x
            })
            .unwrap()
    };
    call(1);
    call(2);
    clock.advance(Duration::from_secs(4));
    call(3);
    call(1); // hit at t=4
    assert_eq!(execs.load(std::sync::atomic::Ordering::SeqCst), 3);
    clock.advance(Duration::from_secs(2)); // t=6: 1 and 2 expired, 3 alive
    assert!(
        !cache.contains("f", &1u64).unwrap(),
        "never served once expired"
    );
    assert_eq!(cache.len().unwrap(), 1, "expired entries do not count");
    call(4); // full of 1, 2 (expired) and 3: the expired ones go, not a live one
    call(5);
    assert!(cache.contains("f", &3u64).unwrap(), "3");
    assert!(cache.contains("f", &4u64).unwrap(), "4");
    assert!(cache.contains("f", &5u64).unwrap(), "5");
    assert_eq!(
        cache.stats().evictions,
        0,
        "reclaiming expired entries is not eviction"
    );
    clock.advance(Duration::from_secs(10));
    assert_eq!(cache.len().unwrap(), 0);
    assert_eq!(cache.vacuum().unwrap(), 3);
    assert_eq!(cache.vacuum().unwrap(), 0);
}

#[test]
fn redis_entry_ttl_expires_reclaims_and_vacuums() {
    let server = RedisServer::spawn();
    let cache = Cache::builder("entries")
        .policy(Policy::Lru)
        .maxsize(3)
        .entry_ttl(Duration::from_millis(150))
        .redis(server.url())
        .build_blocking()
        .unwrap();
    let long_lived = Cache::builder("entries")
        .policy(Policy::Lru)
        .maxsize(3)
        .redis(server.url())
        .build_blocking()
        .unwrap();
    cache.get_or_compute("f", &1, || 1).unwrap();
    cache.get_or_compute("f", &2, || 2).unwrap();
    long_lived.get_or_compute("f", &3, || 3).unwrap(); // no entry TTL
    assert_eq!(cache.len().unwrap(), 3);
    // Wait for server time to pass the entry TTL (this is what is under test, not isolation).
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !cache.contains("f", &1).unwrap(),
        "never served once expired"
    );
    assert_eq!(cache.len().unwrap(), 1, "expired entries do not count");
    let mut con = server.connection();
    let hlen = |con: &mut redis::Connection| -> u64 {
        redis::cmd("HLEN")
            .arg("func-cache:entries:lru:1")
            .query(con)
            .unwrap()
    };
    assert_eq!(hlen(&mut con), 3, "still taking space until reclaimed");
    // A lookup of an expired entry is a miss (and removes it).
    assert_eq!(cache.get_or_compute("f", &2, || 20).unwrap(), 20);
    assert_eq!(hlen(&mut con), 3, "1 (expired), 2 (fresh), 3");
    assert_eq!(cache.vacuum().unwrap(), 1);
    assert_eq!(hlen(&mut con), 2);
    // Eviction reclaims expired entries before live ones.
    cache.get_or_compute("f", &4, || 4).unwrap(); // full: 2, 3, 4
    std::thread::sleep(Duration::from_millis(200)); // 2 and 4 expire
    long_lived.get_or_compute("f", &6, || 6).unwrap();
    long_lived.get_or_compute("f", &7, || 7).unwrap();
    assert!(
        long_lived.contains("f", &3).unwrap(),
        "a live entry survived: expired ones went first"
    );
    assert_eq!(long_lived.stats().evictions, 0);
    assert_eq!(cache.len().unwrap(), 3);
}

/// Ops faster than one a microsecond must not run the embedded store's clock ahead of time:
/// its op times were unique microseconds, so a store serving more than a million ops a second
/// aged its entries faster than the clock (a 1.3 s entry TTL ended after 1.0 s of a tight loop
/// of hits). Here the clock stands still while 20,000 hits are served: the entry, 5 ms from its
/// end, must still be fresh, and must end when the clock, not the op count, says so.
#[test]
fn memory_ttls_follow_the_clock_however_many_ops_run() {
    for policy in [Policy::LruT, Policy::Lru, Policy::FifoT, Policy::TinyLfu] {
        let clock = Arc::new(ManualClock::new());
        let cache = Cache::builder(format!("burst-{policy:?}"))
            .memory()
            .clock(clock.clone())
            .policy(policy)
            .entry_ttl(Duration::from_millis(5))
            .build_blocking()
            .unwrap();
        let execs = AtomicU64::new(0);
        let call = |key: u64| {
            cache
                .get_or_compute("f", &key, || {
                    execs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    key
                })
                .unwrap()
        };
        call(0);
        for _ in 0..20_000 {
            assert_eq!(call(0), 0);
        }
        assert_eq!(
            execs.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "{policy:?}: the entry expired while the clock stood still"
        );
        clock.advance(Duration::from_millis(4));
        call(0);
        assert_eq!(
            execs.load(std::sync::atomic::Ordering::Relaxed),
            1,
            "{policy:?}"
        );
        clock.advance(Duration::from_millis(2));
        call(0);
        assert_eq!(
            execs.load(std::sync::atomic::Ordering::Relaxed),
            2,
            "{policy:?}: 6 ms after the write, past its 5 ms TTL"
        );
    }
}
