//! Value codecs and the versioned envelope every stored value travels in.
//!
//! A stored entry is laid out as
//!
//! ```text
//! format (1) | codec (1) | written_at_us (8) | expire_at_us (8) | keep_until_us (8) | payload
//! ```
//!
//! (format 1), or, for an entry with a refresh time of its own (`refresh_after_from`),
//!
//! ```text
//! 2 | codec (1) | written_at_us (8) | expire_at_us (8) | keep_until_us (8) | refresh_at_us (8) | payload
//! ```
//!
//! where the entry is stale from `refresh_at_us` on, whatever the lookup's refresh-after. Only
//! such entries use format 2, so a cache that never sets the hook writes what it always did.
//!
//! (integers big-endian). The client produces the first two bytes and the payload; the store
//! (the Redis script, or the embedded store) inserts the timestamps from its own clock, so that
//! all processes sharing a server agree on them. Past `expire_at_us` the entry is no longer
//! served normally; it stays until `keep_until_us` as a fail-safe fallback. 0 means never.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind};
use crate::typed;

/// The envelope layout version written today.
pub(crate) const FORMAT_V1: u8 = 1;
/// Bytes before the payload in a stored entry.
pub(crate) const HEADER_LEN: usize = 26;
/// The layout of an entry with a refresh time of its own (`refresh_at_us` after the others).
pub(crate) const FORMAT_V2: u8 = 2;
/// Bytes before the payload in a format-2 entry.
pub(crate) const HEADER_V2_LEN: usize = HEADER_LEN + 8;

/// How values are serialized inside the envelope.
///
/// Whatever the codec, a value it cannot give back exactly (`Some(None)` under the
/// self-describing ones, NaN under JSON...) is not cached: each put decodes its payload back
/// and compares, and a value that would change is returned but not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Codec {
    /// MessagePack via `rmp-serde`, with field names (the default: compact and tolerant of
    /// reordered struct fields).
    #[default]
    MessagePack,
    /// JSON via `serde_json`: readable in `redis-cli`, larger.
    Json,
    /// CBOR via `ciborium`.
    Cbor,
    /// Postcard: the most compact, but not self-describing, so a changed type may decode
    /// without error into wrong values. Bump the function version when a type changes.
    Postcard,
}

impl Codec {
    /// The byte that identifies this codec in the envelope.
    pub(crate) fn id(self) -> u8 {
        match self {
            Codec::MessagePack => 1,
            Codec::Json => 2,
            Codec::Cbor => 3,
            Codec::Postcard => 4,
        }
    }

    /// The two envelope bytes that precede the timestamps.
    pub(crate) fn head(self) -> [u8; 2] {
        [FORMAT_V1, self.id()]
    }

    /// Serializes a value into a payload.
    pub(crate) fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, Error> {
        let encode_error = |e: &dyn std::fmt::Display| {
            Error::new(
                ErrorKind::Encode,
                format!("cannot encode value with {self:?}: {e}"),
            )
        };
        match self {
            Codec::MessagePack => rmp_serde::to_vec_named(value).map_err(|e| encode_error(&e)),
            Codec::Json => serde_json::to_vec(value).map_err(|e| encode_error(&e)),
            Codec::Cbor => {
                let mut out = Vec::new();
                ciborium::into_writer(value, &mut out).map_err(|e| encode_error(&e))?;
                Ok(out)
            }
            Codec::Postcard => postcard::to_allocvec(value).map_err(|e| encode_error(&e)),
        }
    }

    /// Serializes a value into a payload that is proved to decode back into the same value,
    /// or refuses it (an `Encode` error): what a call stores is served exactly, or not at all.
    ///
    /// Self-describing codecs write `Some(None)`, `Some(())` and `None` alike, JSON writes
    /// NaN and infinities as `null`, and postcard cannot read back a field its encoder skipped
    /// or a type that needs `deserialize_any`; custom `Serialize` impls can lose anything.
    /// Rather than a list of known cases, the payload is decoded into `T` and compared with
    /// the value (see `typed::same`: order of map entries and sequence elements and NaN
    /// payloads aside, they must serialize alike). This costs a decode and two typed
    /// encodings per put, on the miss path only.
    pub(crate) fn encode_faithful<T: Serialize + DeserializeOwned>(
        self,
        value: &T,
    ) -> Result<Vec<u8>, Error> {
        let payload = self.encode(value)?;
        let unfaithful = |why: &str| {
            Error::new(
                ErrorKind::Encode,
                format!("{self:?} cannot represent this value exactly ({why}); it is not cached"),
            )
        };
        let back: T = self
            .decode(&payload)
            .map_err(|e| unfaithful(&format!("its payload does not decode: {e}")))?;
        if typed::same(value, &back) {
            Ok(payload)
        } else {
            Err(unfaithful("it decodes into another value"))
        }
    }

