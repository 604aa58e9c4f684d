use std::sync::LazyLock;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

struct Report {
    total: u64,
}

#[fncache::cached(cache = CACHE)]
fn report(x: u64) -> Report {
    Report { total: x }
}

fn main() {
    let _ = report(1).total;
}
