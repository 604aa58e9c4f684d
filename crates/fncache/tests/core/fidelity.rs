//! A value is served exactly as it was computed, or it is not cached at all.
//!
//! Self-describing codecs cannot tell `Some(None)` or `Some(())` from `None`, JSON has no NaN
//! or infinity, and postcard cannot decode what its own encoder skipped or what needs
//! `deserialize_any`. Such a value is returned, counted in `errors`, and not stored, so the
//! next call computes again instead of being served a changed value.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fncache::{CallOptions, Codec, ErrorKind};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::support::{Front, all_fronts, describe};

const CODECS: [Codec; 4] = [
    Codec::MessagePack,
    Codec::Json,
    Codec::Cbor,
    Codec::Postcard,
];

fn get_with<T>(
    front: &Front,
    options: &CallOptions,
    function: &str,
    compute: impl FnOnce() -> T,
) -> T
where
    T: Serialize + DeserializeOwned,
{
    match front {
        Front::Blocking(c) => c
            .get_or_compute_with(options, function, &(1u8,), compute)
            .unwrap(),
        Front::Async(c, rt) => rt
            .block_on(c.get_or_compute_with(options, function, &(1u8,), || async { compute() }))
            .unwrap(),
    }
}

/// Calls `function` twice with a function returning `value`: the value comes back equal
/// (compared by `Debug`, so that NaN equals NaN) both times, and the second call is a hit
/// exactly when `cached`; a refused value counts one error per call.
fn check<T>(front: &Front, codec: Codec, what: &str, value: T, cached: bool)
where
    T: Serialize + DeserializeOwned + Clone + Debug,
{
    let options = CallOptions::new().codec(codec);
    let function = format!("fidelity::{codec:?}::{what}");
    let label = format!("{}: {codec:?} {what}", front.label());
    let execs = AtomicU64::new(0);
    let compute = || {
        execs.fetch_add(1, Ordering::SeqCst);
        value.clone()
    };
    let before = front.stats_for(&function).unwrap_or_default();
    let first = get_with(front, &options, &function, compute);
    assert_eq!(
        format!("{first:?}"),
        format!("{value:?}"),
        "{label}: first call"
    );
    let second = get_with(front, &options, &function, compute);
    assert_eq!(
        format!("{second:?}"),
        format!("{value:?}"),
        "{label}: served changed"
    );
    let after = front.stats_for(&function).unwrap_or_default();
    let (execs, errors) = (execs.load(Ordering::SeqCst), after.errors - before.errors);
    if cached {
        assert_eq!((execs, errors), (1, 0), "{label}: should be cached");
    } else {
        assert_eq!(
            (execs, errors),
            (2, 2),
            "{label}: should be refused (and counted)"
        );
        assert_eq!(after.writes - before.writes, 0, "{label}: nothing stored");
    }
}

/// Fields skipped when `None`: postcard then writes fewer fields than it reads back.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Sparse {
    a: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    b: Option<u8>,
    c: u8,
}

/// Decoded with `deserialize_any`, which postcard does not support.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Untagged {
    Number(u32),
    Text(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Unit;

#[test]
fn values_a_codec_cannot_represent_are_not_cached() {
    use Codec::{Json, MessagePack, Postcard};
    for (_store, front) in all_fronts(|b| b) {
        for codec in CODECS {
            let self_describing = codec != Postcard;
            let f = &front;
            check(f, codec, "some none", Some(None::<u8>), !self_describing);
            check(f, codec, "some unit", Some(()), !self_describing);
            check(
                f,
                codec,
                "some unit struct",
                Some(Unit),
                matches!(codec, MessagePack | Postcard),
            );
            check(
                f,
                codec,
                "nested",
                vec![Some(Some(None::<u8>))],
                !self_describing,
            );
            check(f, codec, "some nan", Some(f64::NAN), codec != Json);
            check(f, codec, "some inf", Some(f64::INFINITY), codec != Json);
            check(f, codec, "neg inf", vec![f64::NEG_INFINITY], codec != Json);
            check(
                f,
                codec,
                "sparse",
                Sparse {
                    a: 1,
                    b: None,
                    c: 3,
                },
                codec != Postcard,
            );
            check(
                f,
                codec,
                "untagged",
                Untagged::Text("x".into()),
                codec != Postcard,
            );
            // What every codec represents is still cached.
            check(f, codec, "none", None::<u8>, true);
            check(f, codec, "unit", (), true);
            check(f, codec, "some", Some(Some(3u8)), true);
            check(f, codec, "negative zero", -0.0f64, true);
            check(f, codec, "nan", vec![f64::NAN], codec != Json);
        }
    }
}

#[test]
fn hash_sets_and_maps_are_cached_whatever_order_they_decode_in() {
    for (store, front) in all_fronts(|b| b) {
        for codec in CODECS {
            let set: HashSet<u32> = (0..200).collect();
            let map: HashMap<String, u32> = (0..200).map(|i| (format!("k{i}"), i)).collect();
            let options = CallOptions::new().codec(codec);
            let execs = AtomicU64::new(0);
            for _ in 0..2 {
                let got = get_with(&front, &options, &format!("sets::{codec:?}"), || {
                    execs.fetch_add(1, Ordering::SeqCst);
                    (set.clone(), map.clone())
                });
                assert_eq!(got, (set.clone(), map.clone()));
            }
            assert_eq!(
                execs.load(Ordering::SeqCst),
                1,
                "{} {codec:?}: a HashSet/HashMap value is cached",
                describe(&store, &front)
            );
        }
    }
}

/// Waits for background work, driving the async front-end's runtime meanwhile (its tasks run
/// only then); the deadline only turns a hang into a failure.
fn eventually(front: &Front, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        match front {
            Front::Blocking(_) => std::thread::sleep(Duration::from_millis(5)),
            Front::Async(_, rt) => {
                rt.block_on(async { tokio::time::sleep(Duration::from_millis(5)).await })
            }
        }
    }
}

