//! The attributes of [fncache](https://docs.rs/fncache): `#[cached]` and `#[cache_evict]`.
//!
//! Use them through the `fncache` crate (`#[fncache::cached(...)]`); the generated code names
//! the library only through `::fncache::__private`, so no other dependency is needed.
//!
//! Each attribute parses its options and the function, validates both (collecting every error,
//! each at the user's own tokens), then generates code: `args` -> `validate` ->
//! `expand_cached` / `expand_evict`.

mod args;
mod code_hash;
mod errors;
mod expand_batch;
mod expand_cached;
mod expand_evict;
mod validate;

use proc_macro::TokenStream;

/// Caches a function's results in a [`fncache`](https://docs.rs/fncache) cache.
///
/// ```
/// use std::sync::LazyLock;
/// use std::time::Duration;
///
/// static CACHE: LazyLock<fncache::blocking::Cache> =
///     LazyLock::new(|| fncache::Cache::builder("doc").build_blocking().expect("valid config"));
///
/// /// Squares slowly.
/// #[fncache::cached(cache = CACHE, entry_ttl = Duration::from_secs(90))]
/// fn slow_square(x: u64) -> u64 {
///     x * x
/// }
///
/// assert_eq!(slow_square(7), 49); // computed and stored
/// assert_eq!(slow_square(7), 49); // served from the cache
/// assert!(slow_square_is_cached(&7)?);
/// assert_eq!(slow_square_uncached(8), 64); // the body alone, no cache
/// assert!(slow_square_invalidate(&7)?);
/// assert_eq!(slow_square_stats().hits, 1); // also CACHE.stats_for("<crate>::slow_square")
/// # Ok::<(), fncache::Error>(())
/// ```
///
/// An `async fn` takes a `fncache::Cache`, a plain `fn` a `fncache::blocking::Cache` (as is,
/// or behind a `&`, `Arc`, `Box` or `LazyLock`); anything else is a compile error that says
/// which one is needed. The function keeps its signature, visibility, attributes and doc
/// comments, and runs its body whenever the cache cannot answer (the failure is counted in
/// `stats().errors` and logged, never a panic). Generated code names the library only through
/// `::fncache::__private`: no other dependency is needed, not even `serde`.
///
/// # Options
///
/// | option | meaning |
/// |---|---|
/// | `cache = EXPR` | the cache (required): a `static`, or any expression such as `self.cache` |
/// | `name = "..."` | the function's path in its identity; default `module_path!()::fn_name` |
/// | `version = N` | part of the identity: bump it to stop serving old entries |
/// | `skip(a, b)` | arguments (or `self`) left out of the key |
/// | `key = EXPR` | a key that replaces the arguments; in it, each argument is a reference (`&T`) |
/// | `codec = Codec::Json` | the codec of this function's values (`Codec` needs no import here) |
/// | `entry_ttl = EXPR` | a `Duration`: the entry TTL of this function's values |
/// | `cache_none = false` | a `None` (also an `Ok(None)`) is returned but not stored |
/// | `code_hash = false` | leave the hash of the function's code out of the identity |
/// | `refresh_after = EXPR` | a `Duration`: older entries are stale, served while one caller refreshes them |
/// | `lock_timeout = EXPR` | a `Duration`: how long a caller waits for another's computation of the same key |
/// | `wait = false` | a cold miss answers `default` at once and fills the cache in the background |
/// | `default = EXPR` | the value answered when the function does not wait; of the type the function caches |
/// | `compute_timeout = EXPR` | a `Duration`: past it, a recomputation is abandoned for the stale value |
/// | `max_stale = EXPR` | a `Duration`: fail-safe keeps values this long, to serve when recomputing fails |
/// | `fail_safe_throttle = EXPR` | a `Duration`: after a failed recomputation, how long before anyone tries again |
/// | `op_timeout = EXPR` | a `Duration`: how long one backend operation of this function may take |
/// | `strict = true` | backend errors are returned as `Err(E::from(error))` (`Result<T, E>` with `E: From<fncache::Error>`) |
/// | `stampede_protection = false` | concurrent misses of one key all compute instead of sharing one computation |
/// | `near_cache = false` | the cache's near cache (`Builder::near_cache`) neither serves nor keeps this function's entries: every call asks Redis |
/// | `ttl_jitter = EXPR` | a `Duration`: each entry lives up to this much longer than its entry TTL, by a share its key decides |
/// | `entry_ttl_jitter = EXPR` | an `f64` fraction of the entry TTL, likewise (`0.1`: up to 10 % longer) |
/// | `cache_if = CLOSURE` | an `Fn(&T) -> bool` over the value: only values it accepts are stored |
/// | `entry_ttl_from = CLOSURE` | an `Fn(&T) -> Duration`: each value's entry TTL (zero: not stored) |
/// | `refresh_after_from = CLOSURE` | an `Fn(&T) -> Duration`: each value's refresh-after, in place of `refresh_after` for its entry |
/// | `negative_ttl = EXPR` | a `Duration`: how long the errors `cache_err_if` chooses are cached (the error type is then stored too) |
/// | `cache_err_if = CLOSURE` | an `FnOnce(&E) -> bool`: which errors are cached as negative entries, served as those errors; its `{fn}_put` takes a `&Result<T, E>` |
/// | `tags = [EXPR, ..]` | each an expression over the arguments making a `String` (`format!("user:{id}")`): the entry's tags, for `Cache::invalidate_tag` |
/// | `batch` | a function of a list of keys returning a `Vec` of their values or a map of key to value, cached key by key (see [Batches](#batches)) |
///
/// `entry_ttl` and the options from `refresh_after` on (but `default`) override, for this
/// function, the builder setting of the same name. Durations are expressions of type
/// `Duration`, checked at the expression (`refresh_after = 30` is an error); flags are
/// `true`/`false` literals.
///
/// A function returning a `Result` (any path ending in `Result`) caches only `Ok`; an
/// `Option` caches `None` unless `cache_none = false`. Arguments in the key must be
/// `Serialize`, the value `Serialize + DeserializeOwned` (owned: `String`, not `&str`). A
/// `&mut` argument (or `&mut self`) in the key is refused, since on a hit the body does not
/// run and its mutation silently does not happen; `skip` it if it is a handle the body merely
/// needs mutably (a connection). The type of `Self` and the type parameters of a generic
/// function are part of the key. The attribute works on functions and in inherent `impl`
/// blocks, not in trait `impl`s (the companions could not be added there): cache an inherent
/// method and call it from the trait method.
///
/// The identity of the function is its path (`name`), then `@vN` for a `version`, then `#`
/// and a hash of its signature and body (token by token, so a changed body never serves the
/// old body's results; the hash cannot see into the functions the body calls: bump `version`
/// when those change).
///
/// # Batches
///
/// With `batch`, a function whose one argument in the key is a list of keys (`&[K]`,
/// `&Vec<K>` or `Vec<K>`; skip any other argument) and which returns a `Vec<V>` of their
/// values (one per key, in order) or a map of key to value (`HashMap<K, V>`, any hasher, or
/// `BTreeMap<K, V>`: one entry per key) is cached key by key, through `get_or_compute_many`: a
/// call looks every key up in one round trip, runs the body once with only the missing keys
/// (each once), stores their values in one more round trip, and waits for keys other callers
/// are computing; a map-returning function returns the map of all its keys. `Result` returns
/// are not supported, nor the options about one call's arguments (`key`, `tags`, `default`,
/// `wait = false`, `compute_timeout`, negative caching); hooks (`cache_if`, `entry_ttl_from`,
/// `refresh_after_from`) see each value. A body that returns a wrong number of values (or a
/// map without an entry for each of its keys, or with others: a key a database did not find
/// is such a body's error, so return an `Option` value for it) has its own result returned,
/// uncached (the failure is counted in `stats().errors`).
/// The body runs again for keys another caller was computing and failed to deliver, so it
/// must not consume its skipped arguments. The companions of a batch function are
/// `{fn}_uncached` and `{fn}_stats`.
///
/// ```
/// use std::sync::LazyLock;
///
/// static CACHE: LazyLock<fncache::blocking::Cache> =
///     LazyLock::new(|| fncache::Cache::builder("doc-batch").build_blocking().expect("valid config"));
///
/// #[fncache::cached(batch, cache = CACHE)]
/// fn names(ids: &[u32]) -> Vec<String> {
///     ids.iter().map(|id| format!("user {id}")).collect() // only the ids not cached
/// }
///
/// assert_eq!(names(&[1, 2]), ["user 1", "user 2"]);
/// assert_eq!(names(&[2, 3, 3]), ["user 2", "user 3", "user 3"]); // computes only 3
/// assert_eq!(names_stats().hits, 1);
///
/// #[fncache::cached(batch, cache = CACHE)]
/// fn ages(ids: &[u32]) -> std::collections::HashMap<u32, u8> {
///     ids.iter().map(|&id| (id, 20 + id as u8)).collect() // the map of the missing ids
/// }
///
/// assert_eq!(ages(&[1, 2])[&2], 22);
/// assert_eq!(ages(&[2, 3]).len(), 2); // computes only 3
/// ```
///
/// # Companions
///
/// Generated next to the function (for methods: in the same `impl`), with its visibility:
///
/// | companion | what it does |
/// |---|---|
/// | `{fn}_uncached(..) -> R` | the body alone, no cache read or write; exactly the function's arguments and return type |
/// | `{fn}_invalidate(..) -> Result<bool, fncache::Error>` | removes the entry of that call; `true` if it was there |
/// | `{fn}_is_cached(..) -> Result<bool, fncache::Error>` | a peek: changes no eviction order, score or TTL |
/// | `{fn}_stats() -> fncache::Stats` | the cache's counters of this function (zeros before its first call) |
/// | `{fn}_put(.., value: &T) -> Result<bool, fncache::Error>` | stores `value` as that call's result without running the body, under the function's options |
/// | `{fn}_expire(..) -> Result<bool, fncache::Error>` | soft invalidation: the next call recomputes, and serves the old value if that fails |
///
/// ```
/// use std::sync::LazyLock;
/// use std::time::Duration;
///
/// static CACHE: LazyLock<fncache::blocking::Cache> =
///     LazyLock::new(|| fncache::Cache::builder("doc-put").build_blocking().expect("valid config"));
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// pub struct Quote { status: u16, max_age_secs: u64, price: u64 }
///
/// #[fncache::cached(
///     cache = CACHE,
///     cache_if = |q| q.status == 200,
///     entry_ttl_from = |q: &Quote| Duration::from_secs(q.max_age_secs),
///     ttl_jitter = Duration::from_secs(5),
/// )]
/// fn quote(sku: u64) -> Result<Quote, String> {
///     Ok(Quote { status: 200, max_age_secs: 60, price: sku * 2 })
/// }
///
/// assert!(quote_put(&7, &Quote { status: 200, max_age_secs: 60, price: 99 })?);
/// assert_eq!(quote(7).unwrap().price, 99); // the put value, the body did not run
/// assert!(quote_expire(&7)?); // the next call recomputes, with 99 as its fallback
/// assert_eq!(quote(7).unwrap().price, 14);
/// # Ok::<(), fncache::Error>(())
/// ```
///
/// `{fn}_invalidate`, `{fn}_is_cached`, `{fn}_expire` and `{fn}_put` take a reference to each
/// argument of the key (`&T`
/// for an argument declared `T`; skipped arguments are left out) and, for methods, `&self`;
/// they are `async` for an `async fn` and keep the function's generic parameters.
/// `{fn}_stats` takes `&self` only when the cache is reached through `self`, and is never
/// `async`. The same counters are `CACHE.stats_for(concat!(module_path!(), "::fn_name"))`.
///
/// # Owned or borrowed
///
/// Background work (a worker thread of the blocking cache, a tokio task of the async one)
/// needs the body as an owned closure, so the attribute takes the *owned* path only when the
/// function's arguments are owned and `'static` (no reference other than `&'static`, no
/// lifetime, no generic parameter, no `impl Trait`, no `self` of any kind and no `Self`) *and*
/// the attribute gives `refresh_after`, `compute_timeout`, `wait = false` or `default`. The
/// decision is made from the signature, at compile time. Otherwise the function takes the
/// *borrowed* path: a stale entry is refreshed inline by the one caller that wins the
/// refresh (everyone else is served the stale value meanwhile), and `compute_timeout` can
/// only abandon an `async fn`'s future. `wait = false` and `default` need the owned path: on
/// a function with borrowed arguments they are compile errors that name the fix.
///
/// # `Send`
///
/// On the owned path what the body captures, its value and its error must be `Send` (a
/// `Box<dyn Error + Send + Sync>`, not a `Box<dyn Error>`), and for an `async fn` its future
/// must be `Send`: the compiler reports "cannot be sent between threads safely" at the option
/// that asked for background work, or at the return type with the value held across an
/// `.await`. Drop the option, or keep non-`Send` values out of the body (or out of scope at
/// `.await`s). The borrowed path asks for no `Send`.
///
/// ```
/// use std::sync::LazyLock;
/// use std::time::Duration;
///
/// static CACHE: LazyLock<fncache::blocking::Cache> =
///     LazyLock::new(|| fncache::Cache::builder("doc-opts").build_blocking().expect("valid config"));
///
/// #[derive(Debug)]
/// enum LoadError {
///     Cache(fncache::Error),
/// }
///
/// impl From<fncache::Error> for LoadError {
///     fn from(e: fncache::Error) -> Self {
///         LoadError::Cache(e)
///     }
/// }
///
/// /// Served stale after a minute while a worker thread refreshes it; a cold miss answers 0
/// /// at once and fills the cache in the background; backend errors come back as `Err`.
/// #[fncache::cached(
///     cache = CACHE,
///     refresh_after = Duration::from_secs(60),
///     wait = false,
///     default = 0,
///     strict = true
/// )]
/// fn stock(item: u32) -> Result<u64, LoadError> {
///     Ok(u64::from(item) * 3)
/// }
///
/// assert_eq!(stock(7).unwrap(), 0); // the default, while the value is computed
/// ```
#[proc_macro_attribute]
pub fn cached(attr: TokenStream, item: TokenStream) -> TokenStream {
    let original = proc_macro2::TokenStream::from(item.clone());
    match expand_cached::expand(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(errors) => with_item(errors, original),
    }
}

