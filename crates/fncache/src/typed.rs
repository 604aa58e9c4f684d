//! A self-describing encoding of serde's data model, for keys and for fidelity checks.
//!
//! Every serde event is written as a type tag followed by its content, so two values encode
//! the same only if they serialize identically *as the same serde types*: `1u8` and `1u64`,
//! `true` and `1u8`, `"a"` and the bytes `[97]`, `(1, 2)` and `vec![1, 2]`, `None` and `0`,
//! `()` and `((),)` all differ. (An array `[1, 2]` is the tuple `(1, 2)`: serde serializes
//! arrays with `serialize_tuple`, so nothing here can tell them apart.) The encoding is prefix-free (scalars have a fixed width, strings
//! and bytes a length prefix, compounds a closing tag), so a concatenation of encodings is
//! unambiguous too. Compounds close with a tag instead of starting with a length: sequences of
//! unknown length are fine, and a tuple's elements can be written one at a time (the macro
//! pushes arguments one by one, see `key::ArgsEncoder`).
//!
//! Names enter the encoding: struct, enum, variant and field names, and variant indexes. So a
//! renamed struct gives new keys (its entries are computed afresh: a cold start, never a
//! wrong value), while two types that happen to share a shape never share an entry. The
//! function identity does not cover this: it is free text for the explicit API, and the
//! macro's code hash sees a type's name, not its definition.
//!
//! [`Rules`] say what is made canonical. Keys sort the entries of maps (a `HashMap` with equal
//! contents is one key whatever its iteration order) and write floats by their bits. Fidelity
//! checks ([`same`]) also treat sequences as multisets and all NaNs as one value, see there.
//!
//! Output goes to a [`Sink`]: straight into a BLAKE3 hasher for plain values (no allocation),
//! or into buffers for the entries of the compounds that are sorted.

use std::fmt;

use serde::Serialize;
use serde::ser;

/// Type tags, one per serde data-model event. `CLOSE` ends every compound.
mod tag {
    pub(super) const CLOSE: u8 = 0;
    pub(super) const BOOL: u8 = 1;
    pub(super) const I8: u8 = 2;
    pub(super) const I16: u8 = 3;
    pub(super) const I32: u8 = 4;
    pub(super) const I64: u8 = 5;
    pub(super) const I128: u8 = 6;
    pub(super) const U8: u8 = 7;
    pub(super) const U16: u8 = 8;
    pub(super) const U32: u8 = 9;
    pub(super) const U64: u8 = 10;
    pub(super) const U128: u8 = 11;
    pub(super) const F32: u8 = 12;
    pub(super) const F64: u8 = 13;
    pub(super) const CHAR: u8 = 14;
    pub(super) const STR: u8 = 15;
    pub(super) const BYTES: u8 = 16;
    pub(super) const NONE: u8 = 17;
    pub(super) const SOME: u8 = 18;
    pub(super) const UNIT: u8 = 19;
    pub(super) const UNIT_STRUCT: u8 = 20;
    pub(super) const UNIT_VARIANT: u8 = 21;
    pub(super) const NEWTYPE_STRUCT: u8 = 22;
    pub(super) const NEWTYPE_VARIANT: u8 = 23;
    pub(super) const SEQ: u8 = 24;
    pub(super) const TUPLE: u8 = 25;
    pub(super) const TUPLE_STRUCT: u8 = 26;
    pub(super) const TUPLE_VARIANT: u8 = 27;
    pub(super) const MAP: u8 = 28;
    pub(super) const STRUCT: u8 = 29;
    pub(super) const STRUCT_VARIANT: u8 = 30;
}

/// Where an encoding goes.
pub(crate) trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// A BLAKE3 hasher fed through a small buffer: an encoding is many writes of a few bytes,
/// and one `update` of a block costs less than dozens of tiny ones.
#[derive(Clone)]
pub(crate) struct HashSink {
    hasher: blake3::Hasher,
    buf: [u8; 128],
    len: usize,
}

impl HashSink {
    pub(crate) fn new(hasher: blake3::Hasher) -> HashSink {
        HashSink {
            hasher,
            buf: [0; 128],
            len: 0,
        }
    }

    /// The first 16 bytes of the hash of everything written so far, without moving the
    /// hasher. (BLAKE3's 32-byte hash is the start of its extended output, so this is also
    /// the first 16 bytes of `finalize_xof`.)
    pub(crate) fn digest16(&mut self) -> [u8; 16] {
        self.flush();
        let hash = self.hasher.finalize();
        let mut out = [0u8; 16];
        out.copy_from_slice(&hash.as_bytes()[..16]);
        out
    }

    /// Forgets everything written: the sink is as it was made (same key and mode).
    pub(crate) fn reset(&mut self) {
        self.hasher.reset();
        self.len = 0;
    }

