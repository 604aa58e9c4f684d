use std::sync::LazyLock;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

#[fncache::cached(cache = CACHE, strict = true)]
fn plain(x: u64) -> u64 {
    x
}

#[fncache::cached(cache = CACHE, strict = true)]
fn error_without_from(x: u64) -> Result<u64, String> {
    Ok(x)
}

fn main() {}
