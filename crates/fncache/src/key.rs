//! Deriving the member (Redis sorted-set member and hash field) of one call.
//!
//! A member is the first 16 bytes of a BLAKE3 hash, in derive-key mode with a context string
//! of our own, over the typed encoding of the arguments (see `typed.rs`: every serde type is
//! tagged, so arguments of different types never share a member, and maps are sorted, so
//! equal maps always do) followed by the function identity (length-prefixed; the typed
//! encoding is prefix-free, so the boundary is unambiguous). It never depends on `Hash` or
//! `Debug` implementations, so it is stable across processes, machines and compiler versions.
//!
//! The encoding streams into the hasher: a call whose arguments hold no map allocates nothing.

use std::cell::RefCell;

use serde::Serialize;

use crate::error::{Error, ErrorKind};
use crate::typed::{self, HashSink, Rules, Sink as _, TypedError};

/// The BLAKE3 derive-key context: changing it changes every key, like a format version.
/// v2: typed argument encoding (v1 was postcard, under which `1u8` and `1u64` collided).
const KEY_CONTEXT: &str = "fncache 2026-11-21 call member v2";
/// The context for function identity digests (per-function key names).
const FUNCTION_CONTEXT: &str = "fncache 2026-11-21 function identity v1";

/// The 16-byte identity of one call: function plus arguments.
pub(crate) type Member = [u8; 16];

/// The hasher every member starts from. Deriving the context key costs a hash of its own: do
/// it once, clone the hasher.
fn base() -> HashSink {
    static BASE: std::sync::LazyLock<blake3::Hasher> =
        std::sync::LazyLock::new(|| blake3::Hasher::new_derive_key(KEY_CONTEXT));
    HashSink::new(BASE.clone())
}

thread_local! {
    /// A sink per thread, reset for each member. A BLAKE3 hasher is about 2 KiB: cloning a
    /// fresh one for every call copied it twice per hit, which showed in every profile.
    static SINK: RefCell<HashSink> = RefCell::new(base());
}

/// Derives the member of `function` called with `args`.
pub(crate) fn member<A: Serialize + ?Sized>(function: &str, args: &A) -> Result<Member, Error> {
    let reused = SINK.try_with(|cell| {
        // Busy when an argument's `Serialize` derives a member itself (or the thread is
        // ending): then a sink of its own.
        let mut sink = cell.try_borrow_mut().ok()?;
        sink.reset();
        Some(member_with(&mut sink, function, args))
    });
    match reused {
        Ok(Some(member)) => member,
        _ => member_with(&mut base(), function, args),
    }
}

fn member_with<A: Serialize + ?Sized>(
    sink: &mut HashSink,
    function: &str,
    args: &A,
) -> Result<Member, Error> {
    let encoded = typed::encode(args, sink, Rules::KEY);
    seal(sink, encoded, function)
}

/// Ends a member. The sink is borrowed, not moved: a BLAKE3 hasher is about 2 KiB, and moving
/// it by value from call to call copied it several times per member (a fifth of a hit).
fn seal(
    sink: &mut HashSink,
    encoded: Result<(), TypedError>,
    function: &str,
) -> Result<Member, Error> {
    if let Err(e) = encoded {
        return Err(Error::new(
            ErrorKind::Encode,
            format!("cannot serialize the arguments of `{function}` into a key: {e}"),
        ));
    }
    sink.put(&(function.len() as u64).to_le_bytes());
    sink.put(function.as_bytes());
    Ok(sink.digest16())
}

/// Encodes the arguments of one call part by part: pushing `a` then `b` gives the member of
/// the tuple `(a, b)`, since a tuple is encoded as an opening tag, its elements, and a
/// closing tag (the macro pushes arguments one at a time and relies on this).
#[derive(Debug)]
pub(crate) struct ArgsEncoder {
    sink: HashSink,
    error: Option<TypedError>,
}

impl Default for ArgsEncoder {
    fn default() -> ArgsEncoder {
        ArgsEncoder::new()
    }
}

