//! Call counters: per cache, per function, and per scoped collector.

use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::error::ErrorKind;
use crate::stripe::{Padded, stripe_count, thread_stripe};
use crate::telemetry::{FunctionMetrics, Outcome};

/// A snapshot of counters.
///
/// Every call counts in `calls`, then in `hits` or `misses` when the cache was read,
/// `execs` when the function ran, `writes` when a value was stored, `errors` when the backend
/// failed or a stored value did not decode (the call then still returns the function's value).
///
/// `Stats` serializes as an object of its counters (a JSON stats endpoint is
/// `serde_json::to_string(&cache.stats())`), and displays as one line for logs:
///
/// ```
/// let cache = fncache::Cache::builder("stats-doc").memory().build_blocking()?;
/// for _ in 0..4 {
///     cache.get_or_compute("f", &(1,), || 1)?;
/// }
/// let stats = cache.stats();
/// assert_eq!(
///     stats.to_string(),
///     "calls 4, hits 3 (75.0%), misses 1, execs 1, writes 1, errors 0, evictions 0"
/// );
/// assert_eq!(
///     serde_json::to_value(stats)?["hits"],
///     3,
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Calls through the cache.
    pub calls: u64,
    /// Calls served from the cache.
    pub hits: u64,
    /// Calls that read the cache and found no usable value.
    pub misses: u64,
    /// Executions of the cached function.
    pub execs: u64,
    /// Values stored.
    pub writes: u64,
    /// Backend failures and undecodable values (never surfaced unless strict).
    pub errors: u64,
    /// Live entries evicted by the policy to make room.
    pub evictions: u64,
    /// Calls served a value older than `refresh_after` (or, by fail-safe, past its entry TTL).
    pub stale_served: u64,
    /// Refreshes of stale entries that stored a new value.
    pub refreshes: u64,
    /// Refreshes or recomputations of stale entries that failed (error, panic, timeout).
    pub refresh_failures: u64,
    /// Calls that waited for another caller (thread, task or process) to compute a value.
    pub lock_waits: u64,
    /// Waits that gave up after `lock_timeout` and computed themselves.
    pub lock_timeouts: u64,
    /// Calls that ran the function because the backend failed, timed out, or the circuit was open.
    pub fail_open: u64,
    /// Calls answered with the function's default value (`wait(false)` on a cold miss).
    pub defaults_served: u64,
    /// Hits served by the near cache, with no I/O (also counted in `hits`; see
    /// [`Builder::near_cache`](crate::Builder::near_cache)).
    pub near_hits: u64,
    /// Near copies dropped because their entry changed (a message of the cache's channel, or
    /// this process's own write). The cache's total only: a message names no function.
    pub near_invalidations: u64,
    /// Times the whole near cache was dropped: a purge or a tag's invalidation, a flush of
    /// the server, or a lost link. The cache's total only.
    pub near_resets: u64,
}

impl Stats {
    /// The share of reads served from the cache, `hits / (hits + misses)`; `None` before the
    /// first read.
    pub fn hit_ratio(&self) -> Option<f64> {
        let reads = self.hits + self.misses;
        // Counters fit an f64 exactly up to 2^53 calls; a ratio needs no more.
        #[allow(clippy::cast_precision_loss)]
        (reads > 0).then(|| self.hits as f64 / reads as f64)
    }

