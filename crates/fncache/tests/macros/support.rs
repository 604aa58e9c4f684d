//! The caches the decorated test functions use, per thread, so that each test can run the very
//! same functions first on the embedded store and then on a fresh Redis server.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fncache::clock::ManualClock;
use fncache::{Builder, Cache, blocking};
use fncache_testing::RedisServer;

thread_local! {
    static CURRENT: RefCell<Option<(blocking::Cache, Cache)>> = const { RefCell::new(None) };
    static EXECS: Cell<u64> = const { Cell::new(0) };
}

/// The blocking cache of the scenario running on this thread: the `cache = ...` of the
/// decorated plain functions.
pub fn blocking() -> blocking::Cache {
    CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .expect("no scenario is running")
            .0
            .clone()
    })
}

/// The async cache of the scenario running on this thread.
pub fn asynchronous() -> Cache {
    CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .expect("no scenario is running")
            .1
            .clone()
    })
}

/// The caches of the scenario running on this thread, for [`install`] on a thread the test
/// spawns.
pub fn current() -> (blocking::Cache, Cache) {
    (blocking(), asynchronous())
}

/// Makes `caches` the `cache = ...` of the decorated functions called on this thread.
pub fn install(caches: (blocking::Cache, Cache)) {
    CURRENT.with(|c| *c.borrow_mut() = Some(caches));
}

/// Waits for background work to reach a state (not a timing assertion: the deadline only
/// turns a hang into a failure).
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Called by the body of every decorated test function.
pub fn ran() {
    EXECS.with(|e| e.set(e.get() + 1));
}

/// How many bodies ran on this thread.
pub fn execs() -> u64 {
    EXECS.with(Cell::get)
}

/// Counts the bodies that run inside `f`.
pub fn runs<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let before = execs();
    let out = f();
    (out, execs() - before)
}

/// One store with a blocking and an async cache on it, installed for this thread.
pub struct Scenario {
    pub label: &'static str,
    pub server: Option<RedisServer>,
    pub blocking: blocking::Cache,
    pub asynchronous: Cache,
    runtime: tokio::runtime::Runtime,
}

impl Scenario {
    /// Builds caches named uniquely with `configure`, on Redis when `server` is given. Their
    /// ops may take 5 s (`configure` may say otherwise): the default 250 ms is a production
    /// setting, and a test machine whose two cores are busy with a build once took longer
    /// for an explicit `..._is_cached`, which then failed a test about modes.
    pub fn new(server: Option<RedisServer>, configure: impl Fn(Builder) -> Builder) -> Scenario {
        let build = |front: &str| {
            let builder = Cache::builder(format!("{}-{front}", unique_name()))
                .op_timeout(Duration::from_secs(5));
            let builder = configure(builder);
            match &server {
                Some(server) => builder.redis(server.url()),
                None => builder,
            }
        };
        let scenario = Scenario {
            label: if server.is_some() { "redis" } else { "memory" },
            blocking: build("sync").build_blocking().unwrap(),
            asynchronous: build("async").build().unwrap(),
            server,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        };
        let caches = (scenario.blocking.clone(), scenario.asynchronous.clone());
        CURRENT.with(|c| *c.borrow_mut() = Some(caches));
        scenario
    }

    /// Runs a future of the async functions on this thread (where its caches are installed).
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Like [`eventually`], driving this scenario's runtime meanwhile, so that the tasks the
    /// async functions spawned in the background make progress.
    pub fn eventually_async(&self, what: &str, mut done: impl FnMut() -> bool) {
        self.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !done() {
                assert!(Instant::now() < deadline, "never happened: {what}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }

    /// Lets `time` pass for the entries: on the embedded store by moving its manual `clock`
    /// (the scenario must have been built with it), on Redis by sleeping, since the server's
    /// time is what judges freshness there.
    pub fn pass(&self, clock: &ManualClock, time: Duration) {
        if self.server.is_some() {
            std::thread::sleep(time);
        } else {
            clock.advance(time);
        }
    }

    /// The Redis connection of a Redis scenario.
    pub fn redis(&self) -> Option<redis::Connection> {
        self.server.as_ref().map(RedisServer::connection)
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}

/// Runs `scenario` on the embedded store, then on a fresh `redis-server`.
pub fn on_every_store(configure: impl Fn(Builder) -> Builder, scenario: impl Fn(&Scenario)) {
    for redis in [false, true] {
        let server = redis.then(RedisServer::spawn);
        scenario(&Scenario::new(server, &configure));
    }
}

/// A cache name no other test uses.
pub fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "m{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
