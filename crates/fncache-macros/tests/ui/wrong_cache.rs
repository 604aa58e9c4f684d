use std::sync::LazyLock;

static BLOCKING: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));
static ASYNC: LazyLock<fncache::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build().expect("valid config"));

#[fncache::cached(cache = BLOCKING)]
async fn async_with_a_blocking_cache(x: u64) -> u64 {
    x
}

#[fncache::cached(cache = ASYNC)]
fn blocking_with_an_async_cache(x: u64) -> u64 {
    x
}

fn main() {}
