//! The attribute keeps the signature, visibility, attributes and doc comments, and stacks with
//! other attributes (in either order).

use crate::support::{asynchronous, blocking, on_every_store, ran, runs};

pub mod inner {
    use crate::support::{blocking, ran};

    /// Visible to the parent module: the visibility is kept.
    #[fncache::cached(cache = blocking())]
    #[must_use]
    #[inline(never)]
    #[allow(clippy::needless_pass_by_value)]
    pub(crate) fn documented(text: String) -> usize {
        ran();
        text.len()
    }
}

#[tracing::instrument(level = "debug")]
#[fncache::cached(cache = blocking())]
fn instrumented_outside(x: u64) -> u64 {
    ran();
    x + 1
}

#[fncache::cached(cache = blocking())]
#[tracing::instrument(level = "debug", ret)]
fn instrumented_inside(x: u64) -> u64 {
    ran();
    x + 2
}

#[tracing::instrument(level = "debug")]
#[fncache::cached(cache = asynchronous())]
async fn instrumented_async_outside(x: u64) -> u64 {
    ran();
    x + 3
}

#[fncache::cached(cache = asynchronous())]
#[tracing::instrument(level = "debug")]
async fn instrumented_async_inside(x: u64) -> u64 {
    ran();
    x + 4
}

#[cfg(any(test, not(test)))]
#[fncache::cached(cache = blocking())]
fn fibonacci(n: u64) -> u64 {
    ran();
    if n < 2 {
        n
    } else {
        fibonacci(n - 1) + fibonacci(n - 2)
    }
}

/// Cached, and purging the other functions when it computes.
#[fncache::cache_evict(cache = blocking(), functions = all)]
#[fncache::cached(cache = blocking(), name = "evicting")]
fn evicting(x: u64) -> u64 {
    ran();
    x
}

#[test]
fn other_attributes_stack_in_either_order() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            assert_eq!(runs(|| inner::documented("abc".into())), (3, 1), "{who}");
            assert_eq!(runs(|| inner::documented("abc".into())), (3, 0), "{who}");
            assert_eq!(runs(|| instrumented_outside(1)), (2, 1), "{who}");
            assert_eq!(runs(|| instrumented_outside(1)), (2, 0), "{who}");
            assert_eq!(runs(|| instrumented_inside(1)), (3, 1), "{who}");
            assert_eq!(runs(|| instrumented_inside(1)), (3, 0), "{who}");
            let outside = || s.block_on(instrumented_async_outside(1));
            assert_eq!((runs(outside), runs(outside)), ((4, 1), (4, 0)), "{who}");
            let inside = || s.block_on(instrumented_async_inside(1));
            assert_eq!((runs(inside), runs(inside)), ((5, 1), (5, 0)), "{who}");

            assert_eq!(
                runs(|| fibonacci(30)),
                (832_040, 31),
                "{who}: recursion hits"
            );
            assert_eq!(runs(|| fibonacci(30)).1, 0, "{who}");

            // The purge runs inside the computation; the cached value is stored after it.
            assert_eq!(runs(|| evicting(1)), (1, 1), "{who}");
            assert_eq!(s.blocking.len().unwrap(), 1, "{who}: the rest was purged");
            assert!(evicting_is_cached(&1).unwrap(), "{who}");
            assert_eq!(runs(|| evicting(1)), (1, 0), "{who}: a hit purges nothing");
            assert_eq!(
                runs(|| fibonacci(2)).1,
                3,
                "{who}: purged, so computed again"
            );
            assert_eq!(s.blocking.len().unwrap(), 4, "{who}");
        },
    );
}
