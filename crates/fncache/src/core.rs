//! The decision logic of a cached call, shared by both front-ends.
//!
//! A [`Call`] knows what to ask the store and what to make of its answers (modes, decoding,
//! stats, fail-open or strict); it performs no I/O. A front-end walks it through
//! `lookup -> on_lookup -> may_compute -> store_op -> on_store`, sending each op with its own
//! driver, so the blocking and async paths differ only in how bytes move.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::{Clock, SystemClock};
use crate::codec::{Codec, decode_entry};
use crate::error::Error;
use crate::key::Member;
use crate::layout::{Layout, Structure};
use crate::mode::{Ambient, CacheId, Mode};
use crate::options::{CallOptions, serializes_as_none};
use crate::policy::Policy;
use crate::stats::{Event, Recorder, StatsRegistry};
use crate::store::{StoreOp, StoreReply, StoreSettings};

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
    pub(crate) entry_ttl: Option<Duration>,
    pub(crate) strict: bool,
    pub(crate) settings: StoreSettings,
    pub(crate) stats: StatsRegistry,
    pub(crate) warnings: WarnThrottle,
}

/// Logs backend trouble at most once per interval, counting what it held back.
#[derive(Debug, Default)]
pub(crate) struct WarnThrottle {
    last_us: AtomicU64,
    suppressed: AtomicU64,
}

impl WarnThrottle {
    fn warn(&self, cache: &str, function: &str, what: &str, error: &Error) {
        let now = SystemClock.now_micros();
        let last = self.last_us.load(Ordering::Relaxed);
        if now.saturating_sub(last) < WARN_INTERVAL_US
            || self
                .last_us
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
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
/// `Infallible`: every failure is counted and logged, and the function runs.
pub(crate) trait Surface: Sized {
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
    /// `ambient`, with the function's own `options`.
    pub(crate) fn begin<'a, S: Surface>(
        &'a self,
        function: &'a str,
        member: Result<Member, Error>,
        options: &CallOptions,
        ambient: &Ambient,
    ) -> Result<Call<'a, S>, S> {
        let rec = self.stats.recorder(function, ambient.collectors(self.id));
        rec.add(Event::Call);
        let mut call = Call {
            core: self,
            function,
            mode: ambient.mode(self.id),
            target: None,
            codec: options.codec.unwrap_or(self.codec),
            entry_ttl: options.entry_ttl.or(self.entry_ttl),
            cache_none: options.cache_none,
            rec,
            surface: PhantomData,
        };
        if options.entry_ttl.is_some_and(|t| t.is_zero()) {
            let e = Error::config("the entry_ttl of a call must be greater than zero");
            call.fail(e, "the call's options are invalid, so the cache is skipped")?;
            return Ok(call);
        }
        match member {
            Ok(member) => call.target = Some((self.settings.naming.structure(function), member)),
            Err(e) => call.fail(e, "the arguments cannot be turned into a key")?,
        }
        Ok(call)
    }

    /// The op behind `contains`.
    pub(crate) fn peek_op(&self, function: &str, member: Member) -> StoreOp {
        StoreOp::Peek {
            structure: self.settings.naming.structure(function),
            member,
        }
    }

    /// The op behind `invalidate`.
    pub(crate) fn remove_op(&self, function: &str, member: Member) -> StoreOp {
        StoreOp::Remove {
            structure: self.settings.naming.structure(function),
            member,
        }
    }

    /// The op behind `purge_function`: only the `PerFunction` layout keeps a function's
    /// entries apart (in `Shared`, a member is a digest of function and arguments together,
    /// so nothing tells one function's entries from another's).
    pub(crate) fn purge_function_op(&self, function: &str) -> Result<StoreOp, Error> {
        match self.layout {
            Layout::PerFunction => Ok(StoreOp::PurgeStructure {
                structure: self.settings.naming.structure(function),
            }),
            Layout::Shared => Err(Error::config(format!(
                "cannot purge the entries of `{function}` alone: cache `{}` uses Layout::Shared, \
                 where all functions share one structure keyed by digests of function and \
                 arguments; build it with `.layout(Layout::PerFunction)`, or purge the whole cache",
                self.name
            ))),
        }
    }

    /// Counts (for `function`, as an error) and logs (throttled) a failure of work done on
    /// behalf of a decorated function, which has no way to return it.
    pub(crate) fn absorb(&self, function: &str, ambient: &Ambient, what: &str, error: &Error) {
        self.stats
            .recorder(function, ambient.collectors(self.id))
            .add(Event::Error);
        self.warnings.warn(&self.name, function, what, error);
    }
}

/// One call in progress; `S` is how it surfaces failures.
#[derive(Debug)]
pub(crate) struct Call<'a, S> {
    core: &'a Core,
    function: &'a str,
    mode: Mode,
    /// Where the entry lives; `None` when no key could be derived (the cache is skipped).
    target: Option<(Structure, Member)>,
    /// The call's codec, entry TTL and `None` rule: its options over the cache's defaults.
    codec: Codec,
    entry_ttl: Option<Duration>,
    cache_none: bool,
    rec: Recorder<'a>,
    surface: PhantomData<fn() -> S>,
}

