//! The embedded store is the reference model: random call sequences must give identical hits,
//! answers and contents on it and on a real Redis server, for every deterministic policy.

use std::sync::atomic::{AtomicU64, Ordering};

use fncache::{Cache, Layout, Mode, Policy, blocking};
use fncache_testing::RedisServer;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::support::unique_name;

#[derive(Debug, Clone)]
enum Op {
    Call {
        function: u8,
        x: u8,
    },
    ReadOnlyCall {
        function: u8,
        x: u8,
    },
    WriteOnlyCall {
        function: u8,
        x: u8,
    },
    Contains {
        function: u8,
        x: u8,
    },
    Invalidate {
        function: u8,
        x: u8,
    },
    Put {
        function: u8,
        x: u8,
    },
    Expire {
        function: u8,
        x: u8,
    },
    FailingCall {
        function: u8,
        x: u8,
    },
    PurgeFunction {
        function: u8,
    },
    Len,
    /// A call whose entry carries the tags `t0`..`t2` picked by the bits of `tags`.
    TaggedCall {
        function: u8,
        x: u8,
        tags: u8,
    },
    TaggedPut {
        function: u8,
        x: u8,
        tags: u8,
    },
    InvalidateTag {
        tag: u8,
    },
    /// A batch of these arguments (duplicates included).
    Batch {
        function: u8,
        xs: Vec<u8>,
    },
    /// A call whose entry carries a refresh time of its own (format 2), an hour away.
    OwnRefreshCall {
        function: u8,
        x: u8,
    },
}

fn tag_names(bits: u8) -> Vec<String> {
    (0..3u8)
        .filter(|t| bits & (1 << t) != 0)
        .map(|t| format!("t{t}"))
        .collect()
}

fn op() -> impl Strategy<Value = Op> {
    let fx = (0u8..3, 0u8..6);
    prop_oneof![
        8 => fx.clone().prop_map(|(function, x)| Op::Call { function, x }),
        1 => fx.clone().prop_map(|(function, x)| Op::ReadOnlyCall { function, x }),
        1 => fx.clone().prop_map(|(function, x)| Op::WriteOnlyCall { function, x }),
        2 => fx.clone().prop_map(|(function, x)| Op::Contains { function, x }),
        1 => fx.clone().prop_map(|(function, x)| Op::Invalidate { function, x }),
        1 => fx.clone().prop_map(|(function, x)| Op::Put { function, x }),
        2 => fx.clone().prop_map(|(function, x)| Op::Expire { function, x }),
        1 => fx.clone().prop_map(|(function, x)| Op::FailingCall { function, x }),
        1 => (0u8..3).prop_map(|function| Op::PurgeFunction { function }),
        1 => Just(Op::Len),
        3 => (fx.clone(), 0u8..8).prop_map(|((function, x), tags)| Op::TaggedCall { function, x, tags }),
        1 => (fx.clone(), 0u8..8).prop_map(|((function, x), tags)| Op::TaggedPut { function, x, tags }),
        2 => (0u8..4).prop_map(|tag| Op::InvalidateTag { tag }),
        2 => (0u8..3, prop::collection::vec(0u8..6, 0..5))
            .prop_map(|(function, xs)| Op::Batch { function, xs }),
        2 => fx.clone().prop_map(|(function, x)| Op::OwnRefreshCall { function, x }),
    ]
}

