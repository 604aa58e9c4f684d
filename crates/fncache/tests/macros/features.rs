//! The companions `{fn}_put` and `{fn}_expire`, the options `ttl_jitter` and
//! `entry_ttl_jitter`, and the off switch, through `#[fncache::cached]`.

use std::time::Duration;

use serde::Serialize;

use crate::support::{asynchronous, blocking, on_every_store, ran, runs};

#[fncache::cached(cache = blocking(), skip(log))]
fn price(item: &str, log: &mut Vec<String>) -> Result<u64, String> {
    ran();
    log.push(item.to_owned());
    if item == "broken" {
        Err("upstream down".to_owned())
    } else {
        Ok(item.len() as u64)
    }
}

#[fncache::cached(cache = asynchronous())]
async fn price_async(item: String, fail: bool) -> Result<u64, String> {
    ran();
    if fail {
        Err("upstream down".to_owned())
    } else {
        Ok(item.len() as u64)
    }
}

/// Options that a put must obey: `None` is not cached.
#[fncache::cached(cache = blocking(), cache_none = false)]
fn find(id: u64) -> Option<u64> {
    ran();
    Some(id)
}

#[derive(Serialize)]
struct Shop {
    id: u64,
}

impl Shop {
    #[fncache::cached(cache = blocking())]
    fn stock(&self, item: u64) -> u64 {
        ran();
        self.id * 100 + item
    }

    #[fncache::cached(cache = asynchronous())]
    async fn stock_async(&self, item: u64) -> u64 {
        ran();
        self.id * 100 + item
    }
}

#[fncache::cached(
    cache = blocking(),
    entry_ttl = Duration::from_secs(100),
    ttl_jitter = Duration::from_secs(10),
    entry_ttl_jitter = 0.2
)]
fn jittered(x: u64) -> u64 {
    ran();
    x
}

#[test]
fn put_companions_store_without_running_the_body() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            let mut log = Vec::new();
            assert!(price_put(&"pen", &42).unwrap(), "{who}");
            assert_eq!(runs(|| price("pen", &mut log)), (Ok(42), 0), "{who}");
            assert!(log.is_empty(), "{who}");

            assert!(
                s.block_on(price_async_put(&"pen".to_owned(), &false, &7))
                    .unwrap()
            );
            let got = runs(|| s.block_on(price_async("pen".to_owned(), false)));
            assert_eq!(got, (Ok(7), 0), "{who}");

            // The function's own options: `None` is not stored.
            assert!(!find_put(&1, &None).unwrap(), "{who}");
            assert!(find_put(&2, &Some(20)).unwrap(), "{who}");
            assert_eq!(runs(|| find(2)), (Some(20), 0), "{who}");
            assert_eq!(runs(|| find(1)), (Some(1), 1), "{who}");

            // Methods: `&self` is part of the key.
            let shop = Shop { id: 1 };
            assert!(shop.stock_put(&5, &0).unwrap(), "{who}");
            assert_eq!(runs(|| shop.stock(5)), (0, 0), "{who}");
            assert_eq!(runs(|| Shop { id: 2 }.stock(5)), (205, 1), "{who}");
            assert!(s.block_on(shop.stock_async_put(&5, &9)).unwrap());
            assert_eq!(runs(|| s.block_on(shop.stock_async(5))), (9, 0), "{who}");
        },
    );
}

