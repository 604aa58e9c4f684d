//! The function identity: `module_path!()::fn` by default, or `name = ".."`; plus `@vN` for a
//! `version`, plus `#` and a hash of the code unless `code_hash = false`.

use crate::support::{blocking, on_every_store, runs};

/// Functions that differ only in their module.
pub mod default_a {
    use crate::support::{blocking, ran};

    #[fncache::cached(cache = blocking())]
    pub fn compute(x: u64) -> u64 {
        ran();
        x + 1
    }
}

pub mod default_b {
    use crate::support::{blocking, ran};

    #[fncache::cached(cache = blocking())]
    pub fn compute(x: u64) -> u64 {
        ran();
        x + 1
    }
}

/// Same explicit name, no code hash: one function as far as the cache knows, even though the
/// bodies differ (this is what `code_hash` protects against).
pub mod unhashed_a {
    use crate::support::{blocking, ran};

    #[fncache::cached(cache = blocking(), name = "shared", code_hash = false)]
    pub fn compute(x: u64) -> u64 {
        ran();
        x + 1
    }
}

pub mod unhashed_b {
    use crate::support::{blocking, ran};

    #[fncache::cached(cache = blocking(), name = "shared", code_hash = false)]
    pub fn compute(x: u64) -> u64 {
        ran();
        x + 100
    }
}

/// A new version of the same name does not see the old entries.
pub mod versioned {
    use crate::support::{blocking, ran};

    #[fncache::cached(cache = blocking(), name = "shared", code_hash = false, version = 2)]
    pub fn compute(x: u64) -> u64 {
        ran();
        x + 1
    }
}

/// Same name with the code hash: identical code shares entries, a changed body does not.
pub mod hashed_a {
    use crate::support::{blocking, ran};

    #[fncache::cached(cache = blocking(), name = "hashed")]
    pub fn compute(x: u64) -> u64 {
        ran();
        x + 1
    }
}

pub mod hashed_b {
    use crate::support::{blocking, ran};

    #[fncache::cached(cache = blocking(), name = "hashed")]
    pub fn compute(x: u64) -> u64 {
        ran(); // the same tokens as hashed_a: comments and layout do not count
        x + 1
    }
}

pub mod hashed_changed {
    use crate::support::{blocking, ran};

    #[fncache::cached(cache = blocking(), name = "hashed")]
    pub fn compute(x: u64) -> u64 {
        ran();
        x + 2
    }
}

/// The same rules for `async fn`s.
pub mod asynchronous {
    use crate::support::{asynchronous, ran};

    #[fncache::cached(cache = asynchronous(), name = "async-shared", code_hash = false)]
    pub async fn first(x: u64) -> u64 {
        ran();
        x + 1
    }

    #[fncache::cached(cache = asynchronous(), name = "async-shared", code_hash = false)]
    pub async fn second(x: u64) -> u64 {
        ran();
        x + 100
    }

    #[fncache::cached(cache = asynchronous(), name = "async-shared", code_hash = false, version = 3)]
    pub async fn third(x: u64) -> u64 {
        ran();
        x + 1
    }

    #[fncache::cached(cache = asynchronous(), name = "async-shared")]
    pub async fn hashed(x: u64) -> u64 {
        ran();
        x + 1
    }
}

#[test]
fn identities_have_the_documented_form() {
    let here = module_path!();
    assert_eq!(unhashed_a::__fncache_identity_compute, "shared");
    assert_eq!(versioned::__fncache_identity_compute, "shared@v2");
    let hashed = hashed_a::__fncache_identity_compute;
    assert!(hashed.starts_with("hashed#") && hashed.len() == "hashed#".len() + 16);
    let default = default_a::__fncache_identity_compute;
    let prefix = format!("{here}::default_a::compute#");
    assert!(default.starts_with(&prefix), "{default}");
    assert_eq!(hashed_b::__fncache_identity_compute, hashed);
    assert_ne!(hashed_changed::__fncache_identity_compute, hashed);
}

#[test]
fn name_version_and_code_hash_decide_which_functions_share_entries() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            assert_eq!(runs(|| default_a::compute(1)).1, 1, "{who}");
            assert_eq!(runs(|| default_b::compute(1)).1, 1, "{who}: another module");

            assert_eq!(runs(|| unhashed_a::compute(1)), (2, 1), "{who}");
            assert_eq!(
                runs(|| unhashed_b::compute(1)),
                (2, 0),
                "{who}: same name without code hash: the other body's value is served"
            );
            assert_eq!(
                runs(|| versioned::compute(1)),
                (2, 1),
                "{who}: a new version"
            );

            assert_eq!(runs(|| hashed_a::compute(1)), (2, 1), "{who}");
            assert_eq!(runs(|| hashed_b::compute(1)), (2, 0), "{who}: same code");
            assert_eq!(
                runs(|| hashed_changed::compute(1)),
                (3, 1),
                "{who}: changed body"
            );

            let (first, second) = (asynchronous::first, asynchronous::second);
            assert_eq!(runs(|| s.block_on(first(1))), (2, 1), "{who}");
            assert_eq!(
                runs(|| s.block_on(second(1))),
                (2, 0),
                "{who}: async, shared"
            );
            assert_eq!(
                runs(|| s.block_on(asynchronous::third(1))).1,
                1,
                "{who}: version"
            );
            assert_eq!(
                runs(|| s.block_on(asynchronous::hashed(1))).1,
                1,
                "{who}: hash"
            );

            let stats = blocking()
                .stats_for(hashed_a::__fncache_identity_compute)
                .unwrap();
            assert_eq!(
                (stats.calls, stats.hits),
                (2, 1),
                "{who}: stats by identity"
            );
            assert_eq!(s.blocking.stats().errors, 0, "{who}");
        },
    );
}
