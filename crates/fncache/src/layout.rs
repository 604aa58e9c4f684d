//! Where a cache's structures live: key naming for each layout.

use crate::error::Error;
use crate::key::function_digest;
use crate::policy::Policy;

/// How a cache's entries are grouped into structures (index + values pairs), and how their
/// keys are named.
///
/// The two cluster layouts put a Redis hash tag (the part between literal braces) in every key
/// name, so that the keys of one structure (index `:0`, values `:1`, expiry times `:2`) hash
/// to the same slot, which a Redis Cluster requires of the keys of one script. A store built
/// with [`crate::Builder::redis_cluster`] (or a cluster client) needs one of them; on a single
/// server or the embedded store they work too. With them the cache name and the prefix must
/// not contain `{` or `}` (the builder refuses them), and braces in a function identity are
/// written as `%7B` and `%7D` (and `%` as `%25`) in key names.
///
/// In every layout a `:` in the cache name is written `%3A` and a `%` `%25` (`svc:users`
/// becomes `svc%3Ausers`), and the prefix ends with `:`: then no two caches ever share a key,
/// and [`crate::Cache::len`], [`crate::Cache::purge`] and [`crate::Cache::vacuum`] of one cache
/// never see or touch another's structures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Layout {
    /// One structure for every function of the cache: `{prefix}{name}:{policy}:0|1`.
    /// `maxsize` bounds the whole cache.
    #[default]
    Shared,
    /// One structure per function: `{prefix}{name}:{policy}-m:{function}#{digest}:0|1`.
    /// `maxsize` bounds each function; functions can be purged one by one.
    PerFunction,
    /// [`Layout::Shared`] for Redis Cluster: `{prefix}{{name}:{policy}-c}:0|1`, where the
    /// outer braces are literal and make `{name}:{policy}-c` the hash tag, as in
    /// `func-cache:{my-app:lru-c}:0`. The whole cache lives in one slot (on one primary); use
    /// [`Layout::ClusterPerFunction`] to spread it.
    Cluster,
    /// [`Layout::PerFunction`] for Redis Cluster:
    /// `{prefix}{name}:{policy}-cm:{function}#{{digest}}:0|1`, where the braces around the
    /// digest are literal and make it the hash tag, as in
    /// `func-cache:my-app:lru-cm:app::square#{mFPbk_kYzP_p}:0`. Functions spread over the
    /// cluster's slots; `maxsize` bounds each function.
    ClusterPerFunction,
}

impl Layout {
    /// True for [`Layout::Cluster`] and [`Layout::ClusterPerFunction`], the layouts whose keys
    /// carry a hash tag and can live on a Redis Cluster.
    pub fn is_cluster(self) -> bool {
        matches!(self, Layout::Cluster | Layout::ClusterPerFunction)
    }

    /// True when each function has its own structure (and its own `maxsize`).
    pub fn is_per_function(self) -> bool {
        matches!(self, Layout::PerFunction | Layout::ClusterPerFunction)
    }
}

/// The keys of one structure: index (`:0`), values (`:1`), per-entry expiry times (`:2`).
///
/// Shared behind an `Arc`: every call and every op names its structure, and cloning the three
/// key strings each time was a measurable part of a hit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Structure(std::sync::Arc<Keys>);

/// The key names of a [`Structure`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Keys {
    pub(crate) index: String,
    pub(crate) values: String,
    pub(crate) expiry: String,
    /// Tags (`:3`): a hash from each tagged member to its tags, each written as a 4-byte
    /// big-endian length and the tag's bytes.
    pub(crate) tags: String,
    /// Tagged pairs (`:4`): a sorted set, every score 0, of `length | tag | member` for each
    /// tag of each member, so that one lexicographic range finds a tag's members.
    pub(crate) tagged: String,
    /// `Policy::TinyLfu` only: the frequency sketch (`:5`), a string of 4-bit counters after
    /// a header of bookkeeping (see `tinylfu.lua`).
    pub(crate) sketch: String,
    /// `Policy::TinyLfu` only: where earlier versions kept the sketch's bookkeeping (`:6`, a
    /// hash). No longer written nor named by the get and put scripts; a purge still unlinks
    /// it (one more key name per structure, cheap), so an earlier layout's leaves with it.
    pub(crate) meta: String,
}

