//! Every `Duration` setting accepts any value on both stores and both front-ends: zero is a
//! configuration error naming the setting, anything shorter than a millisecond counts as one,
//! anything longer than `fncache::MAX_DURATION` as that, and no value panics, fails open or
//! makes the two stores disagree. And `max_stale` bounds the age of a served value even
//! without an entry TTL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fncache::clock::ManualClock;
use fncache::{Builder, Cache, CallOptions, ErrorKind, blocking};
use fncache_testing::RedisServer;

use crate::front::unique_name;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    Ttl,
    EntryTtl,
    RefreshAfter,
    LockTimeout,
    ComputeTimeout,
    MaxStale,
    FailSafeThrottle,
    OpTimeout,
}

const SETTINGS: [Setting; 8] = [
    Setting::Ttl,
    Setting::EntryTtl,
    Setting::RefreshAfter,
    Setting::LockTimeout,
    Setting::ComputeTimeout,
    Setting::MaxStale,
    Setting::FailSafeThrottle,
    Setting::OpTimeout,
];

const DAY: Duration = Duration::from_secs(86_400);

const VALUES: [(&str, Duration); 6] = [
    ("0", Duration::ZERO),
    ("1 ns", Duration::from_nanos(1)),
    ("1 ms", Duration::from_millis(1)),
    ("1 day", DAY),
    ("u64::MAX s", Duration::from_secs(u64::MAX)),
    ("Duration::MAX", Duration::MAX),
];

impl Setting {
    fn name(self) -> &'static str {
        match self {
            Setting::Ttl => "ttl",
            Setting::EntryTtl => "entry_ttl",
            Setting::RefreshAfter => "refresh_after",
            Setting::LockTimeout => "lock_timeout",
            Setting::ComputeTimeout => "compute_timeout",
            Setting::MaxStale => "max_stale",
            Setting::FailSafeThrottle => "fail_safe_throttle",
            Setting::OpTimeout => "op_timeout",
        }
    }

    fn on_builder(self, b: Builder, d: Duration) -> Builder {
        match self {
            Setting::Ttl => b.ttl(d),
            Setting::EntryTtl => b.entry_ttl(d),
            Setting::RefreshAfter => b.refresh_after(d),
            Setting::LockTimeout => b.lock_timeout(d),
            Setting::ComputeTimeout => b.compute_timeout(d),
            Setting::MaxStale => b.max_stale(d),
            Setting::FailSafeThrottle => b.fail_safe_throttle(d),
            Setting::OpTimeout => b.op_timeout(d),
        }
    }

    /// The per-call override (the structure TTL has none).
    fn on_options(self, o: CallOptions, d: Duration) -> Option<CallOptions> {
        Some(match self {
            Setting::Ttl => return None,
            Setting::EntryTtl => o.entry_ttl(d),
            Setting::RefreshAfter => o.refresh_after(d),
            Setting::LockTimeout => o.lock_timeout(d),
            Setting::ComputeTimeout => o.compute_timeout(d),
            Setting::MaxStale => o.max_stale(d),
            Setting::FailSafeThrottle => o.fail_safe_throttle(d),
            Setting::OpTimeout => o.op_timeout(d),
        })
    }

    /// A millisecond (what 1 ns counts as, too) of this setting may be over by the next call:
    /// the value may be gone or stale, or (`op_timeout`) a Redis round trip may take longer.
    fn may_lapse(self, d: Duration) -> bool {
        d < DAY
            && matches!(
                self,
                Setting::Ttl
                    | Setting::EntryTtl
                    | Setting::RefreshAfter
                    | Setting::MaxStale
                    | Setting::OpTimeout
            )
    }
}

/// One cache through either front-end.
#[derive(Clone)]
enum Cached {
    Blocking(blocking::Cache),
    Async(Cache, Arc<tokio::runtime::Runtime>),
}

type Answer = Result<u64, &'static str>;