    /// The hasher, fed everything written so far.
    #[cfg(test)]
    pub(crate) fn into_hasher(mut self) -> blake3::Hasher {
        self.flush();
        self.hasher
    }

    fn flush(&mut self) {
        self.hasher.update(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl fmt::Debug for HashSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HashSink").finish_non_exhaustive()
    }
}

impl Sink for HashSink {
    fn put(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > self.buf.len() {
            self.flush();
            if bytes.len() > self.buf.len() {
                self.hasher.update(bytes);
                return;
            }
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
}

/// What an encoding makes canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rules {
    /// Sort the encoded entries of maps.
    pub(crate) sort_maps: bool,
    /// Sort the encoded elements of sequences (`serialize_seq`, not tuples).
    pub(crate) sort_seqs: bool,
    /// Write every NaN as the same NaN (otherwise floats are written by their bits).
    pub(crate) one_nan: bool,
}

impl Rules {
    /// For keys: equal maps are one key; everything else as serialized.
    pub(crate) const KEY: Rules = Rules {
        sort_maps: true,
        sort_seqs: false,
        one_nan: false,
    };
}

/// A failure of the value's own `Serialize` implementation (this encoding has none of its
/// own: it accepts every event serde can produce).
#[derive(Debug)]
pub(crate) struct TypedError(pub(crate) String);

impl fmt::Display for TypedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TypedError {}

impl ser::Error for TypedError {
    fn custom<M: fmt::Display>(msg: M) -> Self {
        TypedError(msg.to_string())
    }
}

/// Writes `value` into `out` under `rules`.
pub(crate) fn encode<T: Serialize + ?Sized, W: Sink>(
    value: &T,
    out: &mut W,
    rules: Rules,
) -> Result<(), TypedError> {
    value.serialize(&mut Typed { out, rules })
}

/// Opens a tuple whose elements are then written one at a time with [`encode`] and closed
/// with [`close`]: the same bytes as encoding the whole tuple at once.
pub(crate) fn open_tuple<W: Sink>(out: &mut W) {
    out.put(&[tag::TUPLE]);
}

/// Closes what [`open_tuple`] opened.
pub(crate) fn close<W: Sink>(out: &mut W) {
    out.put(&[tag::CLOSE]);
}

/// True when `a` and `b` serialize as the same serde types and values, up to what a faithful
/// round trip through a codec may change without changing the value:
///
/// - the order of map entries and of sequence elements (a `HashMap` or `HashSet` decoded from
///   a payload iterates in another order; no codec reorders a `Vec`, so treating sequences as
///   multisets costs no detection in practice);
/// - the payload bits of NaNs (CBOR shortens floats; no program can rely on NaN payloads
///   surviving arithmetic anyway). The sign of zero is kept: `-0.0` must come back `-0.0`.
///
/// Values whose encoding fails are never the same (nothing can be proved about them).
pub(crate) fn same<T: Serialize + ?Sized>(a: &T, b: &T) -> bool {
    // In order first: no buffers but one, and it is the answer for every value without a
    // hash-ordered collection in it. Only a difference pays for sorting.
    let plain = Rules {
        sort_maps: false,
        sort_seqs: false,
        one_nan: true,
    };
    let sorted = Rules {
        sort_maps: true,
        sort_seqs: true,
        one_nan: true,
    };
    // Sized for a small value at once: growing from nothing costs more than the encoding.
    let mut first = Vec::with_capacity(256);
    if encode(a, &mut first, plain).is_err() {
        return false;
    }
    let mut second = Compare {
        expected: &first,
        at: 0,
        equal: true,
    };
    if encode(b, &mut second, plain).is_err() {
        return false;
    }
    if second.equal && second.at == first.len() {
        return true;
    }
    let (mut first, mut second) = (Vec::new(), Vec::new());
    encode(a, &mut first, sorted).is_ok()
        && encode(b, &mut second, sorted).is_ok()
        && first == second
}

/// A sink that compares what is written with an encoding written before (without keeping it).
struct Compare<'e> {
    expected: &'e [u8],
    at: usize,
    equal: bool,
}

impl Sink for Compare<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if self.equal && self.expected[self.at..].starts_with(bytes) {
            self.at += bytes.len();
        } else {
            self.equal = false;
        }
    }
}

/// The serializer.
struct Typed<'o, W> {
    out: &'o mut W,
    rules: Rules,
}

impl<'o, W: Sink> Typed<'o, W> {
    fn tag(&mut self, tag: u8) {
        self.out.put(&[tag]);
    }

    fn len(&mut self, len: usize) {
        self.out.put(&(len as u64).to_le_bytes());
    }

    fn text(&mut self, text: &str) {
        self.len(text.len());
        self.out.put(text.as_bytes());
    }

