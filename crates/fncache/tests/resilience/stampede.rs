//! Stampede protection: one computation for a crowd of callers of a cold key, within a
//! process (threads, tasks) and across processes sharing a `redis-server`, including when the
//! lease holder dies mid-computation.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fncache::Cache;
use fncache_testing::RedisServer;

use crate::{eventually, unique_name};

#[test]
fn threads_on_one_cold_key_run_the_function_once() {
    let server = RedisServer::spawn();
    for redis in [false, true] {
        let mut builder = Cache::builder(unique_name("threads"));
        if redis {
            builder = builder.redis(server.url());
        }
        let cache = builder.build_blocking().unwrap();
        let runs = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| {
                    let v = cache
                        .get_or_compute("cold", &1u8, || {
                            runs.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(200));
                            42u32
                        })
                        .unwrap();
                    assert_eq!(v, 42);
                });
            }
        });
        assert_eq!(runs.load(Ordering::SeqCst), 1, "redis={redis}");
        let s = cache.stats();
        assert_eq!((s.calls, s.execs, s.hits + s.misses), (16, 1, 16), "{s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tasks_on_one_cold_key_run_the_function_once() {
    let server = RedisServer::spawn();
    for redis in [false, true] {
        let mut builder = Cache::builder(unique_name("tasks"));
        if redis {
            builder = builder.redis(server.url());
        }
        let cache = builder.build().unwrap();
        let runs = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (cache, runs) = (cache.clone(), runs.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_compute("cold", &1u8, || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        42u32
                    })
                    .await
                    .unwrap()
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), 42);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "redis={redis}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_leader_does_not_strand_its_followers() {
    let cache = Cache::builder(unique_name("cancel")).build().unwrap();
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_compute("k", &1u8, || async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    1u32
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await; // the leader is computing
    let follower = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.get_or_compute("k", &1u8, || async { 2u32 }).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await; // the follower is waiting
    leader.abort();
    assert_eq!(
        follower.await.unwrap().unwrap(),
        2,
        "the follower computed after all"
    );
}

/// An async call dropped while it computes (its task aborted, a request cancelled, a
/// `tokio::time::timeout` around it) gives the key's lease back: the next caller, in this
/// process or another, computes at once instead of waiting `lock_timeout` for a computation
/// nobody does. A batch gives back the lease of each key it was computing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_call_gives_its_lease_back_to_every_process() {
    let server = RedisServer::spawn();
    let name = unique_name("dropped");
    // lock_timeout far beyond the test's own deadline: waiting for it fails the test.
    let build = || {
        Cache::builder(name.clone())
            .redis(server.url())
            .lock_timeout(Duration::from_secs(120))
            .build()
            .unwrap()
    };
    let (here, elsewhere) = (build(), build());
    let deadline = Duration::from_secs(30);

    // A single call, with a follower of its own process waiting for it.
    let (started, computing) = tokio::sync::oneshot::channel();
    let leader = {
        let cache = here.clone();
        tokio::spawn(async move {
            cache
                .get_or_compute("f", &1u8, || async move {
                    let _ = started.send(());
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    0u32
                })
                .await
        })
    };
    computing.await.unwrap();
    let follower = {
        let cache = here.clone();
        tokio::spawn(async move { cache.get_or_compute("f", &1u8, || async { 1u32 }).await })
    };
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    let theirs = tokio::time::timeout(
        deadline,
        elsewhere.get_or_compute("f", &1u8, || async { 2u32 }),
    )
    .await
    .expect("another process waited for the dropped call's lease")
    .unwrap();
    let ours = tokio::time::timeout(deadline, follower)
        .await
        .expect("the follower waited for the dropped call's lease")
        .unwrap()
        .unwrap();
    // One of them computed; the other got its value (or computed after it: never both
    // waiting).
    assert!(
        [1, 2].contains(&theirs) && [1, 2].contains(&ours),
        "{theirs} {ours}"
    );
    assert_eq!(
        elsewhere.stats().lock_timeouts + here.stats().lock_timeouts,
        0
    );

    // A batch dropped while computing its keys.
    let (started, computing) = tokio::sync::oneshot::channel();
    let batch = {
        let cache = here.clone();
        tokio::spawn(async move {
            let mut started = Some(started);
            cache
                .get_or_compute_many("g", &[1u8, 2, 3], |keys: Vec<u8>| {
                    let started = started.take();
                    async move {
                        if let Some(started) = started {
                            let _ = started.send(());
                        }
                        tokio::time::sleep(Duration::from_secs(600)).await;
                        keys.into_iter().map(u32::from).collect::<Vec<u32>>()
                    }
                })
                .await
        })
    };
    computing.await.unwrap();
    batch.abort();
    assert!(batch.await.unwrap_err().is_cancelled());
    for key in [1u8, 2, 3] {
        let value = tokio::time::timeout(
            deadline,
            elsewhere.get_or_compute("g", &key, || async move { 10 * u32::from(key) }),
        )
        .await
        .expect("another process waited for the dropped batch's lease")
        .unwrap();
        assert_eq!(value, 10 * u32::from(key));
    }
    assert_eq!(elsewhere.stats().lock_timeouts, 0);
}

