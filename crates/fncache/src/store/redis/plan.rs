//! Pure translation of store ops into Redis requests, and of replies back into store replies.
//!
//! A [`Plan`] is a small state machine: feed it the previous reply, it answers with the next
//! request to send or with the final [`StoreReply`]. The blocking and async drivers only move
//! bytes; everything that decides what to send lives here, once.

use std::collections::{HashSet, VecDeque};
use std::sync::LazyLock;

use redis::cluster_routing::Slot;
use std::io::Write;

use redis::{RedisWrite, Script, ToRedisArgs, Value};

use super::script::ScriptCall;

use crate::codec::Entry;
use crate::duration::store_millis;
use crate::error::{Error, ErrorKind};
use crate::key::Member;
use crate::layout::{Layout, Naming, Structure};
use crate::policy::{InsertRule, TinyLfuShape, TouchRule};
use crate::store::{
    Began, Freshness, LeaseRequest, LeaseState, Lookup, StoreOp, StoreReply, StoreSettings,
};

/// Keys returned per SCAN round trip (a hint to the server).
const SCAN_COUNT: usize = 512;

/// A script file with the shared prelude (and, for whole-structure scripts, the maintenance
/// helpers) prepended at compile time.
macro_rules! script {
    (hot $file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("scripts/prelude.lua"),
                include_str!($file)
            ))
        })
    };
    (maintenance $file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("scripts/prelude.lua"),
                include_str!("scripts/maintenance.lua"),
                include_str!($file)
            ))
        })
    };
}

// The hit path stands alone: no prelude closures to create per call.
static GET: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/get.lua")));
static PUT: LazyLock<Script> = script!(hot "scripts/put.lua");
// `Policy::TinyLfu`: the same scripts with its rules prepended (only that policy pays for them).
static GET_TLFU: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("scripts/tinylfu.lua"),
        include_str!("scripts/get.lua")
    ))
});
static PUT_TLFU: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("scripts/prelude.lua"),
        include_str!("scripts/tinylfu.lua"),
        include_str!("scripts/put.lua")
    ))
});
static PEEK: LazyLock<Script> = script!(maintenance "scripts/peek.lua");
static REMOVE: LazyLock<Script> = script!(maintenance "scripts/remove.lua");
static EXPIRE: LazyLock<Script> = script!(maintenance "scripts/expire.lua");
static LEN: LazyLock<Script> = script!(maintenance "scripts/len.lua");
static PURGE: LazyLock<Script> = script!(maintenance "scripts/purge.lua");
static VACUUM: LazyLock<Script> = script!(maintenance "scripts/vacuum.lua");
static INVALIDATE_TAG: LazyLock<Script> = script!(maintenance "scripts/invalidate_tag.lua");
static LEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/lease.lua")));
static USES: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/uses.lua")));
static USES_TLFU: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("scripts/tinylfu.lua"),
        include_str!("scripts/uses_tlfu.lua")
    ))
});

/// One request for a driver to send.
#[derive(Debug)]
pub(crate) enum Request {
    /// EVALSHA, with a script load and retry on NOSCRIPT.
    Script(ScriptCall),
    /// A plain command.
    Cmd(redis::Cmd),
    /// Several commands in one round trip (on a cluster: keys of one slot).
    Pipe(redis::Pipeline),
    /// A cluster only: one command for every primary; the reply maps each primary's address
    /// to its own reply.
    AllPrimaries(redis::Cmd),
    /// A cluster only: a command for one node.
    OnNode(redis::Cmd, Node),
}

/// What a plan wants next.
#[derive(Debug)]
pub(crate) enum Step {
    Send(Request),
    Done(StoreReply),
}

/// How the reply of a single-request op is read.
#[derive(Debug, Clone, Copy)]
enum ReplyShape {
    Lookup,
    Stored,
    Flag,
}

/// Which whole-cache script a scan-driven op runs over its structures.
#[derive(Debug, Clone)]
enum Sweep {
    Len,
    Purge,
    Vacuum,
    /// The tag as the scripts write it (see [`pack_tag`]).
    InvalidateTag(Vec<u8>),
}

impl Sweep {
    fn script(&self) -> (&'static Script, &'static str) {
        match self {
            Sweep::Len => (&LEN, "len.lua"),
            Sweep::Purge => (&PURGE, "purge.lua"),
            Sweep::Vacuum => (&VACUUM, "vacuum.lua"),
            Sweep::InvalidateTag(_) => (&INVALIDATE_TAG, "invalidate_tag.lua"),
        }
    }
}

/// A tag as the scripts keep it: a 4-byte big-endian length, then its bytes (see
/// `prelude.lua`). A tag longer than 4 GiB cannot be sent to Redis anyway.
fn pack_tag(out: &mut Vec<u8>, tag: &str) {
    let len = u32::try_from(tag.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(tag.as_bytes());
}

/// When a tagged value's computation began, for `put.lua`: `=` and the server's clock when it
/// answered the call's lookup (exact), else `~` and how long ago the caller sent it, in
/// microseconds rounded up (an earlier start refuses more puts, never fewer); empty for no
/// check.
fn began_word(began: Option<Began>) -> String {
    match began {
        None => String::new(),
        Some(Began {
            store_us: Some(us), ..
        }) => format!("={us}"),
        Some(Began { local, .. }) => {
            let elapsed = local.elapsed();
            let micros =
                elapsed.as_micros() + u128::from(!elapsed.subsec_nanos().is_multiple_of(1000));
            format!("~{}", u64::try_from(micros).unwrap_or(u64::MAX))
        }
    }
}

/// An entry's tags for `put.lua`: each once, packed one after another.
fn pack_tags(tags: &[String]) -> Vec<u8> {
    let mut unique: Vec<&String> = tags.iter().collect();
    unique.sort();
    unique.dedup();
    let mut out = Vec::new();
    for tag in unique {
        pack_tag(&mut out, tag);
    }
    out
}

// `Probe` is the largest state and the hot one (every hit under `touch_batch`): boxing it
// would cost an allocation per hit; the rare large one, `Sweep`, is boxed instead.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum State {
    /// One request, then read its reply.
    Single(Option<Request>, ReplyShape),
    /// A whole-cache op: run the sweep script over every structure of the cache.
    /// Boxed: the largest state and a rare one, which would otherwise size every plan (moved
    /// a few times per op).
    Sweep(Box<SweepState>),
    /// Releasing a lease now: with `DELIFEQ` where the server has it, else `lease.lua`.
    Release(Release),
    /// A lookup under `touch_batch`: a plain `HGET` first; an entry that never expires is a
    /// fresh hit (its use recorded in the process), anything else takes the hit script.
    Probe {
        hget: Option<Request>,
        script: Option<GetCall>,
        /// The use to record on a fresh hit (`time` rule only).
        record: Option<RecordedUse>,
    },
}

/// A get.lua call, built when it is sent.
#[derive(Debug)]
struct GetCall {
    structure: Structure,
    member: Member,
    lease: Option<LeaseRequest>,
    touch: &'static str,
    kind: &'static str,
    /// The TTL to renew the structure with (0: not this time).
    slide_ttl: u64,
    /// The use's score (`time` rule), else 0.
    score: u64,
    refresh_ms: u64,
    /// Answer with the server's clock unless a fresh hit (a tagged call).
    stamp: bool,
    /// `Policy::TinyLfu`'s shape (its sketch key is named too).
    tinylfu: Option<TinyLfuShape>,
}

