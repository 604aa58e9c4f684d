//! Configuration from the environment: `FNCACHE_REDIS_URL`, then `REDIS_URL`, only when the
//! builder names no store; explicit settings always win, "empty" ones included.
//!
//! A process cannot change its own environment safely while tests run in parallel (and this
//! workspace forbids `unsafe`), so the test starts this very test binary again, once per case,
//! with the environment of the case; the child runs the case's checks and reports through its
//! exit status.

use std::process::Command;
use std::sync::atomic::AtomicU64;

use fncache::{Cache, ErrorKind, REDIS_URL_ENV, REDIS_URL_ENV_FALLBACK};
use fncache_testing::RedisServer;

use crate::support::{Front, unique_name};

/// Names the case a child process runs.
const CASE: &str = "FNCACHE_TEST_ENV_CASE";
/// URLs of the two servers, for the child.
const SERVER_A: &str = "FNCACHE_TEST_SERVER_A";
const SERVER_B: &str = "FNCACHE_TEST_SERVER_B";

const THIS_TEST: &str = "env::environment_configuration_and_its_precedence";

#[test]
fn environment_configuration_and_its_precedence() {
    if let Ok(case) = std::env::var(CASE) {
        return run_case(&case);
    }
    let (a, b) = (RedisServer::spawn(), RedisServer::spawn());
    a.add_acl_user("app", "right", &["~*", "+@all"]);
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        (
            "first variable wins",
            vec![(REDIS_URL_ENV, a.url()), (REDIS_URL_ENV_FALLBACK, b.url())],
        ),
        ("fallback", vec![(REDIS_URL_ENV_FALLBACK, b.url())]),
        ("explicit store wins", vec![(REDIS_URL_ENV, a.url())]),
        (
            "empty means memory",
            vec![
                (REDIS_URL_ENV, String::new()),
                (REDIS_URL_ENV_FALLBACK, b.url()),
            ],
        ),
        ("unset means memory", vec![]),
        (
            "explicit database 0 wins",
            vec![(REDIS_URL_ENV, format!("{}3", a.url()))],
        ),
        (
            "explicit password wins",
            vec![(
                REDIS_URL_ENV,
                format!("redis://app:stale-s3cret@127.0.0.1:{}/", a.port()),
            )],
        ),
        (
            "invalid",
            vec![(REDIS_URL_ENV, "nope://u:env-s3cret@x".to_owned())],
        ),
    ];
    let exe = std::env::current_exe().unwrap();
    for (case, vars) in cases {
        for server in [&a, &b] {
            let _: () = redis::cmd("FLUSHALL")
                .query(&mut server.connection())
                .unwrap();
        }
        let mut child = Command::new(&exe);
        child
            .args([THIS_TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env_remove(REDIS_URL_ENV)
            .env_remove(REDIS_URL_ENV_FALLBACK)
            .env(CASE, case)
            .env(SERVER_A, a.url())
            .env(SERVER_B, b.url());
        for (name, value) in vars {
            child.env(name, value);
        }
        let out = child.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "case `{case}` failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Entry keys of any cache on the server at `url`, in database `db` (not the registries and
/// shared counters that dropped caches leave, see `shared_stats.rs`).
fn keys(url: &str, db: i64) -> Vec<String> {
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let _: () = redis::cmd("SELECT").arg(db).query(&mut con).unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("func-cache:*")
        .query(&mut con)
        .unwrap();
    keys.into_iter()
        .filter(|k: &String| !k.ends_with(":registry") && !k.ends_with(":stats"))
        .collect()
}

/// Runs in the child process, with the case's environment.
fn run_case(case: &str) {
    let (a, b) = (
        std::env::var(SERVER_A).unwrap(),
        std::env::var(SERVER_B).unwrap(),
    );
    let used = |front: &Front| {
        let execs = AtomicU64::new(0);
        assert!(!front.is_hit("f", 1), "{case}");
        assert!(front.is_hit("f", 1), "{case}");
        front.call("f", 2, &execs);
        assert_eq!(front.stats().errors, 0, "{case}");
    };
    let stores = |builder: fn() -> fncache::Builder| {
        for front in Front::both(builder) {
            used(&front);
        }
    };
    let strict = || Cache::builder(unique_name()).strict(true);
    match case {
        "first variable wins" => {
            stores(strict);
            assert_eq!(keys(&a, 0).len(), 4, "two caches, two keys each");
            assert!(keys(&b, 0).is_empty());
        }
        "fallback" => {
            stores(strict);
            assert_eq!(keys(&b, 0).len(), 4);
        }
        "explicit store wins" => {
            let b_url = b.clone();
            for front in Front::both(|| strict().redis(&b_url)) {
                used(&front);
            }
            stores(|| Cache::builder(unique_name()).memory().strict(true));
            assert!(
                keys(&a, 0).is_empty(),
                "nothing went to the environment's server"
            );
            assert_eq!(keys(&b, 0).len(), 4);
        }
        "empty means memory" | "unset means memory" => {
            stores(strict);
            let debug = format!("{:?}", strict().build_blocking().unwrap());
            assert!(debug.contains("store: \"memory\""), "{debug}");
            assert!(keys(&a, 0).is_empty() && keys(&b, 0).is_empty());
        }
        "explicit database 0 wins" => {
            stores(strict);
            assert_eq!(keys(&a, 3).len(), 4, "the URL's database");
            stores(|| Cache::builder(unique_name()).redis_database(0).strict(true));
            assert_eq!(keys(&a, 0).len(), 4, "the explicit database 0");
            assert_eq!(keys(&a, 3).len(), 4);
        }
        "explicit password wins" => {
            stores(|| {
                Cache::builder(unique_name())
                    .redis_password("right")
                    .strict(true)
            });
            let debug = format!(
                "{:?}",
                Cache::builder("x")
                    .redis_password("right")
                    .build_blocking()
                    .unwrap()
            );
            assert!(
                !debug.contains("right") && !debug.contains("stale-s3cret"),
                "{debug}"
            );
            assert!(debug.contains(REDIS_URL_ENV), "{debug}");
        }
        "invalid" => {
            let err = Cache::builder("x").build_blocking().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config);
            let shown = err.to_string();
            assert!(
                shown.contains(REDIS_URL_ENV) && !shown.contains("env-s3cret"),
                "{shown}"
            );
            // An explicit store does not even look at the environment.
            Cache::builder("x").memory().build_blocking().unwrap();
        }
        other => panic!("unknown case {other}"),
    }
}
