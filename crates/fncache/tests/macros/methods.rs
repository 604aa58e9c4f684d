//! Methods: `&self`, `&mut self` and `self` in the key or skipped, associated functions, and
//! the companions as associated functions.

use serde::Serialize;

use crate::support::{asynchronous, blocking, on_every_store, ran, runs};

/// `Serialize`: `self` can be part of the key.
#[derive(Serialize)]
pub struct Rates {
    base: u64,
}

impl Rates {
    #[fncache::cached(cache = blocking())]
    fn price(&self, quantity: u64) -> u64 {
        ran();
        self.base * quantity
    }

    #[fncache::cached(cache = asynchronous())]
    async fn price_async(&self, quantity: u64) -> u64 {
        ran();
        self.base * quantity
    }

    /// An associated function: no `self` at all.
    #[fncache::cached(cache = blocking())]
    fn label(quantity: u64) -> String {
        ran();
        format!("{quantity} units")
    }
}

/// Not `Serialize`, and holding its own caches: `self` is skipped and the cache is reached
/// through it.
pub struct Service {
    pool: String,
    calls: u64,
    cache: fncache::blocking::Cache,
    async_cache: fncache::Cache,
}

impl Service {
    fn new(pool: &str) -> Service {
        Service {
            pool: pool.to_owned(),
            calls: 0,
            cache: blocking(),
            async_cache: asynchronous(),
        }
    }

    #[fncache::cached(cache = self.cache, skip(self))]
    fn lookup(&self, id: u64) -> String {
        ran();
        format!("{}:{id}", self.pool)
    }

    #[fncache::cached(cache = self.async_cache, skip(self))]
    async fn lookup_async(&self, id: u64) -> String {
        ran();
        tokio::task::yield_now().await;
        format!("{}:{id}", self.pool)
    }

    #[fncache::cached(cache = self.cache, skip(self))]
    fn count(&mut self, id: u64) -> u64 {
        ran();
        self.calls += 1;
        id + self.calls
    }
}

/// `self` by value, in the key.
#[derive(Serialize, Clone)]
pub struct Order {
    id: u64,
}

impl Order {
    #[fncache::cached(cache = blocking())]
    fn total(self, tax: u64) -> u64 {
        ran();
        self.id * 10 + tax
    }
}

/// Two types whose methods have the same name, the same code and equal serializations: the
/// type of `Self` keeps them apart.
#[derive(Serialize)]
pub struct Celsius(u64);
#[derive(Serialize)]
pub struct Fahrenheit(u64);

impl Celsius {
    #[fncache::cached(cache = blocking())]
    fn degrees(&self) -> u64 {
        ran();
        self.0
    }
}

impl Fahrenheit {
    #[fncache::cached(cache = blocking())]
    fn degrees(&self) -> u64 {
        ran();
        self.0
    }
}

/// A free function whose body declares a type of its own, with its own `Self`.
#[fncache::cached(cache = blocking())]
fn with_a_local_type(x: u64) -> u64 {
    struct Local(u64);
    impl Local {
        fn double(&self) -> Self {
            Self(self.0 * 2)
        }
    }
    ran();
    Local(x).double().0
}

#[test]
fn self_in_the_key_distinguishes_instances() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            let (two, three) = (Rates { base: 2 }, Rates { base: 3 });
            assert_eq!(runs(|| two.price(5)), (10, 1), "{who}");
            assert_eq!(runs(|| two.price(5)), (10, 0), "{who}: a hit");
            assert_eq!(runs(|| three.price(5)), (15, 1), "{who}: another self");
            assert!(two.price_is_cached(&5).unwrap(), "{who}");
            assert!(!two.price_is_cached(&6).unwrap(), "{who}");
            assert_eq!(runs(|| two.price_uncached(5)), (10, 1), "{who}: the body");
            assert!(two.price_invalidate(&5).unwrap(), "{who}");
            assert!(!two.price_is_cached(&5).unwrap(), "{who}");
            assert!(three.price_is_cached(&5).unwrap(), "{who}: only that entry");

            assert_eq!(runs(|| s.block_on(two.price_async(5))), (10, 1), "{who}");
            assert_eq!(runs(|| s.block_on(two.price_async(5))), (10, 0), "{who}");
            assert_eq!(runs(|| s.block_on(three.price_async(5))), (15, 1), "{who}");
            assert!(
                s.block_on(three.price_async_invalidate(&5)).unwrap(),
                "{who}"
            );

            assert_eq!(runs(|| Rates::label(3)).1, 1, "{who}");
            assert_eq!(runs(|| Rates::label(3)).1, 0, "{who}");
            assert!(Rates::label_is_cached(&3).unwrap(), "{who}");

            let order = Order { id: 4 };
            assert_eq!(runs(|| order.clone().total(1)), (41, 1), "{who}");
            assert_eq!(runs(|| order.clone().total(1)), (41, 0), "{who}");
            assert!(order.total_is_cached(&1).unwrap(), "{who}");
            assert_eq!(runs(|| Order { id: 5 }.total(1)), (51, 1), "{who}");

            assert_eq!(runs(|| with_a_local_type(4)), (8, 1), "{who}");
            assert_eq!(runs(|| with_a_local_type(4)), (8, 0), "{who}");
        },
    );
}

#[test]
fn a_skipped_self_shares_entries_and_can_hold_the_cache() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            let (a, b) = (Service::new("a"), Service::new("b"));
            assert_eq!(runs(|| a.lookup(1)), ("a:1".to_owned(), 1), "{who}");
            assert_eq!(runs(|| b.lookup(1)), ("a:1".to_owned(), 0), "{who}: shared");
            assert!(b.lookup_is_cached(&1).unwrap(), "{who}");
            assert_eq!(b.lookup_uncached(1), "b:1", "{who}");
            assert!(b.lookup_invalidate(&1).unwrap(), "{who}");
            assert_eq!(runs(|| b.lookup(1)), ("b:1".to_owned(), 1), "{who}");

            let out = runs(|| s.block_on(a.lookup_async(2)));
            assert_eq!(out, ("a:2".to_owned(), 1), "{who}");
            let out = runs(|| s.block_on(b.lookup_async(2)));
            assert_eq!(out, ("a:2".to_owned(), 0), "{who}: shared");
            assert!(s.block_on(b.lookup_async_is_cached(&2)).unwrap(), "{who}");

            let mut c = Service::new("c");
            assert_eq!(runs(|| c.count(10)), (11, 1), "{who}");
            assert_eq!(runs(|| c.count(10)), (11, 0), "{who}: `&mut self` cached");
            assert_eq!(c.calls, 1, "{who}: the body ran once");
            assert_eq!(c.count_uncached(10), 12, "{who}");
        },
    );
}

#[test]
fn same_named_methods_of_different_types_do_not_share_entries() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            assert_eq!(runs(|| Celsius(5).degrees()), (5, 1), "{who}");
            assert_eq!(runs(|| Fahrenheit(5).degrees()), (5, 1), "{who}: distinct");
            assert_eq!(runs(|| Fahrenheit(5).degrees()), (5, 0), "{who}");
            assert_eq!(s.blocking.len().unwrap(), 2, "{who}");
        },
    );
}
