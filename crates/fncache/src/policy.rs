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
    /// W-TinyLFU, as Caffeine does it: a small LRU window (1% of `maxsize` to start with) in
    /// front of a segmented LRU main space (probation, and protected at 80% of it), and a
    /// count-min sketch of recent use frequencies (4-bit counters, halved every
    /// `5 x maxsize` uses, at least 2,048), kept for keys that are not cached too. When the
    /// window overflows, its oldest entry enters probation, and a full cache keeps whichever of
    /// it and probation's oldest entry the sketch says is used more often (ties keep the
    /// incumbent, except that a candidate used 6 times or more wins one such duel in 128, as
    /// Caffeine's): a burst of keys used once cannot flush frequently used entries. A
    /// climber moves the window's size once per sample: larger while the window's hits per
    /// entry are more than two thirds of the main space's, smaller otherwise. The best
    /// average hit ratio of fncache's policies (docs/hit-ratio.md). Deterministic (the
    /// one-in-128 draw comes from the sketch's use count and the key's hash): the same calls
    /// give the same hits on Redis and on the embedded store. On
    /// Redis the sketch costs 8 bytes per entry of `maxsize` (rounded up to a power of two; at
    /// least 1 KiB, at most 8 MiB) in one more key of the structure (`:5`), and a hit
    /// runs six commands in its script instead of two.
    TinyLfu,
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
    /// W-TinyLFU: into the window segment, then the admission duel (see [`TinyLfuShape`]).
    Window,
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
    /// W-TinyLFU: the sketch counts the use; the entry moves to the head of its segment, from
    /// probation to protected (whose oldest entry may go back to probation).
    Segmented,
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
    /// W-TinyLFU: the window's oldest against probation's oldest, by sketched frequency.
    Admission,
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
    pub const ALL: [Policy; 8] = [
        Policy::Lru,
        Policy::LruT,
        Policy::Fifo,
        Policy::FifoT,
        Policy::Lfu,
        Policy::Mru,
        Policy::Random,
        Policy::TinyLfu,
    ];

    /// The name used in Redis keys: `lru, lru_t, fifo, fifo_t, lfu, mru, rr, tlfu`.
    pub fn tag(self) -> &'static str {
        match self {
            Policy::Lru => "lru",
            Policy::LruT => "lru_t",
            Policy::Fifo => "fifo",
            Policy::FifoT => "fifo_t",
            Policy::Lfu => "lfu",
            Policy::Mru => "mru",
            Policy::Random => "rr",
            Policy::TinyLfu => "tlfu",
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
            Policy::TinyLfu => (Sorted, I::Window, T::Segmented, V::Admission),
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
            InsertRule::Window => "tlfu",
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
            TouchRule::Segmented => "tlfu",
        }
    }
}

impl VictimRule {
    pub(crate) fn script_word(self) -> &'static str {
        match self {
            VictimRule::Lowest => "min",
            VictimRule::Highest => "max",
            VictimRule::Random => "random",
            VictimRule::Admission => "tlfu",
        }
    }
}

/// The sizes of a W-TinyLFU structure of `maxsize` entries: computed here once, so that the
/// embedded store and the Redis scripts (which receive them as arguments) use the same
/// integers.
///
/// The sketch is Caffeine's layout: `blocks` blocks of 64 bytes (128 4-bit counters), each
/// block 4 rows of 32 counters. A member's first 4 bytes (big-endian) modulo `blocks` pick its
/// block, and the low 5 bits of its bytes 5 to 8 its counter in each row: counter
/// `block * 128 + row * 32 + (byte & 31)`, the counter `i` being bits `4i..4i+4` of the
/// sketch string, most significant first (Redis `BITFIELD u4 #i`). Members are BLAKE3
/// output, so these bytes are as good as any hash of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TinyLfuShape {
    /// Entries the window holds before its oldest moves to probation.
    pub(crate) window: u64,
    /// Entries the protected segment holds before its oldest moves back to probation.
    pub(crate) protected: u64,
    /// 64-byte blocks of the sketch (a power of two, at least 16).
    pub(crate) blocks: u64,
    /// The number of lookups (hits and inserts) over which the window's climber counts the
    /// hits in the window and in the main space: 10 x `maxsize` (at least 1,280), as
    /// Caffeine's sample.
    pub(crate) sample: u64,
    /// Counted uses after which every counter is halved (aging): 5 x `maxsize`, at least
    /// 2,048. Half Caffeine's period: popularity that moves (`lirs-sprite`, `lirs-multi2`)
    /// is seen twice as fast, while the floor keeps a loop longer than a small cache
    /// (`lirs-loop`) visible to the filter.
    pub(crate) aging: u64,
    /// The climber's first step (entries the window grows or shrinks by): 6.25% of
    /// `maxsize`, at least 1, as Caffeine's.
    pub(crate) step: u64,
}

