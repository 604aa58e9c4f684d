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

    // top: one frame of the same counters (rates are tested on a standalone server)
    let text = ok_(&["top", "--once"]);
    assert!(
        text.contains("cache shop") && text.contains("prices"),
        "{text}"
    );
    let frame = json_(&["top", "shop", "--once"]);
    let prices = find(&frame["caches"][0]["functions"], "function", "prices");
    assert_eq!(prices["calls"], 6, "{frame:#}");
    assert_eq!(prices["hit_ratio_total"], 0.5);
    let frame = json_(&["top", "per", "--once"]);
    let a = find(
        &frame["caches"][0]["functions"],
        "function",
        "app::a@v2#0123456789abcdef",
    );
    assert_eq!(a["entries"], 2, "exact in a per-function layout");

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
    for command in ["ls", "stats", "inspect", "purge", "vacuum", "top", "bench"] {
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

/// The TLS options: a server whose certificate only the given authority vouches for, with and
/// without a client certificate; without `--tls-ca` the handshake fails in one line.
#[test]
fn tls_options_reach_a_tls_server() {
    let server = RedisServer::spawn_tls();
    let tls = server.tls().unwrap();
    let cache = Cache::builder("secure")
        .redis(server.url())
        .redis_tls_root_certificate(tls.ca_cert_pem.clone())
        .build_blocking()
        .unwrap();
    fill(&cache, "f", &CallOptions::new(), &[1, 2]);
    cache.shared_stats().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path.to_string_lossy().into_owned()
    };
    let ca = write("ca.pem", &tls.ca_cert_pem);
    let cert = write("client.pem", &tls.client_cert_pem);
    let key = write("client.key", &tls.client_key_pem);
    let url = server.url();
    let caches = json(&["--redis", &url, "--tls-ca", &ca, "ls"]);
    assert_eq!(find(&caches, "name", "secure")["entries"], 2, "{caches:#}");
    let text = ok(&[
        "--redis",
        &url,
        "--tls-ca",
        &ca,
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "stats",
        "secure",
    ]);
    assert!(text.contains("cache secure"), "{text}");
    let err = fails(&["--redis", &url, "ls"], 1);
    assert!(err.contains("invalid peer certificate"), "{err}");
    assert!(!err.contains("BEGIN"), "no key material printed: {err}");
    let err = fails(
        &["--redis", &url, "--tls-ca", "/nonexistent/ca.pem", "ls"],
        2,
    );
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
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

/// The row of `function` in a text frame of `top`, split into its cells.
fn top_row(text: &str, function: &str) -> Vec<String> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(function))
        .unwrap_or_else(|| panic!("no row {function} in\n{text}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn top_shows_the_shared_counters_and_rates_between_frames() {
    let server = RedisServer::spawn();
    let url = server.url();
    let options = CallOptions::new();
    let shop = Cache::builder("shop").redis(&url).build_blocking().unwrap();
    fill(&shop, "prices", &options, &[1, 2, 3, 1]); // 3 misses, 1 hit
    shop.shared_stats().unwrap();
    let per = Cache::builder("per")
        .redis(&url)
        .layout(Layout::PerFunction)
        .build_blocking()
        .unwrap();
    fill(&per, "f", &options, &[1, 2, 2]); // 2 misses, 1 hit
    per.shared_stats().unwrap();

    // One frame: totals, no rates yet; entries per function only where they are countable.
    let text = ok(&["--redis", &url, "top", "--once"]);
    assert!(text.starts_with("fncache top: 2 caches"), "{text}");
    assert_eq!(text.matches("fncache top:").count(), 1, "{text}");
    assert!(
        text.contains("cache shop (shared, lru_t): 3 entries"),
        "{text}"
    );
    assert_eq!(
        top_row(&text, "prices")[..7],
        ["prices", "4", "-", "25.0%", "-", "0", "-"]
    );
    let f = top_row(&text, "f");
    assert_eq!(f[..7], ["f", "3", "-", "33.3%", "-", "0", "2"], "{text}");
    assert!(
        f[7].parse::<u64>().unwrap() > 0 && f[8] == "B",
        "memory: {f:?}"
    );
    // Not a terminal and no count: one frame, as --once.
    assert_eq!(
        ok(&["--redis", &url, "top", "shop"])
            .matches("fncache top: 1 cache")
            .count(),
        1
    );

    // Two JSON frames, the calls made between them counted as a rate.
    let mut child = Command::new(env!("CARGO_BIN_EXE_fncache"))
        .args([
            "--redis",
            &url,
            "top",
            "--json",
            "--iterations",
            "2",
            "--interval",
            "3",
        ])
        .env_remove("FNCACHE_REDIS_URL")
        .env_remove("REDIS_URL")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    // The first frame is out: these calls land between the two samples.
    fill(&shop, "prices", &options, &[1, 2, 4, 5, 6]); // 2 hits, 3 misses
    shop.shared_stats().unwrap();
    let second: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert!(lines.next().is_none(), "two frames");
    assert!(child.wait().unwrap().success());

    assert_eq!(first["interval_s"], Value::Null);
    let shop0 = find(&first["caches"], "cache", "shop");
    let prices0 = find(&shop0["functions"], "function", "prices");
    assert_eq!(prices0["calls"], 4, "{prices0:#}");
    assert_eq!(prices0["hits"], 1);
    assert_eq!(prices0["misses"], 3);
    assert_eq!(prices0["hit_ratio_total"], 0.25);
    assert_eq!(prices0["calls_per_s"], Value::Null);
    assert_eq!(prices0["entries"], Value::Null, "shared layout");
    let per0 = find(&first["caches"], "cache", "per");
    assert_eq!(per0["entries"], 2);
    let f0 = find(&per0["functions"], "function", "f");
    assert_eq!(f0["entries"], 2);
    assert!(f0["memory_bytes"].as_u64().unwrap() > 0);

    let secs = second["interval_s"].as_f64().unwrap();
    assert!(secs >= 3.0, "{secs}");
    let shop1 = find(&second["caches"], "cache", "shop");
    let prices1 = find(&shop1["functions"], "function", "prices");
    assert_eq!(prices1["calls"], 9);
    assert_eq!(prices1["hit_ratio"], 0.4, "of the interval: 2 of 5");
    assert_eq!(prices1["hit_ratio_total"], 3.0 / 9.0);
    let rate = |v: &Value| v.as_f64().unwrap() * secs;
    assert!(
        (rate(&prices1["calls_per_s"]) - 5.0).abs() < 1e-9,
        "{prices1:#}"
    );
    assert!((rate(&prices1["misses_per_s"]) - 3.0).abs() < 1e-9);
    assert!(
        (rate(&shop1["calls_per_s"]) - 5.0).abs() < 1e-9,
        "{shop1:#}"
    );
    assert_eq!(shop1["entries"], 6);
    let per1 = find(&second["caches"], "cache", "per");
    assert_eq!(per1["calls_per_s"], 0.0, "idle");
    assert_eq!(per1["hit_ratio"], Value::Null, "no reads in the interval");

    // Errors: one line, the documented codes.
    let err = fails(&["--redis", &url, "top", "nope"], 3);
    assert!(err.contains("no cache named `nope`"), "{err}");
    let err = fails(&["--redis", &url, "top", "--interval", "0"], 2);
    assert!(err.contains("--interval"), "{err}");
    assert_eq!(
        fncache(&["--redis", &url, "top", "--iterations", "0"])
            .status
            .code(),
        Some(2)
    );
    let empty = RedisServer::spawn();
    let err = fails(&["--redis", &empty.url(), "top", "--once"], 3);
    assert!(err.contains("no cache under prefix"), "{err}");
    let mut gone = RedisServer::spawn();
    let gone_url = gone.url();
    gone.stop();
    let err = fails(&["--redis", &gone_url, "top", "--json"], 1);
    assert!(err.contains("backend error"), "{err}");
}

/// A file of `contents` in a fresh directory (removed with the returned guard).
fn trace_file(name: &str, contents: &[u8]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    (dir, path.to_string_lossy().into_owned())
}

#[test]
fn bench_replays_a_trace_with_the_hit_ratios_worked_out_by_hand() {
    // a b a c a b, 3 distinct keys; 34% is room for 1 entry, 67% for 2, 100% for 3.
    // LRU, 1 entry: no key follows itself: 0 hits. 2 entries: a hits twice (c evicts b,
    // a is newer), b misses again: 2. Belady, 1 entry: keeps a (b and c come later or
    // never): a hits twice: 2. 2 entries: c is never used again and is dropped: 3. Room for
    // all: every policy misses only the 3 first uses: 3 hits.
    let (_dir, path) = trace_file("tiny.trace", b"1\n2\n1\n3\n1\n2\n");
    let out = json(&["bench", &path, "--sizes", "34,67,100", "--jobs", "1"]);
    let w = &out["workloads"][0];
    assert_eq!(w["name"], "tiny");
    assert_eq!(w["accesses"], 6);
    assert_eq!(w["distinct"], 3);
    let sizes = w["sizes"].as_array().unwrap();
    let entries: Vec<&Value> = sizes.iter().map(|s| &s["entries"]).collect();
    assert_eq!(entries, [1, 2, 3]);
    let hits = |subject: &str| -> Vec<u64> {
        sizes
            .iter()
            .map(|s| s["hits"][subject].as_u64().unwrap())
            .collect()
    };
    assert_eq!(hits("Belady"), [2, 3, 3]);
    assert_eq!(hits("lru"), [0, 2, 3]);
    assert_eq!(hits("moka")[2], 3);
    assert_eq!(sizes[1]["hit_ratio"]["lru"], 2.0 / 6.0);
    assert_eq!(sizes[1]["hit_ratio"]["Belady"], 0.5);
    // Every policy of the library, by tag, between the optimum and moka.
    let subjects: Vec<&str> = out["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let mut expected = vec!["Belady"];
    expected.extend(Policy::ALL.iter().map(|p| p.tag()));
    expected.push("moka");
    assert_eq!(subjects, expected);
    // Belady's gap to itself is none; LRU's: (2 + 1 + 0) / 3 points of 6 accesses.
    assert_eq!(w["gap_points"]["Belady"], Value::Null);
    let gap = w["gap_points"]["lru"].as_f64().unwrap();
    assert!((gap - 100.0 / 6.0).abs() < 1e-9, "{gap}");

    // The table: the same figures, in 80 columns, and nothing on stderr (no terminal, no
    // progress bar).
    let out = fncache(&[
        "bench",
        &path,
        "--sizes",
        "34,67",
        "--policies",
        "lru,fifo",
        "--no-moka",
    ]);
    assert!(out.status.success());
    assert_eq!(stderr(&out), "");
    let text = stdout(&out);
    assert!(
        text.starts_with("tiny: 6 accesses, 3 distinct keys\n"),
        "{text}"
    );
    assert!(text.contains("   size Belady    lru   fifo\n"), "{text}");
    assert!(text.contains("    34%  33.33   0.00   0.00\n"), "{text}");
    assert!(text.contains("    67%  50.00  33.33  16.67\n"), "{text}");
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "{line}");
    }
}

