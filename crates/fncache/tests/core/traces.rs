//! The policy traces of the foundation issue, with maxsize 3, on every store and front-end.

use std::sync::atomic::{AtomicU64, Ordering};

use fncache::Policy;

use crate::support::{all_fronts, describe};

/// Runs `calls` (argument, expected hit) and checks the final contents among 0..=3.
fn check_trace(policy: Policy, calls: &[(u64, bool)], expected_final: &[u64]) {
    for (store, front) in all_fronts(|b| b.policy(policy).maxsize(3)) {
        let who = format!("{policy:?} on {}", describe(&store, &front));
        let execs = AtomicU64::new(0);
        for (step, &(x, hit)) in calls.iter().enumerate() {
            let before = execs.load(Ordering::SeqCst);
            assert_eq!(front.call("f", x, &execs), x * 10, "{who}: value of f({x})");
            let was_hit = execs.load(Ordering::SeqCst) == before;
            assert_eq!(was_hit, hit, "{who}: step {step}, f({x}) hit");
        }
        let contents: Vec<u64> = (0..=3).filter(|&x| front.contains("f", x)).collect();
        let mut want = expected_final.to_vec();
        want.sort_unstable();
        assert_eq!(contents, want, "{who}: final contents");
        assert_eq!(front.len(), 3, "{who}: len");
    }
}

const M: bool = false;
const H: bool = true;

#[test]
fn lru_evicts_the_least_recently_used() {
    let calls = [(0, M), (1, M), (2, M), (0, H), (3, M), (1, M)];
    check_trace(Policy::Lru, &calls, &[0, 3, 1]);
    check_trace(Policy::LruT, &calls, &[0, 3, 1]);
}

#[test]
fn fifo_ignores_reads() {
    let calls = [(0, M), (1, M), (2, M), (0, H), (1, H), (3, M), (0, M)];
    check_trace(Policy::Fifo, &calls, &[2, 3, 0]);
    check_trace(Policy::FifoT, &calls, &[2, 3, 0]);
}

#[test]
fn lfu_evicts_the_least_frequently_used() {
    let calls = [
        (0, M),
        (1, M),
        (2, M),
        (0, H),
        (0, H),
        (1, H),
        (3, M),
        (2, M),
    ];
    check_trace(Policy::Lfu, &calls, &[0, 1, 2]);
}

/// W-TinyLFU at maxsize 3 (window 1, protected 1, probation the rest): 3 is used once and
/// leaves the window tied with probation's oldest (1, used once too): the tie keeps 1 and 3
/// goes; 2, back for a second use, takes its place in the window the same way.
#[test]
fn tinylfu_admits_by_frequency() {
    let calls = [
        (0, M),
        (1, M),
        (2, M),
        (0, H),
        (0, H),
        (3, M),
        (2, M),
        (1, H),
    ];
    check_trace(Policy::TinyLfu, &calls, &[0, 1, 2]);
}

#[test]
fn mru_evicts_the_most_recently_used() {
    // The Python original silently behaves as LRU here; this must evict 0, not 1.
    let calls = [(0, M), (1, M), (2, M), (0, H), (3, M)];
    check_trace(Policy::Mru, &calls, &[1, 2, 3]);
}

#[test]
fn random_keeps_maxsize_and_the_newest_entry() {
    for (store, front) in all_fronts(|b| b.policy(Policy::Random).maxsize(3)) {
        let who = describe(&store, &front);
        let execs = AtomicU64::new(0);
        for x in 0..20 {
            front.call("f", x, &execs);
            assert!(front.contains("f", x), "{who}: newest entry {x} is cached");
            assert_eq!(front.len(), (x as usize + 1).min(3), "{who}: len after {x}");
        }
        assert_eq!(front.stats().evictions, 17, "{who}");
    }
}

