//! The embedded store: the same structures, policies, scores and TTLs as the Redis scripts,
//! kept in process memory.
//!
//! It is both the default store and the reference model that the property tests hold Redis
//! against, so every branch here mirrors a line of the scripts in `redis/scripts/`. Where Redis
//! orders by `(score, member bytes)`, so does this store.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{
    Freshness, LeaseRequest, LeaseState, Lookup, StoreOp, StoreReply, StoreSettings, Token,
};
use crate::clock::Clock;
use crate::codec::{Entry, Times};
use crate::duration::{store_micros, store_millis};
use crate::key::Member;
use crate::layout::Structure;
use crate::policy::{IndexKind, InsertRule, TouchRule, VictimRule};

/// How many expired entries one put reclaims before evicting live ones (as `put.lua`).
const RECLAIM_BATCH: usize = 128;

/// The embedded store of one cache.
#[derive(Debug)]
pub(crate) struct MemoryStore {
    clock: Arc<dyn Clock>,
    settings: StoreSettings,
    state: Mutex<State>,
}

/// Everything behind the store's lock.
#[derive(Debug, Default)]
struct State {
    /// Structures by index key name.
    structures: HashMap<String, MemStructure>,
    /// The time of the previous op: every op sees a later time, as every Redis script sees a
    /// later `TIME` than the one before (scripts run one at a time and take over a
    /// microsecond), so time scores order ops exactly as they happened.
    last_us: u64,
    /// Leases by key: holder and end time. A held-back lease (after a failed recomputation)
    /// is `!` and the token, as in `lease.lua`.
    leases: HashMap<String, (Token, u64)>,
}

impl State {
    /// As `take_lease` in `prelude.lua`.
    fn take_lease(&mut self, key: String, request: &LeaseRequest, now: u64) -> LeaseState {
        match self.leases.get(&key) {
            Some((holder, until)) if *until > now => {
                if *holder == request.token {
                    LeaseState::Mine
                } else if holder.starts_with('!') {
                    LeaseState::Throttled
                } else {
                    LeaseState::Theirs
                }
            }
            _ => {
                let until = now.saturating_add(store_micros(request.ttl));
                self.leases.insert(key, (request.token.clone(), until));
                LeaseState::Mine
            }
        }
    }

    /// True when `token` holds the lease at `key` (an expired lease is nobody's).
    fn holds(&self, key: &str, token: &str, now: u64) -> bool {
        self.leases
            .get(key)
            .is_some_and(|(held, until)| held == token && *until > now)
    }
}

/// One structure: index, values, expiry times, and the structure's own deadline.
#[derive(Debug)]
struct MemStructure {
    /// Microseconds after which the whole structure is gone (`None`: no TTL).
    deadline_us: Option<u64>,
    index: Index,
    values: HashMap<Member, Vec<u8>>,
    /// `(keep_until_us, member)`: when entries are deleted, ordered as Redis orders a
    /// sorted set.
    expiry: BTreeSet<(u64, Member)>,
    expiry_of: HashMap<Member, u64>,
}

/// A sorted set (`score, member` order) or a plain set.
#[derive(Debug)]
enum Index {
    Sorted {
        order: BTreeSet<(u64, Member)>,
        score_of: HashMap<Member, u64>,
    },
    Set {
        members: Vec<Member>,
        position: HashMap<Member, usize>,
    },
}

impl Index {
    fn new(kind: IndexKind) -> Index {
        match kind {
            IndexKind::Sorted => Index::Sorted {
                order: BTreeSet::new(),
                score_of: HashMap::new(),
            },
            IndexKind::Set => Index::Set {
                members: Vec::new(),
                position: HashMap::new(),
            },
        }
    }

    fn len(&self) -> usize {
        match self {
            Index::Sorted { score_of, .. } => score_of.len(),
            Index::Set { members, .. } => members.len(),
        }
    }

    fn top(&self) -> Option<(u64, Member)> {
        match self {
            Index::Sorted { order, .. } => order.last().copied(),
            Index::Set { .. } => None,
        }
    }

    /// ZADD / SADD.
    fn set_score(&mut self, member: Member, score: u64) {
        match self {
            Index::Sorted { order, score_of } => {
                if let Some(old) = score_of.insert(member, score) {
                    order.remove(&(old, member));
                }
                order.insert((score, member));
            }
            Index::Set { members, position } => {
                if let std::collections::hash_map::Entry::Vacant(slot) = position.entry(member) {
                    slot.insert(members.len());
                    members.push(member);
                }
            }
        }
    }