impl GetCall {
    fn build(self) -> Request {
        let lease = self.lease;
        let count = if lease.is_some() { 4 } else { 3 }
            + usize::from(self.stamp)
            + usize::from(self.tinylfu.is_some());
        let mut inv = match self.tinylfu {
            Some(_) => ScriptCall::new(&GET_TLFU, "get.lua", count),
            None => ScriptCall::new(&GET, "get.lua", count),
        };
        keys(&mut inv, &self.structure);
        // The lease key only when a lease is asked for: on a cluster, every declared key
        // must be on the node (a missing one mid-migration means TRYAGAIN).
        if lease.is_some() {
            inv.arg(LeaseKey(&self.structure, &self.member));
        }
        // A tagged call's lookup marks its structure for tag invalidations (see `get.lua`).
        if self.stamp {
            inv.arg(&self.structure.tags);
        }
        if self.tinylfu.is_some() {
            inv.arg(&self.structure.sketch);
        }
        inv.arg(&self.member[..]);
        match self.tinylfu {
            Some(shape) => inv.arg(shape.script_word()),
            None => inv.arg(self.touch),
        };
        inv.arg(self.kind).arg(self.slide_ttl).arg(self.score);
        // The rest only when something is asked: each argument costs the script a string to
        // intern, on every hit.
        if self.refresh_ms > 0 || lease.is_some() || self.stamp {
            inv.arg(self.refresh_ms);
        }
        match lease {
            Some(lease) => {
                inv.arg(store_millis(lease.ttl))
                    .arg(&lease.token_digits()[..]);
            }
            None if self.stamp => {
                inv.arg(0).arg("");
            }
            None => {}
        }
        if self.stamp {
            inv.arg(1);
        }
        Request::Script(inv)
    }
}

/// A lease key as a command's argument, written into the command's buffer (no string of its
/// own, on every lookup).
struct LeaseKey<'a>(&'a Structure, &'a Member);

impl ToRedisArgs for LeaseKey<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        let (base, suffix) = self.0.lease_key_parts(self.1);
        let mut arg = out.writer_for_next_arg();
        // The command's buffer is a `Vec`: writing to it cannot fail.
        let _ = arg
            .write_all(base.as_bytes())
            .and_then(|()| arg.write_all(&suffix));
    }
}

/// A hit's use under `touch_batch`, for the driver to apply later: the index key, the member
/// and its score (the caller's clock, as the `time` rule scores).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordedUse {
    pub(crate) structure: Structure,
    pub(crate) member: Member,
    pub(crate) score: u64,
}

/// What the plans of a cache know about its server's commands: learned once, by the first
/// lease release (a `COMMAND INFO DELIFEQ` probe), kept by the driver and handed to every
/// later plan ([`Plan::knowing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Capabilities {
    /// The server has `DELIFEQ key value` (Valkey >= 9): a lease is released with that one
    /// plain command instead of the compare-and-delete script.
    pub(crate) delifeq: bool,
}

/// The Lua-only server: Redis (7.0 to 8.x), Valkey before 9.
const SCRIPTS_ONLY: Capabilities = Capabilities { delifeq: false };

/// A lease release in progress.
#[derive(Debug)]
struct Release {
    key: String,
    token: String,
    stage: ReleaseStage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReleaseStage {
    /// Nothing sent; the server's commands are not known yet.
    Unprobed,
    /// Nothing sent; the server has `DELIFEQ`.
    Known,
    /// `COMMAND INFO DELIFEQ` in flight.
    Probing,
    /// `DELIFEQ` in flight.
    Deleting,
}

/// A whole-cache op in progress. Structures come either up front (the shared layouts) or from
/// SCAN over every primary; they are swept in batches, one script per batch, and a batch never
/// spans two hash slots on a cluster.
#[derive(Debug)]
struct SweepState {
    sweep: Sweep,
    topology: Topology,
    /// `Some` when the structures must be found with SCAN MATCH this pattern.
    pattern: Option<String>,
    /// The cache's naming: a key SCAN returns is acted on only when it is a key of one of this
    /// cache's structures (a glob may match other caches' keys too).
    naming: Naming,
    started: bool,
    /// SCAN cursors still to follow, per node (`None`: the one server).
    cursors: VecDeque<(Option<Node>, u64)>,
    /// Structures found and not yet swept, batched.
    batches: VecDeque<Vec<Structure>>,
    /// What the request in flight was.
    awaiting: Awaiting,
    /// Index keys of the structures already batched (SCAN may return a key more than once,
    /// and finds up to three keys of each structure).
    seen: HashSet<String>,
    total: u64,
}

/// What the reply in flight of a sweep answers.
#[derive(Debug)]
enum Awaiting {
    Nothing,
    /// `SCAN 0` on every primary: a map from node address to `[cursor, keys]`.
    Primaries,
    /// `SCAN cursor` on one node.
    Scan(Option<Node>),
    /// A sweep script: a count.
    Script,
}

/// Whether requests go to one server or to a Redis Cluster (which only changes how the
/// structures of a whole-cache op are found and batched).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Topology {
    Server,
    Cluster,
}

/// One node of a cluster, as redis-rs names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Node {
    fn parse(address: &str) -> Option<Node> {
        let (host, port) = address.rsplit_once(':')?;
        Some(Node {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: port.parse().ok()?,
        })
    }
}

/// What a lookup needs from its driver rather than from the op: a fresh hit then costs the
/// server two commands (the lookup and the touch), no `TIME` and no `PTTL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hints {
    /// The caller's clock in microseconds since the Unix epoch: the score of a use under the
    /// `time` touch rule with `touch_batch` (applied with `ZADD GT`, so a late script never
    /// moves a score back); without it the script scores with the server's `TIME`.
    /// Freshness never depends on it: entry times stay the server's.
    pub(crate) now_us: u64,
    /// Renew the structure TTL if this lookup hits (the driver asks at most once per step per
    /// structure, see `SlideGate`).
    pub(crate) slide: bool,
}

impl Hints {
    /// The system clock in microseconds since the Unix epoch (0 before it, which `ZADD GT`
    /// then ignores).
    pub(crate) fn clock() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }
}

/// The requests of one store op.
#[derive(Debug)]
pub(crate) struct Plan {
    state: State,
    /// What this plan found out about the server, for the driver to keep.
    learned: Option<Capabilities>,
    index_kind: &'static str,
    /// Structures the request in flight touches, for naming a key of the wrong type.
    touched: Vec<Structure>,
    /// The wrong-type error being diagnosed with TYPE requests.
    diagnosing: Option<redis::RedisError>,
    /// A fresh hit's use for the driver to record (under `touch_batch`).
    recorded: Option<RecordedUse>,
}

impl Plan {
    /// Plans `op` for a cache with `settings`, whose store has `topology`, a lookup scoring
    /// with the system clock and renewing the structure TTL when the settings slide (see
    /// [`Plan::with_hints`]).
    #[cfg(test)]
    pub(crate) fn new(op: StoreOp, settings: &StoreSettings, topology: Topology) -> Plan {
        let hints = Hints {
            now_us: Hints::clock(),
            slide: settings.slide,
        };
        Plan::with_hints(op, settings, topology, hints)
    }

