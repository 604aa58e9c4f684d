//! Integration tests of `#[fncache::cached]` and `#[fncache::cache_evict]`: every scenario runs
//! on the embedded store and on a throwaway `redis-server`, through blocking and async
//! functions.

// Generated code must not trip lints on the user's tokens (see `lints.rs`).
#![deny(unused_braces)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod batch;
mod companions;
mod evict;
mod failures;
mod features;
mod generics;
mod identity;
// One-line bodies are the point of these tests: rustfmt would spread them over lines.
#[rustfmt::skip]
mod lints;
mod methods;
mod options;
mod skip;
mod stacking;
mod stats;
mod support;
mod tags;
mod values;
