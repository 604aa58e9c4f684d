//! Structures heal: after someone deletes one of a structure's keys, removes some of its
//! members or fields, or Redis evicts keys under `maxmemory` with `allkeys-lru`, the next put
//! brings the structure back within `maxsize` and consistent (`len()` equals what `contains`
//! finds), and nothing in between serves a wrong value or fails.

use std::time::Duration;

use fncache::{Cache, CallOptions, Layout, Policy, blocking};
use fncache_testing::RedisServer;
use redis::Commands;

use crate::support::unique_name;

const MAXSIZE: usize = 10;
/// Every policy: each has its own put script path (TinyLfu's segments and sketch too).
const POLICIES: [Policy; 8] = Policy::ALL;

struct Scene {
    server: RedisServer,
    cache: blocking::Cache,
    policy: Policy,
    index: String,
    values: String,
    expiry: String,
    /// Arguments put so far (the only ones `contains` can find).
    put: u64,
}

impl Scene {
    fn new(policy: Policy) -> Scene {
        let server = RedisServer::spawn();
        let name = unique_name();
        let cache = Cache::builder(name.as_str())
            .policy(policy)
            .maxsize(MAXSIZE)
            .redis(server.url())
            .strict(true)
            .build_blocking()
            .unwrap();
        let base = format!("func-cache:{name}:{}", policy.tag());
        Scene {
            server,
            cache,
            policy,
            index: format!("{base}:0"),
            values: format!("{base}:1"),
            expiry: format!("{base}:2"),
            put: 0,
        }
    }

    fn put(&mut self, n: u64, entry_ttl: Option<Duration>) {
        let mut options = CallOptions::new();
        if let Some(ttl) = entry_ttl {
            options = options.entry_ttl(ttl);
        }
        for _ in 0..n {
            let i = self.put;
            let got: u64 = self
                .cache
                .get_or_compute_with(&options, "f", &(i,), || i * 3)
                .unwrap();
            assert_eq!(got, i * 3);
            self.put += 1;
        }
    }

    fn index_members(&self) -> Vec<Vec<u8>> {
        let mut con = self.server.connection();
        if self.policy == Policy::Random {
            con.smembers(&self.index).unwrap()
        } else {
            con.zrange(&self.index, 0, -1).unwrap()
        }
    }

    fn fields(&self) -> Vec<Vec<u8>> {
        self.server.connection().hkeys(&self.values).unwrap()
    }

    /// Every read serves the right value, and `len()` equals what `contains` finds.
    fn check_reads(&self, who: &str) {
        let found = (0..self.put)
            .filter(|i| self.cache.contains("f", &(*i,)).unwrap())
            .count();
        assert_eq!(self.cache.len().unwrap(), found, "{who}: len vs contains");
        for i in 0..self.put {
            let got: u64 = self.cache.get_or_compute("f", &(i,), || i * 3).unwrap();
            assert_eq!(got, i * 3, "{who}");
        }
    }

    /// The structure is within maxsize, index and entries name the same members, and every
    /// expiry time belongs to an entry.
    fn check_consistent(&self, who: &str) {
        let mut members = self.index_members();
        let mut fields = self.fields();
        members.sort();
        fields.sort();
        assert!(fields.len() <= MAXSIZE, "{who}: {} entries", fields.len());
        assert_eq!(members, fields, "{who}: index and entries differ");
        let timed: Vec<Vec<u8>> = self
            .server
            .connection()
            .zrange(&self.expiry, 0, -1)
            .unwrap();
        for m in &timed {
            assert!(
                fields.contains(m),
                "{who}: an expiry time without its entry"
            );
        }
        let found = (0..self.put)
            .filter(|i| self.cache.contains("f", &(*i,)).unwrap())
            .count();
        assert_eq!(self.cache.len().unwrap(), found, "{who}: len vs contains");
    }
}

/// Breaks a full structure with `damage`, then checks that reads stay right, and that one put
/// heals it (and every later put keeps it healed).
fn heals_after(what: &str, entry_ttl: Option<Duration>, damage: impl Fn(&Scene)) {
    for policy in POLICIES {
        let who = format!("{what}, {policy:?}");
        let mut scene = Scene::new(policy);
        scene.put(MAXSIZE as u64 + 3, entry_ttl);
        scene.check_consistent(&format!("{who}, before"));
        damage(&scene);
        scene.check_reads(&format!("{who}, damaged"));
        scene.put(1, entry_ttl);
        scene.check_consistent(&format!("{who}, after one put"));
        for round in 0..3 {
            scene.put(MAXSIZE as u64 / 2, entry_ttl);
            scene.check_consistent(&format!("{who}, round {round}"));
        }
        assert_eq!(scene.cache.stats().errors, 0, "{who}");
    }
}

#[test]
fn a_deleted_index_heals() {
    heals_after("DEL :0", None, |s| {
        let _: i64 = s.server.connection().del(&s.index).unwrap();
    });
}

#[test]
fn deleted_entries_heal() {
    heals_after("DEL :1", Some(Duration::from_secs(60)), |s| {
        let _: i64 = s.server.connection().del(&s.values).unwrap();
    });
}

#[test]
fn deleted_expiry_times_heal() {
    heals_after("DEL :2", Some(Duration::from_secs(60)), |s| {
        let _: i64 = s.server.connection().del(&s.expiry).unwrap();
    });
}

#[test]
fn members_removed_from_the_index_heal() {
    heals_after("ZREM/SREM some", Some(Duration::from_secs(60)), |s| {
        let members = s.index_members();
        let mut con = s.server.connection();
        for m in &members[..3] {
            let _: i64 = if s.policy == Policy::Random {
                con.srem(&s.index, m).unwrap()
            } else {
                con.zrem(&s.index, m).unwrap()
            };
        }
    });
}

