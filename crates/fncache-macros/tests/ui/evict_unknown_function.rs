use std::sync::LazyLock;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

fn not_cached(x: u64) -> u64 {
    x
}

#[fncache::cache_evict(cache = CACHE, functions = [not_cached])]
fn evicts_a_plain_function() {}

fn main() {
    not_cached(1);
    evicts_a_plain_function();
}
