//! Parsing the options of `#[cached(...)]` and `#[cache_evict(...)]`.
//!
//! Options are first read generically (`name = expr` or `name(a, b)`), then interpreted one by
//! one, so that every unknown, duplicate or malformed option gets its own error at its own span
//! instead of stopping at the first.

use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprArray, ExprLit, Ident, Lit, LitBool, LitInt, LitStr, Path, Token};

use crate::errors::Errors;

/// One option as written: `name = value` or `name(list)`.
struct RawOption {
    name: Ident,
    value: RawValue,
}

enum RawValue {
    Expr(Expr),
    List(Punctuated<Ident, Token![,]>),
}

impl Parse for RawOption {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name = Ident::parse_any(input)?;
        // A bare flag: `batch` is `batch = true`.
        if name == "batch" && (input.is_empty() || input.peek(Token![,])) {
            return Ok(RawOption {
                value: RawValue::Expr(Expr::Lit(ExprLit {
                    attrs: Vec::new(),
                    lit: Lit::Bool(LitBool::new(true, name.span())),
                })),
                name,
            });
        }
        if input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            let list = content.parse_terminated(Ident::parse_any, Token![,])?;
            return Ok(RawOption {
                name,
                value: RawValue::List(list),
            });
        }
        input.parse::<Token![=]>().map_err(|e| {
            syn::Error::new(
                e.span(),
                format!("expected `=` after `{name}`: options are written `{name} = value`"),
            )
        })?;
        Ok(RawOption {
            name,
            value: RawValue::Expr(input.parse()?),
        })
    }
}

/// All options, parsed generically.
struct RawOptions(Vec<RawOption>);

impl Parse for RawOptions {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let list = Punctuated::<RawOption, Token![,]>::parse_terminated(input)?;
        Ok(RawOptions(list.into_iter().collect()))
    }
}

/// The options of `#[cached]`.
pub(crate) struct CachedArgs {
    pub(crate) cache: Expr,
    pub(crate) name: Option<LitStr>,
    pub(crate) version: Option<(u64, LitInt)>,
    pub(crate) skip: Vec<Ident>,
    pub(crate) key: Option<Expr>,
    pub(crate) codec: Option<Expr>,
    pub(crate) cache_none: Option<LitBool>,
    pub(crate) code_hash: bool,
    /// `Duration` options, in the order written: (`refresh_after`, its expression), ...
    pub(crate) durations: Vec<(Ident, Expr)>,
    pub(crate) wait: Option<LitBool>,
    pub(crate) strict: Option<LitBool>,
    pub(crate) stampede_protection: Option<LitBool>,
    /// `near_cache = false`: the cache's near cache leaves this function alone.
    pub(crate) near_cache: Option<LitBool>,
    /// The value answered on a cold miss when the function does not wait.
    pub(crate) default: Option<Expr>,
    /// `entry_ttl_jitter = FRACTION` (an `f64` expression).
    pub(crate) entry_ttl_jitter: Option<Expr>,
    /// `cache_if = |value| ..`: which values are stored.
    pub(crate) cache_if: Option<Expr>,
    /// `entry_ttl_from = |value| ..`: each value's entry TTL.
    pub(crate) entry_ttl_from: Option<Expr>,
    /// `refresh_after_from = |value| ..`: each value's refresh-after.
    pub(crate) refresh_after_from: Option<Expr>,
    /// `cache_err_if = |error| ..`: which errors are cached, for `negative_ttl`.
    pub(crate) cache_err_if: Option<Expr>,
    /// `tags = [expr, ..]`: the entry's tags, each evaluated over the arguments at call time.
    pub(crate) tags: Option<Vec<Expr>>,
    /// `batch` (or `batch = true`): a function of a list of keys returning a `Vec` of their
    /// values or a map of key to value, cached key by key (see `expand_batch`).
    pub(crate) batch: Option<LitBool>,
}

impl CachedArgs {
    /// The name of the `Duration` option `name` as written, if given.
    pub(crate) fn duration_option(&self, name: &str) -> Option<&Ident> {
        self.durations
            .iter()
            .find(|(option, _)| option == name)
            .map(|(option, _)| option)
    }

