//! Per-call options: settings of one function that override the cache's defaults.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::ser::{self, Impossible};

use crate::codec::Codec;
use crate::key::Member;

/// Options of one cached function, overriding the cache's defaults for its calls. Pass them to
/// `get_or_compute_with` / `try_get_or_compute_with`; `#[fncache::cached]` builds them from
/// its options of the same names.
///
/// Durations follow the builder's rule (see [Durations](crate::Builder#durations)): whole
/// milliseconds rounded up, at most [`MAX_DURATION`](crate::MAX_DURATION); a zero one makes
/// the call skip the cache (counted in `stats().errors`; strict calls return the
/// [`ErrorKind::Config`](crate::ErrorKind::Config) error, which names the setting).
///
/// ```
/// use std::time::Duration;
/// use fncache::{CallOptions, Codec};
///
/// let cache = fncache::Cache::builder("doc").build_blocking()?;
/// let options = CallOptions::new()
///     .entry_ttl(Duration::from_secs(90))
///     .codec(Codec::Json)
///     .cache_none(false);
/// let found: Option<u64> = cache.get_or_compute_with(&options, "find", &(7u64,), || None)?;
/// assert_eq!(found, None);
/// assert!(!cache.contains("find", &(7u64,))?); // `None` was not stored
/// # Ok::<(), fncache::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[must_use]
pub struct CallOptions {
    /// Time-to-live of each entry this function stores; `None` uses the cache's `entry_ttl`.
    pub entry_ttl: Option<Duration>,
    /// How this function's values are serialized; `None` uses the cache's codec.
    pub codec: Option<Codec>,
    /// `true` (default): a value that serializes as `None` is cached like any other.
    /// `false`: it is returned but not stored, so the next call computes again.
    pub cache_none: bool,
    /// Overrides [`Builder::refresh_after`](crate::Builder::refresh_after).
    pub refresh_after: Option<Duration>,
    /// Overrides [`Builder::lock_timeout`](crate::Builder::lock_timeout).
    pub lock_timeout: Option<Duration>,
    /// Overrides [`Builder::wait`](crate::Builder::wait).
    pub wait: Option<bool>,
    /// Overrides [`Builder::compute_timeout`](crate::Builder::compute_timeout).
    pub compute_timeout: Option<Duration>,
    /// Overrides [`Builder::max_stale`](crate::Builder::max_stale).
    pub max_stale: Option<Duration>,
    /// Overrides [`Builder::fail_safe_throttle`](crate::Builder::fail_safe_throttle).
    pub fail_safe_throttle: Option<Duration>,
    /// Overrides [`Builder::op_timeout`](crate::Builder::op_timeout).
    pub op_timeout: Option<Duration>,
    /// Overrides [`Builder::strict`](crate::Builder::strict).
    pub strict: Option<bool>,
    /// Overrides [`Builder::stampede_protection`](crate::Builder::stampede_protection).
    pub stampede_protection: Option<bool>,
    /// Overrides [`Builder::ttl_jitter`](crate::Builder::ttl_jitter).
    pub ttl_jitter: Option<Duration>,
    /// Overrides [`Builder::entry_ttl_jitter`](crate::Builder::entry_ttl_jitter), in
    /// millionths of the entry TTL (set it with [`CallOptions::entry_ttl_jitter`]).
    pub entry_ttl_jitter_ppm: Option<u32>,
    /// How long a negative entry (an error that `try_get_or_compute_negative` was told to
    /// cache) lives; the negative methods need it.
    pub negative_ttl: Option<Duration>,
    /// `true` (default): the cache's near cache, if it has one
    /// ([`Builder::near_cache`](crate::Builder::near_cache)), serves and keeps copies of this
    /// function's entries. `false`: every call goes to Redis.
    pub near_cache: bool,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions::new()
    }
}

impl CallOptions {
    /// The cache's defaults: no override, `None` is cached.
    pub const fn new() -> CallOptions {
        CallOptions {
            entry_ttl: None,
            codec: None,
            cache_none: true,
            refresh_after: None,
            lock_timeout: None,
            wait: None,
            compute_timeout: None,
            max_stale: None,
            fail_safe_throttle: None,
            op_timeout: None,
            strict: None,
            stampede_protection: None,
            ttl_jitter: None,
            entry_ttl_jitter_ppm: None,
            negative_ttl: None,
            near_cache: true,
        }
    }

