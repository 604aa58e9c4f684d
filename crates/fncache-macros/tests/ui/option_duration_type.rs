use std::sync::LazyLock;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

#[fncache::cached(cache = CACHE, refresh_after = 30)]
fn seconds_as_an_integer(x: u64) -> u64 {
    x
}

#[fncache::cached(cache = CACHE, op_timeout = "250ms")]
fn a_string(x: u64) -> u64 {
    x
}

fn main() {}
