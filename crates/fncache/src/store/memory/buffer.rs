//! The uses (touches) of hits served under the store's shared lock, kept until the next op
//! under the exclusive lock applies them to the policy's order.
//!
//! A hit changes nothing but its member's place in the policy's order, so the embedded store
//! serves it under a read lock and records the use here instead of reordering at once. The
//! buffer is not lossy (unlike moka's and Caffeine's read buffers): every use is applied, in the
//! order of the op times the hits took from the store's clock, before anything reads or
//! changes the order or the membership (every other op drains first). The times are unique
//! and rise in the real order of the hits, so applying them late gives exactly the order that
//! applying them at once would have (see `MemoryStore::drain`).
//!
//! The buffer is striped by thread, each stripe on its own cache line, so that two threads
//! hitting one cache do not write the same memory: a stripe's lock is taken by its own threads
//! and by the drain only.

use std::sync::Mutex;

use crate::key::Member;
use crate::stripe::{Padded, stripe_count, thread_stripe};

/// A stripe's uses from which the hit that records one more drains the buffer, if it can take
/// the exclusive lock at once: bounds the work a drain does at once (and so how long the
/// other threads' hits wait for it).
pub(super) const STRIPE_CAPACITY: usize = 64;

/// A stripe's uses from which the hit that records one more drains the buffer, waiting for
/// the exclusive lock if it must: bounds the memory.
pub(super) const STRIPE_BOUND: usize = 4 * STRIPE_CAPACITY;

/// One recorded use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Touch {
    /// The op tick of the hit (unique per op of the store; first, so that touches sort in
    /// the order of the hits).
    pub(super) at: u64,
    /// The structure's id (see `MemStructure::id`).
    pub(super) structure: u64,
    pub(super) member: Member,
}

/// The striped buffer of one store.
#[derive(Debug)]
pub(super) struct Touches {
    stripes: Box<[Padded<Mutex<Vec<Touch>>>]>,
}

impl Touches {
    pub(super) fn new() -> Touches {
        Touches {
            stripes: (0..stripe_count())
                .map(|_| Padded(Mutex::new(Vec::new())))
                .collect(),
        }
    }

    /// Records a use; returns how many the caller's stripe holds now (see `STRIPE_CAPACITY`).
    pub(super) fn record(&self, touch: Touch) -> usize {
        // A power of two (see `stripe_count`): a mask, not a division.
        let at = thread_stripe() & self.stripes.len().wrapping_sub(1);
        let Some(stripe) = self.stripes.get(at) else {
            return STRIPE_BOUND;
        };
        let mut touches = stripe.0.lock().unwrap_or_else(|e| e.into_inner());
        if touches.capacity() == 0 {
            touches.reserve_exact(STRIPE_CAPACITY);
        }
        touches.push(touch);
        touches.len()
    }

    /// Moves every recorded use into `into`, sorted by time (the caller holds the store's
    /// exclusive lock, so no use is being recorded meanwhile).
    pub(super) fn drain_into(&self, into: &mut Vec<Touch>) {
        for stripe in &self.stripes {
            let mut touches = stripe.0.lock().unwrap_or_else(|e| e.into_inner());
            into.append(&mut touches);
        }
        // Each stripe is in time order already, and one thread's hits fill one stripe: sort
        // only when stripes interleave, and then with the stable sort, which finds the
        // stripes' sorted runs and merges them (linear time for a few runs). Times are unique,
        // so they alone order the touches.
        if !into.is_sorted_by_key(|t| t.at) {
            into.sort_by_key(|t| t.at);
        }
    }
}
