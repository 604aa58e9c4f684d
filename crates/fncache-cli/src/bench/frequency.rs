//! Two frequency-only references, for telling how much of a gap to Belady any policy could
//! close on a workload (issue 12's goal 1). Neither is fncache's code.
//!
//! - [`static_hits`], the *static optimum* (offline): the `capacity` keys used most often in
//!   the whole trace are cached at their first use and never evicted; no other key is cached.
//!   Under independent references (each access drawn from a fixed distribution, as the Zipf
//!   workloads are) this is, apart from cold misses, the best any policy that does not see the
//!   future can do; Belady sees the future and does better.
//! - [`perfect_lfu_hits`], *perfect LFU* (online, unbounded memory): every key's use count is
//!   kept for the whole trace, cached or not; a miss replaces the cached key with the fewest
//!   uses only when the newcomer has been used more often (ties keep the incumbent). What
//!   TinyLFU approximates with 8 bytes per entry and aging; it converges to the static optimum
//!   on Zipf, and it cannot follow popularity that moves.
//! - [`a0_hits`], *A0* (Aho, Denning and Ullman, 1971) for workloads drawn independently from
//!   a known distribution (the Zipf workloads, whose ranks are known): the `capacity` most
//!   probable keys among those seen so far stay cached. Each access being independent of the
//!   past, the probability that the next one hits is the sum of the cached keys'
//!   probabilities, which no policy can make larger with the keys it has seen: the best any
//!   online policy can expect there, Belady's gap above it is out of every policy's reach.

use std::collections::BTreeSet;

/// Hits of the static optimum on `trace` (dense keys `0..distinct`) with room for `capacity`
/// entries: the sum over the `capacity` most used keys of their uses after the first.
pub(crate) fn static_hits(trace: &[u32], distinct: usize, capacity: usize) -> u64 {
    let mut uses = vec![0u64; distinct];
    for &key in trace {
        if let Some(n) = uses.get_mut(key as usize) {
            *n += 1;
        }
    }
    uses.sort_unstable_by(|a, b| b.cmp(a));
    uses.iter()
        .take(capacity)
        .map(|&n| n.saturating_sub(1))
        .sum()
}

/// Hits of perfect LFU on `trace` (dense keys `0..distinct`) with room for `capacity` entries.
pub(crate) fn perfect_lfu_hits(trace: &[u32], distinct: usize, capacity: usize) -> u64 {
    let mut uses = vec![0u64; distinct];
    let mut cached = vec![false; distinct];
    // The cached keys by (uses, key): the first is the victim. The key breaks ties, so the
    // result is deterministic.
    let mut order: BTreeSet<(u64, u32)> = BTreeSet::new();
    let mut hits = 0;
    for &key in trace {
        let k = key as usize;
        let Some(n) = uses.get_mut(k) else { continue };
        *n += 1;
        let n = *n;
        if cached[k] {
            hits += 1;
            order.remove(&(n - 1, key));
            order.insert((n, key));
        } else if order.len() < capacity {
            cached[k] = true;
            order.insert((n, key));
        } else if let Some(&(least, victim)) = order.first()
            && n > least
        {
            order.pop_first();
            cached[victim as usize] = false;
            cached[k] = true;
            order.insert((n, key));
        }
    }
    hits
}

/// Hits of A0 on `trace` (dense keys), `rank[key]` the key's rank in the distribution (0 the
/// most probable), with room for `capacity` entries: a newcomer replaces the least probable
/// cached key when it is more probable (ties keep the incumbent).
pub(crate) fn a0_hits(trace: &[u32], rank: &[u32], capacity: usize) -> u64 {
    let mut cached: BTreeSet<(u32, u32)> = BTreeSet::new();
    let mut hits = 0;
    for &key in trace {
        let Some(&r) = rank.get(key as usize) else {
            continue;
        };
        let entry = (r, key);
        if cached.contains(&entry) {
            hits += 1;
        } else if cached.len() < capacity {
            cached.insert(entry);
        } else if cached.last().is_some_and(|&last| entry < last) {
            cached.pop_last();
            cached.insert(entry);
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::super::belady::{belady_hits, checks, dense};
    use super::*;

    #[test]
    fn the_static_optimum_keeps_the_most_used_keys() {
        // a x3, b x2, c x1: room for one keeps a (2 hits), for two a and b (3).
        let (t, d) = dense(&[1, 2, 1, 3, 2, 1]);
        assert_eq!(static_hits(&t, d, 0), 0);
        assert_eq!(static_hits(&t, d, 1), 2);
        assert_eq!(static_hits(&t, d, 2), 3);
        assert_eq!(static_hits(&t, d, 9), 3);
    }

    #[test]
    fn perfect_lfu_admits_only_a_more_used_key() {
        // Room for one: a is cached; b (1 use) does not beat a (1 use); a hits; b's second
        // use (2) does not beat a (2); b's third (3) does: b is cached, then hits.
        let (t, d) = dense(&[1, 2, 1, 2, 2, 2]);
        assert_eq!(perfect_lfu_hits(&t, d, 1), 2);
        assert_eq!(perfect_lfu_hits(&t, d, 0), 0);
        assert_eq!(perfect_lfu_hits(&t, d, 2), 4);
    }

    #[test]
    fn a0_keeps_the_most_probable_keys_it_has_seen() {
        // Keys 0..3 of ranks 2, 0, 1: room for one holds the rank-0 key once seen.
        let rank = [2, 0, 1];
        assert_eq!(a0_hits(&[0, 0, 1, 0, 1, 2, 1], &rank, 1), 1 + 2);
        // Room for two: 0 and 1 (ranks 2, 0); 2 (rank 1) replaces 0.
        assert_eq!(a0_hits(&[0, 1, 0, 2, 2, 0, 1], &rank, 2), 1 + 1 + 1);
        assert_eq!(a0_hits(&[0, 1], &rank, 0), 0);
        // Under independent draws of a known distribution it beats learning the counts, and
        // Belady beats it.
        let zipf = super::super::workload::zipf_trace(500, 0.9, 20_000, 3);
        let (t, d) = dense(&zipf);
        let mut ranks = vec![0u32; d];
        for (&k, &r) in t.iter().zip(&zipf) {
            ranks[k as usize] = r as u32;
        }
        for cap in [5, 50, 200] {
            let a0 = a0_hits(&t, &ranks, cap);
            assert!(perfect_lfu_hits(&t, d, cap) <= a0, "cap {cap}");
            assert!(a0 <= belady_hits(&t, d, cap), "cap {cap}");
        }
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        for hits in [static_hits, perfect_lfu_hits] {
            assert_eq!(hits(&[], 0, 0), 0);
            assert_eq!(hits(&[0, 0, 1], 2, 0), 0);
            // Keys beyond `distinct` have no count: never cached.
            assert_eq!(hits(&[5, 5, 9, 5], 0, 2), 0);
        }
        assert_eq!(a0_hits(&[5, 5, 0], &[0], 2), 0);
        assert_eq!(a0_hits(&[], &[], 0), 0);
    }

    #[test]
    fn neither_beats_belady() {
        for (trace, distinct) in checks::mixed_traces(5, 20) {
            checks::bounded_by_belady("static", static_hits, &trace, distinct);
            checks::bounded_by_belady("plfu", perfect_lfu_hits, &trace, distinct);
        }
    }
}
