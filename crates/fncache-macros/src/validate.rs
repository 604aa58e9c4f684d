//! Checking the decorated function and describing what the expansion needs to know about it.

use std::collections::HashSet;

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{FnArg, GenericParam, Ident, ItemFn, LitBool, Pat, ReturnType, Type};

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
    /// The type of the stored value (`T` of `-> T` or `-> Result<T, E>`), when it can be named.
    pub(crate) value_type: Option<Type>,
    /// Calls take the owned path (the body may run in the background, see [`background`]);
    /// the span of the option that asks for it.
    pub(crate) owned: Option<Span>,
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

    check_mut_in_key(item, &skipped, errors);

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

    let returns_result = matches!(&sig.output, ReturnType::Type(_, ty) if is_result(ty));
    let owned = background(item, args, errors);
    check_strict(item, args, returns_result, errors);
    check_negative(args, returns_result, errors);

    let in_impl = receiver.is_some()
        || mentions(sig.to_token_stream(), "Self")
        || body_mentions_self(&item.block);
    let value_type = match &sig.output {
        ReturnType::Type(_, ty) => stored_type(ty).cloned(),
        ReturnType::Default => Some(syn::parse_quote!(())),
    };
    Function {
        receiver,
        receiver_span,
        args: arguments,
        in_impl,
        tagged_types,
        const_params,
        returns_result,
        value_type,
        owned,
    }
}

/// The first `&mut` inside a type, if any.
fn mut_reference(ty: &Type) -> Option<&syn::TypeReference> {
    struct Finder<'ast>(Option<&'ast syn::TypeReference>);
    impl<'ast> Visit<'ast> for Finder<'ast> {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            if r.mutability.is_some() && self.0.is_none() {
                self.0 = Some(r);
            }
            syn::visit::visit_type_reference(self, r);
        }
        // `fn(&mut T)` and `Fn(&mut T)` take a `&mut`; they are not one.
        fn visit_type_bare_fn(&mut self, _: &'ast syn::TypeBareFn) {}
        fn visit_parenthesized_generic_arguments(
            &mut self,
            _: &'ast syn::ParenthesizedGenericArguments,
        ) {
        }
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}

/// A `&mut` argument (or `&mut self`) in the key is refused: the body mutates it only when it
/// runs, so on a hit the mutation silently does not happen. A skipped one is a handle the
/// body needs mutably (a database connection), which the user has said the result does not
/// depend on.
fn check_mut_in_key(item: &ItemFn, skipped: &HashSet<String>, errors: &mut Errors) {
    let fun = &item.sig.ident;
    for input in &item.sig.inputs {
        let (name, found) = match input {
            // `mut self` is a mutable binding of an owned value: nothing outlives the call.
            FnArg::Receiver(r) if r.reference.is_some() && r.mutability.is_some() => {
                ("self".to_owned(), r.to_token_stream())
            }
            FnArg::Receiver(_) => continue,
            FnArg::Typed(typed) => {
                let Pat::Ident(p) = &*typed.pat else { continue };
                match mut_reference(&typed.ty) {
                    Some(r) => (p.ident.to_string(), r.to_token_stream()),
                    None => continue,
                }
            }
        };
        if skipped.contains(&name) {
            continue;
        }
        errors.push(syn::Error::new_spanned(
            found,
            format!(
                "`{name}` is a `&mut`: the body of `{fun}` runs only on a miss, so on a hit \
                 whatever it would have done to `{name}` silently does not happen. Return the \
                 new value instead (in the cached value, e.g. a tuple); or, if `{name}` is a \
                 handle the body merely needs mutably (a connection) and the result does not \
                 depend on it, leave it out of the key with `skip({name})`"
            ),
        ));
    }
}

/// Tokens as a user would write them, for messages: `Vec<u8>`, not `Vec < u8 >`.
fn display(tokens: &impl ToTokens) -> String {
    let mut text = tokens.to_token_stream().to_string();
    for (spaced, tight) in [
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ::", "::"),
        (":: ", "::"),
    ] {
        text = text.replace(spaced, tight);
    }
    text.replace(" ,", ",").replace("& ", "&")
}

/// Why the body of a function cannot be moved into background work: where, what, and how
/// to fix it.
struct Obstacle {
    tokens: TokenStream,
    what: String,
    fix: &'static str,
}