impl std::ops::Deref for Structure {
    type Target = Keys;

    fn deref(&self) -> &Keys {
        &self.0
    }
}

impl Structure {
    fn from_base(base: &str) -> Structure {
        Structure(std::sync::Arc::new(Keys {
            index: format!("{base}:0"),
            values: format!("{base}:1"),
            expiry: format!("{base}:2"),
            tags: format!("{base}:3"),
            tagged: format!("{base}:4"),
            sketch: format!("{base}:5"),
            meta: format!("{base}:6"),
        }))
    }

    /// The key of the lease (compute lock) of one member, next to the structure's keys (so a
    /// cluster layout's hash tag puts it in the same slot).
    pub(crate) fn lease_key(&self, member: &[u8; 16]) -> String {
        let (base, suffix) = self.lease_key_parts(member);
        let mut key = String::with_capacity(base.len() + suffix.len());
        key.push_str(base);
        // ASCII, so the conversion cannot fail.
        key.push_str(std::str::from_utf8(&suffix).unwrap_or_default());
        key
    }

    /// [`Structure::lease_key`] in two parts, the structure's base and `:lock:` with the
    /// member in hex, for writing it straight into a command (a lookup sends it on every hit).
    pub(crate) fn lease_key_parts(&self, member: &[u8; 16]) -> (&str, [u8; 38]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let base = self.index.strip_suffix(":0").unwrap_or(&self.index);
        let mut suffix = *b":lock:00000000000000000000000000000000";
        for (digits, byte) in suffix[6..].chunks_exact_mut(2).zip(member) {
            digits[0] = HEX[usize::from(byte >> 4)];
            digits[1] = HEX[usize::from(byte & 0xf)];
        }
        (base, suffix)
    }

    /// The structure whose index key is `index` (a key ending in `:0`), if it is one.
    #[cfg(test)]
    pub(crate) fn from_index_key(index: &str) -> Option<Structure> {
        index.strip_suffix(":0").map(Structure::from_base)
    }
}

/// Key naming of one cache (prefix, name, policy and layout fixed at build time).
///
/// The naming is injective: two caches that differ in prefix, name, policy or layout never
/// share a key, and two functions of one cache never share a structure. Three rules make it so:
///
/// - the prefix ends with `:` (the builder refuses others), so it ends exactly where the name
///   begins: otherwise `ap` + `px` and `app` + `x` would be one key;
/// - the name is written with `%` as `%25` and `:` as `%3A` ([`escape_name`]), so it holds no
///   `:` and the key is read back from the right: `{prefix}{name}:{policy}` is the last two
///   `:`-separated parts before `:0`, however many `:` the prefix holds. Ordinary names
///   (`my-app`) are written as they are;
/// - a per-function structure ends with the 12-character digest of its function identity, so
///   the function is what lies between the cache's part and `#{digest}`, and
///   [`Naming::owned_structure`] recomputes the whole key from it. SCAN MATCH patterns are
///   globs over free text and may still match another cache's keys (a prefix such as
///   `p:X:lru_t-m:` puts a cache's keys under the pattern of a cache named `X`); every key SCAN
///   returns is checked that way before anything acts on it, so a foreign structure is never
///   counted, purged or vacuumed (up to a collision of the 72-bit digest).
#[derive(Debug, Clone)]
pub(crate) struct Naming {
    layout: Layout,
    /// Per-function layouts: `{prefix}{name}:{policy}-m` or `…-cm`, before `:{function}`.
    functions_base: String,
    /// The one structure of the shared layouts.
    shared: Structure,
    /// Equal copies of `shared`, in one allocation per stripe of threads ([`crate::stripe`]):
    /// every call clones the structure, and two threads cloning one `Arc` would write its
    /// count on one line at every call.
    shared_copies: std::sync::Arc<[Structure]>,
    /// Where the cache's registry and shared counters live: `{meta_base}:registry` and
    /// `{meta_base}:stats` (see [`Naming::registry_key`]).
    meta_base: String,
}

/// The length of `#` and a function digest at the end of a [`Layout::PerFunction`] base.
const DIGEST_TAIL: usize = 13;
/// The length of `#{`, a function digest and `}` at the end of a
/// [`Layout::ClusterPerFunction`] base.
const CLUSTER_DIGEST_TAIL: usize = 15;