    /// Plans `op` for a cache with `settings`, whose store has `topology`; a lookup uses what
    /// the driver knows (`hints`).
    pub(crate) fn with_hints(
        op: StoreOp,
        settings: &StoreSettings,
        topology: Topology,
        hints: Hints,
    ) -> Plan {
        let rules = settings.rules;
        let kind = rules.index.script_word();
        let single = |request, shape| State::Single(Some(Request::Script(request)), shape);
        let with_lease = |asked: bool| if asked { 4 } else { 3 };
        let touched = match &op {
            StoreOp::Get { structure, .. }
            | StoreOp::Put { structure, .. }
            | StoreOp::Peek { structure, .. }
            | StoreOp::Expire { structure, .. }
            | StoreOp::Remove { structure, .. }
            | StoreOp::Lease { structure, .. }
            | StoreOp::PurgeStructure { structure } => vec![structure.clone()],
            StoreOp::Len | StoreOp::Purge | StoreOp::Vacuum | StoreOp::InvalidateTag { .. } => {
                Vec::new()
            }
        };
        let state = match op {
            StoreOp::Get {
                structure,
                member,
                refresh_after,
                lease,
                stamp,
            } => {
                let refresh_ms = refresh_after.map_or(0, store_millis);
                let batched = settings.touch_batch.is_some()
                    && matches!(rules.touch, TouchRule::Time | TouchRule::None)
                    && refresh_ms == 0
                    && !hints.slide;
                let call = GetCall {
                    touch: rules.touch.script_word(),
                    kind,
                    slide_ttl: if hints.slide { ttl_ms(settings) } else { 0 },
                    // The server's TIME scores a use (exact order across processes),
                    // except under `touch_batch`, whose recorded uses carry the caller's
                    // clock anyway: a script it falls back to scores alike.
                    score: if rules.touch == TouchRule::Time && settings.touch_batch.is_some() {
                        hints.now_us
                    } else {
                        0
                    },
                    refresh_ms,
                    structure,
                    member,
                    lease,
                    stamp,
                    tinylfu: tinylfu_shape(settings),
                };
                if batched {
                    // Sized up front: growing a command's buffers one argument at a time
                    // reallocates them on every hit.
                    let values = &call.structure.values;
                    let mut hget = redis::Cmd::with_capacity(3, 4 + values.len() + member.len());
                    hget.arg("HGET").arg(values).arg(&call.member[..]);
                    State::Probe {
                        hget: Some(Request::Cmd(hget)),
                        record: (rules.touch == TouchRule::Time).then(|| RecordedUse {
                            structure: call.structure.clone(),
                            member,
                            score: hints.now_us,
                        }),
                        // Built only if the HGET does not settle the lookup.
                        script: Some(call),
                    }
                } else {
                    State::Single(Some(call.build()), ReplyShape::Lookup)
                }
            }
            StoreOp::Put {
                structure,
                member,
                head,
                payload,
                entry_ttl,
                refresh_ms,
                keep,
                release,
                tagged,
            } => {
                // The tag keys only for a tagged put: on a cluster mid-migration, a declared key
                // missing from the node makes the script a TRYAGAIN (see `put.lua`).
                let tag_count = if tagged.is_some() { 2 } else { 0 };
                let shape = tinylfu_shape(settings);
                let count =
                    tag_count + with_lease(release.is_some()) + if shape.is_some() { 1 } else { 0 };
                let mut inv = match shape {
                    Some(_) => ScriptCall::new(&PUT_TLFU, "put.lua", count),
                    None => ScriptCall::new(&PUT, "put.lua", count),
                };
                keys(&mut inv, &structure);
                if tagged.is_some() {
                    tag_keys(&mut inv, &structure);
                }
                if release.is_some() {
                    inv.arg(structure.lease_key(&member));
                }
                if shape.is_some() {
                    inv.arg(&structure.sketch);
                }
                inv.arg(&member[..]).arg(&head[..]).arg(payload);
                match shape {
                    Some(shape) => inv.arg(shape.script_word()),
                    None => inv.arg(rules.insert.script_word()),
                };
                inv.arg(rules.touch.script_word())
                    .arg(rules.victim.script_word())
                    .arg(settings.maxsize)
                    .arg(ttl_ms(settings))
                    .arg(flag(settings.slide))
                    .arg(entry_ttl.map_or(0, store_millis))
                    .arg(keep.map_or(0, store_millis))
                    .arg(release.unwrap_or_default())
                    .arg(
                        tagged
                            .as_ref()
                            .map_or_else(Vec::new, |t| pack_tags(&t.tags)),
                    )
                    .arg(began_word(tagged.and_then(|t| t.began)))
                    .arg(refresh_ms)
                    .arg(near_arg(&settings.naming, topology, &structure));
                single(inv, ReplyShape::Stored)
            }
            // Released now: the plain DELIFEQ where the server has it (decided once the plan
            // knows its capabilities, see `Plan::knowing`).
            StoreOp::Lease {
                structure,
                member,
                token,
                hold: None,
            } => State::Release(Release {
                key: structure.lease_key(&member),
                token,
                stage: ReleaseStage::Unprobed,
            }),
            // Held back for the fail-safe throttle: a compare-and-set, which only the script does.
            StoreOp::Lease {
                structure,
                member,
                token,
                hold: Some(hold),
            } => State::Single(
                Some(lease_script(
                    structure.lease_key(&member),
                    token,
                    store_millis(hold),
                )),
                ReplyShape::Flag,
            ),
            StoreOp::Peek { structure, member } => {
                let mut inv = ScriptCall::new(&PEEK, "peek.lua", 1);
                inv.arg(&structure.values).arg(&member[..]);
                single(inv, ReplyShape::Flag)
            }
            StoreOp::Expire { structure, member } => {
                let mut inv = ScriptCall::new(&EXPIRE, "expire.lua", 1);
                inv.arg(&structure.values).arg(&member[..]).arg(near_arg(
                    &settings.naming,
                    topology,
                    &structure,
                ));
                single(inv, ReplyShape::Flag)
            }
            StoreOp::Remove { structure, member } => {
                let mut inv = ScriptCall::new(&REMOVE, "remove.lua", 3);
                keys(&mut inv, &structure);
                inv.arg(&member[..]).arg(kind).arg(near_arg(
                    &settings.naming,
                    topology,
                    &structure,
                ));
                single(inv, ReplyShape::Flag)
            }
            StoreOp::Len => sweep(Sweep::Len, settings, topology),
            StoreOp::Purge => sweep(Sweep::Purge, settings, topology),
            // One structure, known by name: the purge script over just its three keys.
            StoreOp::PurgeStructure { structure } => sweep_over(
                Sweep::Purge,
                topology,
                &settings.naming,
                None,
                vec![structure],
            ),
            StoreOp::Vacuum => sweep(Sweep::Vacuum, settings, topology),
            StoreOp::InvalidateTag { tag } => {
                let mut packed = Vec::new();
                pack_tag(&mut packed, &tag);
                sweep(Sweep::InvalidateTag(packed), settings, topology)
            }
        };
        Plan {
            state,
            learned: None,
            index_kind: kind,
            touched,
            diagnosing: None,
            recorded: None,
        }
    }

    /// The use a fresh hit under `touch_batch` leaves for the driver to apply later.
    pub(crate) fn take_recorded(&mut self) -> Option<RecordedUse> {
        self.recorded.take()
    }

    /// Tells the plan what is known of the server's commands (`None`: not yet probed; a plan
    /// that needs to know probes first).
    pub(crate) fn knowing(mut self, capabilities: Option<Capabilities>) -> Plan {
        if let State::Release(release) = &mut self.state {
            match capabilities {
                None => {}
                Some(Capabilities { delifeq: true }) => release.stage = ReleaseStage::Known,
                Some(Capabilities { delifeq: false }) => {
                    let key = std::mem::take(&mut release.key);
                    let token = std::mem::take(&mut release.token);
                    self.state = State::Single(Some(lease_script(key, token, 0)), ReplyShape::Flag);
                }
            }
        }
        self
    }

    /// What this plan learned about the server's commands, for the driver to pass to later
    /// plans. Set before the probe is sent: a server (or proxy) that answers the probe by
    /// dropping the connection is not probed again.
    pub(crate) fn learned(&self) -> Option<Capabilities> {
        self.learned
    }

    /// Advances the plan with the outcome of the previous request (`None` at the start).
    pub(crate) fn step(&mut self, reply: Option<redis::RedisResult<Value>>) -> Result<Step, Error> {
        match reply {
            Some(Err(e)) => match self.fall_back(&e) {
                Some(request) => Ok(Step::Send(request)),
                None => self.on_error(e),
            },
            Some(Ok(types)) if self.diagnosing.is_some() => Err(self.diagnosis(types)),
            Some(Ok(value)) => self.advance(Some(value)),
            None => self.advance(None),
        }
    }

    /// A lease release whose probe failed, or whose `DELIFEQ` the server does not know (a
    /// server replaced by an older one) or does not allow (an ACL user without it), goes on
    /// with the script, and later plans go straight to it.
    fn fall_back(&mut self, e: &redis::RedisError) -> Option<Request> {
        let State::Release(release) = &mut self.state else {
            return None;
        };
        let refused = crate::error::server_code(e) == Some("NOPERM")
            || (e.code() == Some("ERR")
                && e.detail()
                    .is_some_and(|d| d.to_ascii_lowercase().starts_with("unknown command")));
        match release.stage {
            ReleaseStage::Probing => {}
            ReleaseStage::Deleting if refused => {}
            _ => return None,
        }
        self.learned = Some(SCRIPTS_ONLY);
        let key = std::mem::take(&mut release.key);
        let token = std::mem::take(&mut release.token);
        // The script's reply is read as the flag the release answers.
        self.state = State::Single(None, ReplyShape::Flag);
        Some(lease_script(key, token, 0))
    }

