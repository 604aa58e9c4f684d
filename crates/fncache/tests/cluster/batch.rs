//! Batches on a real cluster: each function's batch is pipelined to the node of its slot, in
//! both cluster layouts (one slot for the whole cache, or functions spread over the slots),
//! through both front-ends, and scripts the nodes lost are reloaded inside a pipeline.

use std::sync::Mutex;
use std::time::Duration;

use fncache::{Cache, Layout};
use fncache_testing::RedisCluster;

use crate::support::{Front, unique_name};

/// A batch of `function` over `xs`, computing `x * 10`; the arguments computed go to `asked`.
fn many(front: &Front, function: &str, xs: &[u64], asked: &Mutex<Vec<u64>>) -> Vec<u64> {
    let compute = |missing: Vec<u64>| {
        asked.lock().unwrap().extend(missing.iter().copied());
        missing.iter().map(|x| x * 10).collect::<Vec<u64>>()
    };
    match front {
        Front::Blocking(c) => c.get_or_compute_many(function, xs, compute).unwrap(),
        Front::Async(c, rt) => rt
            .block_on(c.get_or_compute_many(function, xs, |m| {
                let values = compute(m);
                async move { values }
            }))
            .unwrap(),
    }
}

#[test]
fn batches_are_pipelined_to_each_functions_slot() {
    let cluster = RedisCluster::spawn();
    for layout in [Layout::Cluster, Layout::ClusterPerFunction] {
        for front in Front::both(|| {
            Cache::builder(unique_name())
                .layout(layout)
                .entry_ttl(Duration::from_secs(600))
                .redis_cluster(cluster.seed_urls())
                // Strict: a batch that failed on the cluster would be an error here.
                .strict(true)
        }) {
            let who = format!("{layout:?}, {}", front.label());
            // Twenty functions: in the per-function layout, over many slots and every primary.
            for f in 0..20 {
                let function = format!("f{f}");
                let asked = Mutex::new(Vec::new());
                assert_eq!(many(&front, &function, &[1, 2], &asked), [10, 20], "{who}");
                assert_eq!(
                    many(&front, &function, &[2, 3, 1, 3], &asked),
                    [20, 30, 10, 30],
                    "{who}"
                );
                assert_eq!(*asked.lock().unwrap(), [1, 2, 3], "{who}: {function}");
            }
            assert_eq!(front.len(), 60, "{who}");
            // Scripts lost by every node come back inside the batches' pipelines.
            cluster.on_every_node(redis::cmd("SCRIPT").arg("FLUSH"));
            for f in 0..20 {
                let asked = Mutex::new(Vec::new());
                let values = many(&front, &format!("f{f}"), &[3, 4, 5], &asked);
                assert_eq!(values, [30, 40, 50], "{who}");
                assert_eq!(*asked.lock().unwrap(), [4, 5], "{who}");
            }
            assert_eq!(front.len(), 100, "{who}");
            let stats = front.stats();
            assert_eq!(stats.errors, 0, "{who}");
            assert_eq!(front.purge(), 100, "{who}");
        }
    }
}

/// A batch whose slot moved to another primary after the client learned the slot map: the
/// pipeline meets `MOVED`, and the batch must still be served from the store (through both
/// front-ends), not fail open and recompute. (While the slot is still migrating, a script whose
/// keys are split between the nodes gets `TRYAGAIN` and fails open, as the README says.)
#[test]
fn batches_follow_a_slot_that_moved() {
    let cluster = RedisCluster::spawn();
    for front in Front::both(|| {
        Cache::builder(unique_name())
            .layout(Layout::Cluster)
            .entry_ttl(Duration::from_secs(600))
            .redis_cluster(cluster.seed_urls())
            // Strict: a batch that failed on the cluster would be an error here.
            .strict(true)
    }) {
        let who = front.label();
        let asked = Mutex::new(Vec::new());
        assert_eq!(many(&front, "f", &[1, 2, 3], &asked), [10, 20, 30], "{who}");
        let keys = cluster.keys(&format!("func-cache:{{{}:*", front.name()));
        assert!(!keys.is_empty(), "{who}: the structure's keys");
        let slot = cluster.slot_of(&keys[0]);
        let from = cluster.primary_for_key(&keys[0]);
        let to = *cluster.primaries().iter().find(|&&p| p != from).unwrap();
        cluster.migrate_slot(slot, to, true);
        // Every key of the batch is a hit on the node that now holds the structure.
        assert_eq!(many(&front, "f", &[3, 2, 1], &asked), [30, 20, 10], "{who}");
        assert_eq!(
            *asked.lock().unwrap(),
            [1, 2, 3],
            "{who}: nothing recomputed"
        );
        // A batch with misses stores them where the slot now lives.
        assert_eq!(many(&front, "f", &[4, 1], &asked), [40, 10], "{who}");
        assert_eq!(many(&front, "f", &[4], &asked), [40], "{who}");
        assert_eq!(*asked.lock().unwrap(), [1, 2, 3, 4], "{who}");
        assert_eq!(
            cluster.primary_for_key(&keys[0]),
            to,
            "{who}: the slot moved"
        );
        assert_eq!(front.stats().errors, 0, "{who}");
        assert_eq!(front.purge(), 4, "{who}");
    }
}
