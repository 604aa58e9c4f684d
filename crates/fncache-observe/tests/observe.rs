//! fncache's metrics and spans, read after known calls: every outcome lands in
//! `fncache_calls_total` under its label, the other counters and the store histogram follow the
//! calls' work, and each call is one `fncache.call` span holding its store ops.
//!
//! Metrics go to a `DebuggingRecorder` installed for the test's thread only, spans to a
//! capturing subscriber set for the thread only: tests run in parallel without seeing each
//! other. Background work (refreshes, fills) runs on other threads; the handles it counts
//! through were taken on the test's thread, so it counts into the same recorder.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fncache::clock::ManualClock;
use fncache::{Cache, CallOptions, Mode};
use fncache_testing::RedisServer;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

fn unique_name(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "observe-{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The non-zero metrics as `name{labels but cache}` (summed over the caches): counters by
/// value, histograms by their number of samples.
fn nonzero(snapshotter: &Snapshotter) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let labels: Vec<String> = key
            .key()
            .labels()
            .filter(|l| l.key() != "cache")
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        let n = match value {
            DebugValue::Counter(n) => n,
            DebugValue::Histogram(samples) => samples.len() as u64,
            DebugValue::Gauge(_) => panic!("fncache has no gauges"),
        };
        if n > 0 {
            *out.entry(format!("{}{{{}}}", key.key().name(), labels.join(",")))
                .or_default() += n;
        }
    }
    out
}

fn expect(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn memory_outcomes_and_work_are_counted() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let clock = Arc::new(ManualClock::new());
        let cache = Cache::builder(unique_name("memory"))
            .memory()
            .clock(clock.clone())
            .refresh_after(Duration::from_secs(10))
            .entry_ttl(Duration::from_secs(60))
            .maxsize(3)
            .wait(false)
            .build_blocking()
            .unwrap();
        let f = || cache.get_or_compute_owned("f", &1u8, || 1u32).unwrap();
        assert_eq!(f(), 1, "miss");
        assert_eq!(f(), 1, "hit");
        clock.advance(Duration::from_secs(11));
        assert_eq!(f(), 1, "stale, refreshed in the background");
        eventually("the refresh", || cache.stats().refreshes == 1);
        let g = cache
            .try_get_or_compute_owned_with(&CallOptions::new(), Some(0u32), "g", &1u8, || {
                Ok::<u32, ()>(5)
            })
            .unwrap();
        assert_eq!(g, Ok(0), "the default, filled in the background");
        eventually("the fill", || cache.stats().writes == 3);
        let bypass = cache.with_mode(Mode::BYPASS, || cache.get_or_compute("h", &0u8, || 0u8));
        assert_eq!(bypass.unwrap(), 0);
        for x in 1..=2u8 {
            cache.get_or_compute("h", &x, || x).unwrap();
        }
        assert_eq!(cache.stats().evictions, 1, "four entries, room for three");
    });
    assert_eq!(
        nonzero(&snapshotter),
        expect(&[
            ("fncache_calls_total{function=f,outcome=hit}", 1),
            ("fncache_calls_total{function=f,outcome=miss}", 1),
            ("fncache_calls_total{function=f,outcome=stale}", 1),
            ("fncache_calls_total{function=g,outcome=default}", 1),
            ("fncache_calls_total{function=h,outcome=bypass}", 1),
            ("fncache_calls_total{function=h,outcome=miss}", 2),
            ("fncache_evictions_total{}", 1),
            ("fncache_executions_total{function=f}", 2),
            ("fncache_executions_total{function=g}", 1),
            ("fncache_executions_total{function=h}", 3),
            ("fncache_refreshes_total{function=f}", 1),
            ("fncache_store_seconds{op=get}", 6),
            ("fncache_store_seconds{op=put}", 5),
            ("fncache_writes_total{function=f}", 2),
            ("fncache_writes_total{function=g}", 1),
            ("fncache_writes_total{function=h}", 2),
        ])
    );
}

