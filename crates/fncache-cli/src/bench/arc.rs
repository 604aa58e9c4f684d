//! A reference model of ARC, the Adaptive Replacement Cache of Megiddo and Modha ("ARC: A
//! Self-Tuning, Low Overhead Replacement Cache", FAST 2003): a measuring stick for what the
//! best-known online policies reach on the simulator's workloads. Not fncache's code and not a
//! policy fncache offers; the paper's Figure 4, case by case.
//!
//! The cache of `c` entries is T1 (keys seen once lately) and T2 (seen at least twice), both
//! LRU lists; B1 and B2 remember the keys lately evicted from each (keys only). A hit in B1
//! says T1 was too small: the target size p of T1 grows by max(1, |B2|/|B1|); a hit in B2
//! shrinks it by max(1, |B1|/|B2|). REPLACE evicts T1's LRU key into B1 when T1 is above its
//! target (or at it, for a key found in B2), else T2's into B2.
//!
//! p is a real number in [0, c], as in the paper (whose deltas are ratios, not integer
//! quotients); some implementations (Caffeine's simulator among them) truncate the ratios.
//! Checked by hand against Caffeine's `ArcPolicy.java`: with truncated ratios this model makes
//! the same hits, to the hit, on loop, multi2, sprite and 2_pools at 1, 5, 10, 25 and 50% of
//! their distinct keys; the real-valued p of the paper moves them by 0.2 points at most.

use super::links::Lists;

const T1: u8 = 0;
const T2: u8 = 1;
const B1: u8 = 2;
const B2: u8 = 3;

struct Arc {
    c: usize,
    /// Target size of T1.
    p: f64,
    lists: Lists,
}

impl Arc {
    fn new(keys: usize, c: usize) -> Arc {
        Arc {
            c,
            p: 0.0,
            lists: Lists::new(keys, 4),
        }
    }

    fn len(&self, list: u8) -> usize {
        self.lists.len(list)
    }

    /// One reference to `x`: whether it was a hit.
    fn access(&mut self, x: u32) -> bool {
        let (t1, b1, t2, b2) = (self.len(T1), self.len(B1), self.len(T2), self.len(B2));
        let c = self.c as f64;
        match self.lists.list_of(x) {
            // Case I: a hit, x to T2's MRU end.
            Some(T1 | T2) => {
                self.lists.push_front(T2, x);
                return true;
            }
            // Case II: a miss remembered in B1: T1 deserves more room.
            Some(B1) => {
                let delta = if b1 >= b2 { 1.0 } else { b2 as f64 / b1 as f64 };
                self.p = (self.p + delta).min(c);
                self.replace(false);
                self.lists.push_front(T2, x);
            }
            // Case III: a miss remembered in B2: T2 deserves more room.
            Some(B2) => {
                let delta = if b2 >= b1 { 1.0 } else { b1 as f64 / b2 as f64 };
                self.p = (self.p - delta).max(0.0);
                self.replace(true);
                self.lists.push_front(T2, x);
            }
            // Case IV: a miss in the cache and its history.
            _ => {
                let l1 = t1 + b1;
                let total = l1 + t2 + b2;
                if l1 == self.c {
                    if t1 < self.c {
                        // (A) L1 full with history in B1: B1 forgets its LRU key.
                        self.lists.pop_back(B1);
                        self.replace(false);
                    } else {
                        // (A) L1 is all T1 (B1 empty): T1's LRU key leaves without a trace.
                        self.lists.pop_back(T1);
                    }
                } else if l1 < self.c && total >= self.c {
                    // (B) The directory is at 2c: B2 forgets its LRU key.
                    if total == 2 * self.c {
                        self.lists.pop_back(B2);
                    }
                    self.replace(false);
                }
                self.lists.push_front(T1, x);
            }
        }
        false
    }

    /// REPLACE(x, p): evict T1's LRU key into B1 when T1 is not empty and exceeds its target
    /// (or meets it and x was found in B2), else T2's LRU key into B2.
    fn replace(&mut self, x_in_b2: bool) {
        let t1 = self.len(T1) as f64;
        let from_t1 = t1 >= 1.0 && (t1 > self.p || (x_in_b2 && t1 == self.p));
        // The paper's invariants keep the chosen list non-empty; the other is a fallback only.
        let (first, second) = if from_t1 { (T1, T2) } else { (T2, T1) };
        for list in [first, second] {
            if let Some(victim) = self.lists.back(list) {
                self.lists
                    .push_front(if list == T1 { B1 } else { B2 }, victim);
                return;
            }
        }
    }