/// Why the body of `item` cannot be moved into background work, judged from its signature
/// alone.
///
/// The body runs in the background (a worker thread, a tokio task) only as an owned closure,
/// which must be `'static`. The closure captures the arguments the body uses, so none may
/// borrow: no reference (other than `&'static`), no lifetime (other than `'static`), no generic
/// parameter (its instances may borrow), no receiver (`&self` borrows; the type of `self` by
/// value, like any `Self`, has lifetimes and parameters of the `impl` that an attribute on the
/// method cannot see). Const generics are values, and fine. `Send` cannot be judged from
/// syntax: the owned helpers of `__private` ask for it, with a message that names the options.
fn background_obstacle(item: &ItemFn) -> Option<Obstacle> {
    let sig = &item.sig;
    for input in &sig.inputs {
        if let FnArg::Receiver(r) = input {
            let what = if r.reference.is_some() {
                "the receiver borrows the instance"
            } else {
                "it takes `self`, whose type (with the lifetimes and generic parameters of the \
                 `impl`) the attribute cannot see"
            };
            return Some(Obstacle {
                tokens: r.to_token_stream(),
                what: what.to_owned(),
                fix: "make it an associated function without `self` that takes owned arguments",
            });
        }
    }
    for param in &sig.generics.params {
        let (tokens, what) = match param {
            GenericParam::Type(t) => (
                t.ident.to_token_stream(),
                format!(
                    "`{}` is a generic parameter (an instance may borrow)",
                    t.ident
                ),
            ),
            GenericParam::Lifetime(l) => (
                l.lifetime.to_token_stream(),
                format!("`{}` is a lifetime parameter", l.lifetime),
            ),
            GenericParam::Const(_) => continue,
        };
        return Some(Obstacle {
            tokens,
            what,
            fix: "use concrete, owned types",
        });
    }
    let typed = sig.inputs.iter().filter_map(|input| match input {
        FnArg::Typed(typed) => Some((Some(&*typed.pat), &*typed.ty)),
        FnArg::Receiver(_) => None,
    });
    let output = match &sig.output {
        ReturnType::Type(_, ty) => Some((None, &**ty)),
        ReturnType::Default => None,
    };
    for (pat, ty) in typed.chain(output) {
        if let Some((tokens, what, fix)) = borrowing(ty) {
            let whose = match pat {
                Some(pat) => format!("the type of `{}`", display(pat)),
                None => "the return type".to_owned(),
            };
            return Some(Obstacle {
                tokens,
                what: format!("{whose} {what}"),
                fix,
            });
        }
    }
    None
}

