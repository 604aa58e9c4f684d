//! Value codecs and the versioned envelope every stored value travels in.
//!
//! A stored entry is laid out as
//!
//! ```text
//! format (1) | codec (1) | written_at_us (8) | expire_at_us (8) | keep_until_us (8) | payload
//! ```
//!
//! (integers big-endian). The client produces the first two bytes and the payload; the store
//! (the Redis script, or the embedded store) inserts the timestamps from its own clock, so that
//! all processes sharing a server agree on them. Past `expire_at_us` the entry is no longer
//! served normally; it stays until `keep_until_us` as a fail-safe fallback. 0 means never.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind};

/// The envelope layout version written today.
pub(crate) const FORMAT_V1: u8 = 1;
/// Bytes before the payload in a stored entry.
pub(crate) const HEADER_LEN: usize = 26;

/// How values are serialized inside the envelope.
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
    pub(crate) payload: &'a [u8],
}

impl<'a> Entry<'a> {
    /// Splits stored bytes; `None` when they are not a version-1 envelope.
    pub(crate) fn parse(bytes: &'a [u8]) -> Option<Entry<'a>> {
        if bytes.len() < HEADER_LEN || bytes[0] != FORMAT_V1 {
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
            payload: &bytes[HEADER_LEN..],
        })
    }

    /// Builds stored bytes, as the store does when it writes (used by the embedded store).
    pub(crate) fn assemble(head: [u8; 2], times: Times, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(&head);
        out.extend_from_slice(&times.written_at_us.to_be_bytes());
        out.extend_from_slice(&times.expire_at_us.to_be_bytes());
        out.extend_from_slice(&times.keep_until_us.to_be_bytes());
        out.extend_from_slice(payload);
        out
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
}
