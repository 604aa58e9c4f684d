use std::sync::LazyLock;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

#[fncache::cached(cache = CACHE, wait = false, default = 0)]
fn length(name: &str) -> usize {
    name.len()
}

#[fncache::cached(cache = CACHE, default = String::new())]
fn generic<T: serde::Serialize + ToString>(value: T) -> String {
    value.to_string()
}

#[derive(serde::Serialize)]
struct Prices;

impl Prices {
    #[fncache::cached(cache = CACHE, wait = false, default = 0)]
    fn price(&self, item: u32) -> u64 {
        u64::from(item)
    }
}

fn main() {}
