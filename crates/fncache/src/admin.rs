//! The operator API behind the `fncache` CLI (crate `fncache-cli`): find the caches under a
//! prefix through their registries, read their shared counters, list structures and entries.
//!
//! Not a stable API (hence hidden): it exists so that the CLI names keys, scans, counts and
//! reads envelopes with the library's own code rather than a copy of it. Everything here only
//! reads; purging and vacuuming go through a cache built with [`CacheInfo::configure`].
//!
//! What can be counted per function: in the per-function layouts each function has its own
//! structure, so its entries are counted exactly. In the shared layouts an entry's member is a
//! digest of function and arguments together, so nothing in Redis tells one function's entries
//! from another's; there the per-function numbers are the shared counters (`writes`,
//! `evictions`...), never an entry count.

use std::time::Duration;

use redis::Value;

use crate::builder::Builder;
use crate::codec::{Codec, Entry};
use crate::error::{Error, ErrorKind};
use crate::layout::{Layout, Naming, Structure, glob_escape};
use crate::policy::{IndexKind, Policy, VictimRule};
use crate::registry::{
    CACHE_FIELD, CacheRecord, FUNCTION_FIELD, FunctionRecord, codec_of_id, parse_codec,
    parse_layout, parse_policy,
};
use crate::shared_stats::SharedStats;
use crate::store::StoreSettings;
use crate::store::redis::BlockingRedis;
use crate::store::redis::connect::Front;
use crate::store::redis::plan::{Request, admin as plan};

/// A connection to the Redis server or cluster a builder names.
#[derive(Debug)]
pub struct Admin {
    redis: BlockingRedis,
    timeout: Duration,
}

/// A cache found through its registry.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CacheInfo {
    /// The cache name, as given to the builder.
    pub name: String,
    /// The key prefix.
    pub prefix: String,
    /// The eviction policy.
    pub policy: Policy,
    /// The layout.
    pub layout: Layout,
    /// Entries per structure.
    pub maxsize: u64,
    /// Structure TTL (`None`: never expires).
    pub ttl: Option<Duration>,
    /// Whether hits and puts renew the structure TTL.
    pub update_ttl: bool,
    /// The cache's codec.
    pub codec: Codec,
    /// The cache's default entry TTL.
    pub entry_ttl: Option<Duration>,
    /// The functions recorded by its processes, by identity.
    pub functions: Vec<FunctionInfo>,
    /// The key of its registry hash.
    pub registry_key: String,
    /// The key of its shared counters hash.
    pub stats_key: String,
    settings: StoreSettings,
}

/// A function as its processes recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FunctionInfo {
    /// The identity (the name given to the explicit API, or a decorated function's
    /// path with `@vN` and code hash).
    pub identity: String,
    /// The path, without version and code hash.
    pub path: String,
    /// The `@vN` version of a decorated function.
    pub version: Option<u32>,
    /// The code hash of a decorated function.
    pub code_hash: Option<String>,
    /// The codec of its calls (`None`: a name this version does not know).
    pub codec: Option<Codec>,
    /// Its entry TTL.
    pub entry_ttl: Option<Duration>,
}

/// One structure of a cache.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StructureInfo {
    /// The key of its index (`…:0`).
    pub index_key: String,
    /// The identities whose entries it holds, as far as the registry knows (every function
    /// of the cache in the shared layouts).
    pub functions: Vec<String>,
    /// Live entries, counted as [`crate::Cache::len`] counts them.
    pub entries: u64,
    /// Bytes used by its keys (`MEMORY USAGE`), `None` when the server does not tell.
    pub memory: Option<u64>,
    /// Time left before the structure expires, `None` when it never does.
    pub ttl: Option<Duration>,
    structure: Structure,
}

/// One stored entry.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EntryInfo {
    /// The member (digest of function and arguments), in hex.
    pub member: String,
    /// Its score in the index (use time, counter or use count by policy); `None` for
    /// [`Policy::Random`].
    pub score: Option<f64>,
    /// Store time of the write, microseconds since the Unix epoch.
    pub written_at_us: u64,
    /// When it stops being served normally (0: never).
    pub expire_at_us: u64,
    /// When it is deleted (0: never).
    pub keep_until_us: u64,
    /// Bytes stored (envelope and payload).
    pub size: usize,
    /// The codec of the payload, `None` for an unknown codec id or bytes that are not an
    /// envelope.
    pub codec: Option<Codec>,
    payload: Vec<u8>,
    envelope: bool,
}