/// Every store op is timed under the `op` label the README documents for it.
#[test]
fn every_store_op_is_timed_under_its_label() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let cache = Cache::builder(unique_name("ops"))
            .memory()
            .build_blocking()
            .unwrap();
        let tagged = CallOptions::new().tags(["t"]);
        cache
            .get_or_compute_with(&tagged, "f", &1u8, || 1u32)
            .unwrap();
        assert!(cache.contains("f", &1u8).unwrap());
        assert!(cache.expire("f", &1u8).unwrap());
        // Expired by the line above: removed, but not counted as a live entry.
        assert!(!cache.invalidate("f", &1u8).unwrap());
        assert_eq!(cache.len().unwrap(), 0);
        assert_eq!(cache.vacuum().unwrap(), 0);
        assert_eq!(cache.invalidate_tag("t").unwrap(), 0);
        assert_eq!(cache.purge().unwrap(), 0);
    });
    let timed: BTreeMap<String, u64> = nonzero(&snapshotter)
        .into_iter()
        .filter(|(k, _)| k.starts_with("fncache_store_seconds"))
        .collect();
    assert_eq!(
        timed,
        expect(&[
            ("fncache_store_seconds{op=expire}", 1),
            ("fncache_store_seconds{op=get}", 1),
            ("fncache_store_seconds{op=invalidate_tag}", 1),
            ("fncache_store_seconds{op=len}", 1),
            ("fncache_store_seconds{op=peek}", 1),
            ("fncache_store_seconds{op=purge}", 1),
            ("fncache_store_seconds{op=put}", 1),
            ("fncache_store_seconds{op=remove}", 1),
            ("fncache_store_seconds{op=vacuum}", 1),
        ])
    );
}

#[test]
fn redis_fail_open_and_strict_errors_are_counted() {
    let mut server = RedisServer::spawn();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let build = |strict: bool| {
            Cache::builder(unique_name("redis"))
                .redis(server.url())
                .strict(strict)
                .build_blocking()
                .unwrap()
        };
        let (lenient, strict) = (build(false), build(true));
        assert_eq!(lenient.get_or_compute("f", &1u8, || 1u8).unwrap(), 1);
        assert_eq!(lenient.get_or_compute("f", &1u8, || 1u8).unwrap(), 1);
        server.stop();
        assert_eq!(
            lenient.get_or_compute("f", &1u8, || 1u8).unwrap(),
            1,
            "fail-open"
        );
        let refused = strict.get_or_compute("s", &1u8, || 1u8).unwrap_err();
        assert_eq!(refused.kind(), fncache::ErrorKind::Backend);
    });
    assert_eq!(
        nonzero(&snapshotter),
        expect(&[
            ("fncache_calls_total{function=f,outcome=fail_open}", 1),
            ("fncache_calls_total{function=f,outcome=hit}", 1),
            ("fncache_calls_total{function=f,outcome=miss}", 1),
            ("fncache_calls_total{function=s,outcome=error}", 1),
            ("fncache_errors_total{function=f,kind=backend}", 1),
            ("fncache_errors_total{function=s,kind=backend}", 1),
            ("fncache_executions_total{function=f}", 2),
            ("fncache_store_seconds{op=get}", 4),
            ("fncache_store_seconds{op=put}", 1),
            ("fncache_writes_total{function=f}", 1),
        ])
    );
}

/// A subscriber that keeps every span (name, fields, parent) and event (fields, span).
#[derive(Debug, Clone, Default)]
struct Capture(Arc<Mutex<Captured>>);

#[derive(Debug, Default)]
struct Captured {
    spans: Vec<Recorded>,
    events: Vec<Recorded>,
    /// Entered spans, innermost last (ids are indexes into `spans` plus one).
    stack: Vec<u64>,
}

#[derive(Debug, Clone, Default)]
struct Recorded {
    name: String,
    fields: BTreeMap<String, String>,
    /// The enclosing span's index in `spans`.
    parent: Option<usize>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
}

impl Captured {
    fn parent(&self, explicit: Option<&tracing::span::Id>, contextual: bool) -> Option<usize> {
        let id = match explicit {
            Some(id) => Some(id.into_u64()),
            None if contextual => self.stack.last().copied(),
            None => None,
        };
        id.map(|id| usize::try_from(id).unwrap() - 1)
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut c = self.0.lock().unwrap();
        let mut span = Recorded {
            name: attrs.metadata().name().into(),
            parent: c.parent(attrs.parent(), attrs.is_contextual()),
            ..Recorded::default()
        };
        attrs.record(&mut Fields(&mut span.fields));
        c.spans.push(span);
        tracing::span::Id::from_u64(c.spans.len() as u64)
    }
    fn record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut c = self.0.lock().unwrap();
        let span = &mut c.spans[usize::try_from(id.into_u64()).unwrap() - 1];
        values.record(&mut Fields(&mut span.fields));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut c = self.0.lock().unwrap();
        let mut recorded = Recorded {
            name: event.metadata().name().into(),
            parent: c.parent(event.parent(), event.is_contextual()),
            ..Recorded::default()
        };
        event.record(&mut Fields(&mut recorded.fields));
        c.events.push(recorded);
    }
    fn enter(&self, id: &tracing::span::Id) {
        self.0.lock().unwrap().stack.push(id.into_u64());
    }
    fn exit(&self, id: &tracing::span::Id) {
        let mut c = self.0.lock().unwrap();
        if let Some(at) = c.stack.iter().rposition(|s| *s == id.into_u64()) {
            c.stack.remove(at);
        }
    }
}

