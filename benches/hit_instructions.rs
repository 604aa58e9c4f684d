//! The instructions a blocking hit on the embedded store costs, for callgrind: a repeatable
//! measure of the hot path, where wall time is too noisy to see a few instructions.
//!
//! `cargo bench --bench hit_instructions --no-run` builds it; then run the binary twice under
//! `valgrind --tool=callgrind` with two numbers of hits (say 1000 and 11000): the difference of
//! the two totals over the difference of the hits is the cost of one hit, setup excluded.
//! A second argument `recorder` installs a minimal `metrics` recorder first (with the `metrics`
//! feature: `--features metrics`); `subscriber` installs a `tracing` subscriber that wants every
//! span and event but does nothing with them.
//!
//! With `REDIS_URL` set, a second argument `async` makes the hits async ones on that server
//! (a current-thread runtime, one task), and `raw` makes them raw redis-rs `GET`s on one
//! `MultiplexedConnection`: the difference of the two per-hit counts is the client CPU that
//! fncache adds to a Redis hit (the server's time is not in it: callgrind sees one process).
//! `batched` is `async` with `Builder::touch_batch` (a hit is one plain `HGET`). The hits
//! are one task's, or with `FNCACHE_TASKS=64` spread over 64 tasks on distinct keys (the busy
//! case, where one write and one read of the connection carry many requests).

#![allow(clippy::expect_used, clippy::panic)]

use std::hint::black_box;

fn main() {
    let mut args = std::env::args().skip(1);
    let hits: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let listener = args.next().unwrap_or_default();
    match listener.as_str() {
        #[cfg(feature = "metrics")]
        "recorder" => {
            metrics::set_global_recorder(probe::Recorder::default()).expect("the first recorder")
        }
        "subscriber" => tracing::subscriber::set_global_default(probe::Subscriber::default())
            .expect("the first subscriber"),
        "async" | "raw" | "batched" => return redis_hits(hits, &listener),
        "" => {}
        other => panic!("unknown listener `{other}`"),
    }
    let cache = fncache::Cache::builder("hit-instructions")
        .memory()
        .build_blocking()
        .expect("valid config");
    let mut sum = 0u64;
    for _ in 0..=hits {
        sum += cache
            .get_or_compute("f", &(7u64,), || 49u64)
            .expect("a value");
    }
    black_box(sum);
}

/// Async hits on the server at `REDIS_URL` (or raw `GET`s of one key), by `FNCACHE_TASKS`
/// tasks (1 if unset), each on its own key, `hits` in all.
fn redis_hits(hits: u64, mode: &str) {
    let url = std::env::var("REDIS_URL").expect("REDIS_URL names the server");
    let tasks: u64 = std::env::var("FNCACHE_TASKS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let per_task = hits / tasks + 1;
        let mut set = tokio::task::JoinSet::new();
        if mode == "raw" {
            let client = redis::Client::open(url).expect("a valid URL");
            let con = client
                .get_multiplexed_async_connection()
                .await
                .expect("a connection");
            for t in 0..tasks {
                let mut con = con.clone();
                set.spawn(async move {
                    let key = format!("hit-instructions-raw-{t}");
                    let _: () = redis::cmd("SET")
                        .arg(&key)
                        .arg(49u64)
                        .query_async(&mut con)
                        .await
                        .expect("SET");
                    let mut sum = 0u64;
                    for _ in 0..per_task {
                        let v: u64 = redis::cmd("GET")
                            .arg(&key)
                            .query_async(&mut con)
                            .await
                            .expect("GET");
                        sum += v;
                    }
                    sum
                });
            }
        } else {
            let mut builder =
                fncache::Cache::builder(format!("hit-instructions-{mode}")).redis(url);
            if mode == "batched" {
                builder = builder.touch_batch(std::time::Duration::from_millis(5));
            }
            let cache = builder.build().expect("valid config");
            for t in 0..tasks {
                let cache = cache.clone();
                set.spawn(async move {
                    let mut sum = 0u64;
                    for _ in 0..per_task {
                        sum += cache
                            .get_or_compute("f", &(t,), || async { 49u64 })
                            .await
                            .expect("a value");
                    }
                    sum
                });
            }
        }
        let mut sum = 0u64;
        while let Some(done) = set.join_next().await {
            sum += done.expect("a task");
        }
        black_box(sum);
    });
}

mod probe {
    //! Listeners that cost as little as a listener can, so that what is measured is fncache.

    use std::sync::atomic::{AtomicU64, Ordering};

    /// Wants everything, keeps nothing.
    #[derive(Debug, Default)]
    pub(crate) struct Subscriber {
        next: AtomicU64,
    }

    impl tracing::Subscriber for Subscriber {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed) + 1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, _: &tracing::Event<'_>) {}
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    /// Counters are atomics, histograms keep a count.
    #[cfg(feature = "metrics")]
    #[derive(Debug, Default)]
    pub(crate) struct Recorder {
        _state: u8,
    }

    #[cfg(feature = "metrics")]
    #[derive(Debug, Default)]
    struct Count(AtomicU64);

    #[cfg(feature = "metrics")]
    impl metrics::HistogramFn for Count {
        fn record(&self, _: f64) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[cfg(feature = "metrics")]
    impl metrics::Recorder for Recorder {
        fn describe_counter(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_gauge(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn describe_histogram(
            &self,
            _: metrics::KeyName,
            _: Option<metrics::Unit>,
            _: metrics::SharedString,
        ) {
        }
        fn register_counter(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Counter {
            metrics::Counter::from_arc(std::sync::Arc::new(AtomicU64::new(0)))
        }
        fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
            metrics::Gauge::noop()
        }
        fn register_histogram(
            &self,
            _: &metrics::Key,
            _: &metrics::Metadata<'_>,
        ) -> metrics::Histogram {
            metrics::Histogram::from_arc(std::sync::Arc::new(Count::default()))
        }
    }
}
