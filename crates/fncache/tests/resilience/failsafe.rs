//! Fail-safe: when recomputing an expired entry fails, the stale value is served (up to
//! `max_stale`), retries are throttled, and past `max_stale` the error surfaces.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use fncache::clock::ManualClock;
use fncache::{Builder, Cache};
use fncache_testing::RedisServer;

use crate::unique_name;

fn failsafe(builder: Builder) -> Builder {
    builder
        .entry_ttl(Duration::from_secs(10))
        .max_stale(Duration::from_secs(60))
        .fail_safe_throttle(Duration::from_secs(5))
}

#[test]
fn memory_serves_stale_until_max_stale_then_the_error() {
    let clock = Arc::new(ManualClock::new());
    let cache = failsafe(Cache::builder(unique_name("failsafe")))
        .clock(clock.clone())
        .build_blocking()
        .unwrap();
    let failing = AtomicBool::new(false);
    let attempts = AtomicU64::new(0);
    let call = || {
        cache
            .try_get_or_compute("f", &1u8, || {
                attempts.fetch_add(1, Ordering::SeqCst);
                if failing.load(Ordering::SeqCst) {
                    Err("down")
                } else {
                    Ok(5u32)
                }
            })
            .unwrap()
    };
    assert_eq!(call(), Ok(5));
    failing.store(true, Ordering::SeqCst);
    clock.advance(Duration::from_secs(11)); // past the entry TTL
    assert_eq!(
        call(),
        Ok(5),
        "fail-safe: the stale value instead of the error"
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(call(), Ok(5), "within the throttle: no retry");
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    clock.advance(Duration::from_secs(6)); // the throttle passed
    assert_eq!(call(), Ok(5), "retried, failed again, still served stale");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    clock.advance(Duration::from_secs(50)); // past max_stale: the entry is gone
    assert_eq!(call(), Err("down"), "no fallback left: the error surfaces");
    let s = cache.stats();
    assert_eq!((s.refresh_failures, s.stale_served), (2, 3), "{s:?}");
    failing.store(false, Ordering::SeqCst);
    assert_eq!(call(), Ok(5), "recovers");
}

#[test]
fn a_panicking_recomputation_is_served_stale_too() {
    let clock = Arc::new(ManualClock::new());
    let cache = failsafe(Cache::builder(unique_name("panic")))
        .clock(clock.clone())
        .build_blocking()
        .unwrap();
    assert_eq!(cache.get_or_compute("f", &1u8, || 5u32).unwrap(), 5);
    clock.advance(Duration::from_secs(11));
    let v = cache.get_or_compute("f", &1u8, || -> u32 { panic!("the function broke") });
    assert_eq!(v.unwrap(), 5);
    // Without a fallback, the panic is the caller's.
    let other = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cache.get_or_compute("g", &1u8, || -> u32 { panic!("no fallback") })
    }));
    assert!(other.is_err());
    assert_eq!(
        cache.get_or_compute("g", &1u8, || 9u32).unwrap(),
        9,
        "no lease left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_serves_stale_with_server_time_and_a_compute_timeout() {
    let server = RedisServer::spawn();
    let build = |tag: &str| {
        Cache::builder(unique_name(tag))
            .redis(server.url())
            .entry_ttl(Duration::from_millis(200))
            .max_stale(Duration::from_secs(30))
            .compute_timeout(Duration::from_millis(50))
            .build()
            .unwrap()
    };
    let cache = build("failsafe");
    assert_eq!(
        cache
            .get_or_compute("f", &1u8, || async { 1u32 })
            .await
            .unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(250)).await; // server time passes the entry TTL
    let slow = cache
        .get_or_compute("f", &1u8, || async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            2u32
        })
        .await
        .unwrap();
    assert_eq!(slow, 1, "past compute_timeout the stale value is served");
    let s = cache.stats();
    assert_eq!((s.refresh_failures, s.stale_served), (1, 1), "{s:?}");
    // An owned recomputation past its timeout goes on in the background and stores its value.
    let owned = build("failsafe-owned");
    assert_eq!(
        owned
            .get_or_compute_owned("f", &1u8, || async { 1u32 })
            .await
            .unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    let v = owned
        .get_or_compute_owned("f", &1u8, || async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            2u32
        })
        .await
        .unwrap();
    assert_eq!(v, 1, "stale while the recomputation goes on");
    let c = owned.clone();
    tokio::task::spawn_blocking(move || {
        crate::eventually("background store", || c.stats().writes == 2)
    })
    .await
    .unwrap();
    assert_eq!(
        owned
            .get_or_compute_owned("f", &1u8, || async { 3u32 })
            .await
            .unwrap(),
        2
    );
}
