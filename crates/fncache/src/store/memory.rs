//! The embedded store: the same structures, policies, scores and TTLs as the Redis scripts,
//! kept in process memory.
//!
//! It is both the default store and the reference model that the property tests hold Redis
//! against, so every branch here mirrors a line of the scripts in `redis/scripts/`. Where Redis
//! orders by `(score, member bytes)`, so does this store.

mod buffer;

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::sync::ShardedLock;
use std::time::Duration;

use crate::stripe::Padded;
use buffer::{Touch, Touches};

use super::{
    Freshness, LeaseRequest, LeaseState, Lookup, StoreOp, StoreReply, StoreSettings, Token,
};
use crate::clock::Clock;
use crate::codec::{Entry, Times};
use crate::duration::{store_micros, store_millis};
use crate::key::Member;
use crate::layout::Structure;
use crate::policy::{IndexKind, InsertRule, Rules, TinyLfuShape, TouchRule, VictimRule};

mod tinylfu;

/// How many expired entries one put reclaims before evicting live ones (as `put.lua`).
const RECLAIM_BATCH: usize = 128;

/// Op ticks per microsecond, as a shift: `1 << TICK_BITS` ops fit in one microsecond before
/// the op ticks run ahead of the clock (no store comes near; a microsecond holds a few).
const TICK_BITS: u32 = 10;

/// The microsecond of op tick `tick`: what its op judges times by (entry TTLs, freshness,
/// leases, structure TTLs) and writes into entries. Ticks order ops; microseconds, like
/// Redis's `TIME`, say when they ran (two ops in one microsecond share it).
fn micros(tick: u64) -> u64 {
    if tick == u64::MAX {
        u64::MAX // the end of time stays there
    } else {
        tick >> TICK_BITS
    }
}

/// The embedded store of one cache.
///
/// A hit that changes nothing but the policy's order (no lease to take, no expired entry to
/// delete, no structure TTL to slide) is served under the read side of the lock, and its use
/// is recorded in a striped buffer ([`buffer`]); every other op takes the write side and first
/// applies the recorded uses, in the order of their op times. So two threads hitting one
/// cache share the lock, and the policy's order is still exactly the one Redis keeps.
#[derive(Debug)]
pub(crate) struct MemoryStore {
    clock: Arc<dyn Clock>,
    settings: StoreSettings,
    /// A reader-writer lock sharded by thread: a hit takes the read side of its own thread's
    /// shard (a lock word on a line of its own), so two threads hitting one cache do not write
    /// a shared reader count; the write side takes every shard.
    state: ShardedLock<Box<State>>,
    /// The op tick of the previous op: every op takes a later tick, as every Redis script
    /// sees a later `TIME` than the one before (scripts run one at a time and take over a
    /// microsecond), so time scores (in ticks) order ops exactly as they happened. Hits under
    /// the read lock take theirs here too (an atomic of its own line), so ticks stay unique and
    /// rise in the real order of the ops. A tick is 1/1024 of a microsecond ([`TICK_BITS`]):
    /// unique microseconds ran ahead of the clock wherever the store served more than one op
    /// a microsecond (a busy thread does), and aged every entry faster than its TTL; ticks
    /// keep the op's microsecond, [`micros`], on the clock.
    last_tick: Padded<AtomicU64>,
    /// The uses of hits served under the read lock, not yet applied.
    touches: Touches,
    hash: KeyedHash,
    /// Tests: keep every sorted index as a tree, to check the chain against it.
    #[cfg(test)]
    force_tree: std::sync::atomic::AtomicBool,
    /// Tests: serve every op under the write lock (no buffered uses), the reference the
    /// buffered store is checked against.
    #[cfg(test)]
    locked_only: std::sync::atomic::AtomicBool,
}

/// Everything behind the store's lock.
#[derive(Debug)]
struct State {
    /// Structures by index key name.
    structures: Map<String, MemStructure>,
    /// The drained uses being applied (kept for its allocation).
    drained: Vec<Touch>,
    /// Leases by key: holder and end time. A held-back lease (after a failed recomputation)
    /// is `!` and the token, as in `lease.lua`.
    leases: HashMap<String, (Token, u64)>,
    /// By structure (index key): when a tag of it was last invalidated (in Redis, the `g`
    /// field of its tags hash), `None` when never but a tagged call looked it up (`g` 0: the
    /// invalidation stamps it even with no entry, see `get.lua`). Kept when the structure
    /// empties, as Redis keeps that field; one per structure, gone with a purge. An
    /// `Instant`, as a call notes when its computation began: the cache's clock (manual in
    /// tests) does not time computations.
    invalidated: HashMap<String, Option<std::time::Instant>>,
}

