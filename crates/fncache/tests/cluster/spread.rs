//! A cache spread over a real cluster: many functions over many slots and every primary,
//! `len`/`purge`/`vacuum` across primaries, scripts reloaded where they are missing, and
//! `ASK`/`MOVED` redirections while a slot moves. One cluster serves every scenario in turn.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use fncache::{Cache, Layout, Policy};
use fncache_testing::RedisCluster;

use crate::support::{Front, unique_name};

#[test]
fn a_cache_spreads_over_the_cluster_and_follows_its_changes() {
    let cluster = RedisCluster::spawn();
    many_functions_spread_over_every_primary(&cluster);
    the_cluster_layout_keeps_one_slot(&cluster);
    vacuum_reclaims_on_every_primary(&cluster);
    tags_are_invalidated_on_every_primary(&cluster);
    scripts_are_reloaded_on_the_nodes_that_lost_them(&cluster);
    a_cluster_client_you_bring(&cluster);
    a_minimal_acl_user_on_every_node(&cluster);
    redirections_are_followed(&cluster);
}

/// The ACL rules the README documents for a cluster, granted on every node (ACL users are
/// per node), are enough for everything a cache does.
fn a_minimal_acl_user_on_every_node(cluster: &RedisCluster) {
    let mut setuser = redis::cmd("ACL");
    setuser
        .arg("SETUSER")
        .arg("cache")
        .arg("reset")
        .arg("on")
        .arg(">cluster-pw")
        .arg(crate::acl::MINIMAL)
        .arg(crate::acl::CLUSTER_EXTRA);
    cluster.on_every_node(&setuser);
    let seeds: Vec<String> = cluster
        .live_ports()
        .iter()
        .map(|port| format!("redis://cache:cluster-pw@127.0.0.1:{port}/"))
        .collect();
    for layout in [Layout::Cluster, Layout::ClusterPerFunction] {
        for front in Front::both(|| {
            Cache::builder(unique_name())
                .layout(layout)
                .entry_ttl(Duration::from_secs(600))
                .redis_cluster(seeds.clone())
                .strict(true)
        }) {
            let who = format!("minimal ACL user, {layout:?}, {}", front.label());
            assert!(!front.debug().contains("cluster-pw"), "{who}");
            let execs = AtomicU64::new(0);
            for f in 0..20 {
                front.call(&format!("f{f}"), 1, &execs);
            }
            for f in 0..20 {
                assert!(front.is_hit(&format!("f{f}"), 1), "{who}");
                assert!(front.contains(&format!("f{f}"), 1), "{who}");
            }
            assert_eq!(front.len(), 20, "{who}");
            assert_eq!(front.vacuum(), 0, "{who}");
            assert_eq!(front.purge(), 20, "{who}");
        }
    }
}

fn a_cluster_client_you_bring(cluster: &RedisCluster) {
    let client = cluster.client();
    for front in Front::both(|| {
        Cache::builder(unique_name())
            .layout(Layout::ClusterPerFunction)
            .redis_cluster_client(client.clone())
            .strict(true)
    }) {
        let who = format!("cluster client, {}", front.label());
        let execs = AtomicU64::new(0);
        for f in 0..20 {
            front.call(&format!("f{f}"), 1, &execs);
        }
        for f in 0..20 {
            assert!(front.is_hit(&format!("f{f}"), 1), "{who}");
        }
        assert_eq!(front.len(), 20, "{who}");
        assert_eq!(front.purge(), 20, "{who}");
        assert!(front.debug().contains("your cluster client"), "{who}");
    }
    // A cluster needs a cluster layout.
    let err = Cache::builder("x")
        .redis_cluster_client(client)
        .build_blocking()
        .unwrap_err();
    assert_eq!(err.kind(), fncache::ErrorKind::Config);
    assert!(err.to_string().contains("Layout::Cluster"), "{err}");
}

