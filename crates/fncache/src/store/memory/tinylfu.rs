//! `Policy::TinyLfu` in the embedded store: the segments and the frequency sketch of one
//! structure, and the rules of a use and of an insert. `tinylfu.lua` implements the same rules
//! over Redis keys; this is the model the property test holds it to, so every step here has
//! its line there.

use super::{Chain, MemStructure, Order};
use crate::key::Member;
use crate::policy::TinyLfuShape;

/// The segments, as the scripts number them (a member's score is `segment x 2^50 + use`).
pub(super) const WINDOW: u64 = 0;
pub(super) const PROBATION: u64 = 1;
pub(super) const PROTECTED: u64 = 2;

/// The W-TinyLFU state of one structure (its [`Order`]).
#[derive(Debug)]
pub(super) struct TinyLfu {
    shape: TinyLfuShape,
    /// Window, probation, protected: each oldest first.
    segments: [Chain; 3],
    lens: [u64; 3],
    sketch: Sketch,
    /// Entries the window and protected segments hold now (the climber moves them).
    window: u64,
    protected: u64,
    climber: Climber,
}

/// The window's climber, in integers: over each sample of `shape.sample` lookups (hits and
/// inserts) it counts the hits and those that found their entry in the window; at the end of
/// the sample it grows the window by the step when the window's hits per entry are more than
/// two thirds of the main space's hits per entry of protected's size, and shrinks it
/// otherwise (Caffeine's climber compares the sample's hit rate with the previous one's
/// instead, which on a trace of phases follows the phases: see docs/hit-ratio.md, fourth
/// pass). The step decays by 2% a sample and starts over at 6.25% of `maxsize` when the hit
/// rate moves by 5 points or more. In Redis: the `h`, `m`, `r`, `t`, `w`, `p`, `x` fields of
/// the sketch's header.
#[derive(Debug)]
struct Climber {
    hits: u64,
    misses: u64,
    /// The previous sample's hits.
    previous: u64,
    /// The next move, in entries (negative: the window shrinks).
    step: i64,
    /// Hits of this sample that found their entry in the window.
    window_hits: u64,
}

/// The count-min sketch: 4-bit counters, two per byte, the even one in the high nibble (as
/// Redis `BITFIELD u4` addresses them), so the bytes are those of the Redis string.
#[derive(Debug)]
struct Sketch {
    bytes: Vec<u8>,
    /// Counted uses since the last halving (in Redis, the `n` field of the meta hash).
    added: u64,
}

impl Sketch {
    fn counter(&self, i: u64) -> u8 {
        let byte = usize::try_from(i / 2)
            .ok()
            .and_then(|at| self.bytes.get(at))
            .copied()
            .unwrap_or(0);
        if i.is_multiple_of(2) {
            byte >> 4
        } else {
            byte & 0xf
        }
    }

    fn set(&mut self, i: u64, value: u8) {
        let Some(byte) = usize::try_from(i / 2)
            .ok()
            .and_then(|at| self.bytes.get_mut(at))
        else {
            return;
        };
        *byte = if i.is_multiple_of(2) {
            (*byte & 0x0f) | (value << 4)
        } else {
            (*byte & 0xf0) | (value & 0xf)
        };
    }

    /// The estimated frequency of `member`: the least of its counters.
    fn frequency(&self, shape: &TinyLfuShape, member: &Member) -> u8 {
        shape
            .counters(member)
            .iter()
            .map(|&c| self.counter(c))
            .min()
            .unwrap_or(0)
    }

    /// Counts one use of `member`: each of its counters below 15 grows by one; when one did,
    /// the use counts, and after `shape.aging` of them every counter is halved (aging) and the
    /// count too (as Caffeine, without its correction for odd counters).
    fn increment(&mut self, shape: &TinyLfuShape, member: &Member) {
        let mut added = false;
        for c in shape.counters(member) {
            let value = self.counter(c);
            if value < 15 {
                self.set(c, value + 1);
                added = true;
            }
        }
        if !added {
            return;
        }
        self.added += 1;
        if self.added >= shape.aging {
            // Redis halves a slice of the string when it is next used instead (tinylfu.lua):
            // the same counters are read either way.
            for byte in &mut self.bytes {
                *byte = (*byte >> 1) & 0x77;
            }
            self.added /= 2;
        }
    }
}

impl TinyLfu {
    pub(super) fn new(shape: TinyLfuShape) -> TinyLfu {
        TinyLfu {
            shape,
            segments: [Chain::new(), Chain::new(), Chain::new()],
            lens: [0; 3],
            sketch: Sketch {
                bytes: vec![0; usize::try_from(shape.blocks * 64).unwrap_or(0)],
                added: 0,
            },
            window: shape.window,
            protected: shape.protected,
            climber: Climber {
                hits: 0,
                misses: 0,
                previous: 0,
                step: -step(shape.step),
                window_hits: 0,
            },
        }
    }