/// The counter every child process's function increments, in Redis.
const RUNS_KEY: &str = "stampede:runs";

/// The test whose process doubles as the child: run with `FNCACHE_CHILD_ROLE` set, it plays
/// the child (see [`run_as_child`]) instead of the parent.
const CHILD_ENTRY: &str = "stampede::processes_on_one_cold_key_run_the_function_once";

/// Starts this test binary again as a child that calls the shared cold key.
fn child(url: &str, name: &str, role: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_ENTRY, "--nocapture", "--test-threads=1"])
        .env("FNCACHE_CHILD_ROLE", role)
        .env("FNCACHE_CHILD_URL", url)
        .env("FNCACHE_CHILD_NAME", name)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn value_of(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "child failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // The test harness prints its own words around ours, on the same line.
    text.split("VALUE=")
        .nth(1)
        .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect())
        .unwrap_or_else(|| panic!("no value in child output: {text}"))
}

fn runs(server: &RedisServer) -> u64 {
    redis::cmd("GET")
        .arg(RUNS_KEY)
        .query::<Option<u64>>(&mut server.connection())
        .unwrap()
        .unwrap_or(0)
}

#[test]
fn processes_on_one_cold_key_run_the_function_once() {
    if run_as_child() {
        return;
    }
    let server = RedisServer::spawn();
    let name = unique_name("procs");
    let children: Vec<Child> = (0..4)
        .map(|_| child(&server.url(), &name, "normal"))
        .collect();
    let values: Vec<String> = children.into_iter().map(value_of).collect();
    assert!(values.iter().all(|v| v == "42"), "{values:?}");
    let executions = runs(&server);
    println!("cross-process stampede: 4 processes, {executions} execution(s)");
    assert_eq!(executions, 1);
}

#[test]
fn a_dead_lease_holder_is_taken_over_when_its_lease_expires() {
    let server = RedisServer::spawn();
    let name = unique_name("dead");
    let mut victim = child(&server.url(), &name, "victim");
    eventually("the victim started computing", || runs(&server) == 1);
    let survivor = child(&server.url(), &name, "normal");
    std::thread::sleep(Duration::from_millis(100)); // the survivor is waiting on the lease
    victim.kill().unwrap();
    let _ = victim.wait();
    assert_eq!(
        value_of(survivor),
        "42",
        "the survivor computed once the lease expired"
    );
    assert_eq!(runs(&server), 2);
}

/// The body of a child process of the tests above: true when this process is one (it then
/// called the shared key and printed the value for its parent).
fn run_as_child() -> bool {
    let (Ok(role), Ok(url), Ok(name)) = (
        std::env::var("FNCACHE_CHILD_ROLE"),
        std::env::var("FNCACHE_CHILD_URL"),
        std::env::var("FNCACHE_CHILD_NAME"),
    ) else {
        return false;
    };
    // The victim's lease lives 1 s (then the survivor takes over); everyone else waits up to
    // 10 s for the value, so a slow machine never makes a waiter compute on its own.
    let lock_timeout = if role == "victim" { 1 } else { 10 };
    let cache = Cache::builder(name)
        .redis(url.clone())
        .lock_timeout(Duration::from_secs(lock_timeout))
        .build_blocking()
        .unwrap();
    let value = cache
        .get_or_compute("shared", &1u8, || {
            let mut con = redis::Client::open(url.as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            let _: u64 = redis::cmd("INCR").arg(RUNS_KEY).query(&mut con).unwrap();
            let slow = if role == "victim" { 60_000 } else { 500 };
            std::thread::sleep(Duration::from_millis(slow));
            42u32
        })
        .unwrap();
    println!("VALUE={value}");
    true
}

#[test]
fn tasks_and_threads_together_run_the_function_once() {
    // Two front-ends of one cache name on one server: in-process flights are per cache, so
    // the lease in Redis is what keeps the 80 callers to one computation.
    let server = RedisServer::spawn();
    let name = unique_name("mixed");
    let blocking = Cache::builder(name.clone())
        .redis(server.url())
        .build_blocking()
        .unwrap();
    let asynchronous = Cache::builder(name).redis(server.url()).build().unwrap();
    let runs = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    std::thread::scope(|s| {
        let tasks = s.spawn(|| {
            rt.block_on(async {
                let mut handles = Vec::new();
                for _ in 0..64 {
                    let (cache, runs) = (asynchronous.clone(), runs.clone());
                    handles.push(tokio::spawn(async move {
                        cache
                            .get_or_compute("cold", &1u8, || async move {
                                runs.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(300)).await;
                                42u32
                            })
                            .await
                            .unwrap()
                    }));
                }
                for h in handles {
                    assert_eq!(h.await.unwrap(), 42);
                }
            });
        });
        for _ in 0..16 {
            s.spawn(|| {
                let v = blocking
                    .get_or_compute("cold", &1u8, || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(300));
                        42u32
                    })
                    .unwrap();
                assert_eq!(v, 42);
            });
        }
        tasks.join().unwrap();
    });
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let waits = blocking.stats().lock_waits + asynchronous.stats().lock_waits;
    assert!(waits >= 79, "everyone else waited: {waits}");
}
