//! Generating the code of `#[cache_evict]`: run the body, then purge.

use std::collections::HashSet;

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Pat, Path, ReturnType, Type};

use crate::args::{EvictArgs, Functions};
use crate::errors::Errors;
use crate::expand_cached::{cache_handle, identity_const};
use crate::validate::{check_signature, is_result};

/// `#[cache_evict(attr)] item`.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let item: ItemFn = syn::parse2(item)?;
    let mut errors = Errors::default();
    let args = EvictArgs::parse(attr, &mut errors);
    check_signature(&item, "cache_evict", &mut errors);
    errors.finish()?;
    let args = args.ok_or_else(|| syn::Error::new(Span::call_site(), "invalid options"))?;
    Ok(generate(&item, &args))
}

/// The path of the identity constant of the cached function at `path`.
fn identity_path(path: &Path) -> Path {
    let mut path = path.clone();
    if let Some(last) = path.segments.last_mut() {
        last.ident = identity_const(&last.ident);
        last.arguments = syn::PathArguments::None;
    }
    path
}

fn is_unit(output: &ReturnType) -> bool {
    match output {
        ReturnType::Default => true,
        ReturnType::Type(_, ty) => matches!(&**ty, Type::Tuple(t) if t.elems.is_empty()),
    }
}

fn generate(item: &ItemFn, args: &EvictArgs) -> TokenStream {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = item;
    let asynchronous = sig.asyncness.is_some();
    let names: HashSet<String> = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Typed(t) => match &*t.pat {
                Pat::Ident(p) => Some(p.ident.to_string()),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .collect();
    let cache = cache_handle(&args.cache, asynchronous, Some(&names));
    let by = sig.ident.unraw().to_string();
    let by = quote!(::core::concat!(::core::module_path!(), "::", #by));
    let evict = match &args.functions {
        Functions::All => quote!(::fncache::__private::Evict::All),
        Functions::Listed(paths) => {
            let ids = paths.iter().map(identity_path);
            quote!(::fncache::__private::Evict::Functions(&[#(#ids),*]))
        }
    };
    // Naming single functions: a warning at the user's `cache = ...` unless its type says it
    // can purge them (`fncache::PerFunctionCache`); see `__private::LayoutProbe`.
    let probe = match &args.functions {
        Functions::All => quote!(),
        Functions::Listed(_) => {
            let cache = &args.cache;
            let span = cache.span();
            // Type-checked, never run: the expression is evaluated once, by the handle.
            quote_spanned!(span=> if false {
                #[allow(unused_imports)]
                use ::fncache::__private::{KnownLayout as _, UnknownLayout as _};
                (&::fncache::__private::LayoutProbe(&(#cache))).per_function_layout();
            })
        }
    };
    let cache = quote!(#probe #cache);
    let evict = if asynchronous {
        quote!(::fncache::__private::evict_async(__fncache_cache, #by, #evict).await;)
    } else {
        quote!(::fncache::__private::evict_blocking(__fncache_cache, #by, #evict);)
    };
    let run = match (asynchronous, &sig.output) {
        (false, ReturnType::Type(_, ty)) => quote!((move || -> #ty #block)()),
        (false, ReturnType::Default) => quote!((move || #block)()),
        (true, _) => quote!(async move #block.await),
    };
    let body = if is_unit(&sig.output) {
        quote!(
            #cache
            #[allow(clippy::redundant_closure_call)]
            #run;
            #evict
        )
    } else {
        let ReturnType::Type(_, ty) = &sig.output else {
            return quote!();
        };
        let evict = if is_result(ty) {
            quote!(if __fncache_out.is_ok() { #evict })
        } else {
            evict
        };
        quote!(
            #cache
            #[allow(clippy::redundant_closure_call)]
            let __fncache_out: #ty = #run;
            #evict
            __fncache_out
        )
    };
    // The braces are the user's, so the function keeps its own span for lints.
    let mut body = Group::new(Delimiter::Brace, body);
    body.set_span(block.brace_token.span.join());
    quote! {
        #(#attrs)*
        #vis #sig #body
    }
}
