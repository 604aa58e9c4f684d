//! TLS (`rediss://`, rustls) with certificates generated for the test, on both front-ends.

use std::sync::atomic::AtomicU64;

use fncache::{Cache, ErrorKind};
use fncache_testing::RedisServer;

use crate::support::{Front, unique_name};

/// Every cache of `fronts` stores, serves and counts on the server.
fn works(fronts: [Front; 2], what: &str) {
    for front in fronts {
        let who = format!("{what}, {}", front.label());
        let execs = AtomicU64::new(0);
        assert!(!front.is_hit("f", 1), "{who}: first call computes");
        assert!(front.is_hit("f", 1), "{who}: second call is a hit");
        front.call("g", 2, &execs);
        assert_eq!(front.len(), 2, "{who}");
        assert_eq!(front.stats().errors, 0, "{who}");
    }
}

#[test]
fn tls_with_generated_certificates_on_both_front_ends() {
    let server = RedisServer::spawn_tls();
    let tls = server.tls().unwrap();
    let trusting = || {
        Cache::builder(unique_name())
            .redis(server.url())
            .redis_tls_root_certificate(tls.ca_cert_pem.clone())
            .strict(true)
    };
    works(Front::both(trusting), "server authenticated");
    works(
        Front::both(|| {
            trusting().redis_tls_client_certificate(
                tls.client_cert_pem.clone(),
                tls.client_key_pem.clone(),
            )
        }),
        "mutual TLS",
    );
    // The entries really are on the TLS server.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("func-cache:*")
        .query(&mut server.connection())
        .unwrap();
    // Entry keys only: dropped caches leave their registry and shared counters.
    let keys: Vec<String> = keys
        .into_iter()
        .filter(|k: &String| !k.ends_with(":registry") && !k.ends_with(":stats"))
        .collect();
    assert_eq!(keys.len(), 2 * 2 * 2, "{keys:?}");

    // A server the client has no reason to trust: the handshake fails. Strict caches say so,
    // the others fail open.
    for front in Front::both(|| {
        Cache::builder(unique_name())
            .redis(server.url())
            .strict(true)
    }) {
        let err = front.try_call("f", 1, &AtomicU64::new(0)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Backend, "{}: {err}", front.label());
    }
    for front in Front::both(|| Cache::builder(unique_name()).redis(server.url())) {
        let execs = AtomicU64::new(0);
        assert_eq!(front.call("f", 1, &execs), 10);
        assert_eq!(front.call("f", 1, &execs), 10);
        assert_eq!(
            front.stats().errors,
            2,
            "{}: a failed lookup per call (no store is tried after it)",
            front.label()
        );
    }
    // Plain TCP to a TLS-only port fails open too.
    let plain = format!("redis://127.0.0.1:{}/", server.port());
    for front in Front::both(|| Cache::builder(unique_name()).redis(&plain)) {
        assert_eq!(front.call("f", 1, &AtomicU64::new(0)), 10);
        assert!(front.stats().errors > 0);
    }
}

#[test]
fn tls_credentials_stay_secret() {
    let server = RedisServer::spawn_tls();
    let tls = server.tls().unwrap();
    server.add_acl_user("app", "tls-s3cret", &["~*", "+@all"]);
    let url = |password: &str| format!("rediss://app:{password}@127.0.0.1:{}/", server.port());
    let builder = |url: &str| {
        Cache::builder(unique_name())
            .redis(url)
            .redis_tls_root_certificate(tls.ca_cert_pem.clone())
            .strict(true)
    };
    let good = url("tls-s3cret");
    assert!(!format!("{:?}", builder(&good)).contains("tls-s3cret"));
    works(Front::both(|| builder(&good)), "password in the URL");

    let bad = url("wrong-s3cret");
    // An async connection refused its credentials answers after the connection manager's
    // retry, about 250 ms here, as long as the default op timeout: give it room, so that the
    // refusal (Denied) is what the call sees, not the timeout.
    let slow = |url: &str| builder(url).op_timeout(std::time::Duration::from_secs(2));
    for front in Front::both(|| slow(&bad)) {
        assert!(!front.debug().contains("wrong-s3cret"), "{}", front.debug());
        let err = front.try_call("f", 1, &AtomicU64::new(0)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Denied, "{}: {err}", front.label());
        let mut chain = format!("{err} {err:?}");
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            chain.push_str(&format!(" {s} {s:?}"));
            source = s.source();
        }
        assert!(!chain.contains("wrong-s3cret"), "{chain}");
    }
}