    /// Every counter with its name (the names `Stats` serializes with), for the shared
    /// counters in Redis.
    pub(crate) fn fields(&self) -> [(&'static str, u64); 15] {
        [
            ("calls", self.calls),
            ("hits", self.hits),
            ("misses", self.misses),
            ("execs", self.execs),
            ("writes", self.writes),
            ("errors", self.errors),
            ("evictions", self.evictions),
            ("stale_served", self.stale_served),
            ("refreshes", self.refreshes),
            ("refresh_failures", self.refresh_failures),
            ("lock_waits", self.lock_waits),
            ("lock_timeouts", self.lock_timeouts),
            ("fail_open", self.fail_open),
            ("defaults_served", self.defaults_served),
            // Per function, like the others; the near cache's invalidations and resets are
            // this process's link's own, not a function's, and stay out of shared counters.
            ("near_hits", self.near_hits),
        ]
    }

    /// The counter named `name` (see [`Stats::fields`]), or `None` for an unknown name.
    pub(crate) fn field_mut(&mut self, name: &str) -> Option<&mut u64> {
        Some(match name {
            "calls" => &mut self.calls,
            "hits" => &mut self.hits,
            "misses" => &mut self.misses,
            "execs" => &mut self.execs,
            "writes" => &mut self.writes,
            "errors" => &mut self.errors,
            "evictions" => &mut self.evictions,
            "stale_served" => &mut self.stale_served,
            "refreshes" => &mut self.refreshes,
            "refresh_failures" => &mut self.refresh_failures,
            "lock_waits" => &mut self.lock_waits,
            "lock_timeouts" => &mut self.lock_timeouts,
            "fail_open" => &mut self.fail_open,
            "defaults_served" => &mut self.defaults_served,
            "near_hits" => &mut self.near_hits,
            _ => return None,
        })
    }

    /// The counters of two sets of calls together.
    pub(crate) fn plus(self, other: Stats) -> Stats {
        Stats {
            calls: self.calls + other.calls,
            hits: self.hits + other.hits,
            misses: self.misses + other.misses,
            execs: self.execs + other.execs,
            writes: self.writes + other.writes,
            errors: self.errors + other.errors,
            evictions: self.evictions + other.evictions,
            stale_served: self.stale_served + other.stale_served,
            refreshes: self.refreshes + other.refreshes,
            refresh_failures: self.refresh_failures + other.refresh_failures,
            lock_waits: self.lock_waits + other.lock_waits,
            lock_timeouts: self.lock_timeouts + other.lock_timeouts,
            fail_open: self.fail_open + other.fail_open,
            defaults_served: self.defaults_served + other.defaults_served,
            near_hits: self.near_hits + other.near_hits,
            near_invalidations: self.near_invalidations + other.near_invalidations,
            near_resets: self.near_resets + other.near_resets,
        }
    }
}

/// One line: the counters every cache has (`calls`, `hits` with the hit ratio, `misses`,
/// `execs`, `writes`, `errors`, `evictions`), then those of the freshness, stampede and
/// fail-safe features that are not zero.
impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "calls {}, hits {}", self.calls, self.hits)?;
        if let Some(ratio) = self.hit_ratio() {
            write!(f, " ({:.1}%)", ratio * 100.0)?;
        }
        write!(
            f,
            ", misses {}, execs {}, writes {}, errors {}, evictions {}",
            self.misses, self.execs, self.writes, self.errors, self.evictions
        )?;
        for (name, value) in [
            ("stale served", self.stale_served),
            ("refreshes", self.refreshes),
            ("refresh failures", self.refresh_failures),
            ("lock waits", self.lock_waits),
            ("lock timeouts", self.lock_timeouts),
            ("fail-open", self.fail_open),
            ("defaults served", self.defaults_served),
            ("near hits", self.near_hits),
            ("near invalidations", self.near_invalidations),
            ("near resets", self.near_resets),
        ] {
            if value > 0 {
                write!(f, ", {name} {value}")?;
            }
        }
        Ok(())
    }
}

/// The path of a function identity as its user writes it: without the `#` and code hash and
/// the `@vN` version that `#[fncache::cached]` appends (`crate::users::load@v2#00ff..` gives
/// `crate::users::load`). The format is the one `identity()` in the macro crate's
/// `expand_cached.rs` generates.
pub(crate) fn path_of(identity: &str) -> &str {
    let mut path = identity;
    if let Some((rest, hash)) = path.rsplit_once('#')
        && hash.len() == 16
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        path = rest;
    }
    if let Some((rest, version)) = path.rsplit_once("@v")
        && !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit())
    {
        path = rest;
    }
    path
}