    fn score(&self, member: &Member) -> Option<u64> {
        match self {
            Index::Sorted { score_of, .. } => score_of.get(member).copied(),
            Index::Set { .. } => None,
        }
    }

    /// ZREM / SREM.
    fn remove(&mut self, member: &Member) {
        match self {
            Index::Sorted { order, score_of } => {
                if let Some(old) = score_of.remove(member) {
                    order.remove(&(old, *member));
                }
            }
            Index::Set { members, position } => {
                if let Some(at) = position.remove(member) {
                    members.swap_remove(at);
                    if let Some(moved) = members.get(at) {
                        position.insert(*moved, at);
                    }
                }
            }
        }
    }

    /// ZPOPMIN / ZPOPMAX / SPOP.
    fn pop(&mut self, victim: VictimRule) -> Option<Member> {
        let member = match (&*self, victim) {
            (Index::Sorted { order, .. }, VictimRule::Highest) => order.last().map(|(_, m)| *m),
            (Index::Sorted { order, .. }, _) => order.first().map(|(_, m)| *m),
            (Index::Set { members, .. }, _) if !members.is_empty() => {
                members.get(fastrand::usize(..members.len())).copied()
            }
            (Index::Set { .. }, _) => None,
        }?;
        self.remove(&member);
        Some(member)
    }
}

impl MemStructure {
    fn new(kind: IndexKind) -> MemStructure {
        MemStructure {
            deadline_us: None,
            index: Index::new(kind),
            values: HashMap::new(),
            expiry: BTreeSet::new(),
            expiry_of: HashMap::new(),
        }
    }

    fn remove_entry(&mut self, member: &Member) -> Option<Vec<u8>> {
        self.index.remove(member);
        if let Some(at) = self.expiry_of.remove(member) {
            self.expiry.remove(&(at, *member));
        }
        self.values.remove(member)
    }

    fn set_expiry(&mut self, member: Member, at: Option<u64>) {
        if let Some(old) = self.expiry_of.remove(&member) {
            self.expiry.remove(&(old, member));
        }
        if let Some(at) = at {
            self.expiry_of.insert(member, at);
            self.expiry.insert((at, member));
        }
    }

    fn expired_count(&self, now: u64) -> usize {
        self.expiry.range(..=(now, [u8::MAX; 16])).count()
    }

    fn live_count(&self, now: u64) -> u64 {
        self.index.len().saturating_sub(self.expired_count(now)) as u64
    }

    fn expired_members(&self, now: u64, limit: usize) -> Vec<Member> {
        self.expiry
            .range(..=(now, [u8::MAX; 16]))
            .take(limit)
            .map(|(_, m)| *m)
            .collect()
    }

    /// False once the structure's own TTL has passed.
    fn is_alive(&self, now: u64) -> bool {
        self.deadline_us.is_none_or(|d| now <= d)
    }

    fn is_entry_expired(bytes: &[u8], now: u64) -> bool {
        Entry::parse(bytes).is_some_and(|e| e.is_expired(now))
    }
}

/// The timestamps of an entry written at `now` (as `put.lua`): durations count in whole
/// milliseconds, as Redis receives them. The entry is served normally until its entry TTL and
/// kept as a fallback until `keep` (max_stale) when that is longer; without an entry TTL,
/// `keep` is its lifetime, so that no value older than `max_stale` is ever served.
fn entry_times(now: u64, entry_ttl: Option<Duration>, keep: Option<Duration>) -> Times {
    let (ttl_us, keep_us) = (
        entry_ttl.map_or(0, store_micros),
        keep.map_or(0, store_micros),
    );
    let (expire, keep_until) = match (ttl_us, keep_us) {
        (0, 0) => (0, 0),
        (0, keep) => (now.saturating_add(keep), now.saturating_add(keep)),
        (ttl, keep) => (now.saturating_add(ttl), now.saturating_add(ttl.max(keep))),
    };
    Times {
        written_at_us: now,
        expire_at_us: expire,
        keep_until_us: keep_until,
    }
}

impl MemoryStore {
    pub(crate) fn new(settings: StoreSettings, clock: Arc<dyn Clock>) -> MemoryStore {
        MemoryStore {
            clock,
            settings,
            state: Mutex::new(State::default()),
        }
    }

