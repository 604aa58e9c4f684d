//! What does the cache cost on top of Redis itself?
//!
//! A Redis-backed fncache call is a network round trip plus work on both sides: hashing the
//! arguments into a member, running a Lua script (the lookup also records the use for the
//! eviction policy and renews the structure TTL), and decoding the stored envelope. This bench
//! puts that next to the cheapest thing a hand-written cache could do against the same server,
//! for a value of the same size (a ~100 byte and a ~4 KiB string):
//!
//! - `raw_get` vs `cache_hit`: one redis-rs `GET` of a key holding the value, against a blocking
//!   [`fncache::blocking::Cache::get_or_compute`] hit (default policy `LruT`, and `Lru`).
//!   Goal: a hit costs at most 1.3x a raw `GET` round trip.
//! - `raw_get_set` vs `cache_miss_store`: a raw `GET` that misses followed by a raw `SET` of
//!   the value, against a cache call with a fresh argument every iteration, so that every call
//!   misses, computes and stores. Goal: a miss plus store costs at most 1.3x a raw `GET`+`SET`.
//!
//! Everything runs on one throwaway `redis-server` on loopback (spawned by
//! [`fncache_testing::RedisServer`]), so the numbers are dominated by round trips and
//! server-side work, which is exactly the overhead that matters for a cache.
//!
//! Criterion reports each pair side by side (groups `hit_<size>` and `store_<size>`). After the
//! criterion groups the bench measures every variant again with plain [`Instant`] timing,
//! interleaving the variants in small chunks so that drift (CPU frequency, other load) hits all
//! of them alike, and prints the ratios against the goals. Next to each wall time it prints
//! the Redis-side execution time per op (from `INFO commandstats`, measured in a separate
//! short pass), which splits the overhead into Lua work on the server and client work.
//!
//! The ratios depend on how fast the round trip is: the cache's overhead is mostly a fixed
//! cost per call, so a fast, idle loopback shows the worst ratio and a busy machine (or a real
//! network) a better one. Compare ratios from one run, not across machines.
//!
//! Run with `cargo bench --bench hit_vs_get`; with `-- --test` every benchmark runs once and the
//! ratio pass is shortened to a smoke test; with `-- --ratios` only the ratio pass runs.

#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use fncache::{Cache, DEFAULT_MAXSIZE, Policy, blocking};
use fncache_testing::RedisServer;

/// Value sizes: a label for the reports and the length in bytes.
const SIZES: [(&str, usize); 2] = [("100B", 100), ("4KiB", 4096)];

/// Policies of the cache variants: the default (`LruT`) and the counter-based `Lru`.
const POLICIES: [(&str, Policy); 2] = [("LruT", Policy::LruT), ("Lru", Policy::Lru)];

/// Operations per variant in the ratio pass.
const RATIO_OPS: usize = 20_000;
/// Operations per variant in the ratio pass under `--test`.
const RATIO_OPS_TEST: usize = 200;
/// Operations run back to back before switching to the next variant in the ratio pass.
const CHUNK: usize = 250;

/// The goal for both ratios.
const GOAL: f64 = 1.3;

/// One measured operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Raw `GET` of a key holding the value.
    RawGet,
    /// Cache hit, with the policy at this index of [`POLICIES`].
    CacheHit(usize),
    /// Raw `GET` of an absent key, then raw `SET` of the value.
    RawGetSet,
    /// Cache miss, compute and store, with the policy at this index of [`POLICIES`].
    CacheMissStore(usize),
}

impl Op {
    fn all() -> Vec<Op> {
        let mut ops = vec![Op::RawGet, Op::RawGetSet];
        for p in 0..POLICIES.len() {
            ops.push(Op::CacheHit(p));
            ops.push(Op::CacheMissStore(p));
        }
        ops
    }
}

