//! Misuses of `#[fncache::cached]` and `#[fncache::cache_evict]` are compile errors that point
//! at the user's own tokens and say how to fix them. The expected messages are the `.stderr`
//! files next to each case in `tests/ui` (regenerate with `TRYBUILD=overwrite`, then review).

#[test]
fn misuse_is_a_compile_error_at_the_users_span() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