impl Naming {
    /// Key naming for a cache; `prefix` ends with `:` (see [`check_prefix`]), and `name` and
    /// `prefix` were checked by [`check_hash_tag_free`] when `layout` is a cluster layout.
    pub(crate) fn new(prefix: &str, name: &str, policy: Policy, layout: Layout) -> Naming {
        let tag = policy.tag();
        let name = escape_name(name);
        let shared = match layout {
            Layout::Cluster => format!("{prefix}{{{name}:{tag}-c}}"),
            _ => format!("{prefix}{name}:{tag}"),
        };
        let infix = if layout == Layout::ClusterPerFunction {
            "cm"
        } else {
            "m"
        };
        let functions_base = format!("{prefix}{name}:{tag}-{infix}");
        // The shared layouts: next to their one structure (in its hash tag on a cluster).
        // The per-function layouts: after the functions' base, which no structure key ends
        // with (theirs go on with `:{function}#{digest}`); on a cluster inside a hash tag of
        // their own, so that the registry and the counters share a slot.
        let meta_base = match layout {
            Layout::Shared | Layout::Cluster => shared.clone(),
            Layout::PerFunction => functions_base.clone(),
            Layout::ClusterPerFunction => format!("{prefix}{{{name}:{tag}-cm}}"),
        };
        Naming {
            layout,
            functions_base,
            shared: Structure::from_base(&shared),
            shared_copies: (0..crate::stripe::stripe_count())
                .map(|_| Structure::from_base(&shared))
                .collect(),
            meta_base,
        }
    }

    /// The hash that records the cache's settings and the identity of each function its
    /// processes call (see `registry.rs`). It ends with `:registry`, which no structure or
    /// lease key does, so the layouts' SCAN patterns never take it for a structure, and
    /// purging or vacuuming the cache leaves it (it describes functions, not entries).
    pub(crate) fn registry_key(&self) -> String {
        format!("{}:registry", self.meta_base)
    }

    /// The hash of per-function counters that every process adds its own to (see
    /// `shared_stats.rs`); like the registry, never a structure and never purged.
    pub(crate) fn stats_key(&self) -> String {
        format!("{}:stats", self.meta_base)
    }

    /// The layout the names are of.
    pub(crate) fn layout(&self) -> Layout {
        self.layout
    }

    /// The pub/sub channel on which the scripts that change this cache's entries tell
    /// near caches which members changed (see `near.rs`). Not a key: nothing is stored there.
    pub(crate) fn near_channel(&self) -> String {
        format!("{}:near", self.meta_base)
    }

    /// The structure that holds the entries of `function`.
    /// The shared layouts' structure: the calling thread's copy.
    fn shared_structure(&self) -> Structure {
        let stripe = crate::stripe::thread_stripe() & self.shared_copies.len().wrapping_sub(1);
        self.shared_copies
            .get(stripe)
            .unwrap_or(&self.shared)
            .clone()
    }

    pub(crate) fn structure(&self, function: &str) -> Structure {
        match self.layout {
            Layout::Shared | Layout::Cluster => self.shared_structure(),
            Layout::PerFunction => Structure::from_base(&format!(
                "{}:{function}#{}",
                self.functions_base,
                function_digest(function)
            )),
            Layout::ClusterPerFunction => Structure::from_base(&format!(
                "{}:{}#{{{}}}",
                self.functions_base,
                escape_function(function),
                function_digest(function)
            )),
        }
    }

    /// Structures known without scanning (the shared one), or `None` when they must be
    /// discovered with SCAN using [`Naming::scan_pattern`].
    pub(crate) fn fixed_structures(&self) -> Option<Vec<Structure>> {
        (!self.layout.is_per_function()).then(|| vec![self.shared_structure()])
    }

    /// A SCAN MATCH pattern that matches every key of every per-function structure (`:0` to
    /// `:6`: a structure whose index was deleted or evicted is still found by its entries, and
    /// one whose entries are gone by the tag bookkeeping or the sketch they left). It may match other keys
    /// too: [`Naming::owned_structure`] sorts them out.
    pub(crate) fn scan_pattern(&self) -> String {
        format!("{}:*:[0-6]", glob_escape(&self.functions_base))
    }

