//! The stores: operations as data, and their two interpreters (embedded memory, Redis).
//!
//! The front-ends never talk to a store directly: the core turns each call into a [`StoreOp`],
//! the front-end hands it to its I/O driver, and the core interprets the [`StoreReply`]. The
//! embedded store answers at once; the Redis store turns the op into requests with pure code
//! (`redis::plan`) that the blocking and async drivers merely send.

pub(crate) mod memory;
pub(crate) mod redis;

use std::time::Duration;

use crate::error::{Error, ErrorKind};
use crate::key::Member;
use crate::layout::{Naming, Structure};
use crate::policy::Rules;

/// Store-side settings of a cache, shared by both stores.
#[derive(Debug, Clone)]
pub(crate) struct StoreSettings {
    pub(crate) rules: Rules,
    pub(crate) maxsize: u64,
    /// Lifetime of a structure; `None` for no TTL.
    pub(crate) ttl: Option<Duration>,
    /// A hit or a put renews the structure TTL.
    pub(crate) slide: bool,
    /// Redis: hits record their use in the process, applied at most this much later (see
    /// `Builder::touch_batch`); the embedded store ignores it.
    pub(crate) touch_batch: Option<Duration>,
    pub(crate) naming: Naming,
}

/// One request to a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreOp {
    /// Look an entry up, recording the use by policy and sliding the TTL; judge its
    /// freshness; and take the key's lease when the entry is missing, stale or expired and
    /// `lease` asks for it.
    Get {
        structure: Structure,
        member: Member,
        /// An entry older than this is stale (`None`: never).
        refresh_after: Option<Duration>,
        lease: Option<LeaseRequest>,
        /// Answer with the store's clock when the entry is not a fresh hit (a tagged call,
        /// see [`Began`]).
        stamp: bool,
    },
    /// Store an entry, evicting by policy when full. `head` is the envelope's format and
    /// codec bytes (the codec is chosen per call).
    Put {
        structure: Structure,
        member: Member,
        head: [u8; 2],
        payload: Vec<u8>,
        entry_ttl: Option<Duration>,
        /// The entry goes stale this many milliseconds after the write, whatever the lookup's
        /// refresh-after (0: by the lookup's; see `codec.rs`, format 2). An integer: every op,
        /// a hit's lookup too, is moved by value, and this keeps the op as small as it was.
        refresh_ms: u64,
        /// Keep the entry this long after the write as a fail-safe fallback, when that is
        /// longer than its entry TTL; without an entry TTL, the entry's lifetime.
        keep: Option<Duration>,
        /// Release the key's lease if it is held with this token.
        release: Option<Token>,
        /// The entry's tags, replacing any it had (`None`: no tags).
        tagged: Option<Box<PutTags>>,
    },
    /// Release the key's lease (`hold: None`), or make it end `hold` from now, if `token`
    /// holds it.
    Lease {
        structure: Structure,
        member: Member,
        token: Token,
        hold: Option<Duration>,
    },
    /// Is a live entry there? Changes nothing.
    Peek {
        structure: Structure,
        member: Member,
    },
    /// Soft invalidation: a live entry's logical expiry becomes now, so that the next lookup
    /// finds it expired (recompute) while it stays as a fail-safe fallback until it would
    /// have been deleted anyway (its `keep_until`, unchanged). Answers whether a live entry
    /// was marked.
    Expire {
        structure: Structure,
        member: Member,
    },
    /// Remove an entry.
    Remove {
        structure: Structure,
        member: Member,
    },
    /// Count live entries of the whole cache.
    Len,
    /// Remove every structure of the cache.
    Purge,
    /// Remove one structure (all entries of one function in the `PerFunction` layout).
    PurgeStructure { structure: Structure },
    /// Reclaim expired entries of the whole cache.
    Vacuum,
    /// Remove every entry tagged `tag`, in every structure of the cache (each structure at
    /// once); counts the live ones, as `Remove` does.
    InvalidateTag { tag: String },
}

/// The tags of a put. Boxed in [`StoreOp::Put`]: most puts have none, and every op (a hit's
/// lookup too) is moved by value, so the op stays as small as it was without tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PutTags {
    /// Not empty.
    pub(crate) tags: Vec<String>,
    /// A tagged value computed by a call: when its computation may have begun (the call's
    /// last lookup). A tagged put whose computation began before an invalidation of the
    /// structure's tags is not stored (`None`: no such check, as for an explicit put).
    pub(crate) began: Option<Began>,
}

/// When a tagged value's computation may have begun, as the put's store can compare it with
/// the time of its last tag invalidation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Began {
    /// The caller's clock before its last lookup was sent (or, without a lookup, before the
    /// computation): exact for the embedded store, whose invalidations read the same clock.
    pub(crate) local: std::time::Instant,
    /// The store's own clock (microseconds) when it answered that lookup, if it said: Redis
    /// compares it with the invalidation's time on the same clock, exactly, however long
    /// the put takes to arrive. Without it, Redis can only estimate from `local` how long
    /// ago that was, and refuses generously (see `put.lua`).
    pub(crate) store_us: Option<u64>,
}

