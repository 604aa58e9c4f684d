//! Two caches never see or touch each other's keys: adversarial pairs of prefixes and names
//! (a name that spells another cache's per-function infix, a prefix that ends where another
//! cache's name begins, glob characters, escapes) filled side by side on one redis-server and
//! on the embedded store, then counted, read, purged and vacuumed one at a time.

use std::time::{Duration, Instant};

use fncache::{Cache, ErrorKind, Layout, Policy, blocking};

use crate::support::Store;

/// One side of a pair: prefix, name, layout.
type Side = (&'static str, &'static str, Layout);

/// Pairs whose keys, SCAN patterns or both collided or over-matched before names were escaped
/// and scanned structures checked against the cache that scans them.
const PAIRS: &[(Side, Side)] = &[
    // A per-function cache named `X` scanned `p:X:lru_t-m:*:0`, which matches this shared
    // cache's `p:X:lru_t-m:other:lru_t:0`.
    (
        ("p:", "X", Layout::PerFunction),
        ("p:", "X:lru_t-m:other", Layout::Shared),
    ),
    // `p:` + `a:b` and `p:a:` + `b` were the same key.
    (("p:", "a:b", Layout::Shared), ("p:a:", "b", Layout::Shared)),
    (
        ("p:", "a:b", Layout::PerFunction),
        ("p:a:", "b", Layout::PerFunction),
    ),
    (
        ("p:", "a:b", Layout::Cluster),
        ("p:a:", "b", Layout::Cluster),
    ),
    // A crafted prefix puts a per-function cache's keys under another's SCAN pattern.
    (
        ("p:", "X", Layout::PerFunction),
        ("p:X:lru_t-m:", "y", Layout::PerFunction),
    ),
    (
        ("p:", "X", Layout::PerFunction),
        ("p:X:lru_t-m:", "y", Layout::Shared),
    ),
    (
        ("p:", "X", Layout::ClusterPerFunction),
        ("p:X:lru_t-cm:", "y", Layout::ClusterPerFunction),
    ),
    // Glob characters in a name are matched literally.
    (
        ("p:", "a*", Layout::PerFunction),
        ("p:", "ab", Layout::PerFunction),
    ),
    (
        ("p:", "[ab]", Layout::PerFunction),
        ("p:", "a", Layout::PerFunction),
    ),
    // An escape sequence written by hand is not the character it escapes.
    (
        ("p:", "a%3Ab", Layout::Shared),
        ("p:", "a:b", Layout::Shared),
    ),
    (
        ("p:", "a%3Ab", Layout::PerFunction),
        ("p:", "a:b", Layout::PerFunction),
    ),
];

const FUNCTIONS: [&str; 2] = ["f", "mod::g"];
const ARGS: u64 = 5;

/// Pairs of [`Policy::TinyLfu`] caches whose entries carry tags, so that every key a
/// structure may have (`:0` to `:6`: tags at `:3`/`:4`, the sketch at `:5`) is on the server
/// when the other cache counts, purges and vacuums.
const TINY_LFU_PAIRS: &[(Side, Side)] = &[
    (
        ("p:", "X", Layout::PerFunction),
        ("p:X:tlfu-m:", "y", Layout::PerFunction),
    ),
    (
        ("p:", "X", Layout::PerFunction),
        ("p:", "X:tlfu-m:other", Layout::Shared),
    ),
    (
        ("p:", "X", Layout::ClusterPerFunction),
        ("p:X:tlfu-cm:", "y", Layout::ClusterPerFunction),
    ),
    (
        ("p:", "a*", Layout::PerFunction),
        ("p:", "ab", Layout::PerFunction),
    ),
];

fn build(store: &Store, policy: Policy, (prefix, name, layout): Side) -> blocking::Cache {
    store
        .apply(
            Cache::builder(name)
                .prefix(prefix)
                .layout(layout)
                .policy(policy),
        )
        .build_blocking()
        .unwrap()
}

fn fill(cache: &blocking::Cache, value: &str, entry_ttl: Option<Duration>) {
    // Tagged, so that the tag bookkeeping keys exist too.
    let mut options = fncache::CallOptions::new();
    if let Some(ttl) = entry_ttl {
        options = options.entry_ttl(ttl);
    }
    let options = options.tags(["t"]);
    for function in FUNCTIONS {
        for i in 0..ARGS {
            let got: String = cache
                .get_or_compute_with(&options, function, &(i,), || value.to_owned())
                .unwrap();
            assert_eq!(got, value, "{}: {function}({i})", cache.name());
        }
    }
}

