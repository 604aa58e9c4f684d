//! The builder: every setting of a cache, validated once in `build`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::circuit::{Breaker, CircuitBreaker};
use crate::clock::{Clock, SystemClock};
use crate::codec::Codec;
use crate::core::Core;
use crate::error::Error;
use crate::layout::{Layout, Naming, check_hash_tag_free, check_prefix};
use crate::options::{Behaviour, CallOptions};
use crate::policy::Policy;
use crate::stats::StatsRegistry;
use crate::store::StoreSettings;
use crate::store::redis::RedisTarget;
use crate::store::redis::connect::{self, ConnectOptions, Front, Resolved, StoreChoice};
use crate::telemetry::Telemetry;
use crate::workers::Workers;
use crate::{Cache, blocking};

mod store;

/// Default number of entries per structure.
pub const DEFAULT_MAXSIZE: usize = 1024;
/// Default lifetime of a structure.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "func-cache:";
/// How long a near copy is served without asking Redis, at most, unless
/// [`Builder::near_cache_ttl`] says otherwise.
pub const DEFAULT_NEAR_CACHE_TTL: Duration = Duration::from_secs(5);

/// Configures a cache; start with [`Cache::builder`].
///
/// ```
/// use std::time::Duration;
/// use fncache::{Cache, Codec, Layout, Policy};
///
/// let cache = Cache::builder("my-app")
///     .policy(Policy::Lru)
///     .maxsize(10_000)
///     .ttl(Duration::from_secs(600))
///     .entry_ttl(Duration::from_secs(60))
///     .layout(Layout::PerFunction)
///     .codec(Codec::Json)
///     .memory() // the embedded store, whatever FNCACHE_REDIS_URL or REDIS_URL say
///     .build_blocking()?;
/// # Ok::<(), fncache::Error>(())
/// ```
///
/// # Durations
///
/// Every `Duration` setting, here and in [`CallOptions`](crate::CallOptions), follows one rule,
/// the same on both stores and both front-ends:
///
/// - **Zero is refused**: `build` returns an [`ErrorKind::Config`](crate::ErrorKind::Config)
///   error that names the setting and its limit (`"lock_timeout must be greater than zero"`);
///   a zero per-call override makes that call skip the cache (counted in `stats().errors`,
///   returned when strict). Use [`Builder::no_ttl`] for structures that never expire.
/// - **Whole milliseconds, rounded up**: the unit the stores count in; 1 ns means 1 ms.
/// - **At most [`MAX_DURATION`](crate::MAX_DURATION)** (100 years): a longer value, up to
///   `Duration::MAX`, means "as long as can be represented", that is 100 years.
///
/// ```
/// use std::time::Duration;
/// use fncache::{Cache, ErrorKind};
///
/// let forever = Cache::builder("doc").memory().lock_timeout(Duration::MAX).build_blocking()?;
/// assert_eq!(forever.get_or_compute("f", &1, || 2)?, 2);
/// let zero = Cache::builder("doc").memory().op_timeout(Duration::ZERO).build_blocking();
/// assert_eq!(zero.unwrap_err().kind(), ErrorKind::Config);
/// # Ok::<(), fncache::Error>(())
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until `build` or `build_blocking` is called"]
pub struct Builder {
    name: String,
    policy: Policy,
    maxsize: usize,
    ttl: Option<Duration>,
    update_ttl: bool,
    touch_batch: Option<Duration>,
    /// Copies kept by the near cache (`None`: no near cache).
    near_cache: Option<usize>,
    near_cache_ttl: Duration,
    behaviour: Behaviour,
    circuit_breaker: CircuitBreaker,
    prefix: String,
    layout: Layout,
    codec: Codec,
    store: StoreChoice,
    connect: ConnectOptions,
    clock: Arc<dyn Clock>,
    shared_stats: bool,
    /// `None`: enabled unless [`DISABLED_ENV`] says otherwise.
    enabled: Option<bool>,
}

