//! The async front-end (tokio).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::CatchUnwind;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::builder::{Backend, Builder};
use crate::call::{Call, Ran, Ticket, drive_call};
use crate::core::{Core, Parts, Store, Surface};
use crate::error::Error;
use crate::key::{self, Member};
use crate::mode::{Mode, in_task_ambient, task_ambient};
use crate::options::{CallOptions, Options};
use crate::shared_stats::SharedStats;
use crate::stats::{Counters, Stats};
use crate::store::redis::AsyncRedis;
use crate::store::{StoreOp, StoreReply};

/// A function cache for async code (tokio). Cheap to clone (an `Arc` inside); clones share
/// everything. Building needs no runtime and connects nowhere, so a cache can live in a
/// `static LazyLock`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), fncache::Error> {
/// let cache = fncache::Cache::builder("doc").memory().build()?;
/// let v = cache.get_or_compute("square", &(12u64,), || async { 144u64 }).await?;
/// assert_eq!(v, 144);
/// assert!(cache.contains("square", &(12u64,)).await?);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<Parts<AsyncRedis>>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.describe(f, "Cache")
    }
}

impl Cache {
    /// Starts configuring a cache named `name`; finish with `build()` (async front-end) or
    /// `build_blocking()` ([`crate::blocking::Cache`]).
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder::new(name)
    }

    pub(crate) fn from_parts(core: Core, backend: Backend) -> Cache {
        let cache = Cache {
            inner: Arc::new(Parts::new(core, backend, |target, near| {
                AsyncRedis::new(target).with_near(near)
            })),
        };
        // A call dropped before it ended gives its key's lease back from a task: a dropped
        // future cannot send anything itself. Weak: the sender, kept by the cache, must not
        // keep it alive.
        let weak = Arc::downgrade(&cache.inner);
        cache.inner.core.abandoned.set(Box::new(move |op| {
            if let (Some(inner), Ok(runtime)) =
                (weak.upgrade(), tokio::runtime::Handle::try_current())
            {
                runtime.spawn(async move {
                    let _ = Cache { inner }.run(op).await;
                });
            }
        }));
        cache
    }

    async fn run(&self, op: StoreOp) -> Result<StoreReply, Error> {
        self.run_timed(op, self.inner.core.behaviour.op_timeout)
            .await
    }

    /// Sends one op within `timeout`, through the circuit breaker.
    async fn run_timed(&self, op: StoreOp, timeout: Duration) -> Result<StoreReply, Error> {
        let core = &self.inner.core;
        let timer = core.telemetry.start(&op);
        let result = match &self.inner.store {
            Store::Memory(store) => Ok(store.apply(op)),
            Store::Redis(redis) => match core.gate() {
                Ok(()) => {
                    let result = redis.run(op, &core.settings, timeout).await;
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

    /// Sends several ops of one structure together (one round trip per round of their
    /// plans), through the circuit breaker, all within `timeout`: a reply per op, in order.
    pub(crate) async fn run_many(
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
                        redis.run_many(ops, &core.settings, timeout).await,
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

    /// Sends this process's counters to the shared ones in a task, when a batch is due.
    fn flush_if_due(&self) {
        if self.inner.core.shared.due()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            // Weak: a pending batch never keeps a dropped cache alive.
            let cache = Arc::downgrade(&self.inner);
            runtime.spawn(async move {
                if let Some(inner) = cache.upgrade() {
                    let _ = Cache { inner }.flush_shared().await;
                }
            });
        }
    }

    /// Sends what this process's counters gained since the last batch to the shared ones.
    async fn flush_shared(&self) -> Result<(), Error> {
        match &self.inner.store {
            Store::Memory(_) => Ok(()),
            Store::Redis(redis) => crate::shared_stats::flush_async(&self.inner.core, redis).await,
        }
    }

    /// Ends background work: stores its value (or keeps its lease for the fail-safe
    /// throttle) and counts what happened.
    /// `op` is the ticket's finishing op, `ok` whether the work produced a value.
    /// `refused` is the codec's refusal of the value (then not stored).
    async fn finish_ticket(
        &self,
        ticket: &Ticket,
        (op, refused): (Option<StoreOp>, Option<Error>),
        ok: bool,
    ) {
        let stored = match op {
            Some(op) => Some(self.run_timed(op, ticket.op_timeout()).await),
            None => None,
        };
        self.inner
            .core
            .close_ticket(ticket, stored, ok, refused.as_ref());
    }

    /// Returns the cached result of `function(args)`, computing and storing it on a miss.
    ///
    /// See [`crate::blocking::Cache::get_or_compute`]; `compute` returns a future here.
    pub async fn get_or_compute<A, T, F, Fut>(
        &self,
        function: &str,
        args: &A,
        compute: F,
    ) -> Result<T, Error>
    where
        A: Serialize + ?Sized,
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        self.get_or_compute_with(&CallOptions::new(), function, args, compute)
            .await
    }

    /// [`Cache::get_or_compute`] with the function's own [`CallOptions`] (entry TTL, codec,
    /// whether `None` is cached) in place of the cache's defaults.
    pub async fn get_or_compute_with<O, A, T, F, Fut>(
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
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let result = self
            .try_get_or_compute_with(options, function, args, || async {
                Ok::<T, Infallible>(compute().await)
            })
            .await?;
        Ok(result.unwrap_or_else(|never| match never {}))
    }

    /// Like [`Cache::get_or_compute`] for a fallible function: an `Err` is passed through
    /// unchanged (inside the `Ok` of the cache's own result) and never cached. The cache's
    /// error and the function's stay apart here; [`Cache::get_or_try_compute`] returns the
    /// function's `Result<T, E>` with the cache's error converted into `E`, for `?`.
    pub async fn try_get_or_compute<A, T, E, F, Fut>(
        &self,
        function: &str,
        args: &A,
        compute: F,
    ) -> Result<Result<T, E>, Error>
    where
        A: Serialize + ?Sized,
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.try_get_or_compute_with(&CallOptions::new(), function, args, compute)
            .await
    }

    /// [`Cache::try_get_or_compute`] with the function's own [`CallOptions`].
    pub async fn try_get_or_compute_with<O, A, T, E, F, Fut>(
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
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.call(options, function, key::member(function, args), compute)
            .await
    }

    /// Like [`Cache::try_get_or_compute`], with the cache's own failure folded into the
    /// function's error type: it returns `Result<T, E>`, so a handler whose error implements
    /// `From<fncache::Error>` uses it with `?`. The cache fails open as usual (a backend that
    /// is down means the function runs); a cache error surfaces, as `E::from(error)`, only
    /// where [`Cache::try_get_or_compute`] would return it: when the call is strict
    /// ([`Builder::strict`](crate::Builder::strict), [`CallOptions::strict`]) or misses under
    /// a [`Mode`] that does not execute.
    ///
    /// ```
    /// # #[derive(Debug)]
    /// enum AppError { NotFound(u64), Cache(fncache::Error) }
    /// impl From<fncache::Error> for AppError {
    ///     fn from(e: fncache::Error) -> Self { AppError::Cache(e) }
    /// }
    /// async fn find(id: u64) -> Result<String, AppError> {
    ///     if id == 7 { Ok("ada".to_owned()) } else { Err(AppError::NotFound(id)) }
    /// }
    ///
    /// async fn handler(cache: &fncache::Cache, id: u64) -> Result<String, AppError> {
    ///     let name = cache.get_or_try_compute("users::find", &(id,), || find(id)).await?;
    ///     Ok(format!("hello {name}"))
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let cache = fncache::Cache::builder("doc").memory().build().unwrap();
    /// assert_eq!(handler(&cache, 7).await.unwrap(), "hello ada");
    /// assert!(matches!(handler(&cache, 8).await, Err(AppError::NotFound(8))));
    /// # }
    /// ```
    pub async fn get_or_try_compute<A, T, E, F, Fut>(
        &self,
        function: &str,
        args: &A,
        compute: F,
    ) -> Result<T, E>
    where
        A: Serialize + ?Sized,
        T: Serialize + DeserializeOwned,
        E: From<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.get_or_try_compute_with(&CallOptions::new(), function, args, compute)
            .await
    }

    /// [`Cache::get_or_try_compute`] with the function's own [`CallOptions`].
    pub async fn get_or_try_compute_with<O, A, T, E, F, Fut>(
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
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        match self
            .try_get_or_compute_with(options, function, args, compute)
            .await
        {
            Ok(result) => result,
            Err(error) => Err(E::from(error)),
        }
    }

    /// Negative caching: [`Cache::try_get_or_compute_with`] where an error for which
    /// `cache_err_if` answers `true` is cached too, for the options'
    /// [`negative_ttl`](CallOptions::negative_ttl); see
    /// [`crate::blocking::Cache::try_get_or_compute_negative`].
    pub async fn try_get_or_compute_negative<O, A, T, E, P, F, Fut>(
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
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let options = crate::options::negative_options::<T, E, O>(options)?;
        let result = self
            .try_get_or_compute_with(&options, function, args, || async {
                crate::options::negative_split(compute().await, cache_err_if)
            })
            .await?;
        // Ok(Ok(v)): a value; Ok(Err(e)): an error, computed or cached; Err(e): one not cached.
        Ok(result.and_then(|result| result))
    }

    /// Like [`Cache::get_or_compute`] for an owned function (`Send + 'static`, returning a
    /// `Send + 'static` future), which lets the cache run it as a background task: a stale
    /// entry (see [`Builder::refresh_after`](crate::Builder::refresh_after)) is served at once
    /// while one task refreshes it, and a recomputation that runs past
    /// [`Builder::compute_timeout`](crate::Builder::compute_timeout) while a stale fallback
    /// exists goes on in the background while the fallback is served.
    pub async fn get_or_compute_owned<A, T, F, Fut>(
        &self,
        function: &str,
        args: &A,
        compute: F,
    ) -> Result<T, Error>
    where
        A: Serialize + ?Sized,
        T: Serialize + DeserializeOwned + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let result = self
            .try_get_or_compute_owned(function, args, move || async move {
                Ok::<T, Infallible>(compute().await)
            })
            .await?;
        Ok(result.unwrap_or_else(|never| match never {}))
    }

    /// [`Cache::get_or_compute_owned`] for a fallible function.
    pub async fn try_get_or_compute_owned<A, T, E, F, Fut>(
        &self,
        function: &str,
        args: &A,
        compute: F,
    ) -> Result<Result<T, E>, Error>
    where
        A: Serialize + ?Sized,
        T: Serialize + DeserializeOwned + Send + 'static,
        E: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.try_get_or_compute_owned_with(&CallOptions::new(), None, function, args, compute)
            .await
    }

    /// [`Cache::try_get_or_compute_owned`] with the function's own [`CallOptions`] and a
    /// `default`: with `wait(false)`, a cold miss answers the default at once and fills the
    /// cache in the background.
    pub async fn try_get_or_compute_owned_with<O, A, T, E, F, Fut>(
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
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let member = key::member(function, args);
        self.drive(options, function, member, Owned::new(compute), default)
            .await
    }

    /// The one call path of this front-end; `S` says how failures surface (see
    /// `core::Surface`).
    pub(crate) async fn call<O, S: Surface, T, E, F, Fut>(
        &self,
        options: &O,
        function: &str,
        member: Result<Member, Error>,
        compute: F,
    ) -> Result<Result<T, E>, S>
    where
        O: Options<T> + ?Sized,
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.drive(options, function, member, Borrowed::new(compute), None)
            .await
    }

    /// Walks a [`Call`] to its end: the only place this front-end waits, sleeps or runs the
    /// function.
    pub(crate) async fn drive<O, S: Surface, R>(
        &self,
        options: &O,
        function: &str,
        member: Result<Member, Error>,
        mut runner: R,
        default: Option<R::Value>,
    ) -> Result<Result<R::Value, R::Error>, S>
    where
        O: Options<R::Value> + ?Sized,
        R: Runner,
        R::Value: Serialize + DeserializeOwned,
    {
        let core = &self.inner.core;
        let ambient = task_ambient();
        let mut call: Call<'_, S, R::Value> =
            core.begin(function, member, options, &ambient, R::OWNED, default)?;
        drive_call!(self, call, runner, sleep: tokio::time::sleep, follow: wait_async, .await)
    }

    /// Is a live entry cached for `function(args)`? Changes no order, score or TTL.
    pub async fn contains<A: Serialize + ?Sized>(
        &self,
        function: &str,
        args: &A,
    ) -> Result<bool, Error> {
        let member = key::member(function, args)?;
        self.contains_member(function, member).await
    }

    pub(crate) async fn contains_member(
        &self,
        function: &str,
        member: Member,
    ) -> Result<bool, Error> {
        let op = self.inner.core.peek_op(function, member);
        self.run(op).await?.into_flag()
    }

    /// Stores `value` as the result of `function(args)` without calling anything or reading
    /// the cache (Spring's `@CachePut`); see [`crate::blocking::Cache::put`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), fncache::Error> {
    /// let cache = fncache::Cache::builder("doc").memory().build()?;
    /// assert!(cache.put("user", &(7u64,), &"ada".to_owned()).await?);
    /// let name: String = cache.get_or_compute("user", &(7u64,), || async { unreachable!() }).await?;
    /// assert_eq!(name, "ada");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn put<A, T>(&self, function: &str, args: &A, value: &T) -> Result<bool, Error>
    where
        A: Serialize + ?Sized,
        T: Serialize + DeserializeOwned,
    {
        self.put_with(&CallOptions::new(), function, args, value)
            .await
    }

    /// [`Cache::put`] under the function's own [`CallOptions`]; see
    /// [`crate::blocking::Cache::put_with`].
    pub async fn put_with<O, A, T>(
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
        let member = key::member(function, args)?;
        self.put_member(options, function, member, value).await
    }

    pub(crate) async fn put_member<O, T: Serialize + DeserializeOwned>(
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
            Ok(Some(op)) => core.put_done(function, self.run(op).await),
            Ok(None) => Ok(false),
            Err(e) => core.put_done(function, Err(e)),
        }
    }

    /// Soft invalidation: marks the entry of `function(args)` expired but keeps it as a
    /// fail-safe fallback; see [`crate::blocking::Cache::expire`].
    pub async fn expire<A: Serialize + ?Sized>(
        &self,
        function: &str,
        args: &A,
    ) -> Result<bool, Error> {
        let member = key::member(function, args)?;
        self.expire_member(function, member).await
    }

    pub(crate) async fn expire_member(
        &self,
        function: &str,
        member: Member,
    ) -> Result<bool, Error> {
        match self.inner.core.expire_op(function, member) {
            Some(op) => self.run(op).await?.into_flag(),
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
    pub async fn invalidate<A: Serialize + ?Sized>(
        &self,
        function: &str,
        args: &A,
    ) -> Result<bool, Error> {
        let member = key::member(function, args)?;
        self.invalidate_member(function, member).await
    }

    pub(crate) async fn invalidate_member(
        &self,
        function: &str,
        member: Member,
    ) -> Result<bool, Error> {
        let op = self.inner.core.remove_op(function, member);
        self.run(op).await?.into_flag()
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
    pub async fn invalidate_tag(&self, tag: &str) -> Result<usize, Error> {
        Core::count(self.run(Core::invalidate_tag_op(tag)).await)
    }

    /// Live entries of the whole cache (all functions, all structures).
    pub async fn len(&self) -> Result<usize, Error> {
        Core::count(self.run(StoreOp::Len).await)
    }

    /// True when the cache holds no live entry.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len().await? == 0)
    }

    /// Removes every entry of this cache; returns how many live entries were removed. Its
    /// registry and shared counters stay (see [`Cache::shared_stats`]): they describe the
    /// functions, not the entries, and expire a week after the last process used them.
    pub async fn purge(&self) -> Result<usize, Error> {
        Core::count(self.run(StoreOp::Purge).await)
    }

    /// Removes every entry of one function; returns how many live entries were removed.
    ///
    /// Needs [`Layout::PerFunction`](crate::Layout::PerFunction): see
    /// [`crate::blocking::Cache::purge_function`].
    pub async fn purge_function(&self, function: &str) -> Result<usize, Error> {
        let op = self.inner.core.purge_function_op(function)?;
        Core::count(self.run(op).await)
    }

    /// Reclaims the space of entries whose per-entry TTL has passed; returns how many.
    pub async fn vacuum(&self) -> Result<usize, Error> {
        Core::count(self.run(StoreOp::Vacuum).await)
    }

    /// Counts and logs a failure that has no caller to return it to (see `Core::absorb`).
    pub(crate) fn absorb(&self, function: &str, what: &str, error: &Error) {
        self.inner
            .core
            .absorb(function, &task_ambient(), what, error);
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
    pub async fn shared_stats(&self) -> Result<SharedStats, Error> {
        let core = &self.inner.core;
        match &self.inner.store {
            Store::Memory(_) => Ok(SharedStats::local(core)),
            Store::Redis(redis) => {
                crate::shared_stats::flush_async(core, redis).await?;
                let request = crate::shared_stats::read_request(core);
                SharedStats::from_reply(redis.send(request, core.behaviour.op_timeout).await?)
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

    /// Runs `fut` and returns its output with the counters of only the calls it made
    /// through this cache within this task (tasks it spawns are not included).
    pub async fn collect_stats<F: Future>(&self, fut: F) -> (F::Output, Stats) {
        let counters = Arc::new(Counters::default());
        let ambient = task_ambient().with_collector(self.inner.core.id, Arc::clone(&counters));
        let output = in_task_ambient(ambient, fut).await;
        (output, counters.snapshot())
    }

    /// Runs `fut` with `mode` for calls through this cache within this task.
    pub async fn with_mode<F: Future>(&self, mode: Mode, fut: F) -> F::Output {
        in_task_ambient(task_ambient().with_mode(self.inner.core.id, mode), fut).await
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

/// How this front-end runs a function: as part of the call's future (borrowed), or also as
/// tasks of its own (owned).
///
/// Its types are all read off `Self` (associated types, no parameters), and its impls' bounds
/// are [`Compute`], never `F: FnOnce() -> Fut` with `Fut: Future<Output = Result<T, E>>`: that
/// is what keeps the call's future `Send` whenever the function's is, for functions that
/// borrow. [`Cache::drive`] holds the future of [`Runner::run`] (an `async fn` in a trait, so
/// a projection through the runner's impl) across an await. To prove the call's future `Send`
/// (for `tokio::spawn`, an axum handler), rustc takes the types held across awaits with every
/// lifetime in them replaced by a fresh higher-ranked one, and normalizes that projection,
/// which means proving the impl's where-clauses for those lifetimes. A function that borrows
/// (`&self`, a `&str` argument, a skipped `&Pool`) has its lifetime in `F`, in `Fut`, and
/// possibly in `E` (`&'static str` counts), now several unrelated ones, so a where-clause that
/// equates two of them, `F<'1>: FnOnce() -> Fut<'2>` or `Fut<'1>::Output == Result<T, E<'2>>`,
/// cannot hold: rustc reports "one type is more general than the other" between the function's
/// async block and itself (the rust-lang/rust #64552 / #110338 family), at the `tokio::spawn`
/// or the handler. With `C: Compute` the blanket impl reads the future, value and error types
/// off `C` itself, so nothing is equated and the bound holds for any lifetimes.
pub(crate) trait Runner {
    /// What the function returns in `Ok`.
    type Value;
    /// What the function returns in `Err`.
    type Error;
    /// The function may outlive the call.
    const OWNED: bool;
    /// Runs the function, waiting at most `timeout` when given.
    async fn run(
        &mut self,
        cache: &Cache,
        timeout: Option<Duration>,
        ticket: Option<Ticket>,
    ) -> Ran<Self::Value, Self::Error>;
    /// Runs the function as a task under `ticket`.
    fn spawn(&mut self, cache: &Cache, ticket: Ticket) -> bool;
    /// Waits for a computation that ran past its timeout.
    async fn rejoin(&mut self) -> thread::Result<Result<Self::Value, Self::Error>>;
}

type Guarded<Fut> = Pin<Box<CatchUnwind<AssertUnwindSafe<Fut>>>>;

/// How a run of the function `C` ended: its result, or its panic.
type Outcome<C> = thread::Result<Result<<C as Compute>::Value, <C as Compute>::Error>>;

/// A function that returns a future of a `Result`, its types named by associated types (see
/// [`Runner`] for why the runners are bounded by this rather than by `FnOnce`).
pub(crate) trait Compute {
    /// What the function returns in `Ok`.
    type Value;
    /// What the function returns in `Err`.
    type Error;
    /// The function's future.
    type Future: Future<Output = Result<Self::Value, Self::Error>>;
    /// Calls the function.
    fn start(self) -> Self::Future;
}

impl<T, E, F, Fut> Compute for F
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    type Value = T;
    type Error = E;
    type Future = Fut;

    fn start(self) -> Fut {
        self()
    }
}

/// A borrowed function: its future runs inside the call's. Past a timeout it is kept, not
/// polled, and dropped with the call (or awaited if the call needs it after all).
pub(crate) struct Borrowed<C: Compute> {
    f: Option<C>,
    pending: Option<Guarded<C::Future>>,
}

impl<C: Compute> Borrowed<C> {
    pub(crate) fn new(f: C) -> Self {
        Borrowed {
            f: Some(f),
            pending: None,
        }
    }
}

impl<C: Compute> Runner for Borrowed<C> {
    type Value = C::Value;
    type Error = C::Error;
    const OWNED: bool = false;

    async fn run(
        &mut self,
        _: &Cache,
        timeout: Option<Duration>,
        _: Option<Ticket>,
    ) -> Ran<C::Value, C::Error> {
        let Some(f) = self.f.take() else {
            return Ran {
                result: Some(Err(Box::new("fncache: the function was already consumed"))),
                stored_elsewhere: false,
            };
        };
        let mut fut: Guarded<C::Future> = Box::pin(AssertUnwindSafe(f.start()).catch_unwind());
        let result = match timeout {
            None => Some(fut.as_mut().await),
            Some(t) => match tokio::time::timeout(t, fut.as_mut()).await {
                Ok(result) => Some(result),
                Err(_) => {
                    self.pending = Some(fut);
                    None
                }
            },
        };
        Ran {
            result,
            stored_elsewhere: false,
        }
    }

    fn spawn(&mut self, _: &Cache, _: Ticket) -> bool {
        false
    }

    async fn rejoin(&mut self) -> thread::Result<Result<C::Value, C::Error>> {
        match self.pending.take() {
            Some(fut) => fut.await,
            None => Err(Box::new("fncache: no computation to wait for")),
        }
    }
}

/// An owned function: may run as a task of its own.
pub(crate) struct Owned<C: Compute> {
    f: Option<C>,
    pending: Option<tokio::task::JoinHandle<Outcome<C>>>,
}

impl<C: Compute> Owned<C> {
    pub(crate) fn new(f: C) -> Self {
        Owned {
            f: Some(f),
            pending: None,
        }
    }
}

/// A task's end as a computation's outcome.
fn joined<T, E>(
    joined: Result<thread::Result<Result<T, E>>, tokio::task::JoinError>,
) -> thread::Result<Result<T, E>> {
    joined.unwrap_or_else(|e| match e.try_into_panic() {
        Ok(panic) => Err(panic),
        Err(_) => Err(Box::new("fncache: the background task was cancelled")),
    })
}

/// `fut` as background work under `ticket`: run (catching a panic), then store its value or
/// keep the lease for the fail-safe throttle.
async fn under_ticket<T, E, Fut>(
    worker: Cache,
    ticket: Ticket,
    fut: Fut,
) -> thread::Result<Result<T, E>>
where
    T: Serialize + DeserializeOwned,
    Fut: Future<Output = Result<T, E>>,
{
    let result = AssertUnwindSafe(fut).catch_unwind().await;
    let (op, ok) = match &result {
        Ok(Ok(value)) => (ticket.finish(Some(value)), true),
        _ => (ticket.finish::<T>(None), false),
    };
    worker.finish_ticket(&ticket, op, ok).await;
    result
}

impl<C> Runner for Owned<C>
where
    C: Compute + Send + 'static,
    C::Value: Serialize + DeserializeOwned + Send + 'static,
    C::Error: Send + 'static,
    C::Future: Send + 'static,
{
    type Value = C::Value;
    type Error = C::Error;
    const OWNED: bool = true;

    async fn run(
        &mut self,
        cache: &Cache,
        timeout: Option<Duration>,
        ticket: Option<Ticket>,
    ) -> Ran<C::Value, C::Error> {
        let (timeout, ticket, f) = match (timeout, ticket, self.f.take()) {
            (Some(timeout), Some(ticket), Some(f)) => (timeout, ticket, f),
            (_, _, Some(f)) => {
                return Ran {
                    result: Some(AssertUnwindSafe(f.start()).catch_unwind().await),
                    stored_elsewhere: false,
                };
            }
            (_, _, None) => {
                return Ran {
                    result: Some(Err(Box::new("fncache: the function was already consumed"))),
                    stored_elsewhere: false,
                };
            }
        };
        // A task that stores its own value, so that it can outlive this call's wait.
        let mut task = tokio::spawn(under_ticket(cache.clone(), ticket, async move {
            f.start().await
        }));
        match tokio::time::timeout(timeout, &mut task).await {
            Ok(done) => Ran {
                result: Some(joined(done)),
                stored_elsewhere: true,
            },
            Err(_) => {
                self.pending = Some(task);
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
        tokio::spawn(under_ticket(cache.clone(), ticket, async move {
            f.start().await
        }));
        true
    }

    async fn rejoin(&mut self) -> thread::Result<Result<C::Value, C::Error>> {
        match self.pending.take() {
            Some(task) => joined(task.await),
            None => Err(Box::new("fncache: no computation to wait for")),
        }
    }
}
