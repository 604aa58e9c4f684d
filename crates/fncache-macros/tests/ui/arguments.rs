use std::sync::LazyLock;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

#[fncache::cached(cache = CACHE, skip(db, id, id))]
fn skip_names_a_missing_argument(pool: &str, id: u64) -> u64 {
    id + pool.len() as u64
}

#[fncache::cached(cache = CACHE)]
fn destructured((a, b): (u64, u64)) -> u64 {
    a + b
}

#[fncache::cached(cache = CACHE)]
fn impl_trait_argument(x: impl std::fmt::Display) -> String {
    x.to_string()
}

struct Ctx {
    cache: fncache::blocking::Cache,
}

#[fncache::cached(cache = ctx.cache, skip(ctx))]
fn cache_from_a_skipped_argument(ctx: &Ctx, id: u64) -> u64 {
    let _ = &ctx.cache;
    id
}

fn main() {}