    /// Entries of this function live `ttl` (must be greater than zero; a zero TTL makes the
    /// call skip the cache, counted as an error).
    pub const fn entry_ttl(mut self, ttl: Duration) -> CallOptions {
        self.entry_ttl = Some(ttl);
        self
    }

    /// Values of this function are serialized with `codec`.
    pub const fn codec(mut self, codec: Codec) -> CallOptions {
        self.codec = Some(codec);
        self
    }

    /// Whether a value that serializes as `None` (an `Option::None`, also inside an `Ok`) is
    /// stored.
    pub const fn cache_none(mut self, cache_none: bool) -> CallOptions {
        self.cache_none = cache_none;
        self
    }

    /// Entries of this function become stale (served, and refreshed) after `after`.
    pub const fn refresh_after(mut self, after: Duration) -> CallOptions {
        self.refresh_after = Some(after);
        self
    }

    /// How long this function's lease lives and callers wait for another's computation.
    pub const fn lock_timeout(mut self, timeout: Duration) -> CallOptions {
        self.lock_timeout = Some(timeout);
        self
    }

    /// `false`: a cold miss answers the default at once and fills the cache in the background.
    pub const fn wait(mut self, wait: bool) -> CallOptions {
        self.wait = Some(wait);
        self
    }

    /// How long a recomputation may take before a stale fallback is served instead.
    pub const fn compute_timeout(mut self, timeout: Duration) -> CallOptions {
        self.compute_timeout = Some(timeout);
        self
    }

    /// How old (since written) a value may be when fail-safe serves it instead of an error; see
    /// [`Builder::max_stale`](crate::Builder::max_stale).
    pub const fn max_stale(mut self, max_stale: Duration) -> CallOptions {
        self.max_stale = Some(max_stale);
        self
    }

    /// After a failed refresh, how long before anyone tries again.
    pub const fn fail_safe_throttle(mut self, throttle: Duration) -> CallOptions {
        self.fail_safe_throttle = Some(throttle);
        self
    }

    /// How long one backend operation of this function may take.
    pub const fn op_timeout(mut self, timeout: Duration) -> CallOptions {
        self.op_timeout = Some(timeout);
        self
    }

    /// Whether backend failures of this function surface as errors.
    pub const fn strict(mut self, strict: bool) -> CallOptions {
        self.strict = Some(strict);
        self
    }

    /// Whether concurrent misses of one key share one computation.
    pub const fn stampede_protection(mut self, on: bool) -> CallOptions {
        self.stampede_protection = Some(on);
        self
    }

    /// Spreads this function's entry TTLs by up to `jitter` more; see
    /// [`Builder::ttl_jitter`](crate::Builder::ttl_jitter).
    pub const fn ttl_jitter(mut self, jitter: Duration) -> CallOptions {
        self.ttl_jitter = Some(jitter);
        self
    }

    /// Spreads this function's entry TTLs by up to `fraction` of the entry TTL more; see
    /// [`Builder::entry_ttl_jitter`](crate::Builder::entry_ttl_jitter).
    pub const fn entry_ttl_jitter(mut self, fraction: f64) -> CallOptions {
        self.entry_ttl_jitter_ppm = Some(jitter_ppm(fraction));
        self
    }

    /// Negative caching: an error that `try_get_or_compute_negative` is told to cache (say a
    /// `NotFound`) is stored for `ttl`, and served as that error until then. Zero: not stored.
    pub const fn negative_ttl(mut self, ttl: Duration) -> CallOptions {
        self.negative_ttl = Some(ttl);
        self
    }

    /// Whether the cache's near cache ([`Builder::near_cache`](crate::Builder::near_cache))
    /// serves and keeps copies of this function's entries (default `true`). `false` for a
    /// function whose every call must see Redis (its copies could lag a change by the few
    /// milliseconds an invalidation takes).
    pub const fn near_cache(mut self, on: bool) -> CallOptions {
        self.near_cache = on;
        self
    }

