use std::sync::LazyLock;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));

// The push happens on a miss only: refused.
#[fncache::cached(cache = CACHE)]
fn parse(input: String, warnings: &mut Vec<String>) -> u64 {
    warnings.push(input.clone());
    input.len() as u64
}

// Nested in the type too.
#[fncache::cached(cache = CACHE)]
fn nested(counters: Option<&mut u64>) -> u64 {
    counters.map_or(0, |c| *c)
}

pub struct Counter {
    calls: u64,
}

impl Counter {
    // `&mut self` in the key: refused.
    #[fncache::cached(cache = CACHE)]
    fn bump(&mut self, by: u64) -> u64 {
        self.calls += by;
        self.calls
    }

    // Skipped: a handle the body needs mutably; allowed.
    #[fncache::cached(cache = CACHE, skip(self))]
    fn peek(&mut self, by: u64) -> u64 {
        by
    }
}

// A connection the body needs mutably, left out of the key: allowed.
#[fncache::cached(cache = CACHE, skip(conn))]
fn load(conn: &mut Vec<u8>, id: u64) -> u64 {
    conn.push(1);
    id
}

// A function pointer taking `&mut` is not a `&mut`.
#[fncache::cached(cache = CACHE, skip(apply))]
fn apply(apply: fn(&mut u64), x: u64) -> u64 {
    let mut y = x;
    apply(&mut y);
    y
}

fn main() {}
