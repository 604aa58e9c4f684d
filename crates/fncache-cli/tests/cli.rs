//! The `fncache` binary against real servers filled by the library: a standalone
//! redis-server and a Redis Cluster, every command with and without `--json`, and the errors
//! an operator meets (wrong URL, denied user, empty server) as one line with the documented
//! exit code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};
use std::time::Duration;

use fncache::{Cache, CallOptions, Codec, Layout, Policy, blocking};
use fncache_testing::{RedisCluster, RedisServer};
use serde_json::Value;

/// Runs `fncache args...` with no store in the environment.
fn fncache(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fncache"))
        .args(args)
        .env_remove("FNCACHE_REDIS_URL")
        .env_remove("REDIS_URL")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Runs a command that must succeed; returns its output, checked to fit 80 columns.
fn ok(args: &[&str]) -> String {
    let out = fncache(args);
    assert!(
        out.status.success(),
        "fncache {args:?}: {:?}\n{}",
        out.status,
        stderr(&out)
    );
    let text = stdout(&out);
    if !args.contains(&"--json") {
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "wider than 80 columns: {line}");
        }
    }
    text
}

fn json(args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&ok(&args)).unwrap()
}

/// Runs a command that must fail with `code` and one line on stderr; returns that line.
fn fails(args: &[&str], code: i32) -> String {
    let out = fncache(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "fncache {args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("fncache: error: "), "{err}");
    assert!(stdout(&out).is_empty());
    err
}

fn fill(cache: &blocking::Cache, function: &str, options: &CallOptions, args: &[u64]) {
    for &x in args {
        let v = cache
            .get_or_compute_with(options, function, &(x,), || vec![x, x * 10])
            .unwrap();
        assert_eq!(v, vec![x, x * 10]);
    }
}

/// Two caches, one per layout family, filled and counted by two "processes" (caches of one
/// name), their batches sent by `shared_stats()` and by dropping.
fn fill_server(builder: impl Fn(&str) -> fncache::Builder, shared: Layout, per: Layout) {
    let default = CallOptions::new();
    let json = CallOptions::new().codec(Codec::Json);
    let cbor = CallOptions::new().codec(Codec::Cbor);
    let postcard = CallOptions::new().codec(Codec::Postcard);
    let shop = || builder("shop").layout(shared).build_blocking().unwrap();
    let (one, two) = (shop(), shop());
    fill(&one, "prices", &default, &[1, 2, 3, 1]); // 3 misses, 1 hit
    fill(&two, "prices", &default, &[1, 2]); // 2 hits
    fill(&two, "users", &json, &[7, 8]);
    one.shared_stats().unwrap();
    drop(two); // its last batch goes now

    let per_fn = builder("per").layout(per).build_blocking().unwrap();
    fill(&per_fn, "app::a@v2#0123456789abcdef", &default, &[1, 2, 2]);
    fill(&per_fn, "b", &cbor, &[5]);
    fill(&per_fn, "p", &postcard, &[6]);
    per_fn.shared_stats().unwrap();
}

fn find<'a>(list: &'a Value, key: &str, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|v| v[key] == name)
        .unwrap_or_else(|| panic!("no {key} {name} in {list:#}"))
}