#[test]
fn entries_removed_from_the_hash_heal() {
    heals_after("HDEL some", Some(Duration::from_secs(60)), |s| {
        let fields = s.fields();
        let mut con = s.server.connection();
        for f in &fields[..3] {
            let _: i64 = con.hdel(&s.values, f).unwrap();
        }
    });
}

#[test]
fn expiry_times_without_entries_are_ignored() {
    heals_after("stray expiry times", None, |s| {
        let mut con = s.server.connection();
        for i in 0..4u8 {
            let _: i64 = con.zadd(&s.expiry, [i; 16].as_slice(), 1).unwrap();
        }
    });
}

/// Redis evicting keys under memory pressure (`allkeys-lru`) leaves structures whose index or
/// entries are gone. Once the pressure is off, the next put of each structure restores it, and
/// no structure grows past `maxsize` afterwards (before, a structure that had lost its index
/// kept every entry put since: 160 with maxsize 40 here).
#[test]
fn structures_heal_after_allkeys_eviction() {
    const FUNCTIONS: usize = 30;
    const MAXSIZE: usize = 40;
    let server = RedisServer::spawn();
    let mut con = server.connection();
    // Writes refused with OOM fail open; the breaker must not skip Redis afterwards.
    let cache = Cache::builder("evicted")
        .layout(Layout::PerFunction)
        .maxsize(MAXSIZE)
        .circuit_breaker(fncache::CircuitBreaker::DISABLED)
        .redis(server.url())
        .build_blocking()
        .unwrap();
    let payload = "x".repeat(500);
    let value = |f: usize, i: usize| format!("{f}:{i}:{payload}");
    let mut next = 0;
    let mut put_round = |count: usize| {
        for _ in 0..count {
            for f in 0..FUNCTIONS {
                let got: String = cache
                    .get_or_compute(&format!("f{f}"), &(next,), || value(f, next))
                    .unwrap();
                assert_eq!(got, value(f, next));
            }
            next += 1;
        }
        next
    };
    put_round(MAXSIZE);
    let info = |con: &mut redis::Connection, section: &str, field: &str| -> u64 {
        let info: String = redis::cmd("INFO").arg(section).query(con).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix(field))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    // Pressure: a quarter of the memory has to go, a few puts at a time.
    let used = info(&mut con, "memory", "used_memory:");
    // One setting per CONFIG SET: Redis 6.2 takes no more.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used * 3 / 4)
        .query(&mut con)
        .unwrap();
    put_round(2);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query(&mut con)
        .unwrap();
    assert!(
        info(&mut con, "stats", "evicted_keys:") > 0,
        "the server was expected to evict keys"
    );

    let check = |con: &mut redis::Connection, upto: usize, who: &str| {
        let index_keys: Vec<String> = con.keys("func-cache:evicted:*:0").unwrap();
        assert_eq!(index_keys.len(), FUNCTIONS, "{who}");
        let value_keys: Vec<String> = con.keys("func-cache:evicted:*:1").unwrap();
        assert_eq!(value_keys.len(), FUNCTIONS, "{who}");
        for index in index_keys {
            let values = format!("{}:1", index.strip_suffix(":0").unwrap());
            let card: usize = con.zcard(&index).unwrap();
            let stored: usize = con.hlen(&values).unwrap();
            assert!(stored <= MAXSIZE, "{who}: {values} holds {stored} entries");
            assert_eq!(card, stored, "{who}: {index}");
        }
        let mut found = 0;
        for f in 0..FUNCTIONS {
            let function = format!("f{f}");
            found += (0..upto)
                .filter(|i| cache.contains(&function, &(*i,)).unwrap())
                .count();
        }
        assert_eq!(cache.len().unwrap(), found, "{who}: len vs contains");
    };
    // One put per structure heals it.
    let upto = put_round(1);
    check(&mut con, upto, "after one put");
    let upto = put_round(3 * MAXSIZE);
    check(&mut con, upto, "after more puts");
}

/// A full `TinyLfu` structure whose index and entries have the same size but not the same
/// members (an entry deleted from outside, another added) is not healed by a put: the put of
/// the member indexed without its entry re-indexes it, which adds nothing to the index, so
/// nothing is evicted (the script counts what its ZADD added rather than reading ZCARD again,
/// and must not count one more).
#[test]
fn a_tinylfu_put_of_a_member_indexed_without_its_entry_evicts_nothing() {
    let mut scene = Scene::new(Policy::TinyLfu);
    scene.put(MAXSIZE as u64 + 3, None);
    scene.check_consistent("before");
    let mut con = scene.server.connection();
    // The last put's member is the window's newest: the highest score below segment 1's.
    let window: Vec<Vec<u8>> = con
        .zrevrangebyscore_limit(&scene.index, (1u64 << 50) - 1, 0, 0, 1)
        .unwrap();
    let last = &window[0];
    let entry: Vec<u8> = con.hget(&scene.values, last).unwrap();
    let _: i64 = con.hdel(&scene.values, last).unwrap();
    let _: i64 = con
        .hset(&scene.values, [7u8; 16].as_slice(), entry)
        .unwrap();
    let before = scene.index_members();
    assert_eq!(before.len(), MAXSIZE);
    assert_eq!(scene.fields().len(), MAXSIZE);
    let i = scene.put - 1;
    let got: u64 = scene.cache.get_or_compute("f", &(i,), || i * 3).unwrap();
    assert_eq!(got, i * 3);
    let mut after = scene.index_members();
    let mut before = before;
    after.sort();
    before.sort();
    assert_eq!(after, before, "the put evicted or added a member");
    assert!(scene.fields().contains(last), "the entry is back");
}
