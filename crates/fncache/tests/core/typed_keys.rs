//! Arguments of different types never share an entry; maps with equal contents always do.
//!
//! Each pair below serialized to the same bytes under the old (postcard) keys, so the second
//! call of a pair was served the first one's value.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::support::{Front, Store, all_fronts, describe};

/// `function(args)` through either front-end, computing with `compute` on a miss.
pub fn get<A, T>(front: &Front, function: &str, args: &A, compute: impl FnOnce() -> T) -> T
where
    A: Serialize + ?Sized,
    T: Serialize + DeserializeOwned,
{
    match front {
        Front::Blocking(c) => c.get_or_compute(function, args, compute).unwrap(),
        Front::Async(c, rt) => rt
            .block_on(c.get_or_compute(function, args, || async { compute() }))
            .unwrap(),
    }
}

/// The second call of a colliding pair must compute its own value.
fn apart<A: Serialize, B: Serialize>(store: &Store, front: &Front, pair: &str, a: A, b: B) {
    let function = format!("typed::{pair}");
    let first = get(front, &function, &a, || format!("{pair}: first"));
    assert_eq!(first, format!("{pair}: first"));
    let second = get(front, &function, &b, || format!("{pair}: second"));
    assert_eq!(
        second,
        format!("{pair}: second"),
        "{}: {pair} share an entry",
        describe(store, front)
    );
    // And each still finds its own entry.
    let again = get(front, &function, &a, || format!("{pair}: recomputed"));
    assert_eq!(
        again,
        format!("{pair}: first"),
        "{}",
        describe(store, front)
    );
}

#[test]
fn arguments_of_different_types_never_share_an_entry() {
    for (store, front) in all_fronts(|b| b) {
        let (s, f) = (&*store, &front);
        apart(s, f, "u8 u64", (1u8,), (1u64,));
        apart(s, f, "u16 u32", (1u16,), (1u32,));
        apart(s, f, "bool u8", (true,), (1u8,));
        apart(s, f, "i32 u32", (-1i32,), (1u32,));
        apart(s, f, "str bytes", ("a",), (1u8, 97u8));
        // (`[1u32, 2u32]` is the tuple `(1u32, 2u32)` to serde: arrays serialize as tuples;
        // a `Vec` or a slice is a sequence.)
        apart(s, f, "tuple seq", (2u32, 1u32, 2u32), vec![1u32, 2u32]);
        apart(s, f, "same tuple seq", (1u32, 2u32), vec![1u32, 2u32]);
        apart(s, f, "array slice", [1u32, 2u32], &[1u32, 2u32][..]);
        apart(s, f, "none zero", (None::<u8>,), (0u8,));
        apart(s, f, "unit nested unit", (), ((),));
    }
}

/// A map serialized with its entries in the order given (as a `HashMap` may iterate).
struct InOrder(Vec<(u32, &'static str)>);

impl Serialize for InOrder {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// The one pair of the issue that still shares an entry, as the README says: serde writes an
/// array `[T; N]` exactly as the tuple of its elements, so no serializer can tell them apart.
#[test]
fn an_array_and_the_tuple_of_its_elements_share_an_entry() {
    for (store, front) in all_fronts(|b| b) {
        let first = get(&front, "array", &(1u32, 2u32), || "tuple".to_owned());
        let second = get(&front, "array", &[1u32, 2u32], || "array".to_owned());
        assert_eq!(
            (first.as_str(), second.as_str()),
            ("tuple", "tuple"),
            "{}",
            describe(&store, &front)
        );
    }
}

#[test]
fn maps_with_equal_contents_share_an_entry_whatever_their_order() {
    for (store, front) in all_fronts(|b| b) {
        let execs = AtomicU64::new(0);
        let compute = || {
            execs.fetch_add(1, Ordering::SeqCst);
            7u32
        };
        let forward = InOrder(vec![(1, "a"), (2, "b"), (3, "c")]);
        let backward = InOrder(vec![(3, "c"), (2, "b"), (1, "a")]);
        assert_eq!(get(&front, "maps", &(forward,), compute), 7);
        assert_eq!(get(&front, "maps", &(backward,), compute), 7);
        // Two `HashMap`s with their own random hashers and different insertion orders.
        let one: HashMap<u32, u32> = (0..64).map(|i| (i, i * i)).collect();
        let other: HashMap<u32, u32> = (0..64).rev().map(|i| (i, i * i)).collect();
        assert_eq!(get(&front, "maps", &(one,), compute), 7);
        assert_eq!(get(&front, "maps", &(other,), compute), 7);
        assert_eq!(
            execs.load(Ordering::SeqCst),
            2,
            "{}: equal maps are one entry",
            describe(&store, &front)
        );
    }
}
