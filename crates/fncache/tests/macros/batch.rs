//! `#[cached(batch)]`: a function of a list of keys returning a `Vec` of their values, or a map
//! of key to value, is cached key by key; its body runs only for the missing keys, on both
//! stores and front-ends.

use std::sync::Mutex;
use std::time::Duration;

use crate::support::{asynchronous, blocking, on_every_store, ran, runs};

static ASKED: Mutex<Vec<Vec<u32>>> = Mutex::new(Vec::new());

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct User {
    id: u32,
    name: String,
}

#[fncache::cached(batch, cache = blocking())]
fn users(ids: &[u32]) -> Vec<User> {
    ran();
    ASKED.lock().unwrap().push(ids.to_vec());
    ids.iter()
        .map(|&id| User {
            id,
            name: format!("user {id}"),
        })
        .collect()
}

/// A skipped argument beside the list, options, and a `Vec` taken by value.
#[fncache::cached(batch = true, cache = asynchronous(), skip(prefix), entry_ttl = Duration::from_secs(60))]
async fn names(prefix: &str, mut ids: Vec<u32>) -> Vec<String> {
    ran();
    ids.reverse();
    let mut out: Vec<String> = ids.iter().map(|id| format!("{prefix}{id}")).collect();
    out.reverse();
    out
}

/// A hook sees each value, not the `Vec`.
#[fncache::cached(batch, cache = blocking(), cache_if = |v: &u32| v.is_multiple_of(2))]
fn halves(xs: &Vec<u32>) -> Vec<u32> {
    ran();
    xs.iter().map(|x| x / 2).collect()
}

/// A body that breaks the contract: its own result comes back, and nothing is cached.
#[fncache::cached(batch, cache = blocking())]
fn short(ids: &[u32]) -> Vec<u32> {
    ran();
    ids.iter().skip(1).copied().collect()
}

/// A map of key to value: the body gets the missing keys and returns their map.
#[fncache::cached(batch, cache = blocking())]
fn ages(ids: &[u32]) -> std::collections::HashMap<u32, u32> {
    ran();
    ASKED.lock().unwrap().push(ids.to_vec());
    ids.iter().map(|&id| (id, id + 20)).collect()
}

/// A `BTreeMap`, async, of a `Vec` taken by value.
#[fncache::cached(batch, cache = asynchronous())]
async fn squares(ids: Vec<u32>) -> std::collections::BTreeMap<u32, u64> {
    ran();
    ids.iter()
        .map(|&id| (id, u64::from(id) * u64::from(id)))
        .collect()
}

/// A map body that leaves a key out (a lookup that did not find it): its own map comes back,
/// and nothing is cached.
#[fncache::cached(batch, cache = blocking())]
fn found(ids: &[u32]) -> std::collections::HashMap<u32, u32> {
    ran();
    ids.iter()
        .filter(|&&id| id != 2)
        .map(|&id| (id, id))
        .collect()
}

struct Repo;

impl Repo {
    /// A method: `self` is skipped (the keys are the list).
    #[fncache::cached(batch, cache = blocking(), skip(self))]
    fn lengths(&self, words: &[String]) -> Vec<usize> {
        ran();
        words.iter().map(String::len).collect()
    }
}

#[test]
fn a_batch_function_computes_only_its_missing_keys() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            ASKED.lock().unwrap().clear();
            let (first, ran) = runs(|| users(&[1, 2, 2]));
            assert_eq!(
                first.iter().map(|u| u.id).collect::<Vec<_>>(),
                [1, 2, 2],
                "{who}"
            );
            assert_eq!(ran, 1, "{who}: one run for the batch");
            let (second, ran) = runs(|| users(&[3, 1, 2]));
            assert_eq!(second[0].name, "user 3", "{who}");
            assert_eq!(second[1], first[0], "{who}");
            assert_eq!(ran, 1, "{who}");
            assert_eq!(*ASKED.lock().unwrap(), [vec![1, 2], vec![3]], "{who}");
            assert_eq!(runs(|| users(&[2, 3])).1, 0, "{who}: all hits");
            assert!(users(&[]).is_empty(), "{who}");
            let stats = users_stats();
            assert_eq!((stats.hits, stats.misses), (4, 3), "{who}");

            let (got, ran) = runs(|| s.block_on(names("n", vec![1, 2])));
            assert_eq!(
                (got, ran),
                (vec!["n1".to_owned(), "n2".to_owned()], 1),
                "{who}"
            );
            let (got, ran) = runs(|| s.block_on(names("other", vec![2, 3])));
            assert_eq!(got, ["n2", "other3"], "{who}: 2 was cached");
            assert_eq!(ran, 1, "{who}");

            assert_eq!(halves(&vec![4, 6]), [2, 3], "{who}");
            assert_eq!(runs(|| halves(&vec![4])).1, 0, "{who}: 2 was stored");
            assert_eq!(runs(|| halves(&vec![6])).1, 1, "{who}: 3 was refused");

            let words = ["ab".to_owned(), "abc".to_owned()];
            assert_eq!(Repo.lengths(&words), [2, 3], "{who}");
            assert_eq!(runs(|| Repo.lengths(&words)).1, 0, "{who}");
        },
    );
}