/// The environment variable that turns caches off: `FNCACHE_DISABLED=1` (or `true`) makes
/// every cache built without [`Builder::enabled`] start disabled (see
/// [`Builder::enabled`]). Read once, when the cache is built.
pub const DISABLED_ENV: &str = "FNCACHE_DISABLED";

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("policy", &self.policy)
            .field("maxsize", &self.maxsize)
            .field("ttl", &self.ttl)
            .field("update_ttl", &self.update_ttl)
            .field("touch_batch", &self.touch_batch)
            .field("near_cache", &self.near_cache)
            .field("near_cache_ttl", &self.near_cache_ttl)
            .field("behaviour", &self.behaviour)
            .field("circuit_breaker", &self.circuit_breaker)
            .field("prefix", &self.prefix)
            .field("layout", &self.layout)
            .field("codec", &self.codec)
            .field("store", &self.store)
            .field("connect", &self.connect)
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl Builder {
    pub(crate) fn new(name: impl Into<String>) -> Builder {
        Builder {
            name: name.into(),
            policy: Policy::default(),
            maxsize: DEFAULT_MAXSIZE,
            ttl: Some(DEFAULT_TTL),
            update_ttl: true,
            touch_batch: None,
            near_cache: None,
            near_cache_ttl: DEFAULT_NEAR_CACHE_TTL,
            behaviour: Behaviour::DEFAULT,
            circuit_breaker: CircuitBreaker::DEFAULT,
            prefix: DEFAULT_PREFIX.to_owned(),
            layout: Layout::default(),
            codec: Codec::default(),
            store: StoreChoice::default(),
            connect: ConnectOptions::default(),
            clock: Arc::new(SystemClock),
            shared_stats: true,
            enabled: None,
        }
    }

    /// The eviction policy (default [`Policy::LruT`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Entries per structure (the whole cache for [`Layout::Shared`] and [`Layout::Cluster`],
    /// each function for [`Layout::PerFunction`] and [`Layout::ClusterPerFunction`]); default
    /// 1024, must be greater than 0.
    pub fn maxsize(mut self, maxsize: usize) -> Self {
        self.maxsize = maxsize;
        self
    }

    /// Lifetime of a structure (default one hour): see [`Builder::update_ttl`]. Greater than
    /// zero (use [`Builder::no_ttl`] instead); see [Durations](Builder#durations).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Structures never expire as a whole (entries still leave by eviction or entry TTL).
    pub fn no_ttl(mut self) -> Self {
        self.ttl = None;
        self
    }

    /// `true` (default): every hit and every put renews the structure's TTL, a miss does not.
    /// `false`: the TTL runs from the structure's creation.
    pub fn update_ttl(mut self, sliding: bool) -> Self {
        self.update_ttl = sliding;
        self
    }

    /// Redis only, opt-in: a hit records its use in the process and the uses are applied to the
    /// index in one command per structure at most every `delay` (by the process's first call
    /// to the cache after `delay` has passed since the oldest recorded use), so that a hit is
    /// one plain `HGET`: a Redis core then serves about as many hits as `GET`s (the hit
    /// script costs about twenty times a `GET`'s server CPU).
    ///
    /// What changes: the eviction order sees a hit up to `delay` late (and not at all if the
    /// process makes no further call to the cache: uses still recorded when it stops are
    /// lost); a use of an entry evicted or removed in between is dropped, never re-inserted.
    /// Freshness stays exact, on server time: only an entry without an entry TTL or
    /// `max_stale` is served from the plain `HGET` (its envelope says it never expires); any
    /// other entry, a miss, a stale check (`refresh_after`) or a due structure-TTL renewal
    /// takes the hit script as without this setting (a miss then costs one more round trip).
    /// It applies to the policies whose reads record a time or nothing (`LruT`, `Fifo`,
    /// `FifoT`, `Random`); for the others the setting changes nothing. The embedded store
    /// ignores it. Zero applies the recorded uses at the next call.
    pub fn touch_batch(mut self, delay: Duration) -> Self {
        self.touch_batch = Some(delay);
        self
    }

    /// A near cache: up to `maxsize` entries of this cache kept decoded-ready in the process,
    /// in front of Redis, served with no I/O, and dropped in every process within milliseconds
    /// of any change to them (see the README's "Near cache" for its guarantees and costs).
    /// Off by default. A copy is served at most [`Builder::near_cache_ttl`], never past its
    /// entry's TTL or `refresh_after`, and only while this process's invalidation link (a
    /// Redis connection of its own, subscribed to the cache's channel) is up: when it is lost,
    /// every copy goes and calls go to Redis until it is back.
    ///
    /// Needs a Redis server reached by URL or [`Builder::redis_client`], or a cluster reached by
    /// [`Builder::redis_cluster`] with [`Layout::Cluster`] or [`Layout::ClusterPerFunction`]
    /// (sharded pub/sub on the node of each structure's slot, a channel per structure in the
    /// latter, subscribed as its function is first used); not the embedded store (in the process already), nor a cluster
    /// client, `ConnectionManager` or r2d2 pool of yours (they do not say how to open the
    /// link's own connection); a sliding structure TTL or none ([`Builder::update_ttl`]`(false)`
    /// with a TTL is refused: a copy could not know when the structure ends), and `maxsize`
    /// above zero; `build` returns an [`ErrorKind::Config`](crate::ErrorKind::Config)
    /// otherwise. Opt one function out with [`CallOptions::near_cache`](crate::CallOptions::near_cache)
    /// or `#[cached(near_cache = false)]`. Building still blocks on nothing, but a cache with a
    /// near cache starts its link's thread at once, which connects in the background.
    pub fn near_cache(mut self, maxsize: usize) -> Self {
        self.near_cache = Some(maxsize);
        self
    }

    /// How long a near copy may be served without asking Redis, at most (default
    /// [`DEFAULT_NEAR_CACHE_TTL`]): the bound on staleness should an invalidation ever be
    /// missed without the link noticing, and how often each hot key costs a Redis lookup per
    /// process. Greater than zero.
    pub fn near_cache_ttl(mut self, ttl: Duration) -> Self {
        self.near_cache_ttl = ttl;
        self
    }

    /// A default time-to-live for each entry; an expired entry is never served (except as a
    /// fail-safe fallback, see [`Builder::max_stale`]). Without one, entries live until they
    /// are evicted or their structure expires, or, with `max_stale`, for `max_stale`.
    pub fn entry_ttl(mut self, ttl: Duration) -> Self {
        self.behaviour.entry_ttl = Some(ttl);
        self
    }

    /// Prefix of every key (default `"func-cache:"`); it must end with `:`, which tells where
    /// the prefix ends and the cache name begins (so that no two caches ever share a key), and
    /// hold no `{` or `}` for the cluster layouts.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How entries are grouped into structures (default [`Layout::Shared`]).
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        self
    }

    /// The layout set so far (for the builders of [`crate::PerFunctionCache`]).
    pub(crate) fn configured_layout(&self) -> Layout {
        self.layout
    }

    /// How values are serialized (default [`Codec::MessagePack`]).
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// The clock of the embedded store (for tests: [`crate::clock::ManualClock`]). Redis
    /// stores always use the server's time.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// `false` (default): when the backend fails, calls still return the function's value and
    /// the failure is counted and logged. `true`: calls return the backend error.
    pub fn strict(mut self, strict: bool) -> Self {
        self.behaviour.strict = strict;
        self
    }

    /// Entries older than `after` are stale: still served, and the first caller to see one
    /// starts a single refresh (in the background for owned functions, see
    /// `get_or_compute_owned`). The entry TTL (or, without one, `max_stale`) stays the hard
    /// limit.
    pub fn refresh_after(mut self, after: Duration) -> Self {
        self.behaviour.refresh_after = Some(after);
        self
    }

    /// How long a caller's lease on a key lives, and how long other callers (threads, tasks,
    /// processes) wait for its value before computing themselves (default 5 s). A wait of
    /// [`MAX_DURATION`](crate::MAX_DURATION) (or more) waits for as long as the holder lives.
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.behaviour.lock_timeout = timeout;
        self
    }

    /// `true` (default): a cold miss waits for the value. `false`: a call with a default (see
    /// `try_get_or_compute_owned_with`) answers the default at once and fills the cache in the
    /// background.
    pub fn wait(mut self, wait: bool) -> Self {
        self.behaviour.wait = wait;
        self
    }

    /// How long a recomputation may run while a stale fallback exists; past it the fallback is
    /// served (async: the computation is dropped, or continues in the background for owned
    /// functions; blocking: owned functions only, as a running closure cannot be abandoned).
    pub fn compute_timeout(mut self, timeout: Duration) -> Self {
        self.behaviour.compute_timeout = Some(timeout);
        self
    }

    /// Fail-safe: keep entries up to `max_stale` after they were written (beyond their entry
    /// TTL) and serve them when recomputing fails, instead of the error.
    ///
    /// A hard bound: no value older than `max_stale` since its write is ever served, unless
    /// its entry TTL is longer (then the entry TTL is the bound, and fail-safe adds nothing).
    /// Without an entry TTL, `max_stale` is the entries' lifetime: served (stale after
    /// `refresh_after`) until `max_stale` has passed, then gone, so a failing function's error
    /// surfaces.
    pub fn max_stale(mut self, max_stale: Duration) -> Self {
        self.behaviour.max_stale = Some(max_stale);
        self
    }

    /// After a failed refresh or recomputation, how long before anyone tries again, serving
    /// the stale value meanwhile (default 1 s).
    pub fn fail_safe_throttle(mut self, throttle: Duration) -> Self {
        self.behaviour.fail_safe_throttle = throttle;
        self
    }

    /// How long one backend operation may take before the call goes on without the cache
    /// (default 250 ms). It bounds Redis operations only: the embedded store answers at once.
    /// Shorter than a round trip to the server, it makes every call fail open, as it says.
    pub fn op_timeout(mut self, timeout: Duration) -> Self {
        self.behaviour.op_timeout = timeout;
        self
    }

    /// `true` (default): concurrent misses of one key share one computation, within the
    /// process and, with Redis, across processes (a lease in Redis).
    pub fn stampede_protection(mut self, on: bool) -> Self {
        self.behaviour.stampede_protection = on;
        self
    }

    /// Spreads entry TTLs: each entry lives up to `jitter` longer than its entry TTL, by a
    /// share that its key alone decides (a hash of it), so entries written together (a warm-up,
    /// a deploy) do not all expire, and recompute, together, and every process writes the
    /// same TTL for the same entry. Needs an entry TTL; zero means no spread. Adds to
    /// [`Builder::entry_ttl_jitter`] when both are set.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let cache = fncache::Cache::builder("doc")
    ///     .memory()
    ///     .entry_ttl(Duration::from_secs(60))
    ///     .ttl_jitter(Duration::from_secs(10)) // each entry lives 60 to 70 s
    ///     .build_blocking()?;
    /// assert_eq!(cache.get_or_compute("f", &1, || 2)?, 2);
    /// # Ok::<(), fncache::Error>(())
    /// ```
    pub fn ttl_jitter(mut self, jitter: Duration) -> Self {
        self.behaviour.ttl_jitter_ms = crate::duration::store_millis(jitter);
        self
    }

    /// Spreads entry TTLs by up to `fraction` of the entry TTL (`0.1`: an entry of a 60 s TTL
    /// lives 60 to 66 s), decided per entry as with [`Builder::ttl_jitter`]. A fraction above
    /// 1 counts as 1; NaN or below 0 as 0.
    pub fn entry_ttl_jitter(mut self, fraction: f64) -> Self {
        self.behaviour.entry_ttl_jitter_ppm = CallOptions::new()
            .entry_ttl_jitter(fraction)
            .entry_ttl_jitter_ppm
            .unwrap_or(0);
        self
    }

    /// `false`: the cache starts switched off. Every call then runs its function, with no
    /// store traffic at all (no lookup, no put, no lease); `put` and `expire` do nothing, and
    /// the stats still count calls and executions. Switch it at run time with
    /// `set_enabled` on either front-end. Without this setting, a cache starts enabled unless
    /// the environment variable [`DISABLED_ENV`] (`FNCACHE_DISABLED`) is `1` or `true` when it
    /// is built.
    ///
    /// ```
    /// let cache = fncache::Cache::builder("doc").memory().enabled(false).build_blocking()?;
    /// assert_eq!(cache.get_or_compute("f", &1, || 2)?, 2);
    /// assert_eq!(cache.get_or_compute("f", &1, || 3)?, 3); // ran again: nothing was stored
    /// cache.set_enabled(true);
    /// assert_eq!(cache.get_or_compute("f", &1, || 4)?, 4);
    /// assert_eq!(cache.get_or_compute("f", &1, || 5)?, 4); // cached
    /// assert_eq!((cache.stats().calls, cache.stats().execs), (4, 3));
    /// # Ok::<(), fncache::Error>(())
    /// ```
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = Some(enabled);
        self
    }

    /// When the backend is skipped after consecutive failures, and for how long
    /// ([`CircuitBreaker::DEFAULT`]: 5 failures, 1 s; [`CircuitBreaker::DISABLED`]).
    pub fn circuit_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.circuit_breaker = breaker;
        self
    }

    /// `true` (default): with Redis, this process adds its counters to the cache's shared
    /// counters and records its functions in the cache's registry (see
    /// [`Cache::shared_stats`]; the `fncache` CLI lists caches by their registries).
    /// `false`: it sends neither (it still reads what other processes sent).
    pub fn shared_stats(mut self, on: bool) -> Self {
        self.shared_stats = on;
        self
    }

    /// Builds the async front-end. No connection is made and no runtime is needed yet.
    pub fn build(self) -> Result<Cache, Error> {
        let (core, backend) = self.validate(Front::Async)?;
        Ok(Cache::from_parts(core, backend))
    }

    /// Builds the blocking front-end. No connection is made; it never needs a runtime.
    pub fn build_blocking(self) -> Result<blocking::Cache, Error> {
        let (core, backend) = self.validate(Front::Blocking)?;
        Ok(blocking::Cache::from_parts(core, backend))
    }

    /// The core a cache would get, for tests of the call machine.
    #[cfg(test)]
    pub(crate) fn core_for_tests(self) -> Result<(Core, Backend), Error> {
        self.memory().validate(Front::Blocking)
    }

    pub(crate) fn validate(self, front: Front) -> Result<(Core, Backend), Error> {
        if self.name.is_empty() {
            return Err(Error::config("the cache name must not be empty"));
        }
        if self.prefix.is_empty() {
            return Err(Error::config("the key prefix must not be empty"));
        }
        check_prefix(&self.prefix)?;
        if self.maxsize == 0 {
            return Err(Error::config("maxsize must be greater than 0"));
        }
        if self.ttl.is_some_and(|t| t.is_zero()) {
            return Err(Error::config(
                "ttl must be greater than zero (use `no_ttl()` for structures that never expire)",
            ));
        }
        self.behaviour.validate()?;
        let behaviour = self.behaviour.normalized();
        let enabled = match self.enabled {
            Some(enabled) => enabled,
            None => !disabled_by(connect::process_env(DISABLED_ENV)?)?,
        };
        if self.layout.is_cluster() {
            check_hash_tag_free("cache name", &self.name)?;
            check_hash_tag_free("key prefix", &self.prefix)?;
        }
        let resolved = connect::resolve(
            &self.store,
            &self.connect,
            self.layout,
            front,
            behaviour.op_timeout,
            connect::process_env,
        )?;
        let backend = match resolved {
            Resolved::Redis(target) => Backend::Redis(target),
            Resolved::Memory => Backend::Memory(Arc::clone(&self.clock)),
        };
        let naming = Naming::new(&self.prefix, &self.name, self.policy, self.layout);
        let near = match self.near_cache {
            None => None,
            Some(maxsize) => {
                check_near(
                    maxsize,
                    self.near_cache_ttl,
                    (self.ttl, self.update_ttl),
                    self.layout,
                    &backend,
                )?;
                Some(Arc::new(crate::near::Near::new(
                    crate::near::NearSettings {
                        maxsize: u64::try_from(maxsize).unwrap_or(u64::MAX),
                        ttl: crate::duration::setting(self.near_cache_ttl),
                    },
                    self.ttl.map(crate::duration::setting),
                    self.policy.rules().touch,
                    naming.near_channel(),
                    matches!(&backend, Backend::Redis(target) if target.is_cluster())
                        && self.layout == Layout::ClusterPerFunction,
                )))
            }
        };
        let record = crate::registry::CacheRecord::new(
            &self.name,
            &self.prefix,
            self.policy,
            self.layout,
            u64::try_from(self.maxsize).unwrap_or(u64::MAX),
            self.ttl,
            self.update_ttl,
            self.codec,
            behaviour.entry_ttl,
        );
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let core = Core {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            settings: StoreSettings {
                rules: self.policy.rules(),
                maxsize: u64::try_from(self.maxsize).unwrap_or(u64::MAX),
                ttl: self.ttl.map(crate::duration::setting),
                slide: self.update_ttl,
                touch_batch: self.touch_batch.map(crate::duration::setting),
                naming,
            },
            near,
            abandoned: Default::default(),
            policy: self.policy,
            layout: self.layout,
            codec: self.codec,
            behaviour,
            breaker: Breaker::new(self.circuit_breaker),
            flights: Default::default(),
            workers: Workers::new(4, 256),
            last_failure: Default::default(),
            stats: StatsRegistry::new(&self.name),
            telemetry: Telemetry::new(&self.name),
            warnings: Default::default(),
            shared: crate::shared_stats::SharedCounters::new(
                &record,
                self.shared_stats && matches!(backend, Backend::Redis(_)),
            ),
            enabled: std::sync::atomic::AtomicBool::new(enabled),
            name: self.name,
        };
        Ok((core, backend))
    }
}

