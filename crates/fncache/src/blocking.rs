//! The blocking front-end: plain threads, no async runtime.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::builder::{Backend, Builder};
use crate::core::{Core, Parts, Store};
use crate::error::Error;
use crate::mode::{Mode, in_thread_ambient, thread_ambient};
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
    inner: Arc<Parts<BlockingRedis>>,
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
            inner: Arc::new(Parts::new(core, backend, BlockingRedis::new)),
        }
    }

    fn run(&self, op: StoreOp) -> Result<StoreReply, Error> {
        match &self.inner.store {
            Store::Memory(store) => Ok(store.apply(op)),
            Store::Redis(redis) => redis.run(op, &self.inner.core.settings),
        }
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
        let result = self.try_get_or_compute(function, args, || Ok::<T, Infallible>(compute()))?;
        Ok(result.unwrap_or_else(|never| match never {}))
    }

    /// Like [`Cache::get_or_compute`] for a fallible function: an `Err` is passed through
    /// unchanged (inside the `Ok` of the cache's own result) and never cached.
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
        let core = &self.inner.core;
        let call = core.begin(function, args, &thread_ambient())?;
        if let Some(op) = call.lookup()
            && let Some(value) = call.on_lookup(self.run(op))?
        {
            return Ok(Ok(value));
        }
        call.may_compute()?;
        let result = compute();
        if let Ok(value) = &result
            && let Some(op) = call.store_op(value)?
        {
            call.on_store(self.run(op))?;
        }
        Ok(result)
    }

    /// Is a live entry cached for `function(args)`? Changes no order, score or TTL.
    pub fn contains<A: Serialize + ?Sized>(&self, function: &str, args: &A) -> Result<bool, Error> {
        self.run(self.inner.core.peek_op(function, args)?)?
            .into_flag()
    }

    /// Removes the entry of `function(args)`; `true` if a live entry was there.
    pub fn invalidate<A: Serialize + ?Sized>(
        &self,
        function: &str,
        args: &A,
    ) -> Result<bool, Error> {
        self.run(self.inner.core.remove_op(function, args)?)?
            .into_flag()
    }

    /// Live entries of the whole cache (all functions, all structures).
    pub fn len(&self) -> Result<usize, Error> {
        Core::count(self.run(StoreOp::Len))
    }

    /// True when the cache holds no live entry.
    pub fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len()? == 0)
    }

    /// Removes everything of this cache; returns how many live entries were removed.
    pub fn purge(&self) -> Result<usize, Error> {
        Core::count(self.run(StoreOp::Purge))
    }

    /// Reclaims the space of entries whose per-entry TTL has passed; returns how many.
    pub fn vacuum(&self) -> Result<usize, Error> {
        Core::count(self.run(StoreOp::Vacuum))
    }

    /// Counters since the cache was built.
    pub fn stats(&self) -> Stats {
        self.inner.core.stats.total()
    }

    /// Counters of one function since the cache was built.
    pub fn stats_for(&self, function: &str) -> Stats {
        self.inner.core.stats.for_function(function)
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
}