/// One thing that happened during a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Call,
    Hit,
    Miss,
    Exec,
    Write,
    Error(ErrorKind),
    Evictions(u64),
    StaleServed,
    Refresh,
    RefreshFailure,
    LockWait,
    LockTimeout,
    FailOpen,
    DefaultServed,
    /// A hit served by the near cache (also a [`Event::Hit`]).
    NearHit,
}

impl Event {
    /// The event's bit in the set of events a call counted (see [`Outcome::of`]).
    pub(crate) fn bit(self) -> u16 {
        1 << match self {
            Event::Call => 0,
            Event::Hit => 1,
            Event::Miss => 2,
            Event::Exec => 3,
            Event::Write => 4,
            Event::Error(_) => 5,
            Event::Evictions(_) => 6,
            Event::StaleServed => 7,
            Event::Refresh => 8,
            Event::RefreshFailure => 9,
            Event::LockWait => 10,
            Event::LockTimeout => 11,
            Event::FailOpen => 12,
            Event::DefaultServed => 13,
            Event::NearHit => 14,
        }
    }
}

/// Live counters, one set per stripe of threads (see [`crate::stripe`]): two threads calling
/// at once count on lines of their own; a snapshot sums the stripes.
#[derive(Debug)]
pub(crate) struct Counters {
    stripes: Box<[Padded<CounterSet>]>,
    /// Set by the first call that saw these counters, which records the function in the
    /// cache's registry (see [`Recorder::first_sight`]).
    seen: std::sync::atomic::AtomicBool,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters {
            stripes: (0..stripe_count())
                .map(|_| Padded(CounterSet::default()))
                .collect(),
            seen: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// One stripe's counters (120 bytes: one padded stripe).
#[derive(Debug, Default)]
struct CounterSet {
    calls: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    execs: AtomicU64,
    writes: AtomicU64,
    errors: AtomicU64,
    evictions: AtomicU64,
    stale_served: AtomicU64,
    refreshes: AtomicU64,
    refresh_failures: AtomicU64,
    lock_waits: AtomicU64,
    lock_timeouts: AtomicU64,
    fail_open: AtomicU64,
    defaults_served: AtomicU64,
    near_hits: AtomicU64,
}

impl Counters {
    /// Counts `event` on the stripe of the thread numbered `stripe` ([`thread_stripe`]).
    fn add_at(&self, stripe: usize, event: Event) {
        // A power of two (see `stripe_count`): a mask, not a division.
        if let Some(set) = self
            .stripes
            .get(stripe & (self.stripes.len().wrapping_sub(1)))
        {
            set.0.add(event);
        }
    }

    pub(crate) fn snapshot(&self) -> Stats {
        self.stripes
            .iter()
            .fold(Stats::default(), |sum, set| sum.plus(set.0.snapshot()))
    }
}

impl CounterSet {
    fn add(&self, event: Event) {
        let (counter, n) = match event {
            Event::Call => (&self.calls, 1),
            Event::Hit => (&self.hits, 1),
            Event::Miss => (&self.misses, 1),
            Event::Exec => (&self.execs, 1),
            Event::Write => (&self.writes, 1),
            Event::Error(_) => (&self.errors, 1),
            Event::Evictions(n) => (&self.evictions, n),
            Event::StaleServed => (&self.stale_served, 1),
            Event::Refresh => (&self.refreshes, 1),
            Event::RefreshFailure => (&self.refresh_failures, 1),
            Event::LockWait => (&self.lock_waits, 1),
            Event::LockTimeout => (&self.lock_timeouts, 1),
            Event::FailOpen => (&self.fail_open, 1),
            Event::DefaultServed => (&self.defaults_served, 1),
            Event::NearHit => (&self.near_hits, 1),
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            calls: get(&self.calls),
            hits: get(&self.hits),
            misses: get(&self.misses),
            execs: get(&self.execs),
            writes: get(&self.writes),
            errors: get(&self.errors),
            evictions: get(&self.evictions),
            stale_served: get(&self.stale_served),
            refreshes: get(&self.refreshes),
            refresh_failures: get(&self.refresh_failures),
            lock_waits: get(&self.lock_waits),
            lock_timeouts: get(&self.lock_timeouts),
            fail_open: get(&self.fail_open),
            defaults_served: get(&self.defaults_served),
            near_hits: get(&self.near_hits),
            near_invalidations: 0,
            near_resets: 0,
        }
    }
}

/// Counters of a cache: the total and one set per function.
#[derive(Debug)]
pub(crate) struct StatsRegistry {
    /// Unique in the process (a thread's last function is remembered with it).
    uid: u64,
    /// The cache's name, a label of its metrics.
    cache: String,
    total: Counters,
    per_function: RwLock<Functions>,
}

/// The functions a cache has seen: counters per identity, and the same counters found by
/// the path of the identity (see [`path_of`]) when it differs.
#[derive(Debug, Default)]
struct Functions {
    by_identity: HashMap<String, Arc<Function>>,
    by_path: HashMap<String, Vec<Arc<Function>>>,
}

/// What a cache keeps per function: its counters, and its metrics handles.
#[derive(Debug)]
struct Function {
    identity: String,
    counters: Counters,
    metrics: FunctionMetrics,
}

impl Default for StatsRegistry {
    fn default() -> StatsRegistry {
        static NEXT_UID: AtomicU64 = AtomicU64::new(0);
        StatsRegistry {
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            cache: String::new(),
            total: Counters::default(),
            per_function: RwLock::default(),
        }
    }
}

impl StatsRegistry {
    /// The counters of cache `cache`.
    pub(crate) fn new(cache: &str) -> StatsRegistry {
        StatsRegistry {
            cache: cache.to_owned(),
            ..StatsRegistry::default()
        }
    }

    pub(crate) fn total(&self) -> Stats {
        self.total.snapshot()
    }

    /// The counters of `function`, an identity or the path of decorated functions' identities
    /// (summed over all of them: versions and code hashes); `None` if this cache has never
    /// seen it.
    pub(crate) fn for_function(&self, function: &str) -> Option<Stats> {
        let functions = self.per_function.read().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = functions.by_identity.get(function) {
            return Some(f.counters.snapshot());
        }
        functions.by_path.get(function).map(|all| {
            all.iter()
                .fold(Stats::default(), |sum, f| sum.plus(f.counters.snapshot()))
        })
    }

    /// The counters of exactly `identity`, which the cache knows from now on (a decorated
    /// function's `{fn}_stats()`: zeros before its first call).
    pub(crate) fn register(&self, identity: &str) -> Stats {
        self.function(identity).counters.snapshot()
    }

    /// The counters of every function identity this cache has seen, for the shared counters.
    pub(crate) fn identities(&self) -> Vec<(String, Stats)> {
        let functions = self.per_function.read().unwrap_or_else(|e| e.into_inner());
        functions
            .by_identity
            .iter()
            .map(|(identity, c)| (identity.clone(), c.counters.snapshot()))
            .collect()
    }

    /// A recorder for one call of `function`, also feeding `scoped` collectors.
    pub(crate) fn recorder<'a>(
        &'a self,
        function: &str,
        scoped: Vec<Arc<Counters>>,
    ) -> Recorder<'a> {
        // A thread's last function, if it is this one of this cache: no lock, no hashing of
        // the identity, no reference count written where other threads write it.
        let function = LAST_FUNCTION
            .try_with(|last| {
                let mut last = last.try_borrow_mut().ok()?;
                match &*last {
                    Some((uid, f)) if *uid == self.uid && f.identity == function => {
                        last.take().map(|(_, f)| f)
                    }
                    _ => None,
                }
            })
            .ok()
            .flatten()
            .unwrap_or_else(|| self.function(function));
        Recorder {
            total: &self.total,
            function: Some(function),
            uid: self.uid,
            stripe: thread_stripe(),
            scoped,
            seen: Cell::new(0),
        }
    }

