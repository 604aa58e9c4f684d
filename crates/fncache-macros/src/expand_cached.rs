//! Generating the code of `#[cached]`: the wrapper, its companions and its identity.

use std::collections::HashSet;

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, Ident, ItemFn, ReturnType};

use crate::args::CachedArgs;
use crate::code_hash::code_hash;
use crate::errors::Errors;
use crate::validate::{self, Function, Receiver};

/// `#[cached(attr)] item`.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let item: ItemFn = syn::parse2(item)?;
    let mut errors = Errors::default();
    let args = CachedArgs::parse(attr, &mut errors);
    let function = args
        .as_ref()
        .map(|args| validate::analyze(&item, args, &mut errors));
    errors.finish()?;
    match (args, function) {
        (Some(args), Some(function)) if args.batch.is_some() => {
            crate::expand_batch::generate(&item, &args, &function)
        }
        (Some(args), Some(function)) => Ok(generate(&item, &args, &function)),
        _ => Err(syn::Error::new(Span::call_site(), "invalid options")),
    }
}

/// The name of the hidden constant that holds the identity of `function`, which
/// `#[cache_evict(functions = [..])]` refers to.
pub(crate) fn identity_const(function: &Ident) -> Ident {
    format_ident!(
        "__fncache_identity_{}",
        function.unraw(),
        span = function.span()
    )
}

