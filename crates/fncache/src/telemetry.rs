//! What a cache tells the outside world about its calls: a `tracing` span per call, a `trace`
//! event per store op, and, with the `metrics` feature, counters and a store latency histogram
//! through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! All of it is nearly free when nobody listens, because the hit path runs it on every call:
//! a disabled span is one callsite-interest check, the store ops are timed only when a `trace`
//! subscriber or a metrics recorder wants the time, and the metrics handles are registered once
//! per cache and per function (no key or label is built per call), so with the facade's no-op
//! recorder an update is one branch on an empty handle.

use std::time::{Duration, Instant};

use crate::error::Error;
use crate::stats::Event;
use crate::store::{StoreOp, StoreReply};

/// How a call ended: exactly one per call, the label `outcome` of the call span and of
/// `fncache_calls_total`. Derived from the [`Event`]s the call counted, so it agrees with
/// [`crate::Stats`].
///
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A fresh value from the store (a `hits` count).
    Hit,
    /// A fresh value from the near cache, with no I/O (`near_hits`, also in `hits`).
    NearHit,
    /// The value of another caller of the same key, after waiting for it (`lock_waits`, `hits`).
    LockWait,
    /// A stale value: past `refresh_after`, or a fallback served by fail-safe (`stale_served`).
    Stale,
    /// The cache had no usable value; the function's result was returned (`misses`).
    Miss,
    /// The function's default, on a cold miss with `wait(false)` (`defaults_served`).
    Default,
    /// The lookup failed (backend down, timed out, circuit open): the function ran (`fail_open`).
    FailOpen,
    /// The cache was not read (a mode without `read`, or arguments or options it cannot use):
    /// the function ran.
    Bypass,
    /// The call returned a failure of the cache (strict).
    Error,
    /// The call was dropped before it ended (an async call's future dropped mid-call).
    Cancelled,
}

impl Outcome {
    /// Every outcome, in the order of [`Outcome::index`].
    #[cfg(feature = "metrics")]
    const ALL: [Outcome; 10] = [
        Outcome::Hit,
        Outcome::NearHit,
        Outcome::LockWait,
        Outcome::Stale,
        Outcome::Miss,
        Outcome::Default,
        Outcome::FailOpen,
        Outcome::Bypass,
        Outcome::Error,
        Outcome::Cancelled,
    ];

    /// The label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::NearHit => "near_hit",
            Outcome::LockWait => "lock_wait",
            Outcome::Stale => "stale",
            Outcome::Miss => "miss",
            Outcome::Default => "default",
            Outcome::FailOpen => "fail_open",
            Outcome::Bypass => "bypass",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
        }
    }

    /// The outcome of a call that ended normally, from the set of events it counted
    /// ([`Event::bit`]s); the first that applies of: default, fail-open, stale, lock wait, near
    /// hit, hit, miss, bypass.
    pub(crate) fn of(seen: u16) -> Outcome {
        let has = |event: Event| seen & event.bit() != 0;
        if has(Event::DefaultServed) {
            Outcome::Default
        } else if has(Event::FailOpen) {
            Outcome::FailOpen
        } else if has(Event::StaleServed) {
            Outcome::Stale
        } else if has(Event::Hit) && has(Event::LockWait) {
            Outcome::LockWait
        } else if has(Event::NearHit) {
            Outcome::NearHit
        } else if has(Event::Hit) {
            Outcome::Hit
        } else if has(Event::Miss) {
            Outcome::Miss
        } else {
            Outcome::Bypass
        }
    }

    #[cfg(feature = "metrics")]
    fn index(self) -> usize {
        self as usize
    }
}

/// Does any subscriber want `level` at all? One load and compare: the first thing the
/// `tracing` macros check too, taken out so that the rest of their work stays off the inlined
/// hot path.
#[inline]
fn below_max_level(level: tracing::Level) -> bool {
    level <= tracing::level_filters::STATIC_MAX_LEVEL
        && level <= tracing::level_filters::LevelFilter::current()
}

/// The name of a store op, the label `op` of `fncache_store_seconds`.
fn op_name(op: &StoreOp) -> &'static str {
    match op {
        StoreOp::Get { .. } => "get",
        StoreOp::Put { .. } => "put",
        StoreOp::Lease { .. } => "lease",
        StoreOp::Peek { .. } => "peek",
        StoreOp::Expire { .. } => "expire",
        StoreOp::Remove { .. } => "remove",
        StoreOp::Len => "len",
        StoreOp::Purge | StoreOp::PurgeStructure { .. } => "purge",
        StoreOp::Vacuum => "vacuum",
        StoreOp::InvalidateTag { .. } => "invalidate_tag",
    }
}

