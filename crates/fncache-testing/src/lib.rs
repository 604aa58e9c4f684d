//! Test support for fncache: throwaway `redis-server` processes.
//!
//! Every test binary (or every test that needs isolation) spawns its own server on a free
//! loopback port, with persistence disabled (`--save ""`, no AOF) and a private temporary
//! working directory. The server is killed when the [`RedisServer`] handle is dropped, so a
//! failing test never leaves a server behind.
//!
//! A missing `redis-server` binary is a loud failure with an install hint, never a silent skip:
//! a test that quietly passes without Redis would be a test that asserts nothing.

// Test support fails loudly: a panic with an install hint is the intended outcome.
#![allow(clippy::panic)]

use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long a freshly spawned server has to answer `PING` before the spawn is declared failed.
const STARTUP_DEADLINE: Duration = Duration::from_secs(10);

/// Name of the environment variable that points at a `redis-server` binary other than the one
/// on `PATH`.
pub const REDIS_SERVER_ENV: &str = "FNCACHE_REDIS_SERVER";

/// A `redis-server` process owned by a test, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
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
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
        // Another process may grab the free port before redis-server binds it; retry then.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut child = start_process(port, &dir).unwrap_or_else(|e| panic!("{e}"));
            match wait_ready(port, &mut child) {
                Ok(()) => {
                    return RedisServer {
                        port,
                        child: Some(child),
                        dir,
                    };
                }
                Err(e) => {
                    last_error = e;
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `redis://` URL for this server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// A redis-rs client for this server, for inspecting or tampering with its keys in tests.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).unwrap_or_else(|e| panic!("bad test URL: {e}"))
    }

    /// A synchronous connection to this server.
    pub fn connection(&self) -> redis::Connection {
        self.client()
            .get_connection()
            .unwrap_or_else(|e| panic!("cannot connect to test redis on {}: {e}", self.port))
    }

    /// Stops the server process (as a crash would), keeping the port reserved for
    /// [`RedisServer::restart`].
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts the server again on the same port after [`RedisServer::stop`]. The data is gone:
    /// persistence is off.
    pub fn restart(&mut self) {
        self.kill();
        let mut child = start_process(self.port, &self.dir).unwrap_or_else(|e| panic!("{e}"));
        wait_ready(self.port, &mut child)
            .unwrap_or_else(|e| panic!("redis-server did not restart: {e}"));
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `PING` until the server answers, the process dies, or the deadline passes.
fn wait_ready(port: u16, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + STARTUP_DEADLINE;
    let url = format!("redis://127.0.0.1:{port}/");
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("redis-server on port {port} exited with {status}"));
        }
        let pong = redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        if matches!(pong.as_deref(), Ok("PONG")) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no PONG on port {port} within {STARTUP_DEADLINE:?}"
            ));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `redis-server` binary to run: `$FNCACHE_REDIS_SERVER` or `redis-server` on `PATH`.
pub fn redis_server_binary() -> String {
    std::env::var(REDIS_SERVER_ENV).unwrap_or_else(|_| "redis-server".to_owned())
}

fn start_process(port: u16, dir: &tempfile::TempDir) -> Result<Child, String> {
    let binary = redis_server_binary();
    Command::new(&binary)
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .args(["--protected-mode", "yes"])
        .args(["--loglevel", "warning"])
        .arg("--dir")
        .arg(dir.path())
        .arg("--logfile")
        .arg(dir.path().join(format!("redis-{port}.log")))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "cannot run `{binary}` ({e}). The fncache tests need a real Redis server: \
                 install it with `apt-get install -y redis-server` (Debian/Ubuntu), \
                 `brew install redis` (macOS), or point {REDIS_SERVER_ENV} at a redis-server \
                 binary. `./scripts/test` installs it for you where apt exists."
            )
        })
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
}
