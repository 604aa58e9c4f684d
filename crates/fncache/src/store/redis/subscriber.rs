//! The invalidation link of a near cache: a connection of its own, subscribed to the cache's
//! channel, on a thread of its own, that drops the copies the scripts announce changed (see
//! `near.rs` and `prelude.lua`).
//!
//! One thread serves both front-ends: the link outlives any runtime (a cache may be built in a
//! `static` and used from several), needs no executor, and costs one mostly sleeping thread and
//! one connection per cache with a near cache, per process.
//!
//! The link is exact while it is up and says so: the near cache serves nothing until the
//! subscription is confirmed, and drops everything the moment a read fails (the connection
//! killed, the server gone or restarted). A silent link (a network partition that leaves the
//! socket open) is found by a `PING` after [`PING_AFTER`] without traffic, answered within
//! [`POLL`] or the link counts as lost. The server's own flush (`FLUSHALL`, `FLUSHDB`), which no
//! script sees, reaches the link through client-side tracking: the link tracks a prefix no key
//! has (`BCAST`, redirected to itself), and Redis tells every tracking client of a flush.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::near::{Near, wall_us};

/// How long a read waits before the thread checks that its cache is still alive.
const POLL: Duration = Duration::from_millis(200);
/// Silence after which the link sends a `PING` to prove it is alive.
const PING_AFTER: Duration = Duration::from_secs(1);
/// Pause between two attempts to connect, doubling up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(20);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// The channel Redis sends tracking invalidations to in RESP2.
const TRACKING_CHANNEL: &str = "__redis__:invalidate";

/// The client name the link gives itself (`CLIENT SETNAME`), so that operators and tests can
/// find it in `CLIENT LIST`: `fncache-near:` and the cache's channel, spaces and newlines
/// (which names may not hold) written as `_`.
pub(crate) fn link_name(channel: &str) -> String {
    let safe: String = channel
        .chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect();
    format!("fncache-near:{safe}")
}

/// Starts the link of `near` to the server of `client`; it ends when the near cache is
/// dropped (the thread holds it weakly).
pub(crate) fn spawn(client: redis::Client, near: &Arc<Near>) {
    let weak = Arc::downgrade(near);
    let spawned = std::thread::Builder::new()
        .name("fncache-near".to_owned())
        .spawn(move || run(&client, &weak));
    if let Err(e) = spawned {
        // No link: the near cache stays down, and every call goes to Redis.
        tracing::warn!(error = %e, "fncache: the near cache's link thread did not start");
    }
}

fn run(client: &redis::Client, weak: &Weak<Near>) {
    let mut retry = RETRY_FIRST;
    loop {
        let Some(near) = weak.upgrade() else { return };
        let channel = near.channel().to_owned();
        drop(near);
        let started = Instant::now();
        let lost = match connect(client, &channel) {
            Ok((mut con, offset)) => listen(&mut con, weak, &channel, offset),
            Err(e) => Err(e),
        };
        let Some(near) = weak.upgrade() else { return };
        near.link_down();
        if let Err(e) = lost {
            tracing::debug!(error = %e, channel, "fncache: near cache link lost or not up");
        }
        drop(near);
        // A link that held a while reconnects at once; one that keeps failing (the server
        // down, or a user that may not subscribe) backs off, never spinning.
        if started.elapsed() >= RETRY_MAX {
            retry = RETRY_FIRST;
        } else {
            std::thread::sleep(retry);
            retry = (retry * 2).min(RETRY_MAX);
        }
    }
}