    /// Counts a lookup (a hit, or the insert after a miss); at the end of a sample, moves the
    /// window's size (as `tlfu_climb` in tinylfu.lua). Returns the entries the window grew by (negative: shrank by), for
    /// [`MemStructure::tinylfu_resize`].
    fn climb(&mut self, hit: bool) -> i64 {
        let c = &mut self.climber;
        if hit {
            c.hits += 1;
        } else {
            c.misses += 1;
        }
        if c.hits + c.misses < self.shape.sample {
            return 0;
        }
        let change = step(c.hits) - step(c.previous);
        // The direction comes from within the sample: the window grows when its hits per entry
        // (window hits / window) exceed two thirds of the main space's (the other hits /
        // protected's size), that is window hits x protected x 3 > main hits x window x 2. A
        // hit rate compared across samples follows a trace's phases more than the last move
        // (on `cache2k-orm-busy` at 1% the window wandered between 1 and 600 entries). In
        // doubles, as Lua computes it: the same IEEE operations in the same order, so the two
        // stores agree even where a product passes 2^53 (caches of hundreds of millions).
        let magnitude = c.step.saturating_abs();
        let main_hits = c.hits.saturating_sub(c.window_hits);
        let grow = c.window_hits as f64 * self.protected as f64 * 3.0
            > main_hits as f64 * self.window as f64 * 2.0;
        let amount = if grow { magnitude } else { -magnitude };
        c.step = if change.unsigned_abs().saturating_mul(20) >= self.shape.sample {
            if amount >= 0 {
                step(self.shape.step)
            } else {
                -step(self.shape.step)
            }
        } else {
            // 98% of it, truncated toward zero, without overflowing.
            amount / 100 * 98 + amount % 100 * 98 / 100
        };
        c.previous = c.hits;
        c.hits = 0;
        c.misses = 0;
        c.window_hits = 0;
        // At most MOVES_MAX entries change segment at once (a script's latency).
        if amount > 0 {
            let quota = amount.unsigned_abs().min(self.protected).min(MOVES_MAX);
            self.protected -= quota;
            self.window += quota;
            step(quota)
        } else {
            let quota = amount
                .unsigned_abs()
                .min(self.window.saturating_sub(1))
                .min(MOVES_MAX);
            self.window -= quota;
            self.protected += quota;
            -step(quota)
        }
    }

    fn chain(&mut self, segment: u64) -> Option<&mut Chain> {
        self.segments.get_mut(usize::try_from(segment).ok()?)
    }

    /// Appends `member` to `segment` (its newest); returns its node.
    pub(super) fn push(&mut self, segment: u64, member: Member) -> usize {
        if let Some(len) = self.lens.get_mut(segment as usize) {
            *len += 1;
        }
        self.chain(segment).map_or(0, |c| c.push_back(member))
    }

    /// Takes the node `at` out of `segment`.
    pub(super) fn unlink(&mut self, segment: u64, at: usize) {
        if let Some(len) = self.lens.get_mut(segment as usize) {
            *len = len.saturating_sub(1);
        }
        if let Some(chain) = self.chain(segment) {
            chain.remove(at);
        }
    }

    fn oldest(&self, segment: u64) -> Option<Member> {
        self.segments.get(segment as usize)?.front()
    }

    fn len(&self, segment: u64) -> u64 {
        self.lens.get(segment as usize).copied().unwrap_or(0)
    }
}

/// The least frequency of a candidate that may be admitted against a victim used as often or
/// more (Caffeine's `ADMIT_HASHDOS_THRESHOLD`).
const WARM: u8 = 6;

/// Caffeine's random admission (1 in 128) of a warm candidate, made deterministic so that
/// Redis and the embedded store agree: the counted uses of the sketch plus the candidate's
/// ninth byte (BLAKE3 output, like a hash of it), modulo 128 (as `tlfu_lucky` in tinylfu.lua).
fn lucky(added: u64, candidate: &Member) -> bool {
    added.wrapping_add(u64::from(candidate[8])) % 128 == 0
}

/// The most entries a resize of the window moves at once (Caffeine's queue transfer threshold).
const MOVES_MAX: u64 = 1000;