    /// Enum name, variant index and variant name.
    fn variant(&mut self, name: &str, index: u32, variant: &str) {
        self.text(name);
        self.out.put(&index.to_le_bytes());
        self.text(variant);
    }

    /// A compound whose elements are written in order, or sorted when `sort`.
    fn compound(&mut self, sort: bool) -> Compound<'_, 'o, W> {
        Compound {
            sorted: sort.then(Vec::new),
            entry: Vec::new(),
            typed: self,
        }
    }
}

/// The state of one compound: elements go straight out, or, when sorted, each into a buffer
/// of its own, written out in order at the end.
struct Compound<'t, 'o, W> {
    typed: &'t mut Typed<'o, W>,
    sorted: Option<Vec<Vec<u8>>>,
    /// The map entry being written (its key, then its value), when sorted.
    entry: Vec<u8>,
}

impl<W: Sink> Compound<'_, '_, W> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), TypedError> {
        let rules = self.typed.rules;
        match &mut self.sorted {
            None => value.serialize(&mut *self.typed),
            Some(elements) => {
                let mut buf = Vec::new();
                encode(value, &mut buf, rules)?;
                elements.push(buf);
                Ok(())
            }
        }
    }

    fn field(&mut self, name: &'static str) {
        self.typed.text(name);
    }

    /// Writes the sorted elements, if any, and the closing tag.
    fn close(self) -> Result<(), TypedError> {
        if let Some(mut elements) = self.sorted {
            elements.sort_unstable();
            for element in &elements {
                self.typed.out.put(element);
            }
        }
        self.typed.tag(tag::CLOSE);
        Ok(())
    }
}

macro_rules! scalar {
    ($method:ident, $ty:ty, $tag:expr) => {
        fn $method(self, v: $ty) -> Result<(), TypedError> {
            self.tag($tag);
            self.out.put(&v.to_le_bytes());
            Ok(())
        }
    };
}

impl<'t, 'o, W: Sink> ser::Serializer for &'t mut Typed<'o, W> {
    type Ok = ();
    type Error = TypedError;
    type SerializeSeq = Compound<'t, 'o, W>;
    type SerializeTuple = Compound<'t, 'o, W>;
    type SerializeTupleStruct = Compound<'t, 'o, W>;
    type SerializeTupleVariant = Compound<'t, 'o, W>;
    type SerializeMap = Compound<'t, 'o, W>;
    type SerializeStruct = Compound<'t, 'o, W>;
    type SerializeStructVariant = Compound<'t, 'o, W>;

    scalar!(serialize_i8, i8, tag::I8);
    scalar!(serialize_i16, i16, tag::I16);
    scalar!(serialize_i32, i32, tag::I32);
    scalar!(serialize_i64, i64, tag::I64);
    scalar!(serialize_i128, i128, tag::I128);
    scalar!(serialize_u8, u8, tag::U8);
    scalar!(serialize_u16, u16, tag::U16);
    scalar!(serialize_u32, u32, tag::U32);
    scalar!(serialize_u64, u64, tag::U64);
    scalar!(serialize_u128, u128, tag::U128);

    fn serialize_bool(self, v: bool) -> Result<(), TypedError> {
        self.out.put(&[tag::BOOL, u8::from(v)]);
        Ok(())
    }

