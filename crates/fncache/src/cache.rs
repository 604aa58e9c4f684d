//! The async front-end (tokio).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::builder::{Backend, Builder};
use crate::core::{Core, Parts, Store, Surface};
use crate::error::Error;
use crate::key::{self, Member};
use crate::mode::{Mode, in_task_ambient, task_ambient};
use crate::options::CallOptions;
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
/// let cache = fncache::Cache::builder("doc").build()?;
/// let v = cache.get_or_compute("square", &(12u64,), || async { 144u64 }).await?;
/// assert_eq!(v, 144);
/// assert!(cache.contains("square", &(12u64,)).await?);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Parts<AsyncRedis>>,
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
        Cache {
            inner: Arc::new(Parts::new(core, backend, AsyncRedis::new)),
        }
    }

    async fn run(&self, op: StoreOp) -> Result<StoreReply, Error> {
        match &self.inner.store {
            Store::Memory(store) => Ok(store.apply(op)),
            Store::Redis(redis) => redis.run(op, &self.inner.core.settings).await,
        }
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
    pub async fn get_or_compute_with<A, T, F, Fut>(
        &self,
        options: &CallOptions,
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
        let result = self
            .try_get_or_compute_with(options, function, args, || async {
                Ok::<T, Infallible>(compute().await)
            })
            .await?;
        Ok(result.unwrap_or_else(|never| match never {}))
    }

    /// Like [`Cache::get_or_compute`] for a fallible function: an `Err` is passed through
    /// unchanged (inside the `Ok` of the cache's own result) and never cached.
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
    pub async fn try_get_or_compute_with<A, T, E, F, Fut>(
        &self,
        options: &CallOptions,
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
        self.call(options, function, key::member(function, args), compute)
            .await
    }

    /// The one call path of this front-end; `S` says how failures surface (see
    /// `core::Surface`).
    pub(crate) async fn call<S: Surface, T, E, F, Fut>(
        &self,
        options: &CallOptions,
        function: &str,
        member: Result<Member, Error>,
        compute: F,
    ) -> Result<Result<T, E>, S>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let core = &self.inner.core;
        let call = core.begin::<S>(function, member, options, &task_ambient())?;
        if let Some(op) = call.lookup()
            && let Some(value) = call.on_lookup(self.run(op).await)?
        {
            return Ok(Ok(value));
        }
        call.may_compute()?;
        let result = compute().await;
        if let Ok(value) = &result
            && let Some(op) = call.store_op(value)?
        {
            call.on_store(self.run(op).await)?;
        }
        Ok(result)
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

    /// Live entries of the whole cache (all functions, all structures).
    pub async fn len(&self) -> Result<usize, Error> {
        Core::count(self.run(StoreOp::Len).await)
    }

    /// True when the cache holds no live entry.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len().await? == 0)
    }

    /// Removes everything of this cache; returns how many live entries were removed.
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
        self.inner.core.stats.total()
    }

    /// Counters of one function since the cache was built.
    pub fn stats_for(&self, function: &str) -> Stats {
        self.inner.core.stats.for_function(function)
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
}
