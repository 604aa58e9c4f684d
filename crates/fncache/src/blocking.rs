//! The blocking front-end: plain threads, no async runtime.

use std::convert::Infallible;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::builder::{Backend, Builder};
use crate::call::{Call, Ran, Ticket, drive_call};
use crate::core::{Core, Parts, Store, Surface};
use crate::error::Error;
use crate::key::{self, Member};
use crate::mode::{Mode, in_thread_ambient, thread_ambient};
use crate::options::{CallOptions, Options};
use crate::shared_stats::SharedStats;
use crate::stats::{Counters, Stats};
use crate::store::redis::BlockingRedis;
use crate::store::{StoreOp, StoreReply};

/// A function cache for synchronous code. Cheap to clone (an `Arc` inside); clones share
/// everything. Built with [`crate::Cache::builder`]`(..).build_blocking()`.
///
/// ```
/// let cache = fncache::Cache::builder("doc").memory().build_blocking()?;
/// let square = |x: u64| cache.get_or_compute("square", &(x,), || x * x);
/// assert_eq!(square(12)?, 144); // computed
/// assert_eq!(square(12)?, 144); // served from the cache
/// assert_eq!(cache.stats().hits, 1);
/// # Ok::<(), fncache::Error>(())
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<Parts<BlockingRedis>>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.describe(f, "blocking::Cache")
    }
}