fn per_function(cluster: &RedisCluster, name: &str) -> fncache::Builder {
    Cache::builder(name)
        .layout(Layout::ClusterPerFunction)
        .redis_cluster(cluster.seed_urls())
}

/// The primary port holding each key of the cache named `name`.
fn keys_by_primary(cluster: &RedisCluster, name: &str) -> BTreeMap<u16, Vec<String>> {
    // `{name}:` appears in the keys of both cluster layouts, inside the hash tag or not.
    let pattern = format!("*{name}:*");
    cluster
        .primaries()
        .into_iter()
        .map(|port| {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query(&mut cluster.node_connection(port))
                .unwrap();
            // Entry keys only: not the registry and shared counters (kept by purge).
            let keys = keys
                .into_iter()
                .filter(|k: &String| !k.ends_with(":registry") && !k.ends_with(":stats"))
                .collect();
            (port, keys)
        })
        .collect()
}

fn many_functions_spread_over_every_primary(cluster: &RedisCluster) {
    const FUNCTIONS: u64 = 150;
    for make in [Front::blocking, Front::asynchronous] {
        let name = unique_name();
        let front = make(per_function(cluster, &name));
        let who = front.label();
        let execs = AtomicU64::new(0);
        for f in 0..FUNCTIONS {
            front.call(&format!("app::f{f}"), 1, &execs);
            if f % 2 == 0 {
                front.call(&format!("app::f{f}"), 2, &execs);
            }
        }
        let total = (FUNCTIONS + FUNCTIONS / 2) as usize;
        assert_eq!(front.len(), total, "{who}: len counts every primary");
        assert_eq!(front.stats().errors, 0, "{who}");

        let by_primary = keys_by_primary(cluster, &name);
        assert_eq!(by_primary.len(), 3, "{who}");
        for (port, keys) in &by_primary {
            assert!(
                !keys.is_empty(),
                "{who}: primary {port} holds none of the cache"
            );
        }
        let slots: BTreeSet<u16> = by_primary
            .values()
            .flatten()
            .map(|k| cluster.slot_of(k))
            .collect();
        assert!(slots.len() > 100, "{who}: only {} slots used", slots.len());

        for f in 0..FUNCTIONS {
            assert!(front.is_hit(&format!("app::f{f}"), 1), "{who}: f{f}(1) hit");
        }
        assert_eq!(front.purge(), total, "{who}: purge counts every primary");
        assert_eq!(front.len(), 0, "{who}");
        let left: Vec<String> = keys_by_primary(cluster, &name)
            .into_values()
            .flatten()
            .collect();
        assert!(left.is_empty(), "{who}: purge left {left:?}");
        assert_eq!(front.purge(), 0, "{who}");
    }
}

fn the_cluster_layout_keeps_one_slot(cluster: &RedisCluster) {
    for make in [Front::blocking, Front::asynchronous] {
        let name = unique_name();
        let front = make(
            Cache::builder(&name)
                .policy(Policy::Lru)
                .layout(Layout::Cluster)
                .entry_ttl(Duration::from_secs(600))
                .redis_cluster(cluster.seed_urls()),
        );
        let who = front.label();
        let execs = AtomicU64::new(0);
        for f in 0..20 {
            front.call(&format!("f{f}"), 1, &execs);
        }
        let index = format!("func-cache:{{{name}:lru-c}}:0");
        let home = cluster.primary_for_key(&index);
        let by_primary = keys_by_primary(cluster, &name);
        let mut want = vec![
            index.clone(),
            format!("func-cache:{{{name}:lru-c}}:1"),
            format!("func-cache:{{{name}:lru-c}}:2"),
        ];
        want.sort();
        for (port, mut keys) in by_primary {
            keys.sort();
            if port == home {
                assert_eq!(keys, want, "{who}: the whole cache on one primary");
            } else {
                assert!(keys.is_empty(), "{who}: {port} holds {keys:?}");
            }
        }
        assert_eq!(front.len(), 20, "{who}");
        assert_eq!(front.purge(), 20, "{who}");
        assert_eq!(front.len(), 0, "{who}");
    }
}

