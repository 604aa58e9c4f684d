//! Threads and tasks hammering the same and different keys.

use std::sync::atomic::{AtomicU64, Ordering};

use fncache::{Cache, Policy};
use fncache_testing::RedisServer;

use crate::support::Store;

/// The function under test: recognisable per argument, so a wrong value is caught.
fn value_of(x: u64) -> String {
    format!("value-{x}-{}", x.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

fn check_invariants(stats: fncache::Stats, calls: u64, len: usize, maxsize: usize) {
    assert_eq!(stats.calls, calls);
    assert_eq!(stats.hits + stats.misses, calls, "{stats:?}");
    assert_eq!(stats.execs, stats.misses, "{stats:?}");
    assert_eq!(stats.errors, 0, "{stats:?}");
    assert!(len <= maxsize, "len {len} > maxsize {maxsize}");
}

#[test]
fn threads_hammering_same_and_different_keys() {
    for store in [Store::memory(), Store::redis()] {
        for policy in [Policy::LruT, Policy::Lfu, Policy::Random] {
            let cache = store
                .apply(
                    Cache::builder(crate::support::unique_name())
                        .policy(policy)
                        .maxsize(50),
                )
                .build_blocking()
                .unwrap();
            let execs = AtomicU64::new(0);
            std::thread::scope(|s| {
                for t in 0..8u64 {
                    let cache = &cache;
                    let execs = &execs;
                    s.spawn(move || {
                        for i in 0..300u64 {
                            // Half the calls share 5 hot keys, half spread over 200.
                            let x = if i % 2 == 0 {
                                i % 5
                            } else {
                                (i * 7 + t * 13) % 200
                            };
                            let v = cache
                                .get_or_compute("hammer", &(x,), || {
                                    execs.fetch_add(1, Ordering::SeqCst);
                                    value_of(x)
                                })
                                .unwrap();
                            assert_eq!(v, value_of(x));
                        }
                    });
                }
            });
            let stats = cache.stats();
            assert_eq!(stats.execs, execs.load(Ordering::SeqCst));
            check_invariants(stats, 8 * 300, cache.len().unwrap(), 50);
            assert!(stats.hits > 0);
        }
    }
}

#[test]
fn tasks_hammering_same_and_different_keys() {
    let server = RedisServer::spawn();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    for redis in [false, true] {
        let mut builder = Cache::builder(crate::support::unique_name()).maxsize(50);
        if redis {
            builder = builder.redis(server.url());
        }
        let cache = builder.build().unwrap();
        let execs = std::sync::Arc::new(AtomicU64::new(0));
        rt.block_on(async {
            let mut handles = Vec::new();
            for t in 0..32u64 {
                let cache = cache.clone();
                let execs = execs.clone();
                handles.push(tokio::spawn(async move {
                    for i in 0..60u64 {
                        let x = if i % 2 == 0 {
                            i % 5
                        } else {
                            (i * 7 + t * 13) % 200
                        };
                        let v = cache
                            .get_or_compute("hammer", &(x,), || async {
                                execs.fetch_add(1, Ordering::SeqCst);
                                tokio::task::yield_now().await;
                                value_of(x)
                            })
                            .await
                            .unwrap();
                        assert_eq!(v, value_of(x));
                    }
                }));
            }
            for h in handles {
                h.await.unwrap();
            }
        });
        let stats = cache.stats();
        assert_eq!(stats.execs, execs.load(Ordering::SeqCst));
        let len = rt.block_on(cache.len()).unwrap();
        check_invariants(stats, 32 * 60, len, 50);
    }
}

/// Threads mixing hits, puts, invalidations, `len` and `contains` on one cache: every value is
/// the function's, the size bound holds whenever it is counted, and the counters add up.
/// (On the embedded store, hits run under a shared lock and their uses are applied later;
/// puts, evictions and counts must see them applied.)
#[test]
fn threads_mixing_hits_puts_evictions_and_counts() {
    for store in [Store::memory(), Store::redis()] {
        for policy in [Policy::LruT, Policy::Lru, Policy::Lfu, Policy::Fifo] {
            let cache = store
                .apply(
                    Cache::builder(crate::support::unique_name())
                        .policy(policy)
                        .maxsize(20),
                )
                .build_blocking()
                .unwrap();
            std::thread::scope(|s| {
                for t in 0..4u64 {
                    let cache = &cache;
                    s.spawn(move || {
                        for i in 0..200u64 {
                            let x = (i * 7 + t * 3) % 30;
                            match i % 10 {
                                0 => assert!(cache.put("mix", &(x,), &value_of(x)).unwrap()),
                                1 => assert!(cache.len().unwrap() <= 20, "{policy:?}"),
                                2 => {
                                    cache.contains("mix", &(x,)).unwrap();
                                }
                                3 => {
                                    cache.invalidate("mix", &(x,)).unwrap();
                                }
                                _ => {
                                    let v = cache.get_or_compute("mix", &(x,), || value_of(x));
                                    assert_eq!(v.unwrap(), value_of(x));
                                }
                            }
                        }
                    });
                }
            });
            let stats = cache.stats();
            assert_eq!(stats.calls, 4 * 120, "{policy:?}");
            assert_eq!(stats.hits + stats.misses, stats.calls, "{stats:?}");
            assert!(cache.len().unwrap() <= 20);
        }
    }
}

/// Uses made by two threads in turn order the policy exactly, on both stores: after a fill
/// of 0..4, thread A uses 0 and 2 and thread B uses 1, interleaved (0, 1, 2); each new key
/// then evicts the least recently used: 3, then 0, 1 and 2.
#[test]
fn hits_on_two_threads_in_turn_leave_the_exact_lru_victims() {
    use std::sync::atomic::AtomicUsize;
    for store in [Store::memory(), Store::redis()] {
        for policy in [Policy::LruT, Policy::Lru] {
            let cache = store
                .apply(
                    Cache::builder(crate::support::unique_name())
                        .policy(policy)
                        .maxsize(4),
                )
                .build_blocking()
                .unwrap();
            for x in [3u64, 2, 1, 0] {
                cache.put("turns", &(x,), &value_of(x)).unwrap();
            }
            let turn = AtomicUsize::new(0);
            std::thread::scope(|s| {
                for uses in [vec![(0, 0u64), (2, 2)], vec![(1, 1)]] {
                    let (cache, turn) = (&cache, &turn);
                    s.spawn(move || {
                        for (at, x) in uses {
                            while turn.load(Ordering::Acquire) != at {
                                std::thread::yield_now();
                            }
                            let v = cache.get_or_compute("turns", &(x,), || "computed".to_owned());
                            assert_eq!(v.unwrap(), value_of(x), "a hit");
                            turn.store(at + 1, Ordering::Release);
                        }
                    });
                }
            });
            for (new, victim) in [(10u64, 3u64), (11, 0), (12, 1), (13, 2)] {
                cache.put("turns", &(new,), &value_of(new)).unwrap();
                assert!(
                    !cache.contains("turns", &(victim,)).unwrap(),
                    "{policy:?}: {victim} is evicted for {new}"
                );
                assert_eq!(cache.len().unwrap(), 4);
            }
        }
    }
}