#[test]
fn background_fills_refuse_what_the_codec_cannot_represent() {
    for (store, front) in all_fronts(|b| b) {
        let label = describe(&store, &front);
        let options = CallOptions::new().wait(false);
        let execs = Arc::new(AtomicU64::new(0));
        let call = || -> Option<Option<u8>> {
            let execs = Arc::clone(&execs);
            let compute = move || {
                execs.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::convert::Infallible>(Some(None))
            };
            let default: Option<Option<Option<u8>>> = Some(Some(Some(9)));
            let result = match &front {
                Front::Blocking(c) => {
                    c.try_get_or_compute_owned_with(&options, default, "bg", &(1u8,), compute)
                }
                Front::Async(c, rt) => rt.block_on(c.try_get_or_compute_owned_with(
                    &options,
                    default,
                    "bg",
                    &(1u8,),
                    move || async move { compute() },
                )),
            };
            result.unwrap().unwrap()
        };
        assert_eq!(
            call(),
            Some(Some(9)),
            "{label}: a cold miss answers the default"
        );
        eventually(&front, "the background fill ends", || {
            front.stats_for("bg").unwrap_or_default().errors == 1
        });
        assert_eq!(
            front.stats_for("bg").unwrap_or_default().writes,
            0,
            "{label}"
        );
        // Nothing was stored and the lease was given back: the next call fills again.
        assert_eq!(call(), Some(Some(9)), "{label}: not served `None`");
        eventually(&front, "the second fill ends", || {
            front.stats_for("bg").unwrap_or_default().errors == 2
        });
        assert_eq!(execs.load(Ordering::SeqCst), 2, "{label}");
    }
}

/// A strict cache's explicit API reports the refusal as an `Encode` error, as it does a value
/// that does not encode at all; nothing is stored, so the next call computes again, at once:
/// the key's lease was given back before the error was returned (it was kept until
/// `lock_timeout`, so the next caller of the key waited that long for nothing).
#[test]
fn a_strict_cache_reports_a_refused_value_as_an_encode_error_and_frees_the_key() {
    let configure = |b: fncache::Builder| b.strict(true).lock_timeout(Duration::from_millis(200));
    for (store, front) in all_fronts(configure) {
        let who = describe(&store, &front);
        for _ in 0..3 {
            let (err, cached) = match &front {
                Front::Blocking(c) => (
                    c.get_or_compute("strict", &(1u8,), || Some(None::<u8>))
                        .unwrap_err(),
                    c.contains("strict", &(1u8,)).unwrap(),
                ),
                Front::Async(c, rt) => rt.block_on(async {
                    let err = c
                        .get_or_compute("strict", &(1u8,), || async { Some(None::<u8>) })
                        .await
                        .unwrap_err();
                    (err, c.contains("strict", &(1u8,)).await.unwrap())
                }),
            };
            assert_eq!(err.kind(), ErrorKind::Encode, "{who}: {err}");
            assert!(!cached, "{who}: nothing stored");
        }
        let stats = front.stats_for("strict").unwrap_or_default();
        assert_eq!((stats.execs, stats.writes), (3, 0), "{who}");
        assert_eq!(
            (stats.lock_waits, stats.lock_timeouts),
            (0, 0),
            "{who}: the next call waited for a lease nobody held any more"
        );
        if let Some(server) = store.server() {
            let leases: Vec<String> = redis::cmd("KEYS")
                .arg("*:lock:*")
                .query(&mut server.connection())
                .unwrap();
            assert_eq!(leases, Vec::<String>::new(), "{who}");
        }
    }
}
