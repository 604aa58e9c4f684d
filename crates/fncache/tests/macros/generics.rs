//! Generic functions: each instance has its own entries; type parameters that only appear in
//! skipped arguments do not matter.

use std::fmt::Debug;
use std::sync::LazyLock;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::support::{asynchronous, blocking, on_every_store, ran, runs};

#[fncache::cached(cache = blocking())]
fn describe<T: Serialize + Debug>(x: T) -> String {
    ran();
    format!("{x:?}")
}

#[fncache::cached(cache = asynchronous())]
async fn describe_async<T>(x: T) -> String
where
    T: Serialize + Debug + Send,
{
    ran();
    format!("{x:?}")
}

/// The type parameter only appears in the return type.
#[fncache::cached(cache = blocking())]
fn zero<T: Default + Serialize + DeserializeOwned>() -> T {
    ran();
    T::default()
}

/// A const generic parameter is part of the key.
#[fncache::cached(cache = blocking())]
fn times<const N: u64>(x: u64) -> u64 {
    ran();
    x * N
}

pub trait Db {
    fn name(&self) -> &'static str;
}

pub struct Primary;
pub struct Replica;

impl Db for Primary {
    fn name(&self) -> &'static str {
        "primary"
    }
}

impl Db for Replica {
    fn name(&self) -> &'static str {
        "replica"
    }
}

/// `D` only appears in a skipped argument: which database answered does not matter.
#[fncache::cached(cache = blocking(), skip(db))]
fn fetch<D: Db>(db: &D, id: u64) -> String {
    ran();
    format!("{id} from {}", db.name())
}

#[test]
fn instances_of_a_generic_function_have_their_own_entries() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            assert_eq!(runs(|| describe(1u8)), ("1".to_owned(), 1), "{who}");
            assert_eq!(
                runs(|| describe("1")),
                ("\"1\"".to_owned(), 1),
                "{who}: 1u8 vs \"1\""
            );
            assert_eq!(runs(|| describe(1u16)).1, 1, "{who}: 1u8 vs 1u16");
            assert_eq!(runs(|| describe(1u8)).1, 0, "{who}");
            assert_eq!(runs(|| describe("1")).1, 0, "{who}");
            assert!(describe_is_cached(&1u8).unwrap(), "{who}");
            assert!(!describe_is_cached(&2u8).unwrap(), "{who}");

            assert_eq!(runs(|| s.block_on(describe_async(1u8))).1, 1, "{who}");
            assert_eq!(runs(|| s.block_on(describe_async("1"))).1, 1, "{who}");
            assert_eq!(runs(|| s.block_on(describe_async(1u8))).1, 0, "{who}");

            assert_eq!(runs(zero::<u8>), (0, 1), "{who}");
            assert_eq!(runs(zero::<String>), (String::new(), 1), "{who}");
            assert_eq!(runs(zero::<Vec<u8>>), (Vec::new(), 1), "{who}");
            assert_eq!(runs(zero::<String>), (String::new(), 0), "{who}");
            assert!(zero_is_cached::<u8>().unwrap(), "{who}");
            assert_eq!(
                s.blocking.stats().errors,
                0,
                "{who}: no instance read another's value"
            );

            assert_eq!(runs(|| times::<2>(3)), (6, 1), "{who}");
            assert_eq!(runs(|| times::<3>(3)), (9, 1), "{who}");
            assert_eq!(runs(|| times::<2>(3)), (6, 0), "{who}");

            assert_eq!(
                runs(|| fetch(&Primary, 1)),
                ("1 from primary".to_owned(), 1)
            );
            assert_eq!(
                runs(|| fetch(&Replica, 1)),
                ("1 from primary".to_owned(), 0)
            );
            assert!(fetch_is_cached::<Replica>(&1).unwrap(), "{who}");
        },
    );
}

static SHARED: LazyLock<fncache::Cache> = LazyLock::new(|| {
    fncache::Cache::builder("macros-static")
        .build()
        .expect("valid config")
});

/// A `static` cache: the futures are `Send`, so they run on any worker thread.
#[fncache::cached(cache = SHARED)]
async fn on_any_thread<T: Serialize + Debug + Send + 'static>(x: T) -> String {
    tokio::task::yield_now().await;
    format!("{x:?}")
}

#[test]
fn decorated_async_functions_are_send_and_work_from_spawned_tasks() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outputs = runtime.block_on(async {
        let tasks: Vec<_> = (0..16u64)
            .map(|i| tokio::spawn(on_any_thread(i % 4)))
            .collect();
        let mut outputs = Vec::new();
        for task in tasks {
            outputs.push(task.await.unwrap());
        }
        outputs
    });
    let expected: Vec<String> = (0..16u64).map(|i| (i % 4).to_string()).collect();
    assert_eq!(outputs, expected);
    let stats = SHARED.stats();
    assert_eq!((stats.calls, stats.hits + stats.misses), (16, 16));
    assert!(stats.misses >= 4, "four keys: {stats:?}");
    assert_eq!(runtime.block_on(SHARED.len()).unwrap(), 4);
}
