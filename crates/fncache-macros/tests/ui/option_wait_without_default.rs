use std::sync::LazyLock;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

#[fncache::cached(cache = CACHE, wait = false)]
fn no_default(x: u64) -> u64 {
    x
}

// `default` would never be answered by a function that waits.
#[fncache::cached(cache = CACHE, wait = true, default = 0)]
fn waits_anyway(x: u64) -> u64 {
    x
}

fn main() {}
