//! A slow function made fast with one attribute.
//!
//! ```text
//! cargo run --example quickstart                                   # embedded in-memory store
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example quickstart  # shared Redis store
//! ```
//!
//! With Redis, run it twice: the second process is served the first one's results.
//!
//! A builder that names no store reads `FNCACHE_REDIS_URL`, then `REDIS_URL`, by itself. This
//! example names the store explicitly because cargo runs it with `FNCACHE_REDIS_URL` blanked
//! (this workspace's `.cargo/config.toml` does so to keep tests off your Redis), which would
//! otherwise make it ignore `REDIS_URL`.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use fncache::{Cache, Policy};

/// The cache, built on first use: on Redis when `REDIS_URL` is set, embedded otherwise.
// A static cannot return an error: an invalid `REDIS_URL` stops the example at first use.
#[allow(clippy::expect_used)]
static CACHE: LazyLock<fncache::blocking::Cache> = LazyLock::new(|| {
    let builder = Cache::builder("quickstart")
        .policy(Policy::Lru)
        .maxsize(100)
        .ttl(Duration::from_secs(600));
    let builder = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => builder.redis(url),
        _ => builder.memory(),
    };
    builder
        .build_blocking()
        .expect("a valid cache configuration")
});

/// Stands in for a slow query or computation.
#[fncache::cached(cache = CACHE)]
fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(200));
    x * x
}

fn main() -> Result<(), fncache::Error> {
    let store = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => "Redis (REDIS_URL)",
        _ => "the embedded in-memory store",
    };
    println!("fncache quickstart on {store}\n");

    for round in 1..=2 {
        let started = Instant::now();
        let total: u64 = (1..=5).map(slow_square).sum();
        println!(
            "round {round}: sum of squares 1..=5 = {total} in {:>7.1} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
    }

    // The decorated function never fails (it fails open); explicit operations report the
    // backend's trouble, so a wrong REDIS_URL shows here.
    match (slow_square_is_cached(&3), CACHE.len()) {
        (Ok(cached), Ok(len)) => println!("\nis slow_square(3) cached? {cached}; entries: {len}"),
        (Err(e), _) | (_, Err(e)) => println!("\nthe store is not answering: {e}"),
    }
    println!(
        "slow_square_uncached(3) = {} (no cache)",
        slow_square_uncached(3)
    );

    let stats = CACHE.stats();
    println!(
        "\ncalls {}, hits {}, misses {}, executions {}, calls failed open {}, errors {}",
        stats.calls, stats.hits, stats.misses, stats.execs, stats.fail_open, stats.errors
    );
    Ok(())
}
