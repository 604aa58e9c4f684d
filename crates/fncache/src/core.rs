//! What both front-ends share: the cache's settings, stats, breaker and flights, how a call
//! starts (the call itself is the state machine in `call.rs`), and the store a front-end
//! holds. Nothing here performs I/O.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::call::{Call, CallBehaviour, Setup};
use crate::circuit::Breaker;
use crate::clock::{Clock, SystemClock};
use crate::codec::Codec;
use crate::error::Error;
use crate::flight::Flights;
use crate::key::Member;
use crate::layout::Layout;
use crate::mode::{Ambient, CacheId};
use crate::options::{Behaviour, Options, serializes_as_none};
use crate::policy::Policy;
use crate::stats::{Event, StatsRegistry};
use crate::store::{StoreOp, StoreReply, StoreSettings};
use crate::telemetry::Telemetry;
use crate::workers::Workers;

/// Minimum time between two warnings logged by one cache.
const WARN_INTERVAL_US: u64 = 1_000_000;

/// What both front-ends share: settings, stats, identity.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) id: CacheId,
    pub(crate) name: String,
    pub(crate) policy: Policy,
    pub(crate) layout: Layout,
    pub(crate) codec: Codec,
    /// Freshness, stampede and failure settings: the defaults of every call.
    pub(crate) behaviour: Behaviour,
    pub(crate) settings: StoreSettings,
    pub(crate) stats: StatsRegistry,
    /// Spans' and metrics' cache-wide part (the store latency histogram).
    pub(crate) telemetry: Telemetry,
    pub(crate) warnings: WarnThrottle,
    pub(crate) breaker: Breaker,
    /// Computations in progress in this process, for single-flight.
    pub(crate) flights: Flights,
    /// Background threads of the blocking front-end (started on first use).
    pub(crate) workers: Workers,
    /// The last backend failure, told to calls that an open circuit turns away.
    pub(crate) last_failure: std::sync::Mutex<Option<String>>,
    /// Batches of counters and registry records for Redis (see `shared_stats.rs`).
    pub(crate) shared: crate::shared_stats::SharedCounters,
    /// The off switch (`Builder::enabled`, `set_enabled`): off, every call runs its function
    /// with no store traffic. Read with one relaxed load per call: a switch needs no order
    /// with anything else, and a call that starts just before a flip may still use the store.
    pub(crate) enabled: std::sync::atomic::AtomicBool,
    /// The near cache, if the builder asked for one (Redis only; its link runs on a thread of
    /// its own, see `store/redis/subscriber.rs`).
    pub(crate) near: Option<std::sync::Arc<crate::near::Near>>,
    /// Where a call dropped before it ended sends the op that gives its key's lease back.
    pub(crate) abandoned: Abandoned,
}

/// The front-end's way to send, from a call dropped before it ended, the op that gives the
/// key's lease back (see `Call`'s `Drop`): without it, the key's next caller in every
/// process would wait `lock_timeout` for a computation nobody does. The drop is pure code and
/// cannot wait, so the front-end sends it elsewhere: the async one in a task of the runtime
/// the call is dropped in (an aborted task, a cancelled request, a `timeout` around the
/// call). The blocking front-end sets none: its calls always run to their end (the
/// function's panics are caught and raised again after the lease is given back).
#[derive(Default)]
pub(crate) struct Abandoned(std::sync::OnceLock<Box<dyn Fn(StoreOp) + Send + Sync>>);

impl Abandoned {
    /// Sets where abandoned leases go (once; later calls change nothing).
    pub(crate) fn set(&self, send: Box<dyn Fn(StoreOp) + Send + Sync>) {
        let _ = self.0.set(send);
    }

    /// Sends `op`, the release of an abandoned lease; without a sender the lease expires
    /// after `lock_timeout`.
    pub(crate) fn give_back(&self, op: StoreOp) {
        if let Some(send) = self.0.get() {
            send(op);
        }
    }
}

