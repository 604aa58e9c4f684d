//! The policy traces of the foundation issue (maxsize 3), on both cluster layouts and both
//! front-ends, against one real cluster.

use std::sync::atomic::{AtomicU64, Ordering};

use fncache::{Cache, Layout, Policy};
use fncache_testing::{RedisCluster, RedisServer};

use crate::support::{Front, unique_name};

const M: bool = false;
const H: bool = true;

/// One trace: the policies it holds for, the calls as (argument, hit), the final contents
/// among 0..=3.
type Trace = (Vec<Policy>, Vec<(u64, bool)>, Vec<u64>);

/// The trace table of `tests/core/traces.rs`.
fn table() -> Vec<Trace> {
    vec![
        (
            vec![Policy::Lru, Policy::LruT],
            vec![(0, M), (1, M), (2, M), (0, H), (3, M), (1, M)],
            vec![0, 1, 3],
        ),
        (
            vec![Policy::Fifo, Policy::FifoT],
            vec![(0, M), (1, M), (2, M), (0, H), (1, H), (3, M), (0, M)],
            vec![0, 2, 3],
        ),
        (
            vec![Policy::Lfu],
            vec![
                (0, M),
                (1, M),
                (2, M),
                (0, H),
                (0, H),
                (1, H),
                (3, M),
                (2, M),
            ],
            vec![0, 1, 2],
        ),
        (
            vec![Policy::Mru],
            vec![(0, M), (1, M), (2, M), (0, H), (3, M)],
            vec![1, 2, 3],
        ),
        (
            vec![Policy::TinyLfu],
            vec![
                (0, M),
                (1, M),
                (2, M),
                (0, H),
                (0, H),
                (3, M),
                (2, M),
                (1, H),
            ],
            vec![0, 1, 2],
        ),
    ]
}

/// Where the caches of a run live.
#[derive(Clone, Copy)]
enum Store<'a> {
    Cluster(&'a RedisCluster),
    Server(&'a RedisServer),
    Memory,
}

/// A fresh cache (its own name) through each front-end.
fn fronts(store: Store<'_>, policy: Policy, layout: Layout) -> [Front; 2] {
    let builder = || {
        let builder = Cache::builder(unique_name())
            .policy(policy)
            .maxsize(3)
            .layout(layout);
        match store {
            Store::Cluster(cluster) => builder.redis_cluster(cluster.seed_urls()),
            Store::Server(server) => builder.redis(server.url()),
            Store::Memory => builder.memory(),
        }
    };
    [Front::blocking(builder()), Front::asynchronous(builder())]
}

#[test]
fn every_policy_trace_on_both_cluster_layouts_and_front_ends() {
    let cluster = RedisCluster::spawn();
    run_traces(Store::Cluster(&cluster));
}

/// The cluster layouts are ordinary layouts elsewhere: same traces on a single server and on
/// the embedded store (the model).
#[test]
fn cluster_layouts_behave_the_same_on_a_single_server_and_in_memory() {
    let server = RedisServer::spawn();
    run_traces(Store::Server(&server));
    run_traces(Store::Memory);
}

fn run_traces(store: Store<'_>) {
    for layout in [Layout::Cluster, Layout::ClusterPerFunction] {
        for (policies, calls, expected_final) in table() {
            for policy in policies {
                for front in fronts(store, policy, layout) {
                    let who = format!("{policy:?} {layout:?} {}", front.label());
                    let execs = AtomicU64::new(0);
                    for (step, &(x, hit)) in calls.iter().enumerate() {
                        let before = execs.load(Ordering::SeqCst);
                        assert_eq!(front.call("f", x, &execs), x * 10, "{who}: value of f({x})");
                        let was_hit = execs.load(Ordering::SeqCst) == before;
                        assert_eq!(was_hit, hit, "{who}: step {step}, f({x}) hit");
                    }
                    let contents: Vec<u64> = (0..=3).filter(|&x| front.contains("f", x)).collect();
                    assert_eq!(contents, expected_final, "{who}: final contents");
                    assert_eq!(front.len(), 3, "{who}: len");
                    assert_eq!(front.stats().errors, 0, "{who}: no backend error");
                }
            }
        }
        // Random keeps maxsize and the newest entry.
        for front in fronts(store, Policy::Random, layout) {
            let who = format!("Random {layout:?} {}", front.label());
            let execs = AtomicU64::new(0);
            for x in 0..20 {
                front.call("f", x, &execs);
                assert!(front.contains("f", x), "{who}: newest entry {x} is cached");
                assert_eq!(front.len(), (x as usize + 1).min(3), "{who}: len after {x}");
            }
            assert_eq!(front.stats().evictions, 17, "{who}");
        }
    }
}