    /// Was `wait = false` written?
    pub(crate) fn no_wait(&self) -> Option<&LitBool> {
        self.wait.as_ref().filter(|wait| !wait.value)
    }
}

const CACHED_OPTIONS: &str = "cache, name, version, skip(..), key, codec, entry_ttl, cache_none, \
     code_hash, refresh_after, lock_timeout, wait, default, compute_timeout, max_stale, \
     fail_safe_throttle, op_timeout, strict, stampede_protection, ttl_jitter, entry_ttl_jitter, cache_if, entry_ttl_from, refresh_after_from, negative_ttl, cache_err_if, tags, batch, near_cache";

/// The options whose value is a `Duration` expression, each a `CallOptions` (and `Builder`)
/// method of the same name.
const DURATION_OPTIONS: [&str; 9] = [
    "entry_ttl",
    "refresh_after",
    "lock_timeout",
    "compute_timeout",
    "max_stale",
    "fail_safe_throttle",
    "op_timeout",
    "ttl_jitter",
    "negative_ttl",
];

/// What a user probably meant by an unknown option (names from other caching libraries).
fn hint(unknown: &str) -> Option<&'static str> {
    Some(match unknown {
        "ttl" | "expire" | "expires" | "time" | "lifetime" => "entry_ttl",
        "exclude" | "excludes" | "excludes_positional" | "ignore" | "ignores" => "skip",
        "serializer" | "serializers" | "serde" | "format" => "codec",
        "cache_name" | "function" | "id" | "identity" | "prefix" => "name",
        "convert" | "key_fn" | "keys" => "key",
        "functions" | "evict" => "#[fncache::cache_evict(cache = .., functions = [..])]",
        "skip_none" | "option" | "none" => "cache_none",
        "refresh" | "refresh_ttl" | "stale_after" | "stale_ttl" | "stale_while_revalidate" => {
            "refresh_after"
        }
        "lock" | "lock_ttl" | "lock_wait" | "wait_timeout" => "lock_timeout",
        "block" | "blocking" | "wait_for_value" => "wait",
        "default_value" | "fallback" | "placeholder" => "default",
        "timeout" | "soft_timeout" | "factory_timeout" => "compute_timeout",
        "stale" | "fail_safe" | "fail_safe_max_duration" => "max_stale",
        "throttle" | "fail_safe_throttle_duration" => "fail_safe_throttle",
        "op_ttl" | "redis_timeout" | "backend_timeout" | "socket_timeout" => "op_timeout",
        "fail_open" | "raise" | "errors" => "strict",
        "jitter" | "ttl_spread" | "spread" => "ttl_jitter",
        "condition" | "unless" | "cache_when" | "only_if" | "predicate" => "cache_if",
        "negative_cache" | "cache_errors" | "error_ttl" | "not_found_ttl" => "negative_ttl",
        "ttl_from" | "ttl_fn" | "entry_ttl_fn" | "max_age" => "entry_ttl_from",
        "stampede" | "single_flight" | "dogpile" => "stampede_protection",
        _ => return None,
    })
}

fn unknown(name: &Ident, known: &str) -> syn::Error {
    let text = name.to_string();
    let mut message = format!("unknown option `{text}`; the options are: {known}");
    if let Some(meant) = hint(&text) {
        message.push_str(&format!(" (did you mean `{meant}`?)"));
    }
    syn::Error::new(name.span(), message)
}

fn expect_expr(option: RawOption, errors: &mut Errors) -> Option<Expr> {
    match option.value {
        RawValue::Expr(expr) => Some(expr),
        RawValue::List(list) => {
            let name = &option.name;
            errors.push(syn::Error::new(
                list.first().map_or(name.span(), Ident::span),
                format!("`{name}` takes a value: write `{name} = ...`"),
            ));
            None
        }
    }
}

fn expect_str(expr: Expr, what: &str, errors: &mut Errors) -> Option<LitStr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s),
        other => {
            errors.push(syn::Error::new_spanned(
                other,
                format!("`{what}` must be a string literal, e.g. `{what} = \"users::load\"`"),
            ));
            None
        }
    }
}

