//! Eviction policies as data.
//!
//! A policy is not code: it is a handful of rules (how a new entry is scored, what a use does
//! to the score, which end of the index is evicted). The Redis scripts and the embedded store
//! both interpret the same rules, which is what makes the embedded store a faithful model.

/// Which entry leaves when a full structure receives a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Policy {
    /// Least recently used, by a per-structure use counter.
    Lru,
    /// Least recently used, by time in microseconds (the default): writes are scored with the
    /// server's time, Redis hits with the calling process's clock (see the README's eviction
    /// policies).
    #[default]
    LruT,
    /// First in, first out, by a per-structure insert counter; reads do not matter.
    Fifo,
    /// First in, first out, by server time in microseconds.
    FifoT,
    /// Least frequently used: new entries start at 1, every hit adds 1; ties go by member order.
    Lfu,
    /// Most recently used goes first.
    Mru,
    /// Any entry, at random.
    Random,
}

/// How the index of a structure is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexKind {
    /// A sorted set: member -> score.
    Sorted,
    /// A plain set (random eviction needs no scores).
    Set,
}

/// The score a new entry gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InsertRule {
    /// One more than the highest score in the index.
    Counter,
    /// Server time in microseconds.
    Time,
    /// Always 1 (a use count).
    One,
    /// No score: the index is a plain set.
    Set,
}

/// What a use (a hit, or an overwrite of an existing entry) does to the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TouchRule {
    /// Nothing.
    None,
    /// Becomes one more than the highest score (unless already the highest).
    Counter,
    /// Becomes the time in microseconds: the server's on a write, the caller's on a Redis hit.
    Time,
    /// Grows by one.
    Increment,
}

/// Which member is evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VictimRule {
    /// Lowest score (ties: lowest member bytes).
    Lowest,
    /// Highest score (ties: highest member bytes).
    Highest,
    /// Any member.
    Random,
}

/// The rules of one policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rules {
    pub(crate) index: IndexKind,
    pub(crate) insert: InsertRule,
    pub(crate) touch: TouchRule,
    pub(crate) victim: VictimRule,
}

impl Policy {
    /// Every policy, for tests and tools that iterate over them.
    pub const ALL: [Policy; 7] = [
        Policy::Lru,
        Policy::LruT,
        Policy::Fifo,
        Policy::FifoT,
        Policy::Lfu,
        Policy::Mru,
        Policy::Random,
    ];

    /// The name used in Redis keys: `lru, lru_t, fifo, fifo_t, lfu, mru, rr`.
    pub fn tag(self) -> &'static str {
        match self {
            Policy::Lru => "lru",
            Policy::LruT => "lru_t",
            Policy::Fifo => "fifo",
            Policy::FifoT => "fifo_t",
            Policy::Lfu => "lfu",
            Policy::Mru => "mru",
            Policy::Random => "rr",
        }
    }

    /// True when the evicted entry depends only on the sequence of calls, not on chance, so
    /// two stores fed the same calls one after another hold the same entries. (Timestamp
    /// policies count: each store's time strictly increases from one operation to the next.)
    pub fn is_deterministic(self) -> bool {
        self != Policy::Random
    }

    pub(crate) fn rules(self) -> Rules {
        use {IndexKind::*, InsertRule as I, TouchRule as T, VictimRule as V};
        let (index, insert, touch, victim) = match self {
            Policy::Lru => (Sorted, I::Counter, T::Counter, V::Lowest),
            Policy::LruT => (Sorted, I::Time, T::Time, V::Lowest),
            Policy::Fifo => (Sorted, I::Counter, T::None, V::Lowest),
            Policy::FifoT => (Sorted, I::Time, T::None, V::Lowest),
            Policy::Lfu => (Sorted, I::One, T::Increment, V::Lowest),
            Policy::Mru => (Sorted, I::Counter, T::Counter, V::Highest),
            Policy::Random => (Set, I::Set, T::None, V::Random),
        };
        Rules {
            index,
            insert,
            touch,
            victim,
        }
    }
}

impl IndexKind {
    /// The word the scripts use for this kind.
    pub(crate) fn script_word(self) -> &'static str {
        match self {
            IndexKind::Sorted => "zset",
            IndexKind::Set => "set",
        }
    }
}

impl InsertRule {
    pub(crate) fn script_word(self) -> &'static str {
        match self {
            InsertRule::Counter => "counter",
            InsertRule::Time => "time",
            InsertRule::One => "one",
            InsertRule::Set => "set",
        }
    }
}

impl TouchRule {
    pub(crate) fn script_word(self) -> &'static str {
        match self {
            TouchRule::None => "none",
            TouchRule::Counter => "counter",
            TouchRule::Time => "time",
            TouchRule::Increment => "incr",
        }
    }
}

impl VictimRule {
    pub(crate) fn script_word(self) -> &'static str {
        match self {
            VictimRule::Lowest => "min",
            VictimRule::Highest => "max",
            VictimRule::Random => "random",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_the_documented_ones() {
        let tags: Vec<_> = Policy::ALL.iter().map(|p| p.tag()).collect();
        assert_eq!(tags, ["lru", "lru_t", "fifo", "fifo_t", "lfu", "mru", "rr"]);
        assert_eq!(Policy::default(), Policy::LruT);
    }

    #[test]
    fn only_random_uses_a_plain_set() {
        for p in Policy::ALL {
            assert_eq!(p.rules().index == IndexKind::Set, p == Policy::Random);
        }
    }
}
