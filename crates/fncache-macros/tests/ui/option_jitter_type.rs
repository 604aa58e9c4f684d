use std::sync::LazyLock;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

#[fncache::cached(cache = CACHE, ttl_jitter = 10)]
fn seconds_as_an_integer(x: u64) -> u64 {
    x
}

#[fncache::cached(cache = CACHE, entry_ttl_jitter = "10%")]
fn a_percentage_string(x: u64) -> u64 {
    x
}

#[fncache::cached(cache = CACHE)]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {
    // The put companion takes the function's value type.
    let _ = square_put(&3, &"nine");
}