    /// No option is set (`== CallOptions::new()`), checked field by field so that the check
    /// stops at the first option set and costs a few instructions per field otherwise.
    pub(crate) fn is_default(&self) -> bool {
        let CallOptions {
            entry_ttl,
            codec,
            cache_none,
            refresh_after,
            lock_timeout,
            wait,
            compute_timeout,
            max_stale,
            fail_safe_throttle,
            op_timeout,
            strict,
            stampede_protection,
            ttl_jitter,
            entry_ttl_jitter_ppm,
            negative_ttl,
            near_cache,
        } = self;
        *cache_none
            && *near_cache
            && entry_ttl.is_none()
            && codec.is_none()
            && refresh_after.is_none()
            && lock_timeout.is_none()
            && wait.is_none()
            && compute_timeout.is_none()
            && max_stale.is_none()
            && fail_safe_throttle.is_none()
            && op_timeout.is_none()
            && strict.is_none()
            && stampede_protection.is_none()
            && ttl_jitter.is_none()
            && entry_ttl_jitter_ppm.is_none()
            && negative_ttl.is_none()
    }

    /// These options over a cache's `defaults`, as they take effect (see
    /// [`Behaviour::normalized`]).
    pub(crate) fn resolve(&self, defaults: &Behaviour) -> Behaviour {
        if self.is_default() {
            // The hot path: the cache's settings were normalized when it was built.
            return *defaults;
        }
        Behaviour {
            entry_ttl: self.entry_ttl.or(defaults.entry_ttl),
            refresh_after: self.refresh_after.or(defaults.refresh_after),
            lock_timeout: self.lock_timeout.unwrap_or(defaults.lock_timeout),
            wait: self.wait.unwrap_or(defaults.wait),
            compute_timeout: self.compute_timeout.or(defaults.compute_timeout),
            max_stale: self.max_stale.or(defaults.max_stale),
            fail_safe_throttle: self
                .fail_safe_throttle
                .unwrap_or(defaults.fail_safe_throttle),
            op_timeout: self.op_timeout.unwrap_or(defaults.op_timeout),
            strict: self.strict.unwrap_or(defaults.strict),
            stampede_protection: self
                .stampede_protection
                .unwrap_or(defaults.stampede_protection),
            ttl_jitter_ms: self
                .ttl_jitter
                .map_or(defaults.ttl_jitter_ms, crate::duration::store_millis),
            entry_ttl_jitter_ppm: self
                .entry_ttl_jitter_ppm
                .unwrap_or(defaults.entry_ttl_jitter_ppm),
        }
        .normalized()
    }
}

/// [`CallOptions`] with hooks that look at the value a function returned: whether it is
/// stored ([`TypedOptions::cache_if`]) and for how long ([`TypedOptions::entry_ttl_from`]).
/// Made by the [`CallOptions`] methods of the same names, typed by the value `T` their
/// closures take; pass it wherever `&CallOptions` goes (the `_with` methods and `put_with`).
///
/// The closures are `Send + Sync + 'static` (kept in an `Arc`), so options can be built once
/// and kept in a `static` or shared across tasks; cloning is cheap.
///
/// ```
/// use std::time::Duration;
/// use fncache::CallOptions;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Page { status: u16, max_age_secs: u64, body: String }
///
/// let options = CallOptions::new()
///     .cache_if(|page: &Page| page.status == 200) // errors pages are returned, not stored
///     .entry_ttl_from(|page| Duration::from_secs(page.max_age_secs)); // as Cache-Control says
/// let cache = fncache::Cache::builder("doc").memory().build_blocking()?;
/// let fetch = |status| Page { status, max_age_secs: 30, body: "hi".into() };
/// let page = cache.get_or_compute_with(&options, "fetch", &("/a",), || fetch(503))?;
/// assert_eq!(page.status, 503);
/// assert!(!cache.contains("fetch", &("/a",))?); // not stored
/// cache.get_or_compute_with(&options, "fetch", &("/a",), || fetch(200))?;
/// assert!(cache.contains("fetch", &("/a",))?); // stored, for 30 s
/// # Ok::<(), fncache::Error>(())
/// ```
///
/// A call with hooks refreshes and fills inline: its function does not run as background
/// work (`refresh_after` serves the stale value to everyone but the caller that refreshes;
/// `wait(false)` waits), so that every value that is stored has passed the hooks.
#[must_use]
pub struct TypedOptions<T> {
    options: CallOptions,
    cache_if: Option<Hook<T, bool>>,
    /// `None` from it: the options' own entry TTL (negative caching answers so for `Ok`).
    entry_ttl_from: Option<Hook<T, Option<Duration>>>,
    /// `None` from it: no refresh-after of the entry's own (negative caching, for `Err`).
    refresh_after_from: Option<Hook<T, Option<Duration>>>,
    /// The tags of the entry a call stores (see [`CallOptions::tags`]).
    tags: Vec<String>,
}

