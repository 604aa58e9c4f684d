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
/// # Ok::<(), fncache::Error>(())
/// ```
///
/// An `async fn` takes a `fncache::Cache`, a plain `fn` a `fncache::blocking::Cache`; the
/// function keeps its signature, and runs its body whenever the cache cannot answer.
///
/// Options: `cache = EXPR` (required), `name = "..."`, `version = N`, `skip(arg, ..)`,
/// `key = EXPR`, `codec = Codec::Json`, `cache_none = false`, `code_hash = false`; and, each
/// overriding the builder setting of the same name for this function, the `Duration`
/// expressions `entry_ttl`, `refresh_after`, `lock_timeout`, `compute_timeout`, `max_stale`,
/// `fail_safe_throttle`, `op_timeout`, the flags `wait`, `strict`, `stampede_protection`, and
/// `default = EXPR` (the value answered when the function does not wait). Companions
/// `{fn}_uncached`, `{fn}_invalidate` and `{fn}_is_cached` are generated next to the function.
/// See the README of fncache for the details.
///
/// A stale entry is refreshed in the background when the function's arguments are owned and
/// `'static` (no references, lifetimes, generics or `self`) and the attribute gives
/// `refresh_after`, `compute_timeout`, `wait = false` or `default`; otherwise the caller that
/// wins the refresh refreshes it inline.
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
/// static CACHE: LazyLock<fncache::blocking::Cache> = LazyLock::new(|| {
///     fncache::Cache::builder("doc-evict")
///         .layout(fncache::Layout::PerFunction) // needed to purge single functions
///         .build_blocking()
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
/// `functions = all` empties the whole cache instead. Purging single functions needs
/// `Layout::PerFunction`; with the `Shared` layout the purge fails with a configuration error,
/// which is counted in `stats().errors` and logged (the function's value is still returned).
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
