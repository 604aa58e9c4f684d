//! Test support for fncache: throwaway `redis-server` processes.
//!
//! Every test binary (or every test that needs isolation) spawns its own server on a free
//! loopback port, with persistence disabled (`--save ""`, no AOF) and a private temporary
//! working directory. The server is killed when the [`RedisServer`] handle is dropped, so a
//! failing test never leaves a server behind. [`RedisServer::spawn_tls`] starts a TLS-only
//! server with certificates generated on the spot; [`RedisCluster::spawn`] a six-node cluster.
//!
//! A missing `redis-server` binary is a loud failure with an install hint, never a silent skip:
//! a test that quietly passes without Redis would be a test that asserts nothing.

// Test support fails loudly: a panic with an install hint is the intended outcome.
#![allow(clippy::panic)]

mod cluster;
mod tls;

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub use cluster::RedisCluster;
pub use tls::TlsMaterial;

/// How long a freshly spawned server has to answer `PING` before the spawn is declared failed.
const STARTUP_DEADLINE: Duration = Duration::from_secs(10);

/// Name of the environment variable that points at a `redis-server` binary other than the one
/// on `PATH`.
pub const REDIS_SERVER_ENV: &str = "FNCACHE_REDIS_SERVER";

/// Name of the environment variable that points at a `redis-cli` binary (used to create
/// clusters). Without it, `redis-cli` next to `$FNCACHE_REDIS_SERVER`, else on `PATH`.
pub const REDIS_CLI_ENV: &str = "FNCACHE_REDIS_CLI";

/// How to install what the tests need, for failure messages.
const INSTALL_HINT: &str = "The fncache tests need a real Redis server: install it with \
    `apt-get install -y redis-server redis-tools` (Debian/Ubuntu), `brew install redis` (macOS), \
    or point FNCACHE_REDIS_SERVER (and FNCACHE_REDIS_CLI) at the binaries. `./scripts/test` \
    installs them for you where apt exists.";