/// A tag spans functions on every primary (one script per slot), and its bookkeeping lives
/// beside each structure (its hash slot): nothing of it is left anywhere.
fn tags_are_invalidated_on_every_primary(cluster: &RedisCluster) {
    for layout in [Layout::ClusterPerFunction, Layout::Cluster] {
        for make in [Front::blocking, Front::asynchronous] {
            let name = unique_name();
            let front = make(
                Cache::builder(&name)
                    .layout(layout)
                    .redis_cluster(cluster.seed_urls()),
            );
            let who = format!("{} {layout:?}", front.label());
            let tagged = fncache::CallOptions::new().tags(["user:7"]);
            for f in 0..40u64 {
                front
                    .call_with(&tagged, &format!("app::f{f}"), 1, || f)
                    .unwrap();
                front
                    .call_with(&fncache::CallOptions::new(), &format!("app::f{f}"), 2, || f)
                    .unwrap();
            }
            if layout == Layout::ClusterPerFunction {
                assert_eq!(keys_by_primary(cluster, &name).len(), 3, "{who}");
            }
            assert_eq!(front.invalidate_tag("user:7"), 40, "{who}: every primary");
            assert_eq!(front.len(), 40, "{who}: the untagged entries stay");
            assert_eq!(front.invalidate_tag("user:7"), 0, "{who}");
            // What is left of the tags: in each structure, the time of the invalidation (`g`).
            let mut left = Vec::new();
            for (port, keys) in keys_by_primary(cluster, &name) {
                let mut con = cluster.node_connection(port);
                for key in keys {
                    if key.ends_with(":3") {
                        let fields: Vec<Vec<u8>> =
                            redis::cmd("HKEYS").arg(&key).query(&mut con).unwrap();
                        if fields == [b"g".to_vec()] {
                            continue;
                        }
                    }
                    if key.ends_with(":3") || key.ends_with(":4") {
                        left.push(key);
                    }
                }
            }
            assert!(left.is_empty(), "{who}: left {left:?}");
            assert_eq!(front.purge(), 40, "{who}");
        }
    }
}

fn vacuum_reclaims_on_every_primary(cluster: &RedisCluster) {
    for make in [Front::blocking, Front::asynchronous] {
        let name = unique_name();
        let front = make(per_function(cluster, &name).entry_ttl(Duration::from_millis(100)));
        let who = front.label();
        let execs = AtomicU64::new(0);
        for f in 0..30 {
            front.call(&format!("f{f}"), 1, &execs);
        }
        assert_eq!(keys_by_primary(cluster, &name).len(), 3);
        std::thread::sleep(Duration::from_millis(250)); // every entry TTL passes
        assert_eq!(front.len(), 0, "{who}: expired entries are not counted");
        assert_eq!(
            front.vacuum(),
            30,
            "{who}: vacuum reclaims on every primary"
        );
        assert_eq!(front.vacuum(), 0, "{who}");
    }
}

fn scripts_are_reloaded_on_the_nodes_that_lost_them(cluster: &RedisCluster) {
    for make in [Front::blocking, Front::asynchronous] {
        let front = make(per_function(cluster, &unique_name()).strict(true));
        let who = front.label();
        let execs = AtomicU64::new(0);
        for f in 0..30 {
            front.call(&format!("f{f}"), 1, &execs);
        }
        cluster.on_every_node(redis::cmd("SCRIPT").arg("FLUSH"));
        // Strict: a NOSCRIPT that were not handled would be an error here.
        for f in 0..30 {
            assert!(
                front.is_hit(&format!("f{f}"), 1),
                "{who}: f{f} after SCRIPT FLUSH"
            );
        }
        assert_eq!(front.len(), 30, "{who}");
        assert_eq!(front.purge(), 30, "{who}");
    }
}