impl PutTags {
    /// The tags of a put, `None` when there are none.
    pub(crate) fn new(tags: &[String], began: Option<Began>) -> Option<Box<PutTags>> {
        (!tags.is_empty()).then(|| {
            Box::new(PutTags {
                tags: tags.to_vec(),
                began,
            })
        })
    }
}

/// A caller's random lease token.
pub(crate) type Token = String;

/// Asks a lookup to take the key's lease for `ttl` with a token when it finds no fresh entry.
///
/// The token is kept as its random bits and spelt out only when it is used: every call that
/// may take a lease makes a request, but a hit on the embedded store never needs the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LeaseRequest {
    /// The token's 128 random bits, low half first. Two `u64`s rather than a `u128`, whose
    /// 16-byte alignment would pad every call and every op that carries a request.
    bits: [u64; 2],
    pub(crate) ttl: Duration,
}

impl LeaseRequest {
    /// A request with a new random token.
    pub(crate) fn new(ttl: Duration) -> LeaseRequest {
        LeaseRequest {
            bits: [fastrand::u64(..), fastrand::u64(..)],
            ttl,
        }
    }

    /// The caller's token: its bits as 32 hex digits.
    pub(crate) fn token(&self) -> Token {
        // Hex digits are ASCII, so the conversion cannot fail.
        String::from_utf8(self.token_digits().to_vec()).unwrap_or_default()
    }

    /// [`LeaseRequest::token`] without a string of its own, for a command's argument.
    pub(crate) fn token_digits(&self) -> [u8; 32] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut bits = u128::from(self.bits[0]) | (u128::from(self.bits[1]) << 64);
        let mut hex = [0u8; 32];
        for digit in &mut hex {
            *digit = HEX[(bits & 0xf) as usize];
            bits >>= 4;
        }
        hex
    }
}

/// How fresh a looked-up entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// No entry.
    Missing,
    /// Younger than refresh-after.
    Fresh,
    /// Older than refresh-after: served, worth refreshing.
    Stale,
    /// Past its entry TTL, kept only as a fail-safe fallback: recompute.
    Expired,
}

/// Who holds a key's lease after a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeaseState {
    /// Not asked for (or not needed: a fresh hit).
    NotAsked,
    /// The caller holds it: the caller computes.
    Mine,
    /// Another caller holds it: that caller computes.
    Theirs,
    /// Held back after a failed recomputation: serve the fallback, do not retry yet.
    Throttled,
}

/// The answer to a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lookup {
    pub(crate) freshness: Freshness,
    pub(crate) lease: LeaseState,
    /// The stored entry (envelope with timestamps) unless missing. Shared: the embedded store
    /// hands out its own copy without copying it, and the call hands it on to its followers.
    pub(crate) entry: Option<std::sync::Arc<Vec<u8>>>,
    /// The store's clock (microseconds) when it answered, if the lookup asked for it (a
    /// tagged call) and the store keeps one apart from the caller's (Redis), and the entry
    /// is not a fresh hit (which needs no computation).
    pub(crate) store_us: Option<u64>,
}

/// What a store answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreReply {
    /// A lookup's finding.
    Looked(Lookup),
    /// A put happened: live entries evicted by policy, expired entries reclaimed.
    Stored { evicted: u64, reclaimed: u64 },
    /// Yes or no (peek, remove).
    Flag(bool),
    /// A count (len, purge, purge of a structure, vacuum, invalidation of a tag).
    Count(u64),
}

impl StoreReply {
    fn mismatch(self, wanted: &str) -> Error {
        Error::new(
            ErrorKind::Backend,
            format!("store answered {self:?} where {wanted} was expected"),
        )
    }

    pub(crate) fn into_lookup(self) -> Result<Lookup, Error> {
        match self {
            StoreReply::Looked(l) => Ok(l),
            other => Err(other.mismatch("a lookup")),
        }
    }

    pub(crate) fn into_stored(self) -> Result<(u64, u64), Error> {
        match self {
            StoreReply::Stored { evicted, reclaimed } => Ok((evicted, reclaimed)),
            other => Err(other.mismatch("a put result")),
        }
    }

    pub(crate) fn into_flag(self) -> Result<bool, Error> {
        match self {
            StoreReply::Flag(f) => Ok(f),
            other => Err(other.mismatch("a flag")),
        }
    }

    pub(crate) fn into_count(self) -> Result<u64, Error> {
        match self {
            StoreReply::Count(n) => Ok(n),
            other => Err(other.mismatch("a count")),
        }
    }
}