/// A closure over a value, shareable across threads and tasks.
type Hook<T, R> = Arc<dyn Fn(&T) -> R + Send + Sync>;

impl<T> Clone for TypedOptions<T> {
    fn clone(&self) -> Self {
        TypedOptions {
            options: self.options,
            cache_if: self.cache_if.clone(),
            entry_ttl_from: self.entry_ttl_from.clone(),
            refresh_after_from: self.refresh_after_from.clone(),
            tags: self.tags.clone(),
        }
    }
}

impl<T> std::fmt::Debug for TypedOptions<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedOptions")
            .field("options", &self.options)
            .field("cache_if", &self.cache_if.is_some())
            .field("entry_ttl_from", &self.entry_ttl_from.is_some())
            .field("refresh_after_from", &self.refresh_after_from.is_some())
            .field("tags", &self.tags)
            .finish()
    }
}

impl CallOptions {
    /// Stores only the values for which `keep` answers `true`; any other value is returned
    /// (and handed to this process's callers waiting for it) but not stored, so the next call
    /// computes again. For `Result` functions it sees the `Ok` value (errors are never stored).
    pub fn cache_if<T>(self, keep: impl Fn(&T) -> bool + Send + Sync + 'static) -> TypedOptions<T> {
        TypedOptions::from(self).cache_if(keep)
    }

    /// Each stored value lives as long as `ttl` answers for it (in place of the entry TTL,
    /// e.g. from an upstream `Cache-Control: max-age`); jitter and `max_stale` apply to it as
    /// to the entry TTL. A zero answer means the value is not stored.
    pub fn entry_ttl_from<T>(
        self,
        ttl: impl Fn(&T) -> Duration + Send + Sync + 'static,
    ) -> TypedOptions<T> {
        TypedOptions::from(self).entry_ttl_from(ttl)
    }

    /// Each stored value goes stale (see [`Builder::refresh_after`](crate::Builder::refresh_after))
    /// as long after it was written as `after` answers for it, in place of the options'
    /// `refresh_after` for that entry (e.g. from an upstream `Cache-Control:
    /// stale-while-revalidate`); the entry carries it, so every process and both stores agree.
    /// A stale value is served while one caller refreshes it (inline: see [`TypedOptions`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use fncache::CallOptions;
    ///
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct Page { fresh_secs: u64, body: String }
    ///
    /// let options = CallOptions::new().refresh_after_from(|p: &Page| Duration::from_secs(p.fresh_secs));
    /// let cache = fncache::Cache::builder("doc").memory().build_blocking()?;
    /// let page = cache.get_or_compute_with(&options, "page", &("/",), || Page {
    ///     fresh_secs: 30,
    ///     body: "hi".into(),
    /// })?;
    /// assert_eq!(page.body, "hi"); // stored, fresh for 30 s, then refreshed on use
    /// # Ok::<(), fncache::Error>(())
    /// ```
    pub fn refresh_after_from<T>(
        self,
        after: impl Fn(&T) -> Duration + Send + Sync + 'static,
    ) -> TypedOptions<T> {
        TypedOptions::from(self).refresh_after_from(after)
    }

    /// Tags the entry the call stores, so that [`Cache::invalidate_tag`](crate::Cache::invalidate_tag)
    /// removes it together with every other entry carrying one of these tags (in every
    /// structure of the cache). A put replaces the tags an entry had; duplicates count once.
    ///
    /// Tags are data of one call (`user:7`), so they live in [`TypedOptions`] beside the hooks
    /// and leave [`CallOptions`] `Copy`: a call without tags pays nothing for them. As with
    /// the hooks, a tagged call refreshes and fills inline (never as background work, whose
    /// put would not carry the tags).
    ///
    /// ```
    /// use fncache::CallOptions;
    ///
    /// let cache = fncache::Cache::builder("tags-doc").memory().build_blocking()?;
    /// let profile = |id: u64| -> String { format!("profile {id}") };
    /// let options = CallOptions::new().tags(["user:7"]);
    /// cache.get_or_compute_with(&options, "profile", &(7,), || profile(7))?;
    /// let orders = CallOptions::new().tags(["user:7", "orders"]);
    /// cache.get_or_compute_with(&orders, "orders", &(7,), || vec![1, 2])?;
    /// assert_eq!(cache.invalidate_tag("user:7")?, 2); // both entries are gone
    /// assert!(!cache.contains("profile", &(7,))?);
    /// # Ok::<(), fncache::Error>(())
    /// ```
    pub fn tags<T, I>(self, tags: I) -> TypedOptions<T>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        TypedOptions::from(self).tags(tags)
    }
}

