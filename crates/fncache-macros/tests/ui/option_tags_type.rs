use std::sync::LazyLock;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

// A tag is text: an integer is refused at its own expression.
#[fncache::cached(cache = CACHE, tags = [format!("user:{id}"), id])]
fn user(id: u64) -> u64 {
    id
}

// A list, not one expression.
#[fncache::cached(cache = CACHE, tags = "user")]
fn not_a_list(id: u64) -> u64 {
    id
}

fn main() {}