/// The calls' spans as `(function, outcome)`, and the store ops in each, in order.
fn calls(capture: &Capture) -> Vec<((String, String), Vec<String>)> {
    let c = capture.0.lock().unwrap();
    c.spans
        .iter()
        .enumerate()
        .filter(|(_, s)| s.name == "fncache.call")
        .map(|(i, s)| {
            assert!(s.fields.contains_key("store_seconds"), "{s:?}");
            let ops = c
                .events
                .iter()
                .filter(|e| e.parent == Some(i) && e.fields.contains_key("op"))
                .map(|e| e.fields["op"].clone())
                .collect();
            (
                (s.fields["function"].clone(), s.fields["outcome"].clone()),
                ops,
            )
        })
        .collect()
}

fn call(function: &str, outcome: &str, ops: &[&str]) -> ((String, String), Vec<String>) {
    (
        (function.to_string(), outcome.to_string()),
        ops.iter().map(|op| op.to_string()).collect(),
    )
}

#[test]
fn a_blocking_call_is_a_span_holding_its_store_ops_and_the_function() {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        let cache = Cache::builder(unique_name("spans"))
            .memory()
            .build_blocking()
            .unwrap();
        for _ in 0..2 {
            cache
                .get_or_compute("f", &1u8, || {
                    tracing::info!(inside = true, "computing");
                    1u8
                })
                .unwrap();
        }
    });
    assert_eq!(
        calls(&capture),
        vec![
            call("f", "miss", &["get", "put"]),
            call("f", "hit", &["get"])
        ]
    );
    let c = capture.0.lock().unwrap();
    let computing = c.events.iter().find(|e| e.fields.contains_key("inside"));
    assert_eq!(
        computing
            .and_then(|e| e.parent)
            .map(|i| c.spans[i].name.as_str()),
        Some("fncache.call"),
        "the function runs inside the call's span"
    );
}

/// A near hit (issue 13 names it among the outcomes) is an outcome of its own, in the span and
/// in `fncache_calls_total`, with no store op; `hit` + `near_hit` are the stats' fresh hits.
#[test]
fn a_near_hit_is_an_outcome_of_its_own() {
    let server = RedisServer::spawn();
    let capture = Capture::default();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let stats = metrics::with_local_recorder(&recorder, || {
        tracing::subscriber::with_default(capture.clone(), || {
            let cache = Cache::builder(unique_name("near"))
                .redis(server.url())
                .near_cache(10)
                .build_blocking()
                .unwrap();
            // Until the link is up and a copy is served.
            eventually("a near hit", || {
                cache.get_or_compute("f", &1u8, || 1u8).unwrap();
                cache.stats().near_hits > 0
            });
            cache.stats()
        })
    });
    let spans = calls(&capture);
    assert_eq!(
        spans.last(),
        Some(&call("f", "near_hit", &[])),
        "{spans:#?}"
    );
    let counted = nonzero(&snapshotter);
    assert_eq!(
        counted.get("fncache_calls_total{function=f,outcome=near_hit}"),
        Some(&stats.near_hits),
        "{counted:#?}"
    );
    let hits = counted
        .get("fncache_calls_total{function=f,outcome=hit}")
        .copied()
        .unwrap_or(0);
    assert_eq!(hits + stats.near_hits, stats.hits, "{counted:#?}");
}