    /// The paper's invariants (tests only).
    #[cfg(test)]
    fn check(&self) {
        let (t1, b1, t2, b2) = (self.len(T1), self.len(B1), self.len(T2), self.len(B2));
        assert!(t1 + t2 <= self.c);
        assert!(t1 + b1 <= self.c);
        assert!(t1 + t2 + b1 + b2 <= 2 * self.c);
        assert!((0.0..=self.c as f64).contains(&self.p));
        // Ghosts exist only once the cache is full.
        if b1 + b2 > 0 {
            assert_eq!(t1 + t2, self.c);
        }
    }
}

/// Hits of ARC on `trace` (dense keys) with room for `capacity` entries.
pub(super) fn hits(trace: &[u32], distinct: usize, capacity: usize) -> u64 {
    if capacity == 0 {
        return 0;
    }
    // Room for any key the trace holds, even one beyond `distinct`.
    let keys = trace
        .iter()
        .max()
        .map_or(0, |&m| m as usize + 1)
        .max(distinct);
    let mut arc = Arc::new(keys, capacity);
    trace.iter().filter(|&&key| arc.access(key)).count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::belady;

    /// Hits of a plain LRU of `capacity`.
    fn lru_hits(trace: &[u32], capacity: usize) -> u64 {
        let mut stack: Vec<u32> = Vec::new();
        let mut hits = 0;
        for &k in trace {
            if let Some(i) = stack.iter().position(|&x| x == k) {
                hits += 1;
                stack.remove(i);
            } else if stack.len() == capacity {
                stack.remove(0);
            }
            stack.push(k);
        }
        hits
    }

    #[test]
    fn pure_recency_is_lru() {
        // A sliding window: key k is used at once twice (into T2), then once more after the
        // next key's pair. Every reuse fits a cache of 4; T1 is empty whenever a new key
        // arrives, so REPLACE takes T2's LRU key, as LRU would: ARC misses first uses only.
        let trace: Vec<u32> = (0..50u32)
            .flat_map(|k| [k, k, k.saturating_sub(1)])
            .collect();
        for capacity in [2, 4, 8] {
            assert_eq!(hits(&trace, 50, capacity), lru_hits(&trace, capacity));
        }
        assert_eq!(hits(&trace, 50, 4), 100);
    }

    #[test]
    fn one_scan_does_not_flush_the_keys_used_twice() {
        // Room for 10: 9 hot keys used twice (into T2), a scan of 100 keys used once, the hot
        // keys again. The scan only churns T1 (p stays 0): every hot key still hits. LRU would
        // keep none of them.
        let hot: Vec<u32> = (0..9).collect();
        let mut trace = Vec::new();
        trace.extend(&hot);
        trace.extend(&hot);
        trace.extend(100..200);
        trace.extend(&hot);
        assert_eq!(hits(&trace, 200, 10), 9 + 9);
        assert_eq!(lru_hits(&trace, 10), 9);
    }

    #[test]
    fn ghost_hits_move_the_target() {
        // Room for 2. 0 0 (T2: 0), 1 (T1: 1), 2 evicts 1 into B1 (T1 above p = 0), 1 again: a
        // B1 hit, p rises to 1 and 0 (T2's LRU) goes to B2; 0 again: a B2 hit, p back to 0.
        let mut arc = Arc::new(3, 2);
        let hit: Vec<bool> = [0, 0, 1, 2, 1, 0]
            .iter()
            .map(|&k| {
                let h = arc.access(k);
                arc.check();
                h
            })
            .collect();
        assert_eq!(hit, [false, true, false, false, false, false]);
        assert_eq!(arc.p, 0.0);
        assert_eq!(arc.lists.list_of(0), Some(T2));
        assert_eq!(arc.lists.list_of(1), Some(T2));
    }

    #[test]
    fn keeps_its_invariants_and_never_beats_belady() {
        for (round, (trace, distinct)) in
            belady::checks::mixed_traces(11, 30).into_iter().enumerate()
        {
            belady::checks::bounded_by_belady("arc", hits, &trace, distinct);
            let mut arc = Arc::new(distinct, [1, 7, 40][round % 3]);
            for &k in &trace {
                arc.access(k);
                arc.check();
            }
        }
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        belady::checks::survives_odd_inputs(hits);
    }
}