    /// A script failed. A wrong-type failure is worth one more round trip: ask the type of
    /// each key involved, so that the error can name the culprit.
    fn on_error(&mut self, e: redis::RedisError) -> Result<Step, Error> {
        if crate::error::server_code(&e) != Some("WRONGTYPE")
            || self.diagnosing.is_some()
            || self.touched.is_empty()
        {
            return Err(Error::from_redis(e));
        }
        // The touched keys share one slot (one structure, or a batch of one slot), so on a
        // cluster this pipeline goes to one node.
        let mut pipe = redis::pipe();
        for (key, _) in self.expected_types() {
            pipe.cmd("TYPE").arg(key);
        }
        self.diagnosing = Some(e);
        Ok(Step::Send(Request::Pipe(pipe)))
    }

    fn expected_types(&self) -> Vec<(&str, &'static str)> {
        self.touched
            .iter()
            .flat_map(|s| {
                [
                    (s.index.as_str(), self.index_kind),
                    (s.values.as_str(), "hash"),
                    (s.expiry.as_str(), "zset"),
                    (s.tags.as_str(), "hash"),
                    (s.tagged.as_str(), "zset"),
                ]
            })
            .collect()
    }

    fn diagnosis(&mut self, types: Value) -> Error {
        let types: Vec<String> = redis::from_redis_value(types).unwrap_or_default();
        let wrong: Vec<String> = self
            .expected_types()
            .into_iter()
            .zip(types)
            .filter(|((_, want), got)| got != "none" && got != want)
            .map(|((key, want), got)| {
                format!("key `{key}` holds a {got} where fncache keeps a {want}")
            })
            .collect();
        let message = if wrong.is_empty() {
            "a key of this cache holds a value of the wrong type".to_owned()
        } else {
            wrong.join("; ")
        };
        match self.diagnosing.take() {
            Some(cause) => Error::with_source(ErrorKind::WrongType, message, cause),
            None => Error::new(ErrorKind::WrongType, message),
        }
    }

    fn advance(&mut self, reply: Option<Value>) -> Result<Step, Error> {
        let kind = self.index_kind;
        match &mut self.state {
            State::Probe {
                hget,
                script,
                record,
            } => {
                if let Some(hget) = hget.take() {
                    return Ok(Step::Send(hget));
                }
                let reply = reply.ok_or_else(|| protocol("a reply was expected"))?;
                if let Value::BulkString(entry) = reply
                    && Entry::parse(&entry).is_some_and(|e| {
                        e.expire_at_us == 0 && e.keep_until_us == 0 && e.refresh_at_us == 0
                    })
                {
                    // It never expires: fresh, whatever the time.
                    self.recorded = record.take();
                    return Ok(Step::Done(StoreReply::Looked(Lookup {
                        freshness: Freshness::Fresh,
                        lease: LeaseState::NotAsked,
                        entry: Some(std::sync::Arc::new(entry)),
                        store_us: None,
                    })));
                }
                let script = script
                    .take()
                    .ok_or_else(|| protocol("a lookup probed twice"))?;
                self.state = State::Single(None, ReplyShape::Lookup);
                Ok(Step::Send(script.build()))
            }
            State::Single(request, shape) => match (request.take(), reply) {
                (Some(request), _) => Ok(Step::Send(request)),
                (None, Some(reply)) => parse(*shape, reply).map(Step::Done),
                (None, None) => Err(protocol("a reply was expected")),
            },
            State::Release(release) => match (release.stage, reply) {
                (ReleaseStage::Unprobed, None) => {
                    // Pessimistic until answered (see `Plan::learned`).
                    self.learned = Some(SCRIPTS_ONLY);
                    release.stage = ReleaseStage::Probing;
                    let mut probe = redis::cmd("COMMAND");
                    probe.arg("INFO").arg("DELIFEQ");
                    Ok(Step::Send(Request::Cmd(probe)))
                }
                (ReleaseStage::Probing, Some(info)) if has_command(&info) => {
                    self.learned = Some(Capabilities { delifeq: true });
                    release.stage = ReleaseStage::Deleting;
                    Ok(Step::Send(delifeq(release)))
                }
                (ReleaseStage::Probing, Some(_)) => {
                    let key = std::mem::take(&mut release.key);
                    let token = std::mem::take(&mut release.token);
                    self.state = State::Single(None, ReplyShape::Flag);
                    Ok(Step::Send(lease_script(key, token, 0)))
                }
                (ReleaseStage::Known, None) => {
                    release.stage = ReleaseStage::Deleting;
                    Ok(Step::Send(delifeq(release)))
                }
                (ReleaseStage::Deleting, Some(reply)) => {
                    parse(ReplyShape::Flag, reply).map(Step::Done)
                }
                (stage, reply) => Err(protocol(&format!(
                    "a lease release at {stage:?} got {}",
                    if reply.is_some() {
                        "a reply"
                    } else {
                        "no reply"
                    }
                ))),
            },
            State::Sweep(state) => {
                if !state.started {
                    state.started = true;
                    if let Some(pattern) = &state.pattern {
                        return Ok(Step::Send(match state.topology {
                            Topology::Server => {
                                state.awaiting = Awaiting::Scan(None);
                                Request::Cmd(scan(0, pattern))
                            }
                            Topology::Cluster => {
                                state.awaiting = Awaiting::Primaries;
                                Request::AllPrimaries(scan(0, pattern))
                            }
                        }));
                    }
                } else {
                    let reply = reply.ok_or_else(|| protocol("a reply was expected"))?;
                    match std::mem::replace(&mut state.awaiting, Awaiting::Nothing) {
                        Awaiting::Script => state.total += count(reply)?,
                        Awaiting::Scan(node) => state.take_scan(node, reply)?,
                        Awaiting::Primaries => {
                            for (address, reply) in per_node(reply)? {
                                let node = Node::parse(&address).ok_or_else(|| {
                                    protocol(&format!("bad node address `{address}`"))
                                })?;
                                state.take_scan(Some(node), reply)?;
                            }
                        }
                        Awaiting::Nothing => return Err(protocol("no reply was expected")),
                    }
                }
                if let Some(batch) = state.batches.pop_front() {
                    state.awaiting = Awaiting::Script;
                    let request = sweep_request(
                        &state.sweep,
                        kind,
                        &near_arg(&state.naming, state.topology, &batch[0]),
                        &batch,
                    );
                    self.touched = batch;
                    return Ok(Step::Send(request));
                }
                let (Some((node, cursor)), Some(pattern)) =
                    (state.cursors.pop_front(), &state.pattern)
                else {
                    return Ok(Step::Done(StoreReply::Count(state.total)));
                };
                let request = match &node {
                    Some(node) => Request::OnNode(scan(cursor, pattern), node.clone()),
                    None => Request::Cmd(scan(cursor, pattern)),
                };
                state.awaiting = Awaiting::Scan(node);
                Ok(Step::Send(request))
            }
        }
    }
}

impl SweepState {
    /// Takes one node's SCAN reply: keeps following its cursor, batches the new structures.
    fn take_scan(&mut self, node: Option<Node>, reply: Value) -> Result<(), Error> {
        let (cursor, keys): (u64, Vec<String>) = redis::from_redis_value(reply)
            .map_err(|e| protocol(&format!("bad SCAN reply: {e}")))?;
        if cursor != 0 {
            self.cursors.push_back((node, cursor));
        }
        let fresh: Vec<Structure> = keys
            .iter()
            .filter_map(|k| self.naming.owned_structure(k))
            .filter(|s| self.seen.insert(s.index.clone()))
            .collect();
        self.batches
            .extend(batches(self.topology, self.naming.layout(), fresh));
        Ok(())
    }
}

