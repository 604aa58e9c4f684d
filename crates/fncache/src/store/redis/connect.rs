//! Where a Redis-backed cache connects, resolved once at build time: a URL (explicit or from
//! the environment) with optional credentials, database and TLS certificates, seed URLs of a
//! cluster, or a client the user brings. Secrets never reach `Debug`, errors or logs: every
//! rendering goes through [`redact_url`] or a fixed label.

use std::fmt;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::{ClientTlsConfig, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo};

use super::CONNECT_TIMEOUT;
use crate::error::Error;
use crate::layout::Layout;

/// The environment variable read first when a builder names no store.
pub const REDIS_URL_ENV: &str = "FNCACHE_REDIS_URL";
/// The environment variable read when [`REDIS_URL_ENV`] is not set.
pub const REDIS_URL_ENV_FALLBACK: &str = "REDIS_URL";

/// How often a cluster request is retried (MOVED/ASK redirections, reconnections) before the
/// call fails open: a cache waits little, the function can always run instead.
const CLUSTER_RETRIES: u32 = 3;
/// Bounds of the wait between cluster retries, in milliseconds.
const CLUSTER_RETRY_WAIT_MS: (u64, u64) = (10, 250);

/// The store a builder names, if any.
#[derive(Clone, Default)]
pub(crate) enum StoreChoice {
    /// Nothing named: the environment decides, else the embedded store.
    #[default]
    Unnamed,
    /// The embedded store, whatever the environment says.
    Memory,
    /// One server.
    Url(String),
    /// Seed nodes of a cluster.
    ClusterUrls(Vec<String>),
    /// The user's client for one server.
    Client(Box<redis::Client>),
    /// The user's cluster client.
    ClusterClient(Box<ClusterClient>),
    /// The user's async connection manager.
    Manager(ConnectionManager),
    /// The user's r2d2 pool of blocking connections.
    Pool(r2d2::Pool<redis::Client>),
}

impl fmt::Debug for StoreChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreChoice::Unnamed => f.write_str("Unnamed"),
            StoreChoice::Memory => f.write_str("Memory"),
            StoreChoice::Url(url) => f.debug_tuple("Url").field(&redact_url(url)).finish(),
            StoreChoice::ClusterUrls(urls) => f
                .debug_tuple("ClusterUrls")
                .field(&urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>())
                .finish(),
            StoreChoice::Client(client) => f
                .debug_tuple("Client")
                .field(&client_label(client))
                .finish(),
            StoreChoice::ClusterClient(_) => f.write_str("ClusterClient"),
            StoreChoice::Manager(_) => f.write_str("ConnectionManager"),
            StoreChoice::Pool(pool) => f
                .debug_tuple("Pool")
                .field(&format_args!("max_size {}", pool.max_size()))
                .finish(),
        }
    }
}

/// Connection settings that refine a URL. Each is `None` until set, so that an explicit
/// "empty" value (database 0, an empty password) still overrides the URL.
#[derive(Clone, Default)]
pub(crate) struct ConnectOptions {
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) database: Option<i64>,
    /// PEM of the certificate authority that signed the server's certificate.
    pub(crate) root_certificate: Option<Vec<u8>>,
    /// PEM certificate and key the client presents (mutual TLS).
    pub(crate) client_certificate: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |on: bool| if on { "set" } else { "not set" };
        f.debug_struct("ConnectOptions")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("database", &self.database)
            .field("root_certificate", &set(self.root_certificate.is_some()))
            .field(
                "client_certificate",
                &set(self.client_certificate.is_some()),
            )
            .finish()
    }
}

impl ConnectOptions {
    fn is_empty(&self) -> bool {
        self.username.is_none()
            && self.password.is_none()
            && self.database.is_none()
            && !self.has_certificates()
    }

    fn has_certificates(&self) -> bool {
        self.root_certificate.is_some() || self.client_certificate.is_some()
    }

    fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self
                .client_certificate
                .as_ref()
                .map(|(cert, key)| ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                }),
            root_cert: self.root_certificate.clone(),
        }
    }

    /// A short account of the overrides, for `Debug` (no secret values).
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(user) = &self.username {
            parts.push(format!("username `{user}`"));
        }
        if self.password.is_some() {
            parts.push("password ***".to_owned());
        }
        if let Some(db) = self.database {
            parts.push(format!("database {db}"));
        }
        if self.has_certificates() {
            parts.push("TLS certificates".to_owned());
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" with {}", parts.join(", "))
        }
    }
}