/// Every command on one server (or cluster), `connect` being the connection arguments.
fn every_command(connect: &[&str], per_label: &str) {
    let with = |args: &[&str]| -> Vec<String> {
        connect
            .iter()
            .chain(args)
            .map(|s| (*s).to_owned())
            .collect()
    };
    let ok_ = |args: &[&str]| ok(&with(args).iter().map(String::as_str).collect::<Vec<_>>());
    let json_ = |args: &[&str]| json(&with(args).iter().map(String::as_str).collect::<Vec<_>>());
    let fails_ = |args: &[&str], code| {
        fails(
            &with(args).iter().map(String::as_str).collect::<Vec<_>>(),
            code,
        )
    };

    // ls
    let text = ok_(&["ls"]);
    assert!(text.starts_with("CACHE"), "{text}");
    assert!(text.contains("shop") && text.contains("per"), "{text}");
    assert!(text.contains(per_label), "{text}");
    let caches = json_(&["ls"]);
    let shop = find(&caches, "name", "shop");
    assert_eq!(shop["entries"], 5, "{shop:#}");
    assert_eq!(shop["structures"], 1);
    assert_eq!(shop["policy"], "lru_t");
    assert!(shop["memory_bytes"].as_u64().unwrap() > 0);
    assert_eq!(shop["ttl_ms"], 3_600_000);
    let per = find(&caches, "name", "per");
    assert_eq!(per["entries"], 4);
    assert_eq!(per["structures"], 3);
    assert_eq!(per["layout"], per_label);

    // stats
    let text = ok_(&["stats"]);
    assert!(
        text.contains("cache shop") && text.contains("prices"),
        "{text}"
    );
    assert!(text.contains("not countable"), "{text}");
    let stats = json_(&["stats", "shop"]);
    let shop = &stats[0];
    assert_eq!(shop["total"]["calls"], 8, "{shop:#}");
    let prices = find(&shop["functions"], "function", "prices");
    assert_eq!(prices["stats"]["calls"], 6);
    assert_eq!(prices["stats"]["hits"], 3);
    assert_eq!(prices["stats"]["misses"], 3);
    assert_eq!(prices["hit_ratio"], 0.5);
    assert_eq!(
        prices["entries"],
        Value::Null,
        "not countable in a shared layout"
    );
    let stats = json_(&["stats", "per"]);
    let a = find(
        &stats[0]["functions"],
        "function",
        "app::a@v2#0123456789abcdef",
    );
    assert_eq!(a["entries"], 2, "exact in a per-function layout");
    assert_eq!(a["stats"]["hits"], 1);

    // inspect
    let text = ok_(&["inspect", "shop", "--decode"]);
    assert!(
        text.contains("5 entries, next to be evicted first"),
        "{text}"
    );
    assert!(text.contains("= [2,20]"), "{text}");
    let shown = json_(&["inspect", "shop", "--decode"]);
    let rows = shown[0]["shown"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert!(
        rows.iter()
            .all(|r| r["state"] == "fresh" && r["size"].as_u64() > Some(26))
    );
    let values: Vec<&Value> = rows.iter().map(|r| &r["value"]).collect();
    assert!(
        values.contains(&&serde_json::json!([8, 80])),
        "JSON: {values:?}"
    );
    assert!(
        values.contains(&&serde_json::json!([3, 30])),
        "MessagePack: {values:?}"
    );
    let limited = json_(&["inspect", "shop", "--limit", "2"]);
    assert_eq!(limited[0]["shown"].as_array().unwrap().len(), 2);
    let b = json_(&["inspect", "per", "b", "--decode"]);
    assert_eq!(b.as_array().unwrap().len(), 1);
    assert_eq!(
        b[0]["shown"][0]["value"],
        serde_json::json!([5, 50]),
        "CBOR"
    );
    let p = json_(&["inspect", "per", "p", "--decode"]);
    let why = p[0]["shown"][0]["decode_error"].as_str().unwrap();
    assert!(why.contains("postcard is not self-describing"), "{why}");
    let by_path = json_(&["inspect", "per", "app::a"]);
    assert_eq!(by_path[0]["entries"], 2);
    let err = fails_(&["inspect", "shop", "prices"], 2);
    assert!(err.contains("cannot be told apart per function"), "{err}");
    let err = fails_(&["inspect", "per", "nope"], 3);
    assert!(err.contains("no function `nope`"), "{err}");
    let err = fails_(&["inspect", "nope"], 3);
    assert!(err.contains("no cache named `nope`"), "{err}");

    // vacuum (nothing has expired) and purge
    assert_eq!(json_(&["vacuum", "shop"])["reclaimed"], 0);
    assert!(ok_(&["vacuum", "per"]).contains("reclaimed 0"));
    let purged = json_(&["purge", "per", "--function", "app::a"]);
    assert_eq!(purged["purged"], 2);
    assert!(ok_(&["purge", "per", "--function", "b"]).contains("purged 1 entries"));
    let err = fails_(&["purge", "shop", "--function", "prices"], 2);
    assert!(
        err.contains("cannot purge the entries of `prices` alone"),
        "{err}"
    );
    assert_eq!(json_(&["purge", "shop"])["purged"], 5);
    let caches = json_(&["ls"]);
    assert_eq!(find(&caches, "name", "shop")["entries"], 0);
    assert_eq!(find(&caches, "name", "per")["entries"], 1);
    // The counters outlive the entries.
    assert_eq!(json_(&["stats", "shop"])[0]["total"]["calls"], 8);
}

#[test]
fn every_command_on_a_standalone_server() {
    let server = RedisServer::spawn();
    let url = server.url();
    fill_server(
        |name| Cache::builder(name).redis(&url),
        Layout::Shared,
        Layout::PerFunction,
    );
    every_command(&["--redis", &url], "per-function");

    // Policies whose index is read otherwise: a set (Random), or highest score first (MRU).
    for (name, policy) in [("rnd", Policy::Random), ("mru", Policy::Mru)] {
        let cache = Cache::builder(name)
            .redis(&url)
            .policy(policy)
            .build_blocking()
            .unwrap();
        fill(&cache, "f", &CallOptions::new(), &[1, 2, 3, 2]);
        cache.shared_stats().unwrap();
    }
    let rnd = json(&["--redis", &url, "inspect", "rnd"]);
    let rows = rnd[0]["shown"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["score"].is_null()), "{rnd:#}");
    assert!(ok(&["--redis", &url, "inspect", "rnd"]).contains("a random sample"));
    // MRU evicts the most recently used first: f(2), used last, leads.
    let mru = json(&["--redis", &url, "inspect", "mru", "--decode"]);
    assert_eq!(
        mru[0]["shown"][0]["value"],
        serde_json::json!([2, 20]),
        "{mru:#}"
    );
}

