//! `#[fncache::cache_evict]`: purge named cached functions, or the whole cache, after the
//! function returns (returns `Ok`, for a `Result`).

use std::sync::{Arc, LazyLock};

use fncache::{Cache, ErrorKind, Layout, PerFunctionCache, blocking};
use fncache_testing::RedisServer;

use crate::support::{asynchronous, blocking, on_every_store, ran, runs};

#[fncache::cached(cache = blocking())]
fn price(item: u64) -> u64 {
    ran();
    item * 100
}

#[fncache::cached(cache = blocking())]
fn stock(item: u64) -> u64 {
    ran();
    item + 1
}

#[fncache::cached(cache = blocking())]
fn unrelated(item: u64) -> u64 {
    ran();
    item
}

pub mod catalog {
    use crate::support::{asynchronous, ran};

    #[fncache::cached(cache = asynchronous())]
    pub async fn title(item: u64) -> String {
        ran();
        format!("item {item}")
    }
}

// The scenario's caches are plain (their layout is a run-time value, which the shared-layout
// test below relies on): the attribute warns about them, and is told it is meant.
#[allow(deprecated)]
#[fncache::cache_evict(cache = blocking(), functions = [price, stock])]
fn update_prices(fail: bool) -> Result<u64, String> {
    if fail {
        return Err("refused".to_owned());
    }
    Ok(2)
}

#[fncache::cache_evict(cache = blocking(), functions = all)]
fn reset() {}

#[allow(deprecated)]
#[fncache::cache_evict(cache = asynchronous(), functions = [catalog::title])]
async fn rename(fail: bool) -> Result<(), String> {
    tokio::task::yield_now().await;
    if fail {
        Err("refused".to_owned())
    } else {
        Ok(())
    }
}

#[fncache::cache_evict(cache = asynchronous(), functions = all)]
async fn reset_async() -> usize {
    7
}

/// Evicting from methods: `Self::` paths, and a cache reached through `self`.
pub struct Prices {
    cache: fncache::blocking::Cache,
}

impl Prices {
    #[fncache::cached(cache = self.cache, skip(self))]
    fn quote(&self, item: u64) -> u64 {
        ran();
        item * 3
    }

    #[allow(deprecated)]
    #[fncache::cache_evict(cache = self.cache, functions = [Self::quote])]
    fn reprice(&mut self) -> bool {
        true
    }
}

fn fill() {
    for item in 1..=2 {
        price(item);
        stock(item);
        unrelated(item);
    }
}

#[test]
fn named_functions_are_purged_after_success_only() {
    on_every_store(
        |b| b.layout(Layout::PerFunction),
        |s| {
            let who = s.label;
            fill();
            assert_eq!(update_prices(true), Err("refused".to_owned()), "{who}");
            assert!(price_is_cached(&1).unwrap(), "{who}: an Err purges nothing");
            assert_eq!(update_prices(false), Ok(2), "{who}");
            for item in 1..=2 {
                assert!(!price_is_cached(&item).unwrap(), "{who}");
                assert!(!stock_is_cached(&item).unwrap(), "{who}");
                assert!(unrelated_is_cached(&item).unwrap(), "{who}: not named");
            }
            assert_eq!(runs(|| price(1)), (100, 1), "{who}: computed again");
            assert_eq!(s.blocking.stats().errors, 0, "{who}");

            let mut prices = Prices {
                cache: s.blocking.clone(),
            };
            prices.quote(1);
            assert!(prices.reprice(), "{who}");
            assert!(
                !prices.quote_is_cached(&1).unwrap(),
                "{who}: Self::quote purged"
            );

            s.block_on(async {
                catalog::title(1).await;
                assert_eq!(rename(true).await, Err("refused".to_owned()));
                assert!(catalog::title_is_cached(&1).await.unwrap(), "{who}");
                assert_eq!(rename(false).await, Ok(()));
                assert!(!catalog::title_is_cached(&1).await.unwrap(), "{who}");
            });
        },
    );
}

#[test]
fn all_empties_the_whole_cache() {
    for layout in [Layout::Shared, Layout::PerFunction] {
        on_every_store(
            |b| b.layout(layout),
            |s| {
                let who = format!("{layout:?} {}", s.label);
                fill();
                reset();
                assert_eq!(s.blocking.len().unwrap(), 0, "{who}");
                s.block_on(async {
                    catalog::title(1).await;
                    assert_eq!(reset_async().await, 7);
                    assert_eq!(s.asynchronous.len().await.unwrap(), 0, "{who}");
                });
            },
        );
    }
}