impl EntryInfo {
    /// `fresh`; `fallback` (past its entry TTL, kept for `max_stale` as a fail-safe
    /// fallback); `expired` (past its lifetime: never served again, reclaimed by the next put
    /// or vacuum); or `invalid` (not an fncache envelope), at store time `now_us`.
    pub fn freshness(&self, now_us: u64) -> &'static str {
        if !self.envelope {
            "invalid"
        } else if self.keep_until_us != 0 && self.keep_until_us <= now_us {
            "expired"
        } else if self.expire_at_us != 0 && self.expire_at_us <= now_us {
            "fallback"
        } else {
            "fresh"
        }
    }

    /// The payload as JSON. MessagePack, CBOR and JSON are self-describing; postcard is not,
    /// and cannot be shown without the Rust type that wrote it.
    pub fn decode_json(&self) -> Result<serde_json::Value, String> {
        match self.codec {
            Some(Codec::MessagePack) => {
                rmp_serde::from_slice(&self.payload).map_err(|e| e.to_string())
            }
            Some(Codec::Json) => serde_json::from_slice(&self.payload).map_err(|e| e.to_string()),
            Some(Codec::Cbor) => {
                ciborium::from_reader(self.payload.as_slice()).map_err(|e| e.to_string())
            }
            Some(Codec::Postcard) => Err(
                "postcard is not self-describing: the value cannot be shown without its type"
                    .to_owned(),
            ),
            None => Err("not an fncache envelope, or an unknown codec".to_owned()),
        }
    }
}

impl CacheInfo {
    /// `builder` set up as this cache (prefix, policy, layout, sizes, TTLs, codec), for
    /// purging and vacuuming it with the library's own operations.
    pub fn configure(&self, builder: Builder) -> Builder {
        let builder = builder
            .prefix(&self.prefix)
            .policy(self.policy)
            .layout(self.layout)
            .maxsize(usize::try_from(self.maxsize).unwrap_or(usize::MAX))
            .update_ttl(self.update_ttl)
            .codec(self.codec);
        match self.ttl {
            Some(ttl) => builder.ttl(ttl),
            None => builder.no_ttl(),
        }
    }

    /// The function recorded as `function`, by identity or path (several for a path with
    /// many versions).
    pub fn find_functions(&self, function: &str) -> Vec<&FunctionInfo> {
        self.functions
            .iter()
            .filter(|f| f.identity == function || f.path == function)
            .collect()
    }

    fn from_record(key: &str, record: CacheRecord) -> Option<CacheInfo> {
        let policy = parse_policy(&record.policy)?;
        let layout = parse_layout(&record.layout)?;
        let naming = Naming::new(&record.prefix, &record.name, policy, layout);
        // A key some glob matched, whose record names another cache: not this key's cache.
        if naming.registry_key() != key {
            return None;
        }
        Some(CacheInfo {
            stats_key: naming.stats_key(),
            registry_key: naming.registry_key(),
            settings: StoreSettings {
                rules: policy.rules(),
                maxsize: record.maxsize,
                ttl: record.ttl_ms.map(Duration::from_millis),
                slide: record.update_ttl,
                touch_batch: None,
                naming,
            },
            name: record.name,
            prefix: record.prefix,
            policy,
            layout,
            maxsize: record.maxsize,
            ttl: record.ttl_ms.map(Duration::from_millis),
            update_ttl: record.update_ttl,
            codec: parse_codec(&record.codec).unwrap_or_default(),
            entry_ttl: record.entry_ttl_ms.map(Duration::from_millis),
            functions: Vec::new(),
        })
    }
}

impl Admin {
    /// Connects to the store `builder` names (URL, cluster seeds, TLS, credentials, the
    /// environment), resolved as `build_blocking` resolves it; each request is bounded by the
    /// builder's op timeout. An error when the builder names no Redis store. Connecting
    /// happens on the first request ([`Admin::ping`]).
    pub fn connect(builder: Builder) -> Result<Admin, Error> {
        let (core, backend) = builder.validate(Front::Blocking)?;
        match backend {
            crate::builder::Backend::Redis(target) => Ok(Admin {
                redis: BlockingRedis::new(target),
                timeout: core.behaviour.op_timeout,
            }),
            crate::builder::Backend::Memory(_) => Err(Error::config(
                "no Redis store: give a URL (or cluster seeds), or set FNCACHE_REDIS_URL or \
                 REDIS_URL",
            )),
        }
    }

    fn send(&self, request: &Request) -> Result<Value, Error> {
        self.redis.send(request, self.timeout)
    }

