//! `fncache`: see and steer the function caches that fncache keeps in Redis.
//!
//! Entries in Redis are digests inside hashes, so `redis-cli` tells an operator little. This
//! tool reads what the library records next to them (a registry of each cache's settings and
//! functions, and per-function counters summed over every process) and uses the library's own
//! key naming, counting and envelope parsing (`fncache::__admin`) to list caches, show shared
//! stats (once, or live with `top`), inspect entries, purge and vacuum. `bench`, the
//! hit-ratio simulator, needs no server.
//!
//! Exit codes: 0 success; 1 operational error (connection, TLS, credentials, permissions, a
//! server error, a terminal or file that cannot be written); 2 usage error (bad arguments, an
//! invalid URL or certificate file, an operation the cache's layout does not allow, a trace
//! file that is missing, unreadable or not a trace); 3 nothing found (no cache under the
//! prefix, or the named cache or function is not there).

mod bench;
mod table;
mod top;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use fncache::__admin::{Admin, CacheInfo, EntryInfo, StructureInfo};
use fncache::{Builder, ErrorKind, Layout, Stats};
use serde_json::{Value, json};

use crate::table::{Align, Table, bytes, duration};

/// See and steer fncache caches in Redis.
#[derive(Debug, Parser)]
#[command(name = "fncache", version, max_term_width = 80)]
struct Cli {
    /// Print JSON (for scripts) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    // Ignored by `bench`, which needs no server.
    #[command(flatten, next_help_heading = "Connection")]
    connect: Connect,
    #[command(subcommand)]
    command: Command,
}

/// Where to connect: the same settings as the library's builder.
#[derive(Debug, Args)]
struct Connect {
    /// URL (default: FNCACHE_REDIS_URL, else REDIS_URL).
    #[arg(long, global = true, value_name = "URL")]
    redis: Option<String>,
    /// Seed node of a Redis Cluster (repeat for more).
    #[arg(long, global = true, value_name = "URL")]
    cluster: Vec<String>,
    /// CA certificate (PEM file) the server's is signed by.
    #[arg(long, global = true, value_name = "FILE")]
    tls_ca: Option<String>,
    /// Client certificate (PEM file) for mutual TLS.
    #[arg(long, global = true, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<String>,
    /// Client key (PEM file) for mutual TLS.
    #[arg(long, global = true, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<String>,
    /// ACL user (overrides the URL's).
    #[arg(long, global = true)]
    user: Option<String>,
    /// ACL password (overrides the URL's; never printed).
    #[arg(long, global = true)]
    password: Option<String>,
    /// Key prefix of the caches.
    #[arg(long, global = true, default_value = fncache::DEFAULT_PREFIX)]
    prefix: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Caches under the prefix: layout, policy, entries, memory, TTL.
    Ls,
    /// Per-function counters of all processes: hits, misses, writes...
    Stats {
        /// Only this cache.
        cache: Option<String>,
        #[command(flatten)]
        pick: Pick,
    },
    /// Entries, next to be evicted first: age, state, size, codec.
    Inspect {
        /// The cache.
        cache: String,
        /// Only this function (identity or path).
        function: Option<String>,
        /// Show values as JSON (MessagePack, JSON, CBOR).
        #[arg(long)]
        decode: bool,
        /// Entries shown per structure.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        pick: Pick,
    },
    /// Remove the entries of a cache, or of one function.
    Purge {
        /// The cache.
        cache: String,
        /// Only this function (identity or path).
        #[arg(long)]
        function: Option<String>,
        #[command(flatten)]
        pick: Pick,
    },
    /// Reclaim the entries of a cache whose entry TTL has passed.
    Vacuum {
        /// The cache.
        cache: String,
        #[command(flatten)]
        pick: Pick,
    },
    /// Live per-function calls/s, hit ratio, misses/s, errors, entries, memory.
    ///
    /// On a terminal: redrawn every interval until q, Esc or Ctrl-C. HIT% is over the last
    /// interval, or over all calls when it had none (first frame, idle). When stdout is not
    /// a terminal, or with --once, --iterations or --json: frames printed one after another
    /// (one unless --iterations says; --json: one JSON document per line).
    Top {
        /// Only this cache.
        cache: Option<String>,
        #[command(flatten)]
        pick: Pick,
        /// Print one frame and exit.
        #[arg(long, conflicts_with = "iterations")]
        once: bool,
        /// Print N frames, an interval apart, and exit.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        iterations: Option<u64>,
        /// Seconds between frames.
        #[arg(long, value_name = "SECS", default_value_t = 1.0)]
        interval: f64,
    },
    /// Hit ratios of every policy, moka and the optimum on traces (no server).
    ///
    /// Replays each workload through fncache's policies on the embedded store, moka and
    /// Belady's offline optimum at each size; prints a table per workload (hit ratio in %,
    /// with the average gap to Belady), and a summary over several. A progress bar goes to
    /// stderr when it is a terminal (not with --json).
    Bench(bench::BenchArgs),
}

