use std::sync::LazyLock;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

#[fncache::cached(batch, cache = CACHE)]
fn two_lists(ids: &[u32], more: &[u32]) -> Vec<u32> {
    ids.iter().chain(more).copied().collect()
}

#[fncache::cached(batch, cache = CACHE)]
fn not_a_list(id: u32) -> Vec<u32> {
    vec![id]
}

#[fncache::cached(batch, cache = CACHE)]
fn a_set(ids: &[u32]) -> std::collections::HashSet<u32> {
    ids.iter().copied().collect()
}

#[fncache::cached(batch, cache = CACHE)]
fn fallible(ids: &[u32]) -> Result<Vec<u32>, String> {
    Ok(ids.to_vec())
}

#[fncache::cached(batch, cache = CACHE, key = ids.len(), tags = ["all"])]
fn per_call_options(ids: &[u32]) -> Vec<u32> {
    ids.to_vec()
}

fn main() {}