/// Refuses a near cache where it cannot keep its guarantees (see [`Builder::near_cache`]).
fn check_near(
    maxsize: usize,
    ttl: Duration,
    (structure_ttl, sliding): (Option<Duration>, bool),
    layout: Layout,
    backend: &Backend,
) -> Result<(), Error> {
    match backend {
        Backend::Memory(_) => {
            return Err(Error::config(
                "near_cache needs Redis: the embedded store keeps its entries in the process \
                 already (name a Redis server with `.redis(url)`, or drop `.near_cache(..)`)",
            ));
        }
        Backend::Redis(target) if !target.can_subscribe() => {
            return Err(Error::config(
                "near_cache needs a Redis server or cluster reached by URL (or a server by \
                 `redis_client`), where it opens its invalidation link (a connection of its \
                 own): your cluster client, ConnectionManager or r2d2 pool do not say how",
            ));
        }
        Backend::Redis(target)
            if target.is_cluster()
                && !matches!(layout, Layout::Cluster | Layout::ClusterPerFunction) =>
        {
            return Err(Error::config(
                "near_cache on a cluster needs a cluster layout, whose structures share the \
                 hash slot of their near channel (sharded pub/sub)",
            ));
        }
        Backend::Redis(_) => {}
    }
    if maxsize == 0 {
        return Err(Error::config("near_cache maxsize must be greater than 0"));
    }
    if ttl.is_zero() {
        return Err(Error::config("near_cache_ttl must be greater than zero"));
    }
    if structure_ttl.is_some() && !sliding {
        return Err(Error::config(
            "near_cache needs a sliding structure TTL (`update_ttl(true)`, the default) or none \
             (`no_ttl()`): with a fixed one, a near copy could not know when its structure ends",
        ));
    }
    Ok(())
}

