//! `tags = [..]`: each expression evaluated over the call's arguments, the entry tagged with
//! the results, on both stores and front-ends (and through the `{fn}_put` companion).

use crate::support::{asynchronous, blocking, on_every_store, ran, runs};

#[fncache::cached(cache = blocking(), tags = [format!("user:{id}"), "profiles"])]
fn profile(id: u64) -> String {
    ran();
    format!("profile {id}")
}

#[fncache::cached(cache = asynchronous(), tags = [format!("user:{id}")])]
async fn orders(id: u64, page: u32) -> Result<Vec<u32>, String> {
    ran();
    Ok(vec![page; 2])
}

/// Tags on a function with hooks too, and a value the hook refuses (never stored, so never
/// counted by an invalidation).
#[fncache::cached(cache = blocking(), cache_if = |v: &u64| *v > 0, tags = [format!("n:{n}")])]
fn positive(n: u64) -> u64 {
    ran();
    n
}

#[test]
fn tags_are_evaluated_over_the_arguments_of_each_call() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            profile(7);
            profile(8);
            s.block_on(orders(7, 1)).unwrap();
            s.block_on(orders(7, 2)).unwrap();
            assert_eq!(runs(|| profile(7)).1, 0, "{who}: a hit");
            // Each front-end has its own cache: each counts its own entries.
            assert_eq!(s.blocking.invalidate_tag("user:7").unwrap(), 1, "{who}");
            assert_eq!(
                s.block_on(s.asynchronous.invalidate_tag("user:7")).unwrap(),
                2,
                "{who}"
            );
            assert_eq!(runs(|| profile(7)).1, 1, "{who}: recomputed");
            assert_eq!(runs(|| profile(8)).1, 0, "{who}: another tag");
            assert_eq!(s.blocking.invalidate_tag("profiles").unwrap(), 2, "{who}");
            // The put companion tags as the call does.
            profile_put(&9, &"put".to_owned()).unwrap();
            assert_eq!(s.blocking.invalidate_tag("user:9").unwrap(), 1, "{who}");

            positive(0);
            positive(3);
            assert_eq!(s.blocking.invalidate_tag("n:0").unwrap(), 0, "{who}");
            assert_eq!(s.blocking.invalidate_tag("n:3").unwrap(), 1, "{who}");
        },
    );
}