#[test]
fn a_batch_function_may_return_a_map_of_its_keys() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            ASKED.lock().unwrap().clear();
            let (first, ran) = runs(|| ages(&[1, 2, 2]));
            let want: std::collections::HashMap<u32, u32> = [(1, 21), (2, 22)].into();
            assert_eq!((first, ran), (want, 1), "{who}: one run, each key once");
            let (second, ran) = runs(|| ages(&[3, 1]));
            assert_eq!(second, [(1, 21), (3, 23)].into(), "{who}");
            assert_eq!(ran, 1, "{who}");
            assert_eq!(*ASKED.lock().unwrap(), [vec![1, 2], vec![3]], "{who}");
            assert_eq!(runs(|| ages(&[2, 3])).1, 0, "{who}: all hits");
            assert!(ages(&[]).is_empty(), "{who}");
            assert_eq!((ages_stats().hits, ages_stats().misses), (3, 3), "{who}");

            let (got, ran) = runs(|| s.block_on(squares(vec![3, 4])));
            assert_eq!((got, ran), ([(3, 9), (4, 16)].into(), 1), "{who}");
            let (got, ran) = runs(|| s.block_on(squares(vec![4, 5, 3])));
            assert_eq!(got, [(3, 9), (4, 16), (5, 25)].into(), "{who}");
            assert_eq!(ran, 1, "{who}: only 5 computed");
        },
    );
}

#[test]
fn a_map_body_without_one_of_its_keys_returns_its_own_map_uncached() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            let want: std::collections::HashMap<u32, u32> = [(1, 1), (3, 3)].into();
            assert_eq!(found(&[1, 2, 3]), want, "{who}: the body's own map");
            assert_eq!(runs(|| found(&[1, 3])).1, 1, "{who}: nothing was cached");
            assert!(found_stats().errors >= 1, "{who}: counted");
        },
    );
}

#[test]
fn a_batch_body_of_the_wrong_length_returns_its_own_result_uncached() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            assert_eq!(short(&[1, 2, 3]), [2, 3], "{who}: the body's own result");
            assert_eq!(runs(|| short(&[1, 2, 3])).1, 1, "{who}: nothing was cached");
            assert!(short_stats().errors >= 2, "{who}: counted");
            assert_eq!(short_uncached(&[5, 6]), [6], "{who}");
        },
    );
}

/// `refresh_after_from`: 0 is stale at once (a millisecond), anything else an hour, whatever
/// the cache's own `refresh_after` of a millisecond.
#[fncache::cached(
    cache = blocking(),
    refresh_after_from = |v: &u64| Duration::from_secs(if *v == 0 { 0 } else { 3600 }),
)]
fn fresh(x: u64) -> u64 {
    ran();
    x
}

#[fncache::cached(
    cache = asynchronous(),
    refresh_after_from = |v: &u64| Duration::from_secs(if *v == 0 { 0 } else { 3600 }),
)]
async fn fresh_async(x: u64) -> u64 {
    ran();
    x
}

#[test]
fn refresh_after_from_sets_each_entrys_refresh_time() {
    on_every_store(
        |b| b.refresh_after(Duration::from_millis(1)),
        |s| {
            let who = s.label;
            fresh(1);
            s.block_on(fresh_async(1));
            // 0 goes stale at once: a later call refreshes it (inline, running the body).
            fresh(0);
            crate::support::eventually("0 refreshed", || runs(|| fresh(0)).1 == 1);
            s.block_on(fresh_async(0));
            crate::support::eventually("async 0 refreshed", || {
                runs(|| s.block_on(fresh_async(0))).1 == 1
            });
            // Past the cache's millisecond, 1 is still fresh for its hour.
            assert_eq!(runs(|| fresh(1)).1, 0, "{who}");
            assert_eq!(runs(|| s.block_on(fresh_async(1))).1, 0, "{who}");
        },
    );
}

#[test]
fn a_batch_function_future_can_be_spawned() {
    on_every_store(
        |b| b,
        |s| {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            // The spawned task finds the caches through the thread's installed ones: hand it
            // this scenario's.
            let caches = crate::support::current();
            let got = rt.block_on(async move {
                tokio::spawn(async move {
                    crate::support::install(caches);
                    names("s", vec![7]).await
                })
                .await
                .unwrap()
            });
            assert_eq!(got, ["s7"], "{}", s.label);
        },
    );
}