impl Cache {
    /// Starts a builder; the same as [`crate::Cache::builder`].
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder::new(name)
    }

    pub(crate) fn from_parts(core: Core, backend: Backend) -> Cache {
        Cache {
            inner: Arc::new(Parts::new(core, backend, |target, near| {
                BlockingRedis::new(target).with_near(near)
            })),
        }
    }

    fn run(&self, op: StoreOp) -> Result<StoreReply, Error> {
        self.run_timed(op, self.inner.core.behaviour.op_timeout)
    }

    /// Sends one op within `timeout`, through the circuit breaker.
    fn run_timed(&self, op: StoreOp, timeout: Duration) -> Result<StoreReply, Error> {
        let core = &self.inner.core;
        let timer = core.telemetry.start(&op);
        let result = match &self.inner.store {
            Store::Memory(store) => Ok(store.apply(op)),
            Store::Redis(redis) => match core.gate() {
                Ok(()) => {
                    let result = redis.run(op, &core.settings, timeout);
                    core.report(&result);
                    self.flush_if_due();
                    result
                }
                Err(skipped) => Err(skipped),
            },
        };
        core.telemetry.stop(&core.name, timer, &result);
        result
    }

    /// Sends several ops of one structure together; see the async `run_many`.
    pub(crate) fn run_many(
        &self,
        ops: Vec<StoreOp>,
        timeout: Duration,
    ) -> Vec<Result<StoreReply, Error>> {
        let core = &self.inner.core;
        let timers = crate::batch::start_timers(core, &ops);
        let results = match &self.inner.store {
            Store::Memory(store) => ops.into_iter().map(|op| Ok(store.apply(op))).collect(),
            Store::Redis(redis) => {
                let n = ops.len();
                let results = match core.gate() {
                    Ok(()) => crate::batch::settle_round(
                        core,
                        n,
                        redis.run_many(ops, &core.settings, timeout),
                    ),
                    Err(skipped) => crate::batch::each(n, &skipped),
                };
                self.flush_if_due();
                results
            }
        };
        crate::batch::stop_timers(core, timers, &results);
        results
    }

    /// Sends this process's counters to the shared ones on a worker, when a batch is due.
    fn flush_if_due(&self) {
        if self.inner.core.shared.due() {
            // Weak: a queued batch never keeps a dropped cache alive (its drop sends the last
            // batch on the thread that drops it). A full queue skips this batch: the next one
            // carries its counts.
            let cache = Arc::downgrade(&self.inner);
            let _ = self.inner.core.workers.submit(Box::new(move || {
                if let Some(inner) = cache.upgrade() {
                    let _ = Cache { inner }.flush_shared();
                }
            }));
        }
    }

    /// Sends what this process's counters gained since the last batch to the shared ones.
    fn flush_shared(&self) -> Result<(), Error> {
        match &self.inner.store {
            Store::Memory(_) => Ok(()),
            Store::Redis(redis) => crate::shared_stats::flush_blocking(&self.inner.core, redis),
        }
    }

    /// Ends background work: stores its value (or keeps its lease for the fail-safe
    /// throttle) and counts what happened.
    fn finish_ticket<T: Serialize + DeserializeOwned>(&self, ticket: &Ticket, value: Option<&T>) {
        let (op, refused) = ticket.finish(value);
        let stored = op.map(|op| self.run_timed(op, ticket.op_timeout()));
        self.inner
            .core
            .close_ticket(ticket, stored, value.is_some(), refused.as_ref());
    }

    /// Returns the cached result of `function(args)`, computing and storing it on a miss.
    ///
    /// `function` is the identity of the function (include a version when its meaning
    /// changes); `args` is usually a tuple of the arguments. Backend failures do not surface
    /// (unless the cache is strict): the value is computed and returned.
    pub fn get_or_compute<A, T, F>(&self, function: &str, args: &A, compute: F) -> Result<T, Error>
    where
        A: Serialize + ?Sized,
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> T,
    {
        self.get_or_compute_with(&CallOptions::new(), function, args, compute)
    }

    /// [`Cache::get_or_compute`] with the function's own [`CallOptions`] (entry TTL, codec,
    /// whether `None` is cached) in place of the cache's defaults.
    pub fn get_or_compute_with<O, A, T, F>(
        &self,
        options: &O,
        function: &str,
        args: &A,
        compute: F,
    ) -> Result<T, Error>
    where
        O: Options<T> + ?Sized,
        A: Serialize + ?Sized,
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> T,
    {
        let result = self
            .try_get_or_compute_with(options, function, args, || Ok::<T, Infallible>(compute()))?;
        Ok(result.unwrap_or_else(|never| match never {}))
    }

    /// Like [`Cache::get_or_compute`] for a fallible function: an `Err` is passed through
    /// unchanged (inside the `Ok` of the cache's own result) and never cached. The cache's
    /// error and the function's stay apart here; [`Cache::get_or_try_compute`] returns the
    /// function's `Result<T, E>` with the cache's error converted into `E`, for `?`.
    pub fn try_get_or_compute<A, T, E, F>(
        &self,
        function: &str,
        args: &A,
        compute: F,
    ) -> Result<Result<T, E>, Error>
    where
        A: Serialize + ?Sized,
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Result<T, E>,
    {
        self.try_get_or_compute_with(&CallOptions::new(), function, args, compute)
    }

    /// [`Cache::try_get_or_compute`] with the function's own [`CallOptions`].
    pub fn try_get_or_compute_with<O, A, T, E, F>(
        &self,
        options: &O,
        function: &str,
        args: &A,
        compute: F,
    ) -> Result<Result<T, E>, Error>
    where
        O: Options<T> + ?Sized,
        A: Serialize + ?Sized,
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Result<T, E>,
    {
        self.call(options, function, key::member(function, args), compute)
    }

    /// Like [`Cache::try_get_or_compute`], with the cache's own failure folded into the
    /// function's error type (`E: From<fncache::Error>`), so that `?` fits: see
    /// [`crate::Cache::get_or_try_compute`].
    ///
    /// ```
    /// # #[derive(Debug)]
    /// enum AppError { Parse(std::num::ParseIntError), Cache(fncache::Error) }
    /// impl From<fncache::Error> for AppError {
    ///     fn from(e: fncache::Error) -> Self { AppError::Cache(e) }
    /// }
    /// fn parse(text: &str) -> Result<u64, AppError> {
    ///     text.parse().map_err(AppError::Parse)
    /// }
    ///
    /// fn doubled(cache: &fncache::blocking::Cache, text: &str) -> Result<u64, AppError> {
    ///     let n = cache.get_or_try_compute("parse", &(text,), || parse(text))?;
    ///     Ok(n * 2)
    /// }
    /// let cache = fncache::Cache::builder("doc").memory().build_blocking().unwrap();
    /// assert_eq!(doubled(&cache, "21").unwrap(), 42);
    /// assert!(matches!(doubled(&cache, "x"), Err(AppError::Parse(_))));
    /// ```
    pub fn get_or_try_compute<A, T, E, F>(
        &self,
        function: &str,
        args: &A,
        compute: F,
    ) -> Result<T, E>
    where
        A: Serialize + ?Sized,
        T: Serialize + DeserializeOwned,
        E: From<Error>,
        F: FnOnce() -> Result<T, E>,
    {
        self.get_or_try_compute_with(&CallOptions::new(), function, args, compute)
    }

    /// [`Cache::get_or_try_compute`] with the function's own [`CallOptions`].
    pub fn get_or_try_compute_with<O, A, T, E, F>(
        &self,
        options: &O,
        function: &str,
        args: &A,
        compute: F,
    ) -> Result<T, E>
    where
        O: Options<T> + ?Sized,
        A: Serialize + ?Sized,
        T: Serialize + DeserializeOwned,
        E: From<Error>,
        F: FnOnce() -> Result<T, E>,
    {
        match self.try_get_or_compute_with(options, function, args, compute) {
            Ok(result) => result,
            Err(error) => Err(E::from(error)),
        }
    }

    /// Negative caching: [`Cache::try_get_or_compute_with`] where an error for which
    /// `cache_err_if` answers `true` (a `NotFound`, say) is cached too, for the options'
    /// [`negative_ttl`](CallOptions::negative_ttl) (required: a configuration error without
    /// it), and served as that same error until then. Other errors pass through uncached, and
    /// a stale or expired value is still the fail-safe fallback when they happen. The entry
    /// holds the whole `Result<T, E>`, so `E` must be serializable, and a function cached this
    /// way must be cached this way by every caller (one value type per function identity, as
    /// always). The options' own hooks judge `Ok` values.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fncache::CallOptions;
    ///
    /// #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    /// enum LookupError { NotFound, Timeout }
    ///
    /// let cache = fncache::Cache::builder("doc").memory().build_blocking()?;
    /// let options = CallOptions::new().negative_ttl(Duration::from_secs(10));
    /// let not_found = |e: &LookupError| *e == LookupError::NotFound;
    /// let find = |answer: Result<u64, LookupError>| {
    ///     cache.try_get_or_compute_negative(&options, "find", &(7u64,), not_found, || answer)
    /// };
    /// assert_eq!(find(Err(LookupError::NotFound))?, Err(LookupError::NotFound));
    /// assert_eq!(find(Ok(1))?, Err(LookupError::NotFound)); // the cached error, for 10 s
    /// assert_eq!(find(Err(LookupError::Timeout))?, Err(LookupError::NotFound));
    /// # Ok::<(), fncache::Error>(())
    /// ```
    pub fn try_get_or_compute_negative<O, A, T, E, P, F>(
        &self,
        options: &O,
        function: &str,
        args: &A,
        cache_err_if: P,
        compute: F,
    ) -> Result<Result<T, E>, Error>
    where
        O: Options<T> + ?Sized,
        A: Serialize + ?Sized,
        T: Serialize + DeserializeOwned + 'static,
        E: Serialize + DeserializeOwned + 'static,
        P: FnOnce(&E) -> bool,
        F: FnOnce() -> Result<T, E>,
    {
        let options = crate::options::negative_options::<T, E, O>(options)?;
        let result = self.try_get_or_compute_with(&options, function, args, || {
            crate::options::negative_split(compute(), cache_err_if)
        })?;
        // Ok(Ok(v)): a value; Ok(Err(e)): an error, computed or cached; Err(e): one not cached.
        Ok(result.and_then(|result| result))
    }

    /// Like [`Cache::get_or_compute`] for an owned function (`Send + 'static`), which lets the
    /// cache run it in the background: a stale entry (see
    /// [`Builder::refresh_after`](crate::Builder::refresh_after)) is served at once while a
    /// worker thread refreshes it, and a recomputation can be abandoned after
    /// [`Builder::compute_timeout`](crate::Builder::compute_timeout) in favour of a stale
    /// fallback (it finishes and stores its value in the background).
    pub fn get_or_compute_owned<A, T, F>(
        &self,
        function: &str,
        args: &A,
        compute: F,
    ) -> Result<T, Error>
    where
        A: Serialize + ?Sized,
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let result =
            self.try_get_or_compute_owned(function, args, move || Ok::<T, Infallible>(compute()))?;
        Ok(result.unwrap_or_else(|never| match never {}))
    }

    /// [`Cache::get_or_compute_owned`] for a fallible function.
    pub fn try_get_or_compute_owned<A, T, E, F>(
        &self,
        function: &str,
        args: &A,
        compute: F,
    ) -> Result<Result<T, E>, Error>
    where
        A: Serialize + ?Sized,
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Send + 'static,
        F: FnOnce() -> Result<T, E> + Send + 'static,
    {
        self.try_get_or_compute_owned_with(&CallOptions::new(), None, function, args, compute)
    }

    /// [`Cache::try_get_or_compute_owned`] with the function's own [`CallOptions`] and a
    /// `default`: with `wait(false)`, a cold miss answers the default at once and fills the
    /// cache in the background.
    pub fn try_get_or_compute_owned_with<O, A, T, E, F>(
        &self,
        options: &O,
        default: Option<T>,
        function: &str,
        args: &A,
        compute: F,
    ) -> Result<Result<T, E>, Error>
    where
        O: Options<T> + ?Sized,
        A: Serialize + ?Sized,
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Send + 'static,
        F: FnOnce() -> Result<T, E> + Send + 'static,
    {
        let runner = Owned::new(compute);
        self.drive(
            options,
            function,
            key::member(function, args),
            runner,
            default,
        )
    }

    /// The one call path of this front-end; `S` says how failures surface (see
    /// `core::Surface`).
    pub(crate) fn call<O, S: Surface, T, E, F>(
        &self,
        options: &O,
        function: &str,
        member: Result<Member, Error>,
        compute: F,
    ) -> Result<Result<T, E>, S>
    where
        O: Options<T> + ?Sized,
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Result<T, E>,
    {
        self.drive(options, function, member, Borrowed(Some(compute)), None)
    }

    /// Walks a [`Call`] to its end: the only place this front-end waits, sleeps or runs the
    /// function.
    pub(crate) fn drive<O, S: Surface, T, E, R>(
        &self,
        options: &O,
        function: &str,
        member: Result<Member, Error>,
        mut runner: R,
        default: Option<T>,
    ) -> Result<Result<T, E>, S>
    where
        O: Options<T> + ?Sized,
        T: Serialize + DeserializeOwned,
        R: Runner<T, E>,
    {
        let core = &self.inner.core;
        let ambient = thread_ambient();
        let mut call: Call<'_, S, T> =
            core.begin(function, member, options, &ambient, R::OWNED, default)?;
        drive_call!(self, call, runner, sleep: thread::sleep, follow: wait_blocking)
    }

    /// Is a live entry cached for `function(args)`? Changes no order, score or TTL.
    pub fn contains<A: Serialize + ?Sized>(&self, function: &str, args: &A) -> Result<bool, Error> {
        self.contains_member(function, key::member(function, args)?)
    }

    pub(crate) fn contains_member(&self, function: &str, member: Member) -> Result<bool, Error> {
        self.run(self.inner.core.peek_op(function, member))?
            .into_flag()
    }

    /// Stores `value` as the result of `function(args)` without calling anything or reading
    /// the cache (Spring's `@CachePut`): the entry is written as a call would write it
    /// (codec, entry TTL and jitter, `max_stale`, evicting by policy when full), replacing
    /// any entry there. `Ok(true)` when stored; `Ok(false)` when nothing was to be stored:
    /// the cache is switched off ([`Cache::set_enabled`]). A value its codec cannot give back
    /// exactly, and a backend failure, are errors (counted in `stats().errors`).
    ///
    /// ```
    /// let cache = fncache::Cache::builder("doc").memory().build_blocking()?;
    /// assert!(cache.put("user", &(7u64,), &"ada".to_owned())?);
    /// let name: String = cache.get_or_compute("user", &(7u64,), || unreachable!())?;
    /// assert_eq!(name, "ada");
    /// # Ok::<(), fncache::Error>(())
    /// ```
    pub fn put<A, T>(&self, function: &str, args: &A, value: &T) -> Result<bool, Error>
    where
        A: Serialize + ?Sized,
        T: Serialize + DeserializeOwned,
    {
        self.put_with(&CallOptions::new(), function, args, value)
    }

    /// [`Cache::put`] under the function's own [`CallOptions`] (codec, entry TTL, jitter,
    /// `max_stale`, `cache_none`): pass the options its calls use, so that the put writes
    /// what a call would (a `None` that `cache_none(false)` leaves out is not stored:
    /// `Ok(false)`).
    pub fn put_with<O, A, T>(
        &self,
        options: &O,
        function: &str,
        args: &A,
        value: &T,
    ) -> Result<bool, Error>
    where
        O: Options<T> + ?Sized,
        A: Serialize + ?Sized,
        T: Serialize + DeserializeOwned,
    {
        self.put_member(options, function, key::member(function, args)?, value)
    }

    pub(crate) fn put_member<O, T: Serialize + DeserializeOwned>(
        &self,
        options: &O,
        function: &str,
        member: Member,
        value: &T,
    ) -> Result<bool, Error>
    where
        O: Options<T> + ?Sized,
    {
        let core = &self.inner.core;
        match core.put_op(function, member, options, value) {
            Ok(Some(op)) => core.put_done(function, self.run(op)),
            Ok(None) => Ok(false),
            Err(e) => core.put_done(function, Err(e)),
        }
    }

    /// Soft invalidation: marks the entry of `function(args)` expired but keeps it as a
    /// fail-safe fallback. The next call recomputes it; if that fails, the old value is
    /// served instead of the error, for as long as the entry would have been kept anyway (its
    /// entry TTL, or [`Builder::max_stale`](crate::Builder::max_stale) past its write).
    /// `Ok(true)` if a live entry was marked; `Ok(false)` if there was none, or the cache is
    /// switched off. Compare [`Cache::invalidate`], which removes the entry.
    ///
    /// ```
    /// let cache = fncache::Cache::builder("doc").memory().build_blocking()?;
    /// cache.get_or_compute("price", &1, || 10u64)?;
    /// assert!(cache.expire("price", &1)?);
    /// assert!(!cache.contains("price", &1)?); // no longer served as is
    /// assert_eq!(cache.get_or_compute("price", &1, || 11u64)?, 11); // recomputed
    ///
    /// assert!(cache.expire("price", &1)?);
    /// let failed: Result<u64, &str> = cache.try_get_or_compute("price", &1, || Err("down"))?;
    /// assert_eq!(failed, Ok(11)); // the old value, as a fallback
    /// # Ok::<(), fncache::Error>(())
    /// ```
    pub fn expire<A: Serialize + ?Sized>(&self, function: &str, args: &A) -> Result<bool, Error> {
        self.expire_member(function, key::member(function, args)?)
    }

    pub(crate) fn expire_member(&self, function: &str, member: Member) -> Result<bool, Error> {
        match self.inner.core.expire_op(function, member) {
            Some(op) => self.run(op)?.into_flag(),
            None => Ok(false),
        }
    }

    /// Switches the cache off (`false`) or on at run time: off, every call runs its function
    /// with no store traffic, as [`Builder::enabled`](crate::Builder::enabled) describes.
    /// Clones share the switch.
    pub fn set_enabled(&self, enabled: bool) {
        self.inner.core.set_enabled(enabled);
    }

    /// Is the cache switched on?
    pub fn is_enabled(&self) -> bool {
        self.inner.core.is_enabled()
    }

    /// Removes the entry of `function(args)`; `true` if a live entry was there.
    pub fn invalidate<A: Serialize + ?Sized>(
        &self,
        function: &str,
        args: &A,
    ) -> Result<bool, Error> {
        self.invalidate_member(function, key::member(function, args)?)
    }

    pub(crate) fn invalidate_member(&self, function: &str, member: Member) -> Result<bool, Error> {
        self.run(self.inner.core.remove_op(function, member))?
            .into_flag()
    }

    /// Removes every entry tagged `tag` (see [`CallOptions::tags`](crate::CallOptions::tags)),
    /// of every function and in every structure of the cache; returns how many live entries
    /// were removed. Each structure is cleared at once (one script on Redis, found as
    /// [`Cache::len`] finds them: one per hash slot on a cluster), so a put of the tag lands
    /// wholly before or after it. A tagged value whose call looked up before the invalidation
    /// and stores after it (it may have been computed from the data the tag stands for, as it
    /// was before the change) is returned to its caller but not stored, in this process or
    /// any other. So invalidate after the change is visible to computations.
    ///
    /// Any tag's invalidation refuses such late puts of every tag in the structures it
    /// visits (the store keeps one time per structure, not one per tag, so its bookkeeping
    /// stays bounded). In the per-function layouts a structure with no keys at all (a function
    /// never cached, or whose entries all expired) is not visited, so a late put there is
    /// stored; an explicit [`Cache::put`] is never refused.
    pub fn invalidate_tag(&self, tag: &str) -> Result<usize, Error> {
        Core::count(self.run(Core::invalidate_tag_op(tag)))
    }

    /// Live entries of the whole cache (all functions, all structures).
    pub fn len(&self) -> Result<usize, Error> {
        Core::count(self.run(StoreOp::Len))
    }

    /// True when the cache holds no live entry.
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// Removes every entry of this cache; returns how many live entries were removed. Its
    /// registry and shared counters stay (see [`Cache::shared_stats`]): they describe the
    /// functions, not the entries, and expire a week after the last process used them.
    pub fn purge(&self) -> Result<usize, Error> {
        Core::count(self.run(StoreOp::Purge))
    }

    /// Removes every entry of one function; returns how many live entries were removed.
    ///
    /// Needs [`Layout::PerFunction`](crate::Layout::PerFunction): with the `Shared` layout the
    /// entries of all functions are mixed in one structure, and this returns an error of kind
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) (use [`Cache::purge`] there).
    pub fn purge_function(&self, function: &str) -> Result<usize, Error> {
        Core::count(self.run(self.inner.core.purge_function_op(function)?))
    }

    /// Reclaims the space of entries whose per-entry TTL has passed; returns how many.
    pub fn vacuum(&self) -> Result<usize, Error> {
        Core::count(self.run(StoreOp::Vacuum))
    }

    /// Counts and logs a failure that has no caller to return it to (see `Core::absorb`).
    pub(crate) fn absorb(&self, function: &str, what: &str, error: &Error) {
        self.inner
            .core
            .absorb(function, &thread_ambient(), what, error);
    }

    /// Counters since the cache was built.
    pub fn stats(&self) -> Stats {
        self.inner.core.total_stats()
    }

    /// Counters of this cache summed over every process that uses its Redis store, by
    /// function: each process adds its own to them in batches, at most once a second and when
    /// its last handle of the cache is dropped, so other processes' most recent calls may not
    /// be counted yet; this process's own are sent first. With the embedded store, this
    /// process's counters. An error when the store cannot be read (never for calls: counting
    /// fails open).
    ///
    /// ```
    /// let cache = fncache::Cache::builder("shared-doc").memory().build_blocking()?;
    /// cache.get_or_compute("f", &(1,), || 1)?;
    /// assert_eq!(cache.shared_stats()?.total.calls, 1);
    /// # Ok::<(), fncache::Error>(())
    /// ```
    pub fn shared_stats(&self) -> Result<SharedStats, Error> {
        let core = &self.inner.core;
        match &self.inner.store {
            Store::Memory(_) => Ok(SharedStats::local(core)),
            Store::Redis(redis) => {
                crate::shared_stats::flush_blocking(core, redis)?;
                let request = crate::shared_stats::read_request(core);
                SharedStats::from_reply(redis.send(&request, core.behaviour.op_timeout)?)
            }
        }
    }

    /// Counters of one function since the cache was built, or `None` if this cache does not
    /// know `function`: it is misspelt, belongs to another cache, or has not been called (nor
    /// had its `{fn}_stats()` asked) since the cache was built.
    ///
    /// `function` is the name given to the explicit API, or for a function decorated with
    /// `#[fncache::cached]` its path as written: `module_path!()::fn_name` (or its `name = ".."`),
    /// without the `@vN` and code hash of its identity; the counters of every version and
    /// code hash of that path seen by this cache are summed. A decorated function's
    /// `{fn}_stats()` companion needs no name and is never `None`.
    pub fn stats_for(&self, function: &str) -> Option<Stats> {
        self.inner.core.stats.for_function(function)
    }

    /// The counters of exactly `identity`, which this cache knows from now on (a decorated
    /// function's `{fn}_stats()`).
    pub(crate) fn stats_of_identity(&self, identity: &str) -> Stats {
        self.inner.core.stats.register(identity)
    }

    /// Runs `f` and returns its result with the counters of only the calls it made through
    /// this cache on this thread.
    pub fn collect_stats<R>(&self, f: impl FnOnce() -> R) -> (R, Stats) {
        let counters = Arc::new(Counters::default());
        let ambient = thread_ambient().with_collector(self.inner.core.id, Arc::clone(&counters));
        let result = in_thread_ambient(ambient, f);
        (result, counters.snapshot())
    }

    /// Runs `f` with `mode` for calls through this cache on this thread; the previous mode
    /// is restored afterwards, also if `f` panics.
    pub fn with_mode<R>(&self, mode: Mode, f: impl FnOnce() -> R) -> R {
        in_thread_ambient(thread_ambient().with_mode(self.inner.core.id, mode), f)
    }

    /// The cache's name.
    pub fn name(&self) -> &str {
        &self.inner.core.name
    }

    /// How the cache's entries are grouped into structures (fixed when it was built); only
    /// the per-function layouts can purge one function's entries alone.
    pub fn layout(&self) -> crate::Layout {
        self.inner.core.layout
    }
}