impl<T> From<CallOptions> for TypedOptions<T> {
    fn from(options: CallOptions) -> Self {
        TypedOptions {
            options,
            cache_if: None,
            entry_ttl_from: None,
            refresh_after_from: None,
            tags: Vec::new(),
        }
    }
}

impl<T> TypedOptions<T> {
    /// See [`CallOptions::cache_if`].
    pub fn cache_if(mut self, keep: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.cache_if = Some(Arc::new(keep));
        self
    }

    /// See [`CallOptions::entry_ttl_from`].
    pub fn entry_ttl_from(mut self, ttl: impl Fn(&T) -> Duration + Send + Sync + 'static) -> Self {
        self.entry_ttl_from = Some(Arc::new(move |value: &T| Some(ttl(value))));
        self
    }

    /// See [`CallOptions::refresh_after_from`].
    pub fn refresh_after_from(
        mut self,
        after: impl Fn(&T) -> Duration + Send + Sync + 'static,
    ) -> Self {
        self.refresh_after_from = Some(Arc::new(move |value: &T| Some(after(value))));
        self
    }

    /// See [`CallOptions::tags`]: these tags replace any given before.
    pub fn tags<I>(mut self, tags: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// The options without their hooks.
    pub fn options(&self) -> &CallOptions {
        &self.options
    }

    /// The tags the call's entry is stored with.
    pub(crate) fn tag_list(&self) -> &[String] {
        &self.tags
    }

    /// What the hooks say of `value`: `None` when it is not to be stored, else how it is
    /// stored.
    pub(crate) fn judge(&self, value: &T) -> Option<Verdict> {
        if self.cache_if.as_ref().is_some_and(|keep| !keep(value)) {
            return None;
        }
        let entry_ttl = match self.entry_ttl_from.as_ref().and_then(|ttl| ttl(value)) {
            Some(ttl) => {
                let ttl = crate::duration::setting(ttl);
                if ttl.is_zero() {
                    return None;
                }
                Some(ttl)
            }
            None => None,
        };
        let refresh_after = self
            .refresh_after_from
            .as_ref()
            .and_then(|after| after(value))
            // Zero is "stale at once": the least a store can write (0 would mean none).
            .map(|after| crate::duration::setting(after).max(Duration::from_millis(1)));
        Some(Verdict {
            entry_ttl,
            refresh_after,
        })
    }
}

/// How the hooks say a value is stored.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Verdict {
    /// Its entry TTL (`None`: the options' own).
    entry_ttl: Option<Duration>,
    /// Its own refresh-after (`None`: the lookup's).
    refresh_after: Option<Duration>,
}

impl Verdict {
    /// The behaviour of the put of the value judged.
    pub(crate) fn apply(self, behaviour: Behaviour) -> Behaviour {
        Behaviour {
            entry_ttl: self.entry_ttl.or(behaviour.entry_ttl),
            ..behaviour
        }
    }

    /// The refresh-after in milliseconds the put stores with its entry, 0 for none (at least
    /// a millisecond otherwise, see `judge`). Kept out of [`Behaviour`], which every call
    /// copies (past 128 bytes its copies cost more).
    pub(crate) fn refresh_ms(self) -> u64 {
        self.refresh_after
            .map_or(0, |after| crate::duration::store_millis(after).max(1))
    }
}

/// What negative caching stores of a computed result: a value, or an error `cache_err_if`
/// chooses, is `Ok` (stored, then served as itself); any other error passes through as `Err`.
/// One rule for both front-ends and the attribute.
pub(crate) fn negative_split<T, E>(
    result: Result<T, E>,
    cache_err_if: impl FnOnce(&E) -> bool,
) -> Result<Result<T, E>, E> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(e) if cache_err_if(&e) => Ok(Err(e)),
        Err(e) => Err(e),
    }
}