/// Everything the operations of one value size need, all on the same server.
struct Fixture {
    label: &'static str,
    value: String,
    /// A plain synchronous connection for the raw commands.
    con: redis::Connection,
    /// Holds the value, for `raw_get`.
    raw_key: String,
    /// Never written, so the `GET` of `raw_get_set` always misses.
    absent_key: String,
    /// Keys the `SET` of `raw_get_set` cycles through. As many as the cache's `maxsize`, so
    /// the raw side keeps as much data as the cache does (and the server's memory stays flat
    /// however long criterion iterates), without paying for any eviction bookkeeping.
    ring: Vec<String>,
    next_ring: usize,
    /// Filled once with the value under `HIT_FUNCTION(HIT_ARGS)`; one per policy.
    hit_caches: Vec<blocking::Cache>,
    /// Receive a fresh argument on every call; one per policy.
    ///
    /// They keep the default `maxsize` (1024) and are prefilled past it, so in the steady
    /// state every store also evicts exactly one entry (`ZPOPMIN` + `HDEL` + `ZREM` inside the
    /// put script). That eviction is part of the real cost of a miss in a full cache, and it
    /// is deliberately included in `cache_miss_store`.
    miss_caches: Vec<blocking::Cache>,
    next_arg: u64,
}

const HIT_FUNCTION: &str = "bench";
const HIT_ARGS: (u64,) = (1,);
const MISS_FUNCTION: &str = "bench_miss";

impl Fixture {
    fn new(server: &RedisServer, label: &'static str, size: usize) -> Fixture {
        // ASCII, so the MessagePack encoding is the string plus a 2 or 3 byte header and the
        // stored sizes of raw and cached values differ only by fncache's 18-byte envelope head.
        let value: String = "abcdefghijklmnopqrstuvwxyz0123456789"
            .chars()
            .cycle()
            .take(size)
            .collect();
        let mut con = server.connection();
        let raw_key = format!("bench:raw:{label}");
        let _: () = redis::cmd("SET")
            .arg(&raw_key)
            .arg(value.as_bytes())
            .query(&mut con)
            .expect("raw SET of the raw_get key");
        let ring = (0..DEFAULT_MAXSIZE)
            .map(|i| format!("bench:ring:{label}:{i}"))
            .collect();

        let build = |kind: &str, policy_name: &str, policy: Policy| {
            Cache::builder(format!("bench-{kind}-{policy_name}-{label}"))
                .redis(server.url())
                .policy(policy)
                .build_blocking()
                .expect("building a Redis-backed blocking cache")
        };
        let hit_caches: Vec<blocking::Cache> = POLICIES
            .iter()
            .map(|&(name, policy)| build("hit", name, policy))
            .collect();
        let miss_caches: Vec<blocking::Cache> = POLICIES
            .iter()
            .map(|&(name, policy)| build("miss", name, policy))
            .collect();

        let mut fixture = Fixture {
            label,
            value,
            con,
            raw_key,
            absent_key: format!("bench:absent:{label}"),
            ring,
            next_ring: 0,
            hit_caches,
            miss_caches,
            next_arg: 0,
        };
        fixture.prefill();
        fixture
    }

    /// Fills the hit caches once and the miss caches past `maxsize` (and the raw ring once),
    /// so that every variant starts in its steady state.
    fn prefill(&mut self) {
        for cache in &self.hit_caches {
            let value = self.value.clone();
            let stored: String = cache
                .get_or_compute(HIT_FUNCTION, &HIT_ARGS, || value)
                .expect("filling a hit cache");
            assert_eq!(stored, self.value);
            let hit: String = cache
                .get_or_compute(HIT_FUNCTION, &HIT_ARGS, String::new)
                .expect("first hit");
            assert_eq!(
                hit, self.value,
                "the hit cache did not serve the stored value"
            );
        }
        for _ in 0..DEFAULT_MAXSIZE + 64 {
            self.run(Op::RawGetSet);
            for p in 0..self.miss_caches.len() {
                self.run(Op::CacheMissStore(p));
            }
        }
        for cache in &self.miss_caches {
            let stats = cache.stats();
            assert!(
                stats.evictions > 0,
                "the miss caches should be full after prefilling: {stats:?}"
            );
        }
    }