/// How to reach one node of a cluster, as the seeds are reached (credentials, TLS).
pub(crate) struct NodeTemplate {
    info: ConnectionInfo,
    certificates: Option<redis::TlsCertificates>,
}

impl NodeTemplate {
    /// A client for the node at `host:port`, speaking RESP3 (a near cache's link: sharded
    /// pub/sub messages and slot moves come as pushes).
    pub(crate) fn client(&self, host: &str, port: u16) -> redis::RedisResult<redis::Client> {
        let addr = match self.info.addr() {
            redis::ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => redis::ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => redis::ConnectionAddr::Tcp(host.to_owned(), port),
        };
        let settings = self
            .info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        let info = self
            .info
            .clone()
            .set_addr(addr)
            .set_redis_settings(settings);
        match &self.certificates {
            Some(certificates) => redis::Client::build_with_tls(info, certificates.clone()),
            None => redis::Client::open(info),
        }
    }
}

/// Which front-end a cache is being built for (some clients serve only one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Front {
    Blocking,
    Async,
}

/// Where a Redis-backed cache connects, with credentials kept out of `Debug`.
#[derive(Clone)]
pub(crate) enum RedisTarget {
    /// One server, through a client (fncache's own pool or manager of its connections).
    Server {
        client: Box<redis::Client>,
        label: String,
    },
    /// A cluster, through a cluster client.
    Cluster {
        client: Box<ClusterClient>,
        label: String,
        /// How to reach one node of it with the seeds' credentials and TLS settings, for a
        /// near cache's link (`None` for the user's cluster client, which does not say).
        nodes: Option<std::sync::Arc<NodeTemplate>>,
    },
    /// The user's connection manager (async front-end).
    Manager(ConnectionManager),
    /// The user's pool (blocking front-end).
    Pool(r2d2::Pool<redis::Client>),
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisTarget::Server { label, .. } => f.debug_tuple("Redis").field(label).finish(),
            RedisTarget::Cluster { label, .. } => {
                f.debug_tuple("RedisCluster").field(label).finish()
            }
            RedisTarget::Manager(_) => f.write_str("Redis(your ConnectionManager)"),
            RedisTarget::Pool(pool) => {
                write!(f, "Redis(your r2d2 pool, max_size {})", pool.max_size())
            }
        }
    }
}

impl RedisTarget {
    /// Validates a URL without connecting (no options, no environment).
    #[cfg(test)]
    pub(crate) fn open(url: &str) -> Result<RedisTarget, Error> {
        server(url, &ConnectOptions::default(), None)
    }

    /// Where a near cache's invalidation link connects, if it can (see `subscriber.rs`).
    pub(crate) fn link_target(&self) -> Option<super::subscriber::LinkTarget> {
        match self {
            RedisTarget::Server { client, .. } => {
                Some(super::subscriber::LinkTarget::Server(client.clone()))
            }
            RedisTarget::Cluster {
                client,
                nodes: Some(nodes),
                ..
            } => Some(super::subscriber::LinkTarget::Cluster {
                cluster: client.clone(),
                nodes: std::sync::Arc::clone(nodes),
            }),
            _ => None,
        }
    }

    /// Can a near cache open its invalidation link here?
    pub(crate) fn can_subscribe(&self) -> bool {
        match self {
            RedisTarget::Server { .. } => true,
            RedisTarget::Cluster { nodes, .. } => nodes.is_some(),
            RedisTarget::Manager(_) | RedisTarget::Pool(_) => false,
        }
    }

    /// True when requests go to a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, RedisTarget::Cluster { .. })
    }
}

/// What a builder's store settings come to.
#[derive(Debug)]
pub(crate) enum Resolved {
    Memory,
    Redis(RedisTarget),
}

/// Reads an environment variable: `Ok(None)` when unset, an error when it is not UTF-8.
pub(crate) fn process_env(name: &str) -> Result<Option<String>, Error> {
    match std::env::var(name) {
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::config(format!(
            "the environment variable {name} is not valid UTF-8"
        ))),
    }
}

