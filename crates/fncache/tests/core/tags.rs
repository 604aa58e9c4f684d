//! Tags: a call tags its entry, `invalidate_tag` removes every entry carrying the tag, in every
//! layout, store and front-end, and the tag bookkeeping never outlives the entries.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use fncache::{Cache, CallOptions, Layout, Mode};
use fncache_testing::RedisServer;

use crate::front::Front;
use crate::support::{Store, all_fronts, describe, unique_name};

const LAYOUTS: [Layout; 4] = [
    Layout::Shared,
    Layout::PerFunction,
    Layout::Cluster,
    Layout::ClusterPerFunction,
];

fn invalidate_tag(front: &Front, tag: &str) -> usize {
    front.invalidate_tag(tag)
}

fn tagged(tags: &[&str]) -> fncache::TypedOptions<u64> {
    CallOptions::new().tags(tags.iter().copied())
}

/// Keys of the tag bookkeeping (`:3` and `:4`) of every structure on the server.
fn all_tag_keys(server: &RedisServer) -> Vec<String> {
    let mut con = server.connection();
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*:3").query(&mut con).unwrap();
    let more: Vec<String> = redis::cmd("KEYS").arg("*:4").query(&mut con).unwrap();
    keys.extend(more);
    keys
}

/// Tag bookkeeping of entries on the server: [`all_tag_keys`] but a tags hash that only holds
/// the time of the structure's last invalidation (`g`, one field per structure).
fn tag_keys(server: &RedisServer) -> Vec<String> {
    let mut con = server.connection();
    all_tag_keys(server)
        .into_iter()
        .filter(|key| {
            let fields: Vec<Vec<u8>> = if key.ends_with(":3") {
                redis::cmd("HKEYS").arg(key).query(&mut con).unwrap()
            } else {
                Vec::new()
            };
            fields != [b"g".to_vec()]
        })
        .collect()
}

#[test]
fn invalidate_tag_removes_every_entry_carrying_it_in_every_layout() {
    for layout in LAYOUTS {
        for (store, front) in all_fronts(|b| b.layout(layout)) {
            let who = format!("{} {layout:?}", describe(&store, &front));
            let execs = AtomicU64::new(0);
            // Two functions (two structures in the per-function layouts) share the tag.
            front
                .call_with(&tagged(&["user:7"]), "profile", 7, || 70)
                .unwrap();
            front
                .call_with(&tagged(&["user:7", "orders"]), "orders", 7, || 71)
                .unwrap();
            front
                .call_with(&tagged(&["user:8", "orders"]), "orders", 8, || 81)
                .unwrap();
            front.call("profile", 9, &execs); // untagged
            assert_eq!(front.len(), 4, "{who}");

            assert_eq!(invalidate_tag(&front, "user:7"), 2, "{who}");
            assert!(!front.contains("profile", 7), "{who}");
            assert!(!front.contains("orders", 7), "{who}");
            assert!(front.contains("orders", 8), "{who}");
            assert!(front.contains("profile", 9), "{who}");
            assert_eq!(invalidate_tag(&front, "user:7"), 0, "{who}: nothing left");
            assert_eq!(invalidate_tag(&front, "never"), 0, "{who}");
            // A tag that is a prefix of another, or longer, finds nothing of it.
            assert_eq!(invalidate_tag(&front, "user:"), 0, "{who}");
            assert_eq!(invalidate_tag(&front, "user:88"), 0, "{who}");
            assert_eq!(invalidate_tag(&front, "orders"), 1, "{who}");
            assert_eq!(front.len(), 1, "{who}");
            if let Some(server) = store.server() {
                assert_eq!(tag_keys(server), Vec::<String>::new(), "{who}");
            }
        }
    }
}