/// The options of a negative call (`try_get_or_compute_negative`): the value stored is the
/// whole `Result<T, E>` (only errors chosen to be cached reach the store as `Err`; serde
/// tells `Ok` from `Err`, so a stored error is never served as a value nor the reverse). An
/// `Ok` passes the caller's own hooks and lives the entry TTL; an `Err` lives `negative_ttl`.
pub(crate) fn negative_options<T: 'static, E: 'static, O: Options<T> + ?Sized>(
    options: &O,
) -> Result<TypedOptions<Result<T, E>>, crate::Error> {
    let call = *options.call_options();
    let Some(negative_ttl) = call.negative_ttl else {
        return Err(crate::Error::config(
            "negative caching needs a negative_ttl: set it with CallOptions::negative_ttl",
        ));
    };
    let (keep, ttl_from, refresh_from, tags) = match options.typed() {
        Some(typed) => (
            typed.cache_if.clone(),
            typed.entry_ttl_from.clone(),
            typed.refresh_after_from.clone(),
            typed.tags.clone(),
        ),
        None => (None, None, None, Vec::new()),
    };
    let mut out = TypedOptions::from(call);
    out.tags = tags;
    out.cache_if = Some(Arc::new(move |result: &Result<T, E>| match result {
        Ok(value) => keep.as_ref().is_none_or(|keep| keep(value)),
        Err(_) => true,
    }));
    out.entry_ttl_from = Some(Arc::new(move |result: &Result<T, E>| match result {
        Ok(value) => ttl_from.as_ref().and_then(|ttl| ttl(value)),
        Err(_) => Some(negative_ttl),
    }));
    if let Some(after) = refresh_from {
        out.refresh_after_from = Some(Arc::new(move |result: &Result<T, E>| match result {
            Ok(value) => after(value),
            Err(_) => None,
        }));
    }
    Ok(out)
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::CallOptions {}
    impl<T> Sealed for super::TypedOptions<T> {}
}

/// What the `_with` methods take as options for a function returning `T`: [`CallOptions`], or
/// [`TypedOptions<T>`] (options with hooks on the value). Sealed.
pub trait Options<T>: sealed::Sealed {
    /// The options without hooks.
    #[doc(hidden)]
    fn call_options(&self) -> &CallOptions;
    /// The options with hooks, if these are.
    #[doc(hidden)]
    fn typed(&self) -> Option<&TypedOptions<T>>;
}

impl<T> Options<T> for CallOptions {
    fn call_options(&self) -> &CallOptions {
        self
    }

    fn typed(&self) -> Option<&TypedOptions<T>> {
        None
    }
}

impl<T> Options<T> for TypedOptions<T> {
    fn call_options(&self) -> &CallOptions {
        &self.options
    }

    fn typed(&self) -> Option<&TypedOptions<T>> {
        Some(self)
    }
}

/// How calls behave around freshness, stampedes and failures: a cache's defaults, or one
/// call's resolved settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Behaviour {
    pub(crate) entry_ttl: Option<Duration>,
    pub(crate) refresh_after: Option<Duration>,
    pub(crate) lock_timeout: Duration,
    pub(crate) wait: bool,
    pub(crate) compute_timeout: Option<Duration>,
    pub(crate) max_stale: Option<Duration>,
    pub(crate) fail_safe_throttle: Duration,
    pub(crate) op_timeout: Duration,
    pub(crate) strict: bool,
    pub(crate) stampede_protection: bool,
    /// Entry TTLs are spread by up to this many milliseconds more (0: no spread; already a
    /// store setting, at most `MAX_DURATION`). Plain integers rather than `Option<Duration>`:
    /// the behaviour is copied into every call, and these keep it small.
    pub(crate) ttl_jitter_ms: u64,
    /// ... and by up to this many millionths of the entry TTL more (0: none).
    pub(crate) entry_ttl_jitter_ppm: u32,
}

impl Behaviour {
    /// The defaults of a new builder.
    pub(crate) const DEFAULT: Behaviour = Behaviour {
        entry_ttl: None,
        refresh_after: None,
        lock_timeout: Duration::from_secs(5),
        wait: true,
        compute_timeout: None,
        max_stale: None,
        fail_safe_throttle: Duration::from_secs(1),
        op_timeout: Duration::from_millis(250),
        strict: false,
        stampede_protection: true,
        ttl_jitter_ms: 0,
        entry_ttl_jitter_ppm: 0,
    };

