//! Clients the user brings: a redis-rs client, a connection manager, an r2d2 pool (a cluster
//! client is exercised with the cluster, in `spread`).

use std::sync::atomic::AtomicU64;

use fncache::{Cache, ErrorKind};
use fncache_testing::RedisServer;
use redis::aio::ConnectionManager;

use crate::support::{Front, runtime, unique_name};

fn exercise(front: &Front, who: &str) {
    let execs = AtomicU64::new(0);
    assert!(!front.is_hit("f", 1), "{who}");
    assert!(front.is_hit("f", 1), "{who}");
    front.call("g", 1, &execs);
    assert_eq!(front.len(), 2, "{who}");
    assert_eq!(front.purge(), 2, "{who}");
    assert_eq!(front.stats().errors, 0, "{who}");
    assert!(
        !front.debug().contains("byo-s3cret"),
        "{who}: {}",
        front.debug()
    );
}

#[test]
fn clients_you_bring() {
    let server = RedisServer::spawn();
    server.add_acl_user("app", "byo-s3cret", &["~*", "+@all"]);
    let url = format!("redis://app:byo-s3cret@127.0.0.1:{}/", server.port());
    let client = redis::Client::open(url.as_str()).unwrap();

    for front in Front::both(|| {
        Cache::builder(unique_name())
            .redis_client(client.clone())
            .strict(true)
    }) {
        exercise(&front, &format!("client, {}", front.label()));
    }

    // A connection manager lives in the runtime that made it, shared with the user's code.
    let rt = runtime();
    let manager = rt.block_on(ConnectionManager::new(client.clone())).unwrap();
    let cache = Cache::builder(unique_name())
        .redis_connection_manager(manager.clone())
        .strict(true)
        .build()
        .unwrap();
    let front = Front::Async(cache, rt);
    exercise(&front, "connection manager");

    let pool = fncache::r2d2::Pool::builder()
        .max_size(2)
        .build(client.clone())
        .unwrap();
    let cache = Cache::builder(unique_name())
        .redis_pool(pool.clone())
        .strict(true)
        .build_blocking()
        .unwrap();
    exercise(&Front::Blocking(cache.clone()), "r2d2 pool");
    // Connections go back to the user's pool: more concurrent calls than it holds still work.
    std::thread::scope(|s| {
        for t in 0..6u64 {
            let cache = &cache;
            s.spawn(move || {
                for x in 0..20u64 {
                    assert_eq!(cache.get_or_compute("h", &(t, x), || t * x).unwrap(), t * x);
                }
            });
        }
    });
    assert_eq!(cache.len().unwrap(), 120);
    assert!(pool.state().connections <= 2);

    // Each kind of client serves the front-end it was made for, and keeps its own settings.
    let manager_blocking = Cache::builder("x")
        .redis_connection_manager(manager)
        .build_blocking()
        .unwrap_err();
    let pool_async = Cache::builder("x").redis_pool(pool).build().unwrap_err();
    let client_with_password = Cache::builder("x")
        .redis_client(client)
        .redis_password("other")
        .build_blocking()
        .unwrap_err();
    for err in [manager_blocking, pool_async, client_with_password] {
        assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    }
}