#[test]
fn a_put_replaces_the_tags_an_entry_had() {
    for (store, front) in all_fronts(|b| b) {
        let who = describe(&store, &front);
        front.put_with(&tagged(&["a", "b"]), "f", 1, &10).unwrap();
        front.put_with(&tagged(&["c"]), "f", 1, &11).unwrap();
        assert_eq!(invalidate_tag(&front, "a"), 0, "{who}");
        assert_eq!(invalidate_tag(&front, "b"), 0, "{who}");
        assert!(front.contains("f", 1), "{who}");
        // An untagged put drops the tags too.
        front.put_with(&CallOptions::new(), "f", 1, &12u64).unwrap();
        assert_eq!(invalidate_tag(&front, "c"), 0, "{who}");
        assert!(front.contains("f", 1), "{who}");
        if let Some(server) = store.server() {
            assert_eq!(tag_keys(server), Vec::<String>::new(), "{who}");
        }
        // Duplicates count once.
        front.put_with(&tagged(&["d", "d"]), "f", 2, &20).unwrap();
        assert_eq!(invalidate_tag(&front, "d"), 1, "{who}");
    }
}

#[test]
fn evicted_and_reclaimed_entries_leave_no_tag_bookkeeping() {
    for layout in [Layout::Shared, Layout::PerFunction] {
        for (store, front) in all_fronts(|b| b.layout(layout).maxsize(2)) {
            let who = format!("{} {layout:?}", describe(&store, &front));
            for x in 0..6u64 {
                let tag = format!("x{x}");
                front.put_with(&tagged(&[&tag, "all"]), "f", x, &x).unwrap();
            }
            if let Some(server) = store.server() {
                let mut con = server.connection();
                for key in tag_keys(server) {
                    let n: usize = if key.ends_with(":3") {
                        redis::cmd("HLEN").arg(&key).query(&mut con).unwrap()
                    } else {
                        redis::cmd("ZCARD").arg(&key).query(&mut con).unwrap()
                    };
                    // Two entries, each with two tags.
                    let want = if key.ends_with(":3") { 2 } else { 4 };
                    assert_eq!(n, want, "{who}: {key}");
                }
            }
            for x in 0..4u64 {
                assert_eq!(invalidate_tag(&front, &format!("x{x}")), 0, "{who}");
            }
            assert_eq!(invalidate_tag(&front, "all"), 2, "{who}");
            assert_eq!(front.len(), 0, "{who}");
            if let Some(server) = store.server() {
                assert_eq!(tag_keys(server), Vec::<String>::new(), "{who}");
            }
        }
    }
}

#[test]
fn purge_remove_and_expiry_take_the_tag_bookkeeping_with_them() {
    for layout in [Layout::Shared, Layout::PerFunction] {
        for (store, front) in all_fronts(|b| b.layout(layout)) {
            let who = format!("{} {layout:?}", describe(&store, &front));
            front.put_with(&tagged(&["t"]), "f", 1, &1).unwrap();
            front.put_with(&tagged(&["t"]), "g", 2, &2).unwrap();
            assert!(front.invalidate("f", 1), "{who}");
            assert_eq!(invalidate_tag(&front, "t"), 1, "{who}");
            front.put_with(&tagged(&["t"]), "f", 1, &1).unwrap();
            assert_eq!(front.purge(), 1, "{who}");
            assert_eq!(invalidate_tag(&front, "t"), 0, "{who}");
            // An entry reclaimed by vacuum after its entry TTL.
            let short = CallOptions::new()
                .entry_ttl(std::time::Duration::from_millis(30))
                .tags(["t", "u"]);
            front.put_with(&short, "f", 3, &3).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(60));
            assert_eq!(front.vacuum(), 1, "{who}");
            assert_eq!(invalidate_tag(&front, "u"), 0, "{who}");
            if let Some(server) = store.server() {
                assert_eq!(tag_keys(server), Vec::<String>::new(), "{who}");
            }
            if layout == Layout::PerFunction {
                front.put_with(&tagged(&["t"]), "f", 1, &1).unwrap();
                assert_eq!(front.purge_function("f").unwrap(), 1, "{who}");
                if let Some(server) = store.server() {
                    assert_eq!(tag_keys(server), Vec::<String>::new(), "{who}");
                }
            }
        }
    }
}

