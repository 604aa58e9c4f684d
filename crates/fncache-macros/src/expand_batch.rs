//! `#[cached(batch)]`: a function of a list of keys returning their values, cached key by key
//! through `get_or_compute_many` (its body computes only the missing keys).
//!
//! The shapes supported: one argument in the key, `&[K]`, `&Vec<K>` or `Vec<K>`, and a return
//! of `Vec<V>` (one value per key, in order) or a map of key to value, `HashMap<K, V>` (any
//! hasher) or `BTreeMap<K, V>` (one entry per key); other arguments must be skipped. `Result`
//! returns and the options that are about one call's arguments (`key`, `tags`, `default`,
//! `wait = false`, negative caching) are refused with an error that says so.

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{ToTokens, format_ident, quote};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, ItemFn, Pat, PathArguments, ReturnType, Type};

use crate::args::CachedArgs;
use crate::errors::Errors;
use crate::expand_cached::{cache_handle, companion_attrs, identity, options_of, stats_companion};
use crate::validate::Function;

/// The `T` of a type written `Name<T>` whose last path segment is `name`.
fn generic_of<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.iter().collect::<Vec<_>>()[..] {
        [GenericArgument::Type(inner)] => Some(inner),
        _ => None,
    }
}

/// The value type `V` of a map type written `HashMap<K, V>` (or with a hasher, `HashMap<K, V,
/// S>`) or `BTreeMap<K, V>`, whatever the path before its name.
fn map_value(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let types: Vec<&Type> = args
        .args
        .iter()
        .filter_map(|a| match a {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect();
    match (last.ident.to_string().as_str(), &types[..]) {
        ("HashMap", [_, value] | [_, value, _]) | ("BTreeMap", [_, value]) => Some(*value),
        _ => None,
    }
}

/// The key type `K` of a list argument `&[K]`, `&Vec<K>` or `Vec<K>`.
fn key_type(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Reference(r) => match &*r.elem {
            Type::Slice(slice) => Some(&slice.elem),
            other => generic_of(other, "Vec"),
        },
        other => generic_of(other, "Vec"),
    }
}

pub(crate) fn generate(
    item: &ItemFn,
    args: &CachedArgs,
    function: &Function,
) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let batch_span = args.batch.as_ref().map_or_else(Span::call_site, |b| b.span);
    let refuse = |errors: &mut Errors, span: Span, what: &str| {
        errors.push(syn::Error::new(
            span,
            format!("`#[cached(batch)]` does not support {what}"),
        ));
    };
    if let Some(expr) = &args.key {
        refuse(
            &mut errors,
            expr.span(),
            "`key`: each element of the list is its key",
        );
    }
    if let Some(tags) = &args.tags {
        let span = tags.first().map_or(batch_span, Spanned::span);
        refuse(
            &mut errors,
            span,
            "`tags` (they would be the same for every key)",
        );
    }
    if let Some(expr) = &args.default {
        refuse(&mut errors, expr.span(), "`default`: a batch always waits");
    }
    if let Some(wait) = args.no_wait() {
        refuse(
            &mut errors,
            wait.span,
            "`wait = false`: a batch always waits",
        );
    }
    if let Some(expr) = &args.cache_err_if {
        refuse(&mut errors, expr.span(), "negative caching");
    }
    for name in ["negative_ttl", "compute_timeout"] {
        if let Some(option) = args.duration_option(name) {
            refuse(&mut errors, option.span(), &format!("`{name}`"));
        }
    }
    if !function.const_params.is_empty() {
        refuse(
            &mut errors,
            item.sig.generics.span(),
            "const generic parameters",
        );
    }
    if let Some((_, false)) = function.receiver {
        errors.push(syn::Error::new(
            function.receiver_span,
            "a `#[cached(batch)]` method's keys are its list: skip `self` with `skip(self)`",
        ));
    }
    let kept: Vec<_> = function.args.iter().filter(|a| !a.skipped).collect();
    let list = match kept[..] {
        [list] => Some(list),
        _ => {
            errors.push(syn::Error::new(
                item.sig.paren_token.span.join(),
                "a `#[cached(batch)]` function takes one list of keys (`ids: &[K]`, `&Vec<K>` or \
                 `Vec<K>`); skip every other argument with `skip(..)`",
            ));
            None
        }
    };
    let key = list.and_then(|list| {
        let key = key_type(&list.ty);
        if key.is_none() {
            errors.push(syn::Error::new_spanned(
                &list.ty,
                "a `#[cached(batch)]` function's keys are a `&[K]`, `&Vec<K>` or `Vec<K>`",
            ));
        }
        key
    });
    let value = match &item.sig.output {
        ReturnType::Type(_, ty) => {
            let value = generic_of(ty, "Vec").or_else(|| map_value(ty));
            if value.is_none() {
                errors.push(syn::Error::new_spanned(
                    ty,
                    "a `#[cached(batch)]` function returns a `Vec` of values, one per key in the \
                     order of its keys, or a `HashMap` or `BTreeMap` of key to value (`Result` \
                     is not supported)",
                ));
            }
            value.map(|value| (value, &**ty))
        }
        ReturnType::Default => {
            errors.push(syn::Error::new(
                item.sig.ident.span(),
                "a `#[cached(batch)]` function returns a `Vec` of values, one per key, or a map \
                 of key to value",
            ));
            None
        }
    };
    errors.finish()?;
    let (Some(list), Some(key), Some((value, ret))) = (list, key, value) else {
        return Err(syn::Error::new(batch_span, "invalid batch function"));
    };

    let asynchronous = item.sig.asyncness.is_some();
    let identity = identity(item, args);
    let names = function.args.iter().map(|a| a.ident.to_string()).collect();
    let cache = cache_handle(&args.cache, asynchronous, Some(&names));
    let options = options_of(args, Some(value));
    // What else tells entries apart: the `Self` of a method and the generic types (each
    // instance of a generic function shares its identity).
    let mut salt = Vec::new();
    if function.in_impl {
        salt.push(quote!(::core::any::type_name::<Self>()));
    }
    for ty in &function.tagged_types {
        salt.push(quote!(::core::any::type_name::<#ty>()));
    }
    let list_ident = &list.ident;
    let list_ty = &list.ty;
    // The list argument's own pattern (`mut ids`), rebound to the missing keys in the body.
    let pattern = item
        .sig
        .inputs
        .iter()
        .find_map(|input| match input {
            FnArg::Typed(typed) => match &*typed.pat {
                Pat::Ident(p) if p.ident == *list_ident => Some(p.to_token_stream()),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .unwrap_or_else(|| list_ident.to_token_stream());
    let missing = quote!(__fncache_missing);
    let rebind = match list_ty {
        Type::Reference(_) => quote!(let #pattern: #list_ty = &#missing;),
        _ => quote!(let #pattern: #list_ty = #missing;),
    };
    let block = &item.block;
    let mut inner = Group::new(
        Delimiter::Brace,
        block.stmts.iter().map(ToTokens::to_token_stream).collect(),
    );
    inner.set_span(Span::call_site().located_at(block.brace_token.span.join()));
    let call = if asynchronous {
        quote!(::fncache::__private::batch_async(
            __fncache_cache,
            &__fncache_options,
            __FNCACHE_FUNCTION,
            &[#(#salt),*],
            ::core::convert::AsRef::<[#key]>::as_ref(&#list_ident),
            move |#missing: ::std::vec::Vec<#key>| async move {
                #rebind
                let __fncache_value: #ret = #inner;
                __fncache_value
            },
        ).await)
    } else {
        quote!(::fncache::__private::batch_blocking(
            __fncache_cache,
            &__fncache_options,
            __FNCACHE_FUNCTION,
            &[#(#salt),*],
            ::core::convert::AsRef::<[#key]>::as_ref(&#list_ident),
            move |#missing: ::std::vec::Vec<#key>| -> #ret {
                #rebind
                #inner
            },
        ))
    };
    let mut body = Group::new(
        Delimiter::Brace,
        quote!(
            const __FNCACHE_FUNCTION: &str = #identity;
            #cache
            let __fncache_options = #options;
            #call
        ),
    );
    body.set_span(block.brace_token.span.join());

    let ItemFn {
        attrs, vis, sig, ..
    } = item;
    let attrs_again = companion_attrs(attrs);
    let mut uncached = sig.clone();
    uncached.ident = format_ident!("{}_uncached", sig.ident.unraw(), span = sig.ident.span());
    let uncached_doc = format!(
        "Runs the body of `{}` without reading or writing the cache (generated by `#[fncache::cached]`).",
        sig.ident.unraw()
    );
    let stats = stats_companion(item, args, function);
    // The wrapper only borrows the list: a `mut` on it belongs to the body's binding.
    let mut wrapper = sig.clone();
    for input in &mut wrapper.inputs {
        if let FnArg::Typed(typed) = input
            && let Pat::Ident(p) = &mut *typed.pat
            && p.ident == *list_ident
        {
            p.mutability = None;
        }
    }
    Ok(quote! {
        #(#attrs)*
        #vis #wrapper #body

        #(#attrs_again)*
        #[doc = #uncached_doc]
        #[allow(unused, clippy::all, clippy::pedantic, clippy::nursery)]
        #vis #uncached #block

        #stats
    })
}
