//! Integration tests of `#[fncache::cached]` and `#[fncache::cache_evict]`: every scenario runs
//! on the embedded store and on a throwaway `redis-server`, through blocking and async
//! functions.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod companions;
mod evict;
mod failures;
mod generics;
mod identity;
mod methods;
mod options;
mod skip;
mod stacking;
mod stats;
mod support;
mod values;