/// How this front-end runs a function: inline only (borrowed), or also on worker threads
/// (owned).
pub(crate) trait Runner<T, E> {
    /// The function may outlive the call.
    const OWNED: bool;
    /// Runs the function, waiting at most `timeout` when it runs under a `ticket`.
    fn run(
        &mut self,
        cache: &Cache,
        timeout: Option<Duration>,
        ticket: Option<Ticket>,
    ) -> Ran<T, E>;
    /// Runs the function on a worker under `ticket`; false when the pool refused it.
    fn spawn(&mut self, cache: &Cache, ticket: Ticket) -> bool;
    /// Waits for a computation that ran past its timeout.
    fn rejoin(&mut self) -> thread::Result<Result<T, E>>;
}

/// A borrowed function: runs inline, once. A running closure cannot be abandoned, so it has
/// no timeout.
pub(crate) struct Borrowed<F>(pub(crate) Option<F>);

impl<T, E, F: FnOnce() -> Result<T, E>> Runner<T, E> for Borrowed<F> {
    const OWNED: bool = false;

    fn run(&mut self, _: &Cache, _: Option<Duration>, _: Option<Ticket>) -> Ran<T, E> {
        Ran {
            result: Some(run_inline(self.0.take())),
            stored_elsewhere: false,
        }
    }

