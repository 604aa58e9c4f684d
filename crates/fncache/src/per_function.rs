//! A cache whose type says that it can purge single functions.
//!
//! The layout of a cache is a value chosen when it is built, so `#[cache_evict(functions =
//! [..])]` cannot know, from a plain [`Cache`] or [`blocking::Cache`], whether the functions it
//! names can be purged alone (only the per-function layouts can; a shared layout makes it purge
//! the whole cache). [`PerFunctionCache`] carries that fact in the type: it is made only by
//! [`Builder::build_per_function`] and [`Builder::build_per_function_blocking`], which refuse
//! any other layout, so the attribute can rely on it at compile time and warns when it is
//! handed a cache whose layout it cannot know.

use std::fmt;
use std::ops::Deref;

use crate::{Builder, Cache, Error, blocking};

/// A [`Cache`] or [`blocking::Cache`] built with [`Layout::PerFunction`] or
/// [`Layout::ClusterPerFunction`], the layouts that purge one function's entries alone.
///
/// It is the cache (it dereferences to it, and [`PerFunctionCache::into_inner`] gives it
/// back), with one more guarantee in its type: `#[fncache::cache_evict(functions = [..])]`
/// on it purges exactly the functions named, which the attribute then knows at compile time.
/// `#[fncache::cached]` takes it as any cache (as is, or behind a `&`, `Arc`, `Box` or
/// `LazyLock`).
///
/// ```
/// use std::sync::LazyLock;
/// use fncache::{Cache, Layout, PerFunctionCache, blocking};
///
/// static CACHE: LazyLock<PerFunctionCache<blocking::Cache>> = LazyLock::new(|| {
///     Cache::builder("doc-per-function")
///         .layout(Layout::PerFunction)
///         .build_per_function_blocking()
///         .expect("a per-function layout")
/// });
///
/// #[fncache::cached(cache = CACHE)]
/// fn price(item: u32) -> u64 {
///     u64::from(item) * 100
/// }
///
/// #[fncache::cache_evict(cache = CACHE, functions = [price])]
/// fn update_prices() {}
///
/// price(1);
/// update_prices();
/// assert!(!price_is_cached(&1)?);
///
/// // Any other layout is refused when the cache is built.
/// let shared = Cache::builder("doc-shared").memory().build_per_function_blocking();
/// assert_eq!(shared.unwrap_err().kind(), fncache::ErrorKind::Config);
/// # Ok::<(), fncache::Error>(())
/// ```
///
/// [`Layout::PerFunction`]: crate::Layout::PerFunction
/// [`Layout::ClusterPerFunction`]: crate::Layout::ClusterPerFunction
#[derive(Clone)]
pub struct PerFunctionCache<C>(C);

impl<C> PerFunctionCache<C> {
    /// The cache itself.
    pub fn into_inner(self) -> C {
        self.0
    }
}

impl<C> Deref for PerFunctionCache<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.0
    }
}

impl<C: fmt::Debug> fmt::Debug for PerFunctionCache<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PerFunctionCache").field(&self.0).finish()
    }
}

/// Refuses a layout that cannot purge single functions.
fn check(layout: crate::Layout) -> Result<(), Error> {
    if layout.is_per_function() {
        return Ok(());
    }
    Err(Error::config(format!(
        "a PerFunctionCache needs a layout that purges single functions, not \
         Layout::{layout:?}: add `.layout(Layout::PerFunction)` (or \
         `Layout::ClusterPerFunction` on a cluster) to the builder"
    )))
}

impl Builder {
    /// Builds the async front-end as a [`PerFunctionCache`]: a configuration error unless the
    /// layout is [`Layout::PerFunction`](crate::Layout::PerFunction) or
    /// [`Layout::ClusterPerFunction`](crate::Layout::ClusterPerFunction), so that
    /// `#[cache_evict(functions = [..])]` can rely on it purging single functions.
    pub fn build_per_function(self) -> Result<PerFunctionCache<Cache>, Error> {
        check(self.configured_layout())?;
        self.build().map(PerFunctionCache)
    }

    /// Builds the blocking front-end as a [`PerFunctionCache`] (see
    /// [`Builder::build_per_function`]).
    pub fn build_per_function_blocking(self) -> Result<PerFunctionCache<blocking::Cache>, Error> {
        check(self.configured_layout())?;
        self.build_blocking().map(PerFunctionCache)
    }
}
