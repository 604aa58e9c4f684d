//! What differs between the servers the suite runs on (`FNCACHE_TEST_SERVER=redis|valkey`):
//! Valkey 9 releases a lease with the plain `DELIFEQ`, Redis with the `lease.lua` script.
//! Either way the server is asked once per cache, not per release.

use fncache::{Cache, CallOptions};
use fncache_testing::{RedisServer, ServerKind};

use crate::support::{Front, unique_name};

#[test]
fn a_lease_is_released_with_delifeq_on_valkey_and_with_the_script_on_redis() {
    let server = RedisServer::spawn();
    // A value that is not cached gives its lease back at once: a release, not a put.
    let uncached = CallOptions::new().cache_none(false);
    let releases = 3;
    // This test counts scripts: no batches of shared counters (a script too).
    let builder = || {
        Cache::builder(unique_name())
            .redis(server.url())
            .shared_stats(false)
    };
    for front in Front::both(builder) {
        for x in 0..releases {
            let value = front.call_with(&uncached, "f", x, || None::<u64>).unwrap();
            assert_eq!(value, None);
        }
        assert_eq!(front.stats().misses, releases, "{}", front.label());
    }
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*:lock:*")
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(keys, Vec::<String>::new(), "every lease was released");

    let both = 2 * releases;
    let delifeq = server.command_stats("delifeq").calls;
    // Without the NOSCRIPT answers that make a script load.
    let evalsha = server.command_stats("evalsha").succeeded();
    let kind = server.kind();
    let version = server.version();
    match kind {
        ServerKind::Valkey => {
            assert!(server.has_command("delifeq"), "Valkey {version}");
            assert_eq!(
                delifeq, both,
                "Valkey {version}: every release is a DELIFEQ"
            );
            // Only the lookups are scripts.
            assert_eq!(evalsha, both, "Valkey {version}");
        }
        ServerKind::Redis => {
            assert!(!server.has_command("delifeq"), "Redis {version}");
            assert_eq!(delifeq, 0, "Redis {version}");
            // A lookup and a release script per call.
            assert_eq!(evalsha, 2 * both, "Redis {version}");
        }
    }
    // One probe per cache (the test's own `has_command` above is one more).
    assert_eq!(
        server.command_stats("command|info").calls,
        2 + 1,
        "{kind:?}"
    );
}

/// The fallback on a real server: a user that may not run the probe (`COMMAND INFO`, on
/// both servers) or `DELIFEQ` itself (Valkey: the probe says it exists, the release is
/// refused with `NOPERM`) still releases every lease, with the script, without an error.
#[test]
fn a_user_refused_the_probe_or_delifeq_releases_leases_with_the_script() {
    let server = RedisServer::spawn();
    // Redis 6.2 cannot take one subcommand away: there the whole of COMMAND goes.
    let probe = if server.version_at_least(7, 0) {
        "-command|info"
    } else {
        "-command"
    };
    let mut users = vec![("noprobe", probe)];
    if server.kind() == ServerKind::Valkey {
        users.push(("nodelifeq", "-delifeq"));
    }
    let uncached = CallOptions::new().cache_none(false);
    let releases = 3;
    for (user, denied) in users {
        let _: () = redis::cmd("ACL")
            .arg(&["SETUSER", user, "on", ">pw", "~*", "&*", "+@all", denied])
            .query(&mut server.connection())
            .unwrap();
        let before = server.command_stats("evalsha").succeeded();
        let builder = || {
            Cache::builder(unique_name())
                .redis(server.url())
                .redis_username(user)
                .redis_password("pw")
                .shared_stats(false)
        };
        for front in Front::both(builder) {
            for x in 0..releases {
                let value = front.call_with(&uncached, "f", x, || None::<u64>).unwrap();
                assert_eq!(value, None);
            }
            let stats = front.stats();
            let who = format!("{user} {}", front.label());
            assert_eq!((stats.misses, stats.errors), (releases, 0), "{who}");
        }
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("*:lock:*")
            .query(&mut server.connection())
            .unwrap();
        assert_eq!(
            keys,
            Vec::<String>::new(),
            "{user}: every lease was released"
        );
        // A lookup and a release script per call, on both front-ends.
        let scripts = server.command_stats("evalsha").succeeded() - before;
        assert_eq!(scripts, 2 * 2 * releases, "{user}");
        assert_eq!(server.command_stats("delifeq").calls, 0, "{user}");
    }
    if server.kind() == ServerKind::Valkey {
        // `nodelifeq` did try it: once per cache, refused, then the script only.
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut server.connection())
            .unwrap();
        let line = stats
            .lines()
            .find(|l| l.starts_with("cmdstat_delifeq:"))
            .unwrap_or_default();
        assert!(line.contains("rejected_calls=2,"), "{line}");
    }
}
