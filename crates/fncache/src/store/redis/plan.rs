//! Pure translation of store ops into Redis requests, and of replies back into store replies.
//!
//! A [`Plan`] is a small state machine: feed it the previous reply, it answers with the next
//! request to send or with the final [`StoreReply`]. The blocking and async drivers only move
//! bytes; everything that decides what to send lives here, once.

use std::collections::HashSet;
use std::sync::LazyLock;

use redis::{Script, ScriptInvocation, Value};

use crate::clock::saturating_millis;
use crate::error::{Error, ErrorKind};
use crate::layout::Structure;
use crate::store::{Freshness, LeaseState, Lookup, StoreOp, StoreReply, StoreSettings};

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

static GET: LazyLock<Script> = script!(hot "scripts/get.lua");
static PUT: LazyLock<Script> = script!(hot "scripts/put.lua");
static PEEK: LazyLock<Script> = script!(maintenance "scripts/peek.lua");
static REMOVE: LazyLock<Script> = script!(maintenance "scripts/remove.lua");
static LEN: LazyLock<Script> = script!(maintenance "scripts/len.lua");
static PURGE: LazyLock<Script> = script!(maintenance "scripts/purge.lua");
static VACUUM: LazyLock<Script> = script!(maintenance "scripts/vacuum.lua");
static LEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("scripts/lease.lua")));

/// One request for a driver to send.
#[derive(Debug)]
pub(crate) enum Request {
    /// EVALSHA, with a script load and retry on NOSCRIPT.
    Script(ScriptInvocation<'static>),
    /// A plain command.
    Cmd(redis::Cmd),
    /// Several commands in one round trip.
    Pipe(redis::Pipeline),
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
#[derive(Debug, Clone, Copy)]
enum Sweep {
    Len,
    Purge,
    Vacuum,
}

impl Sweep {
    fn script(self) -> &'static Script {
        match self {
            Sweep::Len => &LEN,
            Sweep::Purge => &PURGE,
            Sweep::Vacuum => &VACUUM,
        }
    }
}

#[derive(Debug)]
enum State {
    /// One request, then read its reply.
    Single(Option<Request>, ReplyShape),
    /// A whole-cache op over structures known up front.
    Fixed {
        sweep: Sweep,
        structures: Option<Vec<Structure>>,
    },
    /// A whole-cache op over structures found with SCAN.
    Scan {
        sweep: Sweep,
        pattern: String,
        /// Cursor to continue from once the pending script reply is in.
        next_cursor: Option<u64>,
        awaiting_script: bool,
        seen: HashSet<String>,
        total: u64,
        started: bool,
    },
}

/// The requests of one store op.
#[derive(Debug)]
pub(crate) struct Plan {
    state: State,
    index_kind: &'static str,
    /// Structures the request in flight touches, for naming a key of the wrong type.
    touched: Vec<Structure>,
    /// The wrong-type error being diagnosed with TYPE requests.
    diagnosing: Option<redis::RedisError>,
}

impl Plan {
    /// Plans `op` for a cache with `settings`.
    pub(crate) fn new(op: StoreOp, settings: &StoreSettings) -> Plan {
        let rules = settings.rules;
        let kind = rules.index.script_word();
        let single = |request, shape| State::Single(Some(Request::Script(request)), shape);
        let touched = match &op {
            StoreOp::Get { structure, .. }
            | StoreOp::Put { structure, .. }
            | StoreOp::Peek { structure, .. }
            | StoreOp::Remove { structure, .. }
            | StoreOp::Lease { structure, .. }
            | StoreOp::PurgeStructure { structure } => vec![structure.clone()],
            StoreOp::Len | StoreOp::Purge | StoreOp::Vacuum => Vec::new(),
        };
        let state = match op {
            StoreOp::Get {
                structure,
                member,
                refresh_after,
                lease,
            } => {
                let mut inv = GET.prepare_invoke();
                keys(&mut inv, &structure);
                inv.key(structure.lease_key(&member));
                let (lease_ms, token) =
                    lease.map_or((0, String::new()), |l| (saturating_millis(l.ttl), l.token));
                inv.arg(&member[..])
                    .arg(rules.touch.script_word())
                    .arg(kind)
                    .arg(ttl_ms(settings))
                    .arg(flag(settings.slide))
                    .arg(refresh_after.map_or(0, saturating_millis))
                    .arg(lease_ms)
                    .arg(token);
                single(inv, ReplyShape::Lookup)
            }
            StoreOp::Put {
                structure,
                member,
                head,
                payload,
                entry_ttl,
                keep,
                release,
            } => {
                let mut inv = PUT.prepare_invoke();
                keys(&mut inv, &structure);
                inv.key(structure.lease_key(&member));
                inv.arg(&member[..])
                    .arg(&head[..])
                    .arg(payload)
                    .arg(rules.insert.script_word())
                    .arg(rules.touch.script_word())
                    .arg(rules.victim.script_word())
                    .arg(settings.maxsize)
                    .arg(ttl_ms(settings))
                    .arg(flag(settings.slide))
                    .arg(entry_ttl.map_or(0, saturating_millis))
                    .arg(keep.map_or(0, saturating_millis))
                    .arg(release.unwrap_or_default());
                single(inv, ReplyShape::Stored)
            }
            StoreOp::Lease {
                structure,
                member,
                token,
                hold,
            } => {
                let mut inv = LEASE.prepare_invoke();
                inv.key(structure.lease_key(&member))
                    .arg(token)
                    .arg(hold.map_or(0, saturating_millis));
                single(inv, ReplyShape::Flag)
            }
            StoreOp::Peek { structure, member } => {
                let mut inv = PEEK.prepare_invoke();
                inv.key(&structure.values).arg(&member[..]);
                single(inv, ReplyShape::Flag)
            }
            StoreOp::Remove { structure, member } => {
                let mut inv = REMOVE.prepare_invoke();
                keys(&mut inv, &structure);
                inv.arg(&member[..]).arg(kind);
                single(inv, ReplyShape::Flag)
            }
            StoreOp::Len => sweep(Sweep::Len, settings),
            StoreOp::Purge => sweep(Sweep::Purge, settings),
            // One structure, known by name: the purge script over just its three keys.
            StoreOp::PurgeStructure { structure } => State::Fixed {
                sweep: Sweep::Purge,
                structures: Some(vec![structure]),
            },
            StoreOp::Vacuum => sweep(Sweep::Vacuum, settings),
        };
        Plan {
            state,
            index_kind: kind,
            touched,
            diagnosing: None,
        }
    }

