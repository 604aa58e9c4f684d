//! One driver for both front-ends and both stores, so every scenario runs four times.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fncache::{Builder, Cache, CallOptions, Mode, Stats, blocking};
use fncache_testing::RedisServer;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Which store a scenario runs on.
pub enum Store {
    Memory,
    Redis(RedisServer),
}

impl Store {
    pub fn memory() -> Store {
        Store::Memory
    }

    pub fn redis() -> Store {
        Store::Redis(RedisServer::spawn())
    }

    pub fn apply(&self, builder: Builder) -> Builder {
        match self {
            // Explicitly: a developer's FNCACHE_REDIS_URL or REDIS_URL must not move the test.
            Store::Memory => builder.memory(),
            Store::Redis(server) => builder.redis(server.url()),
        }
    }

    pub fn server(&self) -> Option<&RedisServer> {
        match self {
            Store::Memory => None,
            Store::Redis(s) => Some(s),
        }
    }
}

/// A cache through either front-end, driven synchronously.
pub enum Front {
    Blocking(blocking::Cache),
    Async(Cache, tokio::runtime::Runtime),
}

impl Front {
    pub fn blocking(builder: Builder) -> Front {
        Front::Blocking(builder.build_blocking().unwrap())
    }

    pub fn asynchronous(builder: Builder) -> Front {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Front::Async(builder.build().unwrap(), rt)
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
        let compute = || {
            execs.fetch_add(1, Ordering::SeqCst);
            x * 10
        };
        match self {
            Front::Blocking(c) => c.get_or_compute(function, &(x,), compute).unwrap(),
            Front::Async(c, rt) => rt
                .block_on(c.get_or_compute(function, &(x,), || async { compute() }))
                .unwrap(),
        }
    }

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
    pub fn call_with<T: Serialize + DeserializeOwned>(
        &self,
        options: &CallOptions,
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

    pub fn len(&self) -> usize {
        match self {
            Front::Blocking(c) => c.len().unwrap(),
            Front::Async(c, rt) => rt.block_on(c.len()).unwrap(),
        }
    }

    pub fn purge(&self) -> usize {
        match self {
            Front::Blocking(c) => c.purge().unwrap(),
            Front::Async(c, rt) => rt.block_on(c.purge()).unwrap(),
        }
    }

    pub fn stats(&self) -> Stats {
        match self {
            Front::Blocking(c) => c.stats(),
            Front::Async(c, _) => c.stats(),
        }
    }

    pub fn stats_for(&self, function: &str) -> Stats {
        match self {
            Front::Blocking(c) => c.stats_for(function),
            Front::Async(c, _) => c.stats_for(function),
        }
    }
}

/// Every combination of store and front-end, each with a fresh server and a unique name.
pub fn all_fronts(configure: impl Fn(Builder) -> Builder) -> Vec<(Arc<Store>, Front)> {
    let mut out = Vec::new();
    for make_store in [Store::memory as fn() -> Store, Store::redis] {
        for asynchronous in [false, true] {
            let store = Arc::new(make_store());
            let builder = store.apply(configure(Cache::builder(unique_name())));
            let front = if asynchronous {
                Front::asynchronous(builder)
            } else {
                Front::blocking(builder)
            };
            out.push((store, front));
        }
    }
    out
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

/// A label for assertion messages.
pub fn describe(store: &Store, front: &Front) -> String {
    let store = match store {
        Store::Memory => "memory",
        Store::Redis(_) => "redis",
    };
    format!("{store}/{}", front.label())
}
