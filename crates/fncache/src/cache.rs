//! The async front-end (tokio).

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::builder::{Backend, Builder};
use crate::core::{Core, Parts, Store};
use crate::error::Error;
use crate::mode::{Mode, in_task_ambient, task_ambient};
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
        let result = self
            .try_get_or_compute(function, args, || async {
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
        let core = &self.inner.core;
        let call = core.begin(function, args, &task_ambient())?;
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
        let op = self.inner.core.peek_op(function, args)?;
        self.run(op).await?.into_flag()
    }

    /// Removes the entry of `function(args)`; `true` if a live entry was there.
    pub async fn invalidate<A: Serialize + ?Sized>(
        &self,
        function: &str,
        args: &A,
    ) -> Result<bool, Error> {
        let op = self.inner.core.remove_op(function, args)?;
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

    /// Reclaims the space of entries whose per-entry TTL has passed; returns how many.
    pub async fn vacuum(&self) -> Result<usize, Error> {
        Core::count(self.run(StoreOp::Vacuum).await)
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
