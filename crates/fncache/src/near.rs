//! The near cache: copies of Redis entries kept in the process, served without I/O, and
//! dropped in every process within milliseconds of any change (see the README's "Near cache").
//!
//! Everything here is pure state and decisions, shared by both front-ends through the call
//! machine (`call/`): whether a copy may be served, how long a copy may live, whether a
//! lookup's answer may become a copy. The link that feeds it (`store/redis/subscriber.rs`)
//! only calls [`Near::link_up`], [`Near::link_down`] and [`Near::message`], each link for its
//! channel's [`Gate`]: one for the cache, or in `Layout::ClusterPerFunction` on a cluster one
//! per structure, made as the structure is first looked up. A copy is made only under a ticket
//! taken while its structure's gate was up and unchanged until the copy is in, and served only
//! while that gate is up; any gate going down drops every copy.
//!
//! # Why copies are never stale once a change is heard
//! Every change of an entry is made by a script, which publishes the members it changed on
//! the cache's channel while it runs (see `prelude.lua`). A lookup may read the old value just
//! before a change and have its answer arrive after the message: so a lookup takes a
//! [`Ticket`] (the generation of its member's stripe and of the whole cache) before it is
//! sent, and its answer becomes a copy only if no invalidation of that stripe, no reset and no
//! change of the link happened since. The check runs after the copy is inserted too (an
//! invalidation between the check and the insert removes what was inserted), so no
//! interleaving keeps an old value. This process's own writes drop their members when their
//! reply is in (before the message comes back), so a caller reads its own writes.
//!
//! # Why copies hold the stored entry rather than the decoded value
//! Calls return `T: Serialize + DeserializeOwned`, not `T: Clone`: a copy keeps the entry's
//! bytes (shared, never copied) and a near hit decodes them, as a hit on the embedded store
//! does. The cost is one decode, in the same class as an embedded hit, without a new bound on
//! every cached type.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::codec::Entry;
use crate::key::Member;
use crate::layout::Structure;
use crate::policy::TouchRule;
use crate::store::StoreOp;

/// Stripes of invalidation generations: a lookup's answer is refused only when its member's
/// stripe (or the whole cache) changed meanwhile, not on every change anywhere.
const STRIPES: usize = 256;

/// Members whose near hits are remembered at most until they are applied; later hits of
/// other members are dropped (they would only move those members up).
const MAX_USES: usize = 1 << 16;

/// What an op of this process may change of the near copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// The entry of one member.
    Member(Member),
    /// Any entry: an op over whole structures (a purge, a tag's invalidation). A vacuum
    /// reclaims only entries past their end, which no copy outlives, and changes none.
    All,
}

impl Change {
    /// What `op` may change; `None` for an op that changes no entry.
    pub(crate) fn of(op: &StoreOp) -> Option<Change> {
        match op {
            StoreOp::Put { member, .. }
            | StoreOp::Remove { member, .. }
            | StoreOp::Expire { member, .. } => Some(Change::Member(*member)),
            StoreOp::Purge | StoreOp::PurgeStructure { .. } | StoreOp::InvalidateTag { .. } => {
                Some(Change::All)
            }
            StoreOp::Get { .. }
            | StoreOp::Lease { .. }
            | StoreOp::Peek { .. }
            | StoreOp::Len
            | StoreOp::Vacuum => None,
        }
    }
}

/// Settings of a near cache, from the builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NearSettings {
    /// Copies kept at most.
    pub(crate) maxsize: u64,
    /// How long a copy may be served without asking Redis, at most.
    pub(crate) ttl: Duration,
}

/// One copy: the stored entry and until when it may be served.
struct NearCopy {
    entry: Arc<Vec<u8>>,
    /// The copy's end (this process's clock): the near TTL, the entry's expiry, the
    /// structure's remaining life and the inserting call's `refresh_after`, whichever is first.
    until: Instant,
    /// The earliest instant of this process's clock at which the entry may have been written
    /// (`None`: before this process's clock can tell), for the `refresh_after` of later calls.
    written: Option<Instant>,
    structure: Structure,
    /// The link whose subscription covers the copy's structure: served only while it is up.
    gate: Arc<Gate>,
}

