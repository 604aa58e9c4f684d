//! Integration tests of the fncache core against the embedded store and real Redis servers
//! (one throwaway `redis-server` per scenario), through both front-ends.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod batch;
mod batched;
mod behaviour;
mod concurrency;
mod corruption;
mod durations;
mod features;
mod fidelity;
#[path = "../common/front.rs"]
mod front;
mod healing;
mod isolation;
mod model;
mod near;
mod options;
mod refresh_from;
mod server;
mod shared;
mod support;
mod tags;
mod traces;
mod ttl;
mod typed_keys;
