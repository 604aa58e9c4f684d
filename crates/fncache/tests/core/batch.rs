//! Batches: `get_or_compute_many` looks every key up together, computes only the missing ones
//! with one call, stores them together, and keeps each key's stampede protection, on both
//! stores and both front-ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fncache::{Cache, CallOptions, ErrorKind, Options};
use fncache_testing::RedisServer;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::front::Front;
use crate::support::{Store, all_fronts, describe, unique_name};

/// A batch of `function` through either front-end, with `compute` as `compute_missing`.
fn many<O, A, T>(
    front: &Front,
    options: &O,
    function: &str,
    args: &[A],
    mut compute: impl FnMut(Vec<A>) -> Vec<T>,
) -> Result<Vec<T>, fncache::Error>
where
    O: Options<T>,
    A: Serialize + Clone,
    T: Serialize + DeserializeOwned + Clone,
{
    match front {
        Front::Blocking(c) => c.get_or_compute_many_with(options, function, args, compute),
        Front::Async(c, rt) => {
            rt.block_on(
                c.get_or_compute_many_with(options, function, args, |missing| {
                    let values = compute(missing);
                    async move { values }
                }),
            )
        }
    }
}

/// `x * 10` for each `x`, recording what was asked in `asked`.
fn tens(asked: &Mutex<Vec<Vec<u64>>>) -> impl FnMut(Vec<u64>) -> Vec<u64> + '_ {
    move |xs: Vec<u64>| {
        asked.lock().unwrap().push(xs.clone());
        xs.iter().map(|x| x * 10).collect()
    }
}

fn none() -> CallOptions {
    CallOptions::new()
}

#[test]
fn a_batch_computes_only_the_missing_keys_with_one_call() {
    for (store, front) in all_fronts(|b| b) {
        let who = describe(&store, &front);
        let execs = AtomicU64::new(0);
        // Hits for 1 and 3, by the single-call API (a batch's keys are the same keys).
        front.call("f", 1, &execs);
        front.call("f", 3, &execs);
        let before = front.stats_for("f").unwrap();
        let asked = Mutex::new(Vec::new());
        let values = many(&front, &none(), "f", &[(1u64,), (2,), (3,), (4,)], |xs| {
            tens(&asked)(xs.into_iter().map(|(x,)| x).collect())
        })
        .unwrap();
        assert_eq!(values, [10, 20, 30, 40], "{who}");
        assert_eq!(
            *asked.lock().unwrap(),
            [vec![2, 4]],
            "{who}: only the misses"
        );
        let after = front.stats_for("f").unwrap();
        assert_eq!(after.hits - before.hits, 2, "{who}");
        assert_eq!(after.misses - before.misses, 2, "{who}");
        // All four are cached now, for batches and single calls alike.
        assert!(front.is_hit("f", 2) && front.is_hit("f", 4), "{who}");
        let again = many(
            &front,
            &none(),
            "f",
            &[(4u64,), (1,)],
            |_: Vec<(u64,)>| -> Vec<u64> { panic!("{who}: nothing is missing") },
        )
        .unwrap();
        assert_eq!(again, [40, 10], "{who}");
    }
}

#[test]
fn duplicate_arguments_are_computed_once_and_answered_in_place() {
    for (store, front) in all_fronts(|b| b) {
        let who = describe(&store, &front);
        let asked = Mutex::new(Vec::new());
        let values = many(&front, &none(), "dup", &[5u64, 5, 6, 5], tens(&asked)).unwrap();
        assert_eq!(values, [50, 50, 60, 50], "{who}");
        assert_eq!(*asked.lock().unwrap(), [vec![5, 6]], "{who}");
        let s = front.stats_for("dup").unwrap();
        assert_eq!(
            (s.calls, s.misses, s.execs),
            (2, 2, 2),
            "{who}: per distinct key"
        );
    }
}

#[test]
fn an_empty_batch_does_nothing() {
    for (store, front) in all_fronts(|b| b.shared_stats(false)) {
        let who = describe(&store, &front);
        let mut con = store.server().map(RedisServer::connection);
        let commands = con.as_mut().map(|c| counters_on(c).commands);
        let values: Vec<u64> = many(&front, &none(), "empty", &[] as &[u64], |_| {
            panic!("{who}: nothing to compute")
        })
        .unwrap();
        assert!(values.is_empty(), "{who}");
        if let (Some(con), Some(before)) = (con.as_mut(), commands) {
            // The INFO that reads the counters is the only command since.
            assert_eq!(counters_on(con).commands, before + 1, "{who}: no I/O");
        }
        assert!(
            front.stats_for("empty").is_none_or(|s| s.calls == 0),
            "{who}"
        );
    }
}