fn holds_all(cache: &blocking::Cache) -> bool {
    FUNCTIONS
        .iter()
        .all(|f| (0..ARGS).all(|i| cache.contains(f, &(i,)).unwrap()))
}

fn check_pair(store: &Store, policy: Policy, a_side: Side, b_side: Side) {
    let who = format!("{policy:?} {a_side:?} / {b_side:?}");
    let a = build(store, policy, a_side);
    let b = build(store, policy, b_side);
    let full = FUNCTIONS.len() * ARGS as usize;
    fill(&a, "A", None);
    fill(&b, "B", None);
    assert_eq!(a.len().unwrap(), full, "{who}: len of A");
    assert_eq!(b.len().unwrap(), full, "{who}: len of B");
    // Never a wrong value: each cache answers its own.
    fill(&a, "A", None);
    fill(&b, "B", None);

    if a_side.2.is_per_function() {
        assert_eq!(a.purge_function("f").unwrap(), ARGS as usize, "{who}");
        assert!(holds_all(&b), "{who}: A's purge_function touched B");
        assert_eq!(b.len().unwrap(), full, "{who}");
        fill(&a, "A", None);
    }
    assert_eq!(a.vacuum().unwrap(), 0, "{who}: A has nothing expired");
    assert_eq!(
        a.purge().unwrap(),
        full,
        "{who}: A purges its own entries only"
    );
    assert_eq!(a.len().unwrap(), 0, "{who}");
    assert!(holds_all(&b), "{who}: A's purge touched B");
    assert_eq!(b.len().unwrap(), full, "{who}");

    // B's expired entries are B's to reclaim: A's vacuum neither counts nor removes them.
    fill(&a, "A", None);
    assert_eq!(b.purge().unwrap(), full, "{who}");
    fill(&b, "B", Some(Duration::from_millis(1)));
    let deadline = Instant::now() + Duration::from_secs(5);
    while FUNCTIONS
        .iter()
        .any(|f| (0..ARGS).any(|i| b.contains(f, &(i,)).unwrap()))
    {
        assert!(Instant::now() < deadline, "{who}: entries never expired");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(
        a.vacuum().unwrap(),
        0,
        "{who}: A's vacuum reclaimed B's entries"
    );
    assert_eq!(a.len().unwrap(), full, "{who}");
    assert_eq!(b.vacuum().unwrap(), full, "{who}: B reclaims its own");
    assert!(holds_all(&a), "{who}: B's vacuum touched A");
}

#[test]
fn adversarial_pairs_of_caches_never_touch_each_other_on_redis() {
    let pairs = PAIRS.iter().map(|&pair| (Policy::LruT, pair));
    let tiny = TINY_LFU_PAIRS.iter().map(|&pair| (Policy::TinyLfu, pair));
    for (policy, (a, b)) in pairs.chain(tiny) {
        let store = Store::redis();
        check_pair(&store, policy, a, b);
        // And the other way round, on a fresh server.
        let store = Store::redis();
        check_pair(&store, policy, b, a);
    }
}

#[test]
fn adversarial_pairs_of_caches_never_touch_each_other_on_the_embedded_store() {
    let pairs = PAIRS.iter().map(|&pair| (Policy::LruT, pair));
    let tiny = TINY_LFU_PAIRS.iter().map(|&pair| (Policy::TinyLfu, pair));
    for (policy, (a, b)) in pairs.chain(tiny) {
        check_pair(&Store::memory(), policy, a, b);
        check_pair(&Store::memory(), policy, b, a);
    }
}

/// A prefix is only told apart from the name after it by its final `:` (names cannot contain
/// one, it is escaped): `ap` + `px` and `app` + `x` would be the same key.
#[test]
fn a_prefix_must_end_with_a_colon() {
    for prefix in ["ap", "app", "func-cache", "a:b"] {
        let err = Cache::builder("x")
            .prefix(prefix)
            .build_blocking()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{prefix}");
        assert!(err.to_string().contains("`:`"), "{err}");
    }
    Cache::builder("x")
        .prefix("app:cache:")
        .memory()
        .build_blocking()
        .unwrap();
}
