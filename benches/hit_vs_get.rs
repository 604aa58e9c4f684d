//! The Redis side of fncache's performance record: what a call costs on top of Redis itself,
//! every figure against its reference on the same throwaway server (spawned by
//! [`fncache_testing::RedisServer`]), printed as ratios in one run, with a closing summary
//! against the goals of issue 10:
//!
//! - **blocking**: a [`fncache::blocking::Cache::get_or_compute`] hit against a raw redis-rs
//!   `GET` of a same-sized value (~100 B and ~4 KiB), and a miss+store (every call a fresh
//!   argument, in a full cache, so every store also evicts) against a raw `GET` that misses
//!   plus a `SET`; policies `LruT` (default) and `Lru`. The variants run interleaved in small
//!   chunks, in a rotating order; each round gives a ratio, and the median ratio is reported,
//!   so drift and other load hit both sides of a ratio alike.
//! - **server**: Redis time per hit of the hit script of every policy (`INFO commandstats`,
//!   `usec` per `EVALSHA`) against a `GET`'s, and the server process's whole CPU per call
//!   (`INFO cpu`: reading, parsing and replying included); the same for a put of a new entry
//!   into a full cache (every put evicts, or for `TinyLfu` refuses, one entry).
//! - **async**: the async front-end with 1 task and with 64 tasks, each on its own key, against
//!   as many tasks doing raw `GET`s on one redis-rs `MultiplexedConnection`, on one
//!   current-thread runtime; time per op, and where it goes: client CPU per op (the process's
//!   threads, `/proc/self/task/*/schedstat`) and server CPU per op (`INFO cpu`).
//! - **memory**: Redis bytes per entry (`INFO memory` `used_memory`) of 100k entries with a
//!   23-byte value in one structure, against 100k plain `SET`s, with `MEMORY USAGE` per key.
//!
//! Where the machine has two CPUs or more, the server is pinned to CPU 1 and the bench to CPU 0
//! (`taskset`), so that client and server do not share a core (`FNCACHE_BENCH_PIN=0` leaves
//! them to the scheduler: better on a machine busy with other work). The ratios depend on the round
//! trip (the cache's overhead is mostly a fixed cost per call: a fast idle loopback shows the
//! worst ratio) and on other load: compare ratios from one run, not across machines.
//!
//! - **size**: flat cost with size: a blocking hit (default policy, 100-byte value) on a random
//!   key of a cache of 1M entries against one of a cache of 1k, interleaved, as wall time and
//!   as Redis time per hit script (`INFO commandstats`), next to the same growth of a raw
//!   `GET`'s Redis time over as many plain keys.
//!
//! `cargo bench --bench hit_vs_get` runs criterion's groups (`hit_<size>`, `store_<size>`)
//! first, then the measured passes; `-- --quick` runs only the passes, shortened (under a
//! minute); `-- --ratios` only the passes at full length; `-- --pass <blocking|server|async|
//! memory|size>` one pass (for a profiler); `-- --test` everything once, as a smoke test.

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

/// Every policy, for the server-CPU pass.
const ALL_POLICIES: [(&str, Policy); 8] = [
    ("LruT", Policy::LruT),
    ("Lru", Policy::Lru),
    ("Fifo", Policy::Fifo),
    ("FifoT", Policy::FifoT),
    ("Lfu", Policy::Lfu),
    ("Mru", Policy::Mru),
    ("Random", Policy::Random),
    ("TinyLfu", Policy::TinyLfu),
];

/// Generous: on a loaded machine a default op timeout would turn slow calls into errors,
/// which the checks refuse (a failed call measures nothing).
const OP_TIMEOUT: Duration = Duration::from_secs(1);

/// Concurrent tasks of the async pass's busy variant.
const MAX_TASKS: usize = 64;

/// Goals (issue 10): a blocking hit against a raw `GET`.
const HIT_GOAL: f64 = 1.15;
/// A blocking miss+store against a raw `GET`+`SET`.
const STORE_GOAL: f64 = 1.15;
/// Async hits against raw multiplexed `GET`s, one task.
const ASYNC_ONE_GOAL: f64 = 1.15;
/// Async hits against raw multiplexed `GET`s, [`MAX_TASKS`] tasks.
const ASYNC_MANY_GOAL: f64 = 1.3;
/// Server time of the default policy's hit script, in microseconds per call.
const SCRIPT_GOAL_US: f64 = 2.5;
/// Redis bytes per entry.
const MEMORY_GOAL: f64 = 200.0;
/// Server time of a hit under the opt-in `touch_batch`, against a `GET`'s.
const BATCHED_GOAL: f64 = 2.0;
/// Goal of issue 10: a hit in a cache of 1M entries at most this many times one in 1k.
const FLAT_GOAL: f64 = 1.2;
/// Entries of the small cache of the size pass.
const SMALL_ENTRIES: usize = 1_000;
/// The delay of the `touch_batch` variants.
const TOUCH_BATCH: Duration = Duration::from_millis(5);

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
        // stored sizes of raw and cached values differ only by fncache's 26-byte envelope head.
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
                .op_timeout(OP_TIMEOUT)
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