    /// Runs one operation.
    fn run(&mut self, op: Op) {
        match op {
            Op::RawGet => {
                let got: Vec<u8> = redis::cmd("GET")
                    .arg(&self.raw_key)
                    .query(&mut self.con)
                    .expect("raw GET");
                black_box(got);
            }
            Op::CacheHit(p) => {
                let value = &self.value;
                let got: String = self.hit_caches[p]
                    .get_or_compute(HIT_FUNCTION, &HIT_ARGS, || value.clone())
                    .expect("cache hit");
                black_box(got);
            }
            Op::RawGetSet => {
                let got: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&self.absent_key)
                    .query(&mut self.con)
                    .expect("raw GET (miss)");
                black_box(got);
                let key = &self.ring[self.next_ring];
                self.next_ring = (self.next_ring + 1) % self.ring.len();
                let _: () = redis::cmd("SET")
                    .arg(key)
                    .arg(self.value.as_bytes())
                    .query(&mut self.con)
                    .expect("raw SET");
            }
            Op::CacheMissStore(p) => {
                let arg = self.next_arg;
                self.next_arg += 1;
                let value = &self.value;
                let got: String = self.miss_caches[p]
                    .get_or_compute(MISS_FUNCTION, &(arg,), || value.clone())
                    .expect("cache miss + store");
                black_box(got);
            }
        }
    }

    /// Checks that the cache variants measured what they claim to: hits were hits, misses
    /// were misses, nothing failed silently (a non-strict cache swallows backend errors).
    fn check(&self) {
        for cache in &self.hit_caches {
            let s = cache.stats();
            assert!(
                s.misses == 1 && s.writes == 1 && s.errors == 0 && s.hits + 1 == s.calls,
                "{}: a hit cache saw something else than hits: {s:?}",
                cache.name()
            );
        }
        for cache in &self.miss_caches {
            let s = cache.stats();
            assert!(
                s.hits == 0 && s.errors == 0 && s.writes == s.calls && s.evictions > 0,
                "{}: a miss cache saw something else than evicting stores: {s:?}",
                cache.name()
            );
        }
    }
}

fn criterion_groups(c: &mut Criterion, fixtures: &mut [Fixture]) {
    for fixture in fixtures.iter_mut() {
        let label = fixture.label;

        let mut group = c.benchmark_group(format!("hit_{label}"));
        group.bench_function("raw_get", |b| b.iter(|| fixture.run(Op::RawGet)));
        for (p, &(policy, _)) in POLICIES.iter().enumerate() {
            group.bench_function(BenchmarkId::new("cache_hit", policy), |b| {
                b.iter(|| fixture.run(Op::CacheHit(p)));
            });
        }
        group.finish();

        let mut group = c.benchmark_group(format!("store_{label}"));
        group.bench_function("raw_get_set", |b| b.iter(|| fixture.run(Op::RawGetSet)));
        for (p, &(policy, _)) in POLICIES.iter().enumerate() {
            group.bench_function(BenchmarkId::new("cache_miss_store", policy), |b| {
                b.iter(|| fixture.run(Op::CacheMissStore(p)));
            });
        }
        group.finish();
    }
}

/// Mean time per operation of every op of `fixture`, in the same order as `ops`, measured
/// interleaved: chunks of [`CHUNK`] operations, the variants in a rotating order.
fn interleaved_means(fixture: &mut Fixture, ops: &[Op], per_op: usize) -> Vec<Duration> {
    let mut total = vec![Duration::ZERO; ops.len()];
    let mut done = vec![0usize; ops.len()];
    let rounds = per_op.div_ceil(CHUNK);
    for round in 0..rounds {
        for k in 0..ops.len() {
            let i = (k + round) % ops.len();
            let n = CHUNK.min(per_op - done[i]);
            let start = Instant::now();
            for _ in 0..n {
                fixture.run(ops[i]);
            }
            total[i] += start.elapsed();
            done[i] += n;
        }
    }
    total
        .iter()
        .zip(&done)
        .map(|(t, &n)| *t / op_count(n))
        .collect()
}