    fn spawn(&mut self, _: &Cache, _: Ticket) -> bool {
        false
    }

    fn rejoin(&mut self) -> thread::Result<Result<T, E>> {
        run_inline(self.0.take())
    }
}

/// Runs the function on this thread, catching a panic (it is resumed once the call has
/// released its lease and followers).
fn run_inline<T, E, F: FnOnce() -> Result<T, E>>(f: Option<F>) -> thread::Result<Result<T, E>> {
    match f {
        Some(f) => std::panic::catch_unwind(AssertUnwindSafe(f)),
        None => Err(Box::new("fncache: the function was already consumed")),
    }
}

/// `f` as background work under `ticket`: run (catching a panic), then store its value or
/// keep the lease for the fail-safe throttle.
fn under_ticket<T, E, F>(
    cache: &Cache,
    ticket: Ticket,
    f: F,
) -> impl FnOnce() -> thread::Result<Result<T, E>> + Send + 'static
where
    T: Serialize + DeserializeOwned + Send + 'static,
    E: Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    let worker = cache.clone();
    move || {
        let result = std::panic::catch_unwind(AssertUnwindSafe(f));
        let value = match &result {
            Ok(Ok(value)) => Some(value),
            _ => None,
        };
        worker.finish_ticket(&ticket, value);
        result
    }
}

