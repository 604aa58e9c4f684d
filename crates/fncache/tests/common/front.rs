//! Both front-ends behind one synchronous face, shared by the integration test crates
//! (each includes this file with `#[path]`, and uses the part it needs).

#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use fncache::{Builder, Cache, Mode, Stats, blocking};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A cache through either front-end, driven synchronously.
pub enum Front {
    Blocking(blocking::Cache),
    Async(Cache, tokio::runtime::Runtime),
}

/// A runtime for one async front-end.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A cache name no other test uses.
pub fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

impl Front {
    pub fn blocking(builder: Builder) -> Front {
        Front::Blocking(builder.build_blocking().unwrap())
    }

    pub fn asynchronous(builder: Builder) -> Front {
        Front::Async(builder.build().unwrap(), runtime())
    }

    /// Both front-ends, each over the builder `make` returns (give each call a fresh name
    /// for separate caches).
    pub fn both(make: impl Fn() -> Builder) -> [Front; 2] {
        [Front::blocking(make()), Front::asynchronous(make())]
    }

    pub fn name(&self) -> &str {
        match self {
            Front::Blocking(c) => c.name(),
            Front::Async(c, _) => c.name(),
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Front::Blocking(_) => "blocking",
            Front::Async(..) => "async",
        }
    }

    /// Calls the cached function `function(x) = x * 10`, counting executions in `execs`.
    pub fn call(&self, function: &str, x: u64, execs: &AtomicU64) -> u64 {
        self.try_call(function, x, execs).unwrap()
    }

    /// [`Front::call`], returning the cache's error.
    pub fn try_call(
        &self,
        function: &str,
        x: u64,
        execs: &AtomicU64,
    ) -> Result<u64, fncache::Error> {
        self.call_in_mode(Mode::DEFAULT, function, x, execs)
    }

    /// [`Front::try_call`] with `mode` in force.
    pub fn call_in_mode(
        &self,
        mode: Mode,
        function: &str,
        x: u64,
        execs: &AtomicU64,
    ) -> Result<u64, fncache::Error> {
        let compute = || {
            execs.fetch_add(1, Ordering::SeqCst);
            x * 10
        };
        match self {
            Front::Blocking(c) => c.with_mode(mode, || c.get_or_compute(function, &(x,), compute)),
            Front::Async(c, rt) => rt.block_on(c.with_mode(
                mode,
                c.get_or_compute(function, &(x,), || async { compute() }),
            )),
        }
    }

    /// Calls `function(x)` with per-call `options`, computing with `compute` on a miss.
    pub fn call_with<T: Serialize + DeserializeOwned, O: fncache::Options<T>>(
        &self,
        options: &O,
        function: &str,
        x: u64,
        compute: impl FnOnce() -> T,
    ) -> Result<T, fncache::Error> {
        match self {
            Front::Blocking(c) => c.get_or_compute_with(options, function, &(x,), compute),
            Front::Async(c, rt) => {
                rt.block_on(c.get_or_compute_with(options, function, &(x,), || async { compute() }))
            }
        }
    }

    /// Calls the fallible `function(x)` with per-call `options`, computing `result` on a miss.
    pub fn try_call_with<O: fncache::Options<u64>>(
        &self,
        options: &O,
        function: &str,
        x: u64,
        result: Result<u64, String>,
    ) -> Result<Result<u64, String>, fncache::Error> {
        match self {
            Front::Blocking(c) => c.try_get_or_compute_with(options, function, &(x,), || result),
            Front::Async(c, rt) => {
                rt.block_on(
                    c.try_get_or_compute_with(options, function, &(x,), || async { result }),
                )
            }
        }
    }

    /// Stores `value` as `function(x)` without computing (`put_with`).
    pub fn put_with<T: Serialize + DeserializeOwned, O: fncache::Options<T>>(
        &self,
        options: &O,
        function: &str,
        x: u64,
        value: &T,
    ) -> Result<bool, fncache::Error> {
        match self {
            Front::Blocking(c) => c.put_with(options, function, &(x,), value),
            Front::Async(c, rt) => rt.block_on(c.put_with(options, function, &(x,), value)),
        }
    }

    /// Soft-invalidates `function(x)`.
    pub fn expire(&self, function: &str, x: u64) -> Result<bool, fncache::Error> {
        match self {
            Front::Blocking(c) => c.expire(function, &(x,)),
            Front::Async(c, rt) => rt.block_on(c.expire(function, &(x,))),
        }
    }

    pub fn set_enabled(&self, enabled: bool) {
        match self {
            Front::Blocking(c) => c.set_enabled(enabled),
            Front::Async(c, _) => c.set_enabled(enabled),
        }
    }

    pub fn is_enabled(&self) -> bool {
        match self {
            Front::Blocking(c) => c.is_enabled(),
            Front::Async(c, _) => c.is_enabled(),
        }
    }

    /// True when `function(x)` is served from the cache (checked by calling it).
    pub fn is_hit(&self, function: &str, x: u64) -> bool {
        let execs = AtomicU64::new(0);
        assert_eq!(self.call(function, x, &execs), x * 10);
        execs.load(Ordering::SeqCst) == 0
    }

    pub fn purge_function(&self, function: &str) -> Result<usize, fncache::Error> {
        match self {
            Front::Blocking(c) => c.purge_function(function),
            Front::Async(c, rt) => rt.block_on(c.purge_function(function)),
        }
    }

    pub fn contains(&self, function: &str, x: u64) -> bool {
        match self {
            Front::Blocking(c) => c.contains(function, &(x,)).unwrap(),
            Front::Async(c, rt) => rt.block_on(c.contains(function, &(x,))).unwrap(),
        }
    }

    pub fn invalidate(&self, function: &str, x: u64) -> bool {
        match self {
            Front::Blocking(c) => c.invalidate(function, &(x,)).unwrap(),
            Front::Async(c, rt) => rt.block_on(c.invalidate(function, &(x,))).unwrap(),
        }
    }

    /// Removes every entry tagged `tag`; how many live ones.
    pub fn invalidate_tag(&self, tag: &str) -> usize {
        match self {
            Front::Blocking(c) => c.invalidate_tag(tag).unwrap(),
            Front::Async(c, rt) => rt.block_on(c.invalidate_tag(tag)).unwrap(),
        }
    }

    pub fn len(&self) -> usize {
        self.try_len().unwrap()
    }

    pub fn try_len(&self) -> Result<usize, fncache::Error> {
        match self {
            Front::Blocking(c) => c.len(),
            Front::Async(c, rt) => rt.block_on(c.len()),
        }
    }

    pub fn purge(&self) -> usize {
        match self {
            Front::Blocking(c) => c.purge().unwrap(),
            Front::Async(c, rt) => rt.block_on(c.purge()).unwrap(),
        }
    }

    pub fn vacuum(&self) -> usize {
        match self {
            Front::Blocking(c) => c.vacuum().unwrap(),
            Front::Async(c, rt) => rt.block_on(c.vacuum()).unwrap(),
        }
    }

    pub fn stats(&self) -> Stats {
        match self {
            Front::Blocking(c) => c.stats(),
            Front::Async(c, _) => c.stats(),
        }
    }

    pub fn stats_for(&self, function: &str) -> Option<Stats> {
        match self {
            Front::Blocking(c) => c.stats_for(function),
            Front::Async(c, _) => c.stats_for(function),
        }
    }

    /// The `Debug` rendering of the cache.
    pub fn debug(&self) -> String {
        match self {
            Front::Blocking(c) => format!("{c:?}"),
            Front::Async(c, _) => format!("{c:?}"),
        }
    }
}