/// Times per operation of every op of `fixture`, per round: `rounds[r][i]` is the mean of op
/// `ops[i]` over its chunk of [`Sizes::chunk`] operations in round `r`. The variants run
/// interleaved, in a rotating order, so that drift (CPU frequency, other load) hits all of
/// them alike; ratios are then taken within each round and their median reported.
fn interleaved_rounds(fixture: &mut Fixture, ops: &[Op], sizes: &Sizes) -> Vec<Vec<Duration>> {
    let mut rounds = Vec::with_capacity(sizes.rounds);
    for round in 0..sizes.rounds {
        let mut times = vec![Duration::ZERO; ops.len()];
        for k in 0..ops.len() {
            let i = (k + round) % ops.len();
            let start = Instant::now();
            for _ in 0..sizes.chunk {
                fixture.run(ops[i]);
            }
            times[i] = start.elapsed() / op_count(sizes.chunk);
        }
        rounds.push(times);
    }
    rounds
}

/// How much each pass measures.
struct Sizes {
    /// Rounds of the interleaved blocking pass.
    rounds: usize,
    /// Operations per variant and round.
    chunk: usize,
    /// Operations per policy for the server-CPU pass.
    server_ops: usize,
    /// Rounds of the async pass (each runs every variant once).
    async_rounds: usize,
    /// Operations per variant and round of the async pass.
    async_ops: usize,
    /// Entries of the memory pass.
    entries: usize,
    /// Entries of the large cache of the size pass (the small one holds [`SMALL_ENTRIES`]).
    large_entries: usize,
}

impl Sizes {
    const FULL: Sizes = Sizes {
        rounds: 80,
        chunk: 250,
        server_ops: 20_000,
        async_rounds: 15,
        async_ops: 64_000,
        entries: 100_000,
        large_entries: 1_000_000,
    };
    const QUICK: Sizes = Sizes {
        rounds: 30,
        chunk: 100,
        server_ops: 5_000,
        async_rounds: 5,
        async_ops: 8_000,
        entries: 100_000,
        large_entries: 1_000_000,
    };
    const TEST: Sizes = Sizes {
        rounds: 2,
        chunk: 10,
        server_ops: 20,
        async_rounds: 1,
        async_ops: 128,
        entries: 1_000,
        large_entries: 4_000,
    };
}

