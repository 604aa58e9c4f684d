//! The near cache on a Redis Cluster (`Layout::Cluster`): the link subscribes with sharded
//! pub/sub on the node of the structure's slot, follows the slot when it moves, and drops
//! every copy when its node fails over. One cluster, broken at the end.

use std::thread;
use std::time::{Duration, Instant};

use fncache::{Cache, Layout, blocking};
use fncache_testing::RedisCluster;

use crate::support::unique_name;

const RECOMPUTED: u64 = 1000;

fn read(a: &blocking::Cache) -> u64 {
    a.get_or_compute("f", &(1u64,), || RECOMPUTED).unwrap()
}

/// Reads until A serves `f(1)` from its near cache; returns that value.
fn warm(a: &blocking::Cache) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let before = a.stats().near_hits;
        let value = read(a);
        if a.stats().near_hits > before {
            return value;
        }
        assert!(Instant::now() < deadline, "no near hit within 20 s");
        thread::sleep(Duration::from_millis(5));
    }
}

/// A serves `want` within `within`, never a value other than `old` before, never `old` after.
fn converges(a: &blocking::Cache, old: u64, want: u64, within: Duration, what: &str) {
    let start = Instant::now();
    loop {
        let value = read(a);
        if value == want {
            break;
        }
        assert_eq!(value, old, "{what}: neither the old nor the new value");
        assert!(start.elapsed() < within, "{what}: still the old value");
        thread::sleep(Duration::from_millis(1));
    }
    for _ in 0..100 {
        assert_eq!(read(a), want, "{what}: the old value came back");
    }
}

fn until(what: &str, within: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn near_copies_stay_coherent_on_a_cluster_through_a_slot_move_and_a_failover() {
    let mut cluster = RedisCluster::spawn();
    let name = unique_name();
    let builder = || {
        Cache::builder(&name)
            .layout(Layout::Cluster)
            .redis_cluster(cluster.seed_urls())
    };
    let a = builder().near_cache(100).build_blocking().unwrap();
    let b = builder().build_blocking().unwrap();
    // The per-function cluster layout spreads structures over slots: refused.
    let e = builder()
        .layout(Layout::ClusterPerFunction)
        .near_cache(10)
        .build_blocking()
        .unwrap_err();
    assert_eq!(e.kind(), fncache::ErrorKind::Config);

    // Changes in B reach A's copies, published by the node of the slot.
    b.put("f", &(1u64,), &1u64).unwrap();
    assert_eq!(warm(&a), 1);
    b.put("f", &(1u64,), &2u64).unwrap();
    converges(&a, 1, 2, Duration::from_millis(100), "put");
    assert_eq!(warm(&a), 2);
    assert!(b.invalidate("f", &(1u64,)).unwrap());
    converges(&a, 2, RECOMPUTED, Duration::from_millis(100), "invalidate");
    assert_eq!(warm(&a), RECOMPUTED);
    b.put("f", &(1u64,), &3u64).unwrap();
    converges(&a, RECOMPUTED, 3, Duration::from_millis(100), "put again");

    // The slot moves to another primary: the node ends the subscription, A drops its copies
    // and follows the slot.
    let keys = cluster.keys(&format!("func-cache:{{{name}:*"));
    assert!(!keys.is_empty(), "the structure's keys");
    let slot = cluster.slot_of(&keys[0]);
    let from = cluster.primary_for_key(&keys[0]);
    let to = *cluster.primaries().iter().find(|&&p| p != from).unwrap();
    assert_eq!(warm(&a), 3);
    let resets = a.stats().near_resets;
    cluster.migrate_slot(slot, to, true);
    until(
        "the link to notice the slot's move",
        Duration::from_secs(5),
        || a.stats().near_resets > resets,
    );
    assert_eq!(warm(&a), 3, "the link follows the slot");
    b.put("f", &(1u64,), &4u64).unwrap();
    converges(&a, 3, 4, Duration::from_millis(100), "put after the move");

    // The slot's primary dies: A drops its copies at once, and once the replica has taken
    // over, serves what is written there.
    assert_eq!(warm(&a), 4);
    let replicated: u64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut cluster.node_connection(to))
        .unwrap();
    assert_eq!(replicated, 1);
    let replica = cluster.replica_of(to);
    let resets = a.stats().near_resets;
    cluster.kill(to);
    until(
        "the link to notice its node died",
        Duration::from_secs(5),
        || a.stats().near_resets > resets,
    );
    cluster.promote(replica);
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.put("f", &(1u64,), &5u64).is_err() {
        assert!(
            Instant::now() < deadline,
            "B cannot write after the failover"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let value = read(&a);
        assert_ne!(value, 4, "a copy from before the failover");
        if value == 5 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A never saw the new value ({value})"
        );
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(warm(&a), 5, "the link is back, on the new primary");
    b.put("f", &(1u64,), &6u64).unwrap();
    converges(
        &a,
        5,
        6,
        Duration::from_millis(100),
        "put after the failover",
    );
}