/// The function identity: name (default `module_path!()::fn`), version, code hash.
pub(crate) fn identity(item: &ItemFn, args: &CachedArgs) -> TokenStream {
    let mut parts = Vec::new();
    match &args.name {
        Some(name) => parts.push(name.to_token_stream()),
        None => {
            let name = item.sig.ident.unraw().to_string();
            parts.push(quote!(::core::module_path!()));
            parts.push(quote!("::"));
            parts.push(quote!(#name));
        }
    }
    if let Some((version, _)) = &args.version {
        let version = format!("@v{version}");
        parts.push(quote!(#version));
    }
    if args.code_hash {
        let sig = &item.sig;
        let block = &item.block;
        let hash = format!("#{}", code_hash(quote!(#sig #block)));
        parts.push(quote!(#hash));
    }
    quote!(::core::concat!(#(#parts),*))
}

/// Statements that bind `__fncache_cache` to the `&Cache` of `cache = ...`, of the right
/// front-end; a compile error at the user's expression says which cache type is needed.
///
/// The expression's value is borrowed (a temporary lives to the end of the function), unless
/// it borrows from the arguments or `self` in code that then moves them into the body
/// (`args` given): then the cache is cloned (an `Arc` clone), which ends the borrow.
pub(crate) fn cache_handle(
    cache: &Expr,
    asynchronous: bool,
    args: Option<&HashSet<String>>,
) -> TokenStream {
    let span = cache.span();
    let helper = if asynchronous {
        quote_spanned!(span=> ::fncache::__private::async_cache)
    } else {
        quote_spanned!(span=> ::fncache::__private::blocking_cache)
    };
    let tokens = cache.to_token_stream();
    let borrows_arguments = |args: &HashSet<String>| {
        validate::mentions(tokens.clone(), "self")
            || args.iter().any(|a| validate::mentions(tokens.clone(), a))
    };
    if args.is_some_and(borrows_arguments) {
        quote_spanned!(span=>
            let __fncache_cache = &::core::clone::Clone::clone(#helper(&(#cache)));
        )
    } else {
        quote_spanned!(span=>
            let __fncache_cache = &(#cache);
            let __fncache_cache = #helper(__fncache_cache);
        )
    }
}

/// Attributes that must follow the function onto its companions: conditional compilation and
/// lint levels (`expect` becomes `allow`, since a companion may not trigger the lint).
pub(crate) fn companion_attrs(attrs: &[Attribute]) -> Vec<TokenStream> {
    attrs
        .iter()
        .filter_map(|attr| {
            let path = attr.path();
            if path.is_ident("cfg") || path.is_ident("cfg_attr") || path.is_ident("allow") {
                Some(attr.to_token_stream())
            } else if path.is_ident("expect") {
                let syn::Meta::List(list) = &attr.meta else {
                    return None;
                };
                let lints = &list.tokens;
                Some(quote!(#[allow(#lints)]))
            } else {
                None
            }
        })
        .collect()
}

/// Builds the key of one call: type names (methods, generics), const generics, then the kept
/// arguments (or the custom key). In a companion, the arguments are already references.
fn key(function: &Function, args: &CachedArgs, companion: bool) -> TokenStream {
    let mut parts = Vec::new();
    if function.in_impl {
        parts.push(quote!(__fncache_key.type_of::<Self>();));
    }
    for ty in &function.tagged_types {
        parts.push(quote!(__fncache_key.type_of::<#ty>();));
    }
    for param in &function.const_params {
        parts.push(quote!(__fncache_key.part(&#param);));
    }
    let kept = function.args.iter().filter(|a| !a.skipped);
    match &args.key {
        Some(expr) => {
            // In the wrapper as in the companions, each argument is a reference here.
            let shadows = kept.filter(|_| !companion).map(|a| {
                let ident = &a.ident;
                quote!(#[allow(unused_variables)] let #ident = &#ident;)
            });
            parts.push(quote_spanned!(expr.span()=> {
                #(#shadows)*
                __fncache_key.part(&(#expr));
            }));
        }
        None => {
            if let Some((kind, false)) = function.receiver {
                let span = function.receiver_span;
                let this = if companion || kind == Receiver::Ref {
                    quote_spanned!(span=> self)
                } else {
                    quote_spanned!(span=> &self)
                };
                parts.push(quote_spanned!(span=> __fncache_key.part(#this);));
            }
            for arg in kept {
                let ident = &arg.ident;
                let value = if companion {
                    quote!(#ident)
                } else {
                    quote!(&#ident)
                };
                parts.push(quote_spanned!(arg.ty.span()=> __fncache_key.part(#value);));
            }
        }
    }
    quote!({
        #[allow(unused_mut)]
        let mut __fncache_key = ::fncache::__private::Key::new();
        #(#parts)*
        __fncache_key
    })
}

/// The per-call options: durations, codec, `None` rule, waiting, strictness, stampede
/// protection. Each `Duration` expression is checked at its own span.
fn options(args: &CachedArgs, function: &Function) -> TokenStream {
    options_of(args, function.value_type.as_ref())
}

/// [`options`] for a stored value of type `value_type` (`None`: inferred).
pub(crate) fn options_of(args: &CachedArgs, value_type: Option<&syn::Type>) -> TokenStream {
    let mut options = quote!(::fncache::__private::CallOptions::new());
    for (name, expr) in &args.durations {
        let method = Ident::new(&name.to_string(), expr.span());
        options = quote_spanned!(expr.span()=> #options.#method({
            let __fncache_duration: ::core::time::Duration = #expr;
            __fncache_duration
        }));
    }
    if let Some(fraction) = &args.entry_ttl_jitter {
        options = quote_spanned!(fraction.span()=> #options.entry_ttl_jitter({
            let __fncache_fraction: f64 = #fraction;
            __fncache_fraction
        }));
    }
    if let Some(codec) = &args.codec {
        options = quote_spanned!(codec.span()=> #options.codec({
            #[allow(unused_imports)]
            use ::fncache::__private::Codec;
            #codec
        }));
    }
    for (method, flag) in [
        ("cache_none", &args.cache_none),
        ("wait", &args.wait),
        ("strict", &args.strict),
        ("stampede_protection", &args.stampede_protection),
        ("near_cache", &args.near_cache),
    ] {
        if let Some(flag) = flag {
            let method = Ident::new(method, flag.span());
            options = quote!(#options.#method(#flag));
        }
    }
    // The hooks come last (they turn the options into `TypedOptions<T>`); each closure is
    // checked against the value type at its own span.
    let value = match value_type {
        Some(ty) => quote!(#ty),
        None => quote!(_),
    };
    let mut typed = false;
    for (method, hook, expr) in [
        ("cache_if", "cache_if_hook", &args.cache_if),
        ("entry_ttl_from", "entry_ttl_hook", &args.entry_ttl_from),
        (
            "refresh_after_from",
            "refresh_after_hook",
            &args.refresh_after_from,
        ),
    ] {
        if let Some(expr) = expr {
            let span = expr.span();
            let method = Ident::new(method, span);
            let hook = Ident::new(hook, span);
            // The first hook names the value type (`CallOptions::cache_if::<T>`), so that a
            // closure of the wrong type fails alone instead of retyping the options.
            let turbofish = (!typed).then(|| quote_spanned!(span=> ::<#value>));
            typed = true;
            options = quote_spanned!(span=>
                #options.#method #turbofish(::fncache::__private::#hook::<#value, _>(#expr))
            );
        }
    }
    // Tags are data of the call: each expression is evaluated here, over the arguments
    // (before the body takes them), and checked at its own span.
    if let Some(tags) = &args.tags {
        let tags = tags
            .iter()
            .map(|tag| quote_spanned!(tag.span()=> ::fncache::__private::tag(#tag)));
        let turbofish = (!typed).then(|| quote!(::<#value, _>));
        options = quote!(#options.tags #turbofish([#(#tags),*]));
    }
    options
}

/// The `Option<T>` the owned path answers with `wait(false)`; `default = EXPR` is checked
/// against the function's value type at the expression.
fn default_value(args: &CachedArgs, function: &Function) -> TokenStream {
    match (&args.default, &function.value_type) {
        (Some(expr), Some(ty)) => quote_spanned!(expr.span()=> {
            let __fncache_default: #ty = #expr;
            ::core::option::Option::Some(__fncache_default)
        }),
        (Some(expr), None) => quote_spanned!(expr.span()=> ::core::option::Option::Some(#expr)),
        (None, _) => quote!(::core::option::Option::None),
    }
}

/// The wrapper's body: build cache handle, options and key, then call through the cache with
/// the original body as the computation.
fn wrapper_body(item: &ItemFn, args: &CachedArgs, function: &Function) -> TokenStream {
    let asynchronous = item.sig.asyncness.is_some();
    let names: HashSet<String> = function.args.iter().map(|a| a.ident.to_string()).collect();
    let identity = identity(item, args);
    let cache = cache_handle(&args.cache, asynchronous, Some(&names));
    let options = options(args, function);
    let key = key(function, args, false);
    let block = &item.block;
    let (span, ret) = match &item.sig.output {
        ReturnType::Type(_, ty) => (ty.span(), Some(ty)),
        ReturnType::Default => (item.sig.ident.span(), None),
    };
    let name = match (asynchronous, function.returns_result) {
        (false, false) => "call_blocking",
        (false, true) => "try_call_blocking",
        (true, false) => "call_async",
        (true, true) => "try_call_async",
    };
    // Negative caching has its own helpers (a call with hooks runs inline anyway).
    let name = if args.cache_err_if.is_some() {
        format_ident!("{name}_negative", span = span)
    } else if function.owned.is_some() {
        format_ident!("{name}_owned", span = span)
    } else {
        Ident::new(name, span)
    };
    let helper = quote_spanned!(span=> ::fncache::__private::#name);
    // `Result` functions say how backend failures surface; others never see them.
    let failures = match (function.returns_result, &args.strict) {
        (false, _) => None,
        (true, Some(strict)) if strict.value => {
            Some(quote_spanned!(span=> ::fncache::__private::Strict,))
        }
        (true, _) => Some(quote_spanned!(span=> ::fncache::__private::Lenient,)),
    };
    // The owned path also takes the default answered when the function does not wait.
    // The predicate is checked against the function's error type at its own span, so that a
    // closure of the wrong type fails there instead of retyping the call.
    let negative = args.cache_err_if.as_ref().map(|predicate| {
        let error = match &item.sig.output {
            ReturnType::Type(_, ty) => error_type(ty),
            ReturnType::Default => None,
        };
        let error = error.map_or_else(|| quote!(_), |e| quote!(#e));
        quote_spanned!(predicate.span()=>
            ::fncache::__private::cache_err_hook::<#error, _>(#predicate),
        )
    });
    let default = function.owned.filter(|_| negative.is_none()).map(|_| {
        let default = default_value(args, function);
        quote!(#default,)
    });
    // On the owned path the closure (its header and an extra pair of braces around the body,
    // so that it spans nothing else) is spanned at the option that asks for background work:
    // an error about what it captures (not `Send`) points there.
    let closure = function.owned.unwrap_or_else(Span::call_site);
    // The body sits inside the closure's own braces; a one-line body (`{ id }`) would then
    // trip `unused_braces` at the user's braces. Marked as the expansion's (still located at
    // the user's braces, where errors about the block point), they are not linted.
    let mut inner = Group::new(
        Delimiter::Brace,
        block.stmts.iter().map(ToTokens::to_token_stream).collect(),
    );
    inner.set_span(Span::call_site().located_at(block.brace_token.span.join()));
    let compute = match (asynchronous, ret) {
        (false, Some(ty)) => quote_spanned!(closure=> move || -> #ty { #inner }),
        (false, None) => quote_spanned!(closure=> move || { #inner }),
        (true, Some(ty)) => quote_spanned!(closure=> move || async move {
            let __fncache_value: #ty = #inner;
            __fncache_value
        }),
        (true, None) => quote_spanned!(closure=> move || async move { #inner }),
    };
    let call = quote_spanned!(span=> #helper(
        #failures
        __fncache_cache,
        &__fncache_options,
        #default
        __FNCACHE_FUNCTION,
        __fncache_key,
        #negative
        #compute,
    ));
    let call = if asynchronous {
        quote!(#call.await)
    } else {
        call
    };
    // The braces are the user's: the function keeps its own span (lints such as `dead_code`
    // treat it as the user's code, not as the macro's).
    let mut body = Group::new(
        Delimiter::Brace,
        quote!(
            const __FNCACHE_FUNCTION: &str = #identity;
            #cache
            let __fncache_options = #options;
            let __fncache_key = #key;
            #call
        ),
    );
    body.set_span(block.brace_token.span.join());
    body.into_token_stream()
}

/// `{fn}_invalidate` or `{fn}_is_cached`: a reference to each kept argument (and `&self`).
fn key_companion(
    item: &ItemFn,
    args: &CachedArgs,
    function: &Function,
    suffix: &str,
    doc: &str,
) -> TokenStream {
    let sig = &item.sig;
    let asynchronous = sig.asyncness.is_some();
    let name = format_ident!("{}_{}", sig.ident.unraw(), suffix, span = sig.ident.span());
    let vis = &item.vis;
    let attrs = companion_attrs(&item.attrs);
    let asyncness = &sig.asyncness;
    let generics = &sig.generics;
    let where_clause = &sig.generics.where_clause;
    let receiver = function.receiver.map(|_| quote!(&self,));
    let mut params: Vec<TokenStream> = function
        .args
        .iter()
        .filter(|a| !a.skipped)
        .map(|a| {
            let ident = &a.ident;
            let ty = &a.ty;
            quote!(#ident: &#ty)
        })
        .collect();
    let identity = identity(item, args);
    let cache = cache_handle(&args.cache, asynchronous, None);
    let key = key(function, args, true);
    let helper = match (asynchronous, suffix) {
        (false, "invalidate") => quote!(::fncache::__private::invalidate_blocking),
        (false, "expire") => quote!(::fncache::__private::expire_blocking),
        (false, _) => quote!(::fncache::__private::is_cached_blocking),
        (true, "invalidate") => quote!(::fncache::__private::invalidate_async),
        (true, "expire") => quote!(::fncache::__private::expire_async),
        (true, _) => quote!(::fncache::__private::is_cached_async),
    };
    // A put writes what a call would: under the function's own options, its value typed as
    // the function's.
    let (options, value) = if suffix == "put" {
        // A negatively cached function's entries hold its whole `Result<T, E>`: its put
        // takes one (an `Err` is a negative entry).
        let ty = match (&args.cache_err_if, &item.sig.output) {
            (Some(_), ReturnType::Type(_, ret)) => quote!(#ret),
            (_, _) => {
                let ty = &function.value_type;
                quote!(#ty)
            }
        };
        params.push(quote!(__fncache_value: &#ty));
        let options = options(args, function);
        (
            Some(quote!(let __fncache_options = #options;)),
            // Spanned at the return type: the value's bound (serializable, owned) is
            // reported on this argument, and there it points where the wrapper's does.
            Some(match &item.sig.output {
                ReturnType::Type(_, ty) => {
                    quote_spanned!(ty.span()=> &__fncache_options, __fncache_value,)
                }
                ReturnType::Default => quote!(&__fncache_options, __fncache_value,),
            }),
        )
    } else {
        (None, None)
    };
    // A put's bound on the value (serializable, owned) is reported at the return type, where
    // the wrapper reports it too.
    let span = match (&item.sig.output, suffix) {
        (ReturnType::Type(_, ty), "put") => ty.span(),
        _ => Span::call_site(),
    };
    let helper = if suffix == "put" {
        let name = match (asynchronous, args.cache_err_if.is_some()) {
            (false, false) => "put_blocking",
            (false, true) => "put_blocking_negative",
            (true, false) => "put_async",
            (true, true) => "put_async_negative",
        };
        let name = Ident::new(name, span);
        quote_spanned!(span=> ::fncache::__private::#name)
    } else {
        helper
    };
    let call =
        quote_spanned!(span=> #helper(__fncache_cache, #value __FNCACHE_FUNCTION, __fncache_key));
    let call = if asynchronous {
        quote!(#call.await)
    } else {
        call
    };
    let doc = format!(
        "{doc} (generated by `#[fncache::cached]` for `{}`).",
        sig.ident.unraw()
    );
    quote! {
        #(#attrs)*
        #[doc = #doc]
        #[allow(dead_code)]
        #vis #asyncness fn #name #generics (#receiver #(#params),*)
            -> ::core::result::Result<bool, ::fncache::__private::Error>
            #where_clause
        {
            const __FNCACHE_FUNCTION: &str = #identity;
            #cache
            #options
            let __fncache_key = #key;
            #call
        }
    }
}

/// `{fn}_stats()`: the counters of this function's identity. It takes `&self` only when the
/// cache is reached through `self`, and no generic parameters (every instance of a generic
/// function has the same identity).
pub(crate) fn stats_companion(
    item: &ItemFn,
    args: &CachedArgs,
    function: &Function,
) -> TokenStream {
    let sig = &item.sig;
    let name = format_ident!("{}_stats", sig.ident.unraw(), span = sig.ident.span());
    let vis = &item.vis;
    let attrs = companion_attrs(&item.attrs);
    let through_self =
        function.receiver.is_some() && validate::mentions(args.cache.to_token_stream(), "self");
    let receiver = through_self.then(|| quote!(&self));
    let identity = identity(item, args);
    let asynchronous = sig.asyncness.is_some();
    let cache = cache_handle(&args.cache, asynchronous, None);
    let helper = if asynchronous {
        quote!(::fncache::__private::stats_async)
    } else {
        quote!(::fncache::__private::stats_blocking)
    };
    let doc = format!(
        "The cache's counters of `{}` since the cache was built: zeros before its first call \
         (generated by `#[fncache::cached]`).",
        sig.ident.unraw()
    );
    quote! {
        #(#attrs)*
        #[doc = #doc]
        #[allow(dead_code)]
        #vis fn #name(#receiver) -> ::fncache::__private::Stats {
            const __FNCACHE_FUNCTION: &str = #identity;
            #cache
            #helper(__fncache_cache, __FNCACHE_FUNCTION)
        }
    }
}

fn generate(item: &ItemFn, args: &CachedArgs, function: &Function) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = item;
    let body = wrapper_body(item, args, function);
    let companion_attrs = companion_attrs(attrs);
    let mut uncached = sig.clone();
    uncached.ident = format_ident!("{}_uncached", sig.ident.unraw(), span = sig.ident.span());
    let uncached_doc = format!(
        "Runs the body of `{}` without reading or writing the cache (generated by `#[fncache::cached]`).",
        sig.ident.unraw()
    );
    let invalidate = key_companion(
        item,
        args,
        function,
        "invalidate",
        "Removes the cached entry of this call; `Ok(true)` if there was one",
    );
    let is_cached = key_companion(
        item,
        args,
        function,
        "is_cached",
        "Is this call cached? A peek: changes no eviction order, score or TTL",
    );
    let expire = key_companion(
        item,
        args,
        function,
        "expire",
        "Marks the cached entry of this call expired but keeps it as a fail-safe fallback: the \
         next call recomputes it, and serves the old value if that fails; `Ok(true)` if a live \
         entry was marked",
    );
    // Without a nameable value type there is nothing to type the value by.
    let put = function.value_type.is_some().then(|| {
        key_companion(
            item,
            args,
            function,
            "put",
            "Stores `value` as the result of this call without running the function (under the \
             function's options); `Ok(true)` if stored",
        )
    });
    let stats = stats_companion(item, args, function);
    let identity_const = identity_const(&sig.ident);
    let identity = identity(item, args);
    // The attribute cannot see whether it is in a trait impl, where the companions are not
    // members of the trait. This item comes first, at the function's name, so that the first
    // error there ("const `..` is not a member of trait") names the fix.
    let marker = format_ident!(
        "fncache_cached_cannot_be_used_in_a_trait_impl__cache_an_inherent_method_and_call_it_from_{}",
        sig.ident.unraw(),
        span = sig.ident.span()
    );
    quote! {
        #(#companion_attrs)*
        #[doc(hidden)]
        #[allow(dead_code, non_upper_case_globals)]
        const #marker: () = ();

        #(#attrs)*
        #vis #sig #body

        #(#companion_attrs)*
        #[doc = #uncached_doc]
        // The body is also compiled inside the wrapper, which reports its warnings once.
        #[allow(unused, clippy::all, clippy::pedantic, clippy::nursery)]
        #vis #uncached #block

        #invalidate

        #is_cached

        #expire

        #put

        #stats

        #(#companion_attrs)*
        #[doc(hidden)]
        #[allow(dead_code, non_upper_case_globals)]
        #vis const #identity_const: &str = #identity;
    }
}

/// The `E` of a return type written `..Result<T, E>`, if it is written there (an alias such as
/// `io::Result<T>` hides it).
fn error_type(ty: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    args.args
        .iter()
        .filter_map(|arg| match arg {
            syn::GenericArgument::Type(ty) => Some(ty),
            _ => None,
        })
        .nth(1)
}
