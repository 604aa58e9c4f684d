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
use crate::store::{StoreOp, StoreReply, StoreSettings};

/// Keys returned per SCAN round trip (a hint to the server).
const SCAN_COUNT: usize = 512;

macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("scripts/prelude.lua"),
                include_str!($file)
            ))
        })
    };
}

static GET: LazyLock<Script> = script!("scripts/get.lua");
static PUT: LazyLock<Script> = script!("scripts/put.lua");
static PEEK: LazyLock<Script> = script!("scripts/peek.lua");
static REMOVE: LazyLock<Script> = script!("scripts/remove.lua");
static LEN: LazyLock<Script> = script!("scripts/len.lua");
static PURGE: LazyLock<Script> = script!("scripts/purge.lua");
static VACUUM: LazyLock<Script> = script!("scripts/vacuum.lua");

/// One request for a driver to send.
#[derive(Debug)]
pub(crate) enum Request {
    /// EVALSHA, with a script load and retry on NOSCRIPT.
    Script(ScriptInvocation<'static>),
    /// A plain command.
    Cmd(redis::Cmd),
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
    Entry,
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
}

impl Plan {
    /// Plans `op` for a cache with `settings`.
    pub(crate) fn new(op: StoreOp, settings: &StoreSettings) -> Plan {
        let rules = settings.rules;
        let kind = rules.index.script_word();
        let single = |request, shape| State::Single(Some(Request::Script(request)), shape);
        let state = match op {
            StoreOp::Get { structure, member } => {
                let mut inv = GET.prepare_invoke();
                keys(&mut inv, &structure);
                inv.arg(&member[..])
                    .arg(rules.touch.script_word())
                    .arg(kind)
                    .arg(ttl_ms(settings))
                    .arg(flag(settings.slide));
                single(inv, ReplyShape::Entry)
            }
            StoreOp::Put {
                structure,
                member,
                head,
                payload,
                entry_ttl,
            } => {
                let mut inv = PUT.prepare_invoke();
                keys(&mut inv, &structure);
                inv.arg(&member[..])
                    .arg(&head[..])
                    .arg(payload)
                    .arg(rules.insert.script_word())
                    .arg(rules.touch.script_word())
                    .arg(rules.victim.script_word())
                    .arg(settings.maxsize)
                    .arg(ttl_ms(settings))
                    .arg(flag(settings.slide))
                    .arg(entry_ttl.map_or(0, saturating_millis));
                single(inv, ReplyShape::Stored)
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
        }
    }

    /// Advances the plan with the reply to the previous request (`None` at the start).
    pub(crate) fn step(&mut self, reply: Option<Value>) -> Result<Step, Error> {
        let kind = self.index_kind;
        match &mut self.state {
            State::Single(request, shape) => match (request.take(), reply) {
                (Some(request), _) => Ok(Step::Send(request)),
                (None, Some(reply)) => parse(*shape, reply).map(Step::Done),
                (None, None) => Err(protocol("a reply was expected")),
            },
            State::Fixed { sweep, structures } => match (structures.take(), reply) {
                (Some(structures), _) => Ok(Step::Send(sweep_request(*sweep, kind, &structures))),
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
                        return Ok(Step::Send(sweep_request(*sweep, kind, &fresh)));
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
        ReplyShape::Entry => match reply {
            Value::Nil => Ok(StoreReply::Entry(None)),
            Value::BulkString(bytes) => Ok(StoreReply::Entry(Some(bytes))),
            other => Err(protocol(&format!("expected an entry, got {other:?}"))),
        },
        ReplyShape::Stored => {
            let (evicted, reclaimed): (u64, u64) = redis::from_redis_value(reply)
                .map_err(|e| protocol(&format!("expected a put result: {e}")))?;
            Ok(StoreReply::Stored { evicted, reclaimed })
        }
        ReplyShape::Flag => Ok(StoreReply::Flag(count(reply)? != 0)),
    }
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
        };
        let mut plan = Plan::new(op, &s);
        assert!(matches!(
            plan.step(None).unwrap(),
            Step::Send(Request::Script(_))
        ));
        let done = plan.step(Some(Value::Nil)).unwrap();
        assert!(matches!(done, Step::Done(StoreReply::Entry(None))));
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
        let done = plan.step(Some(Value::Int(4))).unwrap();
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
        let step = plan.step(Some(batch("5", &["p:n:lru-m:f#x:0"]))).unwrap();
        assert!(matches!(step, Step::Send(Request::Script(_))));
        let step = plan.step(Some(Value::Int(2))).unwrap();
        assert!(matches!(step, Step::Send(Request::Cmd(_))));
        // The same key again (SCAN may repeat) is not counted twice.
        let step = plan.step(Some(batch("0", &["p:n:lru-m:f#x:0"]))).unwrap();
        assert!(matches!(step, Step::Done(StoreReply::Count(2))));
    }
}
