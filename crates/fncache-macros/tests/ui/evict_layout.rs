//! `cache_evict(functions = [..])` on a cache whose layout is known only at run time warns at
//! its `cache = ...` (denied here, to see it); on a `PerFunctionCache`, whose layout was
//! checked when it was built, and with `functions = all`, it does not.
#![deny(deprecated)]

use std::sync::LazyLock;

use fncache::{Cache, Layout, PerFunctionCache, blocking};

static PLAIN: LazyLock<blocking::Cache> = LazyLock::new(|| {
    Cache::builder("ui").layout(Layout::PerFunction).build_blocking().unwrap()
});

static TYPED: LazyLock<PerFunctionCache<blocking::Cache>> = LazyLock::new(|| {
    Cache::builder("ui").layout(Layout::PerFunction).build_per_function_blocking().unwrap()
});

#[fncache::cached(cache = PLAIN)]
fn price(item: u32) -> u64 {
    u64::from(item)
}

#[fncache::cache_evict(cache = PLAIN, functions = [price])]
fn reprice() {}

#[fncache::cache_evict(cache = PLAIN, functions = all)]
fn reset() {}

#[fncache::cached(cache = TYPED)]
fn stock(item: u32) -> u64 {
    u64::from(item)
}

#[fncache::cache_evict(cache = TYPED, functions = [stock])]
fn restock() {}

fn main() {}