/// Resolves the store of a cache. `env` reads an environment variable (the process
/// environment outside tests). The environment is consulted only when no store is named:
/// the first of [`REDIS_URL_ENV`] and [`REDIS_URL_ENV_FALLBACK`] that is set decides, and an empty value
/// means the embedded store.
pub(crate) fn resolve(
    choice: &StoreChoice,
    options: &ConnectOptions,
    layout: Layout,
    front: Front,
    op_timeout: Duration,
    env: impl Fn(&str) -> Result<Option<String>, Error>,
) -> Result<Resolved, Error> {
    let target = match choice {
        StoreChoice::Unnamed => {
            let mut found = None;
            for name in [REDIS_URL_ENV, REDIS_URL_ENV_FALLBACK] {
                if let Some(value) = env(name)? {
                    found = Some((name, value));
                    break;
                }
            }
            match found {
                Some((name, url)) if !url.trim().is_empty() => server(&url, options, Some(name))?,
                _ => return Ok(Resolved::Memory),
            }
        }
        StoreChoice::Memory => return Ok(Resolved::Memory),
        StoreChoice::Url(url) => server(url, options, None)?,
        StoreChoice::ClusterUrls(urls) => cluster(urls, options, op_timeout)?,
        supplied => {
            if !options.is_empty() {
                return Err(Error::config(
                    "redis_username, redis_password, redis_database and the TLS certificate \
                     options refine a URL; a client you supply keeps its own settings",
                ));
            }
            match (supplied, front) {
                (StoreChoice::Client(client), _) => RedisTarget::Server {
                    label: format!("your client for {}", client_label(client)),
                    client: client.clone(),
                },
                (StoreChoice::ClusterClient(client), _) => RedisTarget::Cluster {
                    client: client.clone(),
                    label: "your cluster client".to_owned(),
                    nodes: None,
                },
                (StoreChoice::Manager(manager), Front::Async) => {
                    RedisTarget::Manager(manager.clone())
                }
                (StoreChoice::Manager(_), Front::Blocking) => {
                    return Err(Error::config(
                        "a ConnectionManager serves the async front-end: use `build()`, or give \
                         the blocking front-end a client or an r2d2 pool",
                    ));
                }
                (StoreChoice::Pool(pool), Front::Blocking) => RedisTarget::Pool(pool.clone()),
                (StoreChoice::Pool(_), Front::Async) => {
                    return Err(Error::config(
                        "an r2d2 pool serves the blocking front-end: use `build_blocking()`, or \
                         give the async front-end a client or a ConnectionManager",
                    ));
                }
                _ => return Err(Error::config("unsupported store")),
            }
        }
    };
    if target.is_cluster() && !layout.is_cluster() {
        return Err(Error::config(format!(
            "a Redis Cluster needs Layout::Cluster or Layout::ClusterPerFunction (the keys of a \
             structure must share a hash slot), not Layout::{layout:?}"
        )));
    }
    Ok(Resolved::Redis(target))
}

/// A server URL with the options applied. `source` names the environment variable the URL
/// came from, for error messages.
fn server(url: &str, options: &ConnectOptions, source: Option<&str>) -> Result<RedisTarget, Error> {
    let info = connection_info(url, options, source)?;
    let tls = is_tls(&info);
    check_certificates(options, tls, url, source)?;
    if tls {
        ensure_crypto_provider();
    }
    let client = if options.has_certificates() {
        redis::Client::build_with_tls(info, options.certificates())
    } else {
        redis::Client::open(info)
    }
    .map_err(|e| invalid_url(url, source, &e))?;
    let from = source.map_or(String::new(), |name| format!(" (from {name})"));
    Ok(RedisTarget::Server {
        client: Box::new(client),
        label: format!("{}{}{from}", redact_url(url), options.describe()),
    })
}

