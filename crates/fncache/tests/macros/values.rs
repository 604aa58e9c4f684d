//! What is cached: `Ok` only for `Result`; `None` unless `cache_none = false`; with the
//! function's own codec and entry TTL.

use std::sync::Arc;
use std::time::Duration;

use fncache::clock::ManualClock;

use crate::support::{Scenario, asynchronous, blocking, on_every_store, ran, runs};

#[fncache::cached(cache = blocking())]
fn parse(text: &str) -> Result<u64, String> {
    ran();
    if text.is_empty() {
        return Err("empty".to_owned());
    }
    let n = text.parse::<u64>().map_err(|e| e.to_string())?;
    Ok(n)
}

#[fncache::cached(cache = asynchronous())]
async fn parse_async(text: &str) -> Result<u64, std::num::ParseIntError> {
    ran();
    tokio::task::yield_now().await;
    if text == "zero" {
        return Ok(0);
    }
    let n = text.parse::<u64>()?;
    Ok(n * 2)
}

#[fncache::cached(cache = blocking())]
fn find(id: u64) -> Option<String> {
    ran();
    id.is_multiple_of(2).then(|| format!("#{id}"))
}

#[fncache::cached(cache = asynchronous())]
async fn find_async(id: u64) -> Option<u64> {
    ran();
    id.is_multiple_of(2).then_some(id)
}

#[fncache::cached(cache = blocking(), cache_none = false)]
fn find_fresh(id: u64) -> Option<String> {
    ran();
    id.is_multiple_of(2).then(|| format!("#{id}"))
}

#[fncache::cached(cache = asynchronous(), cache_none = false)]
async fn find_fresh_async(id: u64) -> Result<Option<u64>, String> {
    ran();
    Ok(id.is_multiple_of(2).then_some(id))
}

#[fncache::cached(cache = blocking(), codec = Codec::Json)]
fn as_json(id: u64) -> Vec<u64> {
    ran();
    vec![id, id + 1]
}

#[fncache::cached(cache = blocking(), entry_ttl = Duration::from_secs(5))]
fn short_lived(id: u64) -> u64 {
    ran();
    id
}

#[fncache::cached(cache = blocking())]
fn long_lived(id: u64) -> u64 {
    ran();
    id
}

#[test]
fn results_cache_only_ok_and_pass_errors_through() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            assert_eq!(runs(|| parse("12")), (Ok(12), 1), "{who}");
            assert_eq!(runs(|| parse("12")), (Ok(12), 0), "{who}");
            assert_eq!(runs(|| parse("")), (Err("empty".to_owned()), 1), "{who}");
            assert_eq!(runs(|| parse("")).1, 1, "{who}: an Err is not cached");
            assert!(runs(|| parse("x")).0.is_err(), "{who}: `?` in the body");
            assert!(!parse_is_cached(&"x").unwrap(), "{who}");

            assert_eq!(runs(|| s.block_on(parse_async("4"))), (Ok(8), 1), "{who}");
            assert_eq!(runs(|| s.block_on(parse_async("4"))), (Ok(8), 0), "{who}");
            assert!(s.block_on(parse_async("y")).is_err(), "{who}");
            assert_eq!(runs(|| s.block_on(parse_async("y"))).1, 1, "{who}");
            assert_eq!(
                runs(|| s.block_on(parse_async("zero"))),
                (Ok(0), 1),
                "{who}: return"
            );
            assert_eq!(
                runs(|| s.block_on(parse_async("zero"))),
                (Ok(0), 0),
                "{who}"
            );
        },
    );
}

#[test]
fn none_is_a_cached_value_unless_cache_none_is_false() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            assert_eq!(runs(|| find(1)), (None, 1), "{who}");
            assert_eq!(runs(|| find(1)), (None, 0), "{who}: None is a hit");
            assert!(find_is_cached(&1).unwrap(), "{who}");
            assert_eq!(runs(|| s.block_on(find_async(1))), (None, 1), "{who}");
            assert_eq!(
                runs(|| s.block_on(find_async(1))),
                (None, 0),
                "{who}: async hit"
            );

            assert_eq!(runs(|| find_fresh(1)), (None, 1), "{who}");
            assert_eq!(runs(|| find_fresh(1)), (None, 1), "{who}: None not stored");
            assert!(!find_fresh_is_cached(&1).unwrap(), "{who}");
            assert_eq!(runs(|| find_fresh(2)), (Some("#2".to_owned()), 1), "{who}");
            assert_eq!(runs(|| find_fresh(2)).1, 0, "{who}: Some is stored");

            assert_eq!(runs(|| s.block_on(find_fresh_async(1))), (Ok(None), 1));
            assert_eq!(
                runs(|| s.block_on(find_fresh_async(1))).1,
                1,
                "{who}: Ok(None)"
            );
            assert_eq!(runs(|| s.block_on(find_fresh_async(2))), (Ok(Some(2)), 1));
            assert_eq!(runs(|| s.block_on(find_fresh_async(2))).1, 0, "{who}");
        },
    );
}

#[test]
fn the_function_codec_is_used_for_its_values() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            assert_eq!(runs(|| as_json(3)), (vec![3, 4], 1), "{who}");
            assert_eq!(runs(|| as_json(3)), (vec![3, 4], 0), "{who}");
            if let Some(mut con) = s.redis() {
                let values: Vec<Vec<u8>> = redis::cmd("HVALS")
                    .arg(format!("func-cache:{}:lru_t:1", s.blocking.name()))
                    .query(&mut con)
                    .unwrap();
                assert_eq!(values.len(), 1);
                assert_eq!(values[0][1], 2, "the JSON codec id");
                assert_eq!(
                    &values[0][26..],
                    b"[3,4]",
                    "the payload after the 26-byte header"
                );
            }
        },
    );
}

#[test]
fn the_function_entry_ttl_applies_to_its_entries_only() {
    let clock = Arc::new(ManualClock::new());
    let s = Scenario::new(None, |b| b.clock(clock.clone()));
    short_lived(1);
    long_lived(1);
    clock.advance(Duration::from_secs(6));
    assert!(!short_lived_is_cached(&1).unwrap(), "its entry TTL passed");
    assert!(
        long_lived_is_cached(&1).unwrap(),
        "the cache has no entry TTL"
    );
    assert_eq!(runs(|| short_lived(1)).1, 1);
    drop(s);

    let s = Scenario::new(Some(fncache_testing::RedisServer::spawn()), |b| b);
    short_lived(1);
    long_lived(1);
    let expiring: u64 = redis::cmd("ZCARD")
        .arg(format!("func-cache:{}:lru_t:2", s.blocking.name()))
        .query(&mut s.redis().unwrap())
        .unwrap();
    assert_eq!(
        expiring, 1,
        "only the entry of short_lived has an expiry time"
    );
}