    /// Advances the plan with the outcome of the previous request (`None` at the start).
    pub(crate) fn step(&mut self, reply: Option<redis::RedisResult<Value>>) -> Result<Step, Error> {
        match reply {
            Some(Err(e)) => self.on_error(e),
            Some(Ok(types)) if self.diagnosing.is_some() => Err(self.diagnosis(types)),
            Some(Ok(value)) => self.advance(Some(value)),
            None => self.advance(None),
        }
    }

    /// A script failed. A wrong-type failure is worth one more round trip: ask the type of
    /// each key involved, so that the error can name the culprit.
    fn on_error(&mut self, e: redis::RedisError) -> Result<Step, Error> {
        if e.code() != Some("WRONGTYPE") || self.diagnosing.is_some() || self.touched.is_empty() {
            return Err(Error::from_redis(e));
        }
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
            State::Single(request, shape) => match (request.take(), reply) {
                (Some(request), _) => Ok(Step::Send(request)),
                (None, Some(reply)) => parse(*shape, reply).map(Step::Done),
                (None, None) => Err(protocol("a reply was expected")),
            },
            State::Fixed { sweep, structures } => match (structures.take(), reply) {
                (Some(structures), _) => {
                    let request = sweep_request(*sweep, kind, &structures);
                    self.touched = structures;
                    Ok(Step::Send(request))
                }
                (None, Some(reply)) => Ok(Step::Done(StoreReply::Count(count(reply)?))),
                (None, None) => Err(protocol("a reply was expected")),
            },
            State::Scan {
                sweep,
                pattern,
                next_cursor,
                awaiting_script,
                seen,
                total,
                started,
            } => {
                if !*started {
                    *started = true;
                    return Ok(Step::Send(scan(0, pattern)));
                }
                let reply = reply.ok_or_else(|| protocol("a reply was expected"))?;
                if *awaiting_script {
                    *awaiting_script = false;
                    *total += count(reply)?;
                } else {
                    let (cursor, keys): (u64, Vec<String>) = redis::from_redis_value(reply)
                        .map_err(|e| protocol(&format!("bad SCAN reply: {e}")))?;
                    *next_cursor = Some(cursor);
                    let fresh: Vec<Structure> = keys
                        .into_iter()
                        .filter(|k| seen.insert(k.clone()))
                        .filter_map(|k| Structure::from_index_key(&k))
                        .collect();
                    if !fresh.is_empty() {
                        *awaiting_script = true;
                        let request = sweep_request(*sweep, kind, &fresh);
                        self.touched = fresh;
                        return Ok(Step::Send(request));
                    }
                }
                match next_cursor.take() {
                    Some(0) | None => Ok(Step::Done(StoreReply::Count(*total))),
                    Some(cursor) => Ok(Step::Send(scan(cursor, pattern))),
                }
            }
        }
    }
}

