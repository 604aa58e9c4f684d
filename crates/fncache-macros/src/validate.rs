//! Checking the decorated function and describing what the expansion needs to know about it.

use std::collections::HashSet;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::visit::Visit;
use syn::{FnArg, GenericParam, Ident, ItemFn, Pat, ReturnType, Type};

use crate::args::CachedArgs;
use crate::errors::Errors;

/// How a method takes `self`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Receiver {
    /// `&self` or `&mut self`: `self` is a reference to the instance.
    Ref,
    /// `self`, `mut self` or `self: Type`: `self` is a value.
    Value,
}

/// An argument other than `self`.
pub(crate) struct Argument {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    /// Left out of the key by `skip(..)`.
    pub(crate) skipped: bool,
}

/// What the expansion of `#[cached]` needs to know about the function.
pub(crate) struct Function {
    /// The method's receiver, and whether it is skipped.
    pub(crate) receiver: Option<(Receiver, bool)>,
    /// Where the receiver is written (errors about `self` point there).
    pub(crate) receiver_span: Span,
    pub(crate) args: Vec<Argument>,
    /// The function certainly lives in an `impl` (it takes `self` or names `Self`).
    pub(crate) in_impl: bool,
    /// Generic type parameters whose name goes into the key.
    pub(crate) tagged_types: Vec<Ident>,
    /// Const generic parameters whose value goes into the key.
    pub(crate) const_params: Vec<Ident>,
    /// The return type is a `Result`: only `Ok` is cached.
    pub(crate) returns_result: bool,
}

/// Checks shared by both attributes: the function must be an ordinary safe Rust function.
pub(crate) fn check_signature(item: &ItemFn, attribute: &str, errors: &mut Errors) {
    let sig = &item.sig;
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            constness,
            format!("`#[fncache::{attribute}]` cannot be used on a `const fn`: caching happens at run time; remove `const`"),
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            unsafety,
            format!("`#[fncache::{attribute}]` cannot be used on an `unsafe fn`: wrap the unsafe call in a safe function and decorate that"),
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            format!("`#[fncache::{attribute}]` cannot be used on an `extern` function: decorate a Rust function that calls it"),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            format!("`#[fncache::{attribute}]` cannot be used on a variadic function"),
        ));
    }
}

/// True when `tokens` mention the identifier `name` anywhere.
pub(crate) fn mentions(tokens: TokenStream, name: &str) -> bool {
    tokens.into_iter().any(|tree| match tree {
        TokenTree::Ident(ident) => ident == name,
        TokenTree::Group(group) => mentions(group.stream(), name),
        _ => false,
    })
}

/// Does the body use `Self` (of the enclosing `impl`)? Items nested in the body have a `Self`
/// of their own and cannot see the outer one, so they do not count.
fn body_mentions_self(block: &syn::Block) -> bool {
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_item(&mut self, _: &'ast syn::Item) {}
        fn visit_ident(&mut self, ident: &'ast Ident) {
            self.0 |= ident == "Self";
        }
        fn visit_macro(&mut self, mac: &'ast syn::Macro) {
            self.0 |= mentions(mac.tokens.clone(), "Self");
            syn::visit::visit_macro(self, mac);
        }
    }
    let mut finder = Finder(false);
    finder.visit_block(block);
    finder.0
}

/// Every identifier in `tokens`.
fn idents(tokens: TokenStream, out: &mut HashSet<String>) {
    for tree in tokens {
        match tree {
            TokenTree::Ident(ident) => {
                out.insert(ident.to_string());
            }
            TokenTree::Group(group) => idents(group.stream(), out),
            _ => {}
        }
    }
}

/// The first `impl Trait` inside a type, if any.
fn impl_trait(ty: &Type) -> Option<&Type> {
    match ty {
        Type::ImplTrait(_) => Some(ty),
        Type::Reference(r) => impl_trait(&r.elem),
        Type::Paren(p) => impl_trait(&p.elem),
        Type::Group(g) => impl_trait(&g.elem),
        Type::Slice(s) => impl_trait(&s.elem),
        Type::Array(a) => impl_trait(&a.elem),
        Type::Ptr(p) => impl_trait(&p.elem),
        Type::Tuple(t) => t.elems.iter().find_map(impl_trait),
        Type::Path(p) => p.path.segments.iter().find_map(|segment| {
            let syn::PathArguments::AngleBracketed(args) = &segment.arguments else {
                return None;
            };
            args.args.iter().find_map(|arg| match arg {
                syn::GenericArgument::Type(t) => impl_trait(t),
                _ => None,
            })
        }),
        _ => None,
    }
}

/// True when `ty` is written `Result<..>` (any path ending in `Result`, so `io::Result<T>`
/// and aliases named `Result` count).
pub(crate) fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => {
            p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == "Result")
        }
        Type::Group(g) => is_result(&g.elem),
        Type::Paren(p) => is_result(&p.elem),
        _ => false,
    }
}