/// One subscription of the link: a channel, up only once the server confirmed it. A cache has
/// one, except on a cluster in `Layout::ClusterPerFunction`, where every structure has a
/// channel of its own in its own slot (see [`Near::per_structure`]).
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// Subscribed: copies of its structures may be served and made.
    up: AtomicBool,
    /// Bumped by every change of this subscription (up or down).
    generation: AtomicU64,
    /// The server's clock less this process's, an upper bound, in microseconds (learned
    /// by the link when it connects to the channel's node).
    offset_us: AtomicI64,
}

impl Gate {
    fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }
}

/// The gates of a cache with a channel per structure, by channel.
type Gates = Mutex<HashMap<String, Arc<Gate>>>;

/// Starts the link of one channel (`store/redis/subscriber.rs`), for the gates made on demand.
pub(crate) type Spawner = Box<dyn Fn(String, Arc<Gate>) + Send + Sync>;

/// The channel of one structure in `Layout::ClusterPerFunction` on a cluster: the structure's
/// base (with its hash tag, so that the scripts' `SPUBLISH` stays in the slot of the keys they
/// touch) and `:near`. Not a key.
pub(crate) fn structure_channel(structure: &Structure) -> String {
    let base = structure
        .index
        .strip_suffix(":0")
        .unwrap_or(&structure.index);
    format!("{base}:near")
}

/// A lookup's claim to turn its answer into a copy (see the module's documentation).
#[derive(Debug, Clone)]
pub(crate) struct Ticket {
    generation: u64,
    gate: Arc<Gate>,
    gate_generation: u64,
    stripe: u64,
    /// When the lookup was sent.
    started: Instant,
    /// An upper bound of the server's clock (microseconds since the epoch) at `started`.
    server_us: i64,
}

/// Near hits waiting to be applied to the Redis indexes (see [`Near::due_uses`]).
#[derive(Default)]
struct Uses {
    since: Option<Instant>,
    /// Per member (a 16-byte digest: cheap to hash, unlike the index key, which the copy
    /// keeps), its structure, last use (caller's clock, microseconds) and count.
    by_member: HashMap<Member, (Structure, u64, u64)>,
}

/// Near hits of one structure to apply: its index key, the policy's touch rule, and per
/// member the last use (caller's clock, microseconds) and how many uses.
pub(crate) type UsesOf = (String, TouchRule, Vec<(Member, u64, u64)>);

/// The near cache of one cache in one process.
pub(crate) struct Near {
    settings: NearSettings,
    /// How long a structure surely lives after a lookup (its sliding TTL less the step
    /// within which a hit may not renew it); `None` without a structure TTL.
    structure_life: Option<Duration>,
    touch: TouchRule,
    channel: String,
    copies: moka::sync::Cache<Member, Arc<NearCopy>>,
    /// Bumped by every reset and every change of the link.
    generation: AtomicU64,
    /// Bumped by every invalidation of a member of the stripe (its first byte).
    stripes: Box<[AtomicU64]>,
    /// The cache's one subscription (every structure's, unless `per_structure`).
    gate: Arc<Gate>,
    /// `Layout::ClusterPerFunction` on a cluster: a subscription per structure's channel,
    /// made as each structure is first looked up, and how to start its link.
    per_structure: Option<(Gates, OnceLock<Spawner>)>,
    invalidations: AtomicU64,
    resets: AtomicU64,
    uses: Mutex<Uses>,
}

impl fmt::Debug for Near {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Near")
            .field("settings", &self.settings)
            .field("channel", &self.channel)
            .field("up", &self.gate.is_up())
            .field("copies", &self.copies.entry_count())
            .finish_non_exhaustive()
    }
}