impl Cached {
    fn build(
        builder: Builder,
        asynchronous: bool,
        rt: &Arc<tokio::runtime::Runtime>,
    ) -> Result<Cached, fncache::Error> {
        Ok(if asynchronous {
            Cached::Async(builder.build()?, Arc::clone(rt))
        } else {
            Cached::Blocking(builder.build_blocking()?)
        })
    }

    /// `f(x)` with `options`: the function answers `answer`, counted in `execs`.
    fn call(
        &self,
        options: &CallOptions,
        x: u64,
        answer: Answer,
        execs: &AtomicU64,
    ) -> Result<Answer, fncache::Error> {
        let compute = || {
            execs.fetch_add(1, Ordering::SeqCst);
            answer
        };
        match self {
            Cached::Blocking(c) => c.try_get_or_compute_with(options, "f", &(x,), compute),
            Cached::Async(c, rt) => {
                rt.block_on(c.try_get_or_compute_with(options, "f", &(x,), || async { compute() }))
            }
        }
    }

    fn stats(&self) -> fncache::Stats {
        match self {
            Cached::Blocking(c) => c.stats(),
            Cached::Async(c, _) => c.stats(),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Cached::Blocking(_) => "blocking",
            Cached::Async(..) => "async",
        }
    }
}

fn multi_thread() -> Arc<tokio::runtime::Runtime> {
    Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    )
}

/// Waits for another thread to reach a state (the deadline only turns a hang into a failure).
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Where the setting under test goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Builder,
    CallOptions,
}

/// What a scenario does with its cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// A miss computes; the next call is a hit (where the setting allows one).
    Repeat,
    /// Over an entry TTL of 1 ms and `max_stale` of a day: a value is written, its entry TTL
    /// passes, and its recomputation fails: fail-safe serves it (where the setting allows).
    FailSafe,
}

struct Case {
    setting: Setting,
    value: &'static str,
    d: Duration,
    via: Via,
    scenario: Scenario,
    redis: bool,
    cache: Result<Cached, fncache::Error>,
    options: CallOptions,
    execs: AtomicU64,
    answers: Vec<Result<Answer, fncache::Error>>,
}

impl Case {
    fn describe(&self) -> String {
        format!(
            "{}({}) via {:?}, {:?}, {} {}",
            self.setting.name(),
            self.value,
            self.via,
            self.scenario,
            if self.redis { "redis" } else { "memory" },
            self.cache.as_ref().map_or("-", Cached::label),
        )
    }

    /// The error a zero setting must be refused with, where it surfaces.
    fn refused(&self) -> bool {
        self.d.is_zero()
    }

    fn check(&self) {
        let who = self.describe();
        let execs = self.execs.load(Ordering::SeqCst);
        let lapses = self.setting.may_lapse(self.d);
        if self.refused() && self.via == Via::Builder {
            let Err(e) = &self.cache else {
                panic!("{who}: a zero setting must be refused");
            };
            assert_eq!(e.kind(), ErrorKind::Config, "{who}: {e}");
            let message = e.to_string();
            assert!(
                message.contains(self.setting.name()) && message.contains("greater than zero"),
                "{who}: the error names the setting and its limit: {message}"
            );
            return;
        }
        let cache = self.cache.as_ref().unwrap_or_else(|e| panic!("{who}: {e}"));
        let stats = cache.stats();
        if self.refused() {
            // A zero per-call override: the call skips the cache (counted), and still answers.
            for answer in &self.answers {
                assert!(answer.is_ok(), "{who}: {answer:?}");
            }
            assert!(
                stats.errors >= 1,
                "{who}: the invalid options are counted: {stats:?}"
            );
            assert_eq!(stats.hits, 0, "{who}: the cache is skipped: {stats:?}");
            return;
        }
        let redis_timeouts = self.redis && self.setting == Setting::OpTimeout && lapses;
        if !redis_timeouts {
            assert_eq!(
                (stats.errors, stats.fail_open),
                (0, 0),
                "{who}: a healthy store never fails open: {stats:?}"
            );
        }
        match self.scenario {
            Scenario::Repeat => {
                assert_eq!(self.answers.len(), 2, "{who}");
                for answer in &self.answers {
                    assert_eq!(answer.as_ref().ok(), Some(&Ok(10)), "{who}: {answer:?}");
                }
                if !lapses {
                    assert_eq!(execs, 1, "{who}: the second call is a hit: {stats:?}");
                }
            }
            Scenario::FailSafe => {
                assert_eq!(self.answers.len(), 2, "{who}");
                assert_eq!(self.answers[0].as_ref().ok(), Some(&Ok(20)), "{who}");
                let last = self.answers[1]
                    .as_ref()
                    .unwrap_or_else(|e| panic!("{who}: {e}"));
                let gone = self.d < DAY && matches!(self.setting, Setting::Ttl | Setting::MaxStale);
                if gone {
                    // A structure TTL or max_stale of a millisecond: nothing is left to serve.
                    assert_eq!(*last, Err("down"), "{who}: {stats:?}");
                } else if !redis_timeouts {
                    assert_eq!(
                        *last,
                        Ok(20),
                        "{who}: fail-safe serves the value: {stats:?}"
                    );
                }
            }
        }
    }
}