    fn cmd(&self, cmd: redis::Cmd) -> Result<Value, Error> {
        self.send(&Request::Cmd(cmd))
    }

    /// Checks that the server answers and lets this user in (with `TIME`, which a cache's
    /// ACL user may run, unlike `PING`).
    pub fn ping(&self) -> Result<(), Error> {
        self.server_time_us().map(drop)
    }

    /// The server's time in microseconds since the Unix epoch (the clock entries are
    /// stamped with).
    pub fn server_time_us(&self) -> Result<u64, Error> {
        let (secs, micros): (u64, u64) = redis::from_redis_value(self.cmd(redis::cmd("TIME"))?)
            .map_err(|e| protocol("TIME", &e))?;
        Ok(secs.saturating_mul(1_000_000).saturating_add(micros))
    }

    /// Every key matching `pattern`, on the server or on every primary of a cluster.
    fn scan(&self, pattern: &str) -> Result<Vec<String>, Error> {
        let mut cursors = Vec::new();
        let mut keys = Vec::new();
        if self.redis.is_cluster() {
            for (node, reply) in plan::read_primaries(self.send(&plan::scan_primaries(pattern))?)? {
                let (cursor, found) = plan::read_scan(reply)?;
                keys.extend(found);
                if cursor != 0 {
                    cursors.push((Some(node), cursor));
                }
            }
        } else {
            cursors.push((None, 0));
        }
        while let Some((node, cursor)) = cursors.pop() {
            let (next, found) =
                plan::read_scan(self.send(&plan::scan_request(cursor, pattern, node.as_ref()))?)?;
            keys.extend(found);
            if next != 0 {
                cursors.push((node, next));
            }
        }
        keys.sort();
        keys.dedup();
        Ok(keys)
    }

    /// The caches whose prefix is exactly `prefix`, found through their registries, by name.
    /// A cache appears once one of its processes has sent a batch of counters (with a call a
    /// second or more after the cache was built, at `shared_stats()`, or when it is dropped),
    /// and disappears a week after the last.
    pub fn caches(&self, prefix: &str) -> Result<Vec<CacheInfo>, Error> {
        let mut caches = Vec::new();
        for key in self.scan(&format!("{}*:registry", glob_escape(prefix)))? {
            let mut cmd = redis::cmd("HGETALL");
            cmd.arg(&key);
            let fields: Vec<(String, String)> =
                redis::from_redis_value(self.cmd(cmd)?).map_err(|e| protocol("HGETALL", &e))?;
            let Some(record) = fields
                .iter()
                .find(|(field, _)| field == CACHE_FIELD)
                .and_then(|(_, json)| serde_json::from_str::<CacheRecord>(json).ok())
            else {
                continue;
            };
            if record.prefix != prefix {
                continue;
            }
            let Some(mut cache) = CacheInfo::from_record(&key, record) else {
                continue;
            };
            for (field, json) in &fields {
                let Some(identity) = field.strip_prefix(FUNCTION_FIELD) else {
                    continue;
                };
                let Ok(record) = serde_json::from_str::<FunctionRecord>(json) else {
                    continue;
                };
                cache.functions.push(FunctionInfo {
                    identity: identity.to_owned(),
                    path: record.path,
                    version: record.version,
                    code_hash: record.code_hash,
                    codec: parse_codec(&record.codec),
                    entry_ttl: record.entry_ttl_ms.map(Duration::from_millis),
                });
            }
            cache.functions.sort_by(|a, b| a.identity.cmp(&b.identity));
            caches.push(cache);
        }
        caches.sort_by(|a, b| (&a.name, a.policy.tag()).cmp(&(&b.name, b.policy.tag())));
        Ok(caches)
    }