impl std::fmt::Debug for Abandoned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Abandoned(sent)"
        } else {
            "Abandoned(expire)"
        })
    }
}

/// Logs backend trouble at most once per interval, counting what it held back.
#[derive(Debug, Default)]
pub(crate) struct WarnThrottle {
    last_us: AtomicU64,
    suppressed: AtomicU64,
}

impl WarnThrottle {
    /// Whether a warning may be logged now: `Some` (with how many were held back since the
    /// last one) at most once per interval.
    fn admit(&self) -> Option<u64> {
        let now = SystemClock.now_micros();
        let last = self.last_us.load(Ordering::Relaxed);
        if now.saturating_sub(last) < WARN_INTERVAL_US
            || self
                .last_us
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }

    /// A batch of shared statistics was not sent: its counts go with the next batch, and the
    /// last batch of a process that exits now is lost.
    pub(crate) fn warn_shared_stats(&self, cache: &str, error: &Error) {
        let Some(suppressed) = self.admit() else {
            return;
        };
        tracing::warn!(
            cache = cache,
            suppressed = suppressed,
            error = %error,
            "fncache: sending the shared statistics failed; they go with the next batch"
        );
    }

    pub(crate) fn warn(&self, cache: &str, function: &str, what: &str, error: &Error) {
        let Some(suppressed) = self.admit() else {
            return;
        };
        tracing::warn!(
            cache = cache,
            function = function,
            suppressed = suppressed,
            error = %error,
            "fncache: {what}; the function's own value is used"
        );
    }
}

/// How a call hands back the failures it does not absorb.
///
/// The explicit API surfaces [`Error`]: a miss the mode forbids computing, and backend failures
/// when the cache is strict. Decorated functions keep their own return type, so their calls use
/// `Infallible`: every failure is counted and logged, and the function runs; a decorated
/// function with `strict = true` returns `Result<T, E>` with `E: From<Error>`, and its calls
/// use `Error` (see `__private::Failures`).
///
/// `pub` only so that `__private::Failures` can name it; `core` is private, so it stays
/// unnameable outside the crate. (Rust 1.88, the minimum, still calls it unreachable.)
#[allow(unreachable_pub)]
pub trait Surface: Sized {
    /// `Ok` when this surface can return `error`, `Err(error)` back when it cannot.
    fn raise(error: Error) -> Result<Self, Error>;
}

impl Surface for Error {
    fn raise(error: Error) -> Result<Error, Error> {
        Ok(error)
    }
}

impl Surface for Infallible {
    fn raise(error: Error) -> Result<Infallible, Error> {
        Err(error)
    }
}