#[test]
fn bench_draws_zipf_workloads_and_plots_them() {
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("zipf.svg");
    let plot = plot.to_str().unwrap();
    let out = json(&[
        "bench", "zipf:0.9", "--limit", "400", "--keys", "50", "--sizes", "10,50", "--plot", plot,
    ]);
    let w = &out["workloads"][0];
    assert_eq!(w["name"], "zipf-0.9");
    assert_eq!(w["accesses"], 400);
    assert!(w["distinct"].as_u64().unwrap() <= 50);
    assert_eq!(out["plots"][0], plot);
    let subjects = out["subjects"].as_array().unwrap();
    for size in w["sizes"].as_array().unwrap() {
        let optimum = size["hit_ratio"]["Belady"].as_f64().unwrap();
        for s in subjects {
            let r = size["hit_ratio"][s.as_str().unwrap()].as_f64().unwrap();
            assert!((0.0..=optimum).contains(&r), "{s}: {r} vs {optimum}");
        }
    }
    let svg = std::fs::read_to_string(plot).unwrap();
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    assert!(svg.ends_with("</svg>\n"));
    assert_eq!(svg.matches("<polyline").count(), subjects.len());
    assert_eq!(svg.matches("<circle").count(), 2 * subjects.len());
    // Every element opened is closed (the tags it uses: self-closed or paired).
    for tag in ["svg", "text"] {
        assert_eq!(
            svg.matches(&format!("<{tag} ")).count(),
            svg.matches(&format!("</{tag}>")).count(),
            "{tag}"
        );
    }

    // The reference models: columns of their own, between Belady and the rest, and the
    // summary's lines on the best online column and the best of all.
    let out = json(&[
        "bench",
        "zipf:0.9",
        "--limit",
        "2000",
        "--keys",
        "200",
        "--policies",
        "tlfu",
        "--reference",
        "lirs,arc,wtlfu,plfu,static,a0",
        "--no-moka",
    ]);
    assert_eq!(
        out["subjects"],
        serde_json::json!([
            "Belady", "tlfu", "lirs", "arc", "wtlfu", "plfu", "static", "a0"
        ])
    );
    for size in out["workloads"][0]["sizes"].as_array().unwrap() {
        let hits = |s: &str| size["hits"][s].as_u64().unwrap();
        // Under independent references the static optimum is the best of the columns but
        // Belady, and perfect LFU, which learns the same counts, comes near it.
        assert!(hits("plfu") <= hits("static") && hits("static") <= hits("Belady"));
        // A0, knowing the distribution, is at least as good as learning it.
        assert!(hits("plfu") <= hits("a0") && hits("a0") <= hits("Belady"));
        for model in ["lirs", "arc", "wtlfu"] {
            assert!(hits(model) > 0 && hits(model) <= hits("Belady"), "{model}");
        }
        assert!(hits("tlfu") <= hits("static"));
    }
    let text = ok(&[
        "bench",
        "zipf:0.9",
        "zipf:0.7",
        "--limit",
        "2000",
        "--keys",
        "200",
        "--reference",
        "static",
        "--policies",
        "lru",
    ]);
    assert!(
        text.contains("The best online subject of each row"),
        "{text}"
    );
    assert!(
        text.contains("the best of every column but Belady"),
        "{text}"
    );

    // Several workloads: a chart each in a directory, and the summary over all of them.
    let charts = dir.path().join("charts/");
    let text = ok(&[
        "bench",
        "zipf:0.5",
        "zipf:1",
        "--limit",
        "300",
        "--keys",
        "40",
        "--plot",
        charts.to_str().unwrap(),
    ]);
    assert!(
        text.contains("Average over 2 workloads x 5 sizes"),
        "{text}"
    );
    for name in ["zipf-0.5.svg", "zipf-1.svg"] {
        assert!(charts.join(name).is_file(), "{name}");
        assert!(text.contains(name), "{text}");
    }
}

