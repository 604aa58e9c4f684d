//! The embedded store: the same structures, policies, scores and TTLs as the Redis scripts,
//! kept in process memory.
//!
//! It is both the default store and the reference model that the property tests hold Redis
//! against, so every branch here mirrors a line of the scripts in `redis/scripts/`. Where Redis
//! orders by `(score, member bytes)`, so does this store.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use super::{StoreOp, StoreReply, StoreSettings};
use crate::clock::{Clock, saturating_micros};
use crate::codec::Entry;
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
    /// Structures by index key name.
    structures: Mutex<HashMap<String, MemStructure>>,
}

/// One structure: index, values, expiry times, and the structure's own deadline.
#[derive(Debug)]
struct MemStructure {
    /// Microseconds after which the whole structure is gone (`None`: no TTL).
    deadline_us: Option<u64>,
    index: Index,
    values: HashMap<Member, Vec<u8>>,
    /// `(expire_at_us, member)`, ordered as Redis orders a sorted set.
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

    fn is_entry_expired(bytes: &[u8], now: u64) -> bool {
        Entry::parse(bytes).is_some_and(|e| e.is_expired(now))
    }
}

/// Time in microseconds, but always above the highest score (as `time_score` in the scripts):
/// uses within one microsecond still order as they happened.
fn time_score(index: &Index, now: u64) -> u64 {
    match index.top() {
        Some((top, _)) if top >= now => top + 1,
        _ => now,
    }
}

impl MemoryStore {
    pub(crate) fn new(settings: StoreSettings, clock: Arc<dyn Clock>) -> MemoryStore {
        MemoryStore {
            clock,
            settings,
            structures: Mutex::new(HashMap::new()),
        }
    }

    /// Carries out one op; the embedded store cannot fail.
    pub(crate) fn apply(&self, op: StoreOp) -> StoreReply {
        let now = self.clock.now_micros();
        let mut all = self.structures.lock().unwrap_or_else(|e| e.into_inner());
        // Structures whose TTL passed are gone, as Redis keys would be.
        all.retain(|_, s| s.deadline_us.is_none_or(|d| now <= d));
        match op {
            StoreOp::Get { structure, member } => {
                StoreReply::Entry(self.get(&mut all, &structure, member, now))
            }
            StoreOp::Put {
                structure,
                member,
                head,
                payload,
                entry_ttl,
            } => {
                let expire = entry_ttl.map(|t| now.saturating_add(saturating_micros(t)));
                let entry = Entry::assemble(head, now, expire.unwrap_or(0), &payload);
                self.put(&mut all, &structure, member, entry, expire, now)
            }
            StoreOp::Peek { structure, member } => StoreReply::Flag(
                all.get(&structure.index)
                    .and_then(|s| s.values.get(&member))
                    .is_some_and(|v| !MemStructure::is_entry_expired(v, now)),
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

    fn slide(&self, s: &mut MemStructure, now: u64) {
        if let Some(ttl) = self.settings.ttl {
            s.deadline_us = Some(now.saturating_add(saturating_micros(ttl)));
        }
    }

    fn touch(&self, s: &mut MemStructure, member: Member, now: u64) {
        match self.settings.rules.touch {
            TouchRule::None => {}
            TouchRule::Counter => {
                let top = s.index.top();
                if top.map(|(_, m)| m) != Some(member) {
                    s.index
                        .set_score(member, top.map_or(0, |(score, _)| score) + 1);
                }
            }
            TouchRule::Time => s.index.set_score(member, time_score(&s.index, now)),
            TouchRule::Increment => {
                let score = s.index.score(&member).unwrap_or(0) + 1;
                s.index.set_score(member, score);
            }
        }
    }

    fn get(
        &self,
        all: &mut HashMap<String, MemStructure>,
        structure: &Structure,
        member: Member,
        now: u64,
    ) -> Option<Vec<u8>> {
        let s = all.get_mut(&structure.index)?;
        let entry = s.values.get(&member)?.clone();
        if MemStructure::is_entry_expired(&entry, now) {
            s.remove_entry(&member);
            if s.values.is_empty() {
                all.remove(&structure.index);
            }
            return None;
        }
        self.touch(s, member, now);
        if self.settings.slide {
            self.slide(s, now);
        }
        Some(entry)
    }

    fn put(
        &self,
        all: &mut HashMap<String, MemStructure>,
        structure: &Structure,
        member: Member,
        entry: Vec<u8>,
        expire: Option<u64>,
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
                InsertRule::Time => time_score(&s.index, now),
                InsertRule::One | InsertRule::Set => 1,
            };
            s.index.set_score(member, score);
        }
        s.set_expiry(member, expire);
        s.values.insert(member, entry);
        if self.settings.slide || is_new {
            self.slide(s, now);
        }
        StoreReply::Stored { evicted, reclaimed }
    }
}
