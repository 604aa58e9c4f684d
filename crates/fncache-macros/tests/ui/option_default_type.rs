use std::sync::LazyLock;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

#[fncache::cached(cache = CACHE, wait = false, default = "unknown")]
fn count(x: u64) -> u64 {
    x
}

// The default of a `Result` function is a value of its `T`, not a `Result`.
#[fncache::cached(cache = CACHE, wait = false, default = Ok(0))]
fn load(x: u64) -> Result<u64, String> {
    Ok(x)
}

fn main() {}
