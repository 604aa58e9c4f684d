//! What does a near hit cost, next to moka's `get` and a Redis hit; and how long does a change
//! in one process take to drop the near copies of another?
//!
//! The workload of `benches/embedded.rs` (`u32` arguments, 64-byte `String` values, 1k
//! entries), on a throwaway `redis-server`:
//!
//! - a blocking `get_or_compute` hit served by the near cache (`Builder::near_cache`), a
//!   `moka::sync::Cache::get` (+ clone) of the same keys, and a blocking Redis hit of the same
//!   cache without a near cache, interleaved in chunks, round after round; the median ns per
//!   op and the median of the per-round ratios;
//! - the invalidation delay: process B (a second cache with its own connections, which is
//!   what another process looks like to Redis) overwrites an entry that A holds a near copy of;
//!   from the moment B's put returns, A reads until it serves the new value. p50 and p99 over
//!   the samples (A's read loop costs about a near miss per poll, so the figure is an upper
//!   bound of the drop itself).
//!
//! `cargo bench --bench near` (`-- --quick` for fewer rounds and samples).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use fncache::{Cache, blocking};
use fncache_testing::RedisServer;

const FUNCTION: &str = "value";
const KEYS: u32 = 1000;
const CHUNK: u32 = 1000;

fn value_of(key: u32) -> String {
    format!("{key:064}")
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn percentile(xs: &mut [Duration], p: f64) -> Duration {
    xs.sort();
    let at = ((xs.len() as f64 - 1.0) * p).round() as usize;
    xs[at]
}

/// ns per op of `chunk` ops of `f` over the key sequence starting at `from`.
fn time(from: u32, mut f: impl FnMut(u32)) -> f64 {
    let start = Instant::now();
    for i in 0..CHUNK {
        f((from
            .wrapping_mul(7919)
            .wrapping_add(i.wrapping_mul(104_729)))
            % KEYS);
    }
    start.elapsed().as_nanos() as f64 / f64::from(CHUNK)
}

fn hit(cache: &blocking::Cache, key: u32) -> String {
    cache
        .get_or_compute(FUNCTION, &(key,), || panic!("a miss in a hit bench"))
        .expect("a hit")
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (rounds, samples) = if quick { (15, 200) } else { (60, 1000) };
    let server = RedisServer::spawn();
    let name = "near-bench";
    let near = Cache::builder(name)
        .redis(server.url())
        .maxsize(2 * KEYS as usize)
        .near_cache(2 * KEYS as usize)
        .near_cache_ttl(Duration::from_secs(600))
        .build_blocking()
        .unwrap();
    let plain = Cache::builder(name)
        .redis(server.url())
        .maxsize(2 * KEYS as usize)
        .build_blocking()
        .unwrap();
    let moka = moka::sync::Cache::<u32, String>::new(u64::from(2 * KEYS));
    let embedded = Cache::builder(name)
        .memory()
        .maxsize(2 * KEYS as usize)
        .build_blocking()
        .unwrap();
    for key in 0..KEYS {
        plain.put(FUNCTION, &(key,), &value_of(key)).unwrap();
        embedded.put(FUNCTION, &(key,), &value_of(key)).unwrap();
        moka.insert(key, value_of(key));
    }
    // Until the near link is up and every key has its copy.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        for key in 0..KEYS {
            hit(&near, key);
        }
        let before = near.stats().near_hits;
        for key in 0..KEYS {
            hit(&near, key);
        }
        if near.stats().near_hits - before == u64::from(KEYS) {
            break;
        }
        assert!(Instant::now() < deadline, "the near cache did not warm up");
    }
    let (mut n, mut m, mut r, mut e) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut n_m, mut r_n, mut n_e) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let from = round * 13;
        let near_ns = time(from, |k| {
            black_box(hit(&near, k));
        });
        let moka_ns = time(from, |k| {
            black_box(moka.get(&k));
        });
        let embedded_ns = time(from, |k| {
            black_box(hit(&embedded, k));
        });
        // A Redis hit is some 100x slower: a tenth of the chunk keeps the rounds short.
        let start = Instant::now();
        for i in 0..CHUNK / 10 {
            black_box(hit(&plain, (from + i * 31) % KEYS));
        }
        let redis_ns = start.elapsed().as_nanos() as f64 / f64::from(CHUNK / 10);
        n.push(near_ns);
        m.push(moka_ns);
        r.push(redis_ns);
        e.push(embedded_ns);
        n_m.push(near_ns / moka_ns);
        n_e.push(near_ns / embedded_ns);
        r_n.push(redis_ns / near_ns);
    }
    println!("near hit:  {:8.0} ns", median(n));
    println!("moka get:  {:8.0} ns", median(m));
    println!("embedded hit: {:5.0} ns", median(e));
    println!("redis hit: {:8.0} ns", median(r));
    println!(
        "near hit / moka get: {:.2}x; near hit / embedded hit: {:.2}x; redis hit / near hit: {:.0}x",
        median(n_m),
        median(n_e),
        median(r_n)
    );

    // The invalidation delay, each sample on a key of its own.
    let writer = Cache::builder(name)
        .redis(server.url())
        .maxsize(2 * KEYS as usize)
        .build_blocking()
        .unwrap();
    let (mut delays, mut from_send) = (Vec::new(), Vec::new());
    for sample in 0..samples {
        let key = KEYS + sample;
        writer.put(FUNCTION, &(key,), &value_of(0)).unwrap();
        loop {
            let before = near.stats().near_hits;
            hit(&near, key);
            if near.stats().near_hits > before {
                break;
            }
        }
        let sent = Instant::now();
        writer.put(FUNCTION, &(key,), &value_of(1)).unwrap();
        let put_done = Instant::now();
        while hit(&near, key) != value_of(1) {}
        delays.push(put_done.elapsed());
        from_send.push(sent.elapsed());
    }
    println!(
        "invalidation delay after the writer's put returned, {samples} samples: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&mut delays, 0.5),
        percentile(&mut delays, 0.99),
        percentile(&mut delays, 1.0)
    );
    println!(
        "the same from before the writer sent its put: p50 {:?}, p99 {:?}",
        percentile(&mut from_send, 0.5),
        percentile(&mut from_send, 0.99)
    );
    println!("{}", near.stats());
}