#[test]
fn a_wrong_number_of_values_is_an_error_and_stores_nothing() {
    for (store, front) in all_fronts(|b| b.lock_timeout(Duration::from_secs(60))) {
        let who = describe(&store, &front);
        front.call("short", 1, &AtomicU64::new(0));
        for wrong in [1usize, 3] {
            let error = many(&front, &none(), "short", &[(1u64,), (2,), (3,)], |xs| {
                assert_eq!(xs, [(2,), (3,)]);
                vec![7u64; wrong]
            })
            .unwrap_err();
            assert_eq!(error.kind(), ErrorKind::BatchLength, "{who}: {error}");
            assert!(
                error.to_string().contains("for 2 arguments"),
                "{who}: {error}"
            );
            assert!(
                !front.contains("short", 2) && !front.contains("short", 3),
                "{who}"
            );
            assert!(front.contains("short", 1), "{who}: the hit stays");
        }
        if let Some(server) = store.server() {
            assert!(
                lease_keys(server).is_empty(),
                "{who}: the leases are given back"
            );
        }
        // And so the next batch computes at once (a held lease would make it wait a minute).
        let values = many(&front, &none(), "short", &[(2u64,), (3,)], |xs| {
            xs.iter().map(|(x,)| x * 10).collect::<Vec<u64>>()
        })
        .unwrap();
        assert_eq!(values, [20, 30], "{who}");
    }
}

#[test]
fn a_failing_compute_missing_returns_its_error_and_stores_nothing() {
    for (store, front) in all_fronts(|b| b) {
        let who = describe(&store, &front);
        let failed = match &front {
            Front::Blocking(c) => c.try_get_or_compute_many("fails", &[1u64, 2], |_| {
                Err::<Vec<u64>, _>("upstream down")
            }),
            Front::Async(c, rt) => {
                rt.block_on(c.try_get_or_compute_many("fails", &[1u64, 2], |_| async {
                    Err::<Vec<u64>, _>("upstream down")
                }))
            }
        }
        .unwrap();
        assert_eq!(failed, Err("upstream down"), "{who}");
        let counted = AtomicU64::new(0);
        assert_eq!(front.call("fails", 1, &counted), 10, "{who}");
        assert_eq!(
            counted.load(Ordering::SeqCst),
            1,
            "{who}: nothing was stored"
        );
    }
}

/// Counters of a private server.
struct Counters {
    /// Commands processed.
    commands: u64,
    /// Read events processed: one per request or pipeline a client sent (the round trips).
    reads: u64,
    evalsha: u64,
}

/// The counters of a private server, read on a connection of the test's: its `INFO` is one
/// more read and command.
fn counters_on(con: &mut redis::Connection) -> Counters {
    let info: String = redis::cmd("INFO").arg("all").query(con).unwrap();
    let field = |name: &str| -> u64 {
        info.lines()
            .find_map(|line| line.strip_prefix(name))
            .map(|rest| rest.trim().parse().unwrap())
            .unwrap_or(0)
    };
    let evalsha = info
        .lines()
        .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
        .map(|rest| rest.split(',').next().unwrap().parse().unwrap())
        .unwrap_or(0);
    Counters {
        commands: field("total_commands_processed:"),
        reads: field("total_reads_processed:"),
        evalsha,
    }
}

fn lease_keys(server: &RedisServer) -> Vec<String> {
    let mut con = server.connection();
    redis::cmd("KEYS").arg("*:lock:*").query(&mut con).unwrap()
}