/// This process's wall clock, microseconds since the epoch.
pub(crate) fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl Near {
    /// A near cache, down until its link is up. `structure_ttl` is the cache's sliding
    /// structure TTL, if any (a fixed one is refused by the builder: a copy could not know
    /// when it ends).
    /// `per_structure`: a channel per structure (`Layout::ClusterPerFunction` on a cluster),
    /// `channel` being then unused.
    pub(crate) fn new(
        settings: NearSettings,
        structure_ttl: Option<Duration>,
        touch: TouchRule,
        channel: String,
        per_structure: bool,
    ) -> Near {
        // As the hit path's slide gate: a lookup leaves its structure at least its TTL less a
        // step (1% of it, at most a second) to live.
        let structure_life =
            structure_ttl.map(|ttl| ttl.saturating_sub((ttl / 100).min(Duration::from_secs(1))));
        Near {
            settings,
            structure_life,
            touch,
            channel,
            copies: moka::sync::Cache::new(settings.maxsize),
            generation: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            gate: Arc::default(),
            per_structure: per_structure.then(Default::default),
            invalidations: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            uses: Mutex::new(Uses::default()),
        }
    }

    /// The channel the cache's scripts announce changes on, and its gate; `None` when every
    /// structure has a channel of its own (see [`Near::set_spawner`]).
    pub(crate) fn channel(&self) -> Option<(&str, &Arc<Gate>)> {
        self.per_structure
            .is_none()
            .then_some((self.channel.as_str(), &self.gate))
    }

    /// The cache's channel (with a channel per structure, the name its links go by).
    pub(crate) fn label(&self) -> &str {
        &self.channel
    }

    /// With a channel per structure: how to start the link of a structure's channel, called
    /// once per channel as its structure is first looked up.
    pub(crate) fn set_spawner(&self, spawner: Spawner) {
        if let Some((_, spawn)) = &self.per_structure {
            let _ = spawn.set(spawner);
        }
    }

    /// The gate of `structure`'s channel; with a channel per structure, made (and its link
    /// started) on first sight when `make`.
    fn gate_of(&self, structure: &Structure, make: bool) -> Option<Arc<Gate>> {
        let Some((gates, spawner)) = &self.per_structure else {
            return Some(Arc::clone(&self.gate));
        };
        let channel = structure_channel(structure);
        let mut gates = gates.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(gate) = gates.get(&channel) {
            return Some(Arc::clone(gate));
        }
        if !make {
            return None;
        }
        let spawn = spawner.get()?;
        let gate = Arc::<Gate>::default();
        gates.insert(channel.clone(), Arc::clone(&gate));
        drop(gates);
        spawn(channel, Arc::clone(&gate));
        Some(gate)
    }

    /// The settings it was built with.
    pub(crate) fn settings(&self) -> NearSettings {
        self.settings
    }

    fn stripe(&self, member: &Member) -> &AtomicU64 {
        &self.stripes[usize::from(member[0]) % STRIPES]
    }

    /// The copy of `member` to serve now to a call whose `refresh_after` is given, if any:
    /// only while the link is up, before the copy's end, and while the entry is younger than
    /// the call's `refresh_after` (a stale entry goes through Redis). A hit is remembered for
    /// the policy (see [`Near::due_uses`]).
    pub(crate) fn get(
        &self,
        member: &Member,
        refresh_after: Option<Duration>,
    ) -> Option<Arc<Vec<u8>>> {
        let copy = self.copies.get(member)?;
        if !copy.gate.is_up() {
            return None;
        }
        let now = Instant::now();
        if now >= copy.until {
            self.copies.invalidate(member);
            return None;
        }
        if let Some(after) = refresh_after
            && copy
                .written
                .and_then(|w| w.checked_add(after))
                .is_none_or(|stale| now >= stale)
        {
            return None;
        }
        self.remember_use(&copy.structure, member);
        Some(Arc::clone(&copy.entry))
    }

    /// Drops `member`'s copy (it did not decode for the call that found it).
    pub(crate) fn forget(&self, member: &Member) {
        self.copies.invalidate(member);
    }

    /// A lookup of `member` of `structure` is about to be sent: its claim to make a copy of
    /// the answer, or `None` while the link of the structure's channel is down (or, with a
    /// channel per structure, not confirmed yet: the first lookup starts it).
    pub(crate) fn begin(&self, structure: &Structure, member: &Member) -> Option<Ticket> {
        let gate = self.gate_of(structure, true)?;
        // The generations before `up`: a link that comes up in between bumps the generation,
        // so such a ticket is refused later (see `link_up`).
        let generation = self.generation.load(Ordering::SeqCst);
        let gate_generation = gate.generation.load(Ordering::SeqCst);
        let stripe = self.stripe(member).load(Ordering::SeqCst);
        if !gate.is_up() {
            return None;
        }
        let server_us = wall_us().saturating_add(gate.offset_us.load(Ordering::SeqCst));
        Some(Ticket {
            generation,
            gate,
            gate_generation,
            stripe,
            started: Instant::now(),
            server_us,
        })
    }

    fn unchanged(&self, ticket: &Ticket, member: &Member) -> bool {
        ticket.gate.is_up()
            && ticket.gate.generation.load(Ordering::SeqCst) == ticket.gate_generation
            && self.generation.load(Ordering::SeqCst) == ticket.generation
            && self.stripe(member).load(Ordering::SeqCst) == ticket.stripe
    }

    /// How long a copy of `entry`, looked up under `ticket` by a call with `refresh_after`,
    /// may be served, from the lookup's start; and the earliest local instant of its write.
    /// `None` when it may not be kept at all (no envelope, expired or stale by now, as far as
    /// this process's clock can tell).
    fn life(
        &self,
        ticket: &Ticket,
        entry: &[u8],
        refresh_after: Option<Duration>,
    ) -> Option<(Duration, Option<Instant>)> {
        let entry = Entry::parse(entry)?;
        let mut life = self.settings.ttl;
        if let Some(structure) = self.structure_life {
            life = life.min(structure);
        }
        // Entry times are the server's: measured from an upper bound of the server's clock at
        // the lookup's start, what is left is a lower bound.
        let left_until = |at_us: u64| -> Option<Duration> {
            let left = i64::try_from(at_us).ok()?.checked_sub(ticket.server_us)?;
            (left > 0).then(|| Duration::from_micros(left.unsigned_abs()))
        };
        if entry.expire_at_us != 0 {
            life = life.min(left_until(entry.expire_at_us)?);
        }
        // An entry with a refresh time of its own (format 2) is stale from then on, whatever
        // the calls' refresh_after: a copy goes before.
        if entry.refresh_at_us != 0 {
            life = life.min(left_until(entry.refresh_at_us)?);
        }
        let age = i64::try_from(entry.written_at_us)
            .ok()
            .and_then(|w| ticket.server_us.checked_sub(w))
            .map_or(Duration::MAX, |age| {
                Duration::from_micros(age.max(0).unsigned_abs())
            });
        let written = ticket.started.checked_sub(age);
        if let Some(after) = refresh_after {
            let fresh_for = after.checked_sub(age)?;
            if fresh_for.is_zero() {
                return None;
            }
            life = life.min(fresh_for);
        }
        Some((life, written))
    }

    /// A lookup under `ticket` found `entry` fresh: keep it as a copy, unless anything that
    /// may have changed it happened since the ticket was taken.
    pub(crate) fn offer(
        &self,
        ticket: Ticket,
        structure: &Structure,
        member: Member,
        entry: &Arc<Vec<u8>>,
        refresh_after: Option<Duration>,
    ) {
        let Some((life, written)) = self.life(&ticket, entry, refresh_after) else {
            return;
        };
        let Some(until) = ticket.started.checked_add(life) else {
            return;
        };
        if until <= Instant::now() || !self.unchanged(&ticket, &member) {
            return;
        }
        self.copies.insert(
            member,
            Arc::new(NearCopy {
                entry: Arc::clone(entry),
                until,
                written,
                structure: structure.clone(),
                gate: Arc::clone(&ticket.gate),
            }),
        );
        // An invalidation between the check and the insert may have missed the copy.
        if !self.unchanged(&ticket, &member) {
            self.copies.invalidate(&member);
        }
    }

    /// Drops the copies of `members`, counted as invalidations.
    pub(crate) fn invalidate(&self, members: impl IntoIterator<Item = Member>) {
        for member in members {
            // The generation first: a lookup in flight can no longer make a copy.
            self.stripe(&member).fetch_add(1, Ordering::SeqCst);
            self.copies.invalidate(&member);
            self.invalidations.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops every copy, counted as a reset.
    pub(crate) fn reset(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.copies.invalidate_all();
        self.resets.fetch_add(1, Ordering::Relaxed);
    }

    /// The link of `gate`'s channel is subscribed, and the server's clock is at most
    /// `offset_us` ahead of this process's: copies may be made from lookups sent from now on.
    pub(crate) fn link_up(&self, gate: &Gate, offset_us: i64) {
        gate.offset_us.store(offset_us, Ordering::SeqCst);
        gate.generation.fetch_add(1, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        gate.up.store(true, Ordering::SeqCst);
    }

    /// The link of `gate`'s channel is lost (or not up yet): changes may go unheard, so every
    /// copy goes (with a channel per structure, those of the other channels too: simpler, and
    /// a lost link is rare) and none of its structures is served or made until it is back.
    pub(crate) fn link_down(&self, gate: &Gate) {
        let was_up = gate.up.swap(false, Ordering::SeqCst);
        gate.generation.fetch_add(1, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.copies.invalidate_all();
        if was_up {
            self.resets.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Is the link of `structure`'s channel up (copies of it may be served and made)?
    pub(crate) fn is_up(&self, structure: &Structure) -> bool {
        self.gate_of(structure, false)
            .is_some_and(|gate| gate.is_up())
    }

    /// A message of the channel: `m` and 16-byte members, or `*` for the whole cache; a
    /// flush of the server (`None`, from the link's tracking) and anything unknown reset.
    pub(crate) fn message(&self, payload: Option<&[u8]>) {
        match payload {
            Some([b'm', members @ ..]) if members.len() % 16 == 0 => {
                self.invalidate(
                    members
                        .chunks_exact(16)
                        .filter_map(|m| Member::try_from(m).ok()),
                );
            }
            _ => self.reset(),
        }
    }

    /// This process sent an op that makes `change` (its reply is in, or it failed: it may
    /// have happened): the copies it may have changed go now, before the channel says so,
    /// so that a caller reads its own writes.
    pub(crate) fn apply(&self, change: Change) {
        match change {
            Change::Member(member) => self.invalidate([member]),
            Change::All => self.reset(),
        }
    }

    /// Invalidations heard or made (members dropped), and resets (whole near cache dropped).
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.invalidations.load(Ordering::Relaxed),
            self.resets.load(Ordering::Relaxed),
        )
    }

    fn remember_use(&self, structure: &Structure, member: &Member) {
        if self.touch == TouchRule::None {
            return;
        }
        let at = u64::try_from(wall_us()).unwrap_or(0);
        let mut uses = self.uses.lock().unwrap_or_else(|e| e.into_inner());
        if uses.since.is_none() {
            uses.since = Some(Instant::now());
        }
        let full = uses.by_member.len() >= MAX_USES;
        match uses.by_member.get_mut(member) {
            Some((_, last, count)) => {
                *last = (*last).max(at);
                *count += 1;
            }
            None if !full => {
                uses.by_member.insert(*member, (structure.clone(), at, 1));
            }
            None => {}
        }
    }

    /// The near hits to apply to the Redis indexes, once the oldest waiting is `delay` old:
    /// the next op of the cache sends them first (see `store/redis/mod.rs`).
    pub(crate) fn due_uses(&self, delay: Duration) -> Vec<UsesOf> {
        let by_member = {
            let mut uses = self.uses.lock().unwrap_or_else(|e| e.into_inner());
            if uses.since.is_none_or(|t| t.elapsed() < delay) {
                return Vec::new();
            }
            uses.since = None;
            std::mem::take(&mut uses.by_member)
        };
        let mut by_index: HashMap<String, HashMap<Member, (u64, u64)>> = HashMap::new();
        for (member, (structure, last, count)) in by_member {
            by_index
                .entry(structure.index.clone())
                .or_default()
                .insert(member, (last, count));
        }
        by_index
            .into_iter()
            .map(|(index, members)| {
                let mut members: Vec<_> = members
                    .into_iter()
                    .map(|(m, (last, count))| (m, last, count))
                    .collect();
                // Oldest use first: the order in which they are applied (the `counter` rule).
                members.sort_by_key(|&(_, last, _)| last);
                (index, self.touch, members)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Codec, Times};
    use crate::layout::{Layout, Naming};
    use crate::policy::Policy;

    fn near(ttl: Duration, structure_ttl: Option<Duration>) -> Near {
        let near = Near::new(
            NearSettings { maxsize: 100, ttl },
            structure_ttl,
            TouchRule::Time,
            "ch".into(),
            false,
        );
        near.link_up(&Arc::clone(&near.gate), 0);
        near
    }

    fn structure() -> Structure {
        Naming::new("p:", "n", Policy::LruT, Layout::Shared).structure("f")
    }

    /// An entry written `age` ago (by this process's clock, the server's here) that expires
    /// `expires_in` from now (`None`: never).
    fn entry(age: Duration, expires_in: Option<Duration>) -> Arc<Vec<u8>> {
        let now = wall_us();
        let times = Times {
            written_at_us: u64::try_from(now - micros(age)).unwrap(),
            expire_at_us: expires_in.map_or(0, |e| u64::try_from(now + micros(e)).unwrap()),
            keep_until_us: expires_in.map_or(0, |e| u64::try_from(now + micros(e)).unwrap()),
            refresh_at_us: 0,
        };
        Arc::new(crate::codec::Entry::assemble(
            Codec::MessagePack.head(),
            times,
            &Codec::MessagePack.encode(&7u32).unwrap(),
        ))
    }

    const M: Member = [3; 16];

    fn micros(d: Duration) -> i64 {
        i64::try_from(d.as_micros()).unwrap()
    }

    #[test]
    fn a_copy_is_served_until_the_near_ttl() {
        let near = near(Duration::from_millis(30), None);
        let ticket = near.begin(&structure(), &M).unwrap();
        near.offer(ticket, &structure(), M, &entry(Duration::ZERO, None), None);
        assert!(near.get(&M, None).is_some());
        std::thread::sleep(Duration::from_millis(40)); // a copy's end, not isolation
        assert!(near.get(&M, None).is_none());
    }

    #[test]
    fn a_copy_never_outlives_its_entry_nor_its_freshness() {
        let near = near(Duration::from_secs(60), None);
        // Made before the ticket: the lookup's answer is never older than its start.
        let e = entry(Duration::ZERO, Some(Duration::from_millis(20)));
        let written = entry(Duration::from_millis(50), None);
        let gone = entry(Duration::from_millis(50), Some(Duration::ZERO));
        let ticket = near.begin(&structure(), &M).unwrap();
        let (life, _) = near.life(&ticket, &e, None).unwrap();
        assert!(life <= Duration::from_millis(20), "{life:?}");
        // Written 50 ms ago, stale after 80 ms: at most 30 ms left.
        let e = written;
        let (life, _) = near
            .life(&ticket, &e, Some(Duration::from_millis(80)))
            .unwrap();
        assert!(life <= Duration::from_millis(30), "{life:?}");
        assert!(
            near.life(&ticket, &e, Some(Duration::from_millis(40)))
                .is_none(),
            "stale"
        );
        assert!(near.life(&ticket, &gone, None).is_none(), "expired");
        // A server clock ahead of this process's shortens what is left.
        near.link_up(&Arc::clone(&near.gate), micros(Duration::from_millis(15)));
        let e = entry(Duration::ZERO, Some(Duration::from_millis(20)));
        let ticket = near.begin(&structure(), &M).unwrap();
        let (life, _) = near.life(&ticket, &e, None).unwrap();
        assert!(life <= Duration::from_millis(5), "{life:?}");
    }

    #[test]
    fn a_copy_never_outlives_a_sliding_structure_ttl() {
        let near = near(Duration::from_secs(60), Some(Duration::from_secs(10)));
        let ticket = near.begin(&structure(), &M).unwrap();
        let (life, _) = near
            .life(&ticket, &entry(Duration::ZERO, None), None)
            .unwrap();
        assert_eq!(life, Duration::from_millis(9900));
    }

    #[test]
    fn a_later_call_with_a_shorter_refresh_after_goes_to_redis() {
        let near = near(Duration::from_secs(60), None);
        let ticket = near.begin(&structure(), &M).unwrap();
        near.offer(
            ticket,
            &structure(),
            M,
            &entry(Duration::from_millis(50), None),
            None,
        );
        assert!(near.get(&M, None).is_some());
        assert!(near.get(&M, Some(Duration::from_secs(5))).is_some());
        assert!(near.get(&M, Some(Duration::from_millis(10))).is_none());
    }

    #[test]
    fn an_answer_older_than_an_invalidation_is_not_kept() {
        let near = near(Duration::from_secs(60), None);
        let ticket = near.begin(&structure(), &M).unwrap();
        // The change's message arrives before the lookup's answer.
        near.message(Some(&[&b"m"[..], &M[..]].concat()));
        near.offer(ticket, &structure(), M, &entry(Duration::ZERO, None), None);
        assert!(near.get(&M, None).is_none());
        // Another member's change (another stripe) does not refuse it.
        let ticket = near.begin(&structure(), &M).unwrap();
        near.message(Some(&[&b"m"[..], &[4; 16][..]].concat()));
        near.offer(ticket, &structure(), M, &entry(Duration::ZERO, None), None);
        assert!(near.get(&M, None).is_some());
        assert_eq!(near.counts(), (2, 0));
    }

    #[test]
    fn a_reset_or_a_lost_link_drops_everything_and_refuses_answers_in_flight() {
        let near = near(Duration::from_secs(60), None);
        let ticket = near.begin(&structure(), &M).unwrap();
        near.offer(ticket, &structure(), M, &entry(Duration::ZERO, None), None);
        let in_flight = near.begin(&structure(), &M).unwrap();
        near.message(Some(b"*"));
        assert!(near.get(&M, None).is_none());
        near.offer(
            in_flight,
            &structure(),
            M,
            &entry(Duration::ZERO, None),
            None,
        );
        assert!(near.get(&M, None).is_none());
        let in_flight = near.begin(&structure(), &M).unwrap();
        near.link_down(&Arc::clone(&near.gate));
        assert!(
            near.begin(&structure(), &M).is_none(),
            "no copies while the link is down"
        );
        near.link_up(&Arc::clone(&near.gate), 0);
        near.offer(
            in_flight,
            &structure(),
            M,
            &entry(Duration::ZERO, None),
            None,
        );
        assert!(
            near.get(&M, None).is_none(),
            "the link changed during the lookup"
        );
        assert_eq!(near.counts(), (0, 2));
    }

    #[test]
    fn with_a_channel_per_structure_each_gate_guards_its_structures_copies() {
        let near = Near::new(
            NearSettings {
                maxsize: 100,
                ttl: Duration::from_secs(60),
            },
            None,
            TouchRule::Time,
            "ch".into(),
            true,
        );
        type Started = Mutex<Vec<(String, Arc<Gate>)>>;
        let started: Arc<Started> = Arc::default();
        let log = Arc::clone(&started);
        near.set_spawner(Box::new(move |channel, gate| {
            log.lock().unwrap().push((channel, gate));
        }));
        let naming = Naming::new("p:", "n", Policy::LruT, Layout::ClusterPerFunction);
        let (f, g) = (naming.structure("f"), naming.structure("g"));
        let (mf, mg) = ([1; 16], [2; 16]);
        // The first lookup starts the channel's link; nothing is kept until it is up.
        assert!(near.begin(&f, &mf).is_none());
        assert!(near.begin(&f, &mf).is_none(), "started once");
        assert!(near.begin(&g, &mg).is_none());
        let gates = started.lock().unwrap().clone();
        assert_eq!(gates.len(), 2);
        assert_eq!(gates[0].0, structure_channel(&f));
        assert!(gates[0].0.ends_with("}:near") && gates[0].0.contains("-cm:f#{"));
        near.link_up(&gates[0].1, 0);
        assert!(near.is_up(&f) && !near.is_up(&g));
        let ticket = near.begin(&f, &mf).unwrap();
        near.offer(ticket, &f, mf, &entry(Duration::ZERO, None), None);
        assert!(near.get(&mf, None).is_some());
        assert!(
            near.begin(&g, &mg).is_none(),
            "g's channel is not confirmed"
        );
        // A lookup of f in flight while g's link comes up is refused (simpler, and safe).
        let in_flight = near.begin(&f, &mf).unwrap();
        near.link_up(&gates[1].1, 0);
        near.forget(&mf);
        near.offer(in_flight, &f, mf, &entry(Duration::ZERO, None), None);
        assert!(near.get(&mf, None).is_none());
        let ticket = near.begin(&f, &mf).unwrap();
        near.offer(ticket, &f, mf, &entry(Duration::ZERO, None), None);
        // Losing g's link drops f's copies too, and g's gate stays down until it is back.
        near.link_down(&gates[1].1);
        assert!(near.get(&mf, None).is_none());
        assert!(near.begin(&g, &mg).is_none());
        assert!(near.begin(&f, &mf).is_some());
    }

    #[test]
    fn own_writes_drop_their_members() {
        let near = near(Duration::from_secs(60), None);
        let ticket = near.begin(&structure(), &M).unwrap();
        near.offer(ticket, &structure(), M, &entry(Duration::ZERO, None), None);
        let remove = StoreOp::Remove {
            structure: structure(),
            member: M,
        };
        near.apply(Change::of(&remove).unwrap());
        assert!(near.get(&M, None).is_none());
    }

    #[test]
    fn near_hits_are_applied_oldest_first_with_their_counts() {
        let near = near(Duration::from_secs(60), None);
        for m in [[1; 16], [2; 16]] {
            let ticket = near.begin(&structure(), &m).unwrap();
            near.offer(ticket, &structure(), m, &entry(Duration::ZERO, None), None);
        }
        near.get(&[2; 16], None);
        near.get(&[1; 16], None);
        near.get(&[1; 16], None);
        assert!(
            near.due_uses(Duration::from_secs(60)).is_empty(),
            "not due yet"
        );
        let due = near.due_uses(Duration::ZERO);
        assert_eq!(due.len(), 1);
        let members: Vec<_> = due[0].2.iter().map(|&(m, _, n)| (m[0], n)).collect();
        assert_eq!(members, [(2, 1), (1, 2)]);
        assert!(near.due_uses(Duration::ZERO).is_empty(), "taken");
    }
}