/// Every duration setting × {0, 1 ns, 1 ms, 1 day, u64::MAX s, Duration::MAX}, as a builder
/// setting and as a per-call override, × {embedded, redis-server} × {blocking, async}.
#[test]
fn every_duration_setting_accepts_any_value_and_both_stores_agree() {
    let server = RedisServer::spawn();
    let rt = multi_thread();
    let mut cases = Vec::new();
    for setting in SETTINGS {
        for (value, d) in VALUES {
            for via in [Via::Builder, Via::CallOptions] {
                // The structure TTL has no per-call override: it is swept as a builder
                // setting only.
                let options = match via {
                    Via::Builder => CallOptions::new(),
                    Via::CallOptions => match setting.on_options(CallOptions::new(), d) {
                        Some(options) => options,
                        None => continue,
                    },
                };
                for scenario in [Scenario::Repeat, Scenario::FailSafe] {
                    for redis in [false, true] {
                        for asynchronous in [false, true] {
                            let mut b = Cache::builder(unique_name());
                            b = if redis {
                                b.redis(server.url())
                            } else {
                                b.memory()
                            };
                            if scenario == Scenario::FailSafe {
                                b = b.entry_ttl(Duration::from_millis(1)).max_stale(DAY);
                            }
                            if via == Via::Builder {
                                b = setting.on_builder(b, d);
                            }
                            cases.push(Case {
                                setting,
                                value,
                                d,
                                via,
                                scenario,
                                redis,
                                cache: Cached::build(b, asynchronous, &rt),
                                options,
                                execs: AtomicU64::new(0),
                                answers: Vec::new(),
                            });
                        }
                    }
                }
            }
        }
    }
    for case in &mut cases {
        let Ok(cache) = &case.cache else { continue };
        match case.scenario {
            Scenario::Repeat => {
                for _ in 0..2 {
                    let answer = cache.call(&case.options, 1, Ok(10), &case.execs);
                    case.answers.push(answer);
                }
            }
            Scenario::FailSafe => {
                let answer = cache.call(&case.options, 2, Ok(20), &case.execs);
                case.answers.push(answer);
            }
        }
    }
    // Every entry TTL of a millisecond has passed (a lower bound on time, not an upper one).
    std::thread::sleep(Duration::from_millis(50));
    for case in &mut cases {
        let Ok(cache) = &case.cache else { continue };
        if case.scenario == Scenario::FailSafe {
            let answer = cache.call(&case.options, 2, Err("down"), &case.execs);
            case.answers.push(answer);
        }
    }
    // Every case is checked, and every failing one named (the panic hook prints each reason).
    let failed: Vec<String> = cases
        .iter()
        .filter(|case| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case.check())).is_err()
        })
        .map(Case::describe)
        .collect();
    assert!(
        failed.is_empty(),
        "{} cases failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// Two callers of one cold key: the second waits (`lock_timeout`) for the first, as a follower
/// in this process (the embedded store) or by polling the lease another cache holds (Redis),
/// whatever the lock timeout.
#[test]
fn any_lock_timeout_waits_for_another_callers_value_without_panicking() {
    let server = RedisServer::spawn();
    let rt = multi_thread();
    for (value, d) in VALUES.into_iter().skip(1) {
        for redis in [false, true] {
            for asynchronous in [false, true] {
                let name = unique_name();
                let make = || {
                    let b = Cache::builder(&name).lock_timeout(d);
                    let b = if redis {
                        b.redis(server.url())
                    } else {
                        b.memory()
                    };
                    Cached::build(b, asynchronous, &rt).unwrap()
                };
                let first = make();
                // The same cache (a follower) on the embedded store; another cache of the same
                // name (its lease) on Redis.
                let second = if redis { make() } else { first.clone() };
                let who = format!("lock_timeout({value}), redis {redis}, {}", first.label());
                contend(&first, &second, &who);
            }
        }
    }
}

fn contend(first: &Cached, second: &Cached, who: &str) {
    let started = Arc::new(AtomicU64::new(0));
    let (open, gate) = std::sync::mpsc::channel::<()>();
    let leader = {
        let (first, started) = (first.clone(), Arc::clone(&started));
        std::thread::spawn(move || {
            let compute = move || {
                started.fetch_add(1, Ordering::SeqCst);
                let _ = gate.recv();
                30u64
            };
            match &first {
                Cached::Blocking(c) => c.get_or_compute("contend", &3u8, compute),
                Cached::Async(c, rt) => {
                    rt.block_on(c.get_or_compute_owned("contend", &3u8, move || async move {
                        tokio::task::spawn_blocking(compute).await.unwrap()
                    }))
                }
            }
        })
    };
    eventually("the first caller computes", || {
        started.load(Ordering::SeqCst) == 1
    });
    let follower = {
        let second = second.clone();
        std::thread::spawn(move || match &second {
            Cached::Blocking(c) => c.get_or_compute("contend", &3u8, || 30u64),
            Cached::Async(c, rt) => {
                rt.block_on(c.get_or_compute("contend", &3u8, || async { 30u64 }))
            }
        })
    };
    eventually("the second caller waits or is done", || {
        second.stats().lock_waits >= 1 || follower.is_finished()
    });
    open.send(()).unwrap();
    assert_eq!(follower.join().expect(who).unwrap(), 30, "{who}");
    assert_eq!(leader.join().expect(who).unwrap(), 30, "{who}");
    for cache in [first, second] {
        let s = cache.stats();
        assert_eq!((s.errors, s.fail_open), (0, 0), "{who}: {s:?}");
    }
}

// --- max_stale without an entry TTL ----------------------------------------------------------

fn bounded(builder: Builder) -> Builder {
    builder
        .refresh_after(Duration::from_millis(50))
        .max_stale(Duration::from_millis(400))
}

/// `f(x)` both ways a function is called: borrowed (a stale value is refreshed inline) and
/// owned (it is refreshed in the background).
fn call_both_ways(cache: &Cached, x: u64, answer: Answer) -> [Answer; 2] {
    match cache {
        Cached::Blocking(c) => [
            c.try_get_or_compute("borrowed", &(x,), || answer).unwrap(),
            c.try_get_or_compute_owned("owned", &(x,), move || answer)
                .unwrap(),
        ],
        Cached::Async(c, rt) => rt.block_on(async {
            [
                c.try_get_or_compute("borrowed", &(x,), || async { answer })
                    .await
                    .unwrap(),
                c.try_get_or_compute_owned("owned", &(x,), move || async move { answer })
                    .await
                    .unwrap(),
            ]
        }),
    }
}

/// The case: `refresh_after` 50 ms, `max_stale` 400 ms, no entry TTL, the function
/// failing. Past `max_stale` the old value is not served: the error is.
#[test]
fn max_stale_bounds_a_served_value_without_an_entry_ttl() {
    let server = RedisServer::spawn();
    let rt = multi_thread();
    let mut caches = Vec::new();
    for redis in [false, true] {
        for asynchronous in [false, true] {
            let b = bounded(Cache::builder(unique_name()));
            let b = if redis {
                b.redis(server.url())
            } else {
                b.memory()
            };
            let cache = Cached::build(b, asynchronous, &rt).unwrap();
            assert_eq!(call_both_ways(&cache, 1, Ok(10)), [Ok(10), Ok(10)]);
            caches.push((redis, cache));
        }
    }
    // Well past max_stale since the write.
    std::thread::sleep(Duration::from_millis(800));
    for (redis, cache) in &caches {
        let who = format!("redis {redis}, {}", cache.label());
        assert_eq!(
            call_both_ways(cache, 1, Err("down")),
            [Err("down"), Err("down")],
            "{who}: a value older than max_stale is never served: {:?}",
            cache.stats()
        );
        let s = cache.stats();
        assert_eq!((s.errors, s.stale_served), (0, 0), "{who}: {s:?}");
    }
}

/// The same on the embedded store with a manual clock: within `max_stale` the stale value is
/// served while the function fails; past it, the error.
#[test]
fn max_stale_without_an_entry_ttl_serves_stale_only_until_it_passes() {
    let rt = multi_thread();
    for asynchronous in [false, true] {
        let clock = Arc::new(ManualClock::new());
        let b = bounded(Cache::builder(unique_name()).memory().clock(clock.clone()));
        let cache = Cached::build(b, asynchronous, &rt).unwrap();
        assert_eq!(call_both_ways(&cache, 1, Ok(10)), [Ok(10), Ok(10)]);
        clock.advance(Duration::from_millis(100)); // stale, within max_stale
        assert_eq!(call_both_ways(&cache, 1, Err("down")), [Ok(10), Ok(10)]);
        clock.advance(Duration::from_millis(301)); // over 400 ms since the write
        assert_eq!(
            call_both_ways(&cache, 1, Err("down")),
            [Err("down"), Err("down")],
            "{}: {:?}",
            cache.label(),
            cache.stats()
        );
    }
}

/// On Redis a setting past `MAX_DURATION` is written as exactly that: the structure's PTTL and
/// the entry's expiry (server microseconds plus 100 years, computed in Lua doubles) are exact.
#[test]
fn huge_settings_are_stored_as_max_duration_on_redis() {
    let server = RedisServer::spawn();
    let name = unique_name();
    let cache = Cache::builder(&name)
        .redis(server.url())
        .policy(fncache::Policy::Lru)
        .ttl(Duration::MAX)
        .entry_ttl(Duration::MAX)
        .max_stale(Duration::from_secs(u64::MAX))
        .build_blocking()
        .unwrap();
    assert_eq!(cache.get_or_compute("f", &1u8, || 1u8).unwrap(), 1);
    let mut con = server.connection();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut con).unwrap();
    let now_us = secs * 1_000_000 + micros;
    let max_ms = u64::try_from(fncache::MAX_DURATION.as_millis()).unwrap();
    let pttl: u64 = redis::cmd("PTTL")
        .arg(format!("func-cache:{name}:lru:0"))
        .query(&mut con)
        .unwrap();
    assert!(pttl <= max_ms && pttl > max_ms - 60_000, "{pttl}");
    let expiry: Vec<(Vec<u8>, String)> = redis::cmd("ZRANGE")
        .arg(format!("func-cache:{name}:lru:2"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query(&mut con)
        .unwrap();
    let keep_until: f64 = expiry[0].1.parse().unwrap();
    assert_eq!(keep_until.fract(), 0.0, "an exact integer: {keep_until}");
    let written = keep_until as u64 - max_ms * 1000;
    assert!(
        written <= now_us && written > now_us - 60_000_000,
        "{keep_until}"
    );
    assert!(cache.contains("f", &1u8).unwrap());
}