/// A store op being timed.
#[derive(Debug)]
pub(crate) struct StoreTimer {
    op: &'static str,
    started: Instant,
}

/// The cache-wide part: the store latency histogram.
#[derive(Debug, Default)]
pub(crate) struct Telemetry {
    /// `None` when no metrics recorder was installed when the cache was built (or the feature
    /// is off): store ops are then timed only for `trace` subscribers.
    #[cfg(feature = "metrics")]
    store: Option<metrics_impl::StoreMetrics>,
}

impl Telemetry {
    /// Registers the cache's handles with the recorder installed now (global, or local to the
    /// thread).
    pub(crate) fn new(cache: &str) -> Telemetry {
        #[cfg(not(feature = "metrics"))]
        let _ = cache;
        Telemetry {
            #[cfg(feature = "metrics")]
            store: metrics_impl::StoreMetrics::register(cache),
        }
    }

    /// Starts timing `op`, if anyone wants the time.
    #[inline]
    pub(crate) fn start(&self, op: &StoreOp) -> Option<StoreTimer> {
        #[cfg(feature = "metrics")]
        let wanted = self.store.is_some();
        #[cfg(not(feature = "metrics"))]
        let wanted = false;
        let traced =
            || below_max_level(tracing::Level::TRACE) && tracing::enabled!(tracing::Level::TRACE);
        (wanted || traced()).then(|| StoreTimer {
            op: op_name(op),
            started: Instant::now(),
        })
    }

    /// Ends a timing: into the histogram, and as a `trace` event (in the call's span).
    #[inline]
    pub(crate) fn stop(
        &self,
        cache: &str,
        timer: Option<StoreTimer>,
        result: &Result<StoreReply, Error>,
    ) {
        if let Some(timer) = timer {
            self.record(cache, timer, result);
        }
    }

    #[inline(never)]
    fn record(&self, cache: &str, timer: StoreTimer, result: &Result<StoreReply, Error>) {
        let StoreTimer { op, started } = timer;
        let seconds = started.elapsed().as_secs_f64();
        #[cfg(feature = "metrics")]
        if let Some(store) = &self.store {
            store.record(op, seconds);
        }
        tracing::trace!(cache, op, seconds, ok = result.is_ok(), "fncache: store op");
    }
}

/// The `tracing` side of one call: its span and the store time it saw; `None` (no room in the
/// call, no work) unless a subscriber wants `debug` spans of fncache.
#[derive(Debug)]
pub(crate) struct CallSpan(Option<Box<Traced>>);

#[derive(Debug)]
struct Traced {
    span: tracing::Span,
    store_time: Duration,
}

impl CallSpan {
    #[inline]
    pub(crate) fn new(cache: &str, function: &str) -> CallSpan {
        if below_max_level(tracing::Level::DEBUG) {
            CallSpan::traced(cache, function)
        } else {
            CallSpan(None)
        }
    }

    #[cold]
    #[inline(never)]
    fn traced(cache: &str, function: &str) -> CallSpan {
        let span = tracing::debug_span!(
            target: "fncache",
            "fncache.call",
            cache,
            function,
            outcome = tracing::field::Empty,
            store_seconds = tracing::field::Empty,
        );
        CallSpan((!span.is_disabled()).then(|| {
            Box::new(Traced {
                span,
                store_time: Duration::ZERO,
            })
        }))
    }

    /// The span, if there is one: a future is instrumented only then (wrapping it in a
    /// disabled span moves it and polls through one more layer, for nothing).
    #[inline]
    pub(crate) fn live(&self) -> Option<&tracing::Span> {
        self.0.as_ref().map(|t| &t.span)
    }

    /// The span entered, if there is one (a disabled span entered costs more than nothing).
    #[inline]
    pub(crate) fn entered(&self) -> Option<tracing::span::Entered<'_>> {
        self.0.as_ref().map(|t| t.span.enter())
    }

    /// The start of a store op, when the span records the time.
    #[inline]
    pub(crate) fn store_started(&self) -> Option<Instant> {
        self.0.as_ref().map(|_| Instant::now())
    }

    #[inline]
    pub(crate) fn store_done(&mut self, started: Option<Instant>) {
        if let (Some(traced), Some(started)) = (&mut self.0, started) {
            traced.store_time += started.elapsed();
        }
    }

    /// Records how the call ended; the span closes when the call is dropped.
    #[inline]
    pub(crate) fn end(&self, outcome: Outcome) {
        if let Some(traced) = &self.0 {
            traced.span.record("outcome", outcome.label());
            traced
                .span
                .record("store_seconds", traced.store_time.as_secs_f64());
        }
    }
}

