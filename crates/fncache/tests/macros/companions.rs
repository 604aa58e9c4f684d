//! `{fn}_uncached`, `{fn}_invalidate` and `{fn}_is_cached`.

use fncache::Policy;

use crate::support::{asynchronous, blocking, on_every_store, ran, runs};

#[fncache::cached(cache = blocking())]
fn square(x: u64) -> u64 {
    ran();
    x * x
}

#[fncache::cached(cache = asynchronous())]
async fn square_async(x: u64) -> u64 {
    ran();
    x * x
}

/// A borrowed argument (the companions take `&&str`) and a skipped `&mut` one.
#[fncache::cached(cache = blocking(), skip(log))]
fn greet(name: &str, log: &mut Vec<String>) -> String {
    ran();
    log.push(name.to_owned());
    format!("hello {name}")
}

#[test]
fn uncached_runs_the_body_without_reading_or_writing() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            assert_eq!(runs(|| square(3)), (9, 1), "{who}");
            let before = s.blocking.stats();
            assert_eq!(
                runs(|| square_uncached(3)),
                (9, 1),
                "{who}: runs although cached"
            );
            assert_eq!(runs(|| square_uncached(4)), (16, 1), "{who}");
            assert_eq!(s.blocking.stats(), before, "{who}: the cache was not used");
            assert!(!square_is_cached(&4).unwrap(), "{who}: nothing written");

            let before = s.asynchronous.stats();
            assert_eq!(
                runs(|| s.block_on(square_async_uncached(4))),
                (16, 1),
                "{who}"
            );
            assert_eq!(s.asynchronous.stats(), before, "{who}");
            assert!(!s.block_on(square_async_is_cached(&4)).unwrap(), "{who}");

            let mut log = Vec::new();
            assert_eq!(greet_uncached("ada", &mut log), "hello ada", "{who}");
            assert_eq!(
                log,
                ["ada"],
                "{who}: takes exactly the function's arguments"
            );
        },
    );
}

#[test]
fn invalidate_removes_that_call_and_reports_whether_it_was_there() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            square(2);
            square(3);
            assert!(square_invalidate(&2).unwrap(), "{who}");
            assert!(!square_invalidate(&2).unwrap(), "{who}: already gone");
            assert!(square_is_cached(&3).unwrap(), "{who}: others stay");
            assert_eq!(runs(|| square(2)).1, 1, "{who}: computed again");

            s.block_on(square_async(2));
            assert!(s.block_on(square_async_invalidate(&2)).unwrap(), "{who}");
            assert!(!s.block_on(square_async_invalidate(&2)).unwrap(), "{who}");

            let mut log = Vec::new();
            greet("ada", &mut log);
            assert!(greet_is_cached(&"ada").unwrap(), "{who}");
            assert!(greet_invalidate(&"ada").unwrap(), "{who}");
            assert!(!greet_is_cached(&"ada").unwrap(), "{who}");
        },
    );
}

#[test]
fn is_cached_peeks_without_changing_the_eviction_order() {
    on_every_store(
        |b| b.policy(Policy::Lru).maxsize(2),
        |s| {
            let who = s.label;
            square(1);
            square(2);
            // A lookup of 1 would make 2 the least recently used; a peek must not.
            assert!(square_is_cached(&1).unwrap(), "{who}");
            square(3);
            assert!(
                !square_is_cached(&1).unwrap(),
                "{who}: 1 was still the LRU entry"
            );
            assert!(square_is_cached(&2).unwrap() && square_is_cached(&3).unwrap());

            s.block_on(async {
                square_async(1).await;
                square_async(2).await;
                assert!(square_async_is_cached(&1).await.unwrap(), "{who}");
                square_async(3).await;
                assert!(!square_async_is_cached(&1).await.unwrap(), "{who}");
                assert!(square_async_is_cached(&2).await.unwrap(), "{who}");
            });
        },
    );
}