#[test]
fn bench_refuses_what_is_not_a_trace_in_one_line() {
    let err = fails(&["bench", "/nonexistent/x.trace"], 2);
    assert!(err.contains("/nonexistent/x.trace: No such file"), "{err}");
    let (_dir, garbled) = trace_file("bad.trace", b"1\n2\nthree\n");
    let err = fails(&["bench", &garbled], 2);
    assert!(err.contains("not a trace"), "{err}");
    let (_dir, torn) = trace_file("torn.trace.gz", b"not gzip at all");
    let err = fails(&["bench", &torn], 2);
    assert!(err.contains("torn.trace.gz"), "{err}");
    let (_dir, empty) = trace_file("empty.trace", b"");
    let err = fails(&["bench", &empty], 2);
    assert!(err.contains("empty trace"), "{err}");
    let err = fails(&["bench", "zipf:fast"], 2);
    assert!(err.contains("zipf:fast"), "{err}");
    let err = fails(&["bench", "zipf:1", "--policies", "lru,nope"], 2);
    assert!(err.contains("no policy `nope`"), "{err}");
    let err = fails(&["bench", "zipf:1", "--reference", "plfu,nope"], 2);
    assert!(err.contains("no model `nope`"), "{err}");
    let (_dir, trace) = trace_file("plain.trace", b"1\n2\n1\n");
    let err = fails(&["bench", "zipf:1", &trace, "--reference", "a0"], 2);
    assert!(err.contains("a0 needs a zipf:S workload"), "{err}");
    let err = fails(&["bench", "zipf:1", "--sizes", "0"], 2);
    assert!(err.contains("--sizes"), "{err}");
    let err = fails(&["bench", "zipf:1", "zipf:2", "--plot", "one.svg"], 2);
    assert!(err.contains("need a directory"), "{err}");
    // No workload: clap's usage error.
    assert_eq!(fncache(&["bench"]).status.code(), Some(2));
}

