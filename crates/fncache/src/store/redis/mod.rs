//! The Redis store: pure request planning ([`plan`]) and two thin drivers that send the
//! planned requests, one blocking and one async.

pub(crate) mod plan;

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use self::plan::{Plan, Request, Step};
use crate::error::Error;
use crate::store::{StoreOp, StoreReply, StoreSettings};

/// How long establishing a connection may take, at most (a call's op timeout may be shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one request may wait for its reply inside the async connection manager (calls
/// bound each op by their own op timeout on top).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle blocking connections kept for reuse.
const MAX_IDLE: usize = 64;

/// Where a Redis-backed cache connects, with credentials kept out of `Debug`.
#[derive(Clone)]
pub(crate) struct RedisTarget {
    client: redis::Client,
    redacted: String,
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RedisTarget").field(&self.redacted).finish()
    }
}

impl RedisTarget {
    /// Validates a URL without connecting.
    pub(crate) fn open(url: &str) -> Result<RedisTarget, Error> {
        let redacted = redact_url(url);
        let client = redis::Client::open(url).map_err(|e| {
            // The redis error may quote the URL: report only its kind with our redacted copy.
            Error::config(format!("invalid Redis URL `{redacted}` ({:?})", e.kind()))
        })?;
        Ok(RedisTarget { client, redacted })
    }
}

/// The blocking driver: a small pool of synchronous connections, no runtime needed.
#[derive(Debug)]
pub(crate) struct BlockingRedis {
    target: RedisTarget,
    idle: Mutex<Vec<Pooled>>,
}

/// A pooled connection, with the read/write timeout it is set to (its `Debug` says nothing
/// about the server's credentials).
struct Pooled(redis::Connection, Option<Duration>);

impl fmt::Debug for Pooled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Connection")
    }
}

impl BlockingRedis {
    pub(crate) fn new(target: RedisTarget) -> BlockingRedis {
        BlockingRedis {
            target,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Runs one store op to completion.
    /// Runs one store op to completion, each request bounded by `timeout`.
    pub(crate) fn run(
        &self,
        op: StoreOp,
        settings: &StoreSettings,
        timeout: Duration,
    ) -> Result<StoreReply, Error> {
        let mut con = self.checkout(timeout)?;
        if con.1 != Some(timeout) {
            con.0
                .set_read_timeout(Some(timeout))
                .and_then(|()| con.0.set_write_timeout(Some(timeout)))
                .map_err(Error::from_redis)?;
            con.1 = Some(timeout);
        }
        let mut plan = Plan::new(op, settings);
        let mut reply = None;
        let mut healthy = true;
        let result = loop {
            let request = match plan.step(reply.take()) {
                Ok(Step::Send(request)) => request,
                Ok(Step::Done(out)) => break Ok(out),
                Err(e) => break Err(e),
            };
            match send_blocking(&mut con.0, &request) {
                // The connection is in an unknown state: drop it and fail this op.
                Err(e) if !is_reusable_after(&e) => {
                    healthy = false;
                    break Err(Error::from_redis(e));
                }
                sent => reply = Some(sent),
            }
        };
        if healthy {
            self.checkin(con);
        }
        result
    }

    fn checkout(&self, timeout: Duration) -> Result<Pooled, Error> {
        if let Some(con) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(con);
        }
        let con = self
            .target
            .client
            .get_connection_with_timeout(timeout.min(CONNECT_TIMEOUT))
            .map_err(Error::from_redis)?;
        Ok(Pooled(con, None))
    }

    fn checkin(&self, con: Pooled) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(con);
        }
    }
}

fn send_blocking(con: &mut redis::Connection, request: &Request) -> redis::RedisResult<Value> {
    match request {
        Request::Script(invocation) => invocation.invoke(con),
        Request::Cmd(cmd) => cmd.query(con),
        Request::Pipe(pipe) => pipe.query(con),
    }
}

/// A connection that saw this error can serve the next request (the server answered).
fn is_reusable_after(e: &redis::RedisError) -> bool {
    !(e.is_unrecoverable_error() || e.is_timeout() || e.is_io_error() || e.is_connection_dropped())
}

