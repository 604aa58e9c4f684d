use std::sync::LazyLock;
use std::time::Duration;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

#[fncache::cached(cache = CACHE, negative_ttl = Duration::from_secs(5))]
fn ttl_without_predicate(x: u64) -> Result<u64, String> {
    Ok(x)
}

#[fncache::cached(cache = CACHE, cache_err_if = |e: &String| e.is_empty())]
fn predicate_without_ttl(x: u64) -> Result<u64, String> {
    Ok(x)
}

#[fncache::cached(
    cache = CACHE,
    negative_ttl = Duration::from_secs(5),
    cache_err_if = |e: &String| e.is_empty()
)]
fn no_result(x: u64) -> u64 {
    x
}

pub struct Opaque;

#[fncache::cached(cache = CACHE, negative_ttl = Duration::from_secs(5), cache_err_if = |_| true)]
fn error_not_serializable(x: u64) -> Result<u64, Opaque> {
    Ok(x)
}

#[fncache::cached(cache = CACHE, negative_ttl = Duration::from_secs(5), cache_err_if = |e: &u8| *e == 0)]
fn predicate_of_the_wrong_type(x: u64) -> Result<u64, String> {
    Ok(x)
}

fn main() {}
