//! The store settings of the builder: the embedded store, Redis URLs (single server or
//! cluster seeds), credentials and TLS certificates refining them, and clients the user
//! brings. They are resolved, with the environment, in `Builder::validate`.

use super::Builder;
#[cfg(doc)]
use crate::Layout;
use crate::store::redis::connect::StoreChoice;

impl Builder {
    /// Use the embedded in-memory store, whatever the environment says (see
    /// [`Builder::redis`] for the environment variables read when no store is named).
    pub fn memory(mut self) -> Self {
        self.store = StoreChoice::Memory;
        self
    }

    /// Use the Redis server at `url` instead of the embedded store:
    /// `redis://[[username]:password@]host[:port][/db]`, or `rediss://…` for TLS (rustls,
    /// verifying the server against the system's roots or [`Builder::redis_tls_root_certificate`]).
    /// Nothing connects until the first call.
    ///
    /// When a builder names no store (none of `memory`, `redis`, `redis_cluster` or a
    /// `redis_*` client), the URL comes from the environment: `FNCACHE_REDIS_URL`, else
    /// `REDIS_URL`; the first one set decides, and an empty value means the embedded store.
    /// Without either, the embedded store is used. The last store named wins.
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.store = StoreChoice::Url(url.into());
        self
    }

    /// Use the Redis Cluster reached through these seed nodes (any nodes of the cluster; one
    /// is enough, more help when one is down). Needs [`Layout::Cluster`] or
    /// [`Layout::ClusterPerFunction`]. Redirections (`MOVED`, `ASK`), failovers and script
    /// loading are handled by redis-rs; `len`, `purge` and `vacuum` visit every primary.
    pub fn redis_cluster<I, S>(mut self, seeds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.store = StoreChoice::ClusterUrls(seeds.into_iter().map(Into::into).collect());
        self
    }

    /// Use your own redis-rs client for one server (with its own TLS and auth settings).
    /// The blocking front-end keeps a small pool of its connections; the async one a
    /// `ConnectionManager` made from it.
    pub fn redis_client(mut self, client: redis::Client) -> Self {
        self.store = StoreChoice::Client(Box::new(client));
        self
    }

    /// Use your own redis-rs cluster client (both front-ends). Needs a cluster layout.
    pub fn redis_cluster_client(mut self, client: redis::cluster::ClusterClient) -> Self {
        self.store = StoreChoice::ClusterClient(Box::new(client));
        self
    }

    /// Use your own `ConnectionManager` (async front-end only: [`Builder::build`]). It is
    /// shared with your code and never replaced: it reconnects by itself.
    pub fn redis_connection_manager(mut self, manager: redis::aio::ConnectionManager) -> Self {
        self.store = StoreChoice::Manager(manager);
        self
    }

    /// Use your own r2d2 pool of connections (blocking front-end only:
    /// [`Builder::build_blocking`]); a call waits for a connection as long as the pool says.
    pub fn redis_pool(mut self, pool: r2d2::Pool<redis::Client>) -> Self {
        self.store = StoreChoice::Pool(pool);
        self
    }

    /// The ACL username for a Redis URL (explicit or from the environment), overriding the
    /// URL's; an empty string means none (the `default` user).
    pub fn redis_username(mut self, username: impl Into<String>) -> Self {
        self.connect.username = Some(username.into());
        self
    }

    /// The password for a Redis URL (explicit or from the environment), overriding the URL's;
    /// an empty string means none. Never shown in `Debug`, errors or logs.
    pub fn redis_password(mut self, password: impl Into<String>) -> Self {
        self.connect.password = Some(password.into());
        self
    }

    /// The database for a Redis URL (explicit or from the environment), overriding the URL's
    /// `/db`, including with 0. A cluster only has database 0.
    pub fn redis_database(mut self, database: i64) -> Self {
        self.connect.database = Some(database);
        self
    }

    /// The PEM certificate of the authority that signed the server's certificate, for a
    /// `rediss://` URL whose server the system's roots do not vouch for.
    pub fn redis_tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.connect.root_certificate = Some(pem.into());
        self
    }

    /// A PEM certificate and private key to present to a `rediss://` server that
    /// authenticates clients (mutual TLS).
    pub fn redis_tls_client_certificate(
        mut self,
        certificate_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.connect.client_certificate = Some((certificate_pem.into(), key_pem.into()));
        self
    }
}