/// `fncache top` on a terminal (a pseudo-terminal made by util-linux's `script`): the frame
/// is drawn on the alternate screen, and q or Ctrl-C quits with the terminal put back.
#[test]
fn top_on_a_terminal_quits_on_q_and_ctrl_c_and_restores_the_terminal() {
    use std::io::{Read, Write};
    use std::process::Stdio;
    use std::sync::mpsc;

    let server = RedisServer::spawn();
    let url = server.url();
    let cache = Cache::builder("live").redis(&url).build_blocking().unwrap();
    fill(&cache, "f", &CallOptions::new(), &[1, 1]);
    cache.shared_stats().unwrap();

    for key in ["q", "\x03"] {
        let mut child = Command::new("script")
            .args(["-qfec"])
            .arg(format!(
                "{} --redis {url} top --interval 0.2",
                env!("CARGO_BIN_EXE_fncache")
            ))
            .arg("/dev/null")
            .env_remove("FNCACHE_REDIS_URL")
            .env_remove("REDIS_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("util-linux's `script` runs the CLI on a pseudo-terminal");
        let mut stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let mut screen = Vec::new();
        let read_until = |screen: &mut Vec<u8>, what: &str| {
            while !String::from_utf8_lossy(screen).contains(what) {
                let chunk = rx
                    .recv_timeout(Duration::from_secs(30))
                    .unwrap_or_else(|_| {
                        panic!("no {what:?} in {:?}", String::from_utf8_lossy(screen))
                    });
                screen.extend(chunk);
            }
        };
        // Two frames: the second one has rates.
        read_until(&mut screen, "0.0 calls/s");
        let text = String::from_utf8_lossy(&screen).into_owned();
        assert!(text.contains("\x1b[?1049h"), "alternate screen: {text:?}");
        assert!(text.contains("(q to quit)"), "{text:?}");
        assert!(
            text.contains("cache live (shared, lru_t): 1 entries"),
            "{text:?}"
        );
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(key.as_bytes()).unwrap();
        stdin.flush().unwrap();
        // Back to the main screen, the cursor shown.
        read_until(&mut screen, "\x1b[?25h\x1b[?1049l");
        assert!(child.wait().unwrap().success(), "{key:?}");
    }
}
