use std::sync::LazyLock;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

#[fncache::cache_evict(cache = CACHE)]
fn no_functions() {}

#[fncache::cache_evict(cache = CACHE, functions = [], every = true)]
fn empty_list() {}

#[fncache::cache_evict(functions = everything)]
fn no_cache() {}

fn main() {}
