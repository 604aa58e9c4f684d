//! A primary dies mid-workload and its replica takes over: every call keeps returning the
//! function's value (failing open while the slots have no primary), and hits resume once the
//! replica serves them. A dedicated cluster, since the test breaks it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use fncache::{Cache, CircuitBreaker, Layout};
use fncache_testing::RedisCluster;

use crate::support::{runtime, unique_name};

const FUNCTIONS: u64 = 60;
const ARGS: u64 = 3;

fn function(f: u64) -> String {
    format!("svc::f{f}")
}

fn value(f: u64, x: u64) -> u64 {
    f * 1000 + x
}

/// Shared state of the two workloads and the test.
#[derive(Default)]
struct Shared {
    switched: AtomicBool,
    stop: AtomicBool,
    /// Complete rounds over every function and argument, per workload (blocking, async).
    rounds: [AtomicU64; 2],
    /// Rounds started after the switch.
    rounds_after: [AtomicU64; 2],
}

impl Shared {
    fn round_done(&self, which: usize) {
        self.rounds[which].fetch_add(1, Ordering::SeqCst);
        if self.switched.load(Ordering::SeqCst) {
            self.rounds_after[which].fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Polls `done` until it holds; a deadline only turns a hang into a failure.
fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn calls_stay_correct_through_a_failover_and_hits_resume() {
    let mut cluster = RedisCluster::spawn();
    let name = unique_name();
    // A short cool-down: the breaker opens while the primary is dead, and the check below
    // waits for it to close again.
    let builder = Cache::builder(&name)
        .layout(Layout::ClusterPerFunction)
        .circuit_breaker(CircuitBreaker {
            failures: 5,
            cool_down: Duration::from_millis(100),
        })
        .redis_cluster(cluster.seed_urls());
    let blocking = builder.clone().build_blocking().unwrap();
    let asynchronous = builder.build().unwrap();

    for f in 0..FUNCTIONS {
        blocking
            .get_or_compute(&function(f), &(1u64,), || value(f, 1))
            .unwrap();
    }
    // The victim: the primary of the first function; its writes so far reach its replica.
    let keys = cluster.keys(&format!("func-cache:{name}:*:1"));
    let victim = cluster.primary_for_key(&keys[0]);
    let replica = cluster.replica_of(victim);
    let on_victim = keys
        .iter()
        .filter(|k| cluster.primary_for_key(k) == victim)
        .count();
    assert!(
        on_victim > 0 && on_victim < keys.len(),
        "{on_victim} of {}",
        keys.len()
    );
    let replicated: u64 = redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query(&mut cluster.node_connection(victim))
        .unwrap();
    assert_eq!(replicated, 1);

    let shared = Arc::new(Shared::default());
    let blocking_workload = {
        let (cache, shared) = (blocking.clone(), Arc::clone(&shared));
        thread::spawn(move || {
            while !shared.stop.load(Ordering::SeqCst) {
                for f in 0..FUNCTIONS {
                    for x in 0..ARGS {
                        let got = cache
                            .get_or_compute(&function(f), &(x,), || value(f, x))
                            .unwrap();
                        assert_eq!(got, value(f, x), "blocking f{f}({x})");
                    }
                }
                shared.round_done(0);
            }
        })
    };
    let async_workload = {
        let (cache, shared) = (asynchronous.clone(), Arc::clone(&shared));
        thread::spawn(move || {
            runtime().block_on(async move {
                while !shared.stop.load(Ordering::SeqCst) {
                    for f in 0..FUNCTIONS {
                        for x in 0..ARGS {
                            let got = cache
                                .get_or_compute(&function(f), &(x,), || async move { value(f, x) })
                                .await
                                .unwrap();
                            assert_eq!(got, value(f, x), "async f{f}({x})");
                        }
                    }
                    shared.round_done(1);
                }
            })
        })
    };

    wait_for("a first round of both workloads", || {
        shared.rounds.iter().all(|r| r.load(Ordering::SeqCst) >= 1)
    });
    let errors_before = (blocking.stats().errors, asynchronous.stats().errors);
    assert_eq!(errors_before, (0, 0));
    cluster.kill(victim);
    // Both workloads meet the dead primary (and fail open) before the replica takes over.
    wait_for("both workloads to fail open", || {
        blocking.stats().errors > 0 && asynchronous.stats().errors > 0
    });
    cluster.promote(replica);
    shared.switched.store(true, Ordering::SeqCst);
    wait_for("two full rounds of both workloads after the switch", || {
        shared
            .rounds_after
            .iter()
            .all(|r| r.load(Ordering::SeqCst) >= 2)
    });
    shared.stop.store(true, Ordering::SeqCst);
    blocking_workload.join().expect("blocking workload");
    async_workload.join().expect("async workload");

    // Hits resume: every entry is served, including those written before the crash on the
    // primary that died (replicated before it did), once the circuit breaker has closed.
    wait_for("the circuit breaker to close", || {
        let probe = blocking.stats().hits;
        blocking
            .get_or_compute(&function(0), &(0u64,), || value(0, 0))
            .unwrap();
        blocking.stats().hits > probe
    });
    let execs = AtomicU64::new(0);
    for f in 0..FUNCTIONS {
        for x in 0..ARGS {
            let got = blocking
                .get_or_compute(&function(f), &(x,), || {
                    execs.fetch_add(1, Ordering::SeqCst);
                    value(f, x)
                })
                .unwrap();
            assert_eq!(got, value(f, x));
        }
    }
    assert_eq!(
        execs.load(Ordering::SeqCst),
        0,
        "every call after the switch is a hit"
    );
    let rt = runtime();
    let hit = rt
        .block_on(asynchronous.get_or_compute(&function(0), &(2u64,), || async { u64::MAX }))
        .unwrap();
    assert_eq!(hit, value(0, 2), "the async front-end is served too");

    // Whole-cache ops see the new topology: the promoted replica is one of the primaries.
    assert!(cluster.primaries().contains(&replica));
    let total = usize::try_from(FUNCTIONS * ARGS).unwrap();
    assert_eq!(blocking.len().unwrap(), total);
    assert_eq!(rt.block_on(asynchronous.len()).unwrap(), total);
    assert_eq!(blocking.purge().unwrap(), total);
    assert!(cluster.keys(&format!("func-cache:{name}:*")).is_empty());
}