/// Seed URLs of a cluster with the options applied. Each request waits for its reply at most
/// `op_timeout` (the blocking cluster connection cannot be bounded per call, so the cache's
/// default op timeout is its response timeout).
fn cluster(
    urls: &[String],
    options: &ConnectOptions,
    op_timeout: Duration,
) -> Result<RedisTarget, Error> {
    if urls.is_empty() {
        return Err(Error::config("redis_cluster needs at least one seed URL"));
    }
    let mut infos = Vec::with_capacity(urls.len());
    let mut tls = None;
    for url in urls {
        let info = connection_info(url, options, None)?;
        if info.redis_settings().db() != 0 {
            return Err(Error::config(format!(
                "Redis Cluster has only database 0, but `{}` selects database {}",
                redact_url(url),
                info.redis_settings().db()
            )));
        }
        if tls.is_some_and(|t| t != is_tls(&info)) {
            return Err(Error::config(
                "the cluster seed URLs mix `redis://` and `rediss://`",
            ));
        }
        tls = Some(is_tls(&info));
        infos.push(info);
    }
    let tls = tls.unwrap_or(false);
    let first = urls.first().map_or("", String::as_str);
    check_certificates(options, tls, first, None)?;
    if tls {
        ensure_crypto_provider();
    }
    let nodes = infos.first().map(|info| {
        std::sync::Arc::new(NodeTemplate {
            info: info.clone(),
            certificates: options.has_certificates().then(|| options.certificates()),
        })
    });
    let mut builder = ClusterClientBuilder::new(infos)
        .connection_timeout(CONNECT_TIMEOUT)
        .response_timeout(op_timeout)
        .retries(CLUSTER_RETRIES)
        .min_retry_wait(CLUSTER_RETRY_WAIT_MS.0)
        .max_retry_wait(CLUSTER_RETRY_WAIT_MS.1);
    if options.has_certificates() {
        builder = builder.certs(options.certificates());
    }
    let client = builder.build().map_err(|e| {
        Error::config(format!(
            "invalid Redis Cluster seeds `{}` ({:?})",
            urls.iter()
                .map(|u| redact_url(u))
                .collect::<Vec<_>>()
                .join(", "),
            e.kind()
        ))
    })?;
    let seeds: Vec<String> = urls.iter().map(|u| redact_url(u)).collect();
    Ok(RedisTarget::Cluster {
        client: Box::new(client),
        label: format!("seeds {}{}", seeds.join(", "), options.describe()),
        nodes,
    })
}

/// Parses `url` and applies the explicit options, which win over the URL (an empty username
/// or password removes the URL's).
fn connection_info(
    url: &str,
    options: &ConnectOptions,
    source: Option<&str>,
) -> Result<ConnectionInfo, Error> {
    let info = url
        .into_connection_info()
        .map_err(|e| invalid_url(url, source, &e))?;
    let old = info.redis_settings();
    let username = options
        .username
        .as_deref()
        .or(old.username())
        .filter(|u| !u.is_empty());
    let password = options
        .password
        .as_deref()
        .or(old.password())
        .filter(|p| !p.is_empty());
    let mut settings = RedisConnectionInfo::default()
        .set_db(options.database.unwrap_or(old.db()))
        .set_protocol(old.protocol());
    if let Some(username) = username {
        settings = settings.set_username(username);
    }
    if let Some(password) = password {
        settings = settings.set_password(password);
    }
    // No `CLIENT SETINFO` in the handshake: Redis >= 7.2 and Valkey hold it back during a
    // `CLIENT PAUSE` (Redis 7.0 rejects it at once), so a fresh connection to a paused server
    // would wait for its connect bound (1 s) instead of failing an op at the op timeout, and a
    // patient op would fail open instead of waiting the pause out. Only `CLIENT LIST` loses
    // the library name.
    settings = settings.set_skip_set_lib_name();
    Ok(info.set_redis_settings(settings))
}

fn is_tls(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. })
}

fn check_certificates(
    options: &ConnectOptions,
    tls: bool,
    url: &str,
    source: Option<&str>,
) -> Result<(), Error> {
    if options.has_certificates() && !tls {
        let from = source.map_or(String::new(), |name| format!(" (from {name})"));
        return Err(Error::config(format!(
            "TLS certificates were given but `{}`{from} is not a `rediss://` URL",
            redact_url(url)
        )));
    }
    Ok(())
}

fn invalid_url(url: &str, source: Option<&str>, e: &redis::RedisError) -> Error {
    // The redis error may quote the URL: report only its kind with our redacted copy.
    let from = source.map_or(String::new(), |name| format!(" from {name}"));
    Error::config(format!(
        "invalid Redis URL `{}`{from} ({:?})",
        redact_url(url),
        e.kind()
    ))
}

/// Address and database of a client, without credentials.
fn client_label(client: &redis::Client) -> String {
    let info = client.get_connection_info();
    let scheme = if is_tls(info) { "rediss" } else { "redis" };
    format!("{scheme}://{}/{}", info.addr(), info.redis_settings().db())
}

