//! Shared per-function counters: every process adds its own counters to per-function
//! counters in Redis, so that [`crate::Cache::shared_stats`] and the `fncache` CLI show totals
//! across all the processes of a cache.
//!
//! Never on the hot path: a call only compares a timestamp (after a Redis op, which reads the
//! clock anyway), and at most once a second a background task (the async front-end) or worker
//! (the blocking one) sends what the counters gained since the last batch as `HINCRBY`s in
//! one pipeline, with the registry records of functions first called since (`registry.rs`).
//! The last handle of a cache sends a final batch when it is dropped.
//!
//! Fail-open: a batch that fails is given back (the counters it carried count again in the
//! next one), and nothing of it reaches a call. What waits for a batch is one `Stats` per
//! function (the values last sent), so a Redis that stays down costs no growing memory.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::Value;
use serde::Serialize;

use crate::clock::{Clock, SystemClock};
use crate::core::Core;
use crate::error::{Error, ErrorKind};
use crate::registry::{CACHE_FIELD, CacheRecord, FUNCTION_FIELD, FunctionRecord};
use crate::stats::{Stats, path_of};
use crate::store::redis::plan::Request;
use crate::store::redis::script::ScriptCall;
use crate::store::redis::{AsyncRedis, BlockingRedis};

/// The script of a batch.
static REPORT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("store/redis/scripts/report.lua")));

/// The least time between two background batches of one cache.
const FLUSH_INTERVAL_US: u64 = 1_000_000;
/// The registry and the counters expire this long after the last batch of any process, so a
/// cache nobody uses leaves nothing behind for good.
pub(crate) const KEEP: Duration = Duration::from_secs(7 * 24 * 3600);

/// Counters of a cache summed over every process that shares its Redis store (for the
/// embedded store, this process's own), as [`crate::Cache::shared_stats`] returns them.
///
/// ```
/// let cache = fncache::Cache::builder("shared-doc").memory().build_blocking()?;
/// cache.get_or_compute("f", &(1,), || 1)?;
/// let shared = cache.shared_stats()?;
/// assert_eq!(shared.total.calls, 1);
/// assert_eq!(shared.for_function("f").map(|s| s.misses), Some(1));
/// # Ok::<(), fncache::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SharedStats {
    /// Every function together.
    pub total: Stats,
    /// By function identity (for a decorated function, path, `@vN` and code hash).
    pub functions: BTreeMap<String, Stats>,
}

impl SharedStats {
    /// The counters of `function`, an identity or the path of decorated functions'
    /// identities (summed over its versions and code hashes), as in
    /// [`crate::Cache::stats_for`]; `None` when no process has counted it.
    pub fn for_function(&self, function: &str) -> Option<Stats> {
        if let Some(stats) = self.functions.get(function) {
            return Some(*stats);
        }
        self.functions
            .iter()
            .filter(|(identity, _)| path_of(identity) == function)
            .map(|(_, stats)| *stats)
            .reduce(Stats::plus)
    }

    /// Reads the `HGETALL` reply of a cache's counters hash (fields `{counter}:{identity}`).
    pub(crate) fn from_reply(reply: Value) -> Result<SharedStats, Error> {
        let fields: HashMap<String, i64> = redis::from_redis_value(reply).map_err(|e| {
            Error::new(
                ErrorKind::Backend,
                format!("unexpected reply for the shared counters: {e}"),
            )
        })?;
        let mut shared = SharedStats::default();
        for (field, value) in fields {
            let Some((counter, identity)) = field.split_once(':') else {
                continue;
            };
            let value = u64::try_from(value).unwrap_or(0);
            let stats = shared.functions.entry(identity.to_owned()).or_default();
            if let Some(slot) = stats.field_mut(counter) {
                *slot = value;
            }
        }
        shared.total = shared
            .functions
            .values()
            .copied()
            .fold(Stats::default(), Stats::plus);
        Ok(shared)
    }

    /// This process's counters, for the embedded store.
    pub(crate) fn local(core: &Core) -> SharedStats {
        SharedStats {
            total: core.stats.total(),
            functions: core.stats.identities().into_iter().collect(),
        }
    }
}

/// The state of a cache's batches.
#[derive(Debug)]
pub(crate) struct SharedCounters {
    /// False for the embedded store, or when sharing is off.
    on: bool,
    /// The cache's record (JSON), rewritten with every batch.
    record: String,
    last_flush_us: AtomicU64,
    /// What the counters of each function were when last sent (or being sent).
    sent: Mutex<HashMap<String, Stats>>,
    /// Registry records not yet written: field and JSON.
    pending: Mutex<Vec<(String, String)>>,
    /// Held while a batch is in flight (blocking front-end), so that `shared_stats()` reads
    /// after this process's batches have landed, not beside them.
    sending: Mutex<()>,
    /// The same for the async front-end.
    sending_async: tokio::sync::Mutex<()>,
}