/// The first part of `ty` that may borrow (see [`background_obstacle`]): its tokens, what it
/// is, how to fix it.
fn borrowing(ty: &Type) -> Option<(TokenStream, String, &'static str)> {
    struct Finder(Option<(TokenStream, String, &'static str)>);
    impl Finder {
        fn found(&mut self, tokens: TokenStream, what: String, fix: &'static str) {
            if self.0.is_none() {
                self.0 = Some((tokens, what, fix));
            }
        }
    }
    impl<'ast> Visit<'ast> for Finder {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            match &r.lifetime {
                Some(l) if l.ident == "static" => syn::visit::visit_type_reference(self, r),
                _ => self.found(
                    r.to_token_stream(),
                    "is a reference".to_owned(),
                    "take it owned (`String` for `&str`, `Vec<T>` for `&[T]`, `Arc<T>` or a \
                     clone for `&T`)",
                ),
            }
        }
        fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
            if l.ident != "static" {
                self.found(
                    l.to_token_stream(),
                    format!("borrows for `{l}`"),
                    "use owned data",
                );
            }
        }
        fn visit_type_impl_trait(&mut self, t: &'ast syn::TypeImplTrait) {
            self.found(
                t.to_token_stream(),
                "is generic (`impl Trait`; an instance may borrow)".to_owned(),
                "use a concrete, owned type",
            );
        }
        fn visit_type_macro(&mut self, t: &'ast syn::TypeMacro) {
            self.found(
                t.to_token_stream(),
                "is a macro, which the attribute cannot see into".to_owned(),
                "write the type out",
            );
        }
        fn visit_path_segment(&mut self, segment: &'ast syn::PathSegment) {
            if segment.ident == "Self" {
                self.found(
                    segment.ident.to_token_stream(),
                    "names `Self`, whose lifetimes and generic parameters (those of the `impl`) \
                     the attribute cannot see"
                        .to_owned(),
                    "name the type itself",
                );
            }
            syn::visit::visit_path_segment(self, segment);
        }
        // A function pointer's or an `Fn(..)` bound's lifetimes are its own: `fn(&str)` and
        // `Box<dyn Fn(&str) + Send>` are `'static`.
        fn visit_type_bare_fn(&mut self, _: &'ast syn::TypeBareFn) {}
        fn visit_parenthesized_generic_arguments(
            &mut self,
            _: &'ast syn::ParenthesizedGenericArguments,
        ) {
        }
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}

/// Decides whether calls take the owned path, and checks the options that need it.
///
/// The owned path runs the body in the background (`__private::*_owned`): it is taken when the
/// function can give an owned body (no [`background_obstacle`]) and an option on the attribute
/// asks for background work: `refresh_after` (refresh while the stale value is served),
/// `compute_timeout` (abandon a slow recomputation for the stale value, letting it finish in
/// the background), `wait = false` or `default` (answer the default, fill in the background).
/// Otherwise the borrowed path refreshes inline. `wait = false` and `default` mean nothing
/// without background work, so they are errors on a function that cannot give it.
fn background(item: &ItemFn, args: &CachedArgs, errors: &mut Errors) -> Option<Span> {
    let fun = &item.sig.ident;
    let obstacle = background_obstacle(item);
    if let Some(wait) = args.no_wait()
        && args.default.is_none()
    {
        errors.push(syn::Error::new_spanned(
            wait,
            format!(
                "`wait = false` answers a default value on a cold miss (and fills the cache in \
                 the background), but `{fun}` has no `default`: add `default = EXPR`, a value of \
                 the type the function caches (the `T` of `-> T` or `-> Result<T, E>`)"
            ),
        ));
    }
    if let (Some(default), Some(wait)) = (&args.default, &args.wait)
        && wait.value
    {
        errors.push(syn::Error::new_spanned(
            default,
            "`default` is answered only by a function that does not wait for a cold miss, but \
             this one sets `wait = true`, so it would never be used: remove `default`, or write \
             `wait = false`",
        ));
    }
    let needs_background = if args.no_wait().is_some() {
        Some("`wait = false` makes")
    } else if args.default.is_some() {
        Some(
            "`default = ...` (answered when the cache does not wait: `wait = false` here or on its builder) makes",
        )
    } else {
        None
    };
    if let (Some(option), Some(obstacle)) = (needs_background, &obstacle) {
        let Obstacle { tokens, what, fix } = obstacle;
        errors.push(syn::Error::new_spanned(
            tokens,
            format!(
                "{option} `{fun}` fill the cache in the background while the default is \
                 answered, which moves the arguments its body uses into background work, so \
                 they must be owned and `'static`; but {what}. To fix it, {fix}; or remove \
                 `wait = false` and `default`, and the function waits for its value"
            ),
        ));
    }
    let wants_background = args
        .duration_option("refresh_after")
        .or_else(|| args.duration_option("compute_timeout"))
        .map(Ident::span)
        .or_else(|| args.no_wait().map(LitBool::span))
        .or_else(|| args.default.as_ref().map(Spanned::span));
    wants_background.filter(|_| obstacle.is_none())
}

/// `strict = true` surfaces backend errors, which only a `Result` return can carry.
fn check_strict(item: &ItemFn, args: &CachedArgs, returns_result: bool, errors: &mut Errors) {
    let Some(strict) = args.strict.as_ref().filter(|s| s.value) else {
        return;
    };
    if returns_result {
        return;
    }
    let fun = &item.sig.ident;
    let returns = match &item.sig.output {
        ReturnType::Type(_, ty) => format!("returns `{}`", display(ty)),
        ReturnType::Default => "returns nothing".to_owned(),
    };
    errors.push(syn::Error::new_spanned(
        strict,
        format!(
            "`strict = true` returns backend errors through the function's `Result`, but \
             `{fun}` {returns}: a decorated function keeps its return type, so it has no way to \
             return them. Return `Result<T, E>` with `E: From<fncache::Error>`, or remove \
             `strict` (the cache then fails open: the body's value is returned and the failure \
             is counted and logged)"
        ),
    ));
}

/// Negative caching needs both its options, and a function whose errors there are.
fn check_negative(args: &CachedArgs, returns_result: bool, errors: &mut Errors) {
    let ttl = args.duration_option("negative_ttl");
    match (&args.cache_err_if, ttl) {
        (None, None) => {}
        (Some(predicate), None) => errors.push(syn::Error::new_spanned(
            predicate,
            "`cache_err_if` caches the errors it chooses for `negative_ttl`, which is missing: \
             add `negative_ttl = Duration::from_secs(..)`",
        )),
        (None, Some(ttl)) => errors.push(syn::Error::new_spanned(
            ttl,
            "`negative_ttl` is how long the errors `cache_err_if` chooses are cached, and \
             `cache_err_if` is missing: add `cache_err_if = |e| matches!(e, ..)`",
        )),
        (Some(predicate), Some(_)) if !returns_result => errors.push(syn::Error::new_spanned(
            predicate,
            "`cache_err_if` caches chosen errors, but this function does not return a `Result`",
        )),
        (Some(_), Some(_)) => {}
    }
}