#[test]
fn a_cache_without_tags_writes_no_tag_keys() {
    let store = Arc::new(Store::redis());
    for layout in LAYOUTS {
        let front = Front::blocking(store.apply(Cache::builder(unique_name()).layout(layout)));
        let execs = AtomicU64::new(0);
        for x in 0..5 {
            front.call("f", x, &execs);
        }
        front.invalidate("f", 1);
        front.vacuum();
        front.purge();
    }
    assert_eq!(
        all_tag_keys(store.server().unwrap()),
        Vec::<String>::new(),
        "an untagged cache must not pay for tags"
    );
}

/// Keys of the racing writer below: few, so that invalidations meet entries often.
const RACE_KEYS: u64 = 31;
/// The server key where the racing writer says how far it got (see below).
const RACE_MARK: &str = "race:mark";
/// The server key that stops the racing writer.
const RACE_STOP: &str = "race:stop";

/// The writer of [`invalidation_racing_with_puts_from_another_process_leaves_nothing_tagged`],
/// run as a child process of this test binary (it does nothing unless that test started it).
/// It writes value `x` tagged `hot` under `f` or `g` at key `x % RACE_KEYS`, alternately by
/// `put` and by a call that computes it (after removing the key, so that the call looks up,
/// misses and computes), and sets `race:mark` to `x + 1` once the value can no longer be news
/// to an invalidation: after the put returned, or from inside the computation (after the
/// call's lookup). So every value below the mark an invalidation reads before it starts is one
/// that invalidation must remove or have refused.
#[test]
fn tag_race_child_writer() {
    let (Ok(url), Ok(name), Ok(layout)) = (
        std::env::var("FNCACHE_TAG_RACE_URL"),
        std::env::var("FNCACHE_TAG_RACE_NAME"),
        std::env::var("FNCACHE_TAG_RACE_LAYOUT"),
    ) else {
        return;
    };
    let layout = if layout == "shared" {
        Layout::Shared
    } else {
        Layout::PerFunction
    };
    let cache = Cache::builder(name)
        .layout(layout)
        .maxsize(64)
        .redis(&url)
        .build_blocking()
        .unwrap();
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    let mut x = 0u64;
    loop {
        let stop: Option<String> = redis::cmd("GET").arg(RACE_STOP).query(&mut con).unwrap();
        if stop.is_some() {
            break;
        }
        let options = CallOptions::new().tags(["hot", &format!("x{}", x % 7)]);
        let function = if x.is_multiple_of(2) { "f" } else { "g" };
        let key = (x % RACE_KEYS,);
        if (x / 2).is_multiple_of(2) {
            cache.put_with(&options, function, &key, &x).unwrap();
            let _: () = redis::cmd("SET")
                .arg(RACE_MARK)
                .arg(x + 1)
                .query(&mut con)
                .unwrap();
        } else {
            cache.invalidate(function, &key).unwrap();
            let v = cache
                .get_or_compute_with(&options, function, &key, || {
                    let _: () = redis::cmd("SET")
                        .arg(RACE_MARK)
                        .arg(x + 1)
                        .query(&mut con)
                        .unwrap();
                    x
                })
                .unwrap();
            assert_eq!(v, x);
        }
        x += 1;
    }
}

