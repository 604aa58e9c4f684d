use std::sync::LazyLock;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

trait Repo {
    fn load(&self, id: u64) -> u64;
}

struct Users;

impl Repo for Users {
    #[fncache::cached(cache = CACHE, skip(self))]
    fn load(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