/// Tells caches of one name apart.
#[derive(Debug, Args)]
struct Pick {
    /// Policy tag, when several caches share the name.
    #[arg(long)]
    policy: Option<String>,
}

/// A failure, with the exit code it means.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

const OPERATIONAL: u8 = 1;
const USAGE: u8 = 2;
const NOT_FOUND: u8 = 3;

impl From<fncache::Error> for Failure {
    fn from(e: fncache::Error) -> Failure {
        let code = if e.kind() == ErrorKind::Config {
            USAGE
        } else {
            OPERATIONAL
        };
        // The error and its causes on one line.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Failure { code, message }
    }
}

fn fail(code: u8, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let line = failure.message.replace(['\n', '\r'], " ");
            eprintln!("fncache: error: {line}");
            ExitCode::from(failure.code)
        }
    }
}

impl Connect {
    /// A builder for `name` over the store these options name.
    fn builder(&self, name: &str) -> Result<Builder, Failure> {
        let mut builder = fncache::Cache::builder(name)
            .prefix(&self.prefix)
            .op_timeout(Duration::from_secs(5));
        if !self.cluster.is_empty() {
            builder = builder
                .redis_cluster(self.cluster.iter().cloned())
                .layout(Layout::Cluster);
        } else if let Some(url) = &self.redis {
            builder = builder.redis(url);
        }
        if let Some(user) = &self.user {
            builder = builder.redis_username(user);
        }
        if let Some(password) = &self.password {
            builder = builder.redis_password(password);
        }
        if let Some(ca) = &self.tls_ca {
            builder = builder.redis_tls_root_certificate(read(ca)?);
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            builder = builder.redis_tls_client_certificate(read(cert)?, read(key)?);
        }
        Ok(builder)
    }
}

fn read(path: &str) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| fail(USAGE, format!("cannot read `{path}`: {e}")))
}

fn run(cli: &Cli) -> Result<(), Failure> {
    if let Command::Bench(args) = &cli.command {
        return bench::run(args, cli.json);
    }
    let admin = Admin::connect(cli.connect.builder("fncache-cli")?)?;
    admin.ping()?;
    let caches = admin.caches(&cli.connect.prefix)?;
    let prefix = &cli.connect.prefix;
    match &cli.command {
        Command::Ls => ls(cli, &admin, &nonempty(caches, prefix)?),
        Command::Stats { cache, pick } => {
            let chosen = match cache {
                Some(name) => vec![pick_one(&caches, name, pick, prefix)?],
                None => nonempty(caches, prefix)?,
            };
            stats(cli, &admin, &chosen)
        }
        Command::Inspect {
            cache,
            function,
            decode,
            limit,
            pick,
        } => {
            let cache = pick_one(&caches, cache, pick, prefix)?;
            inspect(cli, &admin, &cache, function.as_deref(), *decode, *limit)
        }
        Command::Purge {
            cache,
            function,
            pick,
        } => {
            let cache = pick_one(&caches, cache, pick, prefix)?;
            purge(cli, &cache, function.as_deref())
        }
        Command::Top {
            cache,
            pick,
            once,
            iterations,
            interval,
        } => {
            match cache {
                Some(name) => drop(pick_one(&caches, name, pick, prefix)?),
                None => drop(nonempty(caches, prefix)?),
            }
            let interval = Duration::try_from_secs_f64(*interval)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| fail(USAGE, "--interval: a number of seconds above 0"))?;
            let watch = top::Watch {
                prefix,
                cache: cache.as_deref().map(|name| (name, pick.policy.as_deref())),
                interval,
                frames: if *once { Some(1) } else { *iterations },
                json: cli.json,
            };
            top::run(&admin, &watch)
        }
        // Run above, before connecting: it needs no server.
        Command::Bench(_) => Ok(()),
        Command::Vacuum { cache, pick } => {
            let cache = pick_one(&caches, cache, pick, prefix)?;
            let reclaimed = cache
                .configure(cli.connect.builder(&cache.name)?)
                .build_blocking()?
                .vacuum()?;
            if cli.json {
                print_json(&json!({"cache": cache.name, "reclaimed": reclaimed}));
            } else {
                println!(
                    "cache {}: reclaimed {reclaimed} expired entries",
                    cache.name
                );
            }
            Ok(())
        }
    }
}