#[test]
fn vacuum_reclaims_expired_entries() {
    let server = RedisServer::spawn();
    let cache = Cache::builder("short")
        .redis(server.url())
        .entry_ttl(Duration::from_millis(1))
        .build_blocking()
        .unwrap();
    fill(&cache, "f", &CallOptions::new(), &[1, 2]);
    cache.shared_stats().unwrap();
    // Wait for the server's clock (which stamps entries) to pass the entry TTL.
    let time = || -> u64 {
        let (s, us): (u64, u64) = redis::cmd("TIME").query(&mut server.connection()).unwrap();
        s * 1_000_000 + us
    };
    let start = time();
    while time() < start + 2_000 {
        std::thread::yield_now();
    }
    let shown = json(&["--redis", &server.url(), "inspect", "short"]);
    let states: Vec<&Value> = shown[0]["shown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["state"])
        .collect();
    assert_eq!(states, ["expired", "expired"]);
    let out = ok(&["--redis", &server.url(), "vacuum", "short"]);
    assert_eq!(out, "cache short: reclaimed 2 expired entries\n");
}

#[test]
fn operators_get_one_line_errors_and_the_documented_exit_codes() {
    // Nothing listens on the port of a stopped server.
    let mut gone = RedisServer::spawn();
    let gone_url = gone.url();
    gone.stop();
    let err = fails(&["--redis", &gone_url, "ls"], 1);
    assert!(err.contains("backend error"), "{err}");

    let err = fails(&["--redis", "nonsense://x", "ls"], 2);
    assert!(err.contains("invalid configuration"), "{err}");
    let err = fails(&["ls"], 2);
    assert!(err.contains("no Redis store"), "{err}");
    // Usage errors are clap's (several lines of help): only the code is checked.
    assert_eq!(fncache(&["frobnicate"]).status.code(), Some(2));
    for command in ["ls", "stats", "inspect", "purge", "vacuum"] {
        ok(&[command, "--help"]);
    }
    assert!(ok(&["--help"]).contains("inspect"));

    let server = RedisServer::spawn();
    let url = server.url();
    let err = fails(&["--redis", &url, "ls"], 3);
    assert!(err.contains("no cache under prefix `func-cache:`"), "{err}");
    let err = fails(&["--redis", &url, "stats", "nope"], 3);
    assert!(err.contains("no cache named `nope`"), "{err}");

    server.add_acl_user("reader", "secret", &["~*", "+ping"]);
    let err = fails(
        &[
            "--redis",
            &url,
            "--user",
            "reader",
            "--password",
            "hunter2",
            "ls",
        ],
        1,
    );
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(
        !err.contains("hunter2"),
        "the password is never printed: {err}"
    );
    let err = fails(
        &[
            "--redis",
            &url,
            "--user",
            "reader",
            "--password",
            "secret",
            "ls",
        ],
        1,
    );
    assert!(
        err.contains("access denied") && err.contains("NOPERM"),
        "{err}"
    );
}

#[test]
fn every_command_on_a_cluster() {
    let cluster = RedisCluster::spawn();
    let seeds = cluster.seed_urls();
    fill_server(
        |name| Cache::builder(name).redis_cluster(seeds.clone()),
        Layout::Cluster,
        Layout::ClusterPerFunction,
    );
    let mut connect = Vec::new();
    for seed in &seeds {
        connect.push("--cluster");
        connect.push(seed.as_str());
    }
    every_command(&connect, "cluster-per-fn");
}