    /// The structure `key` belongs to, when it is a key of one of this cache's per-function
    /// structures: exactly the key [`Naming::structure`] names for the function it spells.
    pub(crate) fn owned_structure(&self, key: &str) -> Option<Structure> {
        let base = key
            .strip_suffix(":0")
            .or_else(|| key.strip_suffix(":1"))
            .or_else(|| key.strip_suffix(":2"))
            .or_else(|| key.strip_suffix(":3"))
            .or_else(|| key.strip_suffix(":4"))
            .or_else(|| key.strip_suffix(":5"))
            .or_else(|| key.strip_suffix(":6"))?;
        let rest = base.strip_prefix(&self.functions_base)?.strip_prefix(':')?;
        let function = match self.layout {
            Layout::PerFunction => {
                let (function, _) = rest.split_at_checked(rest.len().checked_sub(DIGEST_TAIL)?)?;
                std::borrow::Cow::Borrowed(function)
            }
            Layout::ClusterPerFunction => {
                let at = rest.len().checked_sub(CLUSTER_DIGEST_TAIL)?;
                let (function, _) = rest.split_at_checked(at)?;
                unescape_function(function).into()
            }
            Layout::Shared | Layout::Cluster => return None,
        };
        let structure = self.structure(&function);
        let ours = structure
            .index
            .strip_suffix(":0")
            .is_some_and(|own| own == base);
        ours.then_some(structure)
    }
}

/// Writes a cache name with `%` as `%25` and `:` as `%3A`: the name then holds no `:`, which
/// makes the key readable from the right (see [`Naming`]), and the escaping is reversible, so
/// two names never share an escaped form (`a%3Ab` is written `a%253Ab`).
fn escape_name(name: &str) -> std::borrow::Cow<'_, str> {
    if !name.contains(['%', ':']) {
        return name.into();
    }
    name.replace('%', "%25").replace(':', "%3A").into()
}

/// Refuses a prefix that does not end with `:`, the one character that tells where the prefix
/// ends and the (escaped) name begins.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), Error> {
    if !prefix.ends_with(':') {
        return Err(Error::config(format!(
            "the key prefix `{prefix}` must end with `:`, which separates it from the cache \
             name (without it, prefix `ap` with name `px` and prefix `app` with name `x` would \
             name the same keys)"
        )));
    }
    Ok(())
}

/// Refuses braces in a part of a key name that precedes the layout's own hash tag: a brace
/// there would make Redis hash another part of the key (or none), moving the cache to other
/// slots than the documented ones. `what` names the part for the error message.
pub(crate) fn check_hash_tag_free(what: &str, text: &str) -> Result<(), Error> {
    if text.contains(['{', '}']) {
        return Err(Error::config(format!(
            "the {what} `{text}` contains `{{` or `}}`, which the cluster layouts reserve for \
             the Redis hash tag they place in every key"
        )));
    }
    Ok(())
}

/// Writes the braces of a function identity as `%7B` / `%7D` (and `%` as `%25`, so that the
/// escaping can be undone), so that the only hash tag of a [`Layout::ClusterPerFunction`] key
/// is the digest the layout appends.
fn escape_function(function: &str) -> std::borrow::Cow<'_, str> {
    if function.contains(['{', '}', '%']) {
        function
            .replace('%', "%25")
            .replace('{', "%7B")
            .replace('}', "%7D")
            .into()
    } else {
        function.into()
    }
}

/// Undoes [`escape_function`]. Any other `%` sequence is kept as it is: the caller compares
/// the key named for the result with the key it read, so a spelling `escape_function` would
/// not write is not taken for one of ours.
fn unescape_function(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let (text, skip) = if tail.starts_with("%25") {
            ("%", 3)
        } else if tail.starts_with("%7B") {
            ("{", 3)
        } else if tail.starts_with("%7D") {
            ("}", 3)
        } else {
            ("%", 1)
        };
        out.push_str(text);
        rest = &tail[skip..];
    }
    out.push_str(rest);
    out
}

