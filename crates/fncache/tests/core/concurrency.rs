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