    fn serialize_f32(self, v: f32) -> Result<(), TypedError> {
        let v = if self.rules.one_nan && v.is_nan() {
            f32::NAN
        } else {
            v
        };
        self.tag(tag::F32);
        self.out.put(&v.to_bits().to_le_bytes());
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<(), TypedError> {
        let v = if self.rules.one_nan && v.is_nan() {
            f64::NAN
        } else {
            v
        };
        self.tag(tag::F64);
        self.out.put(&v.to_bits().to_le_bytes());
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), TypedError> {
        self.tag(tag::CHAR);
        self.out.put(&u32::from(v).to_le_bytes());
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), TypedError> {
        self.tag(tag::STR);
        self.text(v);
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result<(), TypedError> {
        self.tag(tag::BYTES);
        self.len(v.len());
        self.out.put(v);
        Ok(())
    }

    fn serialize_none(self) -> Result<(), TypedError> {
        self.tag(tag::NONE);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), TypedError> {
        self.tag(tag::SOME);
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), TypedError> {
        self.tag(tag::UNIT);
        Ok(())
    }

    fn serialize_unit_struct(self, name: &'static str) -> Result<(), TypedError> {
        self.tag(tag::UNIT_STRUCT);
        self.text(name);
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<(), TypedError> {
        self.tag(tag::UNIT_VARIANT);
        self.variant(name, index, variant);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), TypedError> {
        self.tag(tag::NEWTYPE_STRUCT);
        self.text(name);
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), TypedError> {
        self.tag(tag::NEWTYPE_VARIANT);
        self.variant(name, index, variant);
        value.serialize(self)
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, TypedError> {
        self.tag(tag::SEQ);
        let sort = self.rules.sort_seqs;
        Ok(self.compound(sort))
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, TypedError> {
        self.tag(tag::TUPLE);
        Ok(self.compound(false))
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, TypedError> {
        self.tag(tag::TUPLE_STRUCT);
        self.text(name);
        Ok(self.compound(false))
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, TypedError> {
        self.tag(tag::TUPLE_VARIANT);
        self.variant(name, index, variant);
        Ok(self.compound(false))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, TypedError> {
        self.tag(tag::MAP);
        let sort = self.rules.sort_maps;
        Ok(self.compound(sort))
    }

    fn serialize_struct(
        self,
        name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, TypedError> {
        self.tag(tag::STRUCT);
        self.text(name);
        Ok(self.compound(false))
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, TypedError> {
        self.tag(tag::STRUCT_VARIANT);
        self.variant(name, index, variant);
        Ok(self.compound(false))
    }

    fn is_human_readable(&self) -> bool {
        false
    }
}

impl<W: Sink> ser::SerializeSeq for Compound<'_, '_, W> {
    type Ok = ();
    type Error = TypedError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), TypedError> {
        self.element(value)
    }

    fn end(self) -> Result<(), TypedError> {
        self.close()
    }
}

/// Tuples, tuple structs and tuple variants are written in order (never sorted).
macro_rules! in_order {
    ($trait:ident, $method:ident) => {
        impl<W: Sink> ser::$trait for Compound<'_, '_, W> {
            type Ok = ();
            type Error = TypedError;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), TypedError> {
                self.element(value)
            }

            fn end(self) -> Result<(), TypedError> {
                self.close()
            }
        }
    };
}

in_order!(SerializeTuple, serialize_element);
in_order!(SerializeTupleStruct, serialize_field);
in_order!(SerializeTupleVariant, serialize_field);

impl<W: Sink> ser::SerializeMap for Compound<'_, '_, W> {
    type Ok = ();
    type Error = TypedError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), TypedError> {
        let rules = self.typed.rules;
        match self.sorted {
            None => key.serialize(&mut *self.typed),
            // A key and its value make one entry, sorted as a whole.
            Some(_) => encode(key, &mut self.entry, rules),
        }
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), TypedError> {
        let rules = self.typed.rules;
        match &mut self.sorted {
            None => value.serialize(&mut *self.typed),
            Some(entries) => {
                let mut entry = std::mem::take(&mut self.entry);
                encode(value, &mut entry, rules)?;
                entries.push(entry);
                Ok(())
            }
        }
    }

    fn end(self) -> Result<(), TypedError> {
        self.close()
    }
}

/// Structs and struct variants: each field is its name, then its value, in declaration order.
macro_rules! fields {
    ($trait:ident) => {
        impl<W: Sink> ser::$trait for Compound<'_, '_, W> {
            type Ok = ();
            type Error = TypedError;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                name: &'static str,
                value: &T,
            ) -> Result<(), TypedError> {
                self.field(name);
                value.serialize(&mut *self.typed)
            }

            fn end(self) -> Result<(), TypedError> {
                self.close()
            }
        }
    };
}

fields!(SerializeStruct);
fields!(SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_forgives_order_of_maps_and_sets_and_nan_payloads_only() {
        use std::collections::{HashMap, HashSet};
        let set: HashSet<u32> = (0..300).collect();
        let other: HashSet<u32> = (0..300).rev().collect();
        assert!(same(&set, &other));
        let map: HashMap<u32, u32> = (0..300).map(|i| (i, i)).collect();
        let other: HashMap<u32, u32> = (0..300).rev().map(|i| (i, i)).collect();
        assert!(same(&map, &other));
        assert!(!same(
            &(0..300).collect::<HashSet<u32>>(),
            &(1..301).collect()
        ));
        let quiet = f64::from_bits(0x7ff8_0000_0000_0001);
        assert!(same(&f64::NAN, &quiet) && same(&-f64::NAN, &f64::NAN));
        assert!(!same(&-0.0f64, &0.0) && !same(&f64::NAN, &f64::INFINITY));
        assert!(!same(&Some(None::<u8>), &None));
        assert!(!same(&Some(()), &None));
        assert!(same(&Some(Some(1u8)), &Some(Some(1u8))));
    }

    #[test]
    fn the_encoding_is_the_same_through_a_hasher_and_a_buffer() {
        let value = (1u8, "text", vec![Some(2.5f64)], [b'x'; 300].to_vec());
        let mut buf = Vec::new();
        encode(&value, &mut buf, Rules::KEY).unwrap();
        let mut sink = HashSink::new(blake3::Hasher::new());
        encode(&value, &mut sink, Rules::KEY).unwrap();
        assert_eq!(sink.into_hasher().finalize(), blake3::hash(&buf));
    }
}