    /// Carries out one op; the embedded store cannot fail.
    pub(crate) fn apply(&self, op: StoreOp) -> StoreReply {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now_micros().max(state.last_us + 1);
        state.last_us = now;
        state.leases.retain(|_, (_, until)| *until > now);
        let State {
            structures: all,
            leases: _,
            ..
        } = &mut *state;
        // Structures whose TTL passed are gone, as Redis keys would be: the one this op
        // touches, or all of them for whole-cache ops.
        match &op {
            StoreOp::Get { structure, .. }
            | StoreOp::Put { structure, .. }
            | StoreOp::Peek { structure, .. }
            | StoreOp::Expire { structure, .. }
            | StoreOp::Remove { structure, .. }
            | StoreOp::Lease { structure, .. }
            | StoreOp::PurgeStructure { structure } => {
                if all.get(&structure.index).is_some_and(|s| !s.is_alive(now)) {
                    all.remove(&structure.index);
                }
            }
            StoreOp::Len | StoreOp::Purge | StoreOp::Vacuum => all.retain(|_, s| s.is_alive(now)),
        }
        match op {
            StoreOp::Get {
                structure,
                member,
                refresh_after,
                lease,
            } => {
                let (freshness, entry) = self.get(all, &structure, member, refresh_after, now);
                let lease = match (&lease, freshness) {
                    (None, _) | (_, Freshness::Fresh) => LeaseState::NotAsked,
                    (Some(request), _) => {
                        state.take_lease(structure.lease_key(&member), request, now)
                    }
                };
                StoreReply::Looked(Lookup {
                    freshness,
                    lease,
                    entry,
                })
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
                let times = entry_times(now, entry_ttl, keep);
                let entry = Entry::assemble(head, times, &payload);
                let keep_until = (times.keep_until_us != 0).then_some(times.keep_until_us);
                let reply = self.put(all, &structure, member, entry, keep_until, now);
                if let Some(token) = release {
                    let key = structure.lease_key(&member);
                    if state.holds(&key, &token, now) {
                        state.leases.remove(&key);
                    }
                }
                reply
            }
            StoreOp::Lease {
                structure,
                member,
                token,
                hold,
            } => {
                let key = structure.lease_key(&member);
                if !state.holds(&key, &token, now) {
                    return StoreReply::Flag(false);
                }
                match hold {
                    Some(hold) => {
                        let until = now.saturating_add(store_micros(hold));
                        state.leases.insert(key, (format!("!{token}"), until));
                    }
                    None => {
                        state.leases.remove(&key);
                    }
                }
                StoreReply::Flag(true)
            }
            StoreOp::Peek { structure, member } => StoreReply::Flag(
                all.get(&structure.index)
                    .and_then(|s| s.values.get(&member))
                    .is_some_and(|v| !MemStructure::is_entry_expired(v, now)),
            ),
            // As `expire.lua`: only a live entry is marked; its keep_until (and so its place
            // in the expiry index) stays.
            StoreOp::Expire { structure, member } => StoreReply::Flag(
                all.get_mut(&structure.index)
                    .and_then(|s| s.values.get_mut(&member))
                    .is_some_and(|entry| {
                        Entry::parse(entry).is_some_and(|e| !e.is_gone(now) && !e.is_expired(now))
                            && Entry::set_expire_at(entry, now)
                    }),
            ),
            StoreOp::Remove { structure, member } => {
                let Some(s) = all.get_mut(&structure.index) else {
                    return StoreReply::Flag(false);
                };
                let removed = s.remove_entry(&member);
                if s.values.is_empty() {
                    all.remove(&structure.index);
                }
                StoreReply::Flag(removed.is_some_and(|v| !MemStructure::is_entry_expired(&v, now)))
            }
            StoreOp::Len => StoreReply::Count(all.values().map(|s| s.live_count(now)).sum()),
            StoreOp::Purge => {
                let live = all.values().map(|s| s.live_count(now)).sum();
                all.clear();
                StoreReply::Count(live)
            }
            StoreOp::PurgeStructure { structure } => StoreReply::Count(
                all.remove(&structure.index)
                    .map_or(0, |s| s.live_count(now)),
            ),
            StoreOp::Vacuum => {
                let mut total = 0;
                for s in all.values_mut() {
                    for m in s.expired_members(now, usize::MAX) {
                        s.remove_entry(&m);
                        total += 1;
                    }
                }
                all.retain(|_, s| !s.values.is_empty());
                StoreReply::Count(total)
            }
        }
    }

