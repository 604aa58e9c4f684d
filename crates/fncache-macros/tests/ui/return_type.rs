use std::sync::LazyLock;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

#[fncache::cached(cache = CACHE)]
fn borrowed(x: u64) -> Result<&'static str, String> {
    Ok(if x > 1 { "many" } else { "one" })
}

fn main() {}