/// Two OS processes race: a child stores tagged entries (puts and computed calls, see
/// [`tag_race_child_writer`]) while this one invalidates the tag. Every invalidation removes
/// (or has refused) every value the writer had written, or begun computing, before it started;
/// once the writer has stopped, one more invalidation leaves no entry of the tag and no
/// bookkeeping.
#[test]
fn invalidation_racing_with_puts_from_another_process_leaves_nothing_tagged() {
    for (layout, word) in [(Layout::Shared, "shared"), (Layout::PerFunction, "per")] {
        let server = RedisServer::spawn();
        let name = unique_name();
        let invalidator = Cache::builder(&name)
            .layout(layout)
            .maxsize(64)
            .redis(server.url())
            .build_blocking()
            .unwrap();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["tags::tag_race_child_writer", "--exact", "--quiet"])
            .env("FNCACHE_TAG_RACE_URL", server.url())
            .env("FNCACHE_TAG_RACE_NAME", &name)
            .env("FNCACHE_TAG_RACE_LAYOUT", word)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut con = server.connection();
        let mark = |con: &mut redis::Connection| -> u64 {
            let m: Option<u64> = redis::cmd("GET").arg(RACE_MARK).query(con).unwrap();
            m.unwrap_or(0)
        };
        // Each value read back: the entry's, or `u64::MAX` for none (nothing is stored).
        let read = |function: &str, key: u64| -> u64 {
            invalidator.with_mode(fncache::Mode::READ_ONLY, || {
                invalidator
                    .get_or_compute(function, &(key,), || u64::MAX)
                    .unwrap()
            })
        };
        let (mut removed, mut rounds) = (0, 0);
        while rounds < 60 || mark(&mut con) < 400 {
            let before = mark(&mut con);
            removed += invalidator.invalidate_tag("hot").unwrap();
            for function in ["f", "g"] {
                for key in 0..RACE_KEYS {
                    let v = read(function, key);
                    assert!(
                        v == u64::MAX || v >= before,
                        "{layout:?}: {function}({key}) = {v}, written before an \
                         invalidation that began once the writer was at {before}"
                    );
                }
            }
            rounds += 1;
            assert!(rounds < 10_000, "{layout:?}: the writer is stuck");
        }
        let _: () = redis::cmd("SET")
            .arg(RACE_STOP)
            .arg(1)
            .query(&mut con)
            .unwrap();
        assert!(
            child.wait().unwrap().success(),
            "{layout:?}: the writer failed"
        );
        assert!(removed > 0, "{layout:?}: the race never overlapped");
        let left = invalidator.len().unwrap();
        assert_eq!(invalidator.invalidate_tag("hot").unwrap(), left);
        assert_eq!(invalidator.len().unwrap(), 0, "{layout:?}");
        assert_eq!(tag_keys(&server), Vec::<String>::new(), "{layout:?}");
    }
}

/// The dangerous race: a value computed before an invalidation of its tag, stored after it.
/// Here another process (a second cache of the same name, on the same store) invalidates the
/// tag while the call computes: the call's put must not store the value it computed from the
/// data the invalidation stands for.
#[test]
fn a_value_computed_before_an_invalidation_of_its_tag_is_not_stored_after_it() {
    for layout in [Layout::Shared, Layout::PerFunction] {
        computed_before_an_invalidation(layout, true, Mode::DEFAULT);
    }
}

/// A computation with no lookup (`WRITE_ONLY`) has only its own clock to say when it began:
/// its put is refused too when an invalidation overtook it (by an estimate with a margin).
#[test]
fn a_write_only_computation_overtaken_by_an_invalidation_is_not_stored() {
    for layout in [Layout::Shared, Layout::PerFunction] {
        computed_before_an_invalidation(layout, true, Mode::WRITE_ONLY);
    }
}

/// As above, for a function that has no entry at all when the invalidation runs: in the
/// per-function layouts its structure has no key for the invalidation to find, yet the value
/// its call computed from before the invalidation must not be stored after it either.
#[test]
fn a_function_with_no_entries_at_invalidation_time_stores_no_value_computed_before_it() {
    for layout in LAYOUTS {
        computed_before_an_invalidation(layout, false, Mode::DEFAULT);
    }
}