/// `n` as a divisor of a [`Duration`].
fn op_count(n: usize) -> u32 {
    u32::try_from(n.max(1)).expect("operation counts fit in u32")
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

fn verdict(ratio: f64, goal: f64) -> String {
    let verdict = if ratio <= goal { "ok" } else { "OVER GOAL" };
    format!("{ratio:.2}x (goal <= {goal}x) {verdict}")
}

/// `INFO <section>` as `field -> value` pairs.
fn info(con: &mut redis::Connection, section: &str) -> Vec<(String, String)> {
    let text: String = redis::cmd("INFO").arg(section).query(con).expect("INFO");
    text.lines()
        .filter_map(|line| line.trim_end().split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn info_field(con: &mut redis::Connection, section: &str, field: &str) -> String {
    info(con, section)
        .into_iter()
        .find_map(|(k, v)| (k == field).then_some(v))
        .expect("INFO has the field")
}

/// The server process's CPU time so far (user + system, `INFO cpu`): everything the server
/// does for a request, reading and parsing it and writing the reply included.
fn server_cpu(con: &mut redis::Connection) -> Duration {
    let seconds: f64 = info(con, "cpu")
        .into_iter()
        .filter(|(k, _)| k == "used_cpu_user" || k == "used_cpu_sys")
        .map(|(_, v)| v.parse::<f64>().expect("a CPU time"))
        .sum();
    Duration::from_secs_f64(seconds)
}

/// `(calls, usec)` of the top-level commands `INFO commandstats` lists under `names` (the
/// commands a script runs are inside its `EVALSHA` time).
fn command_usec(con: &mut redis::Connection, names: &[&str]) -> (u64, u64) {
    // Lines look like `cmdstat_get:calls=5,usec=1,usec_per_call=0.20,...`.
    let mut calls = 0;
    let mut usec = 0;
    for (key, fields) in info(con, "commandstats") {
        let Some(command) = key.strip_prefix("cmdstat_") else {
            continue;
        };
        if !names.contains(&command) {
            continue;
        }
        let field = |name: &str| -> u64 {
            fields
                .split(',')
                .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        calls += field("calls");
        usec += field("usec");
    }
    (calls, usec)
}

fn reset_stats(con: &mut redis::Connection) {
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(con)
        .expect("CONFIG RESETSTAT");
}

/// CPU time of this process so far, all threads (`/proc/self/task/*/schedstat`, in ns), or
/// `None` where there is no such file.
fn client_cpu() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path().join("schedstat");
        let text = std::fs::read_to_string(path).ok()?;
        total += text.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// Pins the server to CPU 1 and this process (and the threads it starts later) to CPU 0 with
/// `taskset`, so that client and server do not compete for one core and each keeps its caches
/// warm. Says what it did.
fn pin(con: &mut redis::Connection) -> String {
    if std::env::var("FNCACHE_BENCH_PIN").is_ok_and(|v| v == "0") {
        return "not pinned: FNCACHE_BENCH_PIN=0".to_owned();
    }
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if cpus < 2 {
        return format!("not pinned: {cpus} CPU available");
    }
    let server_pid = info_field(con, "server", "process_id");
    let taskset = |cpu: &str, pid: &str| {
        std::process::Command::new("taskset")
            .args(["-a", "-p", "-c", cpu, pid])
            .output()
            .is_ok_and(|out| out.status.success())
    };
    if taskset("1", &server_pid) && taskset("0", &std::process::id().to_string()) {
        "server pinned to CPU 1, client to CPU 0 (taskset)".to_owned()
    } else {
        "not pinned: `taskset` failed or is missing".to_owned()
    }
}

/// Blocking front-end: hit vs `GET`, miss+store vs `GET`+`SET`, per size and policy.
fn blocking_pass(fixtures: &mut [Fixture], sizes: &Sizes, table: &mut Vec<Row>) {
    let ops = Op::all();
    println!(
        "\n== blocking: median over {} rounds of the per-round ratio ({} interleaved ops per \
         variant and round) ==",
        sizes.rounds, sizes.chunk
    );
    for fixture in fixtures.iter_mut() {
        let rounds = interleaved_rounds(fixture, &ops, sizes);
        let index = |op: Op| ops.iter().position(|&o| o == op).expect("measured");
        let typical = |op: Op| median(rounds.iter().map(|r| micros(r[index(op)])).collect());
        let ratio = |op: Op, reference: Op| {
            median(
                rounds
                    .iter()
                    .map(|r| r[index(op)].as_secs_f64() / r[index(reference)].as_secs_f64())
                    .collect(),
            )
        };
        println!(
            "[{}] raw GET {:.1} us, raw GET+SET {:.1} us",
            fixture.label,
            typical(Op::RawGet),
            typical(Op::RawGetSet)
        );
        for (p, &(policy, _)) in POLICIES.iter().enumerate() {
            let hit = ratio(Op::CacheHit(p), Op::RawGet);
            let store = ratio(Op::CacheMissStore(p), Op::RawGetSet);
            println!(
                "[{} {policy:>4}] hit {:.1} us: hit/GET {}",
                fixture.label,
                typical(Op::CacheHit(p)),
                verdict(hit, HIT_GOAL)
            );
            println!(
                "[{} {policy:>4}] miss+store {:.1} us: miss+store/(GET+SET) {}",
                fixture.label,
                typical(Op::CacheMissStore(p)),
                verdict(store, STORE_GOAL)
            );
            if fixture.label == SIZES[0].0 {
                table.push(Row::new(
                    format!("blocking hit / GET ({policy})"),
                    hit,
                    HIT_GOAL,
                ));
                table.push(Row::new(
                    format!("blocking miss+store / GET+SET ({policy})"),
                    store,
                    STORE_GOAL,
                ));
            }
        }
    }
}

/// Server CPU per hit of every policy: `INFO commandstats` time of the hit script per call
/// against a `GET`'s, and the server process's CPU per call (parsing and replying included).
fn server_pass(server: &RedisServer, sizes: &Sizes, table: &mut Vec<Row>) {
    let mut con = server.connection();
    let value = "x".repeat(100);
    let _: () = redis::cmd("SET")
        .arg("bench:cpu:raw")
        .arg(&value)
        .query(&mut con)
        .expect("SET");
    let n = sizes.server_ops;
    // (commandstats usec per call, process CPU per call)
    let measure = |con: &mut redis::Connection, names: &[&str], run: &mut dyn FnMut()| {
        // The pass's own connection for INFO: its commands are not counted under `names`.
        reset_stats(con);
        let cpu = server_cpu(con);
        for _ in 0..n {
            run();
        }
        let cpu = server_cpu(con).saturating_sub(cpu);
        let (calls, usec) = command_usec(con, names);
        assert!(
            calls >= n as u64,
            "expected {n} calls of {names:?}, saw {calls}"
        );
        (usec as f64 / calls as f64, micros(cpu) / n as f64)
    };
    let mut raw = server.connection();
    let (get_usec, get_cpu) = measure(&mut con, &["get"], &mut || {
        let got: Vec<u8> = redis::cmd("GET")
            .arg("bench:cpu:raw")
            .query(&mut raw)
            .expect("GET");
        black_box(got);
    });
    println!(
        "\n== server CPU per hit ({n} calls each; commandstats: execution of the command, \
         process: all the server's CPU per call) ==\nGET: commandstats {get_usec:.2} us, \
         process {get_cpu:.2} us"
    );
    for (name, policy) in ALL_POLICIES {
        let cache = Cache::builder(format!("bench-cpu-{name}"))
            .redis(server.url())
            .op_timeout(OP_TIMEOUT)
            .policy(policy)
            .build_blocking()
            .expect("a blocking cache");
        let fill: String = cache
            .get_or_compute("cpu", &(1u8,), || value.clone())
            .expect("fill");
        assert_eq!(fill, value);
        let (usec, cpu) = measure(&mut con, &["evalsha"], &mut || {
            let got: String = cache
                .get_or_compute("cpu", &(1u8,), String::new)
                .expect("hit");
            black_box(got);
        });
        let s = cache.stats();
        assert_eq!(s.hits as usize, n, "{name}: every call should hit: {s:?}");
        let goal = if name == "LruT" {
            Some(SCRIPT_GOAL_US)
        } else {
            None
        };
        println!(
            "{name:>7} hit script: commandstats {usec:.2} us ({:.1}x GET){}, process {cpu:.2} \
             us ({:.1}x GET)",
            usec / get_usec,
            goal.map_or(String::new(), |g| format!(
                " goal <= {g} us {}",
                if usec <= g { "ok" } else { "OVER GOAL" }
            )),
            cpu / get_cpu
        );
        // Puts of new entries into a full cache (the default maxsize): each one evicts.
        let mut fresh = 0u64;
        let (put_usec, put_cpu) = measure(&mut con, &["evalsha"], &mut || {
            fresh += 1;
            cache.put("cpu-put", &(fresh,), &value).expect("put");
        });
        println!(
            "{name:>7} put script: commandstats {put_usec:.2} us ({:.1}x GET), process \
             {put_cpu:.2} us ({:.1}x GET)",
            put_usec / get_usec,
            put_cpu / get_cpu
        );
        if let Some(goal) = goal {
            table.push(Row::absolute(
                format!("hit script server us/call ({name})"),
                usec,
                goal,
                "us",
            ));
        }
    }
    // The opt-in: a hit is one HGET; the recorded uses cost one ZADD per structure and delay.
    let cache = Cache::builder("bench-cpu-batched")
        .redis(server.url())
        .op_timeout(OP_TIMEOUT)
        .touch_batch(TOUCH_BATCH)
        .build_blocking()
        .expect("a blocking cache");
    let fill: String = cache
        .get_or_compute("cpu", &(1u8,), || value.clone())
        .expect("fill");
    assert_eq!(fill, value);
    let (usec, cpu) = measure(&mut con, &["evalsha", "hget", "zadd"], &mut || {
        let got: String = cache
            .get_or_compute("cpu", &(1u8,), String::new)
            .expect("hit");
        black_box(got);
    });
    let ratio = usec / get_usec;
    println!(
        "  LruT touch_batch({TOUCH_BATCH:?}): commandstats {usec:.2} us per hit ({}), process \
         {cpu:.2} us ({:.1}x GET)",
        verdict(ratio, BATCHED_GOAL),
        cpu / get_cpu
    );
    table.push(Row::new(
        "batched hit server time / GET (LruT)".to_owned(),
        ratio,
        BATCHED_GOAL,
    ));
}

/// The async front-end under concurrency: `tasks` tasks, each on its own key, against as many
/// tasks doing raw `GET`s on one multiplexed connection. Reports time per op and where it
/// goes (client CPU, server CPU).
fn async_pass(server: &RedisServer, sizes: &Sizes, table: &mut Vec<Row>) {
    println!(
        "\n== async hits: {} ops per variant and round, median over {} rounds; one \
         current-thread tokio runtime, raw = redis-rs MultiplexedConnection ==",
        sizes.async_ops, sizes.async_rounds
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut info_con = server.connection();
    let value: String = "abcdefghijklmnopqrstuvwxyz0123456789"
        .chars()
        .cycle()
        .take(100)
        .collect();
    rt.block_on(async {
        let client = server.client();
        let mux = client
            .get_multiplexed_async_connection()
            .await
            .expect("a multiplexed connection");
        let cache = Cache::builder("bench-async")
            .redis(server.url())
            .op_timeout(OP_TIMEOUT)
            .build()
            .expect("an async cache");
        let batched = Cache::builder("bench-async-batched")
            .redis(server.url())
            .op_timeout(OP_TIMEOUT)
            .touch_batch(TOUCH_BATCH)
            .build()
            .expect("an async cache");
        for i in 0..MAX_TASKS {
            let _: () = redis::cmd("SET")
                .arg(format!("bench:async:{i}"))
                .arg(&value)
                .query_async(&mut mux.clone())
                .await
                .expect("SET");
            let v = value.clone();
            let got: String = cache
                .get_or_compute("async", &(i,), || async move { v })
                .await
                .expect("fill");
            assert_eq!(got, value);
            let v = value.clone();
            let got: String = batched
                .get_or_compute("async", &(i,), || async move { v })
                .await
                .expect("fill");
            assert_eq!(got, value);
        }
        for tasks in [1, MAX_TASKS] {
            let per_task = (sizes.async_ops / tasks).max(1);
            let ops = per_task * tasks;
            // (wall, client CPU, server CPU) per op, per round, per variant: raw GETs, cache
            // hits, cache hits under touch_batch.
            let mut rounds: [Vec<(Duration, Option<Duration>, Duration)>; 3] = Default::default();
            for round in 0..sizes.async_rounds {
                for k in 0..3 {
                    let variant = (k + round) % 3;
                    let cpu0 = client_cpu();
                    let server0 = server_cpu(&mut info_con);
                    let start = Instant::now();
                    let mut set = tokio::task::JoinSet::new();
                    for t in 0..tasks {
                        let mux = mux.clone();
                        let cache = if variant == 2 {
                            batched.clone()
                        } else {
                            cache.clone()
                        };
                        set.spawn(async move {
                            let key = format!("bench:async:{t}");
                            let mut mux = mux;
                            for _ in 0..per_task {
                                if variant == 0 {
                                    let got: Vec<u8> = redis::cmd("GET")
                                        .arg(&key)
                                        .query_async(&mut mux)
                                        .await
                                        .expect("GET");
                                    black_box(got);
                                } else {
                                    let got: String = cache
                                        .get_or_compute("async", &(t,), || async { String::new() })
                                        .await
                                        .expect("hit");
                                    black_box(got);
                                }
                            }
                        });
                    }
                    while let Some(done) = set.join_next().await {
                        done.expect("a bench task");
                    }
                    let wall = start.elapsed() / op_count(ops);
                    let cpu = client_cpu()
                        .zip(cpu0)
                        .map(|(b, a)| b.saturating_sub(a) / op_count(ops));
                    let scpu = server_cpu(&mut info_con).saturating_sub(server0) / op_count(ops);
                    rounds[variant].push((wall, cpu, scpu));
                }
            }
            for c in [&cache, &batched] {
                let s = c.stats();
                assert_eq!(s.errors, 0, "async hits failed: {s:?}");
                assert_eq!(
                    s.hits + MAX_TASKS as u64,
                    s.calls,
                    "async hits missed: {s:?}"
                );
            }
            let ratio = |variant: usize| {
                median(
                    rounds[0]
                        .iter()
                        .zip(&rounds[variant])
                        .map(|(r, h)| h.0.as_secs_f64() / r.0.as_secs_f64())
                        .collect(),
                )
            };
            let show = |rounds: &[(Duration, Option<Duration>, Duration)]| {
                let wall = median(rounds.iter().map(|r| micros(r.0)).collect());
                let cpu = median(rounds.iter().filter_map(|r| r.1.map(micros)).collect());
                let scpu = median(rounds.iter().map(|r| micros(r.2)).collect());
                format!(
                    "{wall:.2} us/op ({:.0} ops/s; client CPU {cpu:.2} us/op, server CPU \
                     {scpu:.2} us/op)",
                    1e6 / wall
                )
            };
            let goal = if tasks == 1 {
                ASYNC_ONE_GOAL
            } else {
                ASYNC_MANY_GOAL
            };
            println!("[{tasks:>2} tasks] raw GET     {}", show(&rounds[0]));
            println!("[{tasks:>2} tasks] cache hit   {}", show(&rounds[1]));
            println!("[{tasks:>2} tasks] batched hit {}", show(&rounds[2]));
            println!("[{tasks:>2} tasks] hit/GET {}", verdict(ratio(1), goal));
            println!(
                "[{tasks:>2} tasks] batched hit/GET {}",
                verdict(ratio(2), goal)
            );
            table.push(Row::new(
                format!("async hit / mux GET, {tasks} task(s)"),
                ratio(1),
                goal,
            ));
            table.push(Row::new(
                format!("async batched hit / mux GET, {tasks} task(s)"),
                ratio(2),
                goal,
            ));
        }
    });
}

/// Redis bytes per entry (`INFO memory` `used_memory`) of `sizes.entries` entries with a
/// 23-byte value: raw `SET`s against one fncache structure holding as many.
fn memory_pass(server: &RedisServer, sizes: &Sizes, table: &mut Vec<Row>) {
    let n = sizes.entries;
    let mut con = server.connection();
    let value = "v".repeat(23);
    let used = |con: &mut redis::Connection| -> i64 {
        info_field(con, "memory", "used_memory")
            .parse()
            .expect("used_memory")
    };
    let flush = |con: &mut redis::Connection| {
        let _: () = redis::cmd("FLUSHALL")
            .arg("SYNC")
            .query(con)
            .expect("FLUSHALL");
    };
    flush(&mut con);
    let before = used(&mut con);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("SET")
                .arg(format!("bench:mem:{i}"))
                .arg(&value)
                .ignore();
        }
        let _: () = pipe.query(&mut con).expect("SET pipeline");
    }
    let raw = (used(&mut con) - before) as f64 / n as f64;
    flush(&mut con);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let cache = Cache::builder("bench-mem")
        .redis(server.url())
        .op_timeout(OP_TIMEOUT)
        .maxsize(n)
        .build()
        .expect("an async cache");
    // Connect (and load the scripts) before the baseline.
    rt.block_on(cache.len()).expect("len");
    let before = used(&mut con);
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for t in 0..MAX_TASKS {
            let cache = cache.clone();
            let value = value.clone();
            set.spawn(async move {
                for i in (t..n).step_by(MAX_TASKS) {
                    let v = value.clone();
                    let _: String = cache
                        .get_or_compute("mem", &(i,), || async move { v })
                        .await
                        .expect("store");
                }
            });
        }
        while let Some(done) = set.join_next().await {
            done.expect("a fill task");
        }
    });
    let stored = rt.block_on(cache.len()).expect("len");
    assert_eq!(stored, n, "every entry should be stored");
    let cached = (used(&mut con) - before) as f64 / n as f64;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*bench-mem*")
        .query(&mut con)
        .expect("KEYS");
    let parts: Vec<String> = keys
        .iter()
        .map(|key| {
            let bytes: i64 = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(key)
                .arg("SAMPLES")
                .arg(0)
                .query(&mut con)
                .expect("MEMORY USAGE");
            format!(
                "`{}` {:.0}",
                key.split_once("bench-mem")
                    .map_or(key.as_str(), |(_, rest)| rest),
                bytes as f64 / n as f64
            )
        })
        .collect();
    println!(
        "\n== Redis memory per entry, {n} entries, 23-byte value (INFO memory used_memory) ==\n\
         raw SET: {raw:.0} bytes; fncache: {cached:.0} bytes ({:.2}x SET; per key: {}) goal \
         <= {MEMORY_GOAL} bytes {}",
        cached / raw,
        parts.join(", "),
        if cached <= MEMORY_GOAL {
            "ok"
        } else {
            "OVER GOAL"
        }
    );
    table.push(Row::absolute(
        "Redis bytes per entry".to_owned(),
        cached,
        MEMORY_GOAL,
        "B",
    ));
    flush(&mut con);
}

/// Flat cost with size (issue 10, item 6): a blocking hit on a random key of a cache of
/// `large_entries` against one of a cache of [`SMALL_ENTRIES`], both full of 100-byte values
/// under the default policy, interleaved in chunks; wall time per hit and Redis time per hit
/// script, each as the large cache's over the small one's (medians of per-round ratios).
fn size_pass(server: &RedisServer, sizes: &Sizes, table: &mut Vec<Row>) {
    let mut con = server.connection();
    let _: () = redis::cmd("FLUSHALL")
        .arg("SYNC")
        .query(&mut con)
        .expect("FLUSHALL");
    let value = "v".repeat(100);
    let build = |name: &str, entries: usize| {
        Cache::builder(name)
            .redis(server.url())
            .op_timeout(Duration::from_secs(10))
            .maxsize(entries)
            .build_blocking()
            .expect("a blocking cache")
    };
    let counts = [SMALL_ENTRIES, sizes.large_entries];
    let caches = counts.map(|n| build(&format!("bench-size-{n}"), n));
    let fill_started = Instant::now();
    for (cache, &n) in caches.iter().zip(&counts) {
        let keys: Vec<u64> = (0..n as u64).collect();
        for chunk in keys.chunks(2_000) {
            let got: Vec<String> = cache
                .get_or_compute_many("size", chunk, |missing: Vec<u64>| {
                    vec![value.clone(); missing.len()]
                })
                .expect("a fill batch");
            assert_eq!(got.len(), chunk.len());
        }
        assert_eq!(cache.len().expect("len"), n, "every entry should be stored");
    }
    // The reference: Redis's own `GET` over as many plain keys, which is not flat either (at
    // 1M keys its tables are out of the CPU's caches).
    for &n in &counts {
        for start in (0..n).step_by(1_000) {
            let mut pipe = redis::pipe();
            for i in start..(start + 1_000).min(n) {
                pipe.cmd("SET")
                    .arg(format!("bench:size:{n}:{i}"))
                    .arg(&value)
                    .ignore();
            }
            let _: () = pipe.query(&mut con).expect("SET pipeline");
        }
    }
    let fill = fill_started.elapsed();
    // A xorshift over the keys: the same sequence for both caches, no key twice in a row.
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n as u64
    };
    let chunk = sizes.chunk;
    let mut wall_ratios = Vec::new();
    let mut script_ratios = Vec::new();
    let mut get_ratios = Vec::new();
    let mut wall = [Vec::new(), Vec::new()];
    let mut script = [Vec::new(), Vec::new()];
    let mut get = [Vec::new(), Vec::new()];
    for round in 0..sizes.rounds {
        let mut times = [0.0; 2];
        let mut usec = [0.0; 2];
        let mut get_usec = [0.0; 2];
        for k in 0..2 {
            let i = (k + round) % 2;
            let keys: Vec<u64> = (0..chunk).map(|_| next(counts[i])).collect();
            reset_stats(&mut con);
            let start = Instant::now();
            for key in &keys {
                let got: String = caches[i]
                    .get_or_compute("size", key, || unreachable!("a hit was expected"))
                    .expect("a hit");
                black_box(got);
            }
            times[i] = micros(start.elapsed()) / chunk as f64;
            let (calls, spent) = command_usec(&mut con, &["evalsha"]);
            usec[i] = spent as f64 / calls.max(1) as f64;
            let keys: Vec<String> = (0..chunk)
                .map(|_| format!("bench:size:{}:{}", counts[i], next(counts[i])))
                .collect();
            reset_stats(&mut con);
            for key in &keys {
                let got: Option<String> = redis::cmd("GET").arg(key).query(&mut con).expect("GET");
                assert!(got.is_some(), "raw GET should hit");
            }
            let (calls, spent) = command_usec(&mut con, &["get"]);
            get_usec[i] = spent as f64 / calls.max(1) as f64;
        }
        wall_ratios.push(times[1] / times[0]);
        script_ratios.push(usec[1] / usec[0]);
        get_ratios.push(get_usec[1] / get_usec[0]);
        for i in 0..2 {
            wall[i].push(times[i]);
            script[i].push(usec[i]);
            get[i].push(get_usec[i]);
        }
    }
    for cache in &caches {
        let s = cache.stats();
        assert!(
            s.errors == 0 && s.hits >= (sizes.rounds * chunk) as u64,
            "the size pass should see hits only: {s:?}"
        );
    }
    let wall_ratio = median(wall_ratios);
    let script_ratio = median(script_ratios);
    let [wall_small, wall_large] = wall.map(median);
    let [script_small, script_large] = script.map(median);
    let [get_small, get_large] = get.map(median);
    let get_ratio = median(get_ratios);
    let large = sizes.large_entries;
    println!(
        "\n== flat cost with size: blocking hits (LruT, 100 B) on random keys, {large} entries vs \
         {SMALL_ENTRIES} (filled in {:.1} s); median over {} rounds of {chunk} ==\n\
         wall: {wall_large:.1} us vs {wall_small:.1} us per hit: {}\n\
         hit script, Redis time: {script_large:.2} us vs {script_small:.2} us: {}\n\
         reference, a raw GET's Redis time over as many keys: {get_large:.2} us vs \
         {get_small:.2} us: {get_ratio:.2}x",
        fill.as_secs_f64(),
        sizes.rounds,
        verdict(wall_ratio, FLAT_GOAL),
        verdict(script_ratio, FLAT_GOAL),
    );
    table.push(Row::new(
        format!("hit at {large} / at {SMALL_ENTRIES} entries, wall"),
        wall_ratio,
        FLAT_GOAL,
    ));
    table.push(Row::new(
        format!("hit at {large} / at {SMALL_ENTRIES} entries, Redis time"),
        script_ratio,
        FLAT_GOAL,
    ));
    drop(caches);
    let _: () = redis::cmd("FLUSHALL")
        .arg("SYNC")
        .query(&mut con)
        .expect("FLUSHALL");
}

