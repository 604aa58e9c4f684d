//! Stale-while-revalidate: fresh, stale (old value served, exactly one refresh), refreshed,
//! and gone at the hard entry TTL.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use fncache::clock::ManualClock;
use fncache::{Cache, Policy};
use fncache_testing::RedisServer;

use crate::{eventually, unique_name};

#[test]
fn memory_timeline_fresh_stale_refreshed_expired() {
    let clock = Arc::new(ManualClock::new());
    let cache = Cache::builder(unique_name("fresh"))
        .refresh_after(Duration::from_secs(10))
        .entry_ttl(Duration::from_secs(60))
        .clock(clock.clone())
        .build_blocking()
        .unwrap();
    let version = Arc::new(AtomicU64::new(0));
    // Every refresh waits at the gate, so calls made meanwhile all see the stale value.
    let gate = Arc::new(Barrier::new(2));
    let call = |gated: bool| {
        let (version, gate) = (version.clone(), gate.clone());
        cache
            .get_or_compute_owned("f", &1u8, move || {
                if gated {
                    gate.wait();
                }
                version.fetch_add(1, Ordering::SeqCst) + 1
            })
            .unwrap()
    };
    assert_eq!(call(false), 1, "computed");
    clock.advance(Duration::from_secs(5));
    assert_eq!(call(false), 1, "fresh hit");
    clock.advance(Duration::from_secs(6));
    for _ in 0..5 {
        assert_eq!(
            call(true),
            1,
            "stale: served at once, while one refresh runs"
        );
    }
    gate.wait(); // let the single refresh finish
    eventually("the refresh stored its value", || {
        cache.stats().refreshes == 1
    });
    assert_eq!(call(false), 2, "the refreshed value");
    let s = cache.stats();
    assert_eq!((s.stale_served, s.refreshes, s.execs), (5, 1, 2), "{s:?}");
    clock.advance(Duration::from_secs(61));
    assert_eq!(
        call(false),
        3,
        "past the entry TTL the value is gone, not stale"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_timeline_with_server_time() {
    let server = RedisServer::spawn();
    let cache = Cache::builder(unique_name("fresh"))
        .redis(server.url())
        .refresh_after(Duration::from_millis(800))
        .entry_ttl(Duration::from_millis(2500))
        .build()
        .unwrap();
    let version = Arc::new(AtomicU64::new(0));
    let call = || {
        let version = version.clone();
        let cache = cache.clone();
        async move {
            cache
                .get_or_compute_owned("f", &1u8, move || async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    version.fetch_add(1, Ordering::SeqCst) + 1
                })
                .await
                .unwrap()
        }
    };
    assert_eq!(call().await, 1);
    assert_eq!(call().await, 1, "fresh");
    // Server time must pass refresh_after: that wait is what is under test.
    tokio::time::sleep(Duration::from_millis(850)).await;
    let stale = futures_join(call(), call(), call()).await;
    assert_eq!(stale, [1, 1, 1], "stale values served at once");
    let c = cache.clone();
    tokio::task::spawn_blocking(move || eventually("one refresh", || c.stats().refreshes == 1))
        .await
        .unwrap();
    assert_eq!(call().await, 2, "refreshed");
    assert_eq!(version.load(Ordering::SeqCst), 2, "exactly one refresh");
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!(
        call().await,
        3,
        "past the entry TTL: recomputed in the foreground"
    );
}

async fn futures_join<F: std::future::Future<Output = u64>>(a: F, b: F, c: F) -> [u64; 3] {
    let (a, b, c) = tokio::join!(a, b, c);
    [a, b, c]
}

#[test]
fn a_borrowed_function_refreshes_inline_for_the_lease_winner() {
    let clock = Arc::new(ManualClock::new());
    let cache = Cache::builder(unique_name("inline"))
        .policy(Policy::Lru)
        .refresh_after(Duration::from_secs(10))
        .clock(clock.clone())
        .build_blocking()
        .unwrap();
    let runs = AtomicU64::new(0);
    let call = || {
        cache
            .get_or_compute("f", &1u8, || runs.fetch_add(1, Ordering::SeqCst) + 1)
            .unwrap()
    };
    assert_eq!(call(), 1);
    clock.advance(Duration::from_secs(11));
    assert_eq!(
        call(),
        2,
        "no background for a borrowed closure: the winner refreshes inline"
    );
    assert_eq!(call(), 2, "fresh again");
    assert_eq!(cache.stats().refreshes, 1);
}

#[tokio::test]
async fn wait_false_answers_the_default_and_fills_in_the_background() {
    let cache = Cache::builder(unique_name("default"))
        .wait(false)
        .build()
        .unwrap();
    let options = fncache::CallOptions::new();
    let first: Result<u32, String> = cache
        .try_get_or_compute_owned_with(&options, Some(0), "slow", &1u8, || async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            Ok(42)
        })
        .await
        .unwrap();
    assert_eq!(first, Ok(0), "the default, at once");
    let c = cache.clone();
    tokio::task::spawn_blocking(move || eventually("background fill", || c.stats().writes == 1))
        .await
        .unwrap();
    let second: Result<u32, String> = cache
        .try_get_or_compute_owned_with(&options, Some(0), "slow", &1u8, || async { Ok(7) })
        .await
        .unwrap();
    assert_eq!(second, Ok(42), "the filled value");
    assert_eq!(cache.stats().defaults_served, 1);
}
