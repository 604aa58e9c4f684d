//! Doubly linked lists over dense keys (0..n), linked through indices in vectors rather than
//! pointers: the LRU stacks and queues of the reference models (`lirs.rs`, `arc.rs`), O(1) per
//! operation and one allocation per field. A set of lists in which each key sits in at most one
//! list at a time; a model that needs a key in two lists at once (LIRS's S and Q) keeps two sets.

/// No key: the end of a list.
const NIL: u32 = u32::MAX;

/// `count` lists over the keys 0..n. Each list runs from its front (most recent, the "top" of
/// a stack) to its back (least recent, its "bottom").
pub(super) struct Lists {
    /// The list a key is in, or `None`.
    member: Vec<Option<u8>>,
    prev: Vec<u32>,
    next: Vec<u32>,
    front: Vec<u32>,
    back: Vec<u32>,
    len: Vec<usize>,
}

impl Lists {
    pub(super) fn new(n: usize, count: u8) -> Lists {
        let count = usize::from(count);
        Lists {
            member: vec![None; n],
            prev: vec![NIL; n],
            next: vec![NIL; n],
            front: vec![NIL; count],
            back: vec![NIL; count],
            len: vec![0; count],
        }
    }

    /// The list `key` is in.
    pub(super) fn list_of(&self, key: u32) -> Option<u8> {
        self.member[key as usize]
    }

    pub(super) fn len(&self, list: u8) -> usize {
        self.len[usize::from(list)]
    }

    /// The least recent key of `list`.
    pub(super) fn back(&self, list: u8) -> Option<u32> {
        let k = self.back[usize::from(list)];
        (k != NIL).then_some(k)
    }

    /// Takes `key` out of whatever list it is in (nothing when in none).
    pub(super) fn remove(&mut self, key: u32) {
        let k = key as usize;
        let Some(list) = self.member[k].take() else {
            return;
        };
        let l = usize::from(list);
        let (p, n) = (self.prev[k], self.next[k]);
        if p == NIL {
            self.front[l] = n;
        } else {
            self.next[p as usize] = n;
        }
        if n == NIL {
            self.back[l] = p;
        } else {
            self.prev[n as usize] = p;
        }
        self.prev[k] = NIL;
        self.next[k] = NIL;
        self.len[l] -= 1;
    }

    /// Puts `key` at the front of `list`, taking it out of the list it was in.
    pub(super) fn push_front(&mut self, list: u8, key: u32) {
        self.remove(key);
        let (k, l) = (key as usize, usize::from(list));
        let old = self.front[l];
        self.next[k] = old;
        self.prev[k] = NIL;
        if old == NIL {
            self.back[l] = key;
        } else {
            self.prev[old as usize] = key;
        }
        self.front[l] = key;
        self.member[k] = Some(list);
        self.len[l] += 1;
    }

    /// Takes the least recent key out of `list`.
    pub(super) fn pop_back(&mut self, list: u8) -> Option<u32> {
        let key = self.back(list)?;
        self.remove(key);
        Some(key)
    }

    /// The keys of `list`, front to back (for tests).
    #[cfg(test)]
    pub(super) fn keys(&self, list: u8) -> Vec<u32> {
        let mut out = Vec::new();
        let mut k = self.front[usize::from(list)];
        while k != NIL {
            out.push(k);
            k = self.next[k as usize];
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_keep_order_and_membership() {
        let mut l = Lists::new(6, 2);
        for k in [0, 1, 2] {
            l.push_front(0, k);
        }
        l.push_front(1, 3);
        assert_eq!(l.keys(0), [2, 1, 0]);
        // Moving a key between lists and within one.
        l.push_front(1, 1);
        l.push_front(0, 0);
        assert_eq!(l.keys(0), [0, 2]);
        assert_eq!(l.keys(1), [1, 3]);
        assert_eq!((l.len(0), l.len(1)), (2, 2));
        assert_eq!(l.list_of(1), Some(1));
        assert_eq!(l.pop_back(0), Some(2));
        assert_eq!(l.pop_back(0), Some(0));
        assert_eq!(l.pop_back(0), None);
        assert_eq!((l.keys(0), l.back(0), l.list_of(0)), (vec![], None, None));
        l.remove(5);
        l.remove(3);
        assert_eq!((l.keys(1), l.back(1), l.len(1)), (vec![1], Some(1), 1));
    }
}
