//! ACL users with and without the permissions a cache needs: a clear `Denied` error when
//! strict, the function's value otherwise; credentials from URLs or explicit options.

use std::sync::atomic::AtomicU64;

use fncache::{Cache, ErrorKind, Layout};
use fncache_testing::RedisServer;

use crate::support::{Front, unique_name};

/// The least a cache needs (as documented in the README), for caches under the default
/// prefix.
pub const MINIMAL: &[&str] = &[
    "~func-cache:*",
    "+@read",
    "+@write",
    "+evalsha",
    "+script|load",
    "+time",
];

/// What a cluster client needs on top of [`MINIMAL`] (as documented in the README).
pub const CLUSTER_EXTRA: &[&str] = &["+cluster|slots", "+ping", "+asking"];

fn user_url(server: &RedisServer, user: &str, password: &str) -> String {
    format!("redis://{user}:{password}@127.0.0.1:{}/", server.port())
}

/// Everything a cache does, on both layouts that matter here (one structure; SCAN).
fn exercise(front: &Front, who: &str) {
    let execs = AtomicU64::new(0);
    assert!(!front.is_hit("f", 1), "{who}");
    assert!(front.is_hit("f", 1), "{who}");
    front.call("g", 1, &execs);
    assert!(front.contains("g", 1), "{who}");
    assert_eq!(front.len(), 2, "{who}");
    assert_eq!(front.vacuum(), 0, "{who}");
    assert_eq!(front.purge(), 2, "{who}");
    assert_eq!(front.stats().errors, 0, "{who}");
}

#[test]
fn acl_users_with_and_without_the_permissions_a_cache_needs() {
    let server = RedisServer::spawn();
    server.add_acl_user("full", "pw-full", &["~*", "+@all"]);
    server.add_acl_user("minimal", "pw-min", MINIMAL);
    server.add_acl_user("noeval", "pw-noeval", &["~*", "+@all", "-evalsha"]);
    server.add_acl_user("noload", "pw-noload", &["~*", "+@all", "-script|load"]);
    server.add_acl_user("otherkeys", "pw-other", &["~other:*", "+@all"]);

    for (user, password) in [("full", "pw-full"), ("minimal", "pw-min")] {
        for layout in [Layout::Shared, Layout::PerFunction] {
            let builder = || {
                Cache::builder(unique_name())
                    .layout(layout)
                    .redis(user_url(&server, user, password))
                    .strict(true)
            };
            for front in Front::both(builder) {
                exercise(&front, &format!("{user} {layout:?} {}", front.label()));
            }
        }
    }

    // Denied: a clear error when strict, naming what is missing...
    for (user, password, named) in [
        ("noeval", "pw-noeval", "evalsha"),
        ("noload", "pw-noload", "script|load"),
        ("otherkeys", "pw-other", "key"),
    ] {
        // Scripts are cached server-wide: make sure each user has to load them.
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut server.connection())
            .unwrap();
        let url = user_url(&server, user, password);
        let strict = || Cache::builder(unique_name()).redis(&url).strict(true);
        for front in Front::both(strict) {
            let who = format!("{user}, {}", front.label());
            let err = front.try_call("f", 1, &AtomicU64::new(0)).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Denied, "{who}: {err}");
            assert!(err.is_backend(), "{who}");
            assert!(err.to_string().contains(named), "{who}: {err}");
            assert!(!err.to_string().contains(password), "{who}: {err}");
        }
        // ... and the function's value otherwise, the denial counted.
        for front in Front::both(|| Cache::builder(unique_name()).redis(&url)) {
            let who = format!("{user}, fail-open, {}", front.label());
            let execs = AtomicU64::new(0);
            assert_eq!(front.call("f", 1, &execs), 10, "{who}");
            assert_eq!(front.call("f", 1, &execs), 10, "{who}");
            assert_eq!(front.stats().hits, 0, "{who}");
            assert_eq!(
                front.stats().errors,
                2,
                "{who}: a failed lookup per call (no store is tried after it)"
            );
        }
    }

    // A wrong password is denied too, without showing it.
    let wrong = || {
        Cache::builder(unique_name())
            .redis(user_url(&server, "full", "not-the-pw"))
            .strict(true)
    };
    for front in Front::both(wrong) {
        let err = front.try_call("f", 1, &AtomicU64::new(0)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Denied, "{}: {err}", front.label());
        assert!(!format!("{err} {err:?}").contains("not-the-pw"));
        assert!(!front.debug().contains("not-the-pw"), "{}", front.debug());
    }
}

#[test]
fn explicit_credentials_win_over_the_url() {
    let server = RedisServer::spawn();
    server.add_acl_user("full", "pw-full", &["~*", "+@all"]);
    // A wrong password in the URL, the right one given explicitly.
    let fixed = Cache::builder(unique_name())
        .redis(user_url(&server, "full", "stale"))
        .redis_password("pw-full")
        .strict(true);
    // No credentials in the URL at all.
    let explicit = Cache::builder(unique_name())
        .redis(server.url())
        .redis_username("full")
        .redis_password("pw-full")
        .strict(true);
    for (what, builder) in [("password", fixed), ("username and password", explicit)] {
        assert!(!format!("{builder:?}").contains("pw-full"), "{builder:?}");
        for front in Front::both(|| builder.clone()) {
            exercise(&front, &format!("explicit {what}, {}", front.label()));
        }
    }
    // An explicit empty username means the default user, whose `nopass` then applies.
    let default_user = || {
        Cache::builder(unique_name())
            .redis(user_url(&server, "full", "pw-full"))
            .redis_username("")
            .redis_password("")
            .strict(true)
    };
    for front in Front::both(default_user) {
        exercise(&front, &format!("default user, {}", front.label()));
    }
}
