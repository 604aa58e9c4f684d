//! The registry of a Redis-backed cache: what an operator tool needs to name things.
//!
//! Entries are digests inside a hash, so nothing in a structure tells which cache, function or
//! codec it belongs to. Each process therefore records, in one hash per cache
//! ([`Naming::registry_key`](crate::layout::Naming)), the cache's settings (field `cache`) and
//! the identity of every function it calls (field `fn:{identity}`): its path, version, code
//! hash, codec and entry TTL. A function is recorded once per process, with the first batch of
//! shared counters that follows its first call (`shared_stats.rs`), never on the call itself.
//!
//! The records are JSON, versioned by `v`; readers skip what they do not understand.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::codec::Codec;
use crate::layout::Layout;
use crate::policy::Policy;

/// The registry field of the cache's settings.
pub(crate) const CACHE_FIELD: &str = "cache";
/// The prefix of the registry field of a function, followed by its identity.
pub(crate) const FUNCTION_FIELD: &str = "fn:";
/// The version of the records written today.
const VERSION: u32 = 1;

/// The cache's settings as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CacheRecord {
    pub(crate) v: u32,
    pub(crate) name: String,
    pub(crate) prefix: String,
    pub(crate) policy: String,
    pub(crate) layout: String,
    pub(crate) maxsize: u64,
    /// Structure TTL in milliseconds; `None`: structures never expire.
    pub(crate) ttl_ms: Option<u64>,
    pub(crate) update_ttl: bool,
    pub(crate) codec: String,
    pub(crate) entry_ttl_ms: Option<u64>,
}

/// One function as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FunctionRecord {
    pub(crate) v: u32,
    /// The path as its user writes it (see `stats::path_of`).
    pub(crate) path: String,
    /// The `@vN` of a decorated function's identity.
    pub(crate) version: Option<u32>,
    /// The code hash of a decorated function's identity.
    pub(crate) code_hash: Option<String>,
    /// The codec of its first call in the recording process.
    pub(crate) codec: String,
    /// The entry TTL of its first call, in milliseconds.
    pub(crate) entry_ttl_ms: Option<u64>,
}

impl CacheRecord {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        name: &str,
        prefix: &str,
        policy: Policy,
        layout: Layout,
        maxsize: u64,
        ttl: Option<Duration>,
        update_ttl: bool,
        codec: Codec,
        entry_ttl: Option<Duration>,
    ) -> CacheRecord {
        CacheRecord {
            v: VERSION,
            name: name.to_owned(),
            prefix: prefix.to_owned(),
            policy: policy.tag().to_owned(),
            layout: layout_name(layout).to_owned(),
            maxsize,
            ttl_ms: ttl.map(millis),
            update_ttl,
            codec: codec_name(codec).to_owned(),
            entry_ttl_ms: entry_ttl.map(millis),
        }
    }
}

impl FunctionRecord {
    /// The record of `identity`, called with `codec` and `entry_ttl`.
    pub(crate) fn new(identity: &str, codec: Codec, entry_ttl: Option<Duration>) -> FunctionRecord {
        let (rest, code_hash) = match identity.rsplit_once('#') {
            Some((rest, hash)) if crate::stats::path_of(identity) != identity => {
                (rest, Some(hash.to_owned()))
            }
            _ => (identity, None),
        };
        let path = crate::stats::path_of(identity).to_owned();
        let version = rest
            .strip_prefix(path.as_str())
            .and_then(|tail| tail.strip_prefix("@v"))
            .and_then(|v| v.parse().ok());
        FunctionRecord {
            v: VERSION,
            path,
            version,
            code_hash,
            codec: codec_name(codec).to_owned(),
            entry_ttl_ms: entry_ttl.map(millis),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The name of a layout in records and in the CLI.
pub(crate) fn layout_name(layout: Layout) -> &'static str {
    match layout {
        Layout::Shared => "shared",
        Layout::PerFunction => "per-function",
        Layout::Cluster => "cluster",
        Layout::ClusterPerFunction => "cluster-per-function",
    }
}

/// The layout named `name` by [`layout_name`].
pub(crate) fn parse_layout(name: &str) -> Option<Layout> {
    [
        Layout::Shared,
        Layout::PerFunction,
        Layout::Cluster,
        Layout::ClusterPerFunction,
    ]
    .into_iter()
    .find(|l| layout_name(*l) == name)
}

/// The policy whose key tag is `tag`.
pub(crate) fn parse_policy(tag: &str) -> Option<Policy> {
    Policy::ALL.into_iter().find(|p| p.tag() == tag)
}

/// The name of a codec in records and in the CLI.
pub(crate) fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::MessagePack => "msgpack",
        Codec::Json => "json",
        Codec::Cbor => "cbor",
        Codec::Postcard => "postcard",
    }
}

/// The codec named `name` by [`codec_name`].
pub(crate) fn parse_codec(name: &str) -> Option<Codec> {
    [
        Codec::MessagePack,
        Codec::Json,
        Codec::Cbor,
        Codec::Postcard,
    ]
    .into_iter()
    .find(|c| codec_name(*c) == name)
}

/// The codec whose envelope id is `id`.
pub(crate) fn codec_of_id(id: u8) -> Option<Codec> {
    [
        Codec::MessagePack,
        Codec::Json,
        Codec::Cbor,
        Codec::Postcard,
    ]
    .into_iter()
    .find(|c| c.id() == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_record_splits_path_version_and_code_hash() {
        let r = FunctionRecord::new("app::load@v2#0123456789abcdef", Codec::Json, None);
        assert_eq!(r.path, "app::load");
        assert_eq!(r.version, Some(2));
        assert_eq!(r.code_hash.as_deref(), Some("0123456789abcdef"));
        assert_eq!(r.codec, "json");
        let r = FunctionRecord::new("app::load#0123456789abcdef", Codec::Cbor, None);
        assert_eq!((r.path.as_str(), r.version), ("app::load", None));
        assert_eq!(r.code_hash.as_deref(), Some("0123456789abcdef"));
        let r = FunctionRecord::new(
            "plain#name",
            Codec::MessagePack,
            Some(Duration::from_secs(2)),
        );
        assert_eq!(
            (r.path.as_str(), r.version, r.code_hash),
            ("plain#name", None, None)
        );
        assert_eq!(r.entry_ttl_ms, Some(2000));
    }

    #[test]
    fn names_read_back() {
        for layout in [
            Layout::Shared,
            Layout::PerFunction,
            Layout::Cluster,
            Layout::ClusterPerFunction,
        ] {
            assert_eq!(parse_layout(layout_name(layout)), Some(layout));
        }
        for policy in Policy::ALL {
            assert_eq!(parse_policy(policy.tag()), Some(policy));
        }
        for codec in [
            Codec::MessagePack,
            Codec::Json,
            Codec::Cbor,
            Codec::Postcard,
        ] {
            assert_eq!(parse_codec(codec_name(codec)), Some(codec));
            assert_eq!(codec_of_id(codec.id()), Some(codec));
        }
    }
}