    /// The counters every process of `cache` has sent.
    pub fn shared_stats(&self, cache: &CacheInfo) -> Result<SharedStats, Error> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(&cache.stats_key);
        SharedStats::from_reply(self.cmd(cmd)?)
    }

    /// The structures of `cache` that exist, with their live entries, memory and TTL: the
    /// one of a shared layout, or every function's of a per-function layout (found with SCAN,
    /// as `len` and `purge` find them).
    pub fn structures(&self, cache: &CacheInfo) -> Result<Vec<StructureInfo>, Error> {
        let naming = &cache.settings.naming;
        let structures = match naming.fixed_structures() {
            Some(fixed) => fixed,
            None => {
                let mut found: Vec<Structure> = Vec::new();
                for key in self.scan(&naming.scan_pattern())? {
                    if let Some(s) = naming.owned_structure(&key)
                        && !found.iter().any(|f| f.index == s.index)
                    {
                        found.push(s);
                    }
                }
                found
            }
        };
        let mut out = Vec::new();
        for structure in structures {
            let entries =
                plan::read_count(self.send(&plan::len_request(&cache.settings, &structure))?)?;
            let functions = cache
                .functions
                .iter()
                .filter(|f| naming.structure(&f.identity) == structure)
                .map(|f| f.identity.clone())
                .collect();
            let mut pttl = redis::cmd("PTTL");
            pttl.arg(&structure.values);
            let pttl: i64 =
                redis::from_redis_value(self.cmd(pttl)?).map_err(|e| protocol("PTTL", &e))?;
            if pttl == -2 && entries == 0 {
                continue; // gone since the scan, or a shared structure never written
            }
            let ttl = u64::try_from(pttl).ok().map(Duration::from_millis);
            out.push(StructureInfo {
                index_key: structure.index.clone(),
                functions,
                entries,
                memory: self.memory(&structure),
                ttl,
                structure,
            });
        }
        Ok(out)
    }

    /// `MEMORY USAGE` of a structure's keys, `None` when the server refuses it (an ACL user
    /// without the command).
    fn memory(&self, structure: &Structure) -> Option<u64> {
        let mut total = 0;
        for key in [
            &structure.index,
            &structure.values,
            &structure.expiry,
            &structure.tags,
            &structure.tagged,
        ] {
            let mut cmd = redis::cmd("MEMORY");
            cmd.arg("USAGE").arg(key);
            let bytes: Option<u64> = redis::from_redis_value(self.cmd(cmd).ok()?).ok()?;
            total += bytes.unwrap_or(0);
        }
        Some(total)
    }

    /// Up to `limit` entries of `structure`, the next to be evicted first (any order for
    /// [`Policy::Random`]).
    pub fn entries(
        &self,
        cache: &CacheInfo,
        structure: &StructureInfo,
        limit: usize,
    ) -> Result<Vec<EntryInfo>, Error> {
        let s = &structure.structure;
        let rules = cache.settings.rules;
        let count = isize::try_from(limit).unwrap_or(isize::MAX).max(1);
        let members: Vec<(Vec<u8>, Option<f64>)> = if rules.index == IndexKind::Set {
            let mut cmd = redis::cmd("SRANDMEMBER");
            cmd.arg(&s.index).arg(count);
            let members: Vec<Vec<u8>> =
                redis::from_redis_value(self.cmd(cmd)?).map_err(|e| protocol("SRANDMEMBER", &e))?;
            members.into_iter().map(|m| (m, None)).collect()
        } else {
            let word = if rules.victim == VictimRule::Highest {
                "ZREVRANGE"
            } else {
                "ZRANGE"
            };
            let mut cmd = redis::cmd(word);
            cmd.arg(&s.index).arg(0).arg(count - 1).arg("WITHSCORES");
            let members: Vec<(Vec<u8>, f64)> =
                redis::from_redis_value(self.cmd(cmd)?).map_err(|e| protocol(word, &e))?;
            members
                .into_iter()
                .map(|(m, score)| (m, Some(score)))
                .collect()
        };
        if members.is_empty() {
            return Ok(Vec::new());
        }
        // One round trip for the values.
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(&s.values);
        for (member, _) in &members {
            cmd.arg(member);
        }
        let values: Vec<Option<Vec<u8>>> =
            redis::from_redis_value(self.cmd(cmd)?).map_err(|e| protocol("HMGET", &e))?;
        let mut out = Vec::new();
        for ((member, score), bytes) in members.into_iter().zip(values) {
            let Some(bytes) = bytes else { continue };
            let member = member.iter().map(|b| format!("{b:02x}")).collect();
            let entry = match Entry::parse(&bytes) {
                Some(e) => EntryInfo {
                    member,
                    score,
                    written_at_us: e.written_at_us,
                    expire_at_us: e.expire_at_us,
                    keep_until_us: e.keep_until_us,
                    size: bytes.len(),
                    codec: codec_of_id(e.codec),
                    payload: e.payload.to_vec(),
                    envelope: true,
                },
                None => EntryInfo {
                    member,
                    score,
                    written_at_us: 0,
                    expire_at_us: 0,
                    keep_until_us: 0,
                    size: bytes.len(),
                    codec: None,
                    payload: Vec::new(),
                    envelope: false,
                },
            };
            out.push(entry);
        }
        Ok(out)
    }
}

fn protocol(command: &str, e: &dyn std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Backend,
        format!("unexpected reply to {command}: {e}"),
    )
}
