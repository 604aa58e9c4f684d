use std::rc::Rc;
use std::sync::LazyLock;
use std::time::Duration;

static CACHE: LazyLock<fncache::blocking::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build_blocking().expect("valid config"));
static ASYNC: LazyLock<fncache::Cache> =
    LazyLock::new(|| fncache::Cache::builder("ui").build().expect("valid config"));

// `refresh_after` refreshes in the background: what the body uses must be `Send`.
#[fncache::cached(cache = CACHE, skip(shared), refresh_after = Duration::from_secs(60))]
fn uses_an_rc(shared: Rc<u64>, x: u64) -> u64 {
    *shared + x
}

#[fncache::cached(cache = CACHE, refresh_after = Duration::from_secs(60))]
fn fails_with_a_box_dyn_error(x: u64) -> Result<u64, Box<dyn std::error::Error>> {
    Ok(x)
}

async fn tick() {}

// For an `async fn`, its future too.
#[fncache::cached(cache = ASYNC, refresh_after = Duration::from_secs(60))]
async fn holds_an_rc_across_await(x: u64) -> u64 {
    let local = Rc::new(x);
    tick().await;
    *local
}

fn main() {}