impl State {
    /// As `take_lease` in `prelude.lua`.
    fn take_lease(&mut self, key: String, request: &LeaseRequest, now: u64) -> LeaseState {
        match self.leases.get(&key) {
            Some((holder, until)) if *until > now => {
                if *holder == request.token() {
                    LeaseState::Mine
                } else if holder.starts_with('!') {
                    LeaseState::Throttled
                } else {
                    LeaseState::Theirs
                }
            }
            _ => {
                let until = now.saturating_add(store_micros(request.ttl));
                self.leases.insert(key, (request.token(), until));
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

/// A hasher for the store's maps, keyed at random per store.
///
/// Members are BLAKE3 output, uniform already, so SipHash's mixing is wasted on them (it was
/// a measurable part of a hit); one keyed multiply per 8 bytes spreads them as well. The random
/// key keeps callers who choose arguments from steering members into one bucket. Structure
/// names (a handful per cache) go through it too.
#[derive(Debug, Clone, Copy)]
struct KeyedHash {
    key: u64,
}

impl KeyedHash {
    fn new() -> KeyedHash {
        // Odd, so the multiply is a bijection.
        KeyedHash {
            key: fastrand::u64(..) | 1,
        }
    }
}

impl BuildHasher for KeyedHash {
    type Hasher = KeyedHasher;

    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher {
            state: self.key,
            key: self.key,
        }
    }
}

/// The hasher of [`KeyedHash`].
#[derive(Debug)]
struct KeyedHasher {
    state: u64,
    key: u64,
}

impl KeyedHasher {
    fn mix(&mut self, word: u64) {
        // A folded 64x64->128 multiply (as in foldhash and ahash).
        let product = u128::from(self.state ^ word) * u128::from(self.key);
        self.state = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for KeyedHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length tells `ab` + `\0` from `ab`.
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.mix(u64::from(byte));
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

type Map<K, V> = HashMap<K, V, KeyedHash>;

/// "No node" in a [`Chain`].
const NIL: usize = usize::MAX;

/// A doubly linked list of members in a slab (links are indices, so no `unsafe`): moving a
/// member to the back or unlinking it is O(1).
#[derive(Debug, Default)]
struct Chain {
    nodes: Vec<Node>,
    free: Vec<usize>,
    head: usize,
    tail: usize,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    member: Member,
    prev: usize,
    next: usize,
}

impl Chain {
    fn new() -> Chain {
        Chain {
            nodes: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
        }
    }

    fn member(&self, at: usize) -> Option<Member> {
        self.nodes.get(at).map(|n| n.member)
    }

    fn front(&self) -> Option<Member> {
        self.member(self.head)
    }

    fn back(&self) -> Option<Member> {
        self.member(self.tail)
    }

    fn set_next(&mut self, at: usize, next: usize) {
        match self.nodes.get_mut(at) {
            Some(node) => node.next = next,
            None => self.head = next,
        }
    }

    fn set_prev(&mut self, at: usize, prev: usize) {
        match self.nodes.get_mut(at) {
            Some(node) => node.prev = prev,
            None => self.tail = prev,
        }
    }

    fn link_back(&mut self, at: usize) {
        let tail = self.tail;
        if let Some(node) = self.nodes.get_mut(at) {
            node.prev = tail;
            node.next = NIL;
        }
        self.set_next(tail, at);
        self.tail = at;
    }

    fn unlink(&mut self, at: usize) {
        let Some(&Node { prev, next, .. }) = self.nodes.get(at) else {
            return;
        };
        self.set_next(prev, next);
        self.set_prev(next, prev);
    }

    /// Appends `member`; returns its node.
    fn push_back(&mut self, member: Member) -> usize {
        let node = Node {
            member,
            prev: NIL,
            next: NIL,
        };
        let at = match self.free.pop() {
            Some(at) => {
                if let Some(slot) = self.nodes.get_mut(at) {
                    *slot = node;
                }
                at
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        self.link_back(at);
        at
    }

    fn move_to_back(&mut self, at: usize) {
        if at != self.tail {
            self.unlink(at);
            self.link_back(at);
        }
    }

    fn remove(&mut self, at: usize) {
        self.unlink(at);
        self.free.push(at);
    }
}

/// Everything a structure keeps of one member, under one hash lookup.
#[derive(Debug)]
struct Slot {
    /// The stored entry (envelope with timestamps), shared with the lookups that return it.
    entry: Arc<Vec<u8>>,
    /// The member's score in a sorted index (unused in a plain set).
    score: u64,
    /// The member's node in a [`Chain`], or its position in a plain set.
    at: usize,
    /// When the entry is deleted (also in the structure's `expiry`), if ever.
    keep_until: Option<u64>,
}

/// One structure: index, values, expiry times, and the structure's own deadline.
#[derive(Debug)]
struct MemStructure {
    /// Unique in the process: a recorded use names its structure by it (a structure that was
    /// removed and made again is another one).
    id: u64,
    /// Microseconds after which the whole structure is gone (`None`: no TTL).
    deadline_us: Option<u64>,
    /// Entries, scores and expiry times by member (in Redis: the values hash, the index's
    /// scores and the expiry set's scores).
    slots: Map<Member, Slot>,
    /// The order of the index.
    order: Order,
    /// `(keep_until_us, member)`: when entries are deleted, ordered as Redis orders a
    /// sorted set.
    expiry: BTreeSet<(u64, Member)>,
    /// The tags of tagged entries (in Redis: the `:3` hash and the `:4` sorted set); `None`
    /// until a tagged entry is stored, so an untagged cache pays one branch per removal.
    tags: Option<Box<Tags>>,
}

/// A structure's tag bookkeeping: both directions, holding exactly the entries present.
#[derive(Debug, Default)]
struct Tags {
    of: HashMap<Member, Vec<String>>,
    members: HashMap<String, BTreeSet<Member>>,
}

impl Tags {
    /// Forgets `member`'s tags (a tag left without members goes too).
    fn untag(&mut self, member: &Member) {
        for tag in self.of.remove(member).unwrap_or_default() {
            if let Some(members) = self.members.get_mut(&tag) {
                members.remove(member);
                if members.is_empty() {
                    self.members.remove(&tag);
                }
            }
        }
    }
}

/// The order of a structure's index: Redis keeps a sorted set (`score, member` order) or a
/// plain set; this store keeps whatever answers the same questions soonest.
#[derive(Debug)]
enum Order {
    /// A sorted set in which every new or re-scored member takes a score above all others
    /// (scores from a counter one above the top, or the op's time, which rises strictly from
    /// op to op): scores never tie, and the list in the order of scoring *is* score order.
    /// LRU, LRU-T, FIFO, FIFO-T and MRU: every use O(1).
    Chain(Chain),
    /// A sorted set whose scores can tie and move down the order (LFU): `(score, member)`.
    Tree(BTreeSet<(u64, Member)>),
    /// A plain set (random eviction needs no scores).
    Set(Vec<Member>),
    /// W-TinyLFU's three segments and sketch; a member's score is its segment.
    TinyLfu(Box<tinylfu::TinyLfu>),
}

impl Order {
    fn new(rules: Rules, maxsize: u64) -> Order {
        match (rules.index, rules.insert, rules.touch) {
            (IndexKind::Set, ..) => Order::Set(Vec::new()),
            (_, InsertRule::Window, _) => {
                Order::TinyLfu(Box::new(tinylfu::TinyLfu::new(TinyLfuShape::new(maxsize))))
            }
            (
                IndexKind::Sorted,
                InsertRule::Counter | InsertRule::Time,
                TouchRule::None | TouchRule::Counter | TouchRule::Time,
            ) => Order::Chain(Chain::new()),
            (IndexKind::Sorted, ..) => Order::Tree(BTreeSet::new()),
        }
    }
}

impl MemStructure {
    fn new(rules: Rules, maxsize: u64, hash: KeyedHash) -> MemStructure {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        MemStructure {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            deadline_us: None,
            slots: HashMap::with_hasher(hash),
            order: Order::new(rules, maxsize),
            expiry: BTreeSet::new(),
            tags: None,
        }
    }

    fn len(&self) -> usize {
        self.slots.len()
    }

    /// The highest `(score, member)` of a sorted index.
    fn top(&self) -> Option<(u64, Member)> {
        let member = match &self.order {
            Order::Chain(chain) => chain.back()?,
            Order::Tree(tree) => return tree.last().copied(),
            Order::Set(_) | Order::TinyLfu(_) => return None,
        };
        self.slots.get(&member).map(|s| (s.score, member))
    }

    /// ZADD of a member that is there (SADD of one: nothing).
    fn rescore(&mut self, member: Member, score: u64) {
        let Some(slot) = self.slots.get_mut(&member) else {
            return;
        };
        match &mut self.order {
            // Only scores above all others reach a chain (see `Order::Chain`).
            Order::Chain(chain) => chain.move_to_back(slot.at),
            Order::Tree(tree) => {
                tree.remove(&(slot.score, member));
                tree.insert((score, member));
            }
            Order::Set(_) | Order::TinyLfu(_) => return,
        }
        slot.score = score;
    }

    /// ZADD / SADD of a new member, with its entry.
    fn insert(&mut self, member: Member, score: u64, entry: Arc<Vec<u8>>) {
        let at = match &mut self.order {
            Order::Chain(chain) => chain.push_back(member),
            Order::Tree(tree) => {
                tree.insert((score, member));
                0
            }
            Order::Set(members) => {
                members.push(member);
                members.len() - 1
            }
            // `score` is the segment.
            Order::TinyLfu(t) => t.push(score, member),
        };
        self.slots.insert(
            member,
            Slot {
                entry,
                score,
                at,
                keep_until: None,
            },
        );
    }

    /// ZPOPMIN / ZPOPMAX / SPOP (the entry goes too).
    fn pop(&mut self, victim: VictimRule) -> Option<Member> {
        let member = match (&self.order, victim) {
            (Order::Chain(chain), VictimRule::Highest) => chain.back(),
            (Order::Chain(chain), _) => chain.front(),
            (Order::Tree(tree), VictimRule::Highest) => tree.last().map(|(_, m)| *m),
            (Order::Tree(tree), _) => tree.first().map(|(_, m)| *m),
            (Order::Set(members), _) if !members.is_empty() => {
                members.get(fastrand::usize(..members.len())).copied()
            }
            (Order::Set(_), _) => None,
            // W-TinyLFU evicts by its own rules (`tinylfu_admit`).
            (Order::TinyLfu(_), _) => None,
        }?;
        self.remove_entry(&member);
        Some(member)
    }

    /// ZREM / SREM from the index, HDEL from the values, ZREM from the expiry set.
    fn remove_entry(&mut self, member: &Member) -> Option<Arc<Vec<u8>>> {
        let slot = self.slots.remove(member)?;
        match &mut self.order {
            Order::Chain(chain) => chain.remove(slot.at),
            Order::Tree(tree) => {
                tree.remove(&(slot.score, *member));
            }
            Order::Set(members) => {
                members.swap_remove(slot.at);
                if let Some(moved) = members.get(slot.at)
                    && let Some(moved) = self.slots.get_mut(moved)
                {
                    moved.at = slot.at;
                }
            }
            Order::TinyLfu(t) => t.unlink(slot.score, slot.at),
        }
        if let Some(at) = slot.keep_until {
            self.expiry.remove(&(at, *member));
        }
        if let Some(tags) = &mut self.tags {
            tags.untag(member);
        }
        Some(slot.entry)
    }

    /// Gives `member` (present) exactly `tags`, as `put.lua`: a re-put replaces its old tags.
    fn set_tags(&mut self, member: Member, tags: Vec<String>) {
        if tags.is_empty() && self.tags.is_none() {
            return;
        }
        let book = self.tags.get_or_insert_with(Box::default);
        book.untag(&member);
        if tags.is_empty() {
            return;
        }
        let mut unique = tags;
        unique.sort();
        unique.dedup();
        for tag in &unique {
            book.members.entry(tag.clone()).or_default().insert(member);
        }
        book.of.insert(member, unique);
    }

    /// The members tagged `tag`.
    fn tagged(&self, tag: &str) -> Vec<Member> {
        self.tags
            .as_ref()
            .and_then(|t| t.members.get(tag))
            .map(|m| m.iter().copied().collect())
            .unwrap_or_default()
    }

    fn set_expiry(&mut self, member: Member, at: Option<u64>) {
        let Some(slot) = self.slots.get_mut(&member) else {
            return;
        };
        if let Some(old) = std::mem::replace(&mut slot.keep_until, at) {
            self.expiry.remove(&(old, member));
        }
        if let Some(at) = at {
            self.expiry.insert((at, member));
        }
    }

    fn expired_count(&self, now: u64) -> usize {
        self.expiry.range(..=(now, [u8::MAX; 16])).count()
    }

    fn live_count(&self, now: u64) -> u64 {
        self.len().saturating_sub(self.expired_count(now)) as u64
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

/// What a lookup finds of a member at `now`, before it changes anything (as `get.lua`).
enum Found {
    /// No entry.
    Missing,
    /// An entry past its `keep_until`, which the lookup deletes.
    Gone,
    /// An entry past its entry TTL (a fail-safe fallback): not a use.
    Expired(Arc<Vec<u8>>),
    /// A live entry, stale or not: a use.
    Live { stale: bool, entry: Arc<Vec<u8>> },
}

impl Found {
    fn of(
        s: Option<&MemStructure>,
        member: &Member,
        refresh_after: Option<Duration>,
        now: u64,
    ) -> Found {
        let Some(entry) = s
            .and_then(|s| s.slots.get(member))
            .map(|slot| Arc::clone(&slot.entry))
        else {
            return Found::Missing;
        };
        let parsed = Entry::parse(&entry);
        if parsed.is_some_and(|e| e.is_gone(now)) {
            return Found::Gone;
        }
        if parsed.is_some_and(|e| e.is_expired(now)) {
            return Found::Expired(entry);
        }
        // An entry's own refresh time (format 2) replaces the lookup's refresh-after.
        let stale = match (refresh_after, parsed) {
            (_, Some(e)) if e.refresh_at_us != 0 => e.is_due(now),
            (Some(after), Some(e)) if !after.is_zero() => {
                now.saturating_sub(e.written_at_us) >= store_micros(after)
            }
            _ => false,
        };
        Found::Live { stale, entry }
    }
}

/// The timestamps of an entry written at `now` (as `put.lua`): durations count in whole
/// milliseconds, as Redis receives them. The entry is served normally until its entry TTL and
/// kept as a fallback until `keep` (max_stale) when that is longer; without an entry TTL,
/// `keep` is its lifetime, so that no value older than `max_stale` is ever served.
/// An entry with a refresh-after of its own goes stale that long after `now` (format 2).
fn entry_times(
    now: u64,
    entry_ttl: Option<Duration>,
    keep: Option<Duration>,
    refresh_ms: u64,
) -> Times {
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
        // Never 0 (which means none): `now` is past the epoch.
        refresh_at_us: if refresh_ms == 0 {
            0
        } else {
            now.saturating_add(refresh_ms.saturating_mul(1000))
        },
    }
}

impl MemoryStore {
    pub(crate) fn new(settings: StoreSettings, clock: Arc<dyn Clock>) -> MemoryStore {
        let hash = KeyedHash::new();
        MemoryStore {
            clock,
            settings,
            state: ShardedLock::new(Box::new(State {
                structures: HashMap::with_hasher(hash),
                drained: Vec::new(),
                leases: HashMap::new(),
                invalidated: HashMap::new(),
            })),
            last_tick: Padded(AtomicU64::new(0)),
            touches: Touches::new(),
            hash,
            #[cfg(test)]
            force_tree: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            locked_only: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The op tick after `last` for an op that read `clock` (ticks): later than the previous
    /// op's.
    fn next_time(clock: u64, last: u64) -> u64 {
        clock.max(last.saturating_add(1))
    }

    /// Takes the next op tick (under the write lock, or by a hit under the read lock): the
    /// later of `clock_us` (in ticks) and one past the previous op's, unique, and later than
    /// that of every op whose tick ended before this one began. A compare-and-swap: each
    /// success moves `last_tick` up to the value it claims for its op, so no two ops take one
    /// tick, and an op that ticks after another moves it after it, higher. (The clock, in
    /// ticks, is nearly always past the previous op's: one read-modify-write per op.)
    ///
    /// Why hits on every thread write this one line: a hit that follows another thread's hit
    /// (ordered only by memory outside the store, say a channel) must take a later tick, or a
    /// replay could order the two uses backwards; it can only learn the earlier hit's tick
    /// from memory that hit wrote, and a per-thread clock read by every thread would move as
    /// many lines. (`clock_us` cannot order them: two hits in one microsecond read the same
    /// value.)
    fn tick(&self, clock_us: u64) -> u64 {
        let clock = clock_us.saturating_mul(1 << TICK_BITS);
        let mut last = self.last_tick.0.load(Ordering::Relaxed);
        loop {
            // At the end of time (a manual clock advanced to it) ticks saturate there.
            let now = Self::next_time(clock, last);
            match self.last_tick.0.compare_exchange_weak(
                last,
                now,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return now,
                Err(seen) => last = seen,
            }
        }
    }

    /// Serves a lookup under the read lock when it changes nothing but the policy's order
    /// (recorded in the buffer). Otherwise (a lease to take, an entry or a structure past its
    /// time to delete, a structure TTL to renew: a sliding TTL is renewed once it has run down
    /// by a step, so most hits leave it as it is) the op goes on under the write lock, with
    /// the op time this lookup took if it took one.
    fn hit(&self, op: &StoreOp, clock: u64) -> Result<StoreReply, Option<u64>> {
        let StoreOp::Get {
            structure,
            member,
            refresh_after,
            lease,
            stamp: _,
        } = op
        else {
            return Err(None);
        };
        #[cfg(test)]
        if self.locked_only.load(Ordering::Relaxed) {
            return Err(None);
        }
        let state = self.read();
        let s = state.structures.get(&structure.index);
        // The time first (one read-modify-write of a line shared with other threads' hits),
        // then the judgement at it.
        let tick = self.tick(clock);
        let now = micros(tick);
        if s.is_some_and(|s| !s.is_alive(now)) {
            return Err(Some(tick));
        }
        let found = Found::of(s, member, *refresh_after, now);
        // A use that would renew the structure TTL writes: under the write lock.
        if self.settings.slide
            && matches!(found, Found::Live { .. })
            && s.is_some_and(|s| self.slide_due(s, now).is_some())
        {
            return Err(Some(tick));
        }
        let (freshness, entry) = match found {
            Found::Gone => return Err(Some(tick)),
            Found::Missing => (Freshness::Missing, None),
            Found::Expired(entry) => (Freshness::Expired, Some(entry)),
            Found::Live { stale: true, entry } => (Freshness::Stale, Some(entry)),
            Found::Live {
                stale: false,
                entry,
            } => (Freshness::Fresh, Some(entry)),
        };
        if lease.is_some() && freshness != Freshness::Fresh {
            return Err(Some(tick));
        }
        let used = matches!(freshness, Freshness::Fresh | Freshness::Stale);
        let recorded = match s {
            Some(s) if used && self.settings.rules.touch != TouchRule::None => {
                self.touches.record(Touch {
                    at: tick,
                    structure: s.id,
                    member: *member,
                })
            }
            _ => 0,
        };
        drop(state);
        if recorded >= buffer::STRIPE_CAPACITY {
            self.drain_soon(recorded);
        }
        Ok(StoreReply::Looked(Lookup {
            freshness,
            lease: LeaseState::NotAsked,
            entry,
            store_us: None,
        }))
    }

    /// The read side of the lock for a hit. A drain holds the write side for a few
    /// microseconds: the hit spins through it (`SPIN_READS` tries) rather than parking at
    /// once, since a parked thread is woken late on a busy machine (std's lock spins for about
    /// 100 rounds of `spin_loop` before it parks, shorter than a drain).
    fn read(&self) -> crossbeam_utils::sync::ShardedLockReadGuard<'_, Box<State>> {
        const SPIN_READS: usize = 2_000;
        for _ in 0..SPIN_READS {
            match self.state.try_read() {
                Ok(state) => return state,
                Err(std::sync::TryLockError::Poisoned(e)) => return e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => std::hint::spin_loop(),
            }
        }
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Drains the buffer after a hit that filled its stripe (holding `recorded` uses). Only if
    /// the write lock is free at once, while the stripe is below its hard bound: a hit that
    /// waited for another thread's hit to leave the read side would also hold up that
    /// thread's next hit behind it (the lock lets no reader in while a writer waits). The
    /// next hit tries again, and the next op under the write lock drains anyway.
    fn drain_soon(&self, recorded: usize) {
        let state = match self.state.try_write() {
            Ok(state) => Some(state),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) if recorded < buffer::STRIPE_BOUND => None,
            Err(std::sync::TryLockError::WouldBlock) => {
                Some(self.state.write().unwrap_or_else(|e| e.into_inner()))
            }
        };
        if let Some(mut state) = state {
            self.drain(&mut state);
        }
    }

    /// Applies the uses recorded by hits under the read lock, in the order of their times
    /// (the caller holds the write lock). Each is the use its hit would have made under the
    /// write lock, at its time: between two ops under the write lock, hits change nothing but
    /// the order, and what each answered did not depend on the order, so applying them now,
    /// in time order, leaves the order exactly as applying each at once would have.
    fn drain(&self, state: &mut State) {
        let mut drained = std::mem::take(&mut state.drained);
        self.touches.drain_into(&mut drained);
        if !drained.is_empty() {
            // By id, for a binary search (most caches have one structure or a few).
            let mut by_id: Vec<(u64, &mut MemStructure)> =
                state.structures.values_mut().map(|s| (s.id, s)).collect();
            by_id.sort_unstable_by_key(|(id, _)| *id);
            for touch in &drained {
                if let Ok(at) = by_id.binary_search_by_key(&touch.structure, |(id, _)| *id)
                    && let Some((_, s)) = by_id.get_mut(at)
                {
                    self.hit_use(s, touch.member, touch.at);
                }
            }
            drained.clear();
        }
        state.drained = drained;
    }

    /// Carries out one op; the embedded store cannot fail.
    pub(crate) fn apply(&self, op: StoreOp) -> StoreReply {
        // The clock is read before the lock is taken, to keep the critical section short (two
        // threads hitting one cache contend for nothing else); the time is still one that
        // passed during the op, and still later than the previous op's.
        let clock = self.clock.now_micros();
        let taken = match self.hit(&op, clock) {
            Ok(reply) => return reply,
            Err(taken) => taken,
        };
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        self.drain(&mut state);
        // A lookup sent on from the read lock keeps the time it took when no op took a later
        // one meanwhile: every op before it in time (every use drained) is before it, none
        // after. (So one op takes one time, as before, where nothing runs alongside.)
        let tick = match taken {
            Some(t) if self.last_tick.0.load(Ordering::Relaxed) == t => t,
            _ => self.tick(clock),
        };
        let now = micros(tick);
        if !state.leases.is_empty() {
            state.leases.retain(|_, (_, until)| *until > now);
        }
        let State {
            structures: all,
            invalidated,
            ..
        } = &mut **state;
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
            StoreOp::Len | StoreOp::Purge | StoreOp::Vacuum | StoreOp::InvalidateTag { .. } => {
                all.retain(|_, s| s.is_alive(now))
            }
        }
        match op {
            StoreOp::Get {
                structure,
                member,
                refresh_after,
                lease,
                stamp,
            } => {
                let (freshness, entry) =
                    self.get(all, &structure, member, refresh_after, tick);
                if stamp && freshness != Freshness::Fresh {
                    invalidated.entry(structure.index.clone()).or_insert(None);
                }
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
                    // The caller's clock is this store's: the call's own `Began` is exact.
                    store_us: None,
                })
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
                // As `put.lua`: a tagged value whose computation began before an invalidation
                // of the structure's tags is not stored (the lease is still released).
                let refused = tagged
                    .as_ref()
                    .and_then(|t| t.began)
                    .is_some_and(|began| {
                        invalidated
                            .get(&structure.index)
                            .is_some_and(|&at| at.is_some_and(|at| at >= began.local))
                    });
                if refused {
                    if let Some(token) = release {
                        let key = structure.lease_key(&member);
                        if state.holds(&key, &token, now) {
                            state.leases.remove(&key);
                        }
                    }
                    return StoreReply::Stored {
                        evicted: 0,
                        reclaimed: 0,
                    };
                }
                let times = entry_times(now, entry_ttl, keep, refresh_ms);
                let entry = Arc::new(Entry::assemble(head, times, &payload));
                let keep_until = (times.keep_until_us != 0).then_some(times.keep_until_us);
                let reply = self.put(all, &structure, member, entry, keep_until, tick);
                if let Some(s) = all.get_mut(&structure.index) {
                    s.set_tags(member, tagged.map(|t| t.tags).unwrap_or_default());
                }
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
                    .and_then(|s| s.slots.get(&member))
                    .is_some_and(|slot| !MemStructure::is_entry_expired(&slot.entry, now)),
            ),
            // As `expire.lua`: only a live entry is marked; its keep_until (and so its place
            // in the expiry index) stays.
            StoreOp::Expire { structure, member } => StoreReply::Flag(
                all.get_mut(&structure.index)
                    .and_then(|s| s.slots.get_mut(&member))
                    .is_some_and(|slot| {
                        Entry::parse(&slot.entry)
                            .is_some_and(|e| !e.is_gone(now) && !e.is_expired(now))
                            // Lookups may share the old bytes: they keep them, the slot
                            // gets its own marked copy.
                            && Entry::set_expire_at(Arc::make_mut(&mut slot.entry).as_mut_slice(), now)
                    }),
            ),
            StoreOp::Remove { structure, member } => {
                let Some(s) = all.get_mut(&structure.index) else {
                    return StoreReply::Flag(false);
                };
                let removed = s.remove_entry(&member);
                if s.slots.is_empty() {
                    all.remove(&structure.index);
                }
                StoreReply::Flag(removed.is_some_and(|v| !MemStructure::is_entry_expired(&v, now)))
            }
            StoreOp::Len => StoreReply::Count(all.values().map(|s| s.live_count(now)).sum()),
            StoreOp::Purge => {
                let live = all.values().map(|s| s.live_count(now)).sum();
                all.clear();
                invalidated.clear();
                StoreReply::Count(live)
            }
            StoreOp::PurgeStructure { structure } => {
                invalidated.remove(&structure.index);
                StoreReply::Count(
                    all.remove(&structure.index)
                        .map_or(0, |s| s.live_count(now)),
                )
            }
            StoreOp::Vacuum => {
                let mut total = 0;
                for s in all.values_mut() {
                    for m in s.expired_members(now, usize::MAX) {
                        s.remove_entry(&m);
                        total += 1;
                    }
                }
                all.retain(|_, s| !s.slots.is_empty());
                StoreReply::Count(total)
            }
            // As `invalidate_tag.lua`: every member of the tag goes, with its bookkeeping;
            // the live ones (not past their entry TTL) are counted, as `Remove` counts.
            StoreOp::InvalidateTag { tag } => {
                let mut total = 0;
                let instant = std::time::Instant::now();
                // Every structure Redis would find: those with entries, and those that keep
                // the time of an earlier invalidation.
                let fixed = self.settings.naming.fixed_structures().unwrap_or_default();
                for index in all.keys().chain(fixed.iter().map(|s| &s.index)) {
                    invalidated.insert(index.clone(), Some(instant));
                }
                for at in invalidated.values_mut() {
                    *at = Some(instant);
                }
                for s in all.values_mut() {
                    for m in s.tagged(&tag) {
                        if s.remove_entry(&m)
                            .is_some_and(|v| !MemStructure::is_entry_expired(&v, now))
                        {
                            total += 1;
                        }
                    }
                }
                all.retain(|_, s| !s.slots.is_empty());
                StoreReply::Count(total)
            }
        }
    }

    /// Renews the structure TTL once it has run down by a step (as `slide` in `prelude.lua`:
    /// 1% of the TTL, at most a second).
    fn slide(&self, s: &mut MemStructure, now: u64) {
        if let Some(ttl_us) = self.slide_due(s, now) {
            s.deadline_us = Some(now.saturating_add(ttl_us));
        }
    }

    /// The structure TTL (microseconds) when a slide at `now` renews it, `None` when it
    /// changes nothing: a hit in between needs no write for it.
    fn slide_due(&self, s: &MemStructure, now: u64) -> Option<u64> {
        let ttl = self.settings.ttl?;
        let ttl_us = store_micros(ttl);
        let step_us = (store_millis(ttl) / 100).min(1000) * 1000;
        let remaining_us = s.deadline_us.map_or(0, |d| d.saturating_sub(now));
        (s.deadline_us.is_none() || ttl_us.saturating_sub(remaining_us) >= step_us)
            .then_some(ttl_us)
    }

    /// What a hit does to the policy, at once under the write lock or replayed from the buffer
    /// (see `drain`): a use, and for W-TinyLFU also a step of the hill climber (which may
    /// resize the segments: it moves members between them, never in or out, so no lookup's
    /// answer depends on when it is applied). An overwrite is a use but not a hit.
    fn hit_use(&self, s: &mut MemStructure, member: Member, tick: u64) {
        if self.settings.rules.touch == TouchRule::Segmented {
            s.tinylfu_hit(member);
        } else {
            self.touch(s, member, tick);
        }
    }

    /// A use of `member`, by the policy's touch rule (as `touch` in `prelude.lua`): the counter
    /// rule makes it the highest score unless it already is (only order matters).
    fn touch(&self, s: &mut MemStructure, member: Member, tick: u64) {
        match self.settings.rules.touch {
            TouchRule::None => {}
            TouchRule::Counter => {
                let top = s.top();
                if top.map(|(_, m)| m) == Some(member) {
                    return;
                }
                s.rescore(member, top.map_or(0, |(score, _)| score) + 1);
            }
            TouchRule::Time => s.rescore(member, tick),
            TouchRule::Increment => {
                let score = s.slots.get(&member).map_or(0, |slot| slot.score) + 1;
                s.rescore(member, score);
            }
            TouchRule::Segmented => s.tinylfu_touch(member, false),
        }
    }

    /// As `get.lua` (the lease is taken by the caller).
    fn get(
        &self,
        all: &mut Map<String, MemStructure>,
        structure: &Structure,
        member: Member,
        refresh_after: Option<Duration>,
        tick: u64,
    ) -> (Freshness, Option<Arc<Vec<u8>>>) {
        let now = micros(tick);
        let Some(s) = all.get_mut(&structure.index) else {
            return (Freshness::Missing, None);
        };
        match Found::of(Some(s), &member, refresh_after, now) {
            Found::Missing => (Freshness::Missing, None),
            Found::Gone => {
                s.remove_entry(&member);
                if s.slots.is_empty() {
                    all.remove(&structure.index);
                }
                (Freshness::Missing, None)
            }
            Found::Expired(entry) => (Freshness::Expired, Some(entry)),
            Found::Live { stale, entry } => {
                self.hit_use(s, member, tick);
                if self.settings.slide {
                    self.slide(s, now);
                }
                (
                    if stale {
                        Freshness::Stale
                    } else {
                        Freshness::Fresh
                    },
                    Some(entry),
                )
            }
        }
    }

    fn put(
        &self,
        all: &mut Map<String, MemStructure>,
        structure: &Structure,
        member: Member,
        entry: Arc<Vec<u8>>,
        keep_until: Option<u64>,
        tick: u64,
    ) -> StoreReply {
        let now = micros(tick);
        let rules = self.settings.rules;
        let is_new = !all.contains_key(&structure.index);
        let s = all
            .entry(structure.index.clone())
            .or_insert_with(|| MemStructure::new(rules, self.settings.maxsize, self.hash));
        #[cfg(test)]
        if self.force_tree.load(std::sync::atomic::Ordering::Relaxed)
            && let Order::Chain(chain) = &s.order
            && chain.nodes.is_empty()
        {
            s.order = Order::Tree(BTreeSet::new());
        }
        let (mut evicted, mut reclaimed) = (0, 0);
        if let Some(slot) = s.slots.get_mut(&member) {
            slot.entry = entry;
            self.touch(s, member, tick);
        } else {
            let maxsize = usize::try_from(self.settings.maxsize).unwrap_or(usize::MAX);
            if s.len() >= maxsize && !s.expiry.is_empty() {
                for m in s.expired_members(now, RECLAIM_BATCH) {
                    s.remove_entry(&m);
                    reclaimed += 1;
                }
            }
            if rules.insert == InsertRule::Window {
                // W-TinyLFU: into the window first; the admission decides who leaves.
                s.tinylfu_miss();
                s.insert(member, tinylfu::WINDOW, entry);
                evicted += s.tinylfu_admit(member, self.settings.maxsize).len() as u64;
            } else {
                while s.len() >= maxsize {
                    if s.pop(rules.victim).is_none() {
                        break;
                    }
                    evicted += 1;
                }
                let score = match rules.insert {
                    InsertRule::Counter => s.top().map_or(0, |(score, _)| score) + 1,
                    InsertRule::Time => tick,
                    InsertRule::One | InsertRule::Set | InsertRule::Window => 1,
                };
                s.insert(member, score, entry);
            }
        }
        s.set_expiry(member, keep_until);
        if self.settings.slide || is_new {
            self.slide(s, now);
        }
        StoreReply::Stored { evicted, reclaimed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::layout::{Layout, Naming};
    use crate::policy::Policy;

    fn store(policy: Policy, maxsize: u64, tree: bool) -> MemoryStore {
        store_with_clock(policy, maxsize, tree, None, Arc::new(ManualClock::new()))
    }

    /// A store with a sliding structure TTL of `ttl` if any.
    fn store_with_clock(
        policy: Policy,
        maxsize: u64,
        tree: bool,
        ttl: Option<Duration>,
        clock: Arc<ManualClock>,
    ) -> MemoryStore {
        let naming = Naming::new("t:", "order", policy, Layout::Shared);
        let settings = StoreSettings {
            rules: policy.rules(),
            maxsize,
            ttl,
            slide: ttl.is_some(),
            touch_batch: None,
            naming,
        };
        let store = MemoryStore::new(settings, clock);
        if tree {
            store
                .force_tree
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        store
    }

    const POLICIES: [Policy; 8] = Policy::ALL;

    /// A random op on a few members of one structure: lookups (with and without a lease,
    /// with a refresh-after), puts (some with an entry TTL), removals, peeks, counts.
    fn random_op(rng: &mut fastrand::Rng, structure: &Structure, step: usize) -> StoreOp {
        let member = [rng.u8(..9); 16];
        match rng.u8(..20) {
            0..=10 => StoreOp::Get {
                structure: structure.clone(),
                member,
                refresh_after: rng.bool().then(|| Duration::from_millis(3)),
                lease: (rng.u8(..4) == 0).then(|| LeaseRequest::new(Duration::from_secs(1))),
                stamp: false,
            },
            11..=16 => StoreOp::Put {
                structure: structure.clone(),
                member,
                head: [1, 1],
                payload: vec![step as u8],
                entry_ttl: rng.bool().then(|| Duration::from_millis(5)),
                refresh_ms: 0,
                keep: None,
                release: None,
                tagged: None,
            },
            17 => StoreOp::Remove {
                structure: structure.clone(),
                member,
            },
            18 => StoreOp::Peek {
                structure: structure.clone(),
                member,
            },
            _ => StoreOp::Len,
        }
    }

    /// A structure's deadline and its members with their scores.
    type Contents = (Option<u64>, Vec<(Member, u64)>);

    /// Every structure's deadline and its members with their scores.
    fn contents(store: &MemoryStore) -> Vec<Contents> {
        let state = store.state.read().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = state
            .structures
            .values()
            .map(|s| {
                let mut members: Vec<_> = s.slots.iter().map(|(m, x)| (*m, x.score)).collect();
                members.sort();
                (s.deadline_us, members)
            })
            .collect();
        all.sort();
        all
    }

    /// Walks a structure's order and checks it against its slots: the same members, at most
    /// `maxsize`, and a chain in strictly rising score order (what makes it the sorted set).
    fn check_order(store: &MemoryStore, maxsize: usize) {
        let state = store.state.read().unwrap_or_else(|e| e.into_inner());
        for s in state.structures.values() {
            assert!(s.len() <= maxsize, "{} entries over {maxsize}", s.len());
            match &s.order {
                Order::Chain(chain) => {
                    let (mut at, mut seen, mut score) = (chain.head, 0, None);
                    while at != NIL {
                        let node = chain.nodes[at];
                        let slot = &s.slots[&node.member];
                        assert_eq!(slot.at, at);
                        if store.settings.rules.touch != TouchRule::Counter
                            && store.settings.rules.insert != InsertRule::Counter
                        {
                            assert!(score < Some(slot.score), "chain out of score order");
                        }
                        score = Some(slot.score);
                        seen += 1;
                        at = node.next;
                    }
                    assert_eq!(seen, s.slots.len());
                }
                Order::Tree(tree) => {
                    assert_eq!(tree.len(), s.slots.len());
                    for (member, slot) in &s.slots {
                        assert!(tree.contains(&(slot.score, *member)));
                    }
                }
                Order::Set(members) => assert_eq!(members.len(), s.slots.len()),
                // Segments and sketch: held to the Redis scripts by the model tests.
                Order::TinyLfu(_) => {}
            }
        }
    }

    /// Hits served under the read lock, by several threads, record their uses in the buffer;
    /// applied later, they must leave exactly the order that applying each at once leaves.
    /// Three threads take turns through one random op sequence (a deterministic schedule:
    /// every op on its thread's stripe), and every answer (lookups, evictions, counts, the
    /// entries with their times) equals that of a store that serves every op under the write
    /// lock on one thread; the clock moves now and then, so entries go stale and expire (and,
    /// with a sliding structure TTL of 100 ms, hits renew it every millisecond or so).
    #[test]
    fn buffered_hits_on_many_threads_answer_as_locked_ones_in_turn() {
        use std::sync::atomic::AtomicUsize;
        let ttls = [None, Some(Duration::from_millis(100))];
        for (policy, ttl) in POLICIES.into_iter().flat_map(|p| ttls.map(|t| (p, t))) {
            if policy == Policy::Random {
                continue; // its victims are random
            }
            let (clock, reference_clock) = (Arc::new(ManualClock::new()), ManualClock::new());
            let reference_clock = Arc::new(reference_clock);
            let buffered = store_with_clock(policy, 4, false, ttl, Arc::clone(&clock));
            let reference = store_with_clock(policy, 4, false, ttl, Arc::clone(&reference_clock));
            reference.locked_only.store(true, Ordering::Relaxed);
            let structure = buffered.settings.naming.structure("f");
            let mut rng = fastrand::Rng::with_seed(11);
            let ops: Vec<(StoreOp, bool)> = (0..3000)
                .map(|step| (random_op(&mut rng, &structure, step), rng.u8(..8) == 0))
                .collect();
            let expected: Vec<StoreReply> = ops
                .iter()
                .map(|(op, advance)| {
                    if *advance {
                        reference_clock.advance(Duration::from_millis(1));
                    }
                    reference.apply(op.clone())
                })
                .collect();
            let turn = AtomicUsize::new(0);
            let answers: Vec<Vec<(usize, StoreReply)>> = std::thread::scope(|scope| {
                let threads: Vec<_> = (0..3)
                    .map(|t| {
                        let (ops, turn, buffered, clock) = (&ops, &turn, &buffered, &clock);
                        scope.spawn(move || {
                            let mut answers = Vec::new();
                            for (i, (op, advance)) in ops.iter().enumerate() {
                                if i % 3 != t {
                                    continue;
                                }
                                while turn.load(Ordering::Acquire) != i {
                                    std::thread::yield_now();
                                }
                                if *advance {
                                    clock.advance(Duration::from_millis(1));
                                }
                                answers.push((i, buffered.apply(op.clone())));
                                turn.store(i + 1, Ordering::Release);
                            }
                            answers
                        })
                    })
                    .collect();
                threads
                    .into_iter()
                    .map(|t| t.join().expect("no panic"))
                    .collect()
            });
            let mut answers: Vec<(usize, StoreReply)> = answers.into_iter().flatten().collect();
            answers.sort_by_key(|(i, _)| *i);
            for ((i, answer), expected) in answers.into_iter().zip(expected) {
                assert_eq!(
                    answer, expected,
                    "{policy:?} {ttl:?}, op {i}: {:?}",
                    ops[i].0
                );
            }
            check_order(&buffered, 4);
            // The same structures, deadlines (slid by the same hits) and scores.
            let _ = (buffered.apply(StoreOp::Len), reference.apply(StoreOp::Len));
            assert_eq!(
                contents(&buffered),
                contents(&reference),
                "{policy:?} {ttl:?}"
            );
        }
    }

    /// Op ticks taken by threads at once are unique, each thread's rise, none is in a
    /// microsecond before the clock it read, and a tick taken after another thread's (the two
    /// ordered by memory the store does not see) is later: with the clock behind the op clock
    /// and ahead of it, and the two mixed.
    #[test]
    fn op_times_are_unique_and_follow_the_order_of_ops_across_threads() {
        use std::sync::atomic::AtomicUsize;
        let store = store(Policy::LruT, 4, false);
        let base = 1_767_225_600_000_000u64;
        let handed = AtomicUsize::new(0);
        let (passed, taken) = (AtomicU64::new(0), AtomicUsize::new(0));
        let times: Vec<(Vec<u64>, Vec<String>)> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4u64)
                .map(|t| {
                    let (store, handed, passed, taken) = (&store, &handed, &passed, &taken);
                    scope.spawn(move || {
                        let mut rng = fastrand::Rng::with_seed(t);
                        // Broken rules are noted, not asserted here: a panic would leave the
                        // other thread waiting for the baton.
                        let (mut times, mut broken) = (Vec::new(), Vec::new());
                        for step in 0..20_000u64 {
                            // A clock now behind the op clock, now jumping ahead of it.
                            let clock = if rng.u8(..8) == 0 {
                                base + step * 8 + rng.u64(..8)
                            } else {
                                base
                            };
                            let now = store.tick(clock);
                            if micros(now) < clock {
                                broken.push(format!("{now} before the clock {clock}"));
                            }
                            if let Some(&before) = times.last()
                                && now <= before
                            {
                                broken.push(format!("thread {t}: {now} after {before}"));
                            }
                            times.push(now);
                            // Threads 0 and 1 also hand a baton back and forth: the time taken
                            // after receiving it is later than the one sent with it.
                            if t < 2 && step % 16 == 0 {
                                while handed.load(Ordering::Acquire) % 2 != t as usize {
                                    std::hint::spin_loop();
                                }
                                let after = store.tick(clock);
                                let sent = passed.load(Ordering::Relaxed);
                                if after <= sent {
                                    broken.push(format!("{after} taken after {sent}"));
                                }
                                times.push(after);
                                passed.store(after, Ordering::Relaxed);
                                taken.fetch_add(1, Ordering::Relaxed);
                                handed.fetch_add(1, Ordering::Release);
                            }
                        }
                        (times, broken)
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| t.join().expect("no panic"))
                .collect()
        });
        let (times, broken): (Vec<_>, Vec<_>) = times.into_iter().unzip();
        let broken: Vec<String> = broken.into_iter().flatten().collect();
        assert!(
            broken.is_empty(),
            "{} broken, first {:?}",
            broken.len(),
            broken.first()
        );
        let mut all: Vec<u64> = times.into_iter().flatten().collect();
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), count, "op times taken twice");
        assert_eq!(taken.load(Ordering::Relaxed), 2 * 1250);
    }

    /// Threads hitting, putting, removing and counting at once, with no schedule: the size
    /// bound holds throughout, and the order stays the sorted set it stands for.
    #[test]
    fn concurrent_hits_puts_and_counts_keep_the_bound_and_the_order() {
        for policy in POLICIES {
            let store = store(policy, 8, false);
            let structure = store.settings.naming.structure("f");
            std::thread::scope(|scope| {
                for t in 0..4u64 {
                    let (store, structure) = (&store, &structure);
                    scope.spawn(move || {
                        let mut rng = fastrand::Rng::with_seed(t);
                        for step in 0..3000 {
                            // Mostly hits on a few hot members, as a cache sees them.
                            let op = if rng.u8(..4) == 0 {
                                random_op(&mut rng, structure, step)
                            } else {
                                StoreOp::Get {
                                    structure: structure.clone(),
                                    member: [rng.u8(..12); 16],
                                    refresh_after: None,
                                    lease: None,
                                    stamp: false,
                                }
                            };
                            if let StoreReply::Count(n) = store.apply(op.clone())
                                && op == StoreOp::Len
                            {
                                assert!(n <= 8, "{policy:?}: {n} live entries over 8");
                            }
                        }
                    });
                }
            });
            // Apply what the last hits left in the buffer, then look.
            let _ = store.apply(StoreOp::Len);
            check_order(&store, 8);
        }
    }

    /// A deterministic schedule across threads: after the fill, thread A uses 0, thread B
    /// uses 1, thread A uses 2 (each waiting for the one before); the next puts evict the
    /// least recently used first: 3, then 0, 1, 2 in the order of their uses.
    #[test]
    fn the_victim_is_the_exact_lru_one_after_hits_on_two_threads() {
        for policy in [Policy::Lru, Policy::LruT] {
            let store = store(policy, 4, false);
            let structure = store.settings.naming.structure("f");
            let put = |m: u8| StoreOp::Put {
                structure: structure.clone(),
                member: [m; 16],
                head: [1, 1],
                payload: vec![m],
                entry_ttl: None,
                refresh_ms: 0,
                keep: None,
                release: None,
                tagged: None,
            };
            let get = |m: u8| StoreOp::Get {
                structure: structure.clone(),
                member: [m; 16],
                refresh_after: None,
                lease: None,
                stamp: false,
            };
            for m in [3, 2, 1, 0] {
                store.apply(put(m));
            }
            let turn = std::sync::atomic::AtomicUsize::new(0);
            std::thread::scope(|scope| {
                for (thread, uses) in [(0, vec![(0, 0u8), (2, 2)]), (1, vec![(1, 1)])] {
                    let (store, turn, get) = (&store, &turn, &get);
                    scope.spawn(move || {
                        let _ = thread;
                        for (at, m) in uses {
                            while turn.load(Ordering::Acquire) != at {
                                std::thread::yield_now();
                            }
                            assert!(matches!(
                                store.apply(get(m)),
                                StoreReply::Looked(Lookup {
                                    freshness: Freshness::Fresh,
                                    ..
                                })
                            ));
                            turn.store(at + 1, Ordering::Release);
                        }
                    });
                }
            });
            for (new, victim) in [(10, 3), (11, 0), (12, 1), (13, 2)] {
                assert_eq!(
                    store.apply(put(new)),
                    StoreReply::Stored {
                        evicted: 1,
                        reclaimed: 0
                    }
                );
                assert_eq!(
                    store.apply(StoreOp::Peek {
                        structure: structure.clone(),
                        member: [victim; 16]
                    }),
                    StoreReply::Flag(false),
                    "{policy:?}: {victim} evicted for {new}"
                );
            }
        }
    }

    /// The O(1) chain of the recency and insertion-order policies must evict exactly as the
    /// sorted set it stands for (`(score, member)` order), which is what Redis keeps: the same
    /// ops on a chain-ordered and a tree-ordered store give the same answers throughout.
    #[test]
    fn the_chain_orders_exactly_as_the_sorted_set() {
        for policy in [
            Policy::Lru,
            Policy::LruT,
            Policy::Fifo,
            Policy::FifoT,
            Policy::Mru,
            Policy::Lfu,
        ] {
            let mut rng = fastrand::Rng::with_seed(7);
            let (chain, tree) = (store(policy, 4, false), store(policy, 4, true));
            let structure = chain.settings.naming.structure("f");
            for step in 0..4000 {
                let member = [rng.u8(..9); 16];
                let op = match rng.u8(..10) {
                    0..=4 => StoreOp::Get {
                        structure: structure.clone(),
                        member,
                        refresh_after: None,
                        lease: None,
                        stamp: false,
                    },
                    5..=8 => StoreOp::Put {
                        structure: structure.clone(),
                        member,
                        head: [1, 1],
                        payload: vec![step as u8],
                        entry_ttl: None,
                        refresh_ms: 0,
                        keep: None,
                        release: None,
                        tagged: None,
                    },
                    _ => StoreOp::Remove {
                        structure: structure.clone(),
                        member,
                    },
                };
                assert_eq!(
                    chain.apply(op.clone()),
                    tree.apply(op),
                    "{policy:?}, step {step}"
                );
            }
        }
    }
}