impl Core {
    /// Starts a call of `function` whose arguments gave `member`, under the thread's or task's
    /// `ambient`, with the function's own `options`; `owned` when the function may run in the
    /// background, with the `default` to answer when `wait` is off.
    ///
    /// Options with hooks ([`TypedOptions`](crate::TypedOptions)) make the call judge its
    /// value before storing it, and keep its function out of background work (`owned` is
    /// dropped), where nothing would judge it.
    pub(crate) fn begin<'a, S: Surface, T: Serialize + DeserializeOwned, O: Options<T> + ?Sized>(
        &'a self,
        function: &'a str,
        member: Result<Member, Error>,
        options: &'a O,
        ambient: &Ambient,
        owned: bool,
        default: Option<T>,
    ) -> Result<Call<'a, S, T>, S> {
        let typed = options.typed();
        let options = options.call_options();
        // Checked once: the hot path (no option set) takes the cache's normalized settings.
        let overridden = !options.is_default();
        let behaviour = if overridden {
            CallBehaviour::Own(Box::new(options.resolve(&self.behaviour)))
        } else {
            CallBehaviour::Cache(&self.behaviour)
        };
        // The cache's own settings were validated when it was built: only a call's
        // overrides can be invalid.
        let invalid = overridden.then(|| behaviour.validate().err()).flatten();
        // Switched off, a call is a bypass: it computes, and neither reads nor writes.
        let mode = if self.enabled.load(Ordering::Relaxed) {
            ambient.mode(self.id)
        } else {
            crate::mode::Mode::BYPASS
        };
        let rec = self.stats.recorder(function, ambient.collectors(self.id));
        if rec.first_sight() {
            // Once per function and process: recorded in Redis with the next batch.
            self.shared.note(
                function,
                &crate::registry::FunctionRecord::new(
                    function,
                    options.codec.unwrap_or(self.codec),
                    behaviour.entry_ttl,
                ),
            );
        }
        Call::new(
            self,
            Setup {
                function,
                member,
                mode,
                codec: options.codec.unwrap_or(self.codec),
                cache_none: options.cache_none,
                behaviour,
                rec,
                owned: owned && typed.is_none(),
                typed,
                default,
                invalid,
                near: self.near.as_deref().filter(|_| options.near_cache),
            },
        )
    }

    /// Accounts for the end of background work under `ticket`: its store reply (if it sent
    /// one) and whether the function produced a value.
    /// `refused` is the codec's refusal of the value, which was then not stored.
    pub(crate) fn close_ticket(
        &self,
        ticket: &crate::call::Ticket,
        stored: Option<Result<StoreReply, Error>>,
        ok: bool,
        refused: Option<&Error>,
    ) {
        if let Some(Err(e)) = &stored {
            self.warnings
                .warn(&self.name, &ticket.function, "background work failed", e);
        }
        if let Some(e) = refused {
            self.warnings.warn(
                &self.name,
                &ticket.function,
                "the value cannot be encoded faithfully, so it is not cached",
                e,
            );
        }
        let rec = self.stats.recorder(&ticket.function, Vec::new());
        for event in ticket.events(stored.as_ref(), ok, refused.map(Error::kind)) {
            rec.add(event);
        }
    }

    /// The cache's counters since it was built, with its near cache's own.
    pub(crate) fn total_stats(&self) -> crate::Stats {
        let mut total = self.stats.total();
        if let Some(near) = &self.near {
            (total.near_invalidations, total.near_resets) = near.counts();
        }
        total
    }

    /// Is the cache switched on?
    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Switches the cache on or off.
    pub(crate) fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    /// The op behind `put`: `value` stored as a call of `function` whose arguments gave
    /// `member` would store it, under the same `options` (codec, entry TTL and jitter,
    /// `max_stale`, the `None` rule), without reading and without the key's lease. `None`
    /// when nothing is to be stored: the cache is switched off, or `value` is a `None` the
    /// options say not to cache. A value the codec cannot give back exactly is an error.
    pub(crate) fn put_op<T: Serialize + DeserializeOwned, O: Options<T> + ?Sized>(
        &self,
        function: &str,
        member: Member,
        options: &O,
        value: &T,
    ) -> Result<Option<StoreOp>, Error> {
        let (typed, options) = (options.typed(), options.call_options());
        if !self.is_enabled() || (!options.cache_none && serializes_as_none(value)) {
            return Ok(None);
        }
        let mut behaviour = options.resolve(&self.behaviour);
        behaviour.validate()?;
        // The hooks, if any: a value they refuse is not stored; one may set its entry TTL.
        let mut refresh_ms = 0;
        match typed.map(|typed| typed.judge(value)) {
            None => {}
            Some(Some(verdict)) => {
                behaviour = verdict.apply(behaviour);
                refresh_ms = verdict.refresh_ms();
            }
            Some(None) => return Ok(None),
        }
        let codec = options.codec.unwrap_or(self.codec);
        let payload = codec.encode_faithful(value)?;
        let structure = self.settings.naming.structure(function);
        let tagged = typed.and_then(|typed| crate::store::PutTags::new(typed.tag_list(), None));
        Ok(Some(crate::call::put_op(
            &structure, member, codec, payload, &behaviour, refresh_ms, None, tagged,
        )))
    }

    /// Counts the reply of a `put`: `Ok(true)` when stored.
    pub(crate) fn put_done(
        &self,
        function: &str,
        reply: Result<StoreReply, Error>,
    ) -> Result<bool, Error> {
        let rec = self.stats.recorder(function, Vec::new());
        match reply.and_then(StoreReply::into_stored) {
            Ok((evicted, _)) => {
                rec.add(Event::Write);
                if evicted > 0 {
                    rec.add(Event::Evictions(evicted));
                }
                Ok(true)
            }
            Err(e) => {
                rec.add(Event::Error(e.kind()));
                Err(e)
            }
        }
    }

    /// The op behind `expire`; `None` when the cache is switched off.
    pub(crate) fn expire_op(&self, function: &str, member: Member) -> Option<StoreOp> {
        self.is_enabled().then(|| StoreOp::Expire {
            structure: self.settings.naming.structure(function),
            member,
        })
    }

    /// The op behind `contains`.
    pub(crate) fn peek_op(&self, function: &str, member: Member) -> StoreOp {
        StoreOp::Peek {
            structure: self.settings.naming.structure(function),
            member,
        }
    }

    /// The op behind `invalidate_tag`.
    pub(crate) fn invalidate_tag_op(tag: &str) -> StoreOp {
        StoreOp::InvalidateTag {
            tag: tag.to_owned(),
        }
    }

    /// The op behind `invalidate`.
    pub(crate) fn remove_op(&self, function: &str, member: Member) -> StoreOp {
        StoreOp::Remove {
            structure: self.settings.naming.structure(function),
            member,
        }
    }

    /// The op behind `purge_function`: only the per-function layouts keep a function's
    /// entries apart (in the shared ones, a member is a digest of function and arguments
    /// together, so nothing tells one function's entries from another's).
    pub(crate) fn purge_function_op(&self, function: &str) -> Result<StoreOp, Error> {
        match self.layout {
            Layout::PerFunction | Layout::ClusterPerFunction => Ok(StoreOp::PurgeStructure {
                structure: self.settings.naming.structure(function),
            }),
            Layout::Shared | Layout::Cluster => Err(Error::config(format!(
                "cannot purge the entries of `{function}` alone: cache `{}` uses Layout::{:?}, \
                 where all functions share one structure keyed by digests of function and \
                 arguments; build it with `.layout(Layout::PerFunction)` (or \
                 `Layout::ClusterPerFunction`), or purge the whole cache",
                self.name, self.layout
            ))),
        }
    }

    /// Counts (for `function`, as an error) and logs (throttled) a failure of work done on
    /// behalf of a decorated function, which has no way to return it.
    pub(crate) fn absorb(&self, function: &str, ambient: &Ambient, what: &str, error: &Error) {
        self.stats
            .recorder(function, ambient.collectors(self.id))
            .add(Event::Error(error.kind()));
        self.warnings.warn(&self.name, function, what, error);
    }
}

