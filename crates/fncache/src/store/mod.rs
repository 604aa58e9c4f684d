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
    pub(crate) naming: Naming,
}

/// One request to a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreOp {
    /// Look an entry up, recording the use by policy and sliding the TTL.
    Get {
        structure: Structure,
        member: Member,
    },
    /// Store an entry, evicting by policy when full. `head` is the envelope's format and
    /// codec bytes (the codec is chosen per call).
    Put {
        structure: Structure,
        member: Member,
        head: [u8; 2],
        payload: Vec<u8>,
        entry_ttl: Option<Duration>,
    },
    /// Is a live entry there? Changes nothing.
    Peek {
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
}

/// What a store answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreReply {
    /// The stored entry (envelope with timestamps), or `None` on a miss.
    Entry(Option<Vec<u8>>),
    /// A put happened: live entries evicted by policy, expired entries reclaimed.
    Stored { evicted: u64, reclaimed: u64 },
    /// Yes or no (peek, remove).
    Flag(bool),
    /// A count (len, purge, purge of a structure, vacuum).
    Count(u64),
}

impl StoreReply {
    fn mismatch(self, wanted: &str) -> Error {
        Error::new(
            ErrorKind::Backend,
            format!("store answered {self:?} where {wanted} was expected"),
        )
    }

    pub(crate) fn into_entry(self) -> Result<Option<Vec<u8>>, Error> {
        match self {
            StoreReply::Entry(e) => Ok(e),
            other => Err(other.mismatch("an entry")),
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