/// An owned function: may run on the cache's worker threads.
pub(crate) struct Owned<F, T, E> {
    f: Option<F>,
    pending: Option<Receiver<thread::Result<Result<T, E>>>>,
}

impl<F, T, E> Owned<F, T, E> {
    pub(crate) fn new(f: F) -> Self {
        Owned {
            f: Some(f),
            pending: None,
        }
    }
}

impl<T, E, F> Runner<T, E> for Owned<F, T, E>
where
    T: Serialize + DeserializeOwned + Send + 'static,
    E: Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    const OWNED: bool = true;

    fn run(
        &mut self,
        cache: &Cache,
        timeout: Option<Duration>,
        ticket: Option<Ticket>,
    ) -> Ran<T, E> {
        let (timeout, ticket, f) = match (timeout, ticket, self.f.take()) {
            (Some(timeout), Some(ticket), Some(f)) => (timeout, ticket, f),
            (_, _, f) => {
                return Ran {
                    result: Some(run_inline(f)),
                    stored_elsewhere: false,
                };
            }
        };
        // Run as background work that stores its own value, and wait for it a while.
        let (tx, rx) = sync_channel(1);
        let work = under_ticket(cache, ticket, f);
        let job: crate::workers::Job = Box::new(move || {
            let _ = tx.send(work());
        });
        if let Err(job) = cache.inner.core.workers.submit(job) {
            job(); // no worker free: run it here, then the answer is waiting
        }
        match rx.recv_timeout(timeout) {
            Ok(result) => Ran {
                result: Some(result),
                stored_elsewhere: true,
            },
            Err(_) => {
                self.pending = Some(rx);
                Ran {
                    result: None,
                    stored_elsewhere: true,
                }
            }
        }
    }

    fn spawn(&mut self, cache: &Cache, ticket: Ticket) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        let work = under_ticket(cache, ticket, f);
        let job: crate::workers::Job = Box::new(move || {
            let _ = work();
        });
        cache.inner.core.workers.submit(job).is_ok()
    }

    fn rejoin(&mut self) -> thread::Result<Result<T, E>> {
        match self.pending.take().map(|rx| rx.recv()) {
            Some(Ok(result)) => result,
            _ => run_inline(self.f.take()),
        }
    }
}
