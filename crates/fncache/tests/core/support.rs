//! Both stores for the shared front-end driver, so every scenario runs four times.

use std::sync::Arc;

use fncache::{Builder, Cache};
use fncache_testing::RedisServer;

pub use crate::front::{Front, unique_name};

/// Which store a scenario runs on.
pub enum Store {
    Memory,
    Redis(RedisServer),
}

impl Store {
    pub fn memory() -> Store {
        Store::Memory
    }

    pub fn redis() -> Store {
        Store::Redis(RedisServer::spawn())
    }

    pub fn apply(&self, builder: Builder) -> Builder {
        match self {
            // Explicitly: a developer's FNCACHE_REDIS_URL or REDIS_URL must not move the test.
            Store::Memory => builder.memory(),
            Store::Redis(server) => builder.redis(server.url()),
        }
    }

    pub fn server(&self) -> Option<&RedisServer> {
        match self {
            Store::Memory => None,
            Store::Redis(s) => Some(s),
        }
    }
}

/// Every combination of store and front-end, each with a fresh server and a unique name.
pub fn all_fronts(configure: impl Fn(Builder) -> Builder) -> Vec<(Arc<Store>, Front)> {
    let mut out = Vec::new();
    for make_store in [Store::memory as fn() -> Store, Store::redis] {
        for asynchronous in [false, true] {
            let store = Arc::new(make_store());
            let builder = store.apply(configure(Cache::builder(unique_name())));
            let front = if asynchronous {
                Front::asynchronous(builder)
            } else {
                Front::blocking(builder)
            };
            out.push((store, front));
        }
    }
    out
}

/// A label for assertion messages.
pub fn describe(store: &Store, front: &Front) -> String {
    let store = match store {
        Store::Memory => "memory",
        Store::Redis(_) => "redis",
    };
    format!("{store}/{}", front.label())
}