/// What one batch carries, to give back when it fails.
#[derive(Debug)]
pub(crate) struct Batch {
    deltas: Vec<(String, Stats)>,
    records: Vec<(String, String)>,
}

impl SharedCounters {
    /// The counters of a cache with `record`; `on` is false for the embedded store, which
    /// has no other process to share with, and when the builder turned sharing off: nothing
    /// is queued or sent then.
    pub(crate) fn new(record: &CacheRecord, on: bool) -> SharedCounters {
        SharedCounters {
            on,
            record: serde_json::to_string(record).unwrap_or_default(),
            // The first background batch comes a second after the cache is built, not with
            // its first call: short-lived caches send theirs when they are dropped.
            last_flush_us: AtomicU64::new(SystemClock.now_micros()),
            sent: Mutex::default(),
            pending: Mutex::default(),
            sending: Mutex::default(),
            sending_async: tokio::sync::Mutex::const_new(()),
        }
    }

    /// Queues the registry record of `identity` (on its first call in this process).
    pub(crate) fn note(&self, identity: &str, record: &FunctionRecord) {
        if !self.on {
            return;
        }
        if let Ok(json) = serde_json::to_string(record) {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((format!("{FUNCTION_FIELD}{identity}"), json));
        }
    }

    /// True when a background batch is due, for one caller (the others see it taken).
    pub(crate) fn due(&self) -> bool {
        if !self.on {
            return false;
        }
        let now = SystemClock.now_micros();
        let last = self.last_flush_us.load(Ordering::Relaxed);
        now.saturating_sub(last) >= FLUSH_INTERVAL_US
            && self
                .last_flush_us
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
    }

    /// The batch of what the counters gained since the last one, with the records waiting;
    /// `None` when there is nothing to send. The gains count as sent from now on, so that
    /// batches in flight together never carry the same calls; [`SharedCounters::settle`]
    /// gives them back if the batch fails.
    pub(crate) fn prepare(&self, core: &Core) -> Option<(Request, Batch)> {
        if !self.on {
            return None;
        }
        let mut deltas = Vec::new();
        {
            let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
            for (identity, now) in core.stats.identities() {
                let before = sent.entry(identity.clone()).or_default();
                let delta = minus(now, *before);
                if delta != Stats::default() {
                    *before = before.plus(delta);
                    deltas.push((identity, delta));
                }
            }
        }
        let records = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if deltas.is_empty() && records.is_empty() {
            return None;
        }
        let naming = &core.settings.naming;
        let keep = u64::try_from(KEEP.as_millis()).unwrap_or(u64::MAX);
        let mut call = ScriptCall::new(&REPORT, "report.lua", 2);
        call.arg(naming.registry_key())
            .arg(naming.stats_key())
            .arg(keep)
            .arg(records.len() + 1)
            .arg(CACHE_FIELD)
            .arg(&self.record);
        for (field, json) in &records {
            call.arg(field).arg(json);
        }
        for (identity, delta) in &deltas {
            for (counter, n) in delta.fields() {
                if n > 0 {
                    call.arg(format!("{counter}:{identity}"))
                        .arg(i64::try_from(n).unwrap_or(i64::MAX));
                }
            }
        }
        Some((Request::Script(call), Batch { deltas, records }))
    }

    /// Accounts for a batch: a failed one is given back, to go with the next.
    pub(crate) fn settle(&self, batch: Batch, result: &Result<Value, Error>) {
        if result.is_ok() {
            return;
        }
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        for (identity, delta) in batch.deltas {
            if let Some(before) = sent.get_mut(&identity) {
                *before = minus(*before, delta);
            }
        }
        drop(sent);
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(batch.records);
    }
}

/// `a - b`, counter by counter (never below zero).
fn minus(a: Stats, b: Stats) -> Stats {
    let mut out = a;
    for (name, n) in b.fields() {
        if let Some(slot) = out.field_mut(name) {
            *slot = slot.saturating_sub(n);
        }
    }
    out
}

/// The request that reads a cache's shared counters.
pub(crate) fn read_request(core: &Core) -> Request {
    let mut cmd = redis::cmd("HGETALL");
    cmd.arg(core.settings.naming.stats_key());
    Request::Cmd(cmd)
}

/// Sends one batch now over the blocking driver (unless the circuit breaker is open).
pub(crate) fn flush_blocking(core: &Core, redis: &BlockingRedis) -> Result<(), Error> {
    let _sending = core
        .shared
        .sending
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let Some((request, batch)) = core.shared.prepare(core) else {
        return Ok(());
    };
    let result = core
        .gate()
        .and_then(|()| redis.send(&request, core.behaviour.op_timeout));
    core.shared.settle(batch, &result);
    warn_if_failed(core, &result);
    result.map(drop)
}

