//! A slow function made fast.
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

use std::time::{Duration, Instant};

use fncache::{Cache, Policy};

/// Stands in for a slow query or computation.
fn slow_square(x: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(200));
    x * x
}

fn main() -> Result<(), fncache::Error> {
    let mut builder = Cache::builder("quickstart")
        .policy(Policy::Lru)
        .maxsize(100)
        .ttl(Duration::from_secs(600));
    let store = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            builder = builder.redis(url);
            "Redis (REDIS_URL)"
        }
        _ => {
            builder = builder.memory();
            "the embedded in-memory store"
        }
    };
    let cache = builder.build_blocking()?;
    println!("fncache quickstart on {store}\n");

    for round in 1..=2 {
        let started = Instant::now();
        let mut total = 0;
        for x in 1..=5u64 {
            total += cache.get_or_compute("quickstart::slow_square", &(x,), || slow_square(x))?;
        }
        println!(
            "round {round}: sum of squares 1..=5 = {total} in {:>7.1} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
    }

    let stats = cache.stats();
    println!(
        "\ncalls {}, hits {}, misses {}, executions {}, entries cached {}",
        stats.calls,
        stats.hits,
        stats.misses,
        stats.execs,
        cache.len()?
    );
    Ok(())
}