/// One line of the closing summary.
struct Row {
    what: String,
    value: f64,
    goal: f64,
    unit: &'static str,
}

impl Row {
    fn new(what: String, ratio: f64, goal: f64) -> Row {
        Row {
            what,
            value: ratio,
            goal,
            unit: "x",
        }
    }

    fn absolute(what: String, value: f64, goal: f64, unit: &'static str) -> Row {
        Row {
            what,
            value,
            goal,
            unit,
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let listing = args.iter().any(|a| a == "--list");
    let testing = args.iter().any(|a| a == "--test");
    // `-- --quick`: only the measured passes, shortened (under a minute).
    let quick = args.iter().any(|a| a == "--quick");
    // `-- --ratios`: only the measured passes, full length.
    let ratios_only = quick || args.iter().any(|a| a == "--ratios");

    let server = RedisServer::spawn();
    let pinned = pin(&mut server.connection());
    let mut fixtures: Vec<Fixture> = SIZES
        .iter()
        .map(|&(label, size)| Fixture::new(&server, label, size))
        .collect();

    // 12 benchmarks at ~4.5 s each before the measured passes.
    if !ratios_only {
        run_criterion(&mut fixtures);
    }
    if listing {
        return;
    }
    let sizes = if testing {
        println!(
            "\n(--test: a short smoke run of the measured passes; their numbers mean nothing)"
        );
        &Sizes::TEST
    } else if quick {
        &Sizes::QUICK
    } else {
        &Sizes::FULL
    };
    println!(
        "\n{} {} on {}; {pinned}",
        server.kind().name(),
        server.version(),
        std::env::consts::ARCH
    );
    // `-- --pass <blocking|server|async|memory|size>`: that pass only (for a profiler).
    let only = args
        .iter()
        .position(|a| a == "--pass")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    let runs = |pass: &str| only.is_none_or(|o| o == pass);
    let mut table = Vec::new();
    if runs("blocking") {
        blocking_pass(&mut fixtures, sizes, &mut table);
        for fixture in &fixtures {
            fixture.check();
        }
    }
    if runs("server") {
        server_pass(&server, sizes, &mut table);
    }
    if runs("async") {
        async_pass(&server, sizes, &mut table);
    }
    if runs("memory") {
        memory_pass(&server, sizes, &mut table);
    }
    if runs("size") {
        size_pass(&server, sizes, &mut table);
    }

    println!("\n== summary (blocking figures: 100-byte value) ==");
    for row in &table {
        let ok = if row.value <= row.goal {
            "ok"
        } else {
            "OVER GOAL"
        };
        println!(
            "{:<44} {:>8.2}{:<2} goal <= {}{} {ok}",
            row.what, row.value, row.unit, row.goal, row.unit
        );
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
