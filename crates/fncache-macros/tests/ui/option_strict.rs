use std::sync::LazyLock;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

#[fncache::cached(cache = CACHE, strict = true)]
fn plain(x: u64) -> u64 {
    x
}

/// An error type of the user's own, without `From<fncache::Error>` (a local type keeps the
/// compiler's list of other `From` impls out of the expected output).
#[derive(Debug)]
struct LoadError;

#[fncache::cached(cache = CACHE, strict = true)]
fn error_without_from(x: u64) -> Result<u64, LoadError> {
    Ok(x)
}

fn main() {}