#[test]
fn naming_functions_of_a_shared_layout_purges_the_whole_cache_and_says_so() {
    // In a shared layout nothing tells one function's entries from another's: an eviction
    // that named functions widens to the whole cache rather than leave their entries served.
    for layout in [Layout::Shared, Layout::Cluster] {
        on_every_store(
            |b| b.layout(layout),
            |s| {
                let who = format!("{layout:?} {}", s.label);
                fill();
                assert_eq!(update_prices(false), Ok(2), "{who}: the value is returned");
                for item in 1..=2 {
                    assert!(!price_is_cached(&item).unwrap(), "{who}: named, purged");
                    assert!(!stock_is_cached(&item).unwrap(), "{who}: named, purged");
                    assert!(!unrelated_is_cached(&item).unwrap(), "{who}: widened");
                }
                assert_eq!(runs(|| price(1)), (100, 1), "{who}: computed again");
                let by = concat!(module_path!(), "::update_prices");
                assert_eq!(
                    s.blocking.stats_for(by).unwrap().errors,
                    1,
                    "{who}: the widening is counted once, as a configuration error"
                );
                assert_eq!(s.blocking.stats().errors, 1, "{who}");

                s.block_on(async {
                    catalog::title(1).await;
                    assert_eq!(rename(false).await, Ok(()));
                    assert!(!catalog::title_is_cached(&1).await.unwrap(), "{who}");
                });
            },
        );
    }
}

/// A cache whose type says it purges single functions: the attribute does not warn (clippy
/// runs over this file with `-D warnings`), and exactly the named functions are purged.
pub struct Typed {
    cache: PerFunctionCache<blocking::Cache>,
    shared: Arc<PerFunctionCache<Cache>>,
}

impl Typed {
    #[fncache::cached(cache = self.cache, skip(self))]
    fn load(&self, id: u64) -> u64 {
        ran();
        id * 7
    }

    #[fncache::cached(cache = self.cache, skip(self))]
    fn other(&self, id: u64) -> u64 {
        ran();
        id + 7
    }

    #[fncache::cache_evict(cache = self.cache, functions = [Self::load])]
    fn update(&self) {}

    #[fncache::cached(cache = self.shared, skip(self))]
    async fn fetch(&self, id: u64) -> u64 {
        ran();
        id * 11
    }

    #[fncache::cache_evict(cache = self.shared, functions = [Self::fetch])]
    async fn refetch(&self) {}
}

static TYPED_STATIC: LazyLock<PerFunctionCache<blocking::Cache>> = LazyLock::new(|| {
    Cache::builder("evict-typed-static")
        .layout(Layout::PerFunction)
        .memory()
        .build_per_function_blocking()
        .unwrap()
});

#[fncache::cached(cache = TYPED_STATIC)]
fn typed_price(item: u64) -> u64 {
    ran();
    item * 100
}

#[fncache::cache_evict(cache = TYPED_STATIC, functions = [typed_price])]
fn typed_reprice() {}

#[test]
fn a_per_function_cache_purges_exactly_the_named_functions_without_a_warning() {
    for server in [None, Some(RedisServer::spawn())] {
        let who = if server.is_some() { "redis" } else { "memory" };
        let builder = |name: &str| {
            let b = Cache::builder(name).layout(Layout::PerFunction);
            match &server {
                Some(server) => b.redis(server.url()),
                None => b.memory(),
            }
        };
        let typed = Typed {
            cache: builder("evict-typed")
                .build_per_function_blocking()
                .unwrap(),
            shared: Arc::new(builder("evict-typed-async").build_per_function().unwrap()),
        };
        typed.load(1);
        typed.other(1);
        typed.update();
        assert!(!typed.load_is_cached(&1).unwrap(), "{who}: named, purged");
        assert!(typed.other_is_cached(&1).unwrap(), "{who}: not named, kept");
        assert_eq!(runs(|| typed.load(1)), (7, 1), "{who}: computed again");
        assert_eq!(typed.cache.stats().errors, 0, "{who}");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            typed.fetch(2).await;
            assert!(typed.fetch_is_cached(&2).await.unwrap(), "{who}");
            typed.refetch().await;
            assert!(!typed.fetch_is_cached(&2).await.unwrap(), "{who}");
        });
    }
    typed_price(3);
    typed_reprice();
    assert!(!typed_price_is_cached(&3).unwrap());
}

#[test]
fn a_per_function_cache_refuses_the_other_layouts_when_it_is_built() {
    for layout in [Layout::Shared, Layout::Cluster] {
        let builder = || Cache::builder("evict-refused").layout(layout).memory();
        let blocking = builder().build_per_function_blocking().unwrap_err();
        let asynchronous = builder().build_per_function().unwrap_err();
        for e in [blocking, asynchronous] {
            assert_eq!(e.kind(), ErrorKind::Config, "{layout:?}: {e}");
            assert!(e.to_string().contains("Layout::PerFunction"), "{e}");
        }
    }
}