#[test]
fn a_batch_looks_up_in_one_round_trip_and_stores_in_one_more() {
    for asynchronous in [false, true] {
        let server = RedisServer::spawn();
        let builder = Cache::builder(unique_name())
            .redis(server.url())
            .shared_stats(false);
        let front = if asynchronous {
            Front::asynchronous(builder)
        } else {
            Front::blocking(builder)
        };
        let who = front.label();
        // Connects, and loads the lookup and put scripts.
        front.call("rt", 0, &AtomicU64::new(0));
        front.call("rt", 1, &AtomicU64::new(0));
        let asked = Mutex::new(Vec::new());
        let mut con = server.connection();
        let before = counters_on(&mut con);
        let keys: Vec<u64> = (1..=8).collect();
        let values = many(&front, &none(), "rt", &keys, tens(&asked)).unwrap();
        let after = counters_on(&mut con);
        assert_eq!(values, keys.iter().map(|k| k * 10).collect::<Vec<_>>());
        assert_eq!(asked.lock().unwrap().len(), 1);
        // Eight lookups and eight puts (each releasing its key's lease) ...
        assert_eq!(after.evalsha - before.evalsha, 16, "{who}");
        // ... in two round trips (the second INFO is the third read).
        assert_eq!(after.reads - before.reads, 3, "{who}: lookups, then puts");
        // A batch of hits is one round trip.
        let before = counters_on(&mut con);
        many(&front, &none(), "rt", &keys, |_: Vec<u64>| -> Vec<u64> {
            panic!("{who}: all cached")
        })
        .unwrap();
        let after = counters_on(&mut con);
        assert_eq!(after.evalsha - before.evalsha, 8, "{who}");
        assert_eq!(after.reads - before.reads, 2, "{who}: one round trip");
    }
}