#[test]
fn redis_keys_follow_the_documented_names() {
    let server = fncache_testing::RedisServer::spawn();
    for policy in Policy::ALL {
        let cache = fncache::Cache::builder("names")
            .policy(policy)
            .redis(server.url())
            .build_blocking()
            .unwrap();
        cache.get_or_compute("f", &(1u8,), || 1u8).unwrap();
        let mut con = server.connection();
        let tag = policy.tag();
        let index_type: String = redis::cmd("TYPE")
            .arg(format!("func-cache:names:{tag}:0"))
            .query(&mut con)
            .unwrap();
        let values_type: String = redis::cmd("TYPE")
            .arg(format!("func-cache:names:{tag}:1"))
            .query(&mut con)
            .unwrap();
        let want = if policy == Policy::Random {
            "set"
        } else {
            "zset"
        };
        assert_eq!(
            (index_type.as_str(), values_type.as_str()),
            (want, "hash"),
            "{policy:?}"
        );
    }
}

/// W-TinyLFU's admission: 60 keys used four times each, then 500 keys used once (a scan, fewer
/// uses in all than the 1,000 after which the sketch ages), then the 60 again. Each scanned key
/// leaves the window with a count of 1 and loses the duel against probation's oldest (a tie
/// keeps the incumbent), so the frequent entries are all still there; an LRU of the same size
/// has lost every one of them.
#[test]
fn tinylfu_keeps_frequent_entries_through_a_scan() {
    for (policy, survivors) in [(Policy::TinyLfu, 60), (Policy::Lru, 0)] {
        for (store, front) in all_fronts(|b| b.policy(policy).maxsize(100)) {
            let who = format!("{policy:?} on {}", describe(&store, &front));
            let execs = AtomicU64::new(0);
            for _ in 0..4 {
                for x in 0..60 {
                    front.call("f", x, &execs);
                }
            }
            for x in 1000..1500 {
                front.call("f", x, &execs);
            }
            let before = execs.load(Ordering::SeqCst);
            for x in 0..60 {
                front.call("f", x, &execs);
            }
            let hits = 60 - (execs.load(Ordering::SeqCst) - before);
            assert_eq!(
                hits, survivors,
                "{who}: frequent entries that survived the scan"
            );
            assert_eq!(front.len(), 100, "{who}: len");
        }
    }
}

/// `Policy::TinyLfu`'s sketch (`:5`) shares the structure's lifetime and its purge, and stays
/// within its stated size (8 bytes per entry of maxsize, at least 1 KiB, plus a 128-byte header
/// and 8 bytes per KiB of counters); the old meta key (`:6`) is no longer written.
#[test]
fn tinylfu_sketch_keys_live_and_die_with_the_structure() {
    let server = fncache_testing::RedisServer::spawn();
    let cache = fncache::Cache::builder("sketch")
        .policy(Policy::TinyLfu)
        .maxsize(100)
        .ttl(std::time::Duration::from_secs(600))
        .redis(server.url())
        .build_blocking()
        .unwrap();
    for x in 0..300u32 {
        cache.get_or_compute("f", &(x % 150,), || x).unwrap();
    }
    let mut con = server.connection();
    let key = |n: u8| format!("func-cache:sketch:tlfu:{n}");
    let ttl: i64 = redis::cmd("PTTL").arg(key(5)).query(&mut con).unwrap();
    assert!(ttl > 0 && ttl <= 600_000, ":5 PTTL {ttl}");
    let meta: u64 = redis::cmd("EXISTS").arg(key(6)).query(&mut con).unwrap();
    assert_eq!(meta, 0, ":6 is not written");
    let len: u64 = redis::cmd("STRLEN").arg(key(5)).query(&mut con).unwrap();
    assert!(len > 128 && len <= 128 + 8 + 1024, "sketch of {len} bytes");
    assert_eq!(cache.len().unwrap(), 100);
    // An earlier layout's meta hash, which only a purge still names.
    let () = redis::cmd("HSET")
        .arg(key(6))
        .arg("c")
        .arg(1)
        .query(&mut con)
        .unwrap();
    assert_eq!(cache.purge().unwrap(), 100);
    for n in 0..=6 {
        let exists: u64 = redis::cmd("EXISTS").arg(key(n)).query(&mut con).unwrap();
        assert_eq!(exists, 0, ":{n} is gone after a purge");
    }
}