#[test]
fn expire_companions_keep_a_fallback_for_a_failing_refresh() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            let mut log = Vec::new();
            assert_eq!(price("ink", &mut log), Ok(3));
            assert!(price_expire(&"ink").unwrap(), "{who}");
            assert!(!price_is_cached(&"ink").unwrap(), "{who}");
            assert_eq!(
                runs(|| price("ink", &mut log)),
                (Ok(3), 1),
                "{who}: refreshed"
            );

            // Async: expired, then the refresh fails and the old value is served.
            assert_eq!(s.block_on(price_async("ink".to_owned(), false)), Ok(3));
            let key = ("ink".to_owned(), false);
            assert!(s.block_on(price_async_expire(&key.0, &key.1)).unwrap());
            assert!(!s.block_on(price_async_expire(&key.0, &key.1)).unwrap());

            let shop = Shop { id: 3 };
            assert_eq!(shop.stock(1), 301);
            assert!(shop.stock_expire(&1).unwrap(), "{who}");
            assert_eq!(runs(|| shop.stock(1)), (301, 1), "{who}");
            s.block_on(shop.stock_async(1));
            assert!(s.block_on(shop.stock_async_expire(&1)).unwrap(), "{who}");
        },
    );
}

#[test]
fn an_expired_entry_is_the_fallback_when_the_body_fails() {
    // The same key must fail on the refresh: `broken` fails always, so store a value first.
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            let mut log = Vec::new();
            assert!(price_put(&"broken", &1).unwrap());
            assert!(price_expire(&"broken").unwrap());
            assert_eq!(runs(|| price("broken", &mut log)), (Ok(1), 1), "{who}");
            assert_eq!(s.blocking.stats().stale_served, 1, "{who}");
        },
    );
}

#[test]
fn jitter_options_reach_the_entry_ttl() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            for x in 0..6 {
                jittered(x);
            }
            let Some(mut con) = s.redis() else {
                assert!(jittered_is_cached(&0).unwrap());
                return;
            };
            let values: Vec<Vec<u8>> = redis::cmd("HVALS")
                .arg(format!("func-cache:{}:lru_t:1", s.blocking.name()))
                .query(&mut con)
                .unwrap();
            assert_eq!(values.len(), 6, "{who}");
            for v in values {
                let word = |at: usize| u64::from_be_bytes(v[at..at + 8].try_into().unwrap());
                let ms = (word(10) - word(2)) / 1000;
                // 100 s, plus up to 10 s and 20 % of 100 s.
                assert!((100_000..130_000).contains(&ms), "{who}: {ms}");
            }
        },
    );
}

#[test]
fn a_switched_off_cache_runs_every_decorated_call() {
    on_every_store(
        |b| b.enabled(false),
        |s| {
            let who = s.label;
            let shop = Shop { id: 4 };
            assert_eq!(runs(|| shop.stock(1)), (401, 1), "{who}");
            assert_eq!(runs(|| shop.stock(1)), (401, 1), "{who}");
            assert!(!shop.stock_put(&1, &0).unwrap(), "{who}");
            assert!(!shop.stock_expire(&1).unwrap(), "{who}");
            s.blocking.set_enabled(true);
            assert_eq!(runs(|| shop.stock(1)), (401, 1), "{who}");
            assert_eq!(runs(|| shop.stock(1)), (401, 0), "{who}");
            assert_eq!(s.blocking.stats().calls, 4, "{who}");
        },
    );
}

/// A response whose own headers say whether and how long to cache it.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Page {
    status: u16,
    max_age: u64,
}

#[fncache::cached(
    cache = blocking(),
    cache_if = |page| page.status == 200,
    entry_ttl_from = |page: &Page| Duration::from_secs(page.max_age)
)]
fn fetch(path: &str, status: u16) -> Result<Page, String> {
    ran();
    let _ = path;
    Ok(Page {
        status,
        max_age: 40,
    })
}

#[fncache::cached(cache = asynchronous(), cache_if = |n: &u64| *n > 0)]
async fn count(x: u64) -> u64 {
    ran();
    x
}