    /// Renews the structure TTL once it has run down by a step (as `slide` in `prelude.lua`:
    /// 1% of the TTL, at most a second).
    fn slide(&self, s: &mut MemStructure, now: u64) {
        let Some(ttl) = self.settings.ttl else {
            return;
        };
        let ttl_us = store_micros(ttl);
        let step_us = (store_millis(ttl) / 100).min(1000) * 1000;
        let remaining_us = s.deadline_us.map_or(0, |d| d.saturating_sub(now));
        if s.deadline_us.is_none() || ttl_us.saturating_sub(remaining_us) >= step_us {
            s.deadline_us = Some(now.saturating_add(ttl_us));
        }
    }

    /// A use of `member`, by the policy's touch rule (as `touch` in `prelude.lua`): the counter
    /// rule makes it the highest score unless it already is (only order matters).
    fn touch(&self, s: &mut MemStructure, member: Member, now: u64) {
        match self.settings.rules.touch {
            TouchRule::None => {}
            TouchRule::Counter => {
                let top = s.index.top();
                if top.map(|(_, m)| m) == Some(member) {
                    return;
                }
                s.index
                    .set_score(member, top.map_or(0, |(score, _)| score) + 1);
            }
            TouchRule::Time => s.index.set_score(member, now),
            TouchRule::Increment => {
                let score = s.index.score(&member).unwrap_or(0) + 1;
                s.index.set_score(member, score);
            }
        }
    }

    /// As `get.lua` (the lease is taken by the caller).
    fn get(
        &self,
        all: &mut HashMap<String, MemStructure>,
        structure: &Structure,
        member: Member,
        refresh_after: Option<Duration>,
        now: u64,
    ) -> (Freshness, Option<Vec<u8>>) {
        let Some(s) = all.get_mut(&structure.index) else {
            return (Freshness::Missing, None);
        };
        let Some(entry) = s.values.get(&member).cloned() else {
            return (Freshness::Missing, None);
        };
        let parsed = Entry::parse(&entry);
        if parsed.is_some_and(|e| e.is_gone(now)) {
            s.remove_entry(&member);
            if s.values.is_empty() {
                all.remove(&structure.index);
            }
            return (Freshness::Missing, None);
        }
        if parsed.is_some_and(|e| e.is_expired(now)) {
            return (Freshness::Expired, Some(entry));
        }
        self.touch(s, member, now);
        if self.settings.slide {
            self.slide(s, now);
        }
        let stale = match (refresh_after, parsed) {
            (Some(after), Some(e)) if !after.is_zero() => {
                now.saturating_sub(e.written_at_us) >= store_micros(after)
            }
            _ => false,
        };
        (
            if stale {
                Freshness::Stale
            } else {
                Freshness::Fresh
            },
            Some(entry),
        )
    }

    fn put(
        &self,
        all: &mut HashMap<String, MemStructure>,
        structure: &Structure,
        member: Member,
        entry: Vec<u8>,
        keep_until: Option<u64>,
        now: u64,
    ) -> StoreReply {
        let rules = self.settings.rules;
        let is_new = !all.contains_key(&structure.index);
        let s = all
            .entry(structure.index.clone())
            .or_insert_with(|| MemStructure::new(rules.index));
        let (mut evicted, mut reclaimed) = (0, 0);
        if s.values.contains_key(&member) {
            self.touch(s, member, now);
        } else {
            let maxsize = usize::try_from(self.settings.maxsize).unwrap_or(usize::MAX);
            if s.index.len() >= maxsize && !s.expiry.is_empty() {
                for m in s.expired_members(now, RECLAIM_BATCH) {
                    s.remove_entry(&m);
                    reclaimed += 1;
                }
            }
            while s.index.len() >= maxsize {
                let Some(victim) = s.index.pop(rules.victim) else {
                    break;
                };
                s.remove_entry(&victim);
                evicted += 1;
            }
            let score = match rules.insert {
                InsertRule::Counter => s.index.top().map_or(0, |(score, _)| score) + 1,
                InsertRule::Time => now,
                InsertRule::One | InsertRule::Set => 1,
            };
            s.index.set_score(member, score);
        }
        s.set_expiry(member, keep_until);
        s.values.insert(member, entry);
        if self.settings.slide || is_new {
            self.slide(s, now);
        }
        StoreReply::Stored { evicted, reclaimed }
    }
}
