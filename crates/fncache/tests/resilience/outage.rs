//! Fail-open: the server stops, restarts, forgets its scripts or data, or pauses; every call
//! still returns the function's value, and the cache recovers by itself.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fncache::{Cache, CircuitBreaker, Policy};
use fncache_testing::RedisServer;

use crate::{eventually, unique_name};

fn breaker() -> CircuitBreaker {
    CircuitBreaker {
        failures: 3,
        cool_down: Duration::from_millis(300),
    }
}

#[test]
fn a_stopped_server_fails_open_and_hits_resume_after_restart() {
    let mut server = RedisServer::spawn();
    let cache = Cache::builder(unique_name("outage"))
        .redis(server.url())
        .circuit_breaker(breaker())
        .op_timeout(Duration::from_millis(200))
        .build_blocking()
        .unwrap();
    let runs = AtomicU64::new(0);
    let call = |x: u64| {
        cache
            .get_or_compute("f", &x, || {
                runs.fetch_add(1, Ordering::SeqCst);
                x * 2
            })
            .expect("fail-open: never an error")
    };
    for x in 0..10 {
        assert_eq!(call(x), x * 2);
    }
    server.stop();
    for x in 0..50 {
        assert_eq!(
            call(x % 10),
            (x % 10) * 2,
            "the function's value while Redis is down"
        );
    }
    let s = cache.stats();
    assert!(s.fail_open >= 50, "{s:?}");
    server.restart();
    eventually("writes resume after the restart", || {
        call(7);
        cache.stats().writes > 10
    });
    let before = runs.load(Ordering::SeqCst);
    assert_eq!(call(7), 14);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        before,
        "a hit again, in the same process"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_front_end_fails_open_and_recovers_too() {
    let mut server = RedisServer::spawn();
    let cache = Cache::builder(unique_name("outage-async"))
        .redis(server.url())
        .circuit_breaker(breaker())
        .op_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    assert_eq!(
        cache
            .get_or_compute("f", &1u8, || async { 1u32 })
            .await
            .unwrap(),
        1
    );
    server.stop();
    for _ in 0..20 {
        assert_eq!(
            cache
                .get_or_compute("f", &1u8, || async { 2u32 })
                .await
                .unwrap(),
            2
        );
    }
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        cache
            .get_or_compute("f", &1u8, || async { 3u32 })
            .await
            .unwrap();
        if cache
            .get_or_compute("f", &1u8, || async { 4u32 })
            .await
            .unwrap()
            == 3
        {
            break; // stored and read back: the same process recovered
        }
        assert!(
            Instant::now() < deadline,
            "never recovered: {:?}",
            cache.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn script_flush_and_flushall_mid_workload() {
    let server = RedisServer::spawn();
    let cache = Cache::builder(unique_name("flush"))
        .policy(Policy::Lru)
        .redis(server.url())
        .build_blocking()
        .unwrap();
    let mut con = server.connection();
    for round in 0..30u64 {
        match round % 10 {
            3 => redis::cmd("SCRIPT").arg("FLUSH").exec(&mut con).unwrap(),
            7 => redis::cmd("FLUSHALL").exec(&mut con).unwrap(),
            _ => {}
        }
        for x in 0..5u64 {
            assert_eq!(cache.get_or_compute("f", &x, || x + 100).unwrap(), x + 100);
        }
    }
    assert_eq!(
        cache.stats().errors,
        0,
        "NOSCRIPT is handled, FLUSHALL is just misses"
    );
    assert!(cache.stats().hits > 0);
}

/// The async driver's connections have no response timeout of their own (one timer per op,
/// the op timeout's): an op whose timeout is longer than the driver's bound on one request
/// (two seconds) still gives up on a request at that bound, as redis-rs's own timeout did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_op_with_a_long_timeout_gives_up_on_a_request_at_the_response_bound() {
    let server = RedisServer::spawn();
    let cache = Cache::builder(unique_name("pause-long"))
        .redis(server.url())
        .op_timeout(Duration::from_secs(60))
        .circuit_breaker(CircuitBreaker::DISABLED)
        .build()
        .unwrap();
    cache
        .get_or_compute("f", &1u8, || async { 1u32 })
        .await
        .unwrap();
    // Connected before the pause (see `a_paused_server_costs_a_call_at_most_the_op_timeout`).
    let probe = server.connection();
    let mut con = server.connection();
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(8000)
        .arg("ALL")
        .exec(&mut con)
        .unwrap();
    // Failed open: the lookup gave up, the function ran.
    assert_eq!(
        cache
            .get_or_compute("f", &1u8, || async { 2u32 })
            .await
            .unwrap(),
        2
    );
    // Proof that the call did not wait the pause out: the server is still paused now.
    probe
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut probe = probe;
    assert!(
        redis::cmd("PING").query::<String>(&mut probe).is_err(),
        "the call waited the pause out"
    );
    assert!(cache.stats().fail_open >= 1);
}

#[test]
fn a_paused_server_costs_a_call_at_most_the_op_timeout() {
    let server = RedisServer::spawn();
    let op_timeout = Duration::from_millis(100);
    let cache = Cache::builder(unique_name("pause"))
        .redis(server.url())
        .op_timeout(op_timeout)
        .circuit_breaker(CircuitBreaker::DISABLED)
        .build_blocking()
        .unwrap();
    cache.get_or_compute("f", &1u8, || 1u32).unwrap();
    // Connected before the pause: Redis >= 7.2 and Valkey hold back a new connection's
    // handshake (CLIENT SETINFO) during a pause, so a probe connected later would time out.
    let probe = server.connection();
    let mut con = server.connection();
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3000)
        .arg("ALL")
        .exec(&mut con)
        .unwrap();
    let mut worst = Duration::ZERO;
    for x in 0..5u8 {
        let started = Instant::now();
        assert_eq!(
            cache.get_or_compute("f", &x, || u32::from(x) + 10).unwrap(),
            u32::from(x) + 10
        );
        worst = worst.max(started.elapsed());
    }
    // Proof that no call waited the pause out: the server is still paused now.
    probe
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut probe = probe;
    assert!(
        redis::cmd("PING").query::<String>(&mut probe).is_err(),
        "the pause outlasted every call"
    );
    println!("paused server: worst call took {worst:?} with op_timeout {op_timeout:?}");
    assert!(cache.stats().fail_open >= 5);
}

#[test]
fn an_open_circuit_skips_the_server_then_probes_and_recovers() {
    let mut server = RedisServer::spawn();
    let cool_down = Duration::from_secs(2);
    let cache = Cache::builder(unique_name("breaker"))
        .redis(server.url())
        .circuit_breaker(CircuitBreaker {
            failures: 3,
            cool_down,
        })
        .build_blocking()
        .unwrap();
    server.stop();
    for x in 0..3u8 {
        cache.get_or_compute("f", &x, || x).unwrap(); // three failed lookups open the circuit
    }
    let opened = Instant::now();
    server.restart();
    let mut con = server.connection();
    redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .exec(&mut con)
        .unwrap();
    cache.get_or_compute("f", &9u8, || 9).unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut con)
        .unwrap();
    if opened.elapsed() < cool_down {
        assert!(
            !info.contains("evalsha"),
            "an open circuit skips the server: {info}"
        );
    }
    eventually("the circuit closes after a successful probe", || {
        cache.get_or_compute("f", &10u8, || 10).unwrap();
        cache.stats().writes > 0
    });
}