    /// Deserializes a payload written by this codec.
    fn decode<T: DeserializeOwned>(self, payload: &[u8]) -> Result<T, String> {
        match self {
            Codec::MessagePack => rmp_serde::from_slice(payload).map_err(|e| e.to_string()),
            Codec::Json => serde_json::from_slice(payload).map_err(|e| e.to_string()),
            Codec::Cbor => ciborium::from_reader(payload).map_err(|e| e.to_string()),
            Codec::Postcard => postcard::from_bytes(payload).map_err(|e| e.to_string()),
        }
    }
}

/// A stored entry, split into its parts (borrowing the payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry<'a> {
    pub(crate) codec: u8,
    /// Store time of the write, in microseconds since the Unix epoch.
    pub(crate) written_at_us: u64,
    /// Store time after which the entry is no longer served normally; 0 for never.
    pub(crate) expire_at_us: u64,
    /// Store time at which the entry is deleted; 0 for never.
    pub(crate) keep_until_us: u64,
    /// Store time from which the entry is stale whatever the lookup's refresh-after; 0 for
    /// none (format 1).
    pub(crate) refresh_at_us: u64,
    pub(crate) payload: &'a [u8],
}

impl<'a> Entry<'a> {
    /// Splits stored bytes; `None` when they are not an envelope of format 1 or 2.
    pub(crate) fn parse(bytes: &'a [u8]) -> Option<Entry<'a>> {
        let header = match bytes.first() {
            Some(&FORMAT_V1) => HEADER_LEN,
            Some(&FORMAT_V2) => HEADER_V2_LEN,
            _ => return None,
        };
        if bytes.len() < header {
            return None;
        }
        let word = |at: usize| -> Option<u64> {
            let slice: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
            Some(u64::from_be_bytes(slice))
        };
        Some(Entry {
            codec: bytes[1],
            written_at_us: word(2)?,
            expire_at_us: word(10)?,
            keep_until_us: word(18)?,
            refresh_at_us: if header == HEADER_V2_LEN {
                word(26)?
            } else {
                0
            },
            payload: &bytes[header..],
        })
    }

    /// Builds stored bytes, as the store does when it writes (used by the embedded store): of
    /// format 2 when the entry has a refresh time of its own, else of format 1.
    pub(crate) fn assemble(head: [u8; 2], times: Times, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_V2_LEN + payload.len());
        let own_refresh = times.refresh_at_us != 0;
        out.push(if own_refresh { FORMAT_V2 } else { head[0] });
        out.push(head[1]);
        out.extend_from_slice(&times.written_at_us.to_be_bytes());
        out.extend_from_slice(&times.expire_at_us.to_be_bytes());
        out.extend_from_slice(&times.keep_until_us.to_be_bytes());
        if own_refresh {
            out.extend_from_slice(&times.refresh_at_us.to_be_bytes());
        }
        out.extend_from_slice(payload);
        out
    }

    /// True when the entry's own refresh time has come at `now_us`.
    pub(crate) fn is_due(&self, now_us: u64) -> bool {
        self.refresh_at_us != 0 && self.refresh_at_us <= now_us
    }

    /// Rewrites the logical expiry of stored `bytes` to `at_us` in place (as `expire.lua`
    /// does); `false` when they are not an envelope this version reads.
    pub(crate) fn set_expire_at(bytes: &mut [u8], at_us: u64) -> bool {
        if Entry::parse(bytes).is_none() {
            return false;
        }
        match bytes.get_mut(10..18) {
            Some(word) => {
                word.copy_from_slice(&at_us.to_be_bytes());
                true
            }
            None => false,
        }
    }

    /// True when the entry has a per-entry TTL that has passed at `now_us`.
    pub(crate) fn is_expired(&self, now_us: u64) -> bool {
        self.expire_at_us != 0 && self.expire_at_us <= now_us
    }