/// Escapes Redis glob metacharacters so a prefix or name is matched literally.
pub(crate) fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_keys_follow_the_documented_names() {
        let n = Naming::new("func-cache:", "my-app", Policy::Lru, Layout::Shared);
        let s = n.structure("any");
        assert_eq!(s.index, "func-cache:my-app:lru:0");
        assert_eq!(s.values, "func-cache:my-app:lru:1");
        assert_eq!(n.structure("other"), s);
    }

    #[test]
    fn per_function_keys_carry_function_and_digest() {
        let n = Naming::new("p:", "app", Policy::Random, Layout::PerFunction);
        let s = n.structure("mod::f");
        let digest = function_digest("mod::f");
        assert_eq!(s.index, format!("p:app:rr-m:mod::f#{digest}:0"));
        assert_eq!(Structure::from_index_key(&s.index), Some(s.clone()));
        assert_eq!(n.scan_pattern(), "p:app:rr-m:*:[0-6]");
        let mut member = [0u8; 16];
        member[0] = 0xab;
        member[15] = 0x01;
        assert_eq!(
            s.lease_key(&member),
            format!("p:app:rr-m:mod::f#{digest}:lock:ab000000000000000000000000000001")
        );
    }

    #[test]
    fn cluster_keys_share_one_hash_tag_per_structure() {
        use redis::cluster_routing::Slot;
        let n = Naming::new("func-cache:", "my-app", Policy::Lru, Layout::Cluster);
        let s = n.structure("any");
        assert_eq!(s.index, "func-cache:{my-app:lru-c}:0");
        assert_eq!(s.values, "func-cache:{my-app:lru-c}:1");
        assert_eq!(s.expiry, "func-cache:{my-app:lru-c}:2");
        assert_eq!(n.structure("other"), s);
        assert_eq!(n.fixed_structures(), Some(vec![s.clone()]));
        assert_eq!(Slot::for_key(&s.index), Slot::for_key(&s.expiry));
        assert_eq!(Slot::for_key(&s.index), Slot::for_key("my-app:lru-c"));

        let n = Naming::new("p:", "app", Policy::LruT, Layout::ClusterPerFunction);
        let digest = function_digest("mod::f");
        let s = n.structure("mod::f");
        assert_eq!(s.index, format!("p:app:lru_t-cm:mod::f#{{{digest}}}:0"));
        assert_eq!(s.expiry, format!("p:app:lru_t-cm:mod::f#{{{digest}}}:2"));
        assert_eq!(Slot::for_key(&s.values), Slot::for_key(&digest));
        assert_eq!(Slot::for_key(&s.expiry), Slot::for_key(&digest));
        assert_eq!(Structure::from_index_key(&s.index), Some(s));
        assert_eq!(n.fixed_structures(), None);
        assert_eq!(n.scan_pattern(), "p:app:lru_t-cm:*:[0-6]");
    }

    #[test]
    fn braces_in_function_identities_are_escaped_and_still_distinct() {
        let n = Naming::new("p:", "app", Policy::Lru, Layout::ClusterPerFunction);
        let braced = n.structure("f{x}");
        assert!(
            braced.index.starts_with("p:app:lru-cm:f%7Bx%7D#{"),
            "{braced:?}"
        );
        // Exactly one `{`: the digest's hash tag.
        assert_eq!(braced.index.matches('{').count(), 1);
        assert_ne!(braced, n.structure("f%7Bx%7D"));
        assert!(
            n.structure("f%7Bx%7D")
                .index
                .starts_with("p:app:lru-cm:f%257Bx%257D#{")
        );
        // Only the cluster layouts escape: the other layouts keep their documented names.
        let plain = Naming::new("p:", "app", Policy::Lru, Layout::PerFunction).structure("f{x}");
        assert!(plain.index.starts_with("p:app:lru-m:f{x}#"), "{plain:?}");
    }

    #[test]
    fn braces_in_names_are_refused() {
        assert!(check_hash_tag_free("cache name", "app").is_ok());
        for bad in ["a{b", "a}b", "{ab}"] {
            let err = check_hash_tag_free("cache name", bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Config);
            assert!(err.to_string().contains("hash tag"), "{err}");
        }
    }

    #[test]
    fn names_are_escaped_so_that_keys_read_back_from_the_right() {
        let n = |prefix, name| Naming::new(prefix, name, Policy::Lru, Layout::Shared);
        // Ordinary names keep the documented shape.
        assert_eq!(
            n("func-cache:", "my-app").structure("f").index,
            "func-cache:my-app:lru:0"
        );
        let colon = n("p:", "a:b").structure("f");
        assert_eq!(colon.index, "p:a%3Ab:lru:0");
        assert_ne!(colon, n("p:a:", "b").structure("f"));
        assert_eq!(n("p:", "a%3Ab").structure("f").index, "p:a%253Ab:lru:0");
        let cluster = Naming::new("p:", "a:b", Policy::Lru, Layout::Cluster).structure("f");
        assert_eq!(cluster.index, "p:{a%3Ab:lru-c}:0");
        let per = Naming::new("p:", "a:b", Policy::Lru, Layout::PerFunction);
        assert_eq!(per.scan_pattern(), "p:a%3Ab:lru-m:*:[0-6]");
    }

    #[test]
    fn prefixes_end_with_a_colon() {
        assert!(check_prefix("func-cache:").is_ok());
        assert!(check_prefix("a:b:").is_ok());
        for bad in ["ap", "a:b", "x-"] {
            assert_eq!(
                check_prefix(bad).unwrap_err().kind(),
                crate::ErrorKind::Config
            );
        }
    }

    #[test]
    fn a_scanned_key_is_ours_only_when_it_is_exactly_the_key_we_name() {
        for layout in [Layout::PerFunction, Layout::ClusterPerFunction] {
            let n = Naming::new("p:", "X", Policy::LruT, layout);
            for function in ["f", "mod::g", "a#b:c", "f{x}%", "f%7Bx%7D", ""] {
                let s = n.structure(function);
                let keys = [&s.index, &s.values, &s.expiry, &s.tags, &s.tagged];
                for key in keys.into_iter().chain([&s.sketch, &s.meta]) {
                    assert_eq!(n.owned_structure(key), Some(s.clone()), "{layout:?} {key}");
                }
                assert_eq!(n.owned_structure(&s.lease_key(&[0; 16])), None);
            }
            // A cache whose crafted prefix puts its keys under this cache's pattern.
            let infix = if layout == Layout::PerFunction {
                "m"
            } else {
                "cm"
            };
            let prefix = format!("p:X:lru_t-{infix}:");
            let other = Naming::new(&prefix, "y", Policy::LruT, layout);
            let theirs = other.structure("f");
            assert!(theirs.index.starts_with(&format!("p:X:lru_t-{infix}:")));
            assert_eq!(n.owned_structure(&theirs.index), None, "{theirs:?}");
            let shared = Naming::new(&prefix, "y", Policy::LruT, Layout::Shared).structure("f");
            assert_eq!(n.owned_structure(&shared.index), None, "{shared:?}");
            // Another policy, or no digest at all.
            let lru = Naming::new("p:", "X", Policy::Lru, layout).structure("f");
            assert_eq!(n.owned_structure(&lru.index), None);
            assert_eq!(n.owned_structure(&format!("p:X:lru_t-{infix}:f#x:0")), None);
            assert_eq!(n.owned_structure("p:X:lru_t-m:0"), None);
        }
        // The shared layouts never scan.
        let n = Naming::new("p:", "X", Policy::LruT, Layout::Shared);
        assert_eq!(n.owned_structure(&n.structure("f").index), None);
    }

    #[test]
    fn registry_and_counters_sit_beside_the_structures_and_are_never_taken_for_one() {
        let cases = [
            (Layout::Shared, "p:a%3Ab:lru"),
            (Layout::PerFunction, "p:a%3Ab:lru-m"),
            (Layout::Cluster, "p:{a%3Ab:lru-c}"),
            (Layout::ClusterPerFunction, "p:{a%3Ab:lru-cm}"),
        ];
        for (layout, base) in cases {
            let n = Naming::new("p:", "a:b", Policy::Lru, layout);
            assert_eq!(n.registry_key(), format!("{base}:registry"));
            assert_eq!(n.stats_key(), format!("{base}:stats"));
            assert_eq!(n.owned_structure(&n.registry_key()), None);
            assert_eq!(n.owned_structure(&n.stats_key()), None);
        }
        // One slot for both, and for the shared structure of the cluster layout.
        use redis::cluster_routing::Slot;
        let n = Naming::new("p:", "a", Policy::Lru, Layout::Cluster);
        assert_eq!(
            Slot::for_key(n.registry_key()),
            Slot::for_key(&n.structure("f").index)
        );
        let n = Naming::new("p:", "a", Policy::Lru, Layout::ClusterPerFunction);
        assert_eq!(
            Slot::for_key(n.registry_key()),
            Slot::for_key(n.stats_key())
        );
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