impl ArgsEncoder {
    pub(crate) fn new() -> ArgsEncoder {
        let mut sink = base();
        typed::open_tuple(&mut sink);
        ArgsEncoder { sink, error: None }
    }

    /// Appends the encoding of one part; the first failure is kept for `finish`.
    pub(crate) fn push<T: Serialize + ?Sized>(&mut self, part: &T) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = typed::encode(part, &mut self.sink, Rules::KEY) {
            self.error = Some(e);
        }
    }

    /// The member of `function` called with the parts pushed so far.
    pub(crate) fn finish(mut self, function: &str) -> Result<Member, Error> {
        typed::close(&mut self.sink);
        let encoded = match self.error {
            Some(e) => Err(e),
            None => Ok(()),
        };
        seal(&mut self.sink, encoded, function)
    }
}

/// A short, key-safe digest of a function identity (12 base64url characters, 72 bits).
pub(crate) fn function_digest(function: &str) -> String {
    use base64::Engine as _;
    let hash = blake3::Hasher::new_derive_key(FUNCTION_CONTEXT)
        .update(function.as_bytes())
        .finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&hash.as_bytes()[..9])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_stable_and_distinct() {
        let a = member("f", &(1u8,)).unwrap();
        assert_eq!(a, member("f", &(1u8,)).unwrap());
        assert_ne!(a, member("g", &(1u8,)).unwrap());
        assert_ne!(a, member("f", &(2u8,)).unwrap());
        assert_ne!(a, member("f", &("1",)).unwrap());
        // The function/argument boundary is unambiguous.
        assert_ne!(member("ab", &"c").unwrap(), member("a", &"bc").unwrap());
    }

    /// Arguments whose `Serialize` derives a member of its own while theirs is derived (the
    /// per-thread sink is busy then).
    struct Nested(u64);

    impl Serialize for Nested {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let inner = member("inner", &(self.0,)).map_err(serde::ser::Error::custom)?;
            inner.serialize(serializer)
        }
    }

    /// Arguments that fail after part of their encoding.
    struct HalfWay;

    impl Serialize for HalfWay {
        fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            use serde::ser::{Error as _, SerializeTuple as _};
            let mut tuple = serializer.serialize_tuple(2)?;
            tuple.serialize_element("a string longer than the sink's buffer of 128 bytes, so that part of it reaches the hasher before the failure: ................................................")?;
            Err(S::Error::custom("half-way"))
        }
    }

    #[test]
    fn a_member_derived_inside_another_is_the_same_as_alone() {
        let alone = member("inner", &(5u64,)).unwrap();
        let outer = member("outer", &Nested(5)).unwrap();
        assert_eq!(outer, member("outer", &alone).unwrap());
        assert_eq!(member("inner", &(5u64,)).unwrap(), alone);
        // A derivation that fails half-way leaves nothing behind for the next one.
        assert!(member("bad", &HalfWay).is_err());
        assert_eq!(member("inner", &(5u64,)).unwrap(), alone);
    }

    #[test]
    fn members_do_not_change_between_releases() {
        // Pinned: a change here invalidates every user's cache, so it must be deliberate.
        let m = member("app::square", &(3u64,)).unwrap();
        assert_eq!(
            m,
            [
                226, 54, 110, 136, 115, 50, 8, 221, 115, 192, 194, 209, 139, 100, 253, 163
            ]
        );
        // Spelled out: tuple tag, u64 tag and value, closing tag, then the identity.
        let mut bytes = vec![25u8, 10];
        bytes.extend_from_slice(&3u64.to_le_bytes());
        bytes.push(0);
        bytes.extend_from_slice(&11u64.to_le_bytes());
        bytes.extend_from_slice(b"app::square");
        let mut spelled = [0u8; 16];
        blake3::Hasher::new_derive_key("fncache 2026-11-21 call member v2")
            .update(&bytes)
            .finalize_xof()
            .fill(&mut spelled);
        assert_eq!(m, spelled);
        assert_eq!(function_digest("app::square"), "mFPbk_kYzP_p");
    }

    #[test]
    fn unserializable_arguments_are_encode_errors() {
        struct Refuses;
        impl Serialize for Refuses {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        let err = member("f", &Refuses).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Encode);
        let mut parts = ArgsEncoder::new();
        parts.push(&1u8);
        parts.push(&Refuses);
        parts.push(&2u8);
        assert_eq!(parts.finish("f").unwrap_err().kind(), ErrorKind::Encode);
    }

    /// A sequence of unknown length, like an iterator serialized with `collect_seq`.
    struct Unsized(Vec<u8>);
    impl Serialize for Unsized {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeSeq;
            let mut seq = s.serialize_seq(None)?;
            for x in &self.0 {
                seq.serialize_element(x)?;
            }
            seq.end()
        }
    }

    #[test]
    fn sequences_of_unknown_length_are_keys() {
        let a = member("f", &(Unsized(vec![1, 2]),)).unwrap();
        assert_eq!(a, member("f", &(vec![1u8, 2],)).unwrap(), "a seq is a seq");
        assert_ne!(a, member("f", &(Unsized(vec![2, 1]),)).unwrap());
        assert_ne!(
            member("f", &(Unsized(vec![]), Unsized(vec![1]))).unwrap(),
            member("f", &(Unsized(vec![1]), Unsized(vec![]))).unwrap()
        );
    }

    #[test]
    fn values_of_different_serde_types_never_share_a_member() {
        use std::collections::BTreeMap;
        #[derive(Serialize)]
        struct Unit;
        #[derive(Serialize)]
        struct Other;
        #[derive(Serialize)]
        struct Wrap(u8);
        #[derive(Serialize)]
        struct Point {
            x: u8,
        }
        #[derive(Serialize)]
        struct Renamed {
            y: u8,
        }
        #[derive(Serialize)]
        enum E {
            A,
            B,
            N(u8),
            T(u8, u8),
            S { x: u8 },
        }
        let m = |args: &dyn erased::Args| args.member();
        let distinct: Vec<(&str, Member)> = vec![
            ("u8", m(&(1u8,))),
            ("u16", m(&(1u16,))),
            ("u32", m(&(1u32,))),
            ("u64", m(&(1u64,))),
            ("u128", m(&(1u128,))),
            ("i8", m(&(1i8,))),
            ("i16", m(&(1i16,))),
            ("i32", m(&(1i32,))),
            ("i64", m(&(1i64,))),
            ("i128", m(&(1i128,))),
            ("-1i32", m(&(-1i32,))),
            ("u32::MAX", m(&(u32::MAX,))),
            ("f32", m(&(1.0f32,))),
            ("f64", m(&(1.0f64,))),
            ("-0.0", m(&(-0.0f64,))),
            ("0.0", m(&(0.0f64,))),
            ("true", m(&(true,))),
            ("char", m(&('a',))),
            ("str", m(&("a",))),
            ("bytes", m(&(Bytes(b"a"),))),
            ("seq of u8", m(&(vec![97u8],))),
            ("u8 pair", m(&(1u8, 97u8))),
            ("tuple", m(&(1u32, 2u32))),
            ("seq", m(&vec![1u32, 2u32])),
            ("seq as a tuple", m(&(2u32, 1u32, 2u32))),
            ("nested tuple", m(&((1u32, 2u32),))),
            ("none", m(&(None::<u8>,))),
            ("some 0", m(&(Some(0u8),))),
            ("0", m(&(0u8,))),
            ("some none", m(&(Some(None::<u8>),))),
            ("unit", m(&())),
            ("tuple of unit", m(&((),))),
            ("unit struct", m(&(Unit,))),
            ("other unit struct", m(&(Other,))),
            ("newtype", m(&(Wrap(1),))),
            ("struct", m(&(Point { x: 1 },))),
            ("renamed field", m(&(Renamed { y: 1 },))),
            ("variant A", m(&(E::A,))),
            ("variant B", m(&(E::B,))),
            ("newtype variant", m(&(E::N(1),))),
            ("tuple variant", m(&(E::T(1, 2),))),
            ("struct variant", m(&(E::S { x: 1 },))),
            ("empty map", m(&(BTreeMap::<u8, u8>::new(),))),
            ("empty seq", m(&(Vec::<u8>::new(),))),
            ("map", m(&(BTreeMap::from([(1u8, 2u8)]),))),
            ("seq of pairs", m(&(vec![(1u8, 2u8)],))),
            ("empty str", m(&("",))),
            ("two strs", m(&("ab", ""))),
            ("two strs split", m(&("a", "b"))),
        ];
        // serde writes an array `[T; N]` as a tuple: nothing a serializer sees tells them apart.
        assert_eq!(m(&[1u32, 2u32]), m(&(1u32, 2u32)));
        for (i, (a, x)) in distinct.iter().enumerate() {
            for (b, y) in &distinct[i + 1..] {
                assert_ne!(x, y, "{a} and {b} share a member");
            }
        }
    }

    /// A byte string (`serialize_bytes`).
    struct Bytes(&'static [u8]);
    impl Serialize for Bytes {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    mod erased {
        /// Lets a table hold arguments of different types.
        pub(super) trait Args {
            fn member(&self) -> super::Member;
        }
        impl<T: serde::Serialize> Args for T {
            fn member(&self) -> super::Member {
                super::member("f", self).unwrap()
            }
        }
    }

    /// A map serialized with its entries in the order given.
    struct InOrder(Vec<(u32, Vec<(u8, u8)>)>);
    impl Serialize for InOrder {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|(k, v)| (k, InOrderInner(v))))
        }
    }
    struct InOrderInner<'a>(&'a Vec<(u8, u8)>);
    impl Serialize for InOrderInner<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
        }
    }

    #[test]
    fn maps_are_canonical() {
        let a = InOrder(vec![(1, vec![(1, 1), (2, 2)]), (2, vec![])]);
        let b = InOrder(vec![(2, vec![]), (1, vec![(2, 2), (1, 1)])]);
        assert_eq!(member("f", &(&a,)).unwrap(), member("f", &(&b,)).unwrap());
        let mut parts = ArgsEncoder::new();
        parts.push(&b);
        assert_eq!(parts.finish("f").unwrap(), member("f", &(&a,)).unwrap());
        let c = InOrder(vec![(1, vec![(1, 1), (2, 3)]), (2, vec![])]);
        assert_ne!(member("f", &(&a,)).unwrap(), member("f", &(&c,)).unwrap());
        // Keys and values do not slide across entries.
        let d = InOrder(vec![(1, vec![]), (2, vec![(1, 1), (2, 2)])]);
        assert_ne!(member("f", &(&a,)).unwrap(), member("f", &(&d,)).unwrap());
        let hashed: std::collections::HashMap<u32, u32> = (0..100).map(|i| (i, i)).collect();
        let other: std::collections::HashMap<u32, u32> = (0..100).rev().map(|i| (i, i)).collect();
        let sorted: std::collections::BTreeMap<u32, u32> = (0..100).map(|i| (i, i)).collect();
        assert_eq!(member("f", &hashed).unwrap(), member("f", &other).unwrap());
        assert_eq!(member("f", &hashed).unwrap(), member("f", &sorted).unwrap());
    }

    #[test]
    fn parts_pushed_one_by_one_are_the_tuple_of_them() {
        let mut parts = ArgsEncoder::new();
        parts.push(&7u64);
        parts.push("seven");
        parts.push(&Some(7i8));
        let by_parts = parts.finish("f").unwrap();
        assert_eq!(by_parts, member("f", &(7u64, "seven", Some(7i8))).unwrap());
        assert_eq!(
            by_parts,
            member("f", &(&7u64, &"seven", &Some(7i8))).unwrap()
        );
        // No parts: the empty tuple (which serde writes for `[T; 0]`; `()` is the unit).
        let empty = ArgsEncoder::new().finish("f").unwrap();
        assert_eq!(empty, member("f", &[0u8; 0]).unwrap());
        assert_ne!(empty, member("f", &()).unwrap());
        let mut one = ArgsEncoder::new();
        one.push(&3u64);
        assert_eq!(
            one.finish("app::square").unwrap(),
            member("app::square", &(3u64,)).unwrap()
        );
    }
}