#[test]
fn cache_if_and_entry_ttl_from_options() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            assert_eq!(runs(|| fetch("/a", 503)).1, 1);
            assert!(!fetch_is_cached(&"/a", &503).unwrap(), "{who}: refused");
            assert_eq!(runs(|| fetch("/a", 503)).1, 1, "{who}");
            assert_eq!(runs(|| fetch("/b", 200)).1, 1);
            assert_eq!(runs(|| fetch("/b", 200)).1, 0, "{who}: stored");
            // The put companion obeys the same hooks.
            let refused = Page {
                status: 500,
                max_age: 1,
            };
            assert!(!fetch_put(&"/c", &500, &refused).unwrap(), "{who}");
            if let Some(mut con) = s.redis() {
                let values: Vec<Vec<u8>> = redis::cmd("HVALS")
                    .arg(format!("func-cache:{}:lru_t:1", s.blocking.name()))
                    .query(&mut con)
                    .unwrap();
                assert_eq!(values.len(), 1, "{who}");
                let word =
                    |at: usize| u64::from_be_bytes(values[0][at..at + 8].try_into().unwrap());
                assert_eq!((word(10) - word(2)) / 1000, 40_000, "{who}: max_age");
            }
            assert_eq!(runs(|| s.block_on(count(0))).1, 1);
            assert_eq!(runs(|| s.block_on(count(0))).1, 1, "{who}: 0 is not stored");
            assert_eq!(runs(|| s.block_on(count(3))).1, 1);
            assert_eq!(runs(|| s.block_on(count(3))).1, 0, "{who}");
        },
    );
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LookupError {
    NotFound,
    Timeout,
}

#[fncache::cached(
    cache = blocking(),
    negative_ttl = Duration::from_secs(10),
    cache_err_if = |e| matches!(e, LookupError::NotFound)
)]
fn lookup(id: u64, answer: u8) -> Result<u64, LookupError> {
    ran();
    match answer {
        0 => Ok(id),
        1 => Err(LookupError::NotFound),
        _ => Err(LookupError::Timeout),
    }
}

#[fncache::cached(
    cache = asynchronous(),
    negative_ttl = Duration::from_secs(10),
    cache_err_if = |e: &LookupError| *e == LookupError::NotFound
)]
async fn lookup_async(id: u64, answer: u8) -> Result<u64, LookupError> {
    ran();
    match answer {
        0 => Ok(id),
        1 => Err(LookupError::NotFound),
        _ => Err(LookupError::Timeout),
    }
}

#[test]
fn negative_ttl_and_cache_err_if_options() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            assert_eq!(runs(|| lookup(1, 1)), (Err(LookupError::NotFound), 1));
            assert_eq!(
                runs(|| lookup(1, 1)),
                (Err(LookupError::NotFound), 0),
                "{who}"
            );
            assert_eq!(runs(|| lookup(2, 2)), (Err(LookupError::Timeout), 1));
            assert_eq!(
                runs(|| lookup(2, 2)),
                (Err(LookupError::Timeout), 1),
                "{who}"
            );
            assert_eq!(runs(|| lookup(3, 0)), (Ok(3), 1));
            assert_eq!(runs(|| lookup(3, 0)), (Ok(3), 0), "{who}");
            // The put companion takes the whole `Result`: an `Err` is a negative entry.
            assert!(lookup_put(&4, &0, &Err(LookupError::NotFound)).unwrap());
            assert_eq!(
                runs(|| lookup(4, 0)),
                (Err(LookupError::NotFound), 0),
                "{who}"
            );
            assert!(lookup_put(&5, &0, &Ok(50)).unwrap());
            assert_eq!(runs(|| lookup(5, 0)), (Ok(50), 0), "{who}");

            let got = runs(|| s.block_on(lookup_async(1, 1)));
            assert_eq!(got, (Err(LookupError::NotFound), 1));
            let got = runs(|| s.block_on(lookup_async(1, 1)));
            assert_eq!(got, (Err(LookupError::NotFound), 0), "{who}");
            assert!(s.block_on(lookup_async_put(&6, &0, &Ok(60))).unwrap());
            assert_eq!(
                runs(|| s.block_on(lookup_async(6, 0))),
                (Ok(60), 0),
                "{who}"
            );
        },
    );
}
