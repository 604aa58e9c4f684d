//! Belady's offline optimum (OPT / MIN) for entries of equal size: on a miss with a full
//! cache, evict the entry whose next use lies farthest in the future (or never comes). The
//! newcomer takes part in the choice, so it is dropped at once when it is the one needed last;
//! that is the true optimum when a cache may decline to keep what it just computed (the bound
//! Caffeine's simulator reports as "opt").

use std::collections::{BinaryHeap, HashMap};

/// The trace's keys renumbered 0.. in order of first appearance, and how many there are.
pub(crate) fn dense(trace: &[u64]) -> (Vec<u32>, usize) {
    let mut ids: HashMap<u64, u32> = HashMap::new();
    let dense = trace
        .iter()
        .map(|&key| {
            let next = ids.len() as u32;
            *ids.entry(key).or_insert(next)
        })
        .collect();
    (dense, ids.len())
}

/// Hits of Belady's optimum on `trace` (dense keys, see [`dense`]) with room for `capacity`
/// entries.
pub(crate) fn belady_hits(trace: &[u32], distinct: usize, capacity: usize) -> u64 {
    const NEVER: usize = usize::MAX;
    // next_use[i]: where trace[i]'s key comes next, NEVER if it does not.
    let mut next_use = vec![NEVER; trace.len()];
    let mut seen = vec![NEVER; distinct];
    for (i, &key) in trace.iter().enumerate().rev() {
        next_use[i] = seen[key as usize];
        seen[key as usize] = i;
    }
    // cached[key]: the key's next use while it is cached. The heap holds (next use, key) for
    // cached keys, farthest first, plus stale pairs from earlier uses, skipped when popped and
    // swept out when they outnumber the live ones.
    let mut cached: Vec<Option<usize>> = vec![None; distinct];
    let mut len = 0;
    let mut heap: BinaryHeap<(usize, u32)> = BinaryHeap::new();
    let mut hits = 0;
    for (i, &key) in trace.iter().enumerate() {
        let slot = &mut cached[key as usize];
        if slot.is_some() {
            hits += 1;
        } else if capacity == 0 {
            continue;
        } else {
            len += 1;
        }
        *slot = Some(next_use[i]);
        heap.push((next_use[i], key));
        if len > capacity {
            while let Some((next, victim)) = heap.pop() {
                if cached[victim as usize] == Some(next) {
                    cached[victim as usize] = None;
                    len -= 1;
                    break;
                }
            }
        }
        if heap.len() > 2 * capacity + 1024 {
            heap.retain(|&(next, k)| cached[k as usize] == Some(next));
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(keys: &str, capacity: usize) -> u64 {
        let trace: Vec<u64> = keys.bytes().map(u64::from).collect();
        let (trace, distinct) = dense(&trace);
        belady_hits(&trace, distinct, capacity)
    }

    #[test]
    fn dense_numbers_keys_by_first_appearance() {
        assert_eq!(dense(&[70, 3, 70, 9]), (vec![0, 1, 0, 2], 3));
    }

    #[test]
    fn evicts_the_entry_needed_farthest_ahead() {
        // Room for 2: a b miss; c is never used again, a and b are: c goes; a, b hit.
        assert_eq!(opt("abcab", 2), 2);
        // LRU would evict a at c and miss everything here; OPT keeps a: a b c a c a b.
        // a, b miss; c evicts b (next at 6, a at 3); a hits; c hits; a hits; b misses.
        assert_eq!(opt("abcacab", 2), 3);
    }

    #[test]
    fn a_newcomer_needed_last_is_not_kept() {
        // Room for 1: a x a: x is never used again, so a stays and hits.
        assert_eq!(opt("axa", 1), 1);
        // Room for 2, a loop of 3 (where LRU never hits): a b c a b c a b c.
        // a b miss; c: farthest is c itself (at 5) vs a (3), b (4): c is dropped; a, b hit;
        // c misses again: a next at 6, b at 7, c at 8: c dropped; a, b hit; c misses.
        assert_eq!(opt("abcabcabc", 2), 4);
    }

    #[test]
    fn edge_capacities() {
        assert_eq!(opt("aaaa", 0), 0);
        assert_eq!(
            opt("abab", 2),
            2,
            "everything fits: only the first uses miss"
        );
        assert_eq!(opt("", 3), 0);
    }

    #[test]
    fn never_worse_than_lru_and_monotone_in_size_on_random_traces() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..50 {
            let trace: Vec<u64> = (0..300).map(|_| rng.u64(..30)).collect();
            let (dense_trace, distinct) = dense(&trace);
            let mut last = 0;
            for capacity in 0..=distinct {
                let hits = belady_hits(&dense_trace, distinct, capacity);
                assert!(hits >= last, "more room, fewer hits");
                assert!(hits >= lru_hits(&trace, capacity), "OPT lost to LRU");
                last = hits;
            }
            assert_eq!(
                last,
                (trace.len() - distinct) as u64,
                "all fit: cold misses only"
            );
        }
    }

    /// A plain LRU to compare against.
    fn lru_hits(trace: &[u64], capacity: usize) -> u64 {
        let mut order: Vec<u64> = Vec::new();
        let mut hits = 0;
        for &key in trace {
            if let Some(at) = order.iter().position(|&k| k == key) {
                hits += 1;
                order.remove(at);
            } else if order.len() == capacity {
                if capacity == 0 {
                    continue;
                }
                order.remove(0);
            }
            order.push(key);
        }
        hits
    }
}

/// What the reference models' tests share: traces to replay and the bounds every model keeps.
#[cfg(test)]
pub(crate) mod checks {
    use super::{belady_hits, dense};

    /// `rounds` random traces of 2,000 accesses (dense), each a skewed mix of hot keys, a loop
    /// of 60 and one-off scans, from `seed`.
    pub(crate) fn mixed_traces(seed: u64, rounds: usize) -> Vec<(Vec<u32>, usize)> {
        let mut rng = fastrand::Rng::with_seed(seed);
        (0..rounds)
            .map(|_| {
                let keys: Vec<u64> = (0..2000)
                    .map(|i| match rng.u8(..3) {
                        0 => rng.u64(..20),
                        1 => 100 + (i % 60),
                        _ => rng.u64(..400) + 1000,
                    })
                    .collect();
                dense(&keys)
            })
            .collect()
    }

    /// `hits` takes odd inputs without a panic: no room, no keys, keys beyond `distinct`
    /// (still counted).
    pub(crate) fn survives_odd_inputs(hits: impl Fn(&[u32], usize, usize) -> u64) {
        assert_eq!(hits(&[], 0, 0), 0);
        assert_eq!(hits(&[], 0, 1), 0);
        assert_eq!(hits(&[0, 0, 1, 1, 0], 2, 0), 0);
        assert_eq!(hits(&[0, 0, 1, 1, 0], 2, 1), 2);
        assert_eq!(hits(&[5, 5, 9, 5], 0, 2), 2);
    }

    /// `hits` never beats Belady, from one entry to more than a trace's keys, and with room
    /// for every key only first uses miss.
    pub(crate) fn bounded_by_belady(
        name: &str,
        hits: impl Fn(&[u32], usize, usize) -> u64,
        trace: &[u32],
        distinct: usize,
    ) {
        for capacity in [1, 2, 3, 10, 50, 150, 300] {
            let h = hits(trace, distinct, capacity);
            assert!(
                h <= belady_hits(trace, distinct, capacity),
                "{name} at {capacity}"
            );
        }
        assert_eq!(
            hits(trace, distinct, distinct + 100),
            (trace.len() - distinct) as u64,
            "{name}: all fit, cold misses only"
        );
    }
}
