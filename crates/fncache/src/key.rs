//! Deriving the member (Redis sorted-set member and hash field) of one call.
//!
//! A member is the first 16 bytes of a BLAKE3 hash, in derive-key mode with a context string
//! of our own, over the function identity (length-prefixed) and the canonical postcard
//! encoding of the arguments. It never depends on `Hash` or `Debug` implementations, so it is
//! stable across processes, machines and compiler versions.
//!
//! Postcard encodes what serde hands it, in order: arguments whose serialization order is not
//! canonical (a `HashMap`, say) give different members for equal contents; use a `BTreeMap`.

use serde::Serialize;

use crate::error::{Error, ErrorKind};

/// The BLAKE3 derive-key context: changing it changes every key, like a format version.
const KEY_CONTEXT: &str = "fncache 2026-11-21 call member v1";
/// The context for function identity digests (per-function key names).
const FUNCTION_CONTEXT: &str = "fncache 2026-11-21 function identity v1";

/// The 16-byte identity of one call: function plus arguments.
pub(crate) type Member = [u8; 16];

/// Derives the member of `function` called with `args`.
pub(crate) fn member<A: Serialize + ?Sized>(function: &str, args: &A) -> Result<Member, Error> {
    let mut encoder = ArgsEncoder::new();
    encoder.push(args);
    encoder.finish(function)
}

/// Encodes the arguments of one call part by part. Postcard writes a tuple as its elements
/// one after the other, so pushing `a` then `b` gives the member of the tuple `(a, b)`.
#[derive(Debug, Default)]
pub(crate) struct ArgsEncoder {
    encoded: Vec<u8>,
    error: Option<postcard::Error>,
}

impl ArgsEncoder {
    pub(crate) fn new() -> ArgsEncoder {
        ArgsEncoder::default()
    }

    /// Appends the encoding of one part; the first failure is kept for `finish`.
    pub(crate) fn push<T: Serialize + ?Sized>(&mut self, part: &T) {
        if self.error.is_some() {
            return;
        }
        match postcard::to_extend(part, std::mem::take(&mut self.encoded)) {
            Ok(encoded) => self.encoded = encoded,
            Err(e) => self.error = Some(e),
        }
    }

    /// The member of `function` called with the parts pushed so far.
    pub(crate) fn finish(self, function: &str) -> Result<Member, Error> {
        if let Some(e) = self.error {
            return Err(Error::new(
                ErrorKind::Encode,
                format!("cannot serialize the arguments of `{function}` into a key: {e}"),
            ));
        }
        // Deriving the context key costs a hash of its own: do it once, clone the hasher.
        static BASE: std::sync::LazyLock<blake3::Hasher> =
            std::sync::LazyLock::new(|| blake3::Hasher::new_derive_key(KEY_CONTEXT));
        let mut hasher = BASE.clone();
        hasher.update(&(function.len() as u64).to_le_bytes());
        hasher.update(function.as_bytes());
        hasher.update(&self.encoded);
        let mut out = [0u8; 16];
        hasher.finalize_xof().fill(&mut out);
        Ok(out)
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

    #[test]
    fn members_do_not_change_between_releases() {
        // Pinned: a change here invalidates every user's cache, so it must be deliberate.
        let m = member("app::square", &(3u64,)).unwrap();
        assert_eq!(
            m,
            [
                86, 184, 41, 70, 23, 177, 34, 255, 32, 152, 168, 121, 94, 83, 85, 95
            ]
        );
        assert_eq!(function_digest("app::square"), "mFPbk_kYzP_p");
    }

    #[test]
    fn unserializable_arguments_are_encode_errors() {
        struct Unsized;
        impl Serialize for Unsized {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeSeq;
                // postcard needs sequence lengths up front.
                s.serialize_seq(None)?.end()
            }
        }
        let err = member("f", &Unsized).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Encode);
        let mut parts = ArgsEncoder::new();
        parts.push(&1u8);
        parts.push(&Unsized);
        parts.push(&2u8);
        assert_eq!(parts.finish("f").unwrap_err().kind(), ErrorKind::Encode);
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
        let mut one = ArgsEncoder::new();
        one.push(&3u64);
        assert_eq!(
            one.finish("app::square").unwrap(),
            member("app::square", &(3u64,)).unwrap()
        );
    }
}