impl Core {
    /// The shared `Debug` rendering of both front-ends (no credentials: `store` is redacted).
    pub(crate) fn describe(
        &self,
        f: &mut std::fmt::Formatter<'_>,
        type_name: &str,
        store: &dyn std::fmt::Debug,
    ) -> std::fmt::Result {
        f.debug_struct(type_name)
            .field("name", &self.name)
            .field("policy", &self.policy)
            .field("layout", &self.layout)
            .field("codec", &self.codec)
            .field("maxsize", &self.settings.maxsize)
            .field("ttl", &self.settings.ttl)
            .field("update_ttl", &self.settings.slide)
            .field("behaviour", &self.behaviour)
            .field("store", store)
            .finish()
    }

    /// Turns a count reply into a `usize`.
    pub(crate) fn count(reply: Result<StoreReply, Error>) -> Result<usize, Error> {
        Ok(usize::try_from(reply?.into_count()?).unwrap_or(usize::MAX))
    }
}

/// What a front-end holds: the core and its store, the Redis side driven by `R` (the blocking
/// or the async driver).
#[derive(Debug)]
pub(crate) struct Parts<R: crate::shared_stats::LastFlush> {
    pub(crate) core: Core,
    pub(crate) store: Store<R>,
}

/// The last handle of a cache is gone: what its counters gained since the last batch goes to
/// Redis now (see `shared_stats.rs`).
impl<R: crate::shared_stats::LastFlush> Drop for Parts<R> {
    fn drop(&mut self) {
        if let Store::Redis(redis) = &self.store {
            redis.last_flush(&self.core);
        }
    }
}