/// Runs `$e` inside `$span`: entered around it in the blocking front-end, attached to the
/// future (`.await` passed) in the async one, where entering across an `.await` would leak the
/// span into other tasks.
macro_rules! within {
    ($span:expr, $e:expr) => {{
        let _entered = $span.entered();
        $e
    }};
    ($span:expr, $e:expr, .$aw:tt) => {
        match $span.live().cloned() {
            Some(span) => ::tracing::Instrument::instrument($e, span).$aw,
            None => $e.$aw,
        }
    };
}

pub(crate) use within;

/// The metrics handles of one function of one cache.
#[derive(Debug, Default)]
pub(crate) struct FunctionMetrics {
    #[cfg(feature = "metrics")]
    handles: Option<Box<metrics_impl::FunctionHandles>>,
}

impl FunctionMetrics {
    /// Registers `function`'s handles (labelled with its path) with the recorder installed now.
    pub(crate) fn new(cache: &str, function: &str) -> FunctionMetrics {
        #[cfg(not(feature = "metrics"))]
        let _ = (cache, function);
        FunctionMetrics {
            #[cfg(feature = "metrics")]
            handles: metrics_impl::FunctionHandles::register(cache, function),
        }
    }

    /// Counts an event (those with a counter of their own).
    #[inline]
    pub(crate) fn event(&self, event: Event) {
        #[cfg(feature = "metrics")]
        if let Some(handles) = &self.handles {
            handles.event(event);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = event;
    }

    /// Counts a call's outcome.
    #[inline]
    pub(crate) fn outcome(&self, outcome: Outcome) {
        #[cfg(feature = "metrics")]
        if let Some(handles) = &self.handles {
            handles.calls[outcome.index()].increment(1);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = outcome;
    }
}

#[cfg(feature = "metrics")]
mod metrics_impl {
    //! The handles, registered through the facade once per cache and per function.

    use metrics::{Counter, Histogram, Label, Recorder};

    use super::{Event, Outcome};
    use crate::error::ErrorKind;

    /// The label value of an error kind.
    fn kind_label(kind: ErrorKind) -> &'static str {
        match kind {
            ErrorKind::Config => "config",
            ErrorKind::Miss => "miss",
            ErrorKind::Backend => "backend",
            ErrorKind::WrongType => "wrong_type",
            ErrorKind::Denied => "denied",
            ErrorKind::Encode => "encode",
            ErrorKind::Decode => "decode",
            ErrorKind::BatchLength => "batch_length",
        }
    }

    const KINDS: [ErrorKind; 8] = [
        ErrorKind::Config,
        ErrorKind::Miss,
        ErrorKind::Backend,
        ErrorKind::WrongType,
        ErrorKind::Denied,
        ErrorKind::Encode,
        ErrorKind::Decode,
        ErrorKind::BatchLength,
    ];

    /// Every label [`super::op_name`] gives (an op missing here would go untimed).
    const OPS: [&str; 10] = [
        "get",
        "put",
        "lease",
        "peek",
        "expire",
        "remove",
        "len",
        "purge",
        "vacuum",
        "invalidate_tag",
    ];

    /// Is a recorder listening? The facade answers with its `NoopRecorder`, a unit struct,
    /// when none is installed: every real recorder holds state (a registry, a handle to one),
    /// so a zero-sized one is taken for the no-op, and no handles are kept.
    fn listening(recorder: &dyn Recorder) -> bool {
        std::mem::size_of_val(recorder) > 0
    }

    fn key(name: &'static str, labels: Vec<Label>) -> metrics::Key {
        metrics::Key::from_parts(name, labels)
    }

    /// Registration metadata: fncache's own target and level.
    static META: metrics::Metadata<'static> =
        metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

    #[derive(Debug)]
    pub(super) struct StoreMetrics {
        by_op: [Histogram; OPS.len()],
    }

    impl StoreMetrics {
        pub(super) fn register(cache: &str) -> Option<StoreMetrics> {
            metrics::with_recorder(|recorder| {
                listening(recorder).then(|| StoreMetrics {
                    by_op: OPS.map(|op| {
                        recorder.register_histogram(
                            &key(
                                "fncache_store_seconds",
                                vec![Label::new("cache", cache.to_owned()), Label::new("op", op)],
                            ),
                            &META,
                        )
                    }),
                })
            })
        }

        pub(super) fn record(&self, op: &str, seconds: f64) {
            if let Some(i) = OPS.iter().position(|o| *o == op) {
                self.by_op[i].record(seconds);
            }
        }
    }

    #[derive(Debug)]
    pub(super) struct FunctionHandles {
        pub(super) calls: [Counter; Outcome::ALL.len()],
        executions: Counter,
        writes: Counter,
        errors: [Counter; KINDS.len()],
        evictions: Counter,
        refreshes: Counter,
        refresh_failures: Counter,
        lock_timeouts: Counter,
    }

    impl FunctionHandles {
        pub(super) fn register(cache: &str, function: &str) -> Option<Box<FunctionHandles>> {
            metrics::with_recorder(|recorder| {
                if !listening(recorder) {
                    return None;
                }
                let labels = || {
                    vec![
                        Label::new("cache", cache.to_owned()),
                        Label::new("function", function.to_owned()),
                    ]
                };
                let counter = |name: &'static str, extra: Option<Label>| {
                    let mut labels = labels();
                    labels.extend(extra);
                    recorder.register_counter(&key(name, labels), &META)
                };
                Some(Box::new(FunctionHandles {
                    calls: Outcome::ALL.map(|o| {
                        counter(
                            "fncache_calls_total",
                            Some(Label::new("outcome", o.label())),
                        )
                    }),
                    executions: counter("fncache_executions_total", None),
                    writes: counter("fncache_writes_total", None),
                    errors: KINDS.map(|k| {
                        counter(
                            "fncache_errors_total",
                            Some(Label::new("kind", kind_label(k))),
                        )
                    }),
                    evictions: recorder.register_counter(
                        &key(
                            "fncache_evictions_total",
                            vec![Label::new("cache", cache.to_owned())],
                        ),
                        &META,
                    ),
                    refreshes: counter("fncache_refreshes_total", None),
                    refresh_failures: counter("fncache_refresh_failures_total", None),
                    lock_timeouts: counter("fncache_lock_timeouts_total", None),
                }))
            })
        }

        pub(super) fn event(&self, event: Event) {
            match event {
                Event::Exec => self.executions.increment(1),
                Event::Write => self.writes.increment(1),
                Event::Error(kind) => {
                    if let Some(i) = KINDS.iter().position(|k| *k == kind) {
                        self.errors[i].increment(1);
                    }
                }
                Event::Evictions(n) => self.evictions.increment(n),
                Event::Refresh => self.refreshes.increment(1),
                Event::RefreshFailure => self.refresh_failures.increment(1),
                Event::LockTimeout => self.lock_timeouts.increment(1),
                // Counted by the call's outcome.
                Event::Call
                | Event::Hit
                | Event::Miss
                | Event::StaleServed
                | Event::LockWait
                | Event::FailOpen
                | Event::DefaultServed
                | Event::NearHit => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn seen(events: &[Event]) -> u16 {
        events.iter().fold(0, |bits, e| bits | e.bit())
    }

    #[test]
    fn a_call_has_the_outcome_its_events_say() {
        use Event::*;
        let cases = [
            (&[Call, Hit][..], Outcome::Hit),
            (&[Call, NearHit, Hit], Outcome::NearHit),
            (&[Call, LockWait, Hit], Outcome::LockWait),
            (&[Call, LockWait, LockTimeout, Miss, Exec], Outcome::Miss),
            (&[Call, StaleServed, Hit], Outcome::Stale),
            (&[Call, Miss, Exec, Write], Outcome::Miss),
            (&[Call, DefaultServed, Miss], Outcome::Default),
            (
                &[Call, Error(ErrorKind::Backend), FailOpen, Exec],
                Outcome::FailOpen,
            ),
            (&[Call, Exec], Outcome::Bypass),
            (&[Call, Error(ErrorKind::Decode), Miss, Exec], Outcome::Miss),
        ];
        for (events, outcome) in cases {
            assert_eq!(Outcome::of(seen(events)), outcome, "{events:?}");
        }
    }

    #[cfg(feature = "metrics")]
    #[test]
    fn every_outcome_has_its_own_slot() {
        for (i, outcome) in Outcome::ALL.iter().enumerate() {
            assert_eq!(outcome.index(), i);
        }
    }
}