    fn function(&self, function: &str) -> Arc<Function> {
        if let Some(c) = self
            .per_function
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_identity
            .get(function)
        {
            return Arc::clone(c);
        }
        let mut functions = self.per_function.write().unwrap_or_else(|e| e.into_inner());
        let functions = &mut *functions;
        if let Some(c) = functions.by_identity.get(function) {
            return Arc::clone(c);
        }
        let path = path_of(function);
        // Metrics are labelled with the path: a new version or code hash goes on counting
        // in the same series.
        let counters = Arc::new(Function {
            identity: function.to_owned(),
            counters: Counters::default(),
            metrics: FunctionMetrics::new(&self.cache, path),
        });
        functions
            .by_identity
            .insert(function.to_owned(), Arc::clone(&counters));
        if path != function {
            functions
                .by_path
                .entry(path.to_owned())
                .or_default()
                .push(Arc::clone(&counters));
        }
        counters
    }
}

thread_local! {
    /// The function of the thread's last call and its cache's `uid`, kept by the ended call's
    /// recorder for the next call (taken while a call runs: a nested call of the same
    /// function looks it up again).
    static LAST_FUNCTION: std::cell::RefCell<Option<(u64, Arc<Function>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Records the events of one call everywhere they count.
#[derive(Debug)]
pub(crate) struct Recorder<'a> {
    total: &'a Counters,
    /// Always there until the recorder drops (it then goes back to [`LAST_FUNCTION`]).
    function: Option<Arc<Function>>,
    /// The registry's `uid`.
    uid: u64,
    /// The [`thread_stripe`] of the thread that began the call (an async call may go on on
    /// another thread: its counts are still exact, only on another line).
    stripe: usize,
    scoped: Vec<Arc<Counters>>,
    /// The events recorded so far ([`Event::bit`]s), which give the call's outcome.
    seen: Cell<u16>,
}

impl Recorder<'_> {
    /// True for the first call of this function through this cache (once per process and
    /// cache): one relaxed load on every later call.
    pub(crate) fn first_sight(&self) -> bool {
        self.function.as_ref().is_some_and(|f| {
            !f.counters.seen.load(Ordering::Relaxed)
                && !f.counters.seen.swap(true, Ordering::Relaxed)
        })
    }

    pub(crate) fn add(&self, event: Event) {
        self.total.add_at(self.stripe, event);
        if let Some(f) = &self.function {
            f.counters.add_at(self.stripe, event);
        }
        for c in &self.scoped {
            c.add_at(self.stripe, event);
        }
        self.seen.set(self.seen.get() | event.bit());
        if let Some(f) = &self.function {
            f.metrics.event(event);
        }
    }

    /// The events recorded so far, as [`Event::bit`]s.
    pub(crate) fn seen(&self) -> u16 {
        self.seen.get()
    }

    /// Counts how the call ended (the counters already have its events).
    pub(crate) fn end(&self, outcome: Outcome) {
        if let Some(f) = &self.function {
            f.metrics.outcome(outcome);
        }
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        if let Some(function) = self.function.take() {
            let uid = self.uid;
            // During thread teardown the slot may be gone: the function is simply dropped.
            let _ = LAST_FUNCTION.try_with(|last| {
                if let Ok(mut last) = last.try_borrow_mut() {
                    *last = Some((uid, function));
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_of_an_identity_drops_the_version_and_code_hash_only() {
        assert_eq!(
            path_of("app::users::load#0123456789abcdef"),
            "app::users::load"
        );
        assert_eq!(
            path_of("app::users::load@v2#0123456789abcdef"),
            "app::users::load"
        );
        assert_eq!(path_of("shared@v12"), "shared");
        assert_eq!(path_of("app::load"), "app::load");
        // Not what the attribute appends: kept as written.
        assert_eq!(path_of("f#0123456789ABCDEF"), "f#0123456789ABCDEF");
        assert_eq!(path_of("f#abc"), "f#abc");
        assert_eq!(path_of("f@v"), "f@v");
        assert_eq!(path_of("f@vx#0123456789abcdef"), "f@vx");
    }

    #[test]
    fn functions_are_found_by_identity_or_path_and_unknown_ones_are_none() {
        let registry = StatsRegistry::default();
        registry
            .recorder("m::f#0000000000000001", Vec::new())
            .add(Event::Call);
        registry
            .recorder("m::f@v2#0000000000000002", Vec::new())
            .add(Event::Call);
        registry
            .recorder("m::f@v2#0000000000000002", Vec::new())
            .add(Event::Hit);
        let exact = registry.for_function("m::f@v2#0000000000000002");
        assert_eq!(exact.map(|s| (s.calls, s.hits)), Some((1, 1)));
        let by_path = registry.for_function("m::f");
        assert_eq!(by_path.map(|s| (s.calls, s.hits)), Some((2, 1)), "summed");
        assert_eq!(registry.for_function("m::g"), None);
        assert_eq!(registry.for_function("m::f@v2"), None, "not a path");
        assert_eq!(registry.register("m::g#0000000000000003"), Stats::default());
        assert_eq!(registry.for_function("m::g"), Some(Stats::default()));
    }

    /// Counters are striped by thread: what several threads count at once sums exactly.
    #[test]
    fn counts_of_many_threads_at_once_sum_exactly() {
        let registry = StatsRegistry::new("c");
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..1000 {
                        let rec = registry.recorder("f", Vec::new());
                        rec.add(Event::Call);
                        rec.add(Event::Hit);
                    }
                });
            }
        });
        assert_eq!(
            (registry.total().calls, registry.total().hits),
            (4000, 4000)
        );
        let f = registry.for_function("f");
        assert_eq!(f.map(|s| (s.calls, s.hits)), Some((4000, 4000)));
    }

    /// A thread remembers its last function for the next call: only for the same cache and
    /// the same identity, and a nested call of it counts as well.
    #[test]
    fn a_threads_last_function_counts_for_its_own_cache_and_identity_only() {
        let (a, b) = (StatsRegistry::new("a"), StatsRegistry::new("b"));
        for _ in 0..3 {
            a.recorder("f", Vec::new()).add(Event::Hit);
            b.recorder("f", Vec::new()).add(Event::Call);
            a.recorder("g", Vec::new()).add(Event::Miss);
        }
        let outer = a.recorder("f", Vec::new());
        let inner = a.recorder("f", Vec::new());
        outer.add(Event::Hit);
        inner.add(Event::Hit);
        drop((inner, outer));
        a.recorder("f", Vec::new()).add(Event::Hit);
        let counts = |r: &StatsRegistry, f| r.for_function(f).map(|s| (s.calls, s.hits, s.misses));
        assert_eq!(counts(&a, "f"), Some((0, 6, 0)));
        assert_eq!(counts(&a, "g"), Some((0, 0, 3)));
        assert_eq!(counts(&b, "f"), Some((3, 0, 0)));
        assert_eq!(counts(&b, "g"), None);
    }

    #[test]
    fn display_is_one_line_with_the_nonzero_feature_counters() {
        let stats = Stats {
            calls: 10,
            hits: 7,
            misses: 3,
            execs: 3,
            writes: 2,
            errors: 1,
            lock_waits: 4,
            ..Stats::default()
        };
        assert_eq!(
            stats.to_string(),
            "calls 10, hits 7 (70.0%), misses 3, execs 3, writes 2, errors 1, evictions 0, lock waits 4"
        );
        assert_eq!(
            Stats::default().to_string(),
            "calls 0, hits 0, misses 0, execs 0, writes 0, errors 0, evictions 0"
        );
    }
}
