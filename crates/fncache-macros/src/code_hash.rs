//! A stable hash of a function's code, so that a changed body never serves the old body's
//! results.
//!
//! The hash covers the signature and the body as tokens (not attributes, doc comments or
//! visibility), rendered token by token by this module rather than by the compiler's
//! pretty-printer: whitespace, comments and the compiler version do not change it. It cannot
//! see into the functions the body calls.

use proc_macro2::{Delimiter, TokenStream, TokenTree};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a.
fn fnv1a(hash: &mut u64, bytes: &[u8]) {
    for byte in bytes {
        *hash ^= u64::from(*byte);
        *hash = hash.wrapping_mul(FNV_PRIME);
    }
}

fn feed(hash: &mut u64, tokens: TokenStream) {
    for tree in tokens {
        match tree {
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("", ""),
                };
                fnv1a(hash, open.as_bytes());
                feed(hash, group.stream());
                fnv1a(hash, close.as_bytes());
            }
            TokenTree::Ident(ident) => {
                fnv1a(hash, ident.to_string().as_bytes());
                fnv1a(hash, b" ");
            }
            TokenTree::Punct(punct) => {
                let mut buf = [0u8; 4];
                fnv1a(hash, punct.as_char().encode_utf8(&mut buf).as_bytes());
            }
            TokenTree::Literal(literal) => {
                fnv1a(hash, literal.to_string().as_bytes());
                fnv1a(hash, b" ");
            }
        }
    }
}

/// The code hash of `tokens`, as 16 hex digits.
pub(crate) fn code_hash(tokens: TokenStream) -> String {
    let mut hash = FNV_OFFSET;
    feed(&mut hash, tokens);
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        let of = |text: &str| {
            let mut hash = FNV_OFFSET;
            fnv1a(&mut hash, text.as_bytes());
            hash
        };
        assert_eq!(of(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(of("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(of("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn layout_does_not_matter_but_code_does() {
        let a = code_hash(quote! { fn f(x: u64) -> u64 { x * 2 } });
        let spaced: TokenStream = "fn f ( x : u64 )->u64{ x*2 /* note */ }".parse().unwrap();
        assert_eq!(a, code_hash(spaced));
        assert_ne!(a, code_hash(quote! { fn f(x: u64) -> u64 { x * 3 } }));
        assert_ne!(a, code_hash(quote! { fn f(x: u64) -> u64 { (x * 2) } }));
        assert_ne!(
            code_hash(quote! { fn f() { ab } }),
            code_hash(quote! { fn f() { a b } })
        );
        // Pinned: a change here changes every default function identity.
        assert_eq!(a, "6907662f65d3a7eb");
    }
}
