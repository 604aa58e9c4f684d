use std::sync::LazyLock;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

struct Connection;

#[fncache::cached(cache = CACHE)]
fn load(db: &Connection, id: u64) -> u64 {
    let _ = db;
    id
}

struct Service;

impl Service {
    #[fncache::cached(cache = CACHE)]
    fn find(&self, id: u64) -> u64 {
        id
    }
}

fn main() {
    load(&Connection, 1);
    Service.find(1);
}