fn expect_bool(expr: Expr, what: &str, errors: &mut Errors) -> Option<LitBool> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Some(b),
        other => {
            errors.push(syn::Error::new_spanned(
                other,
                format!("`{what}` must be `true` or `false`"),
            ));
            None
        }
    }
}

fn expect_version(expr: Expr, errors: &mut Errors) -> Option<(u64, LitInt)> {
    if let Expr::Lit(ExprLit {
        lit: Lit::Int(int), ..
    }) = &expr
        && let Ok(value) = int.base10_parse::<u64>()
    {
        return Some((value, int.clone()));
    }
    errors.push(syn::Error::new_spanned(
        expr,
        "`version` must be an unsigned integer literal, e.g. `version = 2`",
    ));
    None
}

/// Records `name` as seen; an error at the second occurrence of an option.
fn first_time(seen: &mut Vec<String>, name: &Ident, errors: &mut Errors) -> bool {
    let text = name.to_string();
    if seen.contains(&text) {
        errors.push(syn::Error::new(
            name.span(),
            format!("duplicate option `{text}`: give it once"),
        ));
        return false;
    }
    seen.push(text);
    true
}

fn missing_cache(example: &str) -> syn::Error {
    syn::Error::new(
        Span::call_site(),
        format!(
            "missing `cache = ...`: name the cache to use, e.g. `#[fncache::{example}]` \
             with `static CACHE: LazyLock<fncache::blocking::Cache>` (or a `fncache::Cache` for an `async fn`)"
        ),
    )
}

impl CachedArgs {
    /// Parses and interprets the options; every problem is recorded in `errors`.
    pub(crate) fn parse(tokens: proc_macro2::TokenStream, errors: &mut Errors) -> Option<Self> {
        let raw: RawOptions = match syn::parse2(tokens) {
            Ok(raw) => raw,
            Err(e) => {
                errors.push(e);
                return None;
            }
        };
        let mut seen = Vec::new();
        let mut cache = None;
        let mut args = CachedArgs {
            cache: Expr::Verbatim(proc_macro2::TokenStream::new()),
            name: None,
            version: None,
            skip: Vec::new(),
            key: None,
            codec: None,
            cache_none: None,
            code_hash: true,
            durations: Vec::new(),
            wait: None,
            strict: None,
            stampede_protection: None,
            near_cache: None,
            default: None,
            entry_ttl_jitter: None,
            cache_if: None,
            entry_ttl_from: None,
            refresh_after_from: None,
            tags: None,
            cache_err_if: None,
            batch: None,
        };
        for option in raw.0 {
            let name = option.name.to_string();
            if DURATION_OPTIONS.contains(&name.as_str()) {
                if first_time(&mut seen, &option.name, errors) {
                    let option_name = option.name.clone();
                    if let Some(expr) = expect_expr(option, errors) {
                        args.durations.push((option_name, expr));
                    }
                }
                continue;
            }
            if !CACHED_OPTIONS
                .split(", ")
                .any(|known| known.trim_end_matches("(..)") == name)
            {
                errors.push(unknown(&option.name, CACHED_OPTIONS));
                continue;
            }
            if !first_time(&mut seen, &option.name, errors) {
                continue;
            }
            if name == "skip" {
                match option.value {
                    RawValue::List(list) => args.skip = list.into_iter().collect(),
                    RawValue::Expr(expr) => errors.push(syn::Error::new_spanned(
                        expr,
                        "`skip` takes a list of arguments: `skip(db, self)`",
                    )),
                }
                continue;
            }
            let Some(expr) = expect_expr(option, errors) else {
                continue;
            };
            match name.as_str() {
                "cache" => cache = Some(expr),
                "name" => args.name = expect_str(expr, "name", errors),
                "version" => args.version = expect_version(expr, errors),
                "key" => args.key = Some(expr),
                "codec" => args.codec = Some(expr),
                "cache_none" => args.cache_none = expect_bool(expr, "cache_none", errors),
                "wait" => args.wait = expect_bool(expr, "wait", errors),
                "strict" => args.strict = expect_bool(expr, "strict", errors),
                "stampede_protection" => {
                    args.stampede_protection = expect_bool(expr, "stampede_protection", errors)
                }
                "near_cache" => args.near_cache = expect_bool(expr, "near_cache", errors),
                "default" => args.default = Some(expr),
                "entry_ttl_jitter" => args.entry_ttl_jitter = Some(expr),
                "cache_if" => args.cache_if = Some(expr),
                "entry_ttl_from" => args.entry_ttl_from = Some(expr),
                "refresh_after_from" => args.refresh_after_from = Some(expr),
                "cache_err_if" => args.cache_err_if = Some(expr),
                "batch" => {
                    args.batch = expect_bool(expr, "batch", errors).filter(|b| b.value);
                }
                "tags" => match expr {
                    Expr::Array(list) => args.tags = Some(list.elems.into_iter().collect()),
                    other => errors.push(syn::Error::new_spanned(
                        other,
                        "`tags` takes a list of expressions: `tags = [format!(\"user:{id}\")]`",
                    )),
                },
                "code_hash" => {
                    if let Some(b) = expect_bool(expr, "code_hash", errors) {
                        args.code_hash = b.value;
                    }
                }
                _ => {}
            }
        }
        if let Some(name) = &args.name
            && name.value().is_empty()
        {
            errors.push(syn::Error::new_spanned(name, "`name` must not be empty"));
        }
        match cache {
            Some(cache) => args.cache = cache,
            None => errors.push(missing_cache("cached(cache = CACHE)")),
        }
        Some(args)
    }
}

