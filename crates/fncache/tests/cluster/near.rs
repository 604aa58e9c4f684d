//! The near cache on a Redis Cluster (`Layout::Cluster`, `Layout::ClusterPerFunction`): the
//! link subscribes with sharded pub/sub on the node of the structure's slot (a channel per
//! structure in the per-function layout), follows the slot when it moves, and drops every copy
//! when its node fails over. One cluster per test, broken at the end.

use std::thread;
use std::time::{Duration, Instant};

use fncache::{Cache, CallOptions, Layout, blocking};
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

/// A's read of `function(1)`.
fn read_of(a: &blocking::Cache, function: &str) -> u64 {
    a.get_or_compute(function, &(1u64,), || RECOMPUTED).unwrap()
}

/// Reads until A serves `function(1)` from its near cache; returns that value.
fn warm_of(a: &blocking::Cache, function: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let before = a.stats().near_hits;
        let value = read_of(a, function);
        if a.stats().near_hits > before {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{function}: no near hit within 20 s"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// [`converges`] for `function(1)`.
fn converges_of(a: &blocking::Cache, function: &str, old: u64, want: u64, what: &str) {
    let start = Instant::now();
    loop {
        let value = read_of(a, function);
        if value == want {
            break;
        }
        assert_eq!(value, old, "{what}: neither the old nor the new value");
        assert!(
            start.elapsed() < Duration::from_millis(100),
            "{what}: still the old value after {:?}",
            start.elapsed()
        );
        thread::sleep(Duration::from_millis(1));
    }
    for _ in 0..100 {
        assert_eq!(
            read_of(a, function),
            want,
            "{what}: the old value came back"
        );
    }
}

/// `Layout::ClusterPerFunction`: every structure has a channel of its own in its slot; A
/// subscribes each on its slot's primary as the function is first used. Functions on two
/// nodes: every kind of change in B reaches A within 100 ms, and a slot that moves drops the
/// copies and is followed.
#[test]
fn near_copies_stay_coherent_per_function_on_a_cluster() {
    let cluster = RedisCluster::spawn();
    let name = unique_name();
    let builder = || {
        Cache::builder(&name)
            .layout(Layout::ClusterPerFunction)
            .redis_cluster(cluster.seed_urls())
    };
    let a = builder().near_cache(100).build_blocking().unwrap();
    let b = builder().build_blocking().unwrap();
    let tagged = CallOptions::new().tags::<u64, _>(["t"]);
    let functions: Vec<String> = (0..12).map(|i| format!("f{i}")).collect();
    for f in &functions {
        b.get_or_compute_with(&tagged, f, &(1u64,), || 1u64)
            .unwrap();
    }
    // Two functions whose structures are on different primaries.
    let node_of = |f: &str| {
        let keys = cluster.keys(&format!("func-cache:{name}:*-cm:{f}#*:1"));
        assert_eq!(keys.len(), 1, "{f}: {keys:?}");
        (cluster.primary_for_key(&keys[0]), keys[0].clone())
    };
    let (x, (x_node, x_key)) = (functions[0].as_str(), node_of(&functions[0]));
    let y = functions[1..]
        .iter()
        .find(|f| node_of(f).0 != x_node)
        .expect("a function on another node")
        .as_str();

    for f in &functions {
        assert_eq!(warm_of(&a, f), 1);
    }
    // Twelve channels, one connection per node that serves some of them.
    let links: Vec<usize> = cluster
        .primaries()
        .into_iter()
        .map(|port| {
            let list: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query(&mut cluster.node_connection(port))
                .unwrap();
            list.lines()
                .filter(|l| l.contains(" name=fncache-near:") && l.contains(&name))
                .count()
        })
        .collect();
    assert!(links.iter().all(|&n| n <= 1), "links per node: {links:?}");
    assert!(links.iter().filter(|&&n| n == 1).count() >= 2, "{links:?}");
    // Idle links probe their nodes and stay up.
    // (A node link's probe is a SUBSCRIBE of the tracking channel again, see `per_node.rs`.)
    let probes = || -> u64 {
        cluster
            .primaries()
            .into_iter()
            .map(|port| {
                let info: String = redis::cmd("INFO")
                    .arg("commandstats")
                    .query(&mut cluster.node_connection(port))
                    .unwrap();
                info.lines()
                    .find_map(|l| l.strip_prefix("cmdstat_subscribe:calls="))
                    .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
            })
            .sum()
    };
    let (resets, probed) = (a.stats().near_resets, probes());
    thread::sleep(Duration::from_millis(2500)); // time for the links' probes to go out
    assert!(probes() > probed, "the idle links probed their nodes");
    assert_eq!(a.stats().near_resets, resets, "idle links stayed up");
    let hits = a.stats().near_hits;
    assert_eq!(read_of(&a, x), 1);
    assert_eq!(a.stats().near_hits, hits + 1);
    b.put(x, &(1u64,), &2u64).unwrap();
    converges_of(&a, x, 1, 2, "put");
    assert_eq!(warm_of(&a, y), 1, "another node's copy stays");
    assert!(b.invalidate(y, &(1u64,)).unwrap());
    converges_of(&a, y, 1, RECOMPUTED, "invalidate");
    assert_eq!(warm_of(&a, x), 2);
    assert_eq!(b.purge_function(x).unwrap(), 1);
    converges_of(&a, x, 2, RECOMPUTED, "purge_function");
    for f in [x, y] {
        // (A stored its recomputed value: overwritten.)
        b.put_with(&tagged, f, &(1u64,), &3u64).unwrap();
    }
    for f in [x, y] {
        // B's message may reach A a little after B's put returns.
        converges_of(&a, f, RECOMPUTED, 3, "put after invalidate");
        assert_eq!(warm_of(&a, f), 3);
    }
    assert!(b.invalidate_tag("t").unwrap() >= 2);
    converges_of(&a, x, 3, RECOMPUTED, "invalidate_tag, one node");
    converges_of(&a, y, 3, RECOMPUTED, "invalidate_tag, the other");

    // x's slot moves to another primary: its node ends the subscription, A drops its copies
    // and follows the slot.
    b.put(x, &(1u64,), &4u64).unwrap();
    converges_of(&a, x, RECOMPUTED, 4, "put before the move");
    assert_eq!(warm_of(&a, x), 4);
    let slot = cluster.slot_of(&x_key);
    let to = *cluster.primaries().iter().find(|&&p| p != x_node).unwrap();
    let resets = a.stats().near_resets;
    cluster.migrate_slot(slot, to, true);
    until(
        "the link to notice the slot's move",
        Duration::from_secs(5),
        || a.stats().near_resets > resets,
    );
    assert_eq!(warm_of(&a, x), 4, "the link follows the slot");
    b.put(x, &(1u64,), &5u64).unwrap();
    converges_of(&a, x, 4, 5, "put after the move");

    // y's primary dies: A drops its copies at once, and once the replica has taken over, its
    // link subscribes y's channel there.
    let y_node = node_of(y).0;
    b.put(y, &(1u64,), &6u64).unwrap();
    converges_of(&a, y, RECOMPUTED, 6, "put before the failover");
    assert_eq!(warm_of(&a, y), 6);
    let replicated: u64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut cluster.node_connection(y_node))
        .unwrap();
    assert_eq!(replicated, 1);
    let replica = cluster.replica_of(y_node);
    let resets = a.stats().near_resets;
    let mut cluster = cluster;
    cluster.kill(y_node);
    until(
        "the link to notice its node died",
        Duration::from_secs(5),
        || a.stats().near_resets > resets,
    );
    cluster.promote(replica);
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.put(y, &(1u64,), &7u64).is_err() {
        assert!(
            Instant::now() < deadline,
            "B cannot write after the failover"
        );
        thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let value = read_of(&a, y);
        assert_ne!(value, 6, "a copy from before the failover");
        if value == 7 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A never saw the new value ({value})"
        );
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(warm_of(&a, y), 7, "the link is back, on the new primary");
    b.put(y, &(1u64,), &8u64).unwrap();
    converges_of(&a, y, 7, 8, "put after the failover");
}
