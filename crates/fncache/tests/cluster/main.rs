//! Integration tests of scale-out and secure connections (issue 5) on real servers: cluster
//! layouts on a real six-node Redis Cluster (traces, spreading, redirections, failover), TLS
//! with generated certificates, ACL users, clients brought by the user, and configuration
//! from the environment.
//!
//! Spawning a cluster takes seconds, so each cluster module runs its scenarios in one test
//! that owns one cluster (the failover test has its own); scenarios stay apart by cache name.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    unreachable_pub
)]

mod acl;
mod batch;
mod byo;
mod env;
mod failover;
#[path = "../common/front.rs"]
mod front;
mod near;
mod spread;
mod support;
mod tls;
mod traces;