/// What an op observably did: for calls, whether the function ran.
fn apply(cache: &blocking::Cache, op: &Op) -> String {
    let execs = AtomicU64::new(0);
    let call = |mode: Mode, function: u8, x: u8| {
        let v = cache
            .with_mode(mode, || {
                cache.get_or_compute(&format!("f{function}"), &(x,), || {
                    execs.fetch_add(1, Ordering::SeqCst);
                    u32::from(x) * 3
                })
            })
            .unwrap();
        assert_eq!(v, u32::from(x) * 3);
        format!("ran={}", execs.load(Ordering::SeqCst))
    };
    match *op {
        Op::Call { function, x } => call(Mode::DEFAULT, function, x),
        Op::ReadOnlyCall { function, x } => call(Mode::READ_ONLY, function, x),
        Op::WriteOnlyCall { function, x } => call(Mode::WRITE_ONLY, function, x),
        Op::Contains { function, x } => cache
            .contains(&format!("f{function}"), &(x,))
            .unwrap()
            .to_string(),
        Op::Invalidate { function, x } => cache
            .invalidate(&format!("f{function}"), &(x,))
            .unwrap()
            .to_string(),
        Op::Put { function, x } => cache
            .put(&format!("f{function}"), &(x,), &(u32::from(x) * 3))
            .unwrap()
            .to_string(),
        Op::Expire { function, x } => cache
            .expire(&format!("f{function}"), &(x,))
            .unwrap()
            .to_string(),
        // Serves a kept fallback (an expired entry) or passes the error through.
        Op::FailingCall { function, x } => format!(
            "{:?}",
            cache
                .try_get_or_compute(&format!("f{function}"), &(x,), || Err::<u32, _>("down"))
                .unwrap()
        ),
        Op::PurgeFunction { function } => {
            // Shared layout: a configuration error on both stores.
            format!(
                "{:?}",
                cache
                    .purge_function(&format!("f{function}"))
                    .map_err(|e| e.kind())
            )
        }
        Op::Len => cache.len().unwrap().to_string(),
        Op::TaggedCall { function, x, tags } => {
            let options = fncache::CallOptions::new().tags(tag_names(tags));
            let v = cache
                .get_or_compute_with(&options, &format!("f{function}"), &(x,), || {
                    execs.fetch_add(1, Ordering::SeqCst);
                    u32::from(x) * 3
                })
                .unwrap();
            assert_eq!(v, u32::from(x) * 3);
            format!("ran={}", execs.load(Ordering::SeqCst))
        }
        Op::TaggedPut { function, x, tags } => cache
            .put_with(
                &fncache::CallOptions::new().tags(tag_names(tags)),
                &format!("f{function}"),
                &(x,),
                &(u32::from(x) * 3),
            )
            .unwrap()
            .to_string(),
        Op::InvalidateTag { tag } => cache
            .invalidate_tag(&format!("t{tag}"))
            .unwrap()
            .to_string(),
        Op::Batch { function, ref xs } => {
            let args: Vec<(u8,)> = xs.iter().map(|&x| (x,)).collect();
            let mut ran = Vec::new();
            let values = cache
                .get_or_compute_many(&format!("f{function}"), &args, |missing: Vec<(u8,)>| {
                    ran.extend(missing.iter().map(|(x,)| *x));
                    missing
                        .iter()
                        .map(|(x,)| u32::from(*x) * 3)
                        .collect::<Vec<u32>>()
                })
                .unwrap();
            let expected: Vec<u32> = xs.iter().map(|&x| u32::from(x) * 3).collect();
            assert_eq!(values, expected);
            format!("ran={ran:?}")
        }
        Op::OwnRefreshCall { function, x } => {
            let options = fncache::CallOptions::new()
                .refresh_after_from(|_: &u32| std::time::Duration::from_secs(3600));
            let v = cache
                .get_or_compute_with(&options, &format!("f{function}"), &(x,), || {
                    execs.fetch_add(1, Ordering::SeqCst);
                    u32::from(x) * 3
                })
                .unwrap();
            assert_eq!(v, u32::from(x) * 3);
            format!("ran={}", execs.load(Ordering::SeqCst))
        }
    }
}

fn contents(cache: &blocking::Cache) -> Vec<(u8, u8)> {
    let mut out = Vec::new();
    for function in 0..3u8 {
        for x in 0..6u8 {
            if cache.contains(&format!("f{function}"), &(x,)).unwrap() {
                out.push((function, x));
            }
        }
    }
    out
}