/// Waits (polling, no fixed sleep) until `cache` has had a caller wait for another's value.
fn until_someone_waits(stats: impl Fn() -> fncache::Stats) {
    let start = std::time::Instant::now();
    while stats().lock_waits == 0 {
        assert!(start.elapsed() < Duration::from_secs(30), "nobody waited");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A batch a test starts on another thread from inside a body.
type Started = Mutex<Option<std::thread::JoinHandle<Result<Vec<u64>, fncache::Error>>>>;

/// The batch a test started on another thread from inside a body, joined: its answer.
fn joined(slot: Started) -> Vec<u64> {
    slot.into_inner()
        .unwrap()
        .expect("the batch was started")
        .join()
        .unwrap()
        .unwrap()
}

/// Two batches whose keys overlap, the second started while the first computes: every key is
/// computed once, by whichever batch held it first. `two` is another handle of the same cache
/// (this process: it follows the first batch's flights) or another cache on the same store
/// (another process: it polls the first batch's leases).
fn overlapping_batches(one: fncache::blocking::Cache, two: fncache::blocking::Cache, who: &str) {
    let computed = Arc::new(Mutex::new(Vec::new()));
    let second = Mutex::new(None);
    let first = one
        .get_or_compute_many("ov", &[1u64, 2, 3], |xs: Vec<u64>| {
            computed.lock().unwrap().extend(xs.iter().copied());
            let (log, other) = (Arc::clone(&computed), two.clone());
            *second.lock().unwrap() = Some(std::thread::spawn(move || {
                other.get_or_compute_many("ov", &[4u64, 2, 3], |xs: Vec<u64>| {
                    log.lock().unwrap().extend(xs.iter().copied());
                    xs.iter().map(|x| x * 100).collect::<Vec<u64>>()
                })
            }));
            // The second batch computes its own key 4 and waits for 2 and 3.
            until_someone_waits(|| two.stats());
            xs.iter().map(|x| x * 10).collect()
        })
        .unwrap();
    let second = joined(second);
    assert_eq!(first, [10, 20, 30], "{who}");
    assert_eq!(second, [400, 20, 30], "{who}: 2 and 3 were waited for");
    let mut computed = computed.lock().unwrap().clone();
    computed.sort_unstable();
    assert_eq!(computed, [1, 2, 3, 4], "{who}: each key once");
}

#[test]
fn overlapping_batches_compute_each_key_once() {
    for store in [Store::memory(), Store::redis()] {
        let name = unique_name();
        let one = store.apply(Cache::builder(&name)).build_blocking().unwrap();
        overlapping_batches(one.clone(), one, "one process");
    }
    let store = Store::redis();
    let name = unique_name();
    let one = store.apply(Cache::builder(&name)).build_blocking().unwrap();
    let two = store.apply(Cache::builder(&name)).build_blocking().unwrap();
    overlapping_batches(one, two, "two processes");
}

#[test]
fn overlapping_async_batches_compute_each_key_once() {
    for store in [Store::memory(), Store::redis()] {
        let cache = store.apply(Cache::builder(unique_name())).build().unwrap();
        let rt = crate::front::runtime();
        let computed = Mutex::new(Vec::new());
        let (first, second) = rt.block_on(async {
            let (computed, cache) = (&computed, &cache);
            let first = cache.get_or_compute_many("ov", &[1u64, 2, 3], |xs: Vec<u64>| async move {
                computed.lock().unwrap().extend(xs.iter().copied());
                // Until the second batch waits for 2 and 3.
                while cache.stats().lock_waits == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                xs.iter().map(|x| x * 10).collect::<Vec<u64>>()
            });
            let second =
                cache.get_or_compute_many("ov", &[4u64, 2, 3], |xs: Vec<u64>| async move {
                    computed.lock().unwrap().extend(xs.iter().copied());
                    xs.iter().map(|x| x * 100).collect::<Vec<u64>>()
                });
            tokio::join!(first, second)
        });
        // Both batches' lookups may go out at once (on two connections, as they connect
        // together): which batch computes 2 and 3 is a race, but each key is computed once
        // and both batches answer its one value.
        let (first, second) = (first.unwrap(), second.unwrap());
        assert_eq!((first[0], second[0]), (10, 400));
        assert_eq!(first[1..], second[1..]);
        let mut computed = computed.into_inner().unwrap();
        computed.sort_unstable();
        assert_eq!(computed, [1, 2, 3, 4], "each key once");
    }
}

/// A single call of `name(2)` whose body (`single`) runs while a batch of `name([1, 2])`,
/// started from inside that body on another thread, looks its keys up: what the single call
/// returned, what the batch answered, and the missing keys each `compute_missing` was asked.
type SingleThenBatch<R> = (R, Vec<u64>, Vec<Vec<u64>>);

fn batch_inside_a_single_call<R>(
    cache: &fncache::blocking::Cache,
    name: &str,
    single: impl FnOnce(&dyn Fn()) -> R,
) -> SingleThenBatch<R> {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let batch = Mutex::new(None);
    let started = || {
        let (asked, other, name) = (Arc::clone(&asked), cache.clone(), name.to_owned());
        *batch.lock().unwrap() = Some(std::thread::spawn(move || {
            other.get_or_compute_many(&name, &[1u64, 2], |xs: Vec<u64>| {
                asked.lock().unwrap().push(xs.clone());
                xs.iter().map(|x| x * 10).collect::<Vec<u64>>()
            })
        }));
        until_someone_waits(|| cache.stats());
    };
    let out = single(&started);
    let batch = joined(batch);
    let asked = asked.lock().unwrap().clone();
    (out, batch, asked)
}

#[test]
fn a_batch_waits_for_a_single_call_computing_one_of_its_keys() {
    for store in [Store::memory(), Store::redis()] {
        let cache = store
            .apply(Cache::builder(unique_name()))
            .build_blocking()
            .unwrap();
        let (single, batch, asked) = batch_inside_a_single_call(&cache, "sb", |start| {
            cache
                .get_or_compute("sb", &2u64, || {
                    start();
                    21u64
                })
                .unwrap()
        });
        assert_eq!(single, 21);
        assert_eq!(batch, [10, 21], "the single call's value for 2");
        assert_eq!(asked, [vec![1]]);
    }
}

#[test]
fn a_batch_fails_open_when_the_backend_is_down() {
    let server = RedisServer::spawn();
    let url = server.url();
    drop(server);
    for asynchronous in [false, true] {
        let builder = Cache::builder(unique_name())
            .redis(&url)
            .op_timeout(Duration::from_millis(200));
        let front = if asynchronous {
            Front::asynchronous(builder)
        } else {
            Front::blocking(builder)
        };
        let asked = Mutex::new(Vec::new());
        let values = many(&front, &none(), "down", &[1u64, 2, 2], tens(&asked)).unwrap();
        assert_eq!(values, [10, 20, 20], "{}", front.label());
        assert_eq!(*asked.lock().unwrap(), [vec![1, 2]], "{}", front.label());
        let s = front.stats_for("down").unwrap();
        assert!(s.errors > 0, "{}: counted", front.label());
    }
}

#[test]
fn a_batch_honours_the_options_for_each_key() {
    for (store, front) in all_fronts(|b| b) {
        let who = describe(&store, &front);
        let options = CallOptions::new()
            .entry_ttl(Duration::from_secs(60))
            .tags(["batch"])
            .cache_if(|v: &u64| *v != 30);
        let asked = Mutex::new(Vec::new());
        let values = many(&front, &options, "opt", &[1u64, 2, 3], tens(&asked)).unwrap();
        assert_eq!(values, [10, 20, 30], "{who}");
        assert_eq!(
            front.invalidate_tag("batch"),
            2,
            "{who}: tagged, and 30 was refused"
        );
        let switched_off = many(&front, &none(), "opt", &[1u64], tens(&asked));
        assert_eq!(switched_off.unwrap(), [10], "{who}");
        assert_eq!(asked.lock().unwrap().len(), 2, "{who}: 1 was invalidated");
    }
}

#[test]
fn a_switched_off_cache_computes_the_whole_batch() {
    for (store, front) in all_fronts(|b| b.enabled(false)) {
        let who = describe(&store, &front);
        let asked = Mutex::new(Vec::new());
        let values = many(&front, &none(), "off", &[3u64, 1, 3], tens(&asked)).unwrap();
        assert_eq!(values, [30, 10, 30], "{who}");
        assert_eq!(*asked.lock().unwrap(), [vec![3, 1]], "{who}");
        assert_eq!(front.len(), 0, "{who}");
    }
}

#[test]
fn a_value_the_codec_cannot_represent_is_returned_but_not_stored() {
    for (store, front) in all_fronts(|b| b) {
        let who = describe(&store, &front);
        let batch = |asked: &Mutex<Vec<Vec<u64>>>| {
            many(&front, &none(), "fid", &[1u64, 2], |xs: Vec<u64>| {
                asked.lock().unwrap().push(xs.clone());
                // MessagePack cannot tell Some(None) from None.
                xs.iter()
                    .map(|&x| if x == 1 { Some(None) } else { Some(Some(x)) })
                    .collect::<Vec<Option<Option<u64>>>>()
            })
            .unwrap()
        };
        let asked = Mutex::new(Vec::new());
        assert_eq!(batch(&asked), [Some(None), Some(Some(2))], "{who}");
        assert_eq!(batch(&asked), [Some(None), Some(Some(2))], "{who}");
        assert_eq!(*asked.lock().unwrap(), [vec![1, 2], vec![1]], "{who}");
    }
}

#[test]
fn a_batch_reloads_scripts_the_server_lost() {
    for asynchronous in [false, true] {
        let server = RedisServer::spawn();
        let builder = Cache::builder(unique_name()).redis(server.url());
        let front = if asynchronous {
            Front::asynchronous(builder)
        } else {
            Front::blocking(builder)
        };
        front.call("lost", 1, &AtomicU64::new(0));
        // A restart or failover loses the scripts: every pipelined call answers NOSCRIPT.
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut server.connection())
            .unwrap();
        let asked = Mutex::new(Vec::new());
        // Keyed as the single calls are, by a tuple of the arguments.
        let values = many(&front, &none(), "lost", &[(1u64,), (2,), (3,)], |xs| {
            tens(&asked)(xs.into_iter().map(|(x,)| x).collect())
        })
        .unwrap();
        assert_eq!(values, [10, 20, 30], "{}", front.label());
        assert_eq!(*asked.lock().unwrap(), [vec![2, 3]], "{}", front.label());
        assert!(
            front.contains("lost", 2) && front.contains("lost", 3),
            "{}",
            front.label()
        );
        assert_eq!(
            front.stats_for("lost").unwrap().errors,
            0,
            "{}",
            front.label()
        );
    }
}

#[test]
fn a_batch_refreshes_the_stale_keys_it_holds_and_serves_the_fresh_ones() {
    let clock = Arc::new(fncache::clock::ManualClock::new());
    for asynchronous in [false, true] {
        let builder = Cache::builder(unique_name())
            .memory()
            .clock(clock.clone())
            .refresh_after(Duration::from_secs(10));
        let front = if asynchronous {
            Front::asynchronous(builder)
        } else {
            Front::blocking(builder)
        };
        let asked = Mutex::new(Vec::new());
        many(&front, &none(), "st", &[1u64, 2], tens(&asked)).unwrap();
        clock.advance(Duration::from_secs(11));
        many(&front, &none(), "st", &[3u64], tens(&asked)).unwrap();
        // 1 and 2 are stale: this batch wins their refresh and recomputes them, inline.
        let values = many(&front, &none(), "st", &[1u64, 2, 3], |xs: Vec<u64>| {
            asked.lock().unwrap().push(xs.clone());
            xs.iter().map(|x| x * 100).collect::<Vec<u64>>()
        })
        .unwrap();
        assert_eq!(values, [100, 200, 30], "{}", front.label());
        assert_eq!(asked.lock().unwrap()[2], [1, 2], "{}", front.label());
        assert_eq!(
            front.stats_for("st").unwrap().refreshes,
            2,
            "{}",
            front.label()
        );
    }
}

#[test]
fn a_batch_works_under_touch_batch() {
    for (store, front) in all_fronts(|b| b.touch_batch(Duration::from_millis(50))) {
        let who = describe(&store, &front);
        let asked = Mutex::new(Vec::new());
        assert_eq!(
            many(&front, &none(), "tb", &[1u64, 2], tens(&asked)).unwrap(),
            [10, 20]
        );
        let values = many(&front, &none(), "tb", &[2u64, 3, 1], tens(&asked)).unwrap();
        assert_eq!(values, [20, 30, 10], "{who}");
        assert_eq!(*asked.lock().unwrap(), [vec![1, 2], vec![3]], "{who}");
        assert_eq!(front.stats_for("tb").unwrap().errors, 0, "{who}");
    }
}

#[test]
fn a_key_whose_holder_fails_is_computed_by_a_second_call() {
    for store in [Store::memory(), Store::redis()] {
        let cache = store
            .apply(Cache::builder(unique_name()))
            .build_blocking()
            .unwrap();
        let (single, batch, asked) = batch_inside_a_single_call(&cache, "hf", |start| {
            cache
                .try_get_or_compute("hf", &2u64, || {
                    start();
                    Err::<u64, _>("the holder of 2 fails")
                })
                .unwrap()
        });
        assert!(single.is_err());
        assert_eq!(batch, [10, 20]);
        // 1 at once; 2 once its holder gave up (compute_missing is FnMut for this).
        assert_eq!(asked, [vec![1], vec![2]]);
    }
}

#[test]
fn a_batch_future_can_be_spawned() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cache = Cache::builder(unique_name()).memory().build().unwrap();
    let ids = vec![1u64, 2];
    let values = rt.block_on(async move {
        // `tokio::spawn` needs the batch's future to be `Send`.
        tokio::spawn(async move {
            cache
                .get_or_compute_many("spawned", &ids, |xs: Vec<u64>| async move {
                    tokio::task::yield_now().await;
                    xs.iter().map(|x| x + 1).collect::<Vec<u64>>()
                })
                .await
        })
        .await
        .unwrap()
    });
    assert_eq!(values.unwrap(), [2, 3]);
}