/// Whether a value of [`DISABLED_ENV`] turns caches off: `1` or `true` does, unset, empty,
/// `0` or `false` does not; anything else is a configuration error rather than a guess.
fn disabled_by(value: Option<String>) -> Result<bool, Error> {
    match value.as_deref().map(str::trim) {
        None | Some("" | "0") => Ok(false),
        Some("1") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) => Err(Error::config(format!(
            "{DISABLED_ENV}={v:?}: expected 1 or true (disable caches) or 0 or false"
        ))),
    }
}

/// Which store a built cache uses.
#[derive(Debug)]
pub(crate) enum Backend {
    Memory(Arc<dyn Clock>),
    Redis(RedisTarget),
}

#[cfg(test)]
mod disabled_env_tests {
    use super::disabled_by;

    #[test]
    fn only_one_and_true_disable_and_nonsense_is_an_error() {
        let of = |v: Option<&str>| disabled_by(v.map(str::to_owned));
        for on in [None, Some(""), Some("0"), Some("false"), Some(" FALSE ")] {
            assert!(!of(on).unwrap(), "{on:?}");
        }
        for off in [Some("1"), Some("true"), Some("True")] {
            assert!(of(off).unwrap(), "{off:?}");
        }
        assert!(of(Some("yes please")).is_err());
    }
}
