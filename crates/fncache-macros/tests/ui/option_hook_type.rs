use std::sync::LazyLock;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

#[fncache::cached(cache = CACHE, cache_if = |name: &String| !name.is_empty())]
fn wrong_value_type(x: u64) -> u64 {
    x
}

#[fncache::cached(cache = CACHE, entry_ttl_from = |x: &u64| *x)]
fn seconds_as_an_integer(x: u64) -> u64 {
    x
}

#[fncache::cached(cache = CACHE, cache_if = true)]
fn not_a_closure(x: u64) -> u64 {
    x
}

fn main() {}
