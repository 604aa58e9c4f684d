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
//!
//! On a cluster (`Layout::Cluster`: the channel has the structure's hash tag) the link uses
//! sharded pub/sub on the primary of that slot, whose scripts `SPUBLISH` there: it asks the
//! cluster which node serves the slot, connects to it with the seeds' credentials over RESP3,
//! and `SSUBSCRIBE`s. A slot that moves (a migration, a failover that demotes the node) ends
//! the subscription with an `sunsubscribe` push, and a dead node ends the connection: either is
//! a lost link, and the link finds the slot's new node.
//!
//! In `Layout::ClusterPerFunction` every structure has a channel of its own, with the
//! structure's hash tag (see `near::structure_channel`), so the scripts' `SPUBLISH` stays in the
//! slot of the keys they touch: the channels of one node share a connection (see `per_node`).

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::near::{Gate, Near, wall_us};

mod per_node;

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

/// Where a link connects.
pub(crate) enum LinkTarget {
    /// One server.
    Server(Box<redis::Client>),
    /// The node of a cluster that serves the channel's slot.
    Cluster {
        cluster: Box<redis::cluster::ClusterClient>,
        nodes: Arc<super::connect::NodeTemplate>,
    },
}

/// Starts the link of `near`; it ends when the near cache is dropped (the thread holds it
/// weakly).
/// With a channel per structure, the links start as the structures are first looked up.
pub(crate) fn spawn(target: LinkTarget, near: &Arc<Near>) {
    let weak = Arc::downgrade(near);
    match near.channel() {
        Some((channel, gate)) => start(target, weak, channel.to_owned(), Arc::clone(gate)),
        None => {
            let resolver = per_node::start(target, weak, near.label().to_owned());
            near.set_spawner(Box::new(move |channel, gate| {
                // A resolver that ended (the cache is being dropped) leaves the gate down.
                let _ = resolver.send(per_node::wanted(channel, gate));
            }));
        }
    }
}

/// Starts the link of `channel`, whose subscription `gate` says is up.
fn start(target: LinkTarget, weak: Weak<Near>, channel: String, gate: Arc<Gate>) {
    let spawned = std::thread::Builder::new()
        .name("fncache-near".to_owned())
        .spawn(move || run(&target, &weak, &channel, &gate));
    if let Err(e) = spawned {
        // No link: the near cache stays down, and every call goes to Redis.
        tracing::warn!(error = %e, "fncache: the near cache's link thread did not start");
    }
}

