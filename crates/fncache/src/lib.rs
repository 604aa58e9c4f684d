//! # fncache
//!
//! Cache the results of functions, sync or async, in a bounded store with a real eviction
//! policy: an embedded in-memory store by default, or Redis shared by many processes, with the
//! very same semantics in both.
//!
//! ```
//! use fncache::{Cache, Policy};
//!
//! let cache = Cache::builder("my-app")
//!     .policy(Policy::Lru)
//!     .maxsize(1000)
//!     .memory() // the embedded store, even where FNCACHE_REDIS_URL or REDIS_URL is set
//!     .build_blocking()?;
//! let slow_square = |x: u64| cache.get_or_compute("slow_square", &(x,), || x * x);
//! assert_eq!(slow_square(7)?, 49); // computed and stored
//! assert_eq!(slow_square(7)?, 49); // served from the cache
//! # Ok::<(), fncache::Error>(())
//! ```
//!
//! One attribute caches a function (see [`cached`] and [`cache_evict`]):
//!
//! ```
//! use std::sync::LazyLock;
//!
//! static CACHE: LazyLock<fncache::blocking::Cache> =
//!     LazyLock::new(|| fncache::Cache::builder("doc").build_blocking().expect("valid config"));
//!
//! #[fncache::cached(cache = CACHE)]
//! fn slow_cube(x: u64) -> u64 {
//!     x * x * x
//! }
//!
//! assert_eq!(slow_cube(3), 27); // computed and stored
//! assert_eq!(slow_cube(3), 27); // served from the cache
//! assert_eq!(CACHE.stats().hits, 1);
//! ```
//!
//! - [`Cache`] is the async front-end (tokio), [`blocking::Cache`] the blocking one; both are
//!   built by [`Cache::builder`] and share one core.
//! - [`Policy`] chooses what leaves when a structure is full; [`Layout`] whether functions
//!   share one structure; [`Codec`] how values are serialized.
//! - [`Mode`] switches reading, writing and executing for a scope; [`Stats`] counts calls.
//!
//! ## In handlers and tasks
//! The future of a cached async call, explicit or generated, is `Send` whenever the future of
//! the function's body is, whatever the function borrows, so it can be `tokio::spawn`ed and be
//! (part of) a web handler, which axum requires to be `Send`. In a handler,
//! [`Cache::get_or_try_compute`] returns the function's `Result<T, E>` so that `?` fits, the
//! cache's own error converted by `E: From<fncache::Error>`:
//!
//! ```
//! use std::sync::{Arc, LazyLock};
//!
//! static CACHE: LazyLock<fncache::Cache> =
//!     LazyLock::new(|| fncache::Cache::builder("doc-tasks").memory().build().expect("valid config"));
//!
//! pub struct Pool; // a connection pool: not part of the key
//!
//! #[derive(Debug)]
//! pub enum AppError { NotFound, Cache(fncache::Error) }
//! impl From<fncache::Error> for AppError {
//!     fn from(e: fncache::Error) -> Self { AppError::Cache(e) }
//! }
//!
//! #[fncache::cached(cache = CACHE, skip(db))]
//! async fn load_name(db: &Pool, id: u64) -> Result<String, AppError> {
//!     let _ = db;
//!     tokio::task::yield_now().await; // the query, holding `db` across an await
//!     if id == 0 { Err(AppError::NotFound) } else { Ok(format!("user{id}")) }
//! }
//!
//! async fn greet(db: &Pool, id: u64, greeting: &str) -> Result<String, AppError> {
//!     let name = load_name(db, id).await?;
//!     let text = CACHE
//!         .get_or_try_compute("greet", &(id, greeting), || async {
//!             Ok::<_, AppError>(format!("{greeting}, {name}"))
//!         })
//!         .await?;
//!     Ok(text)
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let pool = Arc::new(Pool);
//! let task = tokio::spawn(async move { greet(&pool, 7, "hello").await });
//! assert_eq!(task.await.unwrap().unwrap(), "hello, user7");
//! # }
//! ```
//!
//! ## Stores
//! A builder that names no store uses the embedded one, unless the environment names a Redis
//! URL: `FNCACHE_REDIS_URL`, else `REDIS_URL` (an empty value means the embedded store).
//! Explicit settings always win: [`Builder::memory`], [`Builder::redis`] (also `rediss://`
//! for TLS), [`Builder::redis_cluster`], or a client of your own ([`Builder::redis_client`],
//! [`Builder::redis_cluster_client`], [`Builder::redis_connection_manager`],
//! [`Builder::redis_pool`]); [`Builder::redis_username`], [`Builder::redis_password`] and
//! [`Builder::redis_database`] override the URL's, even with empty values. The redis-rs and
//! r2d2 versions those methods take are re-exported as [`redis`] and [`r2d2`].
//!
//! ## Keys in Redis
//! A structure is an index at `{prefix}{name}:{policy}:0` (a sorted set, or a set for
//! [`Policy::Random`]) and a hash of entries at `…:1`; entries with a per-entry TTL are also
//! listed with their expiry time in a sorted set at `…:2`. The member of a call is a 16-byte
//! BLAKE3 digest of the function identity and a typed encoding of its arguments (arguments of
//! different serde types never share a member; maps are sorted). The
//! cluster layouts add a hash tag so that the keys of a structure share a slot: see [`Layout`].
//! The prefix ends with `:` and a `:` or `%` in the name is written `%3A` / `%25`, so two
//! caches never share a key; a put that finds a structure's keys out of step (deleted or
//! evicted from outside) repairs it before storing.
//!
//! ## Tracing and metrics
//! Every call is a `tracing` span `fncache.call` at `debug`, target `fncache`, with the fields
//! `cache`, `function`, `outcome` and `store_seconds`; the function runs inside it, and each
//! store op is a `trace` event (`op`, `seconds`, `ok`) inside it. Unless a subscriber wants
//! `debug` from `fncache`, a call pays one load and compare for this.
//!
//! With the `metrics` feature, caches record through the [`metrics`](https://docs.rs/metrics)
//! facade (install the recorder before building caches: handles are registered when a cache is
//! built and when it first sees a function, never per call):
//!
//! - `fncache_calls_total{cache, function, outcome}`: every call, by how it ended: `hit`,
//!   `near_hit` (from the near cache, no I/O), `lock_wait` (another caller's value, after
//!   waiting), `stale`, `miss`, `default`,
//!   `fail_open`, `bypass` (the cache was not read), `error` (a strict call's failure),
//!   `cancelled` (an async call dropped mid-way);
//! - `fncache_executions_total{cache, function}`, `fncache_writes_total{cache, function}`,
//!   `fncache_refreshes_total{cache, function}`, `fncache_refresh_failures_total{cache,
//!   function}`, `fncache_lock_timeouts_total{cache, function}`: the [`Stats`] counters of the
//!   same names;
//! - `fncache_errors_total{cache, function, kind}`, `kind` an [`ErrorKind`] in snake case
//!   (`backend`, `decode`, ...);
//! - `fncache_evictions_total{cache}`;
//! - `fncache_store_seconds{cache, op}`, a histogram of store op latency, `op` one of `get`,
//!   `put`, `lease`, `peek`, `remove`, `len`, `purge`, `vacuum`.
//!
//! `function` is the function's path (without a decorated function's `@vN` and code hash).