/// The store of a front-end.
#[derive(Debug)]
pub(crate) enum Store<R> {
    Memory(Box<crate::store::memory::MemoryStore>),
    Redis(R),
}

impl<R: std::fmt::Debug + crate::shared_stats::LastFlush> Parts<R> {
    /// Opens the store chosen by the builder, making the Redis driver with `redis`.
    pub(crate) fn new(
        core: Core,
        backend: crate::builder::Backend,
        redis: impl FnOnce(
            crate::store::redis::RedisTarget,
            Option<std::sync::Arc<crate::near::Near>>,
        ) -> R,
    ) -> Parts<R> {
        let store = match backend {
            crate::builder::Backend::Memory(clock) => Store::Memory(Box::new(
                crate::store::memory::MemoryStore::new(core.settings.clone(), clock),
            )),
            crate::builder::Backend::Redis(target) => {
                // The builder allows a near cache only where its link can connect.
                if let (Some(near), Some(link)) = (&core.near, target.link_target()) {
                    crate::store::redis::subscriber::spawn(link, near);
                }
                Store::Redis(redis(target, core.near.clone()))
            }
        };
        Parts { core, store }
    }

    /// `Debug` of a front-end named `type_name`.
    pub(crate) fn describe(
        &self,
        f: &mut std::fmt::Formatter<'_>,
        type_name: &str,
    ) -> std::fmt::Result {
        let store: &dyn std::fmt::Debug = match &self.store {
            Store::Memory(_) => &"memory",
            Store::Redis(redis) => redis,
        };
        self.core.describe(f, type_name, store)
    }
}

impl Core {
    /// May the next backend op go out? An open circuit answers with an error at once, naming
    /// the failure that opened it.
    pub(crate) fn gate(&self) -> Result<(), Error> {
        match self.breaker.admit_at(|| SystemClock.now_micros()) {
            crate::circuit::Admission::Skip => {
                let last = self
                    .last_failure
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
                    .unwrap_or_default();
                Err(Error::new(
                    crate::ErrorKind::Backend,
                    format!(
                        "the backend is skipped for a while after consecutive failures \
                         (circuit breaker open); the last failure: {last}"
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    /// Tells the breaker how a backend op went.
    pub(crate) fn report<R>(&self, result: &Result<R, Error>) {
        let failed = result.as_ref().err().is_some_and(Error::is_backend);
        if let Err(e) = result
            && failed
        {
            *self.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.describe());
        }
        if self.breaker.report_at(!failed, || SystemClock.now_micros())
            && let Err(e) = result
        {
            tracing::warn!(
                cache = %self.name,
                error = %e,
                "fncache: backend failing, circuit breaker open: calls skip it for a while"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::WarnThrottle;

    /// A burst of failures (every call of a value the codec refuses, say) logs one warning,
    /// and the next one says how many were held back.
    #[test]
    fn a_burst_of_warnings_logs_once() {
        let throttle = WarnThrottle::default();
        let admitted: Vec<u64> = (0..1000).filter_map(|_| throttle.admit()).collect();
        assert_eq!(admitted, [0]);
        assert_eq!(
            throttle
                .suppressed
                .load(std::sync::atomic::Ordering::Relaxed),
            999
        );
    }
}