impl<S: Surface> Call<'_, S> {
    /// The lookup to perform, if the mode reads and a key exists.
    pub(crate) fn lookup(&self) -> Option<StoreOp> {
        let (structure, member) = self.target.as_ref()?;
        self.mode.read.then(|| StoreOp::Get {
            structure: structure.clone(),
            member: *member,
        })
    }

    /// Interprets the lookup: `Some(value)` on a hit. An undecodable value is a miss (and an
    /// error in the stats); a backend failure too, unless the cache is strict.
    pub(crate) fn on_lookup<T: DeserializeOwned>(
        &self,
        reply: Result<StoreReply, Error>,
    ) -> Result<Option<T>, S> {
        match reply.and_then(StoreReply::into_entry) {
            Ok(Some(bytes)) => match decode_entry::<T>(self.codec, &bytes) {
                Ok(value) => {
                    self.rec.add(Event::Hit);
                    Ok(Some(value))
                }
                Err(e) => {
                    self.rec.add(Event::Miss);
                    self.rec.add(Event::Error);
                    self.core.warnings.warn(
                        &self.core.name,
                        self.function,
                        "a stored value does not decode and will be recomputed",
                        &e,
                    );
                    Ok(None)
                }
            },
            Ok(None) => {
                self.rec.add(Event::Miss);
                Ok(None)
            }
            Err(e) => {
                self.fail(e, "the cache lookup failed")?;
                Ok(None)
            }
        }
    }

    /// Allows the function to run, or refuses with a miss error when the mode forbids it
    /// (a surface that cannot return the error runs the function anyway).
    pub(crate) fn may_compute(&self) -> Result<(), S> {
        if !self.mode.exec
            && let Ok(miss) = S::raise(Error::miss(self.function))
        {
            return Err(miss);
        }
        self.rec.add(Event::Exec);
        Ok(())
    }

    /// The put for a computed value, if the mode writes (and the value is not a `None` the
    /// options say not to cache).
    pub(crate) fn store_op<T: Serialize>(&self, value: &T) -> Result<Option<StoreOp>, S> {
        let Some((structure, member)) = self.target.as_ref().filter(|_| self.mode.write) else {
            return Ok(None);
        };
        if !self.cache_none && serializes_as_none(value) {
            return Ok(None);
        }
        match self.codec.encode(value) {
            Ok(payload) => Ok(Some(StoreOp::Put {
                structure: structure.clone(),
                member: *member,
                head: self.codec.head(),
                payload,
                entry_ttl: self.entry_ttl,
            })),
            Err(e) => {
                self.fail(e, "the value cannot be encoded, so it is not cached")?;
                Ok(None)
            }
        }
    }

    /// Interprets the put.
    pub(crate) fn on_store(&self, reply: Result<StoreReply, Error>) -> Result<(), S> {
        match reply.and_then(StoreReply::into_stored) {
            Ok((evicted, _reclaimed)) => {
                self.rec.add(Event::Write);
                if evicted > 0 {
                    self.rec.add(Event::Evictions(evicted));
                }
                Ok(())
            }
            Err(e) => self.fail(e, "storing the value failed"),
        }
    }

    /// Counts a failure; returns it when strict (and the surface can), logs it (throttled)
    /// otherwise.
    fn fail(&self, error: Error, what: &str) -> Result<(), S> {
        self.rec.add(Event::Error);
        let error = match self.core.strict {
            true => match S::raise(error) {
                Ok(surfaced) => return Err(surfaced),
                Err(error) => error,
            },
            false => error,
        };
        self.core
            .warnings
            .warn(&self.core.name, self.function, what, &error);
        Ok(())
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
            .field("entry_ttl", &self.entry_ttl)
            .field("strict", &self.strict)
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
pub(crate) struct Parts<R> {
    pub(crate) core: Core,
    pub(crate) store: Store<R>,
}

/// The store of a front-end.
#[derive(Debug)]
pub(crate) enum Store<R> {
    Memory(Box<crate::store::memory::MemoryStore>),
    Redis(R),
}

impl<R: std::fmt::Debug> Parts<R> {
    /// Opens the store chosen by the builder, making the Redis driver with `redis`.
    pub(crate) fn new(
        core: Core,
        backend: crate::builder::Backend,
        redis: impl FnOnce(crate::store::redis::RedisTarget) -> R,
    ) -> Parts<R> {
        let store = match backend {
            crate::builder::Backend::Memory(clock) => Store::Memory(Box::new(
                crate::store::memory::MemoryStore::new(core.settings.clone(), clock),
            )),
            crate::builder::Backend::Redis(target) => Store::Redis(redis(target)),
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