/// The type of the stored value: the `T` of `Result<T, E>`, else the return type itself.
fn stored_type(ty: &Type) -> Option<&Type> {
    if !is_result(ty) {
        return Some(ty);
    }
    let Type::Path(p) = ty else { return None };
    let syn::PathArguments::AngleBracketed(args) = &p.path.segments.last()?.arguments else {
        return None;
    };
    args.args.iter().find_map(|arg| match arg {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

/// Checks a function for `#[cached]` and describes it.
pub(crate) fn analyze(item: &ItemFn, args: &CachedArgs, errors: &mut Errors) -> Function {
    check_signature(item, "cached", errors);
    let sig = &item.sig;
    if let ReturnType::Type(_, ty) = &sig.output
        && let Some(stored) = stored_type(ty)
        && let Type::Reference(reference) = stored
    {
        errors.push(syn::Error::new_spanned(
            reference,
            "a cached function must return owned data, since its value is stored and read back \
             later: return `String` instead of `&str`, `Vec<T>` instead of `&[T]`, `T` instead of `&T`",
        ));
    }
    if let ReturnType::Type(_, ty) = &sig.output
        && let Some(found) = impl_trait(ty)
    {
        errors.push(syn::Error::new_spanned(
            found,
            "a function returning `impl Trait` cannot be cached: an iterator, stream, future or \
             generator is produced lazily and has no value to store; return a collected value \
             (`Vec<T>`), or write an `async fn`",
        ));
    }

    let mut skip_self = false;
    let mut skipped = HashSet::new();
    for name in &args.skip {
        if !skipped.insert(name.to_string()) {
            errors.push(syn::Error::new_spanned(
                name,
                format!("`{name}` is skipped twice"),
            ));
        }
        if name == "self" {
            skip_self = true;
        }
    }

    let mut receiver = None;
    let mut receiver_span = Span::call_site();
    let mut arguments = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                let kind = if r.reference.is_some() {
                    Receiver::Ref
                } else {
                    Receiver::Value
                };
                receiver = Some((kind, skip_self));
                receiver_span = r.self_token.span;
            }
            FnArg::Typed(typed) => {
                let ident = match &*typed.pat {
                    Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => p.ident.clone(),
                    other => {
                        errors.push(syn::Error::new_spanned(
                            other,
                            "give this argument a name (`arg: Type`) and destructure it inside \
                             the function: `#[fncache::cached]` refers to arguments by name",
                        ));
                        continue;
                    }
                };
                let is_skipped = skipped.contains(&ident.to_string());
                if !is_skipped && let Some(found) = impl_trait(&typed.ty) {
                    errors.push(syn::Error::new_spanned(
                        found,
                        format!(
                            "an `impl Trait` argument cannot be part of the cache key, since calls \
                             with different types could not be told apart; use a named generic \
                             parameter (`<T: Trait + Serialize>`), or leave it out of the key \
                             with `skip({ident})`"
                        ),
                    ));
                }
                arguments.push(Argument {
                    ident,
                    ty: (*typed.ty).clone(),
                    skipped: is_skipped,
                });
            }
        }
    }

    for name in &args.skip {
        let known = if name == "self" {
            receiver.is_some()
        } else {
            arguments.iter().any(|a| a.ident == *name)
        };
        if !known {
            let names: Vec<String> = receiver
                .iter()
                .map(|_| "self".to_owned())
                .chain(arguments.iter().map(|a| a.ident.to_string()))
                .collect();
            let listed = if names.is_empty() {
                "it has no arguments".to_owned()
            } else {
                format!("its arguments are: {}", names.join(", "))
            };
            errors.push(syn::Error::new_spanned(
                name,
                format!(
                    "`skip({name})` names no argument of `{}`; {listed}",
                    sig.ident
                ),
            ));
        }
    }

    // The companions take only the key's arguments: the cache and the key must not need the
    // others.
    for (option, expr) in [("cache", Some(&args.cache)), ("key", args.key.as_ref())] {
        let Some(expr) = expr else { continue };
        for a in arguments.iter().filter(|a| a.skipped) {
            if mentions(expr.to_token_stream(), &a.ident.to_string()) {
                errors.push(syn::Error::new_spanned(
                    expr,
                    format!(
                        "`{option} = ...` uses `{}`, which is skipped: the companions \
                         `{fun}_invalidate` and `{fun}_is_cached` take only the arguments of the \
                         key, so they could not evaluate it; use a `static` or `self`, or do not \
                         skip `{}`",
                        a.ident,
                        a.ident,
                        fun = sig.ident
                    ),
                ));
            }
        }
    }

    // Generic parameters that only appear in skipped arguments do not change the result (that
    // is what skipping says), so only the others go into the key.
    let mut kept = HashSet::new();
    let mut in_skipped = HashSet::new();
    for a in &arguments {
        let target = if a.skipped {
            &mut in_skipped
        } else {
            &mut kept
        };
        idents(a.ty.to_token_stream(), target);
    }
    idents(sig.output.to_token_stream(), &mut kept);
    let mut tagged_types = Vec::new();
    let mut const_params = Vec::new();
    for param in &sig.generics.params {
        match param {
            GenericParam::Type(t) => {
                let name = t.ident.to_string();
                if kept.contains(&name) || !in_skipped.contains(&name) {
                    tagged_types.push(t.ident.clone());
                }
            }
            GenericParam::Const(c) => const_params.push(c.ident.clone()),
            GenericParam::Lifetime(_) => {}
        }
    }

    let in_impl = receiver.is_some()
        || mentions(sig.to_token_stream(), "Self")
        || body_mentions_self(&item.block);
    let returns_result = matches!(&sig.output, ReturnType::Type(_, ty) if is_result(ty));
    Function {
        receiver,
        receiver_span,
        args: arguments,
        in_impl,
        tagged_types,
        const_params,
        returns_result,
    }
}