/// Splits the replies of a command sent to every primary (a map from node address to reply).
fn per_node(reply: Value) -> Result<Vec<(String, Value)>, Error> {
    let Value::Map(entries) = reply else {
        return Err(protocol(&format!(
            "expected one reply per primary, got {reply:?}"
        )));
    };
    entries
        .into_iter()
        .map(|(address, reply)| {
            let address: String = redis::from_redis_value(address)
                .map_err(|e| protocol(&format!("bad node address: {e}")))?;
            // A node's own failure may arrive as a value rather than as the request's error.
            let reply = reply.extract_error().map_err(Error::from_redis)?;
            Ok((address, reply))
        })
        .collect()
}

/// Groups structures for sweep scripts: all in one script on a server; on a cluster, one
/// script per hash slot, since a script's keys must share a slot; in
/// `Layout::ClusterPerFunction` one per structure, since each structure has its own near
/// channel (two structures may share a slot, not a channel), and a script announces its
/// changes on one.
fn batches(topology: Topology, layout: Layout, structures: Vec<Structure>) -> Vec<Vec<Structure>> {
    if structures.is_empty() {
        return Vec::new();
    }
    match topology {
        Topology::Server => vec![structures],
        Topology::Cluster if layout == Layout::ClusterPerFunction => {
            structures.into_iter().map(|s| vec![s]).collect()
        }
        Topology::Cluster => {
            let mut groups: Vec<(Slot, Vec<Structure>)> = Vec::new();
            for s in structures {
                let slot = Slot::for_key(&s.index);
                match groups.iter_mut().find(|(g, _)| *g == slot) {
                    Some((_, group)) => group.push(s),
                    None => groups.push((slot, vec![s])),
                }
            }
            groups.into_iter().map(|(_, group)| group).collect()
        }
    }
}

fn sweep(sweep: Sweep, settings: &StoreSettings, topology: Topology) -> State {
    let fixed = settings.naming.fixed_structures();
    let pattern = fixed.is_none().then(|| settings.naming.scan_pattern());
    sweep_over(
        sweep,
        topology,
        &settings.naming,
        pattern,
        fixed.unwrap_or_default(),
    )
}

/// A sweep over `structures`, and over what SCAN MATCH `pattern` finds when given.
fn sweep_over(
    sweep: Sweep,
    topology: Topology,
    naming: &Naming,
    pattern: Option<String>,
    structures: Vec<Structure>,
) -> State {
    State::Sweep(Box::new(SweepState {
        sweep,
        topology,
        pattern,
        naming: naming.clone(),
        started: false,
        cursors: VecDeque::new(),
        batches: batches(topology, naming.layout(), structures).into(),
        awaiting: Awaiting::Nothing,
        seen: HashSet::new(),
        total: 0,
    }))
}

/// `lease.lua`: release the lease at `key` if `token` holds it (`hold_ms` 0), or hold it
/// back for `hold_ms`.
fn lease_script(key: String, token: String, hold_ms: u64) -> Request {
    let mut inv = ScriptCall::new(&LEASE, "lease.lua", 1);
    inv.arg(key).arg(token).arg(hold_ms);
    Request::Script(inv)
}

/// `DELIFEQ key token`: deletes the lease only if `token` holds it; 1 when it did, as
/// `lease.lua` answers.
fn delifeq(release: &Release) -> Request {
    let mut cmd = redis::cmd("DELIFEQ");
    cmd.arg(&release.key).arg(&release.token);
    Request::Cmd(cmd)
}

/// Reads a `COMMAND INFO name` reply: one entry, nil for a command the server does not have.
fn has_command(info: &Value) -> bool {
    matches!(info, Value::Array(entries) if matches!(entries.first(), Some(Value::Array(_))))
}

/// `Policy::TinyLfu`'s shape, for the scripts of a cache of that policy.
fn tinylfu_shape(settings: &StoreSettings) -> Option<TinyLfuShape> {
    (settings.rules.insert == InsertRule::Window).then(|| TinyLfuShape::new(settings.maxsize))
}

fn keys(inv: &mut ScriptCall, s: &Structure) {
    inv.arg(&s.index).arg(&s.values).arg(&s.expiry);
}

/// The tag bookkeeping keys of a structure, which follow its three keys in the scripts that
/// keep tags (every one but the lookup's).
fn tag_keys(inv: &mut ScriptCall, s: &Structure) {
    inv.arg(&s.tags).arg(&s.tagged);
}

/// The near channel of `structure` as the scripts take it (see `prelude.lua`): pub/sub on one
/// server; on a cluster sharded pub/sub, on the cache's channel in
/// [`Layout::Cluster`](crate::Layout::Cluster), whose one structure shares its hash slot, and
/// on the structure's own channel (with its hash tag) in the per-function layout.
fn near_arg(naming: &Naming, topology: Topology, structure: &Structure) -> String {
    match (topology, naming.layout()) {
        (Topology::Server, _) => format!("p{}", naming.near_channel()),
        (Topology::Cluster, Layout::ClusterPerFunction) => {
            format!("s{}", crate::near::structure_channel(structure))
        }
        (Topology::Cluster, _) => format!("s{}", naming.near_channel()),
    }
}

/// A sweep script over `structures`; the scripts that change entries also get the cache's
/// near channel (see `prelude.lua`).
fn sweep_request(sweep: &Sweep, kind: &str, channel: &str, structures: &[Structure]) -> Request {
    let (script, name) = sweep.script();
    // Counting reads no tags (and names no key it does not need, see `put.lua`).
    let with_tags = !matches!(sweep, Sweep::Len);
    // A purge unlinks the sketch of `Policy::TinyLfu` too (absent for other policies), and the
    // `:6` key of its earlier layout, which no other script names any more.
    let with_sketch = matches!(sweep, Sweep::Purge);
    let per = 3 + if with_tags { 2 } else { 0 } + if with_sketch { 2 } else { 0 };
    let mut inv = ScriptCall::new(script, name, per * structures.len());
    for s in structures {
        keys(&mut inv, s);
        if with_tags {
            tag_keys(&mut inv, s);
        }
        if with_sketch {
            inv.arg(&s.sketch).arg(&s.meta);
        }
    }
    inv.arg(kind);
    if let Sweep::InvalidateTag(tag) = sweep {
        inv.arg(&tag[..]);
    }
    if with_tags {
        inv.arg(channel);
    }
    Request::Script(inv)
}

fn scan(cursor: u64, pattern: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT);
    cmd
}

/// Applies recorded uses of one structure's members (`touch_batch`): `XX`, so a member evicted
/// or removed since is not put back; `GT`, so a score never moves back.
pub(crate) fn apply_uses(index: &str, uses: &[(Member, u64)]) -> Request {
    let mut cmd = redis::cmd("ZADD");
    cmd.arg(index).arg("XX").arg("GT");
    for (member, score) in uses {
        cmd.arg(*score).arg(&member[..]);
    }
    Request::Cmd(cmd)
}

/// Applies a near cache's hits of one structure (see `near.rs`), oldest use first: the `time`
/// rule as [`apply_uses`] does with each member's last use, the `counter` and `incr` rules with
/// `uses.lua`, `Policy::TinyLfu`'s with `uses_tlfu.lua`; `None` for a rule that uses do not
/// change.
pub(crate) fn apply_near_uses(
    index: &str,
    touch: TouchRule,
    uses: &[(Member, u64, u64)],
    settings: &StoreSettings,
) -> Option<Request> {
    if uses.is_empty() {
        return None;
    }
    match touch {
        TouchRule::None => None,
        TouchRule::Time => {
            let last: Vec<(Member, u64)> = uses.iter().map(|&(m, last, _)| (m, last)).collect();
            Some(apply_uses(index, &last))
        }
        TouchRule::Segmented => {
            let shape = tinylfu_shape(settings)?;
            // The sketch sits beside the index (`…:5`).
            let base = index.strip_suffix(":0")?;
            let mut inv = ScriptCall::new(&USES_TLFU, "uses_tlfu.lua", 2);
            inv.arg(index)
                .arg(format!("{base}:5"))
                .arg(shape.script_word());
            for (member, _, count) in uses {
                inv.arg(&member[..]).arg(*count);
            }
            Some(Request::Script(inv))
        }
        TouchRule::Counter | TouchRule::Increment => {
            let mut inv = ScriptCall::new(&USES, "uses.lua", 1);
            inv.arg(index).arg(touch.script_word());
            for (member, _, count) in uses {
                inv.arg(&member[..]).arg(*count);
            }
            Some(Request::Script(inv))
        }
    }
}

