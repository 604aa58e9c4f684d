//! Where a cache's structures live: key naming for each layout.

use crate::key::function_digest;
use crate::policy::Policy;

/// How a cache's entries are grouped into structures (index + values pairs).
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
}

/// The keys of one structure: index (`:0`), values (`:1`), per-entry expiry times (`:2`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Structure {
    pub(crate) index: String,
    pub(crate) values: String,
    pub(crate) expiry: String,
}

impl Structure {
    fn from_base(base: &str) -> Structure {
        Structure {
            index: format!("{base}:0"),
            values: format!("{base}:1"),
            expiry: format!("{base}:2"),
        }
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
    /// `{prefix}{name}:{policy}`
    base: String,
    shared: Structure,
}

impl Naming {
    pub(crate) fn new(prefix: &str, name: &str, policy: Policy, layout: Layout) -> Naming {
        let base = format!("{prefix}{name}:{}", policy.tag());
        Naming {
            layout,
            shared: Structure::from_base(&base),
            base,
        }
    }

    /// The structure that holds the entries of `function`.
    pub(crate) fn structure(&self, function: &str) -> Structure {
        match self.layout {
            Layout::Shared => self.shared.clone(),
            Layout::PerFunction => Structure::from_base(&format!(
                "{}-m:{function}#{}",
                self.base,
                function_digest(function)
            )),
        }
    }

    /// Structures known without scanning (the shared one), or `None` when they must be
    /// discovered with SCAN using [`Naming::scan_pattern`].
    pub(crate) fn fixed_structures(&self) -> Option<Vec<Structure>> {
        match self.layout {
            Layout::Shared => Some(vec![self.shared.clone()]),
            Layout::PerFunction => None,
        }
    }

    /// A SCAN MATCH pattern that matches the index keys of every per-function structure.
    pub(crate) fn scan_pattern(&self) -> String {
        format!("{}-m:*:0", glob_escape(&self.base))
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
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