    /// Every duration as it takes effect: in whole milliseconds, rounded up, and at most
    /// [`MAX_DURATION`](crate::MAX_DURATION) (zero stays zero, for [`Behaviour::validate`]),
    /// so that both stores read it alike and no deadline overflows.
    pub(crate) fn normalized(self) -> Behaviour {
        let setting = crate::duration::setting;
        Behaviour {
            entry_ttl: self.entry_ttl.map(setting),
            refresh_after: self.refresh_after.map(setting),
            lock_timeout: setting(self.lock_timeout),
            compute_timeout: self.compute_timeout.map(setting),
            max_stale: self.max_stale.map(setting),
            fail_safe_throttle: setting(self.fail_safe_throttle),
            op_timeout: setting(self.op_timeout),
            ..self
        }
    }

    /// The entry TTL of the entry at `member`: the entry TTL plus a share of the jitter that
    /// the member alone decides, so every process (and both stores) writes the same TTL for
    /// the same entry, while entries written together spread over the jitter instead of
    /// expiring together. Without jitter, the entry TTL as it is.
    pub(crate) fn entry_ttl_for(&self, member: &Member) -> Option<Duration> {
        let ttl = self.entry_ttl?;
        if self.ttl_jitter_ms == 0 && self.entry_ttl_jitter_ppm == 0 {
            return Some(ttl);
        }
        let ttl_ms = crate::duration::store_millis(ttl);
        let share = u128::from(ttl_ms) * u128::from(self.entry_ttl_jitter_ppm) / 1_000_000;
        let spread = u128::from(self.ttl_jitter_ms) + share;
        // A member is a digest: its first 8 bytes are a uniform fraction of 2^64.
        let [a, b, c, d, e, f, g, h, ..] = *member;
        let unit = u128::from(u64::from_le_bytes([a, b, c, d, e, f, g, h]));
        let extra = u64::try_from((spread * unit) >> 64).unwrap_or(u64::MAX);
        Some(crate::duration::setting(Duration::from_millis(
            ttl_ms.saturating_add(extra),
        )))
    }

    /// Durations that must not be zero, with their names, for validation.
    pub(crate) fn durations(&self) -> [(&'static str, Option<Duration>); 7] {
        [
            ("entry_ttl", self.entry_ttl),
            ("refresh_after", self.refresh_after),
            ("lock_timeout", Some(self.lock_timeout)),
            ("compute_timeout", self.compute_timeout),
            ("max_stale", self.max_stale),
            ("fail_safe_throttle", Some(self.fail_safe_throttle)),
            ("op_timeout", Some(self.op_timeout)),
        ]
    }

    /// The first zero duration, as a configuration error.
    pub(crate) fn validate(&self) -> Result<(), crate::Error> {
        match self
            .durations()
            .into_iter()
            .find(|(_, d)| d.is_some_and(|d| d.is_zero()))
        {
            Some((name, _)) => Err(crate::Error::config(format!(
                "{name} must be greater than zero"
            ))),
            None => Ok(()),
        }
    }
}

/// A jitter fraction in millionths: NaN and fractions below 0 count as 0, above 1 as 1.
const fn jitter_ppm(fraction: f64) -> u32 {
    if fraction.is_nan() || fraction <= 0.0 {
        0
    } else if fraction >= 1.0 {
        1_000_000
    } else {
        (fraction * 1_000_000.0) as u32
    }
}

/// True when `value` serializes as a bare `none` (an `Option::None`, possibly behind
/// references), whatever its type; no bytes are produced.
pub(crate) fn serializes_as_none<T: Serialize + ?Sized>(value: &T) -> bool {
    matches!(value.serialize(NoneProbe), Ok(true))
}

/// A serializer that answers `true` for `none` and `false` for any other first event.
struct NoneProbe;

/// Never produced: the probe answers every event without failing.
#[derive(Debug)]
struct ProbeError;

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("none probe")
    }
}

impl std::error::Error for ProbeError {}

impl ser::Error for ProbeError {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        ProbeError
    }
}

/// The answer of the probe to events that are not `none`.
macro_rules! not_none {
    ($($method:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $method(self, $(_: $arg),*) -> Result<bool, ProbeError> { Ok(false) })*
    };
}

impl ser::Serializer for NoneProbe {
    type Ok = bool;
    type Error = ProbeError;
    type SerializeSeq = Impossible<bool, ProbeError>;
    type SerializeTuple = Impossible<bool, ProbeError>;
    type SerializeTupleStruct = Impossible<bool, ProbeError>;
    type SerializeTupleVariant = Impossible<bool, ProbeError>;
    type SerializeMap = Impossible<bool, ProbeError>;
    type SerializeStruct = Impossible<bool, ProbeError>;
    type SerializeStructVariant = Impossible<bool, ProbeError>;