fn nonempty(caches: Vec<CacheInfo>, prefix: &str) -> Result<Vec<CacheInfo>, Failure> {
    if caches.is_empty() {
        return Err(fail(
            NOT_FOUND,
            format!(
                "no cache under prefix `{prefix}` on this server (a cache is listed once a \
                 process has sent its counters: a second after it was built, or when dropped)"
            ),
        ));
    }
    Ok(caches)
}

fn pick_one(
    caches: &[CacheInfo],
    name: &str,
    pick: &Pick,
    prefix: &str,
) -> Result<CacheInfo, Failure> {
    let found: Vec<&CacheInfo> = caches
        .iter()
        .filter(|c| c.name == name)
        .filter(|c| pick.policy.as_deref().is_none_or(|p| p == c.policy.tag()))
        .collect();
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(fail(
            NOT_FOUND,
            format!("no cache named `{name}` under prefix `{prefix}` (see `fncache ls`)"),
        )),
        many => Err(fail(
            USAGE,
            format!(
                "several caches are named `{name}` ({}): choose one with --policy",
                many.iter()
                    .map(|c| c.policy.tag())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn layout_name(layout: Layout) -> &'static str {
    match layout {
        Layout::PerFunction => "per-function",
        Layout::Cluster => "cluster",
        Layout::ClusterPerFunction => "cluster-per-fn",
        _ => "shared",
    }
}

fn ttl_ms(ttl: Option<Duration>) -> Value {
    ttl.map_or(Value::Null, |d| {
        json!(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    })
}

fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

fn ls(cli: &Cli, admin: &Admin, caches: &[CacheInfo]) -> Result<(), Failure> {
    let mut rows = Vec::new();
    for cache in caches {
        let structures = admin.structures(cache)?;
        let entries: u64 = structures.iter().map(|s| s.entries).sum();
        let memory: Option<u64> = structures.iter().map(|s| s.memory).sum();
        // The longest time left of its structures.
        let left = structures.iter().filter_map(|s| s.ttl).max();
        rows.push((cache, structures.len(), entries, memory, left));
    }
    if cli.json {
        let out: Vec<Value> = rows
            .iter()
            .map(|(c, structures, entries, memory, left)| {
                json!({
                    "name": c.name,
                    "prefix": c.prefix,
                    "layout": layout_name(c.layout),
                    "policy": c.policy.tag(),
                    "maxsize": c.maxsize,
                    "ttl_ms": ttl_ms(c.ttl),
                    "ttl_left_ms": ttl_ms(*left),
                    "structures": structures,
                    "entries": entries,
                    "memory_bytes": memory,
                    "functions": c.functions.iter().map(|f| &f.identity).collect::<Vec<_>>(),
                })
            })
            .collect();
        print_json(&Value::Array(out));
        return Ok(());
    }
    let mut table = Table::new(&[
        ("CACHE", Align::Left),
        ("LAYOUT", Align::Left),
        ("POLICY", Align::Left),
        ("FNS", Align::Right),
        ("STRUCTS", Align::Right),
        ("ENTRIES", Align::Right),
        ("MEMORY", Align::Right),
        ("TTL", Align::Right),
    ]);
    for (c, structures, entries, memory, left) in &rows {
        let ttl = match (left, c.ttl) {
            (_, None) => "none".to_owned(),
            (Some(left), Some(ttl)) => format!("{}/{}", duration(*left), duration(ttl)),
            (None, Some(ttl)) => format!("-/{}", duration(ttl)),
        };
        table.row(vec![
            c.name.clone(),
            layout_name(c.layout).to_owned(),
            c.policy.tag().to_owned(),
            c.functions.len().to_string(),
            structures.to_string(),
            format!("{entries}/{}", c.maxsize),
            memory.map_or("-".to_owned(), bytes),
            ttl,
        ]);
    }
    print!("{}", table.render(0));
    Ok(())
}

fn ratio(stats: &Stats) -> String {
    stats
        .hit_ratio()
        .map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

fn stats(cli: &Cli, admin: &Admin, caches: &[CacheInfo]) -> Result<(), Failure> {
    let mut out = Vec::new();
    for (i, cache) in caches.iter().enumerate() {
        let shared = admin.shared_stats(cache)?;
        // Entries per function: exact in the per-function layouts (one structure each).
        let per_function = cache.layout.is_per_function();
        let structures = admin.structures(cache)?;
        let entries_of = |identity: &str| -> Option<u64> {
            per_function.then(|| {
                structures
                    .iter()
                    .filter(|s| s.functions.iter().any(|f| f == identity))
                    .map(|s| s.entries)
                    .sum()
            })
        };
        let total_entries: u64 = structures.iter().map(|s| s.entries).sum();
        if cli.json {
            let functions: Vec<Value> = shared
                .functions
                .iter()
                .map(|(identity, s)| {
                    json!({
                        "function": identity,
                        "entries": entries_of(identity),
                        "hit_ratio": s.hit_ratio(),
                        "stats": s,
                    })
                })
                .collect();
            out.push(json!({
                "cache": cache.name,
                "layout": layout_name(cache.layout),
                "policy": cache.policy.tag(),
                "entries": total_entries,
                "entries_per_function_exact": per_function,
                "total": shared.total,
                "hit_ratio": shared.total.hit_ratio(),
                "functions": functions,
            }));
            continue;
        }
        if i > 0 {
            println!();
        }
        println!(
            "cache {} ({}, {}): {} entries, hit ratio {}",
            cache.name,
            layout_name(cache.layout),
            cache.policy.tag(),
            total_entries,
            ratio(&shared.total)
        );
        let mut table = Table::new(&[
            ("FUNCTION", Align::Left),
            ("CALLS", Align::Right),
            ("HITS", Align::Right),
            ("MISSES", Align::Right),
            ("HIT%", Align::Right),
            ("WRITES", Align::Right),
            ("EVICT", Align::Right),
            ("ERRORS", Align::Right),
            ("ENTRIES", Align::Right),
        ]);
        for (identity, s) in &shared.functions {
            table.row(vec![
                identity.clone(),
                s.calls.to_string(),
                s.hits.to_string(),
                s.misses.to_string(),
                ratio(s),
                s.writes.to_string(),
                s.evictions.to_string(),
                s.errors.to_string(),
                entries_of(identity).map_or("-".to_owned(), |n| n.to_string()),
            ]);
        }
        print!("{}", table.render(0));
        if !per_function && !shared.functions.is_empty() {
            // A member digests function and arguments together.
            println!("(entries per function are not countable in a shared layout)");
        }
    }
    if cli.json {
        print_json(&Value::Array(out));
    }
    Ok(())
}

/// The structures to inspect: all, or those of `function`'s identities.
fn chosen_structures(
    cache: &CacheInfo,
    structures: Vec<StructureInfo>,
    function: Option<&str>,
) -> Result<Vec<StructureInfo>, Failure> {
    let Some(function) = function else {
        return Ok(structures);
    };
    if !cache.layout.is_per_function() {
        return Err(fail(
            USAGE,
            format!(
                "cache `{}` uses the {} layout: its entries are digests of function and \
                 arguments together and cannot be told apart per function (inspect the whole \
                 cache)",
                cache.name,
                layout_name(cache.layout)
            ),
        ));
    }
    let identities = identities_of(cache, function)?;
    Ok(structures
        .into_iter()
        .filter(|s| s.functions.iter().any(|f| identities.contains(f)))
        .collect())
}

/// The identities (every version and code hash) the registry knows for `function`, or the
/// not-found failure when it knows none.
fn identities_of(cache: &CacheInfo, function: &str) -> Result<Vec<String>, Failure> {
    let identities: Vec<String> = cache
        .find_functions(function)
        .iter()
        .map(|f| f.identity.clone())
        .collect();
    if identities.is_empty() {
        return Err(fail(
            NOT_FOUND,
            format!(
                "cache `{}` has no function `{function}` in its registry",
                cache.name
            ),
        ));
    }
    Ok(identities)
}

fn inspect(
    cli: &Cli,
    admin: &Admin,
    cache: &CacheInfo,
    function: Option<&str>,
    decode: bool,
    limit: usize,
) -> Result<(), Failure> {
    let structures = chosen_structures(cache, admin.structures(cache)?, function)?;
    let now = admin.server_time_us()?;
    let mut out = Vec::new();
    for (i, structure) in structures.iter().enumerate() {
        let entries = admin.entries(cache, structure, limit)?;
        let whose = if structure.functions.is_empty() {
            // Written by a process whose registry records expired or were never sent.
            "a function not in the registry".to_owned()
        } else if cache.layout.is_per_function() {
            structure.functions.join(", ")
        } else {
            "all functions".to_owned()
        };
        if cli.json {
            let rows: Vec<Value> = entries.iter().map(|e| entry_json(e, now, decode)).collect();
            out.push(json!({
                "structure": structure.index_key,
                "functions": structure.functions,
                "entries": structure.entries,
                "shown": rows,
            }));
            continue;
        }
        if i > 0 {
            println!();
        }
        let order = if cache.policy == fncache::Policy::Random {
            "a random sample"
        } else {
            "next to be evicted first"
        };
        // The key on a line of its own: per-function keys are long.
        println!("{}", table::cut(&structure.index_key, table::WIDTH));
        println!(
            "{}",
            table::cut(
                &format!("  {whose}: {} entries, {order}", structure.entries),
                table::WIDTH
            )
        );
        let mut table = Table::new(&[
            ("MEMBER", Align::Left),
            ("SCORE", Align::Right),
            ("AGE", Align::Right),
            ("STATE", Align::Left),
            ("SIZE", Align::Right),
            ("CODEC", Align::Left),
        ]);
        for e in &entries {
            table.row(vec![
                e.member.chars().take(16).collect(),
                score(cache.policy, e.score, now),
                duration(Duration::from_micros(now.saturating_sub(e.written_at_us))),
                e.freshness(now).to_owned(),
                bytes(u64::try_from(e.size).unwrap_or(u64::MAX)),
                e.codec.map_or("?".to_owned(), codec_name),
            ]);
            if decode {
                let text = match e.decode_json() {
                    Ok(v) => v.to_string(),
                    Err(why) => format!("({why})"),
                };
                table.note(format!("  = {text}"));
            }
        }
        print!("{}", table.render(0));
    }
    if cli.json {
        print_json(&Value::Array(out));
    } else if structures.is_empty() {
        println!("cache {}: no entries", cache.name);
    }
    Ok(())
}

/// An index score as an operator reads it: the time-based policies score by server time in
/// microseconds, shown as how long ago; the others by counter or use count, shown as is.
fn score(policy: fncache::Policy, score: Option<f64>, now_us: u64) -> String {
    let Some(score) = score else {
        return "-".to_owned();
    };
    if matches!(policy, fncache::Policy::LruT | fncache::Policy::FifoT) && score >= 0.0 {
        // Scores are whole microseconds below 2^53: exact in an f64.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let at = score as u64;
        return format!(
            "{} ago",
            duration(Duration::from_micros(now_us.saturating_sub(at)))
        );
    }
    format!("{score:.0}")
}

fn codec_name(codec: fncache::Codec) -> String {
    match codec {
        fncache::Codec::Json => "json",
        fncache::Codec::Cbor => "cbor",
        fncache::Codec::Postcard => "postcard",
        _ => "msgpack",
    }
    .to_owned()
}

fn entry_json(e: &EntryInfo, now: u64, decode: bool) -> Value {
    let mut row = json!({
        "member": e.member,
        "score": e.score,
        "age_ms": now.saturating_sub(e.written_at_us) / 1000,
        "written_at_us": e.written_at_us,
        "expire_at_us": e.expire_at_us,
        "keep_until_us": e.keep_until_us,
        "state": e.freshness(now),
        "size": e.size,
        "codec": e.codec.map(codec_name),
    });
    if decode && let Value::Object(map) = &mut row {
        match e.decode_json() {
            Ok(v) => map.insert("value".to_owned(), v),
            Err(why) => map.insert("decode_error".to_owned(), Value::String(why)),
        };
    }
    row
}

fn purge(cli: &Cli, cache: &CacheInfo, function: Option<&str>) -> Result<(), Failure> {
    let handle = cache
        .configure(cli.connect.builder(&cache.name)?)
        .build_blocking()?;
    let (purged, what) = match function {
        None => (handle.purge()?, format!("cache {}", cache.name)),
        Some(function) => {
            let mut total = 0;
            for identity in &identities_of(cache, function)? {
                total += handle.purge_function(identity)?;
            }
            (
                total,
                format!("function {function} of cache {}", cache.name),
            )
        }
    };
    if cli.json {
        print_json(&json!({"cache": cache.name, "function": function, "purged": purged}));
    } else {
        println!("{what}: purged {purged} entries");
    }
    Ok(())
}