#[test]
fn read_only_and_out_of_memory_servers_fail_open() {
    let server = RedisServer::spawn();
    let cache = Cache::builder(unique_name("errors"))
        .redis(server.url())
        .circuit_breaker(CircuitBreaker::DISABLED)
        .build_blocking()
        .unwrap();
    let mut con = server.connection();
    // OOM: no memory for writes.
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("1")
        .exec(&mut con)
        .unwrap();
    for x in 0..3u8 {
        assert_eq!(
            cache.get_or_compute("f", &x, || u32::from(x) + 1).unwrap(),
            u32::from(x) + 1
        );
    }
    let after_oom = cache.stats();
    assert!(after_oom.errors >= 3, "{after_oom:?}");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg("0")
        .exec(&mut con)
        .unwrap();
    // READONLY: the server becomes a replica of nothing reachable.
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg("1")
        .exec(&mut con)
        .unwrap();
    for x in 0..3u8 {
        assert_eq!(
            cache.get_or_compute("g", &x, || u32::from(x) + 2).unwrap(),
            u32::from(x) + 2
        );
    }
    assert!(
        cache.stats().errors > after_oom.errors,
        "{:?}",
        cache.stats()
    );
    redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .exec(&mut con)
        .unwrap();
    cache.get_or_compute("h", &1u8, || 3u32).unwrap();
    assert_eq!(
        cache.get_or_compute("h", &1u8, || 4u32).unwrap(),
        3,
        "works again"
    );
}