/// One server for all cases (each case uses its own cache name), owned by the test so that it
/// is killed when the test ends.
#[test]
fn memory_model_and_redis_agree() {
    let server = RedisServer::spawn();
    let strategy = (
        prop::sample::select(vec![
            Policy::Lru,
            Policy::LruT,
            Policy::Fifo,
            Policy::FifoT,
            Policy::Lfu,
            Policy::Mru,
            Policy::TinyLfu,
        ]),
        prop::sample::select(vec![Layout::Shared, Layout::PerFunction]),
        1usize..5,
        prop::collection::vec(op(), 1..60),
    );
    let mut runner = TestRunner::new(Config {
        cases: 56,
        ..Config::default()
    });
    let outcome = runner.run(&strategy, |(policy, layout, maxsize, ops)| {
        let name = unique_name();
        let configure = |b: fncache::Builder| b.policy(policy).layout(layout).maxsize(maxsize);
        let model = configure(Cache::builder(&name)).build_blocking().unwrap();
        let redis = configure(Cache::builder(&name))
            .redis(server.url())
            .build_blocking()
            .unwrap();
        for (step, op) in ops.iter().enumerate() {
            let (m, r) = (apply(&model, op), apply(&redis, op));
            prop_assert_eq!(&m, &r, "step {} {:?}", step, op);
        }
        prop_assert_eq!(contents(&model), contents(&redis));
        prop_assert_eq!(model.stats(), redis.stats());
        prop_assert_eq!(model.purge().unwrap(), redis.purge().unwrap());
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("the model and Redis disagree: {failure}");
    }
}

#[test]
fn random_policy_agrees_on_sizes() {
    let server = RedisServer::spawn();
    let model = Cache::builder("rr")
        .policy(Policy::Random)
        .maxsize(4)
        .build_blocking()
        .unwrap();
    let redis = Cache::builder("rr")
        .policy(Policy::Random)
        .maxsize(4)
        .redis(server.url())
        .build_blocking()
        .unwrap();
    for x in 0..50u32 {
        for cache in [&model, &redis] {
            cache.get_or_compute("f", &(x % 9,), || x).unwrap();
        }
        assert_eq!(model.len().unwrap(), redis.len().unwrap());
    }
    assert_eq!(model.stats().calls, redis.stats().calls);
}

/// `Policy::TinyLfu` at a size where its sketch has several slices and ages many times (the
/// Redis scripts halve it lazily, slice by slice; the embedded store all at once): a long
/// skewed sequence of calls gives the same hit or miss at every call on both.
#[test]
fn tinylfu_agrees_with_the_model_through_aging() {
    let server = RedisServer::spawn();
    let (model, redis) = tinylfu_pair(&server, "tlfu", 300);
    let mut rng = fastrand::Rng::with_seed(12);
    // Skewed over 1,500 keys: a few hot, a long tail, and bursts of fresh keys.
    let keys = (0..12_000u32).map(|step| match rng.u8(..10) {
        0..=5 => rng.u32(..60),
        6..=8 => rng.u32(..1500),
        _ => 10_000 + step,
    });
    let hits = hit_alike(&model, &redis, keys);
    // The filter at work: far more hits than the hot keys' share of an LRU would give.
    assert!(hits > 5_000, "{hits} hits");
    assert_eq!(model.len().unwrap(), redis.len().unwrap());
    assert_eq!(model.len().unwrap(), 300);
}

/// `Policy::TinyLfu`'s climber over many samples of a noisy workload: the window's size moves
/// once per sample of 1,280 lookups, in the direction its hits per entry against the main
/// space's say, so those counts must be kept alike on Redis and on the embedded store, or the
/// window's size, and then the hits, part. Phases of three samples that move the hit rate by
/// more than 5 points restart the climber's step (which otherwise decays to nothing within a
/// few samples at this size).
#[test]
fn tinylfu_climbs_like_the_model() {
    let server = RedisServer::spawn();
    let (model, redis) = tinylfu_pair(&server, "climb", 100);
    let mut rng = fastrand::Rng::with_seed(7);
    let mut recent = [0u32; 40];
    // Twenty samples: hot keys, a tail, and repeats of recent keys (what a larger window
    // catches), the tail's share changing every three samples.
    let keys = (0..25_600usize).map(|step| {
        let tail = if step / 3_840 % 2 == 0 { 2 } else { 6 };
        let x = match rng.u8(..10) {
            n if n < tail => 1_000 + rng.u32(..5_000),
            n if n < 8 => recent[rng.usize(..recent.len())],
            _ => rng.u32(..60),
        };
        recent[step % recent.len()] = x;
        x
    });
    let hits = hit_alike(&model, &redis, keys);
    assert!(hits > 5_000, "{hits} hits");
}

/// `Policy::TinyLfu`'s climber steers by the hits found in the window against those found in
/// the main space within each sample: phases of recency (keys repeated soon after their first
/// use, which a larger window keeps) alternate with phases of frequency (a hot set, which the
/// main space keeps), so the window grows and shrinks many times. Overwrites of cached
/// entries (`put`) are uses but not lookups: they must not count as window hits on either
/// store. Every call must hit or miss alike, and every `put` replace alike.
#[test]
fn tinylfu_steers_the_window_by_its_hits_like_the_model() {
    let server = RedisServer::spawn();
    let (model, redis) = tinylfu_pair(&server, "steer", 200);
    let mut rng = fastrand::Rng::with_seed(21);
    let mut recent = [0u32; 150];
    let mut fresh = 100_000u32;
    let mut hits = 0;
    // Sixteen phases of two samples (2,000 x 2 lookups) each.
    for step in 0..64_000usize {
        let recency = step / 4_000 % 2 == 0;
        let x = match rng.u8(..10) {
            n if recency && n < 6 => recent[rng.usize(..recent.len())],
            n if !recency && n < 6 => rng.u32(..120),
            _ => {
                fresh += 1;
                fresh
            }
        };
        recent[step % recent.len()] = x;
        if step % 7 == 0 {
            // An overwrite (or the put of a new entry): a use, not a lookup.
            let (m, r) = (model.put("f", &(x,), &x), redis.put("f", &(x,), &x));
            assert_eq!(m.unwrap(), r.unwrap(), "step {step}: put f({x})");
            continue;
        }
        hits += hit_alike(&model, &redis, std::iter::once(x));
    }
    assert!(hits > 10_000, "{hits} hits");
    assert_eq!(model.len().unwrap(), redis.len().unwrap());
}

/// `Policy::TinyLfu`'s random admission of warm candidates (Caffeine's guard against a hot
/// victim that keeps every candidate out): a loop over 3 x `maxsize` keys keeps every key warm
/// (a frequency of 7 or more), so nearly every miss is a duel of two warm keys that the victim
/// wins on frequency alone, and only the deterministic 1-in-128 draw lets a candidate in. Redis
/// must draw the same as the embedded store, call by call.
#[test]
fn tinylfu_admits_warm_candidates_like_the_model() {
    let server = RedisServer::spawn();
    let (model, redis) = tinylfu_pair(&server, "warm", 10);
    let hits = hit_alike(&model, &redis, (0..6_000u32).map(|step| step % 30));
    // The filter holds most of the main space against the loop, as an LRU could not.
    assert!(hits > 1_000, "{hits} hits");
}

/// A `TinyLfu` cache of `maxsize` named `name` on the embedded store (the model) and the
/// same on `server`.
fn tinylfu_pair(
    server: &RedisServer,
    name: &str,
    maxsize: usize,
) -> (fncache::blocking::Cache, fncache::blocking::Cache) {
    let configure = |b: fncache::Builder| b.policy(Policy::TinyLfu).maxsize(maxsize);
    let model = configure(Cache::builder(name)).build_blocking().unwrap();
    let redis = configure(Cache::builder(name))
        .redis(server.url())
        .build_blocking()
        .unwrap();
    (model, redis)
}

/// Calls `f(x)` for each key on the model and on Redis and asserts that both ran the body (or
/// both hit) at every step; returns the hits.
fn hit_alike(
    model: &fncache::blocking::Cache,
    redis: &fncache::blocking::Cache,
    keys: impl Iterator<Item = u32>,
) -> u32 {
    let (mut hits, execs) = (0, AtomicU64::new(0));
    for (step, x) in keys.enumerate() {
        let mut ran = [false; 2];
        for (i, cache) in [model, redis].into_iter().enumerate() {
            let before = execs.load(Ordering::SeqCst);
            let v = cache
                .get_or_compute("f", &(x,), || {
                    execs.fetch_add(1, Ordering::SeqCst);
                    x
                })
                .unwrap();
            assert_eq!(v, x);
            ran[i] = execs.load(Ordering::SeqCst) != before;
        }
        assert_eq!(ran[0], ran[1], "step {step}: f({x})");
        hits += u32::from(!ran[0]);
    }
    hits
}