/// The largest `maxsize` the sketch is sized for (8 MiB of counters); a larger cache shares it.
const SKETCH_CAPACITY_MAX: u64 = 1 << 20;

/// The smallest `maxsize` the sketch is sized for (1 KiB of counters), as moka: a small cache
/// still counts uses over a sample of 1,280, enough to see that the keys of a loop longer
/// than the cache recur.
const SKETCH_CAPACITY_MIN: u64 = 128;

/// The fewest counted uses between two halvings of the sketch (see [`TinyLfuShape::aging`]):
/// two turns of `lirs-loop`'s 1,011 keys, so that a small cache sees every key of a loop
/// recur before the counts are halved (a floor of 1,280 lost `lirs-loop` 25% 4 points).
const AGING_MIN: u64 = 16 * SKETCH_CAPACITY_MIN;

impl TinyLfuShape {
    pub(crate) fn new(maxsize: u64) -> TinyLfuShape {
        let maxsize = maxsize.max(1);
        // Caffeine's shares: the window 1% (rounded up, so at least one entry), protected 80%
        // of the rest.
        let window = maxsize.div_ceil(100);
        let main = maxsize - window;
        let protected = main / 5 * 4 + main % 5 * 4 / 5;
        let capacity = maxsize.clamp(SKETCH_CAPACITY_MIN, SKETCH_CAPACITY_MAX);
        // 8 bytes per entry, as Caffeine: a 64-bit word of 16 counters per entry.
        let blocks = (capacity.max(16).next_power_of_two() / 8).max(2);
        TinyLfuShape {
            window,
            protected,
            blocks,
            sample: 10 * capacity,
            aging: (5 * capacity).max(AGING_MIN),
            step: (maxsize / 16).max(1),
        }
    }

    /// The rule word the scripts receive for this policy (the touch rule of `get.lua`, the
    /// insert rule of `put.lua`): `tlfu:` and the shape, window, protected, blocks, sample,
    /// step and aging, each a big-endian u64 (`tinylfu.lua` unpacks them in one
    /// `struct.unpack`, about 1 µs less per script than parsing decimal fields).
    /// Carried in the rule word rather than in arguments of their own, so the scripts' other
    /// arguments keep their places.
    pub(crate) fn script_word(&self) -> Vec<u8> {
        let mut word = Vec::with_capacity(5 + 6 * 8);
        word.extend_from_slice(b"tlfu:");
        for field in [
            self.window,
            self.protected,
            self.blocks,
            self.sample,
            self.step,
            self.aging,
        ] {
            word.extend_from_slice(&field.to_be_bytes());
        }
        word
    }

    /// The sketch's counters of `member`, one per row.
    pub(crate) fn counters(&self, member: &[u8; 16]) -> [u64; 4] {
        let block = u64::from(u32::from_be_bytes([
            member[0], member[1], member[2], member[3],
        ])) % self.blocks;
        std::array::from_fn(|row| block * 128 + row as u64 * 32 + u64::from(member[4 + row] & 31))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_the_documented_ones() {
        let tags: Vec<_> = Policy::ALL.iter().map(|p| p.tag()).collect();
        assert_eq!(
            tags,
            ["lru", "lru_t", "fifo", "fifo_t", "lfu", "mru", "rr", "tlfu"]
        );
        assert_eq!(Policy::default(), Policy::LruT);
    }

    #[test]
    fn only_random_uses_a_plain_set() {
        for p in Policy::ALL {
            assert_eq!(p.rules().index == IndexKind::Set, p == Policy::Random);
        }
    }

    #[test]
    fn tinylfu_shapes_follow_caffeine() {
        let s = TinyLfuShape::new(1000);
        assert_eq!(
            (s.window, s.protected, s.blocks, s.sample, s.aging),
            (10, 792, 128, 10_000, 5_000)
        );
        let s = TinyLfuShape::new(1);
        assert_eq!(
            (s.window, s.protected, s.blocks, s.sample, s.aging),
            (1, 0, 16, 1280, 2048)
        );
        let s = TinyLfuShape::new(u64::MAX);
        assert_eq!(s.blocks, (1 << 20) / 8);
        assert!(s.window + s.protected < u64::MAX);
        let c = s.counters(&[0xff; 16]);
        assert_eq!(c[3] - c[0], 3 * 32);
    }
}