/// `n` as a divisor of a [`Duration`].
fn op_count(n: usize) -> u32 {
    u32::try_from(n.max(1)).expect("operation counts fit in u32")
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn ratio_line(what: &str, ratio: f64) -> String {
    let verdict = if ratio <= GOAL { "ok" } else { "OVER GOAL" };
    format!("{what} ratio: {ratio:.2}x (goal <= {GOAL}x) {verdict}")
}

/// Server-side time per operation, from `INFO commandstats` over `n` operations run alone:
/// the time Redis spent executing the top-level commands the op sends (`GET`, `SET`,
/// `EVALSHA`; the commands a script runs are inside its `EVALSHA` time). The rest of an op's
/// wall time is the round trip and the client.
fn server_time(fixture: &mut Fixture, op: Op, n: usize) -> Duration {
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut fixture.con)
        .expect("CONFIG RESETSTAT");
    for _ in 0..n {
        fixture.run(op);
    }
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut fixture.con)
        .expect("INFO commandstats");
    // Lines look like `cmdstat_get:calls=5,usec=1,usec_per_call=0.20,...`.
    let usec: u64 = info
        .lines()
        .filter_map(|line| line.strip_prefix("cmdstat_")?.split_once(':'))
        .filter(|(command, _)| matches!(*command, "get" | "set" | "evalsha" | "eval"))
        .filter_map(|(_, fields)| {
            fields
                .split(',')
                .find_map(|field| field.strip_prefix("usec="))?
                .parse::<u64>()
                .ok()
        })
        .sum();
    Duration::from_micros(usec) / op_count(n)
}

fn ratio_pass(fixtures: &mut [Fixture], per_op: usize) {
    let ops = Op::all();
    println!();
    println!(
        "== fncache vs raw redis-rs on the same server: mean wall time per op over {per_op} \
         interleaved ops per variant (server: Redis-side execution time per op, measured \
         separately) =="
    );
    for fixture in fixtures.iter_mut() {
        let server: Vec<Duration> = ops
            .iter()
            .map(|&op| server_time(fixture, op, (per_op / 4).max(1)))
            .collect();
        let means = interleaved_means(fixture, &ops, per_op);
        let index = |op: Op| {
            ops.iter()
                .position(|&o| o == op)
                .expect("every op was measured")
        };
        let mean = |op: Op| means[index(op)];
        let timing = |op: Op| {
            format!(
                "{:.1} us (server {:.1} us)",
                micros(means[index(op)]),
                micros(server[index(op)])
            )
        };
        let raw_get = mean(Op::RawGet);
        let raw_get_set = mean(Op::RawGetSet);
        println!(
            "[{}] raw GET {}, raw GET+SET {}",
            fixture.label,
            timing(Op::RawGet),
            timing(Op::RawGetSet)
        );
        for (p, &(policy, _)) in POLICIES.iter().enumerate() {
            let hit = mean(Op::CacheHit(p));
            let store = mean(Op::CacheMissStore(p));
            println!(
                "[{} {policy:>4}] cache hit {}: {}",
                fixture.label,
                timing(Op::CacheHit(p)),
                ratio_line("hit/GET", hit.as_secs_f64() / raw_get.as_secs_f64())
            );
            println!(
                "[{} {policy:>4}] miss+store {}: {}",
                fixture.label,
                timing(Op::CacheMissStore(p)),
                ratio_line(
                    "miss+store/GET+SET",
                    store.as_secs_f64() / raw_get_set.as_secs_f64()
                )
            );
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listing = args.iter().any(|a| a == "--list");
    let testing = args.iter().any(|a| a == "--test");
    // `-- --ratios`: only the interleaved ratio pass (quick, for comparing changes).
    let ratios_only = args.iter().any(|a| a == "--ratios");

    let server = RedisServer::spawn();
    let mut fixtures: Vec<Fixture> = SIZES
        .iter()
        .map(|&(label, size)| Fixture::new(&server, label, size))
        .collect();

    // 12 benchmarks at ~4.5 s each, plus the ratio pass: about a minute and a half in all.
    if !ratios_only {
        run_criterion(&mut fixtures);
    }
    if listing {
        return;
    }
    if testing {
        println!("\n(--test: a short smoke run of the ratio pass; its numbers mean nothing)");
    }
    ratio_pass(
        &mut fixtures,
        if testing { RATIO_OPS_TEST } else { RATIO_OPS },
    );
    for fixture in &fixtures {
        fixture.check();
    }
}

fn run_criterion(fixtures: &mut [Fixture]) {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .nresamples(20_000)
        .configure_from_args();
    criterion_groups(&mut c, fixtures);
    c.final_summary();
}
