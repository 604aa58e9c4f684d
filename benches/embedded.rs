//! What does a hit on the embedded store cost, next to an in-process cache?
//!
//! The workload of issue 10: `u32` arguments, 64-byte `String` values, caches filled with 1k
//! and with 1M entries, every lookup a hit on a pseudo-random key (the same key sequence for
//! every variant). The references are a `moka::sync::Cache::get` (a concurrent cache with an
//! approximate, sampled policy) and a `Mutex<HashMap<u32, String>>` get + clone (no policy at
//! all); fncache's variant is a blocking [`fncache::blocking::Cache::get_or_compute`] hit on
//! the embedded store, with the default policy (`LruT`) and with every other policy. An
//! fncache hit also hashes the arguments into a typed key (BLAKE3), records the use for its
//! exact policy, judges freshness and decodes the stored value, so some ratio above 1 is the
//! price of those guarantees; the figures say how much.
//!
//! The bench interleaves the variants in small chunks, round after round, so that drift (CPU
//! frequency, other load on a shared machine) hits all of them alike, and prints the median
//! over rounds of each per-round ratio:
//!
//! - one thread, 1k and 1M entries: ns per hit, and the ratio to moka and to the mutexed map;
//! - flat cost with size: an fncache hit at 1M entries over one at 1k;
//! - two threads hitting one cache: throughput, as a ratio to moka's and the map's (the
//!   machine needs two idle cores for this figure to mean anything).
//!
//! Run with `cargo bench --bench embedded`; add `-- --quick` for fewer rounds and only the
//! default policy at 1M entries (about a minute, most of it filling the 1M caches); or
//! `-- --profile [hits]` for a profiler (default-policy hits on a 1k cache, nothing else;
//! add `--two` for two threads).

#![allow(clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::Instant;

use fncache::{Cache, Policy, blocking};

/// The function name of every fncache variant.
const FUNCTION: &str = "value";

/// The value of `key`: 64 ASCII bytes that differ per key.
fn value_of(key: u32) -> String {
    format!("{key:010}-abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRS")
}

/// One cache under test.
enum Subject {
    Moka(moka::sync::Cache<u32, String>),
    Map(Mutex<HashMap<u32, String>>),
    Fncache(blocking::Cache),
}

impl Subject {
    fn moka(entries: u32) -> Subject {
        let cache = moka::sync::Cache::new(u64::from(entries));
        for key in 0..entries {
            cache.insert(key, value_of(key));
        }
        cache.run_pending_tasks();
        Subject::Moka(cache)
    }

    fn map(entries: u32) -> Subject {
        Subject::Map(Mutex::new((0..entries).map(|k| (k, value_of(k))).collect()))
    }

    fn fncache(entries: u32, policy: Policy) -> Subject {
        let cache = Cache::builder(format!("bench-{}-{entries}", policy.tag()))
            .memory()
            .policy(policy)
            .maxsize(entries as usize)
            .build_blocking()
            .expect("an embedded cache builds");
        for key in 0..entries {
            let _: String = cache
                .get_or_compute(FUNCTION, &(key,), || value_of(key))
                .expect("filling");
        }
        assert_eq!(cache.stats().execs, u64::from(entries));
        Subject::Fncache(cache)
    }

    /// One hit; the value's length keeps the work from being optimised away.
    #[inline]
    fn hit(&self, key: u32) -> usize {
        match self {
            Subject::Moka(cache) => cache.get(&key).map_or(0, |v| v.len()),
            Subject::Map(map) => map
                .lock()
                .expect("not poisoned")
                .get(&key)
                .cloned()
                .map_or(0, |v| v.len()),
            Subject::Fncache(cache) => cache
                .get_or_compute(FUNCTION, &(key,), || value_of(key))
                .map_or(0, |v: String| v.len()),
        }
    }

    /// Checks that every lookup of the measurement was a hit of the right value.
    fn check(&self, entries: u32) {
        for key in [0, entries / 2, entries - 1] {
            let value = match self {
                Subject::Moka(cache) => cache.get(&key),
                Subject::Map(map) => map.lock().expect("not poisoned").get(&key).cloned(),
                Subject::Fncache(cache) => {
                    cache.get_or_compute(FUNCTION, &(key,), String::new).ok()
                }
            };
            assert_eq!(value, Some(value_of(key)), "key {key}");
        }
        if let Subject::Fncache(cache) = self {
            let stats = cache.stats();
            assert_eq!(
                stats.execs,
                u64::from(entries),
                "a lookup missed: {stats:?}"
            );
        }
    }
}

/// A subject with its label and the size it was filled to.
struct Variant {
    label: String,
    entries: u32,
    subject: Subject,
    /// Where this variant is in the key sequence.
    cursor: usize,
}