/// Red team: a `compute_missing` that panics leaves none of the batch's keys held (no lease,
/// no flight): the next call of a key computes at once, not after `lock_timeout`.
#[test]
fn a_batch_whose_compute_missing_panics_leaves_no_key_waiting() {
    for (store, front) in all_fronts(|b| b.lock_timeout(Duration::from_secs(30))) {
        let who = describe(&store, &front);
        let args = [(1u64,), (2,), (1,)];
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            many(&front, &none(), "f", &args, |_: Vec<(u64,)>| -> Vec<u64> {
                panic!("compute_missing fails")
            })
        }));
        assert!(panicked.is_err(), "{who}: the panic reaches the caller");
        let execs = AtomicU64::new(0);
        let start = std::time::Instant::now();
        assert_eq!(front.call("f", 1, &execs), 10, "{who}");
        assert_eq!(front.call("f", 2, &execs), 20, "{who}");
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{who}: waited {:?} for keys of a panicked batch",
            start.elapsed()
        );
        assert_eq!(execs.load(Ordering::SeqCst), 2, "{who}");
    }
}

/// Red team: duplicates, hits and misses in one batch on a cache that holds one entry: each
/// place gets its own key's value.
#[test]
fn a_batch_on_a_cache_of_one_entry_answers_each_place_with_its_key() {
    for (store, front) in all_fronts(|b| b.maxsize(1)) {
        let who = describe(&store, &front);
        front.put_with(&none(), "f", 2, &99u64).unwrap();
        let asked = Mutex::new(Vec::new());
        let args = [(1u64,), (2,), (1,), (3,), (2,)];
        let got = many(&front, &none(), "f", &args, |xs: Vec<(u64,)>| {
            asked.lock().unwrap().push(xs.clone());
            xs.iter().map(|x| x.0 * 10).collect::<Vec<u64>>()
        })
        .unwrap();
        assert_eq!(got, [10, 99, 10, 30, 99], "{who}");
        assert_eq!(*asked.lock().unwrap(), [vec![(1,), (3,)]], "{who}");
        // Whatever is left in the cache is a key's own value.
        for x in [1u64, 2, 3] {
            let v = front.call_with(&none(), "f", x, || 7777u64).unwrap();
            assert!(
                v == 7777 || v == if x == 2 { 99 } else { x * 10 },
                "{who}: {x} -> {v}"
            );
        }
    }
}
