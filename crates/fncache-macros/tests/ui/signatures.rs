use std::sync::LazyLock;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

#[fncache::cached(cache = CACHE)]
const fn constant(x: u64) -> u64 {
    x
}

#[fncache::cached(cache = CACHE)]
unsafe fn not_safe(x: u64) -> u64 {
    x
}

#[fncache::cached(cache = CACHE)]
fn generator(n: u64) -> impl Iterator<Item = u64> {
    0..n
}

fn main() {}