#[test]
fn an_async_call_on_redis_is_a_span_holding_its_store_ops_across_awaits() {
    let mut server = RedisServer::spawn();
    let capture = Capture::default();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        tracing::subscriber::with_default(capture.clone(), || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let cache = Cache::builder(unique_name("async"))
                    .redis(server.url())
                    .build()
                    .unwrap();
                for _ in 0..2 {
                    let value = cache
                        .get_or_compute("f", &1u8, || async {
                            tokio::task::yield_now().await;
                            tracing::info!(inside = true, "computing");
                            1u8
                        })
                        .await
                        .unwrap();
                    assert_eq!(value, 1);
                }
                server.stop();
                let value = cache.get_or_compute("f", &1u8, || async { 1u8 }).await;
                assert_eq!(value.unwrap(), 1, "fail-open");
            });
        });
    });
    assert_eq!(
        calls(&capture),
        vec![
            call("f", "miss", &["get", "put"]),
            call("f", "hit", &["get"]),
            call("f", "fail_open", &["get"]),
        ]
    );
    {
        let c = capture.0.lock().unwrap();
        let computing = c.events.iter().find(|e| e.fields.contains_key("inside"));
        assert_eq!(
            computing
                .and_then(|e| e.parent)
                .map(|i| c.spans[i].name.as_str()),
            Some("fncache.call"),
            "the function's future runs inside the call's span"
        );
    }
    let counted = nonzero(&snapshotter);
    for (key, n) in [
        ("fncache_calls_total{function=f,outcome=miss}", 1),
        ("fncache_calls_total{function=f,outcome=hit}", 1),
        ("fncache_calls_total{function=f,outcome=fail_open}", 1),
        ("fncache_store_seconds{op=get}", 3),
    ] {
        assert_eq!(counted.get(key), Some(&n), "{key} in {counted:#?}");
    }
}

#[test]
fn without_a_subscriber_or_recorder_nothing_is_recorded_and_calls_work() {
    // The no-op recorder and no subscriber: handles are not kept, spans not made.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let cache = Cache::builder(unique_name("quiet"))
        .memory()
        .build_blocking()
        .unwrap();
    cache.get_or_compute("f", &1u8, || 1u8).unwrap();
    metrics::with_local_recorder(&recorder, || {
        // Installed after the cache was built and saw `f`: `f` counts nowhere (documented).
        cache.get_or_compute("f", &1u8, || 1u8).unwrap();
    });
    assert_eq!(nonzero(&snapshotter), BTreeMap::new());
    assert_eq!(cache.stats().hits, 1);
}

#[test]
fn waiting_for_another_caller_and_a_dropped_call_are_outcomes_too() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let cache = &Cache::builder(unique_name("wait"))
            .memory()
            .build_blocking()
            .unwrap();
        // The function's handles are taken at its first call, here, where the recorder is.
        cache.get_or_compute("f", &0u8, || 0u8).unwrap();
        let (release, released) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|s| {
            let leader = s.spawn(move || {
                cache.get_or_compute("f", &1u8, || {
                    released.recv().unwrap();
                    1u8
                })
            });
            eventually("the leader computes", || cache.stats().execs == 2);
            let follower = s.spawn(|| cache.get_or_compute("f", &1u8, || 2u8));
            eventually("the follower waits", || cache.stats().lock_waits == 1);
            release.send(()).unwrap();
            assert_eq!(leader.join().unwrap().unwrap(), 1);
            assert_eq!(follower.join().unwrap().unwrap(), 1, "the leader's value");
        });

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let cache = Cache::builder(unique_name("dropped"))
            .memory()
            .build()
            .unwrap();
        runtime.block_on(async {
            let call = cache.get_or_compute("g", &1u8, std::future::pending::<u8>);
            let timed_out = tokio::time::timeout(Duration::from_millis(1), call).await;
            assert!(timed_out.is_err(), "the caller stopped waiting");
        });
    });
    let counted = nonzero(&snapshotter);
    for (key, n) in [
        ("fncache_calls_total{function=f,outcome=miss}", 2),
        ("fncache_calls_total{function=f,outcome=lock_wait}", 1),
        ("fncache_calls_total{function=g,outcome=cancelled}", 1),
    ] {
        assert_eq!(counted.get(key), Some(&n), "{key} in {counted:#?}");
    }
}

/// A batch of shared statistics that cannot be sent (here the last one, sent by the drop of
/// the cache) is logged as a warning naming the cache, once per interval.
#[test]
fn a_failed_batch_of_shared_statistics_is_logged() {
    let server = RedisServer::spawn();
    let name = unique_name("shared-down");
    let cache = Cache::builder(name.clone())
        .redis(server.url())
        .build_blocking()
        .unwrap();
    cache.get_or_compute("f", &1u8, || 1u8).unwrap();
    drop(server);
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || drop(cache));
    let warnings: Vec<_> = capture
        .0
        .lock()
        .unwrap()
        .events
        .iter()
        .filter(|e| {
            e.fields
                .get("message")
                .is_some_and(|m| m.contains("sending the shared statistics failed"))
        })
        .cloned()
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0].fields.get("cache"), Some(&name));
}