/// A tagged call of `f` in `mode` whose computation another process's invalidation of the tag
/// overtakes; `warm`: `f` has a tagged entry already (its structure exists).
fn computed_before_an_invalidation(layout: Layout, warm: bool, mode: Mode) {
    // The pause below holds every script of the call back: no op may time out meanwhile
    // (a timed-out put or lookup would pass or fail this test for another reason).
    let patient = |b: fncache::Builder| b.layout(layout).op_timeout(Duration::from_secs(10));
    for (store, front) in all_fronts(patient) {
        let who = format!(
            "{} {layout:?} warm: {warm} {mode:?}",
            describe(&store, &front)
        );
        let other = match &*store {
            Store::Memory => None,
            Store::Redis(server) => Some(
                Cache::builder(front.name())
                    .layout(layout)
                    .redis(server.url())
                    .build_blocking()
                    .unwrap(),
            ),
        };
        let invalidate = || match &other {
            Some(other) => {
                let n = other.invalidate_tag("user:7").unwrap();
                // Hold the call's put back at the server for a while after the
                // invalidation, as a loaded link or server would: the put must still
                // know that its computation began before the invalidation.
                if let Store::Redis(server) = &*store {
                    let _: () = redis::cmd("CLIENT")
                        .arg("PAUSE")
                        .arg(150)
                        .arg("WRITE")
                        .query(&mut server.connection())
                        .unwrap();
                }
                n
            }
            None => match &front {
                Front::Blocking(c) => c.invalidate_tag("user:7").unwrap(),
                // The async front-end's own runtime is driving this call.
                Front::Async(c, _) => {
                    let c = c.clone();
                    std::thread::spawn(move || {
                        crate::front::runtime().block_on(c.invalidate_tag("user:7"))
                    })
                    .join()
                    .unwrap()
                    .unwrap()
                }
            },
        };
        if warm {
            // A tagged entry of the function exists already (its structure too).
            front.call_with(&tagged(&["user:7"]), "f", 1, || 1).unwrap();
        }
        let compute = || {
            assert_eq!(invalidate(), usize::from(warm), "{who}");
            20
        };
        let options = tagged(&["user:7"]);
        let v = match &front {
            Front::Blocking(c) => c
                .with_mode(mode, || {
                    c.get_or_compute_with(&options, "f", &(2u64,), compute)
                })
                .unwrap(),
            Front::Async(c, rt) => rt
                .block_on(c.with_mode(
                    mode,
                    c.get_or_compute_with(&options, "f", &(2u64,), || async { compute() }),
                ))
                .unwrap(),
        };
        assert_eq!(v, 20, "{who}: the caller gets its value");
        assert!(
            !front.contains("f", 2),
            "{who}: stored after the invalidation"
        );
        // A computation that begins after the invalidation stores as usual.
        front
            .call_with(&tagged(&["user:7"]), "f", 2, || 21)
            .unwrap();
        assert!(front.contains("f", 2), "{who}");
        // So does a put (no computation), and an untagged call.
        front.put_with(&tagged(&["user:7"]), "f", 3, &30).unwrap();
        assert!(front.contains("f", 3), "{who}");
    }
}

/// Removals that do not name the tag keys (`invalidate`, untagged puts) leave tags behind that
/// match no entry: they never count, and the next tagged put sweeps them once they outnumber
/// the entries, so the bookkeeping stays bounded by the entries present.
#[test]
fn tags_left_by_removals_never_count_and_are_swept() {
    let server = RedisServer::spawn();
    let cache = Cache::builder(unique_name())
        .policy(fncache::Policy::Lru)
        .redis(server.url())
        .build_blocking()
        .unwrap();
    let tags_hash = format!("func-cache:{}:lru:3", cache.name());
    let hlen = || -> usize {
        redis::cmd("HLEN")
            .arg(&tags_hash)
            .query(&mut server.connection())
            .unwrap()
    };
    for x in 0..40u64 {
        cache.put_with(&tagged(&["t"]), "f", &(x,), &x).unwrap();
    }
    for x in 0..40u64 {
        assert!(cache.invalidate("f", &(x,)).unwrap());
    }
    // Stored again without tags: the old tags are not this entry's.
    cache.put("f", &(0u64,), &0u64).unwrap();
    assert_eq!(hlen(), 40, "orphans until a tagged put");
    cache
        .put_with(&tagged(&["u"]), "f", &(99u64,), &99)
        .unwrap();
    assert_eq!(hlen(), 1, "swept: only the new entry's tags");
    assert_eq!(cache.invalidate_tag("t").unwrap(), 0);
    assert!(cache.contains("f", &(0u64,)).unwrap());
    assert_eq!(cache.invalidate_tag("u").unwrap(), 1);
}
