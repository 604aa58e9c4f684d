//! Per-function counters of decorated functions: by their path as written
//! (`module_path!()::fn`), through the `{fn}_stats()` companion, and `None` for a function the
//! cache does not know.

use fncache::Stats;

use crate::support::on_every_store;

pub mod users {
    use crate::support::{asynchronous, blocking, ran};

    #[fncache::cached(cache = blocking())]
    pub fn load(id: u64) -> u64 {
        ran();
        id * 2
    }

    /// Never called: only its counters are asked for.
    #[allow(dead_code)]
    #[fncache::cached(cache = blocking())]
    pub fn never(id: u64) -> u64 {
        ran();
        id
    }

    #[fncache::cached(cache = blocking(), name = "users::find", version = 3)]
    pub fn find(id: u64) -> Option<u64> {
        ran();
        Some(id)
    }

    #[fncache::cached(cache = asynchronous())]
    pub async fn fetch(id: u64) -> u64 {
        ran();
        id + 1
    }

    pub struct Repo {
        pub cache: fncache::blocking::Cache,
    }

    impl Repo {
        /// The cache is reached through `self`: `{fn}_stats` takes `&self`.
        #[fncache::cached(cache = self.cache, skip(self))]
        pub fn get(&self, id: u64) -> u64 {
            ran();
            id + 10
        }

        /// A static cache: `{fn}_stats` is an associated function.
        #[fncache::cached(cache = blocking())]
        pub fn make(id: u64) -> u64 {
            ran();
            id + 20
        }
    }
}

fn counts(stats: Stats) -> (u64, u64, u64) {
    (stats.calls, stats.hits, stats.misses)
}

#[test]
fn a_decorated_function_s_stats_are_found_by_its_plain_path() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            let path = concat!(module_path!(), "::users::load");
            assert_eq!(
                s.blocking.stats_for(path),
                None,
                "{who}: not yet known to the cache"
            );
            users::load(1);
            users::load(1);
            users::load(2);
            let by_path = s.blocking.stats_for(path).expect("known after a call");
            assert_eq!(counts(by_path), (3, 1, 2), "{who}");
            assert_eq!(users::load_stats(), by_path, "{who}: the companion");
            assert_eq!(
                s.blocking.stats_for(users::__fncache_identity_load),
                Some(by_path),
                "{who}: the full identity too"
            );

            users::find(1);
            users::find(1);
            let find = s.blocking.stats_for("users::find").expect("by `name`");
            assert_eq!(counts(find), (2, 1, 1), "{who}: version and hash left out");
            assert_eq!(users::find_stats(), find, "{who}");

            s.block_on(async {
                users::fetch(1).await;
                users::fetch(1).await;
            });
            let fetch = s
                .asynchronous
                .stats_for(concat!(module_path!(), "::users::fetch"))
                .expect("async");
            assert_eq!(counts(fetch), (2, 1, 1), "{who}: async");
            assert_eq!(users::fetch_stats(), fetch, "{who}: async companion");

            let repo = users::Repo {
                cache: s.blocking.clone(),
            };
            repo.get(1);
            repo.get(1);
            assert_eq!(counts(repo.get_stats()), (2, 1, 1), "{who}: method");
            users::Repo::make(1);
            assert_eq!(
                counts(users::Repo::make_stats()),
                (1, 0, 1),
                "{who}: associated"
            );
            assert_eq!(
                s.blocking
                    .stats_for(concat!(module_path!(), "::users::get"))
                    .map(counts),
                Some((2, 1, 1)),
                "{who}: a method's path is its module's, like its identity"
            );
        },
    );
}

#[test]
fn an_unknown_function_is_none_and_a_never_called_one_is_zeros() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            let never = concat!(module_path!(), "::users::never");
            assert_eq!(s.blocking.stats_for("users::lod"), None, "{who}: a typo");
            assert_eq!(users::never_stats(), Stats::default(), "{who}");
            assert_eq!(
                s.blocking.stats_for(never),
                Some(Stats::default()),
                "{who}: known from its companion on, never called"
            );
            assert_eq!(
                s.asynchronous.stats_for(never),
                None,
                "{who}: another cache"
            );
            assert_eq!(s.blocking.stats().calls, 0, "{who}: asking is not a call");
        },
    );
}

#[test]
fn stats_serialize_and_display_as_one_line() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            for _ in 0..4 {
                users::load(7);
            }
            let stats = users::load_stats();
            assert_eq!(
                stats.to_string(),
                "calls 4, hits 3 (75.0%), misses 1, execs 1, writes 1, errors 0, evictions 0",
                "{who}"
            );
            let json = serde_json::to_value(stats).unwrap();
            assert_eq!(json["calls"], 4, "{who}");
            assert_eq!(json["hits"], 3, "{who}");
            assert_eq!(json["defaults_served"], 0, "{who}");
            assert_eq!(json.as_object().unwrap().len(), 17, "{who}: every counter");
        },
    );
}