/// Sends one batch now over the async driver (unless the circuit breaker is open).
pub(crate) async fn flush_async(core: &Core, redis: &AsyncRedis) -> Result<(), Error> {
    let _sending = core.shared.sending_async.lock().await;
    let Some((request, batch)) = core.shared.prepare(core) else {
        return Ok(());
    };
    let result = match core.gate() {
        Ok(()) => redis.send(request, core.behaviour.op_timeout).await,
        Err(e) => Err(e),
    };
    core.shared.settle(batch, &result);
    warn_if_failed(core, &result);
    result.map(drop)
}

/// Logs (throttled, with the cache's other warnings) a batch that was not sent: most batches
/// go from background work, whose failure nobody else sees.
fn warn_if_failed(core: &Core, result: &Result<Value, Error>) {
    if let Err(e) = result {
        core.warnings.warn_shared_stats(&core.name, e);
    }
}

/// What a front-end's Redis driver does with the last batch when the last handle of its
/// cache is dropped.
pub(crate) trait LastFlush {
    fn last_flush(&self, core: &Core);
}

impl LastFlush for BlockingRedis {
    fn last_flush(&self, core: &Core) {
        let _ = flush_blocking(core, self);
    }
}

impl LastFlush for AsyncRedis {
    /// Sent from a task of the current runtime (where the connection lives); outside any
    /// runtime, over a blocking connection to the same server or cluster (a connection
    /// manager of the user's cannot be used there: its batch is lost).
    fn last_flush(&self, core: &Core) {
        if core.gate().is_err() {
            return;
        }
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let Some((request, _)) = core.shared.prepare(core) else {
                return;
            };
            let redis = self.detached();
            let timeout = core.behaviour.op_timeout;
            handle.spawn(async move {
                let _ = redis.send(request, timeout).await;
            });
        } else if let Some(redis) = self.blocking() {
            let _ = flush_blocking(core, &redis);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Event;

    fn calls_in(batch: &Batch) -> u64 {
        batch.deltas.iter().map(|(_, d)| d.calls).sum()
    }

    #[test]
    fn a_failed_batch_is_given_back_to_the_next_and_a_sent_one_is_not() {
        let (mut core, _) = crate::Cache::builder("shared-unit")
            .core_for_tests()
            .unwrap();
        // As a Redis-backed cache's.
        core.shared = SharedCounters::new(
            &CacheRecord::new(
                "shared-unit",
                "p:",
                crate::Policy::Lru,
                crate::Layout::Shared,
                1,
                None,
                true,
                crate::Codec::Json,
                None,
            ),
            true,
        );
        let rec = core.stats.recorder("f", Vec::new());
        rec.add(Event::Call);
        rec.add(Event::Call);
        core.shared
            .note("f", &FunctionRecord::new("f", crate::Codec::Json, None));
        let (_, first) = core.shared.prepare(&core).unwrap();
        assert_eq!((calls_in(&first), first.records.len()), (2, 1));
        // Calls made while a batch is in flight go with the next one, not twice.
        rec.add(Event::Call);
        let down = Err(Error::new(ErrorKind::Backend, "down"));
        core.shared.settle(first, &down);
        let (_, second) = core.shared.prepare(&core).unwrap();
        assert_eq!((calls_in(&second), second.records.len()), (3, 1));
        core.shared.settle(second, &Ok(Value::Okay));
        assert!(core.shared.prepare(&core).is_none(), "nothing new to send");
        rec.add(Event::Hit);
        let (_, third) = core.shared.prepare(&core).unwrap();
        assert_eq!(third.deltas[0].1.hits, 1);
        assert_eq!(calls_in(&third), 0);
    }

    #[test]
    fn counters_read_back_by_identity_and_path() {
        let reply = Value::Array(
            [
                ("calls:m::f@v1#0123456789abcdef", 2),
                ("hits:m::f@v1#0123456789abcdef", 1),
                ("calls:m::f@v2#0123456789abcdef", 3),
                ("calls:g", 4),
                ("unknown:g", 9),
                ("no-colon", 9),
            ]
            .into_iter()
            .flat_map(|(f, n)| {
                [
                    Value::BulkString(f.as_bytes().to_vec()),
                    Value::BulkString(n.to_string().into_bytes()),
                ]
            })
            .collect(),
        );
        let shared = SharedStats::from_reply(reply).unwrap();
        assert_eq!(shared.total.calls, 9);
        assert_eq!(
            shared.for_function("m::f").map(|s| (s.calls, s.hits)),
            Some((5, 1))
        );
        assert_eq!(shared.for_function("g").map(|s| s.calls), Some(4));
        assert_eq!(shared.for_function("m::f@v1"), None);
    }
}
