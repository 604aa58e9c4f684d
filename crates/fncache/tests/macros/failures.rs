//! When the cache cannot answer, the body runs and its value is returned: the failure is
//! counted and logged, never a panic, even for a strict cache.

use fncache::Mode;
use fncache_testing::RedisServer;

use crate::support::{Scenario, asynchronous, blocking, on_every_store, ran, runs};

#[fncache::cached(cache = blocking())]
fn square(x: u64) -> u64 {
    ran();
    x * x
}

#[fncache::cached(cache = asynchronous())]
async fn square_async(x: u64) -> Result<u64, String> {
    ran();
    Ok(x * x)
}

/// Two releases of one function whose value type changed (same identity on purpose).
#[fncache::cached(cache = blocking(), name = "changed-type", code_hash = false)]
fn release_1(x: u64) -> u64 {
    ran();
    x
}

#[fncache::cached(cache = blocking(), name = "changed-type", code_hash = false)]
fn release_2(x: u64) -> String {
    ran();
    format!("{x}")
}

#[test]
fn a_server_that_goes_away_does_not_take_the_function_down() {
    for strict in [false, true] {
        let mut s = Scenario::new(Some(RedisServer::spawn()), |b| b.strict(strict));
        assert_eq!(runs(|| square(3)), (9, 1), "strict={strict}");
        assert_eq!(runs(|| square(3)), (9, 0), "strict={strict}: cached");
        assert_eq!(runs(|| s.block_on(square_async(3))), (Ok(9), 1));
        s.server.as_mut().unwrap().stop();

        assert_eq!(
            runs(|| square(3)),
            (9, 1),
            "strict={strict}: the body answers"
        );
        assert!(s.blocking.stats().errors >= 1, "strict={strict}: counted");
        assert_eq!(runs(|| s.block_on(square_async(3))), (Ok(9), 1));
        assert!(s.asynchronous.stats().errors >= 1, "strict={strict}");
        // The explicit API reports what the decorated function could not.
        assert!(square_is_cached(&3).unwrap_err().is_backend());
    }
}

#[test]
fn a_value_that_does_not_decode_is_recomputed() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            assert_eq!(runs(|| release_1(5)), (5, 1), "{who}");
            assert_eq!(
                runs(|| release_2(5)),
                ("5".to_owned(), 1),
                "{who}: old bytes"
            );
            assert_eq!(s.blocking.stats().errors, 1, "{who}: counted");
            assert_eq!(
                runs(|| release_2(5)),
                ("5".to_owned(), 0),
                "{who}: overwritten"
            );
        },
    );
}

#[test]
fn modes_apply_to_decorated_functions() {
    on_every_store(
        |b| b,
        |s| {
            let who = s.label;
            let bypass = || s.blocking.with_mode(Mode::BYPASS, || square(2));
            assert_eq!(runs(bypass), (4, 1), "{who}");
            assert_eq!(runs(bypass), (4, 1), "{who}: never cached");
            assert!(!square_is_cached(&2).unwrap(), "{who}");
            // Without `exec`, a miss is an error for the explicit API; a decorated function
            // has no way to return it, so its body runs.
            let no_exec = Mode {
                read: true,
                write: false,
                exec: false,
            };
            let (value, ran) = runs(|| s.blocking.with_mode(no_exec, || square(5)));
            assert_eq!((value, ran), (25, 1), "{who}");
            assert!(
                !square_is_cached(&5).unwrap(),
                "{who}: the mode does not write"
            );
            let bypassed = s.block_on(s.asynchronous.with_mode(Mode::BYPASS, square_async(2)));
            assert_eq!(bypassed, Ok(4), "{who}");
            assert!(!s.block_on(square_async_is_cached(&2)).unwrap(), "{who}");
        },
    );
}