/// An entry count as a step (sizes beyond `i64::MAX` are not cached anyway).
fn step(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl MemStructure {
    fn tinylfu(&mut self) -> Option<&mut TinyLfu> {
        match &mut self.order {
            Order::TinyLfu(t) => Some(t),
            _ => None,
        }
    }

    /// Makes `member` (present) the newest of `segment`.
    fn move_to(&mut self, member: Member, segment: u64) {
        let Order::TinyLfu(t) = &mut self.order else {
            return;
        };
        let Some(slot) = self.slots.get_mut(&member) else {
            return;
        };
        if slot.score == segment {
            if let Some(chain) = t.chain(segment) {
                chain.move_to_back(slot.at);
            }
            return;
        }
        t.unlink(slot.score, slot.at);
        slot.at = t.push(segment, member);
        slot.score = segment;
    }

    /// A hit of `member`: counted by the climber, then a use.
    pub(super) fn tinylfu_hit(&mut self, member: Member) {
        let resized = self.tinylfu().map_or(0, |t| t.climb(true));
        self.tinylfu_resize(resized);
        self.tinylfu_touch(member, true);
    }

    /// After the climber moved the window's size by `by` entries: as Caffeine, a larger window
    /// takes that many of the main space's oldest entries (probation's first), protected's
    /// overflow goes back to probation, and a smaller window gives its oldest to probation
    /// (as `tlfu_resize` in tinylfu.lua).
    fn tinylfu_resize(&mut self, by: i64) {
        if by > 0 {
            for _ in 0..by {
                let Some(oldest) = self
                    .tinylfu()
                    .and_then(|t| t.oldest(PROBATION).or_else(|| t.oldest(PROTECTED)))
                else {
                    break;
                };
                self.move_to(oldest, WINDOW);
            }
            while let Some(oldest) = self
                .tinylfu()
                .filter(|t| t.len(PROTECTED) > t.protected)
                .and_then(|t| t.oldest(PROTECTED))
            {
                self.move_to(oldest, PROBATION);
            }
        } else if by < 0 {
            while let Some(oldest) = self
                .tinylfu()
                .filter(|t| t.len(WINDOW) > t.window)
                .and_then(|t| t.oldest(WINDOW))
            {
                self.move_to(oldest, PROBATION);
            }
        }
    }

    /// A use of `member` (present): a hit (`hit`, after the climber counted it), or an
    /// overwrite (as `tlfu_touch` in tinylfu.lua).
    pub(super) fn tinylfu_touch(&mut self, member: Member, hit: bool) {
        let segment = self.slots.get(&member).map_or(WINDOW, |s| s.score);
        let Some(t) = self.tinylfu() else { return };
        t.sketch.increment(&t.shape, &member);
        if hit && segment == WINDOW {
            t.climber.window_hits += 1;
        }
        match segment {
            PROBATION => {
                self.move_to(member, PROTECTED);
                loop {
                    let Some(t) = self.tinylfu() else { return };
                    if t.len(PROTECTED) <= t.protected {
                        break;
                    }
                    let Some(demoted) = t.oldest(PROTECTED) else {
                        break;
                    };
                    self.move_to(demoted, PROBATION);
                }
            }
            other => self.move_to(member, other),
        }
    }

    /// A miss about to be filled: counted by the climber (before the new entry enters the
    /// window, as `tlfu_insert` does).
    pub(super) fn tinylfu_miss(&mut self) {
        let resized = self.tinylfu().map_or(0, |t| t.climb(false));
        self.tinylfu_resize(resized);
    }

    /// After `member` was inserted into the window (and [`MemStructure::tinylfu_miss`]):
    /// counts its use, moves the window's overflow to probation, and evicts down to `maxsize`
    /// (as `tlfu_insert` in tinylfu.lua). Returns the evicted members (removed, with their
    /// entries).
    pub(super) fn tinylfu_admit(&mut self, member: Member, maxsize: u64) -> Vec<Member> {
        let Some(t) = self.tinylfu() else {
            return Vec::new();
        };
        t.sketch.increment(&t.shape, &member);
        let mut candidate = None;
        // The window's overflow (more than one entry after the climber shrank it).
        while let Some(oldest) = self
            .tinylfu()
            .filter(|t| t.len(WINDOW) > t.window)
            .and_then(|t| t.oldest(WINDOW))
        {
            self.move_to(oldest, PROBATION);
            candidate.get_or_insert(oldest);
        }
        let mut out = Vec::new();
        while (self.slots.len() as u64) > maxsize {
            let Some(t) = self.tinylfu() else { break };
            let victim = t.oldest(PROBATION);
            let loser = match (candidate.take(), victim) {
                // The duel: the candidate stays if it is used more often than the victim, or,
                // warm (a frequency of at least 6), once in 128 duels (Caffeine's guard against
                // a hot victim that keeps out every candidate).
                (Some(c), Some(v)) if c != v => {
                    let (fc, fv) = (
                        t.sketch.frequency(&t.shape, &c),
                        t.sketch.frequency(&t.shape, &v),
                    );
                    if fc > fv || (fc >= WARM && lucky(t.sketch.added, &c)) {
                        v
                    } else {
                        c
                    }
                }
                (Some(c), _) => c,
                (None, _) => {
                    let Some(oldest) = victim
                        .or_else(|| t.oldest(PROTECTED))
                        .or_else(|| t.oldest(WINDOW))
                    else {
                        break;
                    };
                    oldest
                }
            };
            self.remove_entry(&loser);
            out.push(loser);
        }
        out
    }
}