fn ttl_ms(settings: &StoreSettings) -> u64 {
    settings.ttl.map_or(0, store_millis)
}

fn flag(on: bool) -> &'static str {
    if on { "1" } else { "0" }
}

fn protocol(what: &str) -> Error {
    Error::new(
        ErrorKind::Backend,
        format!("unexpected Redis reply: {what}"),
    )
}

fn count(reply: Value) -> Result<u64, Error> {
    redis::from_redis_value::<u64>(reply).map_err(|e| protocol(&format!("expected a count: {e}")))
}

fn parse(shape: ReplyShape, reply: Value) -> Result<StoreReply, Error> {
    match shape {
        ReplyShape::Lookup => parse_lookup(reply).map(StoreReply::Looked),
        ReplyShape::Stored => {
            let (evicted, reclaimed): (u64, u64) = redis::from_redis_value(reply)
                .map_err(|e| protocol(&format!("expected a put result: {e}")))?;
            Ok(StoreReply::Stored { evicted, reclaimed })
        }
        ReplyShape::Flag => Ok(StoreReply::Flag(count(reply)? != 0)),
    }
}

/// Reads `get.lua`'s answer: a bare entry for a fresh hit, else `{state, lease, entry}`.
fn parse_lookup(reply: Value) -> Result<Lookup, Error> {
    let parts = match reply {
        Value::BulkString(entry) => {
            return Ok(Lookup {
                freshness: Freshness::Fresh,
                lease: LeaseState::NotAsked,
                entry: Some(std::sync::Arc::new(entry)),
                store_us: None,
            });
        }
        Value::Array(parts) => parts,
        other => return Err(protocol(&format!("expected a lookup, got {other:?}"))),
    };
    let mut parts = parts.into_iter();
    let (state, lease, entry, stamp) = (parts.next(), parts.next(), parts.next(), parts.next());
    let code = |v: Option<Value>| match v {
        Some(Value::Int(n)) => Ok(n),
        other => Err(protocol(&format!("expected a lookup code, got {other:?}"))),
    };
    let freshness = match code(state)? {
        0 => Freshness::Missing,
        1 => Freshness::Fresh,
        2 => Freshness::Stale,
        3 => Freshness::Expired,
        n => return Err(protocol(&format!("unknown lookup state {n}"))),
    };
    let lease = match code(lease)? {
        0 => LeaseState::NotAsked,
        1 => LeaseState::Mine,
        2 => LeaseState::Theirs,
        3 => LeaseState::Throttled,
        n => return Err(protocol(&format!("unknown lease state {n}"))),
    };
    let entry = match entry {
        Some(Value::BulkString(bytes)) => Some(std::sync::Arc::new(bytes)),
        // Lua's false arrives as nil.
        Some(Value::Nil) | None => None,
        Some(other) => return Err(protocol(&format!("expected an entry, got {other:?}"))),
    };
    let store_us = match stamp {
        None => None,
        Some(Value::Int(us)) => u64::try_from(us).ok(),
        Some(other) => {
            return Err(protocol(&format!(
                "expected the server's time, got {other:?}"
            )));
        }
    };
    Ok(Lookup {
        freshness,
        lease,
        entry,
        store_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::server_error;
    use crate::layout::{Layout, Naming};
    use crate::policy::Policy;

    fn batch(cursor: &str, keys: &[&str]) -> Value {
        Value::Array(vec![
            Value::BulkString(cursor.as_bytes().to_vec()),
            Value::Array(
                keys.iter()
                    .map(|k| Value::BulkString(k.as_bytes().to_vec()))
                    .collect(),
            ),
        ])
    }

    fn settings(layout: Layout) -> StoreSettings {
        StoreSettings {
            rules: Policy::Lru.rules(),
            maxsize: 3,
            ttl: None,
            slide: true,
            touch_batch: None,
            naming: Naming::new("p:", "n", Policy::Lru, layout),
        }
    }

    fn release(hold: Option<std::time::Duration>) -> (StoreSettings, StoreOp) {
        let s = settings(Layout::Shared);
        let op = StoreOp::Lease {
            structure: s.naming.structure("f"),
            member: [7; 16],
            token: "tok".to_owned(),
            hold,
        };
        (s, op)
    }

    fn cmd_words(step: Step) -> Vec<String> {
        let Step::Send(Request::Cmd(cmd)) = step else {
            panic!("a plain command was expected, got {step:?}");
        };
        cmd.args_iter()
            .map(|arg| match arg {
                redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                _ => "<cursor>".to_owned(),
            })
            .collect()
    }

    /// The key count, key, token and hold of a `lease.lua` call.
    fn lease_words(step: Step) -> Vec<String> {
        let Step::Send(Request::Script(call)) = step else {
            panic!("lease.lua was expected, got {step:?}");
        };
        assert_eq!(call.name(), "lease.lua");
        call.words()
    }

    const VALKEY: Capabilities = Capabilities { delifeq: true };

    /// The words of a get.lua call planned with `hints`.
    fn get_words(s: &StoreSettings, op: StoreOp, hints: Hints) -> Vec<String> {
        let mut plan = Plan::with_hints(op, s, Topology::Server, hints);
        let Ok(Step::Send(Request::Script(call))) = plan.step(None) else {
            panic!("get.lua was expected");
        };
        assert_eq!(call.name(), "get.lua");
        call.words()
    }

    #[test]
    fn a_plain_lookup_sends_only_what_the_hit_path_reads() {
        let mut s = settings(Layout::Shared);
        s.rules = Policy::LruT.rules();
        s.ttl = Some(std::time::Duration::from_secs(60));
        let structure = s.naming.structure("f");
        let op = || StoreOp::Get {
            structure: structure.clone(),
            member: *b"0123456789abcdef",
            refresh_after: None,
            lease: None,
            stamp: false,
        };
        let keys = [
            structure.index.as_str(),
            structure.values.as_str(),
            structure.expiry.as_str(),
        ];
        let hints = |slide| Hints { now_us: 42, slide };
        // The server's TIME scores the use ("0"); the TTL is renewed only when the driver asks.
        let words = get_words(&s, op(), hints(false));
        assert_eq!(words[..4], ["3", keys[0], keys[1], keys[2]]);
        assert_eq!(words[4..], ["0123456789abcdef", "time", "zset", "0", "0"]);
        let words = get_words(&s, op(), hints(true));
        assert_eq!(
            words[4..],
            ["0123456789abcdef", "time", "zset", "60000", "0"]
        );
        // Under touch_batch the caller's clock scores it, as its recorded uses are scored.
        let mut batched = s.clone();
        batched.touch_batch = Some(std::time::Duration::from_millis(5));
        let words = get_words(&batched, op(), hints(true));
        assert_eq!(
            words[4..],
            ["0123456789abcdef", "time", "zset", "60000", "42"]
        );
        // Other rules do not score with a time.
        s.rules = Policy::Lru.rules();
        let words = get_words(&s, op(), hints(false));
        assert_eq!(
            words[4..],
            ["0123456789abcdef", "counter", "zset", "0", "0"]
        );
        // A lease or refresh-after adds the trailing arguments.
        let lease = crate::store::LeaseRequest::new(std::time::Duration::from_secs(2));
        let op = StoreOp::Get {
            structure: structure.clone(),
            member: *b"0123456789abcdef",
            refresh_after: None,
            lease: Some(lease),
            stamp: false,
        };
        let words = get_words(&s, op, hints(false));
        assert_eq!(words[0], "4");
        // The lease key, written into the command as `lease_key` spells it.
        assert_eq!(words[4], structure.lease_key(b"0123456789abcdef"));
        assert_eq!(words[9..], ["0", "0", "2000", lease.token().as_str()]);
        // A tagged call asks for the server's clock, after the (empty) lease arguments, and
        // names the tags hash, which a miss marks for tag invalidations (after the lease key).
        let op = StoreOp::Get {
            structure: structure.clone(),
            member: *b"0123456789abcdef",
            refresh_after: None,
            lease: None,
            stamp: true,
        };
        let words = get_words(&s, op, hints(false));
        assert_eq!(words[0], "4");
        assert_eq!(words[4], structure.tags);
        assert_eq!(words[10..], ["0", "0", "", "1"]);
        let op = StoreOp::Get {
            structure: structure.clone(),
            member: *b"0123456789abcdef",
            refresh_after: None,
            lease: Some(lease),
            stamp: true,
        };
        let words = get_words(&s, op, hints(false));
        assert_eq!(words[0], "5");
        assert_eq!(words[4], structure.lease_key(b"0123456789abcdef"));
        assert_eq!(words[5], structure.tags);
    }

    #[test]
    fn a_lookup_reply_carries_the_server_clock_when_asked() {
        let reply = Value::Array(vec![
            Value::Int(0),
            Value::Int(1),
            Value::Nil,
            Value::Int(42),
        ]);
        let lookup = parse_lookup(reply).unwrap();
        assert_eq!(lookup.freshness, Freshness::Missing);
        assert_eq!(lookup.store_us, Some(42));
        let reply = Value::Array(vec![Value::Int(0), Value::Int(1), Value::Nil]);
        assert_eq!(parse_lookup(reply).unwrap().store_us, None);
    }

    #[test]
    fn a_tagged_put_says_when_its_computation_began() {
        assert_eq!(began_word(None), "");
        let local = std::time::Instant::now();
        let exact = Began {
            local,
            store_us: Some(1_700_000_000_000_000),
        };
        assert_eq!(began_word(Some(exact)), "=1700000000000000");
        let estimated = began_word(Some(Began {
            local,
            store_us: None,
        }));
        assert!(estimated.starts_with('~') && estimated[1..].parse::<u64>().is_ok());
    }

    #[test]
    fn a_first_release_probes_for_delifeq_and_uses_it() {
        let (s, op) = release(None);
        let key = s.naming.structure("f").lease_key(&[7; 16]);
        let mut plan = Plan::new(op, &s, Topology::Server).knowing(None);
        assert_eq!(
            cmd_words(plan.step(None).unwrap()),
            ["COMMAND", "INFO", "DELIFEQ"]
        );
        // Until the probe is answered, the cache counts on scripts only.
        assert_eq!(plan.learned(), Some(SCRIPTS_ONLY));
        let info = Value::Array(vec![Value::Array(vec![Value::BulkString(
            b"delifeq".to_vec(),
        )])]);
        assert_eq!(
            cmd_words(plan.step(Some(Ok(info))).unwrap()),
            ["DELIFEQ", key.as_str(), "tok"]
        );
        assert_eq!(plan.learned(), Some(VALKEY));
        let done = plan.step(Some(Ok(Value::Int(1)))).unwrap();
        assert!(
            matches!(done, Step::Done(StoreReply::Flag(true))),
            "{done:?}"
        );
    }

    #[test]
    fn a_server_without_delifeq_releases_with_the_script() {
        let (s, op) = release(None);
        let key = s.naming.structure("f").lease_key(&[7; 16]);
        let mut plan = Plan::new(op, &s, Topology::Server).knowing(None);
        plan.step(None).unwrap();
        // Redis 7.0 answers a nil entry for a command it does not have.
        let step = plan.step(Some(Ok(Value::Array(vec![Value::Nil])))).unwrap();
        assert_eq!(lease_words(step), ["1", key.as_str(), "tok", "0"]);
        assert_eq!(plan.learned(), Some(SCRIPTS_ONLY));
        let done = plan.step(Some(Ok(Value::Int(0)))).unwrap();
        assert!(
            matches!(done, Step::Done(StoreReply::Flag(false))),
            "{done:?}"
        );

        // Known, it goes straight to the script; so does a failed probe (an ACL user without
        // COMMAND).
        let (s, op) = release(None);
        let mut plan = Plan::new(op, &s, Topology::Server).knowing(Some(SCRIPTS_ONLY));
        lease_words(plan.step(None).unwrap());
        let (s, op) = release(None);
        let mut plan = Plan::new(op, &s, Topology::Server).knowing(None);
        plan.step(None).unwrap();
        let denied = server_error("NOPERM User cache has no permissions to run 'command|info'");
        lease_words(plan.step(Some(Err(denied))).unwrap());
        assert_eq!(plan.learned(), Some(SCRIPTS_ONLY));
    }

    #[test]
    fn a_refused_delifeq_falls_back_to_the_script_and_other_errors_do_not() {
        for refusal in [
            "ERR unknown command 'DELIFEQ', with args beginning with: 'k' 'v' ",
            "NOPERM User cache has no permissions to run the 'delifeq' command",
        ] {
            let (s, op) = release(None);
            let mut plan = Plan::new(op, &s, Topology::Server).knowing(Some(VALKEY));
            assert_eq!(cmd_words(plan.step(None).unwrap())[0], "DELIFEQ");
            assert_eq!(plan.learned(), None, "nothing new learned yet");
            lease_words(plan.step(Some(Err(server_error(refusal)))).unwrap());
            assert_eq!(plan.learned(), Some(SCRIPTS_ONLY), "{refusal}");
            let done = plan.step(Some(Ok(Value::Int(1)))).unwrap();
            assert!(
                matches!(done, Step::Done(StoreReply::Flag(true))),
                "{done:?}"
            );
        }
        // A lease key of the wrong type fails as the script would: diagnosed, not retried.
        let (s, op) = release(None);
        let mut plan = Plan::new(op, &s, Topology::Server).knowing(Some(VALKEY));
        plan.step(None).unwrap();
        let wrong =
            server_error("WRONGTYPE Operation against a key holding the wrong kind of value");
        let step = plan.step(Some(Err(wrong))).unwrap();
        assert!(matches!(step, Step::Send(Request::Pipe(_))), "{step:?}");
    }

    #[test]
    fn holding_a_lease_back_is_always_the_script() {
        let (s, op) = release(Some(std::time::Duration::from_millis(1500)));
        let key = s.naming.structure("f").lease_key(&[7; 16]);
        let mut plan = Plan::new(op, &s, Topology::Server).knowing(Some(VALKEY));
        assert_eq!(
            lease_words(plan.step(None).unwrap()),
            ["1", key.as_str(), "tok", "1500"]
        );
    }

    #[test]
    fn an_expire_is_one_script_call_on_the_values_key_answering_a_flag() {
        let s = settings(Layout::Shared);
        let structure = s.naming.structure("f");
        let op = StoreOp::Expire {
            structure: structure.clone(),
            member: [7; 16],
        };
        let mut plan = Plan::new(op, &s, Topology::Server);
        let Step::Send(Request::Script(call)) = plan.step(None).unwrap() else {
            panic!("a script call was expected")
        };
        assert_eq!(call.name(), "expire.lua");
        let words = call.words();
        assert!(words.contains(&structure.values), "{words:?}");
        let done = plan.step(Some(Ok(Value::Int(1)))).unwrap();
        assert!(matches!(done, Step::Done(StoreReply::Flag(true))));
    }

    #[test]
    fn a_get_is_one_script_call_then_its_reply() {
        let s = settings(Layout::Shared);
        let op = StoreOp::Get {
            structure: s.naming.structure("f"),
            member: [7; 16],
            refresh_after: None,
            lease: None,
            stamp: false,
        };
        let mut plan = Plan::new(op, &s, Topology::Server);
        assert!(matches!(
            plan.step(None).unwrap(),
            Step::Send(Request::Script(_))
        ));
        let miss = Value::Array(vec![Value::Int(0), Value::Int(0), Value::Nil]);
        let done = plan.step(Some(Ok(miss))).unwrap();
        let Step::Done(StoreReply::Looked(lookup)) = done else {
            panic!("a lookup was expected")
        };
        assert_eq!(
            (lookup.freshness, lookup.lease, lookup.entry),
            (Freshness::Missing, LeaseState::NotAsked, None)
        );
    }

    #[test]
    fn purging_one_structure_is_one_purge_script_over_its_seven_keys() {
        let s = settings(Layout::PerFunction);
        let structure = s.naming.structure("f");
        let mut plan = Plan::new(StoreOp::PurgeStructure { structure }, &s, Topology::Server);
        let Step::Send(Request::Script(invocation)) = plan.step(None).unwrap() else {
            panic!("a script call was expected");
        };
        assert_eq!(invocation.name(), "purge.lua");
        let words = invocation.words();
        let keys: Vec<&str> = words.iter().map(String::as_str).collect();
        assert_eq!(
            keys.len(),
            10,
            "a key count, seven keys (three of entries, two of tags, two of TinyLfu's sketch), \
             the index kind and the near channel: {keys:?}"
        );
        assert_eq!(keys[0], "7");
        for (at, key) in keys[1..8].iter().enumerate() {
            assert!(key.ends_with(&format!(":{at}")), "{keys:?}");
        }
        assert_eq!(keys[8], "zset");
        assert_eq!(keys[9], format!("p{}", s.naming.near_channel()));
        let done = plan.step(Some(Ok(Value::Int(4)))).unwrap();
        assert!(matches!(done, Step::Done(StoreReply::Count(4))));
    }

    #[test]
    fn per_function_len_scans_until_cursor_zero_and_skips_repeats() {
        let s = settings(Layout::PerFunction);
        let mut plan = Plan::new(StoreOp::Len, &s, Topology::Server);
        assert!(matches!(
            plan.step(None).unwrap(),
            Step::Send(Request::Cmd(_))
        ));
        // First batch finds one structure (by two of its keys), and keys that only look like
        // the cache's: a script call counts the structure.
        let f = s.naming.structure("f");
        let step = plan
            .step(Some(Ok(batch(
                "5",
                &[
                    &f.values,
                    "p:n:lru-m:f#x:0",
                    &f.index,
                    "p:n:lru-m:other:lru:0",
                ],
            ))))
            .unwrap();
        assert_eq!(plan.touched, vec![f.clone()]);
        assert!(matches!(step, Step::Send(Request::Script(_))));
        let step = plan.step(Some(Ok(Value::Int(2)))).unwrap();
        assert!(matches!(step, Step::Send(Request::Cmd(_))));
        // The same structure again (SCAN may repeat) is not counted twice.
        let step = plan
            .step(Some(Ok(batch("0", &[&f.index, &f.expiry]))))
            .unwrap();
        assert!(matches!(step, Step::Done(StoreReply::Count(2))));
    }

    #[test]
    fn cluster_sweeps_scan_every_primary_and_batch_by_slot() {
        let s = settings(Layout::ClusterPerFunction);
        let a = s.naming.structure("a");
        let b = s.naming.structure("b");
        let c = s.naming.structure("c");
        assert_ne!(Slot::for_key(&a.index), Slot::for_key(&b.index));
        let mut plan = Plan::new(StoreOp::Purge, &s, Topology::Cluster);
        let Step::Send(Request::AllPrimaries(_)) = plan.step(None).unwrap() else {
            panic!("a cluster sweep starts with SCAN on every primary");
        };
        let per_node = Value::Map(vec![
            (
                Value::BulkString(b"127.0.0.1:7000".to_vec()),
                batch("7", &[&a.index, &b.index]),
            ),
            (
                Value::BulkString(b"127.0.0.1:7001".to_vec()),
                batch("0", &[&c.index, "unrelated:key"]),
            ),
        ]);
        // One script per structure here (their slots differ), none for a key that is no
        // structure's index.
        let mut scripts = 0;
        let mut step = plan.step(Some(Ok(per_node))).unwrap();
        while let Step::Send(Request::Script(_)) = step {
            assert_eq!(plan.touched.len(), 1);
            scripts += 1;
            step = plan.step(Some(Ok(Value::Int(2)))).unwrap();
        }
        assert_eq!(scripts, 3);
        // Then the first node's cursor is followed on that node only.
        let Step::Send(Request::OnNode(_, node)) = step else {
            panic!("expected a SCAN on one node, got {step:?}");
        };
        assert_eq!(
            node,
            Node {
                host: "127.0.0.1".into(),
                port: 7000
            }
        );
        let done = plan.step(Some(Ok(batch("0", &[&a.index])))).unwrap();
        assert!(matches!(done, Step::Done(StoreReply::Count(6))), "{done:?}");
    }

    #[test]
    fn cluster_batches_keep_one_slot_per_script() {
        let s = settings(Layout::Cluster);
        let shared = s.naming.structure("f");
        // Structures of one slot share a script; others get their own.
        let same_slot = Structure::from_index_key("x:{my-tag}:0").unwrap();
        let same_slot_too = Structure::from_index_key("y:{my-tag}:0").unwrap();
        let out = batches(
            Topology::Cluster,
            Layout::Cluster,
            vec![same_slot.clone(), shared.clone(), same_slot_too.clone()],
        );
        assert_eq!(out, vec![vec![same_slot, same_slot_too], vec![shared]]);
        assert_eq!(
            batches(Topology::Server, Layout::Shared, Vec::new()),
            Vec::<Vec<Structure>>::new()
        );
    }

    #[test]
    fn a_failed_primary_fails_the_sweep() {
        let s = settings(Layout::ClusterPerFunction);
        let mut plan = Plan::new(StoreOp::Len, &s, Topology::Cluster);
        plan.step(None).unwrap();
        let failed = Value::Map(vec![(
            Value::BulkString(b"127.0.0.1:7000".to_vec()),
            redis::parse_redis_value(b"-CLUSTERDOWN the cluster is down\r\n").unwrap(),
        )]);
        let Value::Map(entries) = &failed else {
            unreachable!()
        };
        assert!(matches!(entries[0].1, Value::ServerError(_)));
        let failed = Value::Map(vec![(
            Value::BulkString(b"127.0.0.1:7000".to_vec()),
            redis::parse_redis_value(b"-CLUSTERDOWN the cluster is down\r\n").unwrap(),
        )]);
        assert!(plan.step(Some(Ok(failed))).is_err());
    }
}

/// Requests of the operator API (`admin.rs`), built here so that it names keys, scans and
/// counts exactly as the sweeps do.
pub(crate) mod admin {
    use super::*;

    /// `SCAN cursor MATCH pattern` on the one server, or on `node` of a cluster.
    pub(crate) fn scan_request(cursor: u64, pattern: &str, node: Option<&Node>) -> Request {
        match node {
            Some(node) => Request::OnNode(scan(cursor, pattern), node.clone()),
            None => Request::Cmd(scan(cursor, pattern)),
        }
    }

    /// `SCAN 0 MATCH pattern` on every primary of a cluster.
    pub(crate) fn scan_primaries(pattern: &str) -> Request {
        Request::AllPrimaries(scan(0, pattern))
    }

    /// A SCAN reply: the next cursor (0 at the end) and the keys.
    pub(crate) fn read_scan(reply: Value) -> Result<(u64, Vec<String>), Error> {
        redis::from_redis_value(reply).map_err(|e| protocol(&format!("bad SCAN reply: {e}")))
    }

    /// The replies of every primary to [`scan_primaries`], by node.
    pub(crate) fn read_primaries(reply: Value) -> Result<Vec<(Node, Value)>, Error> {
        per_node(reply)?
            .into_iter()
            .map(|(address, reply)| {
                let node = Node::parse(&address)
                    .ok_or_else(|| protocol(&format!("bad node address `{address}`")))?;
                Ok((node, reply))
            })
            .collect()
    }

    /// The live entries of one structure, counted by `len.lua` as [`StoreOp::Len`] does.
    pub(crate) fn len_request(settings: &StoreSettings, structure: &Structure) -> Request {
        sweep_request(
            &Sweep::Len,
            settings.rules.index.script_word(),
            "",
            std::slice::from_ref(structure),
        )
    }

    /// A count reply.
    pub(crate) fn read_count(reply: Value) -> Result<u64, Error> {
        count(reply)
    }
}