/// A `redis-server` process owned by a test, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    tls: Option<TlsMaterial>,
    // Kept alive so the server's working directory outlives the process.
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Spawns a server on a free loopback port and waits until it answers `PING`.
    ///
    /// # Panics
    /// Panics (this is test support) when `redis-server` is not installed or does not come up,
    /// with a message that says how to install it.
    pub fn spawn() -> Self {
        Self::spawn_with(None)
    }

    /// Spawns a server that speaks only TLS (`--port 0 --tls-port <port>`), with a fresh
    /// certificate authority and a server certificate for `127.0.0.1` and `localhost` written
    /// to its temporary directory. Clients may present a certificate signed by the same
    /// authority ([`TlsMaterial::client_cert_pem`]) but need not (`tls-auth-clients optional`).
    ///
    /// # Panics
    /// As [`RedisServer::spawn`], and when `redis-server` was built without TLS.
    pub fn spawn_tls() -> Self {
        Self::spawn_with(Some(TlsMaterial::generate()))
    }

    fn spawn_with(tls: Option<TlsMaterial>) -> Self {
        let mut dir = temp_dir();
        if let Some(tls) = &tls {
            tls.write_to(dir.path());
        }
        // Another process may grab the free port before redis-server binds it; retry then.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut server = RedisServer {
                port,
                child: None,
                tls: tls.clone(),
                dir,
            };
            match server.start() {
                Ok(()) => return server,
                Err(e) => {
                    last_error = e;
                    dir = server.take_dir();
                }
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    fn take_dir(mut self) -> tempfile::TempDir {
        self.kill();
        std::mem::replace(&mut self.dir, temp_dir())
    }

    fn start(&mut self) -> Result<(), String> {
        self.kill();
        let mut args = vec![];
        match &self.tls {
            None => args.extend(["--port".to_owned(), self.port.to_string()]),
            Some(_) => {
                let file = |name: &str| self.dir.path().join(name).display().to_string();
                args.extend([
                    "--port".to_owned(),
                    "0".to_owned(),
                    "--tls-port".to_owned(),
                    self.port.to_string(),
                    "--tls-cert-file".to_owned(),
                    file(tls::SERVER_CERT),
                    "--tls-key-file".to_owned(),
                    file(tls::SERVER_KEY),
                    "--tls-ca-cert-file".to_owned(),
                    file(tls::CA_CERT),
                    "--tls-auth-clients".to_owned(),
                    "optional".to_owned(),
                ]);
            }
        }
        let mut child = start_process(&args, self.dir.path(), self.port)?;
        match wait_ready(&self.client(), self.port, &mut child) {
            Ok(()) => {
                self.child = Some(child);
                Ok(())
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A URL for this server: `redis://127.0.0.1:<port>/`, or `rediss://…` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// The certificates of a TLS server.
    pub fn tls(&self) -> Option<&TlsMaterial> {
        self.tls.as_ref()
    }

    /// A redis-rs client for this server (trusting its authority when it speaks TLS), for
    /// inspecting or tampering with its keys in tests.
    pub fn client(&self) -> redis::Client {
        match &self.tls {
            None => redis::Client::open(self.url()),
            Some(tls) => redis::Client::build_with_tls(
                self.url(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(tls.ca_cert_pem.clone().into_bytes()),
                },
            ),
        }
        .unwrap_or_else(|e| panic!("bad test URL: {e}"))
    }

    /// A synchronous connection to this server.
    pub fn connection(&self) -> redis::Connection {
        self.client()
            .get_connection()
            .unwrap_or_else(|e| panic!("cannot connect to test redis on {}: {e}", self.port))
    }

    /// Creates (or resets) the ACL user `name` with `password` and the given ACL rules, as in
    /// `ACL SETUSER name reset on >password <rules...>`; for example `["~*", "+@all"]`.
    pub fn add_acl_user(&self, name: &str, password: &str, rules: &[&str]) {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER")
            .arg(name)
            .arg("reset")
            .arg("on")
            .arg(format!(">{password}"));
        for rule in rules {
            cmd.arg(*rule);
        }
        let _: () = cmd
            .query(&mut self.connection())
            .unwrap_or_else(|e| panic!("ACL SETUSER {name} {rules:?} failed: {e}"));
    }

    /// Stops the server process (as a crash would), keeping the port reserved for
    /// [`RedisServer::restart`].
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts the server again on the same port after [`RedisServer::stop`]. The data is gone:
    /// persistence is off.
    pub fn restart(&mut self) {
        self.start()
            .unwrap_or_else(|e| panic!("redis-server did not restart: {e}"));
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `PING` until the server answers, the process dies, or the deadline passes.
fn wait_ready(client: &redis::Client, port: u16, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("redis-server on port {port} exited with {status}"));
        }
        let pong = client
            .get_connection_with_timeout(Duration::from_millis(200))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        if matches!(pong.as_deref(), Ok("PONG")) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no PONG on port {port} within {STARTUP_DEADLINE:?} (last: {pong:?})"
            ));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The `redis-server` binary to run: `$FNCACHE_REDIS_SERVER` or `redis-server` on `PATH`.
pub fn redis_server_binary() -> String {
    std::env::var(REDIS_SERVER_ENV).unwrap_or_else(|_| "redis-server".to_owned())
}

/// The `redis-cli` binary to run: `$FNCACHE_REDIS_CLI`, else the `redis-cli` next to
/// `$FNCACHE_REDIS_SERVER`, else `redis-cli` on `PATH`.
pub fn redis_cli_binary() -> String {
    if let Ok(cli) = std::env::var(REDIS_CLI_ENV) {
        return cli;
    }
    if let Ok(server) = std::env::var(REDIS_SERVER_ENV)
        && let Some(dir) = Path::new(&server).parent()
        && dir.join("redis-cli").is_file()
    {
        return dir.join("redis-cli").display().to_string();
    }
    "redis-cli".to_owned()
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"))
}

/// Starts `redis-server` with the common options and `args`; `port` names its log file.
fn start_process(args: &[String], dir: &Path, port: u16) -> Result<Child, String> {
    let binary = redis_server_binary();
    Command::new(&binary)
        .args(args)
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .args(["--protected-mode", "yes"])
        .args(["--loglevel", "warning"])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(dir.join(format!("redis-{port}.log")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run `{binary}` ({e}). {INSTALL_HINT}"))
}

/// A port that was free a moment ago. The OS picks it; we release it for redis-server to bind.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawns_answers_and_dies_on_drop() {
        let server = RedisServer::spawn();
        let mut con = server.connection();
        let pong: String = redis::cmd("PING").query(&mut con).unwrap();
        assert_eq!(pong, "PONG");
        let port = server.port();
        drop(server);
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
        assert!(
            client
                .get_connection_with_timeout(Duration::from_millis(200))
                .is_err()
        );
    }

    #[test]
    fn restart_keeps_the_port_and_loses_data() {
        let mut server = RedisServer::spawn();
        let mut con = server.connection();
        let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
        server.stop();
        server.restart();
        let mut con = server.connection();
        let v: Option<String> = redis::cmd("GET").arg("k").query(&mut con).unwrap();
        assert_eq!(v, None);
    }

    #[test]
    fn a_tls_server_speaks_only_tls() {
        let server = RedisServer::spawn_tls();
        assert!(server.url().starts_with("rediss://127.0.0.1:"));
        let pong: String = redis::cmd("PING").query(&mut server.connection()).unwrap();
        assert_eq!(pong, "PONG");
        // Plain TCP on the same port gets no answer.
        let plain = redis::Client::open(format!("redis://127.0.0.1:{}/", server.port()))
            .unwrap()
            .get_connection_with_timeout(Duration::from_millis(500))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        assert!(plain.is_err(), "{plain:?}");
    }

    #[test]
    fn acl_users_get_exactly_their_rules() {
        let server = RedisServer::spawn();
        server.add_acl_user("reader", "pw", &["~*", "+@read", "+ping"]);
        let mut con =
            redis::Client::open(format!("redis://reader:pw@127.0.0.1:{}/", server.port()))
                .unwrap()
                .get_connection()
                .unwrap();
        let v: Option<String> = redis::cmd("GET").arg("k").query(&mut con).unwrap();
        assert_eq!(v, None);
        let denied = redis::cmd("SET").arg("k").arg("v").query::<()>(&mut con);
        assert_eq!(denied.unwrap_err().code(), Some("NOPERM"));
    }
}