    /// True when the entry is to be deleted at `now_us` (not even a fallback any more).
    pub(crate) fn is_gone(&self, now_us: u64) -> bool {
        self.keep_until_us != 0 && self.keep_until_us <= now_us
    }
}

/// The timestamps a store writes into an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Times {
    pub(crate) written_at_us: u64,
    pub(crate) expire_at_us: u64,
    pub(crate) keep_until_us: u64,
    /// 0: none (a format-1 entry).
    pub(crate) refresh_at_us: u64,
}

/// Decodes a value from an entry, requiring the expected codec.
pub(crate) fn decode_value<T: DeserializeOwned>(
    codec: Codec,
    entry: &Entry<'_>,
) -> Result<T, Error> {
    if entry.codec != codec.id() {
        return Err(Error::new(
            ErrorKind::Decode,
            format!(
                "stored value uses codec id {}, this call reads {codec:?} (id {})",
                entry.codec,
                codec.id()
            ),
        ));
    }
    codec.decode(entry.payload).map_err(|e| {
        Error::new(
            ErrorKind::Decode,
            format!("cannot decode stored value: {e}"),
        )
    })
}

/// Decodes stored bytes into a value, requiring the expected codec.
pub(crate) fn decode_entry<T: DeserializeOwned>(codec: Codec, bytes: &[u8]) -> Result<T, Error> {
    let entry = Entry::parse(bytes).ok_or_else(|| {
        Error::new(
            ErrorKind::Decode,
            "stored bytes are not an fncache envelope (format 1)",
        )
    })?;
    decode_value(codec, &entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct User {
        id: u64,
        name: String,
        tags: Vec<String>,
        manager: Option<Box<User>>,
    }

    fn stored<T: Serialize>(codec: Codec, value: &T) -> Vec<u8> {
        let times = Times {
            written_at_us: 1,
            ..Times::default()
        };
        Entry::assemble(codec.head(), times, &codec.encode(value).unwrap())
    }

    #[test]
    fn every_codec_round_trips() {
        let user = User {
            id: 7,
            name: "ada".into(),
            tags: vec!["x".into()],
            manager: None,
        };
        for codec in [
            Codec::MessagePack,
            Codec::Json,
            Codec::Cbor,
            Codec::Postcard,
        ] {
            let back: User = decode_entry(codec, &stored(codec, &user)).unwrap();
            assert_eq!(back, user, "{codec:?}");
            let none: Option<u8> = decode_entry(codec, &stored(codec, &None::<u8>)).unwrap();
            assert_eq!(none, None);
            decode_entry::<()>(codec, &stored(codec, &())).unwrap();
        }
    }

    #[test]
    fn foreign_codec_and_garbage_are_decode_errors() {
        let json = stored(Codec::Json, &5u32);
        let err = decode_entry::<u32>(Codec::MessagePack, &json).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Decode);
        for garbage in [&b""[..], b"\x01", b"not an envelope at all", &[1u8; 26]] {
            assert!(decode_entry::<String>(Codec::MessagePack, garbage).is_err());
        }
        let changed = stored(Codec::MessagePack, &"text");
        assert!(decode_entry::<u64>(Codec::MessagePack, &changed).is_err());
    }

    #[test]
    fn header_round_trips() {
        let times = Times {
            written_at_us: 123,
            expire_at_us: 456,
            keep_until_us: 789,
            refresh_at_us: 0,
        };
        let bytes = Entry::assemble([1, 2], times, b"xy");
        let e = Entry::parse(&bytes).unwrap();
        assert_eq!(
            (
                e.codec,
                e.written_at_us,
                e.expire_at_us,
                e.keep_until_us,
                e.payload
            ),
            (2, 123, 456, 789, &b"xy"[..])
        );
        assert!(e.is_expired(456) && !e.is_expired(455));
        assert!(e.is_gone(789) && !e.is_gone(788));
    }

    #[test]
    fn an_entry_with_its_own_refresh_time_is_format_2_and_reads_back() {
        let times = Times {
            written_at_us: 1,
            expire_at_us: 2,
            keep_until_us: 3,
            refresh_at_us: 4,
        };
        let bytes = Entry::assemble(Codec::Json.head(), times, b"[1]");
        assert_eq!((bytes[0], bytes.len()), (FORMAT_V2, HEADER_V2_LEN + 3));
        let e = Entry::parse(&bytes).unwrap();
        assert_eq!(
            (
                e.codec,
                e.written_at_us,
                e.expire_at_us,
                e.keep_until_us,
                e.refresh_at_us
            ),
            (2, 1, 2, 3, 4)
        );
        assert_eq!(e.payload, b"[1]");
        assert!(e.is_due(4) && !e.is_due(3));
        assert_eq!(decode_entry::<Vec<u8>>(Codec::Json, &bytes).unwrap(), [1]);
        // Soft invalidation rewrites the expiry alone, in either format.
        let mut bytes = bytes;
        assert!(Entry::set_expire_at(&mut bytes, 9));
        assert_eq!(Entry::parse(&bytes).unwrap().refresh_at_us, 4);
        assert_eq!(Entry::parse(&bytes).unwrap().expire_at_us, 9);
        // A truncated format-2 header is not an entry.
        assert!(Entry::parse(&bytes[..30]).is_none());
    }

    /// A value every codec should store, and the cases each one cannot, by name.
    #[test]
    fn values_a_codec_would_change_are_refused() {
        use Codec::{Cbor, Json, MessagePack, Postcard};
        fn refused<T: Serialize + DeserializeOwned>(codec: Codec, value: &T) -> bool {
            match codec.encode_faithful(value) {
                Ok(_) => false,
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Encode);
                    true
                }
            }
        }
        for codec in [MessagePack, Json, Cbor, Postcard] {
            let lossy = codec != Postcard;
            assert_eq!(refused(codec, &Some(None::<u8>)), lossy, "{codec:?}");
            assert_eq!(refused(codec, &Some(())), lossy, "{codec:?}");
            assert_eq!(refused(codec, &vec![Some(Some(None::<u8>))]), lossy);
            assert_eq!(refused(codec, &Some(f64::NAN)), codec == Json);
            assert_eq!(refused(codec, &Some(f64::INFINITY)), codec == Json);
            assert_eq!(refused(codec, &f32::NEG_INFINITY), codec == Json);
            assert!(!refused(codec, &-0.0f64), "{codec:?}: -0.0");
            assert!(!refused(codec, &None::<u8>));
            assert!(!refused(codec, &()));
            assert!(!refused(codec, &Some(Some(1u8))));
            // Hash-ordered collections decode in another order, and are still the same.
            let set: std::collections::HashSet<u32> = (0..500).collect();
            let map: std::collections::HashMap<u32, Vec<u8>> =
                (0..500).map(|i| (i, vec![i as u8])).collect();
            assert!(!refused(codec, &(set, map)), "{codec:?}: HashSet, HashMap");
        }
    }

    /// Property: under every codec, a value is either refused or decodes back equal to
    /// itself, and it is refused only when a plain round trip would in fact change it.
    mod faithful {
        use std::collections::{BTreeMap, HashMap, HashSet};

        use proptest::prelude::*;
        use serde::{Deserialize, Serialize};

        use super::super::Codec;

        /// An `f64` equal to itself when NaN (any NaN), and by sign for zeros.
        #[derive(Debug, Clone, Copy, Serialize, Deserialize)]
        struct F(f64);
        impl PartialEq for F {
            fn eq(&self, other: &F) -> bool {
                (self.0.is_nan() && other.0.is_nan()) || self.0.to_bits() == other.0.to_bits()
            }
        }

        #[derive(Debug, Clone, Copy, Serialize, Deserialize)]
        struct F32(f32);
        impl PartialEq for F32 {
            fn eq(&self, other: &F32) -> bool {
                (self.0.is_nan() && other.0.is_nan()) || self.0.to_bits() == other.0.to_bits()
            }
        }

        /// A byte string (`serialize_bytes`), read back from bytes or a sequence (JSON).
        #[derive(Debug, Clone, PartialEq)]
        struct Bytes(Vec<u8>);
        impl Serialize for Bytes {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
        impl<'de> Deserialize<'de> for Bytes {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
                struct Visit;
                impl<'de> serde::de::Visitor<'de> for Visit {
                    type Value = Bytes;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("bytes")
                    }
                    fn visit_bytes<E>(self, v: &[u8]) -> Result<Bytes, E> {
                        Ok(Bytes(v.to_vec()))
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> Result<Bytes, A::Error> {
                        let mut out = Vec::new();
                        while let Some(b) = seq.next_element()? {
                            out.push(b);
                        }
                        Ok(Bytes(out))
                    }
                }
                d.deserialize_bytes(Visit)
            }
        }

        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        struct UnitS;
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        struct NewS(Option<u8>);
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        struct TupS(i16, Option<()>);

        /// Enum variants of every kind.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        enum E {
            Unit,
            New(Option<Option<u8>>),
            Tup(u8, F),
            Struct { a: Option<UnitS>, b: char },
        }

        /// One piece of a value; a value is a few of them, so that some values are faithful
        /// under every codec and some are not.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        enum Part {
            Nested(Option<Option<Option<u8>>>),
            Unit(()),
            SomeUnit(Option<()>),
            UnitStruct(Option<UnitS>),
            New(NewS),
            Tup(TupS),
            Enum(E),
            Float(F),
            Float32(F32),
            Map(BTreeMap<String, Option<u8>>),
            HashMap(HashMap<u8, Option<()>>),
            Set(HashSet<u16>),
            Bytes(Bytes),
            Char(char),
            Wide(i128, u128),
        }

        fn float() -> impl Strategy<Value = F> {
            prop_oneof![
                any::<f64>(),
                Just(f64::NAN),
                Just(-f64::NAN),
                Just(f64::INFINITY),
                Just(f64::NEG_INFINITY),
                Just(-0.0),
                Just(0.0),
                Just(1.5),
            ]
            .prop_map(F)
        }

        fn unit_struct() -> impl Strategy<Value = Option<UnitS>> {
            prop_oneof![Just(None), Just(Some(UnitS))]
        }

        fn enum_value() -> impl Strategy<Value = E> {
            prop_oneof![
                Just(E::Unit),
                any::<Option<Option<u8>>>().prop_map(E::New),
                (any::<u8>(), float()).prop_map(|(a, b)| E::Tup(a, b)),
                (unit_struct(), any::<char>()).prop_map(|(a, b)| E::Struct { a, b }),
            ]
        }

        fn part() -> impl Strategy<Value = Part> {
            prop_oneof![
                any::<Option<Option<Option<u8>>>>().prop_map(Part::Nested),
                Just(Part::Unit(())),
                any::<Option<()>>().prop_map(Part::SomeUnit),
                unit_struct().prop_map(Part::UnitStruct),
                any::<Option<u8>>().prop_map(|x| Part::New(NewS(x))),
                (any::<i16>(), any::<Option<()>>()).prop_map(|(a, b)| Part::Tup(TupS(a, b))),
                enum_value().prop_map(Part::Enum),
                float().prop_map(Part::Float),
                prop_oneof![
                    any::<f32>(),
                    Just(f32::NAN),
                    Just(f32::INFINITY),
                    Just(-0.0f32)
                ]
                .prop_map(|x| Part::Float32(F32(x))),
                proptest::collection::btree_map(".{0,4}", any::<Option<u8>>(), 0..4)
                    .prop_map(Part::Map),
                proptest::collection::hash_map(any::<u8>(), any::<Option<()>>(), 0..8)
                    .prop_map(Part::HashMap),
                proptest::collection::hash_set(any::<u16>(), 0..32).prop_map(Part::Set),
                proptest::collection::vec(any::<u8>(), 0..8).prop_map(|b| Part::Bytes(Bytes(b))),
                any::<char>().prop_map(Part::Char),
                (any::<i128>(), any::<u128>()).prop_map(|(a, b)| Part::Wide(a, b)),
            ]
        }

        fn check(codec: Codec, value: &Vec<Part>) -> Result<(), TestCaseError> {
            let plain = codec
                .encode(value)
                .ok()
                .and_then(|payload| codec.decode::<Vec<Part>>(&payload).ok());
            let exact = plain.as_ref() == Some(value);
            match codec.encode_faithful(value) {
                Ok(payload) => {
                    let back: Vec<Part> = codec
                        .decode(&payload)
                        .map_err(|e| TestCaseError::fail(format!("{codec:?}: {e}")))?;
                    prop_assert_eq!(&back, value, "{:?} served a changed value", codec);
                }
                Err(_) => prop_assert!(
                    !exact,
                    "{:?} refused a value it round-trips: {:?}",
                    codec,
                    value
                ),
            }
            Ok(())
        }

        proptest! {
            #[test]
            fn every_codec_round_trips_exactly_or_refuses(
                value in proptest::collection::vec(part(), 0..4)
            ) {
                for codec in [Codec::MessagePack, Codec::Json, Codec::Cbor, Codec::Postcard] {
                    check(codec, &value)?;
                }
            }
        }
    }
}