/// Finds a function whose structure lives on a primary, and another primary to move it to.
fn function_and_destination(
    cluster: &RedisCluster,
    name: &str,
    prefix: &str,
) -> (String, u16, u16) {
    let by_primary = keys_by_primary(cluster, name);
    let key = by_primary
        .values()
        .flatten()
        .find(|k| k.contains(&format!(":{prefix}")) && k.ends_with(":1"))
        .unwrap()
        .clone();
    let function = key
        .split("-cm:")
        .nth(1)
        .and_then(|rest| rest.split('#').next())
        .unwrap()
        .to_owned();
    let from = cluster.primary_for_key(&key);
    let to = cluster
        .primaries()
        .into_iter()
        .find(|&p| p != from)
        .unwrap();
    (function, cluster.slot_of(&key), to)
}

fn redirections_are_followed(cluster: &RedisCluster) {
    // Strict caches: a redirection that were not followed would be an error here. An entry TTL
    // keeps all three keys of a structure in existence (the expiry set `:2` included), so a
    // script can run on the importing node of a slot half-way through a migration: Redis
    // answers TRYAGAIN to a multi-key request whose keys are split between two nodes.
    let name = unique_name();
    // No stampede protection for them: a lease key that does not exist on the importing node
    // would make the lookup a TRYAGAIN too.
    let fronts = Front::both(|| {
        per_function(cluster, &name)
            .entry_ttl(Duration::from_secs(600))
            .stampede_protection(false)
            .strict(true)
    });
    // A cache without entry TTLs has no `:2` key: mid-migration its calls fail open. (The hash
    // tag is the function's digest, so the same function of any cache shares the slot.)
    let lenient_name = unique_name();
    let lenient = Front::both(|| per_function(cluster, &lenient_name));
    let execs = AtomicU64::new(0);
    for f in 0..10 {
        for front in &fronts {
            front.call(&format!("ask{f}"), 1, &execs);
            front.call(&format!("moved{f}"), 1, &execs);
        }
        lenient[0].call(&format!("ask{f}"), 1, &execs);
    }

    // ASK: the slot is half-way to another primary, its keys already there.
    let (function, slot, to) = function_and_destination(cluster, &name, "ask");
    cluster.migrate_slot(slot, to, false);
    for (i, front) in (0..).zip(&fronts) {
        let who = front.label();
        assert!(
            front.is_hit(&function, 1),
            "{who}: {function}(1) served after ASK"
        );
        assert!(
            !front.is_hit(&function, 100 + i),
            "{who}: a new entry is stored"
        );
        assert!(
            front.is_hit(&function, 100 + i),
            "{who}: and served after ASK"
        );
    }
    for front in &lenient {
        assert_eq!(front.call(&function, 1, &execs), 10, "{}", front.label());
    }
    cluster.migrate_slot(slot, to, true);
    for front in &lenient {
        assert!(
            front.is_hit(&function, 1),
            "{}: served once the slot moved",
            front.label()
        );
    }

    // MOVED: the slot has moved for good; the caches' maps are stale.
    let (function, slot, to) = function_and_destination(cluster, &name, "moved");
    cluster.migrate_slot(slot, to, true);
    for (i, front) in (0..).zip(&fronts) {
        let who = front.label();
        assert!(
            front.is_hit(&function, 1),
            "{who}: {function}(1) served after MOVED"
        );
        assert!(
            !front.is_hit(&function, 100 + i),
            "{who}: a new entry is stored"
        );
        assert!(front.is_hit(&function, 100 + i), "{who}: and served");
        assert_eq!(front.stats().errors, 0, "{who}");
    }
    // 20 functions with one entry each, and two new entries in each moved slot.
    for front in &fronts {
        assert_eq!(front.len(), 24, "{}", front.label());
    }
}