#[doc(hidden)]
#[path = "admin.rs"]
pub mod __admin;
#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
mod batch;
pub mod blocking;
mod builder;
mod cache;
mod call;
mod circuit;
pub mod clock;
mod codec;
mod core;
mod duration;
mod error;
mod flight;
mod key;
mod layout;
mod mode;
mod near;
mod options;
mod per_function;
mod policy;
mod registry;
mod shared_stats;
mod stats;
mod store;
mod stripe;
mod telemetry;
mod typed;
mod workers;

pub use builder::{
    Builder, DEFAULT_MAXSIZE, DEFAULT_NEAR_CACHE_TTL, DEFAULT_PREFIX, DEFAULT_TTL, DISABLED_ENV,
};
pub use cache::Cache;
pub use circuit::CircuitBreaker;
pub use codec::Codec;
pub use duration::MAX_DURATION;
pub use error::{Error, ErrorKind};
#[doc(inline)]
pub use fncache_macros::{cache_evict, cached};
pub use layout::Layout;
pub use mode::Mode;
pub use options::{CallOptions, Options, TypedOptions};
pub use per_function::PerFunctionCache;
pub use policy::Policy;
pub use shared_stats::SharedStats;
pub use stats::Stats;
pub use store::redis::connect::{REDIS_URL_ENV, REDIS_URL_ENV_FALLBACK};

/// The redis-rs crate whose types [`Builder::redis_client`] and the other bring-your-own
/// methods take, re-exported so that versions match.
pub use redis;

/// The r2d2 crate of [`Builder::redis_pool`], re-exported so that versions match.
pub use r2d2;