/// The async driver: a redis-rs `ConnectionManager` (multiplexed, reconnecting), created on
/// first use inside the caller's runtime so a cache can be built outside any runtime.
#[derive(Debug)]
pub(crate) struct AsyncRedis {
    target: RedisTarget,
    manager: Mutex<Option<ConnectionManager>>,
}

impl AsyncRedis {
    pub(crate) fn new(target: RedisTarget) -> AsyncRedis {
        AsyncRedis {
            target,
            manager: Mutex::new(None),
        }
    }

    /// Runs one store op to completion within `timeout` (a late op is dropped; the
    /// multiplexed connection discards its reply).
    pub(crate) async fn run(
        &self,
        op: StoreOp,
        settings: &StoreSettings,
        timeout: Duration,
    ) -> Result<StoreReply, Error> {
        match tokio::time::timeout(timeout, self.run_unbounded(op, settings)).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                crate::ErrorKind::Backend,
                format!("the backend did not answer within the op timeout ({timeout:?})"),
            )),
        }
    }

    async fn run_unbounded(
        &self,
        op: StoreOp,
        settings: &StoreSettings,
    ) -> Result<StoreReply, Error> {
        let mut con = self.manager()?;
        let mut plan = Plan::new(op, settings);
        let mut reply = None;
        loop {
            match plan.step(reply.take())? {
                Step::Done(out) => return Ok(out),
                Step::Send(request) => {
                    let sent = match &request {
                        Request::Script(invocation) => invocation.invoke_async(&mut con).await,
                        Request::Cmd(cmd) => cmd.query_async(&mut con).await,
                        Request::Pipe(pipe) => pipe.query_async(&mut con).await,
                    };
                    match sent {
                        // The manager reconnects by itself, but it is bound to the runtime that
                        // created it: start afresh in the current one, and fail this op.
                        Err(e) if !is_reusable_after(&e) => {
                            self.reset();
                            return Err(Error::from_redis(e));
                        }
                        sent => reply = Some(sent),
                    }
                }
            }
        }
    }

    fn manager(&self) -> Result<ConnectionManager, Error> {
        let mut slot = self.manager.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(manager) = slot.as_ref() {
            return Ok(manager.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1);
        let manager = ConnectionManager::new_lazy_with_config(self.target.client.clone(), config)
            .map_err(Error::from_redis)?;
        *slot = Some(manager.clone());
        Ok(manager)
    }

    fn reset(&self) {
        *self.manager.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Replaces the password (and any `password`/`pass` query value) of a URL with `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let (without_query, query) = match url.split_once('?') {
        Some((head, q)) => (head, Some(q)),
        None => (url, None),
    };
    let mut out = match without_query.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                    let masked = if userinfo.contains(':') {
                        format!("{user}:***")
                    } else {
                        // `redis://secret@host`: redis-rs reads a lone userinfo as a password.
                        "***".to_owned()
                    };
                    format!("{scheme}://{masked}@{host}{path}")
                }
                None => without_query.to_owned(),
            }
        }
        None => without_query.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if matches!(k, "password" | "pass") => format!("{k}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("redis://u:s3cret@h:6379/0"),
            "redis://u:***@h:6379/0"
        );
        assert_eq!(redact_url("rediss://:s3cret@h"), "rediss://:***@h");
        assert_eq!(redact_url("redis://s3cret@h/"), "redis://***@h/");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(
            redact_url("redis+unix:///tmp/r.sock?db=1&pass=s3cret"),
            "redis+unix:///tmp/r.sock?db=1&pass=***"
        );
    }

    #[test]
    fn an_invalid_url_is_a_config_error_without_the_secret() {
        let err = RedisTarget::open("nope://u:s3cret@h").unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Config);
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let target = RedisTarget::open("redis://u:s3cret@127.0.0.1:1/").unwrap();
        assert!(!format!("{target:?}").contains("s3cret"));
    }
}
