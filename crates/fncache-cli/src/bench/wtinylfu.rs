//! A reference model of W-TinyLFU with a fixed window, as sketched for `Policy::TinyLfu` in
//! docs/hit-ratio.md: what such a policy would reach before any Redis script is written. Not
//! fncache's code and not Caffeine's (no adaptive window, no random admission jitter, no
//! doorkeeper): a window LRU of 1% of the size, a main space of probation (20%) and protected
//! (80%) LRU segments, and a count-min sketch of 4-bit counters, halved every 10 x size
//! accesses, deciding whether the window's oldest entry may replace probation's oldest.

use std::collections::BTreeMap;

/// Where a key lives.
#[derive(Clone, Copy, PartialEq)]
enum Segment {
    Window,
    Probation,
    Protected,
}

/// Four rows of 4-bit counters (one byte each here, for clarity), each row 4 counters per
/// entry of the cache rounded up to a power of two: Caffeine's proportions (its table is one
/// 64-bit word of sixteen 4-bit counters per entry, four of them per row), 8 bytes per entry
/// packed.
struct Sketch {
    rows: [Vec<u8>; 4],
    mask: usize,
    additions: usize,
    sample: usize,
}

/// Per-row multipliers (odd 64-bit constants): four independent-enough hashes of a key.
const SEEDS: [u64; 4] = [
    0x9e37_79b9_7f4a_7c15,
    0xc2b2_ae3d_27d4_eb4f,
    0x1656_67b1_9e37_79f9,
    0xd6e8_feb8_6659_fd93,
];

impl Sketch {
    fn new(capacity: usize) -> Sketch {
        let width = 4 * capacity.max(4).next_power_of_two();
        Sketch {
            rows: std::array::from_fn(|_| vec![0; width]),
            mask: width - 1,
            additions: 0,
            sample: 10 * capacity.max(1),
        }
    }

    fn index(&self, row: usize, key: u32) -> usize {
        let h = (u64::from(key) + 1).wrapping_mul(SEEDS[row]);
        ((h ^ (h >> 29)) as usize) & self.mask
    }

    fn frequency(&self, key: u32) -> u8 {
        (0..4)
            .map(|r| self.rows[r][self.index(r, key)])
            .min()
            .unwrap_or(0)
    }

    fn increment(&mut self, key: u32) {
        for r in 0..4 {
            let i = self.index(r, key);
            let c = &mut self.rows[r][i];
            *c = (*c + 1).min(15);
        }
        self.additions += 1;
        if self.additions >= self.sample {
            // Aging: recent accesses count, old popularity fades.
            for row in &mut self.rows {
                for c in row.iter_mut() {
                    *c /= 2;
                }
            }
            self.additions /= 2;
        }
    }
}

/// An LRU list: stamp -> key, oldest first.
#[derive(Default)]
struct Lru(BTreeMap<u64, u32>);

impl Lru {
    fn oldest(&self) -> Option<u32> {
        self.0.values().next().copied()
    }
}

