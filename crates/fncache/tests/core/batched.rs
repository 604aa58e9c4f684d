//! `touch_batch` on Redis: a hit is one plain `HGET`, its use reaches the eviction order with
//! the process's next call (zero delay), a use of an entry gone since is dropped, and an entry
//! that can expire still goes through the hit script (freshness stays on server time).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fncache::{Cache, Policy};
use fncache_testing::RedisServer;

use crate::support::{Front, unique_name};

fn fronts(server: &RedisServer, entry_ttl: Option<Duration>) -> [Front; 2] {
    Front::both(|| {
        let builder = Cache::builder(unique_name())
            .redis(server.url())
            .policy(Policy::LruT)
            .maxsize(2)
            .touch_batch(Duration::ZERO);
        match entry_ttl {
            Some(ttl) => builder.entry_ttl(ttl),
            None => builder,
        }
    })
}

#[test]
fn a_batched_hit_is_one_hget_and_its_use_reaches_the_order_with_the_next_call() {
    let server = RedisServer::spawn();
    for front in fronts(&server, None) {
        let label = front.label();
        let execs = AtomicU64::new(0);
        front.call("f", 1, &execs);
        front.call("f", 2, &execs);
        // The process's first hit on the structure renews its TTL, with the script.
        front.call("f", 2, &execs);
        let (hgets, scripts) = (
            server.command_stats("hget").calls,
            server.command_stats("evalsha").calls,
        );
        assert_eq!(front.call("f", 1, &execs), 10);
        assert_eq!(execs.load(Ordering::Relaxed), 2, "{label}: 1 was a hit");
        assert_eq!(server.command_stats("hget").calls, hgets + 1, "{label}");
        assert_eq!(
            server.command_stats("evalsha").calls,
            scripts,
            "{label}: a batched hit runs no script"
        );
        // The put of 3 applies the recorded use of 1 first: 2 is the least recently used.
        front.call("f", 3, &execs);
        assert!(front.is_hit("f", 1), "{label}: 1 was used after 2");
        assert!(!front.contains("f", 2), "{label}: 2 was evicted");
        assert!(front.contains("f", 3), "{label}");
    }
}

#[test]
fn a_recorded_use_of_an_entry_gone_since_is_dropped() {
    let server = RedisServer::spawn();
    for front in fronts(&server, None) {
        let label = front.label();
        let execs = AtomicU64::new(0);
        front.call("f", 1, &execs);
        // The first hit renews the structure TTL with the script; the second is recorded.
        assert!(front.is_hit("f", 1));
        let scripts = server.command_stats("evalsha").calls;
        assert!(front.is_hit("f", 1));
        assert_eq!(server.command_stats("evalsha").calls, scripts, "{label}");
        // Another process drops the whole structure before the use is applied.
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("*{}*", front.name()))
            .query(&mut server.connection())
            .unwrap();
        assert!(!keys.is_empty());
        let _: () = redis::cmd("DEL")
            .arg(&keys)
            .query(&mut server.connection())
            .unwrap();
        // This call applies the use: it must not bring the member back into an index.
        assert_eq!(front.len(), 0, "{label}");
        let left: Vec<String> = redis::cmd("KEYS")
            .arg(format!("*{}*", front.name()))
            .query(&mut server.connection())
            .unwrap();
        assert!(left.is_empty(), "{label}: {left:?} came back");
    }
}

#[test]
fn an_entry_that_can_expire_is_judged_by_the_hit_script() {
    let server = RedisServer::spawn();
    for front in fronts(&server, Some(Duration::from_secs(60))) {
        let label = front.label();
        let execs = AtomicU64::new(0);
        front.call("f", 1, &execs);
        let scripts = server.command_stats("evalsha").calls;
        assert_eq!(front.call("f", 1, &execs), 10);
        assert_eq!(execs.load(Ordering::Relaxed), 1, "{label}: a hit");
        assert_eq!(
            server.command_stats("evalsha").calls,
            scripts + 1,
            "{label}: an entry with an entry TTL takes the script"
        );
    }
}
