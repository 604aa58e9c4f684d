//! Values that do not decode, and keys that hold the wrong type.

use fncache::{Cache, Codec, ErrorKind, Policy};
use fncache_testing::RedisServer;

fn values_key(name: &str) -> String {
    format!("func-cache:{name}:lru:1")
}

#[test]
fn corrupt_bytes_are_a_miss_recomputed_and_overwritten() {
    let server = RedisServer::spawn();
    let cache = Cache::builder("corrupt")
        .policy(Policy::Lru)
        .redis(server.url())
        .build_blocking()
        .unwrap();
    cache.get_or_compute("f", &1, || "good".to_owned()).unwrap();
    let mut con = server.connection();
    let fields: Vec<Vec<u8>> = redis::cmd("HKEYS")
        .arg(values_key("corrupt"))
        .query(&mut con)
        .unwrap();
    for garbage in [&b"\xff\xfe garbage"[..], b"", &[1, 1, 0, 0]] {
        let _: () = redis::cmd("HSET")
            .arg(values_key("corrupt"))
            .arg(&fields[0])
            .arg(garbage)
            .query(&mut con)
            .unwrap();
        let before = cache.stats();
        let v = cache
            .get_or_compute("f", &1, || "fresh".to_owned())
            .unwrap();
        assert_eq!(v, "fresh");
        let after = cache.stats();
        assert_eq!(after.errors - before.errors, 1);
        assert_eq!(after.misses - before.misses, 1);
        assert_eq!(
            cache
                .get_or_compute("f", &1, || "again".to_owned())
                .unwrap(),
            "fresh",
            "overwritten"
        );
    }
}

#[test]
fn foreign_codec_and_changed_type_are_misses() {
    let server = RedisServer::spawn();
    let json = Cache::builder("codec")
        .codec(Codec::Json)
        .redis(server.url())
        .build_blocking()
        .unwrap();
    let msgpack = Cache::builder("codec")
        .redis(server.url())
        .build_blocking()
        .unwrap();
    json.get_or_compute("f", &1, || 5u32).unwrap();
    assert_eq!(
        msgpack.get_or_compute("f", &1, || 6u32).unwrap(),
        6,
        "JSON bytes are not read as MessagePack"
    );
    assert_eq!(msgpack.stats().errors, 1);
    // The value's type changed between releases: decoding fails, the value is recomputed.
    let text: String = msgpack
        .get_or_compute("f", &1, || "text".to_owned())
        .unwrap();
    assert_eq!(text, "text");
    assert_eq!(msgpack.stats().errors, 2);
}

#[test]
fn memory_store_changed_type_is_a_miss() {
    let cache = Cache::builder("mem").build_blocking().unwrap();
    cache.get_or_compute("f", &1, || 5u32).unwrap();
    let text: String = cache.get_or_compute("f", &1, || "text".to_owned()).unwrap();
    assert_eq!(text, "text");
    assert_eq!(cache.stats().errors, 1);
}

#[test]
fn a_wrong_type_key_is_a_clear_error_naming_the_key() {
    let server = RedisServer::spawn();
    let strict = Cache::builder("wrong")
        .policy(Policy::Lru)
        .strict(true)
        .redis(server.url())
        .build_blocking()
        .unwrap();
    strict.get_or_compute("f", &1, || 1).unwrap();
    let mut con = server.connection();
    let _: () = redis::cmd("SET")
        .arg("func-cache:wrong:lru:0")
        .arg("oops")
        .query(&mut con)
        .unwrap();

    let err = strict.get_or_compute("f", &2, || 2).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongType, "{err}");
    assert!(err.to_string().contains("func-cache:wrong:lru:0"), "{err}");
    let err = strict.get_or_compute("f", &1, || 1).unwrap_err(); // a hit touches the index too
    assert_eq!(err.kind(), ErrorKind::WrongType, "{err}");
    let err = strict.len().unwrap_err();
    assert!(err.to_string().contains("func-cache:wrong:lru:0"), "{err}");

    // Nothing else was damaged: the values are intact.
    let n: u64 = redis::cmd("HLEN")
        .arg("func-cache:wrong:lru:1")
        .query(&mut con)
        .unwrap();
    assert_eq!(n, 1);

    // Not strict: the call still returns the function's value, and counts an error.
    let lenient = Cache::builder("wrong")
        .policy(Policy::Lru)
        .redis(server.url())
        .build_blocking()
        .unwrap();
    assert_eq!(lenient.get_or_compute("f", &3, || 3).unwrap(), 3);
    assert_eq!(lenient.stats().errors, 1);

    // The values hash with a wrong type is named too.
    let _: () = redis::cmd("DEL")
        .arg("func-cache:wrong:lru:0")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("func-cache:wrong:lru:1")
        .arg("oops")
        .query(&mut con)
        .unwrap();
    let err = strict.get_or_compute("f", &1, || 1).unwrap_err();
    assert!(err.to_string().contains("func-cache:wrong:lru:1"), "{err}");
}

#[test]
fn an_unreachable_server_does_not_take_the_caller_down() {
    let server = RedisServer::spawn();
    let url = server.url();
    drop(server); // nothing listens there any more
    let cache = Cache::builder("down")
        .redis(url.clone())
        .build_blocking()
        .unwrap();
    assert_eq!(cache.get_or_compute("f", &1, || 7).unwrap(), 7);
    assert_eq!(
        cache.get_or_compute("f", &1, || 8).unwrap(),
        8,
        "computed again"
    );
    let s = cache.stats();
    assert_eq!(
        (s.calls, s.execs, s.errors, s.fail_open),
        (2, 2, 2, 2),
        "one failed lookup per call, and no store attempted after it"
    );
    assert!(
        cache.len().unwrap_err().is_backend(),
        "explicit operations report the failure"
    );

    let rt = tokio::runtime::Runtime::new().unwrap();
    let cache = Cache::builder("down").redis(url).build().unwrap();
    assert_eq!(
        rt.block_on(cache.get_or_compute("f", &1, || async { 7 }))
            .unwrap(),
        7
    );
}

#[test]
fn scripts_are_reloaded_after_script_flush() {
    let server = RedisServer::spawn();
    let cache = Cache::builder("flush")
        .redis(server.url())
        .build_blocking()
        .unwrap();
    cache.get_or_compute("f", &1, || 1).unwrap();
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(
        cache.get_or_compute("f", &1, || 2).unwrap(),
        1,
        "a hit after NOSCRIPT"
    );
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(cache.get_or_compute("f", &2, || 2).unwrap(), 2);
    assert_eq!(cache.len().unwrap(), 2);
    assert_eq!(cache.stats().errors, 0);
}
