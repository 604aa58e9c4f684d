//! Call counters: per cache, per function, and per scoped collector.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// A snapshot of counters.
///
/// Every call counts in `calls`, then in `hits` or `misses` when the cache was read,
/// `execs` when the function ran, `writes` when a value was stored, `errors` when the backend
/// failed or a stored value did not decode (the call then still returns the function's value).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
}

/// One thing that happened during a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Call,
    Hit,
    Miss,
    Exec,
    Write,
    Error,
    Evictions(u64),
    StaleServed,
    Refresh,
    RefreshFailure,
    LockWait,
    LockTimeout,
    FailOpen,
    DefaultServed,
}

/// Live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
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
}

impl Counters {
    pub(crate) fn add(&self, event: Event) {
        let (counter, n) = match event {
            Event::Call => (&self.calls, 1),
            Event::Hit => (&self.hits, 1),
            Event::Miss => (&self.misses, 1),
            Event::Exec => (&self.execs, 1),
            Event::Write => (&self.writes, 1),
            Event::Error => (&self.errors, 1),
            Event::Evictions(n) => (&self.evictions, n),
            Event::StaleServed => (&self.stale_served, 1),
            Event::Refresh => (&self.refreshes, 1),
            Event::RefreshFailure => (&self.refresh_failures, 1),
            Event::LockWait => (&self.lock_waits, 1),
            Event::LockTimeout => (&self.lock_timeouts, 1),
            Event::FailOpen => (&self.fail_open, 1),
            Event::DefaultServed => (&self.defaults_served, 1),
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
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
        }
    }
}

/// Counters of a cache: the total and one set per function.
#[derive(Debug, Default)]
pub(crate) struct StatsRegistry {
    total: Counters,
    per_function: RwLock<HashMap<String, Arc<Counters>>>,
}

impl StatsRegistry {
    pub(crate) fn total(&self) -> Stats {
        self.total.snapshot()
    }

    pub(crate) fn for_function(&self, function: &str) -> Stats {
        let map = self.per_function.read().unwrap_or_else(|e| e.into_inner());
        map.get(function).map(|c| c.snapshot()).unwrap_or_default()
    }

    /// A recorder for one call of `function`, also feeding `scoped` collectors.
    pub(crate) fn recorder<'a>(
        &'a self,
        function: &str,
        scoped: Vec<Arc<Counters>>,
    ) -> Recorder<'a> {
        Recorder {
            total: &self.total,
            function: self.function_counters(function),
            scoped,
        }
    }

    fn function_counters(&self, function: &str) -> Arc<Counters> {
        if let Some(c) = self
            .per_function
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(function)
        {
            return Arc::clone(c);
        }
        let mut map = self.per_function.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(map.entry(function.to_owned()).or_default())
    }
}

/// Records the events of one call everywhere they count.
#[derive(Debug)]
pub(crate) struct Recorder<'a> {
    total: &'a Counters,
    function: Arc<Counters>,
    scoped: Vec<Arc<Counters>>,
}

impl Recorder<'_> {
    pub(crate) fn add(&self, event: Event) {
        self.total.add(event);
        self.function.add(event);
        for c in &self.scoped {
            c.add(event);
        }
    }
}
