//! `skip(..)`: skipped arguments are left out of the key, kept ones are in it.

use crate::support::{asynchronous, blocking, on_every_store, ran, runs};

/// Not `Serialize`: it can only be passed to a cached function if it is skipped.
pub struct Pool {
    name: String,
}

impl Pool {
    fn new(name: &str) -> Pool {
        Pool {
            name: name.to_owned(),
        }
    }
}

#[fncache::cached(cache = blocking(), skip(pool, _trace_id))]
fn load(pool: &Pool, id: u64, _trace_id: String) -> String {
    ran();
    format!("{}:{id}", pool.name)
}

#[fncache::cached(cache = asynchronous(), skip(pool, _trace_id))]
async fn load_async(pool: &Pool, id: u64, _trace_id: String) -> String {
    ran();
    tokio::task::yield_now().await;
    format!("{}:{id}", pool.name)
}

/// An `impl Trait` argument is fine once skipped; `mut` bindings are kept.
#[fncache::cached(cache = blocking(), skip(out))]
fn render(out: &mut impl std::fmt::Write, mut count: u64) -> u64 {
    ran();
    count += 1;
    let _ = write!(out, "{count}");
    count
}

/// A custom key replaces the argument tuple: only the user's id matters.
#[derive(serde::Serialize)]
pub struct Request {
    user: u64,
    nonce: u64,
}

#[fncache::cached(cache = blocking(), key = request.user)]
fn profile(request: Request) -> String {
    ran();
    format!("user {} (nonce {})", request.user, request.nonce)
}

#[fncache::cached(cache = asynchronous(), key = (request.user, tag))]
async fn profile_async(request: Request, tag: &str) -> String {
    ran();
    format!("user {} (nonce {}) {tag}", request.user, request.nonce)
}

#[test]
fn skipped_arguments_give_hits_when_they_differ_and_kept_ones_give_misses() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            let (a, b) = (Pool::new("a"), Pool::new("b"));
            let (v, n) = runs(|| load(&a, 1, "t1".into()));
            assert_eq!((v.as_str(), n), ("a:1", 1), "{who}");
            let (v, n) = runs(|| load(&b, 1, "t2".into()));
            assert_eq!((v.as_str(), n), ("a:1", 0), "{who}: skipped differ, a hit");
            let (v, n) = runs(|| load(&b, 2, "t1".into()));
            assert_eq!((v.as_str(), n), ("b:2", 1), "{who}: kept differs, a miss");
            assert_eq!(s.blocking.stats().hits, 1, "{who}");

            let (v, n) = runs(|| s.block_on(load_async(&a, 1, "t1".into())));
            assert_eq!((v.as_str(), n), ("a:1", 1), "{who}");
            let (v, n) = runs(|| s.block_on(load_async(&b, 1, "t2".into())));
            assert_eq!((v.as_str(), n), ("a:1", 0), "{who}: async hit");
            let (v, n) = runs(|| s.block_on(load_async(&b, 2, "t2".into())));
            assert_eq!((v.as_str(), n), ("b:2", 1), "{who}: async miss");
        },
    );
}

#[test]
fn skipped_impl_trait_arguments_and_mut_bindings_work() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            let mut text = String::new();
            assert_eq!(runs(|| render(&mut text, 1)), (2, 1), "{who}");
            assert_eq!(runs(|| render(&mut text, 1)), (2, 0), "{who}");
            assert_eq!(text, "2", "{who}: the body ran once");
            assert!(render_is_cached(&1).unwrap(), "{who}");
            assert_eq!(render_uncached(&mut text, 5), 6, "{who}");
        },
    );
}

#[test]
fn a_custom_key_replaces_the_arguments() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            let first = |nonce| Request { user: 7, nonce };
            let (v, n) = runs(|| profile(first(1)));
            assert_eq!((v.as_str(), n), ("user 7 (nonce 1)", 1), "{who}");
            let (v, n) = runs(|| profile(first(2)));
            assert_eq!((v.as_str(), n), ("user 7 (nonce 1)", 0), "{who}: same key");
            assert!(profile_is_cached(&first(3)).unwrap(), "{who}");
            let (_, n) = runs(|| profile(Request { user: 8, nonce: 1 }));
            assert_eq!(n, 1, "{who}: another key");

            let (_, n) = runs(|| s.block_on(profile_async(first(1), "x")));
            assert_eq!(n, 1, "{who}");
            let (v, n) = runs(|| s.block_on(profile_async(first(2), "x")));
            assert_eq!((v.as_str(), n), ("user 7 (nonce 1) x", 0), "{who}");
            let (_, n) = runs(|| s.block_on(profile_async(first(2), "y")));
            assert_eq!(n, 1, "{who}: the tag is in the key");
            let cached = s.block_on(profile_async_is_cached(&first(9), &"y"));
            assert!(cached.unwrap(), "{who}");
        },
    );
}