fn sweep(sweep: Sweep, settings: &StoreSettings) -> State {
    match settings.naming.fixed_structures() {
        Some(structures) => State::Fixed {
            sweep,
            structures: Some(structures),
        },
        None => State::Scan {
            sweep,
            pattern: settings.naming.scan_pattern(),
            next_cursor: None,
            awaiting_script: false,
            seen: HashSet::new(),
            total: 0,
            started: false,
        },
    }
}

fn keys(inv: &mut ScriptInvocation<'static>, s: &Structure) {
    inv.key(&s.index).key(&s.values).key(&s.expiry);
}

fn sweep_request(sweep: Sweep, kind: &str, structures: &[Structure]) -> Request {
    let mut inv = sweep.script().prepare_invoke();
    for s in structures {
        keys(&mut inv, s);
    }
    inv.arg(kind);
    Request::Script(inv)
}

fn scan(cursor: u64, pattern: &str) -> Request {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT);
    Request::Cmd(cmd)
}

fn ttl_ms(settings: &StoreSettings) -> u64 {
    settings.ttl.map_or(0, saturating_millis)
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
                entry: Some(entry),
            });
        }
        Value::Array(parts) => parts,
        other => return Err(protocol(&format!("expected a lookup, got {other:?}"))),
    };
    let mut parts = parts.into_iter();
    let (state, lease, entry) = (parts.next(), parts.next(), parts.next());
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
        Some(Value::BulkString(bytes)) => Some(bytes),
        // Lua's false arrives as nil.
        Some(Value::Nil) | None => None,
        Some(other) => return Err(protocol(&format!("expected an entry, got {other:?}"))),
    };
    Ok(Lookup {
        freshness,
        lease,
        entry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{Layout, Naming};
    use crate::policy::Policy;

    fn settings(layout: Layout) -> StoreSettings {
        StoreSettings {
            rules: Policy::Lru.rules(),
            maxsize: 3,
            ttl: None,
            slide: true,
            naming: Naming::new("p:", "n", Policy::Lru, layout),
        }
    }

    #[test]
    fn a_get_is_one_script_call_then_its_reply() {
        let s = settings(Layout::Shared);
        let op = StoreOp::Get {
            structure: s.naming.structure("f"),
            member: [7; 16],
            refresh_after: None,
            lease: None,
        };
        let mut plan = Plan::new(op, &s);
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
    fn purging_one_structure_is_one_purge_script_over_its_three_keys() {
        let s = settings(Layout::PerFunction);
        let structure = s.naming.structure("f");
        let mut plan = Plan::new(StoreOp::PurgeStructure { structure }, &s);
        let Step::Send(Request::Script(invocation)) = plan.step(None).unwrap() else {
            panic!("a script call was expected");
        };
        let rendered = format!("{invocation:?}");
        assert!(rendered.contains("-- purge.lua"), "the purge script");
        assert!(
            rendered.ends_with("args: 1, keys: 3 }"),
            "three keys (index, values, expiry) and the index kind"
        );
        let done = plan.step(Some(Ok(Value::Int(4)))).unwrap();
        assert!(matches!(done, Step::Done(StoreReply::Count(4))));
    }

    #[test]
    fn per_function_len_scans_until_cursor_zero_and_skips_repeats() {
        let s = settings(Layout::PerFunction);
        let mut plan = Plan::new(StoreOp::Len, &s);
        assert!(matches!(
            plan.step(None).unwrap(),
            Step::Send(Request::Cmd(_))
        ));
        let batch = |cursor: &str, keys: &[&str]| {
            Value::Array(vec![
                Value::BulkString(cursor.as_bytes().to_vec()),
                Value::Array(
                    keys.iter()
                        .map(|k| Value::BulkString(k.as_bytes().to_vec()))
                        .collect(),
                ),
            ])
        };
        // First batch finds one structure: a script call counts it.
        let step = plan
            .step(Some(Ok(batch("5", &["p:n:lru-m:f#x:0"]))))
            .unwrap();
        assert!(matches!(step, Step::Send(Request::Script(_))));
        let step = plan.step(Some(Ok(Value::Int(2)))).unwrap();
        assert!(matches!(step, Step::Send(Request::Cmd(_))));
        // The same key again (SCAN may repeat) is not counted twice.
        let step = plan
            .step(Some(Ok(batch("0", &["p:n:lru-m:f#x:0"]))))
            .unwrap();
        assert!(matches!(step, Step::Done(StoreReply::Count(2))));
    }
}
