//! Decorated functions raise no lint the user's code does not: this crate denies
//! `unused_braces` (see `main.rs`), which a one-line body such as `{ id }` used to trigger.

use std::time::Duration;

use crate::support::{asynchronous, blocking, on_every_store};

#[fncache::cached(cache = blocking())]
fn id(id: u64) -> u64 { id }

#[fncache::cached(cache = blocking())]
fn unit(_id: u64) {}

#[fncache::cached(cache = asynchronous())]
async fn id_async(id: u64) -> u64 { id }

#[fncache::cached(cache = blocking(), refresh_after = Duration::from_secs(60))]
fn id_owned(id: u64) -> u64 { id }

#[fncache::cached(cache = asynchronous(), refresh_after = Duration::from_secs(60))]
async fn id_owned_async(id: u64) -> u64 { id }

#[fncache::cache_evict(cache = blocking(), functions = all)]
fn evict(id: u64) -> u64 { id }

#[fncache::cache_evict(cache = asynchronous(), functions = all)]
async fn evict_async(id: u64) -> u64 { id }

#[test]
fn one_line_bodies_work() {
    on_every_store(
        |b| b,
        |s| {
            assert_eq!(id(1), 1);
            unit(1);
            assert_eq!(id_owned(2), 2);
            assert_eq!(evict(3), 3);
            s.block_on(async {
                assert_eq!(id_async(4).await, 4);
                assert_eq!(id_owned_async(5).await, 5);
                assert_eq!(evict_async(6).await, 6);
            });
        },
    );
}