    fn serialize_none(self) -> Result<bool, ProbeError> {
        Ok(true)
    }

    not_none!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit(),
        serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str),
    );

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<bool, ProbeError> {
        Ok(false)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<bool, ProbeError> {
        Ok(false)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<bool, ProbeError> {
        Ok(false)
    }

    // Compound values are not `none`: refuse them before any element is visited.
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, ProbeError> {
        Err(ProbeError)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, ProbeError> {
        Err(ProbeError)
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, ProbeError> {
        Err(ProbeError)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, ProbeError> {
        Err(ProbeError)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, ProbeError> {
        Err(ProbeError)
    }

    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, ProbeError> {
        Err(ProbeError)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, ProbeError> {
        Err(ProbeError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_none_is_none() {
        assert!(serializes_as_none(&None::<u8>));
        assert!(serializes_as_none(&&None::<String>));
        assert!(!serializes_as_none(&Some(0u8)));
        assert!(!serializes_as_none(&Some(None::<u8>)));
        assert!(!serializes_as_none(&()));
        assert!(!serializes_as_none(&0u64));
        assert!(!serializes_as_none(""));
        assert!(!serializes_as_none(&Vec::<Option<u8>>::new()));
        assert!(!serializes_as_none(&(None::<u8>,)));
    }

    #[test]
    fn jitter_is_a_share_of_the_spread_decided_by_the_member() {
        let b = Behaviour {
            entry_ttl: Some(Duration::from_secs(10)),
            ttl_jitter_ms: 1000,
            entry_ttl_jitter_ppm: 500_000,
            ..Behaviour::DEFAULT
        };
        // The first 8 bytes, little-endian, as a fraction of 2^64.
        let at = |first: u64| {
            let mut m = [0xab; 16];
            m[..8].copy_from_slice(&first.to_le_bytes());
            b.entry_ttl_for(&m)
        };
        assert_eq!(at(0), Some(Duration::from_secs(10)));
        assert_eq!(at(1 << 63), Some(Duration::from_secs(13))); // half of 1 s + 5 s
        assert_eq!(at(u64::MAX), Some(Duration::from_millis(15_999)));
        let plain = Behaviour {
            entry_ttl: Some(Duration::from_secs(10)),
            ..Behaviour::DEFAULT
        };
        assert_eq!(
            plain.entry_ttl_for(&[0xff; 16]),
            Some(Duration::from_secs(10))
        );
        let no_ttl = Behaviour {
            entry_ttl: None,
            ..b
        };
        assert_eq!(
            no_ttl.entry_ttl_for(&[0xff; 16]),
            None,
            "jitter needs an entry TTL"
        );
        let huge = Behaviour {
            entry_ttl: Some(crate::MAX_DURATION),
            ..b
        };
        assert_eq!(huge.entry_ttl_for(&[0xff; 16]), Some(crate::MAX_DURATION));
    }

    #[test]
    fn jitter_fractions_are_clamped_to_zero_and_one() {
        assert_eq!(jitter_ppm(0.25), 250_000);
        assert_eq!(jitter_ppm(1.5), 1_000_000);
        assert_eq!(jitter_ppm(-1.0), 0);
        assert_eq!(jitter_ppm(f64::NAN), 0);
    }

    #[test]
    fn is_default_means_equal_to_new() {
        let set = [
            CallOptions::new().entry_ttl(Duration::from_secs(1)),
            CallOptions::new().codec(Codec::Json),
            CallOptions::new().cache_none(false),
            CallOptions::new().stampede_protection(true),
            CallOptions::new().ttl_jitter(Duration::ZERO),
            CallOptions::new().entry_ttl_jitter(0.5),
            CallOptions::new().negative_ttl(Duration::from_secs(1)),
            CallOptions::new().near_cache(false),
        ];
        assert!(CallOptions::new().is_default());
        for options in set {
            assert!(!options.is_default(), "{options:?}");
            assert_ne!(options, CallOptions::new());
        }
    }

    #[test]
    fn defaults_override_nothing() {
        let o = CallOptions::default();
        assert_eq!((o.entry_ttl, o.codec, o.cache_none), (None, None, true));
    }
}