fn run(target: &LinkTarget, weak: &Weak<Near>, channel: &str, gate: &Gate) {
    let mut retry = RETRY_FIRST;
    loop {
        if weak.strong_count() == 0 {
            return;
        }
        let started = Instant::now();
        let sharded = matches!(target, LinkTarget::Cluster { .. });
        let lost = match open(target, channel).and_then(|con| prepare(con, channel)) {
            Ok((mut con, offset)) => listen(&mut con, weak, (channel, gate), offset, sharded),
            Err(e) => Err(e),
        };
        let Some(near) = weak.upgrade() else { return };
        near.link_down(gate);
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

/// A connection to the server, or to the cluster node that serves `channel`'s slot.
fn open(target: &LinkTarget, channel: &str) -> redis::RedisResult<redis::Connection> {
    let client = match target {
        LinkTarget::Server(client) => (**client).clone(),
        LinkTarget::Cluster { cluster, nodes } => {
            let mut con = cluster.get_connection()?;
            let slots: redis::Value = redis::cmd("CLUSTER").arg("SLOTS").query(&mut con)?;
            let (host, port) =
                primary_of(&slots, slot_of(channel.as_bytes())).ok_or_else(|| {
                    redis::RedisError::from((
                        redis::ErrorKind::Client,
                        "no primary serves the near channel's slot",
                        channel.to_owned(),
                    ))
                })?;
            nodes.client(&host, port)?
        }
    };
    client.get_connection_with_timeout(super::CONNECT_TIMEOUT)
}

/// The hash slot of `key` (CRC16/XMODEM of its hash tag, or of the whole key, mod 16384).
fn slot_of(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    let mut crc: u16 = 0;
    for &byte in tagged {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// The address of the primary serving `slot`, from a `CLUSTER SLOTS` reply.
fn primary_of(slots: &redis::Value, slot: u16) -> Option<(String, u16)> {
    let redis::Value::Array(ranges) = slots else {
        return None;
    };
    ranges.iter().find_map(|range| {
        let redis::Value::Array(parts) = range else {
            return None;
        };
        let bound = |at: usize| match parts.get(at) {
            Some(redis::Value::Int(n)) => u16::try_from(*n).ok(),
            _ => None,
        };
        if !(bound(0)? <= slot && slot <= bound(1)?) {
            return None;
        }
        let Some(redis::Value::Array(node)) = parts.get(2) else {
            return None;
        };
        let host = match node.first() {
            Some(redis::Value::BulkString(host)) => String::from_utf8(host.clone()).ok()?,
            Some(redis::Value::SimpleString(host)) => host.clone(),
            _ => return None,
        };
        let port = match node.get(1) {
            Some(redis::Value::Int(port)) => u16::try_from(*port).ok()?,
            _ => return None,
        };
        Some((host, port))
    })
}

/// The connection named for the link, tracking flushes, with an upper bound of how far the
/// server's clock is ahead of this process's (microseconds).
fn prepare(
    mut con: redis::Connection,
    channel: &str,
) -> redis::RedisResult<(redis::Connection, i64)> {
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
fn subscribe(
    con: &mut redis::Connection,
    command: &str,
    channels: &[&str],
) -> redis::RedisResult<()> {
    let (word, push_kind) = if command == "SSUBSCRIBE" {
        (&b"ssubscribe"[..], redis::PushKind::SSubscribe)
    } else {
        (&b"subscribe"[..], redis::PushKind::Subscribe)
    };
    con.send_packed_command(&redis::cmd(command).arg(channels).get_packed_command())?;
    for channel in channels {
        let confirmed = match con.recv_response()?.extract_error()? {
            redis::Value::Array(parts) => {
                matches!(parts.first(), Some(redis::Value::BulkString(kind)) if kind == word)
                    && matches!(parts.get(1), Some(redis::Value::BulkString(c)) if c == channel.as_bytes())
            }
            redis::Value::Push { kind, data } => {
                kind == push_kind
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
    (channel, gate): (&str, &Gate),
    offset: i64,
    sharded: bool,
) -> redis::RedisResult<()> {
    // RESP3 delivers tracking invalidations as pushes, which `PubSub::get_message` skips:
    // they are read off this channel after each wait instead.
    let (pushes, tracked) = std::sync::mpsc::channel();
    con.set_push_sender(pushes);
    if sharded {
        subscribe(con, "SSUBSCRIBE", &[channel])?;
        subscribe(con, "SUBSCRIBE", &[TRACKING_CHANNEL])?;
    } else {
        subscribe(con, "SUBSCRIBE", &[channel, TRACKING_CHANNEL])?;
    }
    let mut pubsub = con.as_pubsub();
    match weak.upgrade() {
        Some(near) => near.link_up(gate, offset),
        None => return Ok(()),
    }
    pubsub.set_read_timeout(Some(POLL))?;
    let mut heard = Instant::now();
    loop {
        let got = pubsub.get_message();
        let (mut flushed, mut moved) = (false, false);
        for push in tracked.try_iter() {
            // A flush (the prefix tracked has no keys); the channel's slot gone elsewhere.
            flushed |= push.kind == redis::PushKind::Invalidate;
            moved |= push.kind == redis::PushKind::SUnsubscribe;
        }
        if moved {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "the near channel's slot moved",
            )));
        }
        if flushed {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_the_clusters() {
        // As `CLUSTER KEYSLOT` answers.
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"somekey"), 11058);
        assert_eq!(slot_of(b"{user1000}.following"), slot_of(b"user1000"));
        assert_eq!(slot_of(b"a{foo}b"), 12182, "the tag");
        assert_ne!(slot_of(b"{}foo"), 12182, "an empty tag: the whole key");
    }

    #[test]
    fn the_primary_of_a_slot_is_read_off_cluster_slots() {
        use redis::Value::{Array, BulkString, Int};
        let node = |port| {
            Array(vec![
                BulkString(b"127.0.0.1".to_vec()),
                Int(port),
                BulkString(b"id".to_vec()),
            ])
        };
        let slots = Array(vec![
            Array(vec![Int(0), Int(5460), node(7000), node(7003)]),
            Array(vec![Int(5461), Int(16383), node(7001)]),
        ]);
        assert_eq!(primary_of(&slots, 0), Some(("127.0.0.1".to_owned(), 7000)));
        assert_eq!(
            primary_of(&slots, 12182),
            Some(("127.0.0.1".to_owned(), 7001))
        );
        assert_eq!(primary_of(&Array(vec![]), 1), None);
    }
}