/// A connection named for the link, tracking flushes, with an upper bound of how far the
/// server's clock is ahead of this process's (microseconds).
fn connect(client: &redis::Client, channel: &str) -> redis::RedisResult<(redis::Connection, i64)> {
    let mut con = client.get_connection_with_timeout(super::CONNECT_TIMEOUT)?;
    con.set_read_timeout(Some(super::RESPONSE_TIMEOUT))?;
    con.set_write_timeout(Some(super::RESPONSE_TIMEOUT))?;
    // The name is for operators (and tests): a user whose ACL forbids CLIENT still gets a link.
    let named = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(link_name(channel))
        .query::<()>(&mut con);
    if let Err(e) = named {
        tracing::debug!(error = %e, channel, "fncache: the near cache link has no name");
    }
    // The server read its clock between the send and the reply: its clock less this
    // process's at the send bounds the offset from above.
    let sent = wall_us();
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query(&mut con)?;
    let offset = secs
        .saturating_mul(1_000_000)
        .saturating_add(micros)
        .saturating_sub(sent);
    // Flushes: track a prefix that no key has, redirected to this connection (RESP2 tracking
    // messages come on the tracking channel, subscribed below). A server or user that refuses
    // tracking leaves flushes unseen until the copies' near TTL: said in the README.
    let tracked = redis::cmd("CLIENT")
        .arg("ID")
        .query::<i64>(&mut con)
        .and_then(|id| {
            redis::cmd("CLIENT")
                .arg("TRACKING")
                .arg("ON")
                .arg("REDIRECT")
                .arg(id)
                .arg("BCAST")
                .arg("PREFIX")
                .arg(format!("{channel}:flush-sentinel:"))
                .query::<redis::Value>(&mut con)
        })
        .and_then(redis::Value::extract_error);
    if let Err(e) = tracked {
        tracing::debug!(error = %e, channel, "fncache: the near cache link cannot see flushes");
    }
    Ok((con, offset))
}

/// Subscribes to `channels`, and makes sure the server agreed: one confirmation per channel,
/// in order. (redis-rs's `PubSub::subscribe` takes a refusal, such as an ACL's `NOPERM`, for
/// an answer: a link that believed it was subscribed would keep copies nobody invalidates.)
fn subscribe(con: &mut redis::Connection, channels: &[&str]) -> redis::RedisResult<()> {
    con.send_packed_command(&redis::cmd("SUBSCRIBE").arg(channels).get_packed_command())?;
    for channel in channels {
        let confirmed = match con.recv_response()?.extract_error()? {
            redis::Value::Array(parts) => {
                matches!(parts.first(), Some(redis::Value::BulkString(kind)) if kind == b"subscribe")
                    && matches!(parts.get(1), Some(redis::Value::BulkString(c)) if c == channel.as_bytes())
            }
            redis::Value::Push { kind, data } => {
                kind == redis::PushKind::Subscribe
                    && matches!(data.first(), Some(redis::Value::BulkString(c)) if c == channel.as_bytes())
            }
            _ => false,
        };
        if !confirmed {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "the server did not confirm the near cache's subscription",
                (*channel).to_owned(),
            )));
        }
    }
    Ok(())
}

/// Subscribes and applies messages until the link fails (`Err`) or the near cache is dropped.
fn listen(
    con: &mut redis::Connection,
    weak: &Weak<Near>,
    channel: &str,
    offset: i64,
) -> redis::RedisResult<()> {
    // RESP3 delivers tracking invalidations as pushes, which `PubSub::get_message` skips:
    // they are read off this channel after each wait instead.
    let (pushes, tracked) = std::sync::mpsc::channel();
    con.set_push_sender(pushes);
    subscribe(con, &[channel, TRACKING_CHANNEL])?;
    let mut pubsub = con.as_pubsub();
    match weak.upgrade() {
        Some(near) => near.link_up(offset),
        None => return Ok(()),
    }
    pubsub.set_read_timeout(Some(POLL))?;
    let mut heard = Instant::now();
    loop {
        let got = pubsub.get_message();
        if tracked
            .try_iter()
            .any(|push| push.kind == redis::PushKind::Invalidate)
        {
            // A flush (the prefix tracked has no keys).
            match weak.upgrade() {
                Some(near) => near.message(None),
                None => return Ok(()),
            }
        }
        match got {
            Ok(msg) => {
                heard = Instant::now();
                let Some(near) = weak.upgrade() else {
                    return Ok(());
                };
                if msg.get_channel_name() == TRACKING_CHANNEL {
                    // Keys of the sentinel prefix never exist: only a flush (a nil payload)
                    // comes here, but anything that does resets.
                    near.message(None);
                } else {
                    near.message(Some(msg.get_payload_bytes()));
                }
            }
            Err(e) if e.is_timeout() => {
                if weak.strong_count() == 0 {
                    return Ok(());
                }
                if heard.elapsed() >= PING_AFTER {
                    pubsub.ping::<redis::Value>()?;
                    heard = Instant::now();
                }
            }
            Err(e) => return Err(e),
        }
    }
}