/// Purges cached functions (or the whole cache) after the decorated function returns
/// (returns `Ok`, for a `Result`).
///
/// ```
/// use std::sync::LazyLock;
///
/// // A per-function layout, checked when the cache is built, and known to the attribute.
/// static CACHE: LazyLock<fncache::PerFunctionCache<fncache::blocking::Cache>> = LazyLock::new(|| {
///     fncache::Cache::builder("doc-evict")
///         .layout(fncache::Layout::PerFunction) // needed to purge single functions
///         .build_per_function_blocking()
///         .expect("valid config")
/// });
///
/// #[fncache::cached(cache = CACHE)]
/// fn price(item: u32) -> u64 {
///     u64::from(item) * 100
/// }
///
/// #[fncache::cache_evict(cache = CACHE, functions = [price])]
/// fn update_prices() -> Result<(), String> {
///     Ok(())
/// }
///
/// price(1);
/// assert!(price_is_cached(&1)?);
/// update_prices().unwrap();
/// assert!(!price_is_cached(&1)?);
/// # Ok::<(), fncache::Error>(())
/// ```
///
/// Options: `cache = EXPR` (required; a `fncache::blocking::Cache` for a plain `fn`, a
/// `fncache::Cache` for an `async fn`) and `functions = [path, ..]`, paths of functions
/// decorated with `#[fncache::cached]` (`Self::load` in an `impl`), or `functions = all` to
/// empty the whole cache. The function keeps its signature; no companions are generated.
///
/// Purging single functions needs `Layout::PerFunction` (or `Layout::ClusterPerFunction`).
/// A layout is a value chosen when the cache is built, so the attribute knows it only from a
/// `fncache::PerFunctionCache` (built by `Builder::build_per_function_blocking` or
/// `build_per_function`, which refuse any other layout): `functions = [..]` on any other cache
/// type warns at its `cache = ...` (a `deprecated` warning, the one a macro can give; allow
/// it on the function to keep a plain cache). At run time, with a shared layout, where one
/// function's entries cannot be told from another's, the eviction purges the whole cache
/// instead (so no entry asked to be evicted is served again) and counts a configuration error
/// naming the fix in the evicting function's `stats_for(..).errors`, and logs it; the
/// function's value is still returned. A failing backend is counted and logged the same way.
#[proc_macro_attribute]
pub fn cache_evict(attr: TokenStream, item: TokenStream) -> TokenStream {
    let original = proc_macro2::TokenStream::from(item.clone());
    match expand_evict::expand(attr.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(errors) => with_item(errors, original),
    }
}

/// The errors, followed by the function unchanged, so that its callers do not add errors of
/// their own.
fn with_item(errors: syn::Error, item: proc_macro2::TokenStream) -> TokenStream {
    let mut out = errors.into_compile_error();
    out.extend(item);
    out.into()
}