/// What `#[cache_evict]` removes.
pub(crate) enum Functions {
    /// The entries of these cached functions.
    Listed(Vec<Path>),
    /// The whole cache.
    All,
}

/// The options of `#[cache_evict]`.
pub(crate) struct EvictArgs {
    pub(crate) cache: Expr,
    pub(crate) functions: Functions,
}

const EVICT_OPTIONS: &str = "cache, functions";

fn parse_functions(expr: Expr, errors: &mut Errors) -> Option<Functions> {
    match expr {
        Expr::Path(p) if p.path.is_ident("all") => Some(Functions::All),
        Expr::Array(ExprArray { elems, .. }) if !elems.is_empty() => {
            let mut paths = Vec::new();
            for elem in elems {
                match elem {
                    Expr::Path(p) if p.qself.is_none() => paths.push(p.path),
                    other => errors.push(syn::Error::new_spanned(
                        other,
                        "expected the path of a function decorated with `#[fncache::cached]`, \
                         e.g. `load_user` or `Self::load`",
                    )),
                }
            }
            Some(Functions::Listed(paths))
        }
        other => {
            errors.push(syn::Error::new_spanned(
                other,
                "`functions` is a list of cached functions, `functions = [load_user, users::find]`, \
                 or `functions = all` for the whole cache",
            ));
            None
        }
    }
}

impl EvictArgs {
    /// Parses and interprets the options; every problem is recorded in `errors`.
    pub(crate) fn parse(tokens: proc_macro2::TokenStream, errors: &mut Errors) -> Option<Self> {
        let raw: RawOptions = match syn::parse2(tokens) {
            Ok(raw) => raw,
            Err(e) => {
                errors.push(e);
                return None;
            }
        };
        let mut seen = Vec::new();
        let (mut cache, mut functions) = (None, None);
        for option in raw.0 {
            let name = option.name.to_string();
            if !EVICT_OPTIONS.split(", ").any(|known| known == name) {
                errors.push(unknown(&option.name, EVICT_OPTIONS));
                continue;
            }
            if !first_time(&mut seen, &option.name, errors) {
                continue;
            }
            let Some(expr) = expect_expr(option, errors) else {
                continue;
            };
            if name == "cache" {
                cache = Some(expr);
            } else {
                functions = parse_functions(expr, errors);
            }
        }
        let cache = cache.or_else(|| {
            errors.push(missing_cache(
                "cache_evict(cache = CACHE, functions = [..])",
            ));
            None
        });
        if functions.is_none() && !seen.iter().any(|s| s == "functions") {
            errors.push(syn::Error::new(
                Span::call_site(),
                "missing `functions = [...]`: list the cached functions whose entries to remove, \
                 or write `functions = all` to empty the whole cache",
            ));
        }
        Some(EvictArgs {
            cache: cache?,
            functions: functions?,
        })
    }
}