/// Hits of the model on `trace` (dense keys) with room for `capacity` entries.
pub(crate) fn hits(trace: &[u32], distinct: usize, capacity: usize) -> u64 {
    if capacity == 0 {
        return 0;
    }
    let window_cap = (capacity / 100).max(1);
    let main_cap = capacity - window_cap;
    let protected_cap = main_cap * 8 / 10;
    let mut sketch = Sketch::new(capacity);
    let mut lists = [Lru::default(), Lru::default(), Lru::default()];
    let slot = |s: Segment| s as usize;
    // where_[key]: its segment and stamp while cached.
    let mut where_: Vec<Option<(Segment, u64)>> = vec![None; distinct];
    let mut clock = 0u64;
    let mut hits = 0;
    let mut put = |lists: &mut [Lru; 3], where_: &mut Vec<Option<(Segment, u64)>>, key: u32, s| {
        clock += 1;
        lists[slot(s)].0.insert(clock, key);
        where_[key as usize] = Some((s, clock));
    };
    let take = |lists: &mut [Lru; 3], where_: &mut Vec<Option<(Segment, u64)>>, key: u32| {
        if let Some((s, stamp)) = where_[key as usize].take() {
            lists[slot(s)].0.remove(&stamp);
        }
    };
    for &key in trace {
        sketch.increment(key);
        match where_[key as usize].map(|(s, _)| s) {
            Some(Segment::Window) => {
                hits += 1;
                take(&mut lists, &mut where_, key);
                put(&mut lists, &mut where_, key, Segment::Window);
            }
            Some(Segment::Protected) => {
                hits += 1;
                take(&mut lists, &mut where_, key);
                put(&mut lists, &mut where_, key, Segment::Protected);
            }
            Some(Segment::Probation) => {
                hits += 1;
                take(&mut lists, &mut where_, key);
                put(&mut lists, &mut where_, key, Segment::Protected);
                if lists[slot(Segment::Protected)].0.len() > protected_cap
                    && let Some(demoted) = lists[slot(Segment::Protected)].oldest()
                {
                    take(&mut lists, &mut where_, demoted);
                    put(&mut lists, &mut where_, demoted, Segment::Probation);
                }
            }
            None => {
                put(&mut lists, &mut where_, key, Segment::Window);
                if lists[slot(Segment::Window)].0.len() <= window_cap {
                    continue;
                }
                let Some(candidate) = lists[slot(Segment::Window)].oldest() else {
                    continue;
                };
                take(&mut lists, &mut where_, candidate);
                let main = lists[slot(Segment::Probation)].0.len()
                    + lists[slot(Segment::Protected)].0.len();
                if main < main_cap {
                    put(&mut lists, &mut where_, candidate, Segment::Probation);
                    continue;
                }
                let victim = lists[slot(Segment::Probation)]
                    .oldest()
                    .or_else(|| lists[slot(Segment::Protected)].oldest());
                match victim {
                    Some(victim) if sketch.frequency(candidate) > sketch.frequency(victim) => {
                        take(&mut lists, &mut where_, victim);
                        put(&mut lists, &mut where_, candidate, Segment::Probation);
                    }
                    // The candidate loses (or there is no main space): it leaves.
                    _ => {}
                }
            }
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::belady;

    #[test]
    fn never_holds_more_than_its_size_nor_beats_belady() {
        let mut rng = fastrand::Rng::with_seed(5);
        for _ in 0..30 {
            let trace: Vec<u64> = (0..2000).map(|_| rng.u64(..200)).collect();
            let (trace, distinct) = belady::dense(&trace);
            for capacity in [1, 2, 10, 50, 150, 200] {
                let h = hits(&trace, distinct, capacity);
                assert!(h <= belady::belady_hits(&trace, distinct, capacity));
            }
            // Room for every key: only first uses miss.
            assert_eq!(
                hits(&trace, distinct, distinct + 100),
                (trace.len() - distinct) as u64
            );
        }
    }

    #[test]
    fn the_filter_keeps_frequent_keys_out_of_reach_of_a_scan() {
        // Room for 100 (window 1, probation and protected 99): 99 hot keys used 4 times each
        // fill the main space; then 500 keys used once (fewer accesses in all than the 1,000
        // after which the sketch ages), then the hot keys again. Each scanned key leaves the
        // window with a count of 1 against probation's oldest hot key at 4, and is dropped:
        // every hot key still hits. Admitting every candidate instead (no filter) would
        // let the scan flush probation's 20 hot keys; an LRU of 100 would keep none.
        let mut trace: Vec<u64> = Vec::new();
        for _ in 0..4 {
            trace.extend(0..99);
        }
        trace.extend(1000..1500);
        trace.extend(0..99);
        let (trace, distinct) = belady::dense(&trace);
        let warm = 3 * 99;
        assert!(
            hits(&trace, distinct, 100) >= warm + 97,
            "{}",
            hits(&trace, distinct, 100)
        );
    }
}