/// The pseudo-random keys of one size, shared by every variant of that size.
fn keys(entries: u32) -> Vec<u32> {
    let mut rng = fastrand::Rng::with_seed(u64::from(entries));
    (0..1 << 16).map(|_| rng.u32(..entries)).collect()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Times `ops` hits of `v` on one thread; ns per hit.
fn run_one(v: &mut Variant, keys: &[u32], ops: usize) -> f64 {
    let start = Instant::now();
    let mut sum = 0;
    for i in 0..ops {
        sum += v.subject.hit(keys[(v.cursor + i) % keys.len()]);
    }
    let elapsed = start.elapsed();
    black_box(sum);
    v.cursor = (v.cursor + ops) % keys.len();
    elapsed.as_nanos() as f64 / ops as f64
}

/// Times `ops` hits on each of two threads sharing `v`; hits per microsecond.
fn run_two(v: &Variant, keys: &[u32], ops: usize) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2 {
            let subject = &v.subject;
            s.spawn(move || {
                let offset = t * keys.len() / 2;
                let mut sum = 0;
                for i in 0..ops {
                    sum += subject.hit(keys[(offset + i) % keys.len()]);
                }
                black_box(sum);
            });
        }
    });
    (2 * ops) as f64 / (start.elapsed().as_nanos() as f64 / 1000.0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--profile") {
        // For a profiler: `valgrind --tool=callgrind <bench binary> --profile 100000` runs
        // that many default-policy hits on a 1k cache and nothing else (`--two`: that many on
        // each of two threads).
        let hits = args
            .get(at + 1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(100_000);
        let mut v = Variant {
            label: String::new(),
            entries: 1_000,
            subject: Subject::fncache(1_000, Policy::default()),
            cursor: 0,
        };
        if args.iter().any(|a| a == "--two") {
            run_two(&v, &keys(1_000), hits);
        } else {
            run_one(&mut v, &keys(1_000), hits);
        }
        return;
    }
    let quick = args.iter().any(|a| a == "--quick" || a == "--test");
    let (rounds, chunk, rounds2, ops2) = if quick {
        (40, 500, 7, 20_000)
    } else {
        (200, 1000, 25, 50_000)
    };
    let sizes: [(u32, &str); 2] = [(1_000, "1k"), (1_000_000, "1M")];
    let mut variants = Vec::new();
    for (entries, size) in sizes {
        let policies: &[Policy] = match (entries, quick) {
            (1_000, _) => &Policy::ALL,
            (_, true) => &[Policy::LruT],
            (_, false) => &[Policy::LruT, Policy::Lru, Policy::Lfu],
        };
        eprintln!("filling the {size} caches ...");
        variants.push(Variant {
            label: format!("moka get, {size}"),
            entries,
            subject: Subject::moka(entries),
            cursor: 0,
        });
        variants.push(Variant {
            label: format!("Mutex<HashMap> get+clone, {size}"),
            entries,
            subject: Subject::map(entries),
            cursor: 0,
        });
        for &policy in policies {
            let default = if policy == Policy::default() {
                " (default)"
            } else {
                ""
            };
            variants.push(Variant {
                label: format!("fncache hit {}{default}, {size}", policy.tag()),
                entries,
                subject: Subject::fncache(entries, policy),
                cursor: 0,
            });
        }
    }
    let keys_of: HashMap<u32, Vec<u32>> = sizes.iter().map(|&(n, _)| (n, keys(n))).collect();

    // One thread: every variant, interleaved.
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _ in 0..rounds {
        for (v, t) in variants.iter_mut().zip(&mut times) {
            let keys = &keys_of[&v.entries];
            t.push(run_one(v, keys, chunk));
        }
    }
    let reference = |label: &str, entries: u32| {
        variants
            .iter()
            .position(|v| v.entries == entries && v.label.starts_with(label))
            .expect("reference variant")
    };
    let ratio =
        |a: usize, b: usize| median(times[a].iter().zip(&times[b]).map(|(x, y)| x / y).collect());
    println!("\nembedded store, one thread ({rounds} rounds of {chunk} hits; medians)");
    println!(
        "{:<40} {:>9} {:>8} {:>8}",
        "variant", "ns/hit", "x moka", "x map"
    );
    for (i, v) in variants.iter().enumerate() {
        let (moka, map) = (reference("moka", v.entries), reference("Mutex", v.entries));
        println!(
            "{:<40} {:>9.0} {:>8.2} {:>8.2}",
            v.label,
            median(times[i].clone()),
            ratio(i, moka),
            ratio(i, map)
        );
    }
    let small = reference("fncache hit lru_t", 1_000);
    let large = reference("fncache hit lru_t", 1_000_000);
    println!(
        "\nflat cost with size: fncache hit lru_t at 1M / at 1k = {:.2} (goal <= 1.2)",
        ratio(large, small)
    );
    println!(
        "goal: fncache default hit <= 1.0x moka at 1k ({:.2}) and 1M ({:.2})",
        ratio(small, reference("moka", 1_000)),
        ratio(large, reference("moka", 1_000_000))
    );

    // Two threads: the references and the default policy, interleaved.
    let two: Vec<usize> = variants
        .iter()
        .enumerate()
        .filter(|(_, v)| {
            v.label.starts_with("moka")
                || v.label.starts_with("Mutex")
                || v.label.starts_with("fncache hit lru_t")
        })
        .map(|(i, _)| i)
        .collect();
    let mut rates: HashMap<usize, Vec<f64>> = HashMap::new();
    for _ in 0..rounds2 {
        for &i in &two {
            let v = &variants[i];
            rates
                .entry(i)
                .or_default()
                .push(run_two(v, &keys_of[&v.entries], ops2));
        }
    }
    let rate_ratio = |a: usize, b: usize| {
        median(
            rates[&a]
                .iter()
                .zip(&rates[&b])
                .map(|(x, y)| x / y)
                .collect(),
        )
    };
    println!("\nembedded store, two threads on one cache ({rounds2} rounds of 2 x {ops2} hits)");
    println!(
        "{:<40} {:>9} {:>8} {:>8}",
        "variant", "hits/us", "x moka", "x map"
    );
    for &i in &two {
        let v = &variants[i];
        let (moka, map) = (reference("moka", v.entries), reference("Mutex", v.entries));
        println!(
            "{:<40} {:>9.2} {:>8.2} {:>8.2}",
            v.label,
            median(rates[&i].clone()),
            rate_ratio(i, moka),
            rate_ratio(i, map)
        );
    }
    println!("(throughput ratios: higher is better; goal: fncache >= 1.0x moka)");

    for v in &variants {
        v.subject.check(v.entries);
    }
}