/// rustls needs a process-wide crypto provider; it picks one by itself when exactly one is
/// compiled in, and panics when several are and none was installed. fncache brings `ring`:
/// install it only in that ambiguous case, and only when a TLS connection is configured.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // An error means another thread installed one meanwhile: that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Replaces the password of a URL (and any `password`/`pass` query value) with `***`.
///
/// Robust against what real URLs contain: a password with `/`, `?` or `@` in it, a URL without
/// a scheme, percent-encoding. Everything before the last `@` is user information: only the
/// username (before its first `:`) is kept. Masking too much is harmless; too little is not.
pub(crate) fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let (userinfo, tail) = match rest.rsplit_once('@') {
        Some((userinfo, tail)) => (Some(userinfo), tail),
        None => (None, rest),
    };
    let mut out = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    if let Some(userinfo) = userinfo {
        match userinfo.split_once(':') {
            Some((user, _)) => {
                out.push_str(user);
                out.push_str(":***@");
            }
            // `redis://secret@host`: redis-rs reads a lone userinfo as a password.
            None => out.push_str("***@"),
        }
    }
    match tail.split_once('?') {
        Some((head, query)) => {
            out.push_str(head);
            out.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _))
                        if matches!(k.to_ascii_lowercase().as_str(), "password" | "pass") =>
                    {
                        format!("{k}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(tail),
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn passwords_are_redacted() {
        let cases = [
            ("redis://u:s3cret@h:6379/0", "redis://u:***@h:6379/0"),
            ("rediss://:s3cret@h", "rediss://:***@h"),
            ("redis://s3cret@h/", "redis://***@h/"),
            ("redis://h:6379", "redis://h:6379"),
            (
                "redis+unix:///tmp/r.sock?db=1&pass=s3cret",
                "redis+unix:///tmp/r.sock?db=1&pass=***",
            ),
            // Characters a password should not contain unencoded, but sometimes does.
            ("redis://u:s3/cret@h:1/2", "redis://u:***@h:1/2"),
            ("redis://u:s3?cret@h", "redis://u:***@h"),
            ("redis://u:s3@cret@h", "redis://u:***@h"),
            ("redis://u:s3%40cret@h", "redis://u:***@h"),
            // No scheme at all.
            ("u:s3cret@h:6379", "u:***@h:6379"),
            ("redis://h/?PASSWORD=s3cret", "redis://h/?PASSWORD=***"),
        ];
        for (url, want) in cases {
            assert_eq!(redact_url(url), want, "{url}");
            assert!(!redact_url(url).contains("s3"), "{url}");
        }
    }

    #[test]
    fn an_invalid_url_is_a_config_error_without_the_secret() {
        let err = RedisTarget::open("nope://u:s3cret@h").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let target = RedisTarget::open("redis://u:s3cret@127.0.0.1:1/").unwrap();
        assert!(!format!("{target:?}").contains("s3cret"));
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Result<Option<String>, Error> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| Ok(vars.get(name).cloned())
    }

    fn resolve_with(
        choice: StoreChoice,
        options: &ConnectOptions,
        vars: &[(&str, &str)],
    ) -> Result<Resolved, Error> {
        resolve(
            &choice,
            options,
            Layout::Shared,
            Front::Blocking,
            Duration::from_millis(250),
            env_of(vars),
        )
    }

    fn server_info(resolved: Resolved) -> ConnectionInfo {
        match resolved {
            Resolved::Redis(RedisTarget::Server { client, .. }) => {
                client.get_connection_info().clone()
            }
            other => panic!("expected a server, got {other:?}"),
        }
    }

    #[test]
    fn the_environment_decides_only_when_no_store_is_named() {
        let none = ConnectOptions::default();
        let both = [
            (REDIS_URL_ENV, "redis://first:1/"),
            (REDIS_URL_ENV_FALLBACK, "redis://second:2/"),
        ];
        let info = server_info(resolve_with(StoreChoice::Unnamed, &none, &both).unwrap());
        assert_eq!(info.addr().to_string(), "first:1");
        let info = server_info(
            resolve_with(
                StoreChoice::Unnamed,
                &none,
                &[(REDIS_URL_ENV_FALLBACK, "redis://second:2/")],
            )
            .unwrap(),
        );
        assert_eq!(info.addr().to_string(), "second:2");
        // Explicit choices win over the environment.
        assert!(matches!(
            resolve_with(StoreChoice::Memory, &none, &both).unwrap(),
            Resolved::Memory
        ));
        let info = server_info(
            resolve_with(StoreChoice::Url("redis://mine:3/".into()), &none, &both).unwrap(),
        );
        assert_eq!(info.addr().to_string(), "mine:3");
        // Nothing set, or an empty value: the embedded store. An empty FNCACHE_REDIS_URL opts
        // out of a REDIS_URL meant for something else.
        assert!(matches!(
            resolve_with(StoreChoice::Unnamed, &none, &[]).unwrap(),
            Resolved::Memory
        ));
        assert!(matches!(
            resolve_with(
                StoreChoice::Unnamed,
                &none,
                &[
                    (REDIS_URL_ENV, ""),
                    (REDIS_URL_ENV_FALLBACK, "redis://second:2/")
                ]
            )
            .unwrap(),
            Resolved::Memory
        ));
    }

    #[test]
    fn explicit_options_win_over_the_url_even_when_empty() {
        let url = "redis://alice:s3cret@h:1/3";
        let info = server_info(
            resolve_with(
                StoreChoice::Url(url.into()),
                &ConnectOptions::default(),
                &[],
            )
            .unwrap(),
        );
        let r = info.redis_settings();
        assert_eq!(
            (r.username(), r.password(), r.db()),
            (Some("alice"), Some("s3cret"), 3)
        );

        let options = ConnectOptions {
            username: Some(String::new()),
            password: Some(String::new()),
            database: Some(0),
            ..ConnectOptions::default()
        };
        let info = server_info(resolve_with(StoreChoice::Url(url.into()), &options, &[]).unwrap());
        let r = info.redis_settings();
        assert_eq!((r.username(), r.password(), r.db()), (None, None, 0));

        let options = ConnectOptions {
            username: Some("bob".into()),
            password: Some("other".into()),
            ..ConnectOptions::default()
        };
        let resolved =
            resolve_with(StoreChoice::Unnamed, &options, &[(REDIS_URL_ENV, url)]).unwrap();
        let shown = format!("{resolved:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("other"),
            "{shown}"
        );
        assert!(shown.contains(REDIS_URL_ENV), "{shown}");
        let info = server_info(resolved);
        let r = info.redis_settings();
        assert_eq!(
            (r.username(), r.password(), r.db()),
            (Some("bob"), Some("other"), 3)
        );
    }

    #[test]
    fn connections_skip_client_setinfo() {
        for url in ["redis://h:1/", "rediss://u:p@h:1/2"] {
            let info = server_info(
                resolve_with(
                    StoreChoice::Url(url.into()),
                    &ConnectOptions::default(),
                    &[],
                )
                .unwrap(),
            );
            assert!(info.redis_settings().skip_set_lib_name(), "{url}");
        }
    }

    #[test]
    fn misfits_are_config_errors() {
        let none = ConnectOptions::default();
        let client = Box::new(redis::Client::open("redis://h:1/").unwrap());
        let with_password = ConnectOptions {
            password: Some("x".into()),
            ..ConnectOptions::default()
        };
        let with_root = ConnectOptions {
            root_certificate: Some(b"pem".to_vec()),
            ..ConnectOptions::default()
        };
        let cases: Vec<(StoreChoice, &ConnectOptions, Layout)> = vec![
            (StoreChoice::ClusterUrls(vec![]), &none, Layout::Cluster),
            (
                StoreChoice::ClusterUrls(vec!["redis://h:1/".into()]),
                &none,
                Layout::Shared,
            ),
            (
                StoreChoice::ClusterUrls(vec!["redis://h:1/2".into()]),
                &none,
                Layout::Cluster,
            ),
            (StoreChoice::Client(client), &with_password, Layout::Shared),
            (
                StoreChoice::Url("redis://h:1/".into()),
                &with_root,
                Layout::Shared,
            ),
        ];
        for (choice, options, layout) in cases {
            let shown = format!("{choice:?}");
            let err = resolve(
                &choice,
                options,
                layout,
                Front::Blocking,
                Duration::from_millis(250),
                env_of(&[]),
            )
            .unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Config, "{shown}: {err}");
        }
    }

    #[test]
    fn options_do_not_show_secrets() {
        let options = ConnectOptions {
            username: Some("alice".into()),
            password: Some("s3cret".into()),
            client_certificate: Some((b"cert".to_vec(), b"KEY".to_vec())),
            ..ConnectOptions::default()
        };
        let shown = format!("{options:?}");
        assert!(shown.contains("alice") && !shown.contains("s3cret") && !shown.contains("KEY"));
    }
}
