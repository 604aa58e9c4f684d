use std::sync::LazyLock;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

#[fncache::cached(cache = CACHE, ttl = 5)]
fn unknown_option(x: u64) -> u64 {
    x
}

#[fncache::cached(cache = CACHE, version = 1, version = 2)]
fn duplicate_option(x: u64) -> u64 {
    x
}

#[fncache::cached(skip(x))]
fn missing_cache(x: u64) -> u64 {
    x
}

#[fncache::cached(cache = CACHE, name = users, version = "2", cache_none = 0, code_hash = maybe)]
fn values_of_the_wrong_kind(x: u64) -> u64 {
    x
}

#[fncache::cached(cache = CACHE, skip = x)]
fn skip_without_a_list(x: u64) -> u64 {
    x
}

#[fncache::cached(cache = CACHE, wait = no, strict = 1, stampede_protection = "off", near_cache = 0)]
fn flags_that_are_not_literals(x: u64) -> u64 {
    x
}

#[fncache::cached(cache = CACHE, stale_while_revalidate = 60, lock_ttl = 5)]
fn names_from_other_libraries(x: u64) -> u64 {
    x
}

#[fncache::cached(cache = CACHE, refresh_after = 1, refresh_after = 2)]
fn duplicate_duration(x: u64) -> u64 {
    x
}

fn main() {}
