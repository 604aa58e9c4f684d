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
/// written as `%7B` and `%7D` in key names (the digest still tells such functions apart).
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
        }))
    }

    /// The key of the lease (compute lock) of one member, next to the structure's keys (so a
    /// cluster layout's hash tag puts it in the same slot).
    pub(crate) fn lease_key(&self, member: &[u8; 16]) -> String {
        let base = self.index.strip_suffix(":0").unwrap_or(&self.index);
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut key = String::with_capacity(base.len() + 38);
        key.push_str(base);
        key.push_str(":lock:");
        for byte in member {
            key.push(char::from(HEX[usize::from(byte >> 4)]));
            key.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        key
    }

    /// The structure whose index key is `index` (a key ending in `:0`), if it is one.
    pub(crate) fn from_index_key(index: &str) -> Option<Structure> {
        index.strip_suffix(":0").map(Structure::from_base)
    }
}

/// Key naming of one cache (prefix, name, policy and layout fixed at build time).
#[derive(Debug, Clone)]
pub(crate) struct Naming {
    layout: Layout,
    /// Per-function layouts: `{prefix}{name}:{policy}-m` or `…-cm`, before `:{function}`.
    functions_base: String,
    /// The one structure of the shared layouts.
    shared: Structure,
}

impl Naming {
    /// Key naming for a cache; `name` and `prefix` were checked by [`check_hash_tag_free`]
    /// when `layout` is a cluster layout.
    pub(crate) fn new(prefix: &str, name: &str, policy: Policy, layout: Layout) -> Naming {
        let tag = policy.tag();
        let shared = match layout {
            Layout::Cluster => format!("{prefix}{{{name}:{tag}-c}}"),
            _ => format!("{prefix}{name}:{tag}"),
        };
        let infix = if layout == Layout::ClusterPerFunction {
            "cm"
        } else {
            "m"
        };
        Naming {
            layout,
            functions_base: format!("{prefix}{name}:{tag}-{infix}"),
            shared: Structure::from_base(&shared),
        }
    }

    /// The structure that holds the entries of `function`.
    pub(crate) fn structure(&self, function: &str) -> Structure {
        match self.layout {
            Layout::Shared | Layout::Cluster => self.shared.clone(),
            Layout::PerFunction => Structure::from_base(&format!(
                "{}:{function}#{}",
                self.functions_base,
                function_digest(function)
            )),
            Layout::ClusterPerFunction => Structure::from_base(&format!(
                "{}:{}#{{{}}}",
                self.functions_base,
                escape_braces(function),
                function_digest(function)
            )),
        }
    }

    /// Structures known without scanning (the shared one), or `None` when they must be
    /// discovered with SCAN using [`Naming::scan_pattern`].
    pub(crate) fn fixed_structures(&self) -> Option<Vec<Structure>> {
        (!self.layout.is_per_function()).then(|| vec![self.shared.clone()])
    }

    /// A SCAN MATCH pattern that matches the index keys of every per-function structure.
    pub(crate) fn scan_pattern(&self) -> String {
        format!("{}:*:0", glob_escape(&self.functions_base))
    }
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

/// Writes the braces of a function identity as `%7B` / `%7D`, so that the only hash tag of a
/// [`Layout::ClusterPerFunction`] key is the digest the layout appends. Two identities that
/// differ only in how braces are spelled still get different keys: their digests differ.
fn escape_braces(function: &str) -> std::borrow::Cow<'_, str> {
    if function.contains(['{', '}']) {
        function.replace('{', "%7B").replace('}', "%7D").into()
    } else {
        function.into()
    }
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
        assert_eq!(n.scan_pattern(), "p:app:rr-m:*:0");
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
        assert_eq!(n.scan_pattern(), "p:app:lru_t-cm:*:0");
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
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
