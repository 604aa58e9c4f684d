//! The links of a near cache in `Layout::ClusterPerFunction` on a cluster: every structure has
//! a channel of its own in its own slot (see `near::structure_channel`), and the channels of
//! one node share one connection.
//!
//! A resolver thread learns each new channel (the first lookup of its structure hands it over,
//! without I/O on the call's path), asks the cluster which primary serves its slot, and gives
//! it to that node's thread, started on demand. A node thread holds one RESP3 connection,
//! `SSUBSCRIBE`s the channels it is given, one command each, and opens a channel's gate only
//! when the node confirms that subscription. A channel whose slot moves (the node's
//! `sunsubscribe`) goes down (every copy is dropped, see `Near::link_down`) and back to the
//! resolver, as does one the node does not confirm within [`AWAIT_MAX`] (refused, or its slot
//! gone meanwhile); a connection that fails takes all its channels down and back to the
//! resolver, and its thread ends. A channel that keeps failing is retried after a pause
//! doubling from [`RETRY_FIRST`] to [`RETRY_MAX`].

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::{
    LinkTarget, PING_AFTER, POLL, RETRY_FIRST, RETRY_MAX, TRACKING_CHANNEL, prepare, primary_of,
    slot_of, subscribe,
};
use crate::near::{Gate, Near};

/// How long a subscription may wait for its confirmation before it is tried again.
const AWAIT_MAX: Duration = Duration::from_secs(1);

/// A channel on its way to a node.
pub(super) struct Wanted {
    channel: String,
    gate: Arc<Gate>,
    /// The pause before the next attempt, should this one fail soon.
    retry: Duration,
    /// Not to be tried before.
    not_before: Instant,
}

impl Wanted {
    /// Back to the resolver after a loss: at once after a subscription that held, else after
    /// the pause (doubled for the next time).
    fn again(mut self, held_since: Option<Instant>) -> Wanted {
        if held_since.is_some_and(|t| t.elapsed() >= RETRY_MAX) {
            self.retry = RETRY_FIRST;
            self.not_before = Instant::now();
        } else {
            self.not_before = Instant::now() + self.retry;
            self.retry = (self.retry * 2).min(RETRY_MAX);
        }
        self
    }
}

/// The node threads, by address; a thread removes itself (under the lock) before it ends.
type NodeMap = Mutex<HashMap<(String, u16), Sender<Wanted>>>;

/// Starts the resolver; returns where new channels go.
pub(super) fn start(target: LinkTarget, weak: Weak<Near>, label: String) -> Sender<Wanted> {
    let (to_resolver, inbox) = std::sync::mpsc::channel();
    let back = to_resolver.clone();
    let spawned = std::thread::Builder::new()
        .name("fncache-near".to_owned())
        .spawn(move || resolve(&target, &weak, &label, &inbox, &back));
    if let Err(e) = spawned {
        // No link: no gate ever opens, and every call goes to Redis.
        tracing::warn!(error = %e, "fncache: the near cache's link thread did not start");
    }
    to_resolver
}

/// A channel first looked up, for the resolver.
pub(super) fn wanted(channel: String, gate: Arc<Gate>) -> Wanted {
    Wanted {
        channel,
        gate,
        retry: RETRY_FIRST,
        not_before: Instant::now(),
    }
}

fn resolve(
    target: &LinkTarget,
    weak: &Weak<Near>,
    label: &str,
    inbox: &Receiver<Wanted>,
    back: &Sender<Wanted>,
) {
    let LinkTarget::Cluster { cluster, nodes } = target else {
        return;
    };
    let threads: Arc<NodeMap> = Arc::default();
    let mut waiting: Vec<Wanted> = Vec::new();
    loop {
        if weak.strong_count() == 0 {
            return;
        }
        let wait = waiting
            .iter()
            .map(|w| w.not_before.saturating_duration_since(Instant::now()))
            .min()
            .unwrap_or(POLL)
            .min(POLL);
        match inbox.recv_timeout(wait) {
            Ok(w) => waiting.push(w),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        waiting.extend(inbox.try_iter());
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = waiting.drain(..).partition(|w| w.not_before <= now);
        waiting = later;
        if due.is_empty() {
            continue;
        }
        let slots = cluster.get_connection().and_then(|mut con| {
            redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query::<redis::Value>(&mut con)
        });
        let slots = match slots {
            Ok(slots) => slots,
            Err(e) => {
                tracing::debug!(error = %e, "fncache: the near cache cannot read the cluster's slots");
                waiting.extend(due.into_iter().map(|w| w.again(None)));
                continue;
            }
        };
        for w in due {
            let Some(node) = primary_of(&slots, slot_of(w.channel.as_bytes())) else {
                waiting.push(w.again(None));
                continue;
            };
            let mut map = threads.lock().unwrap_or_else(|e| e.into_inner());
            let sender = match map.get(&node) {
                Some(sender) => sender.clone(),
                None => {
                    let (sender, node_inbox) = std::sync::mpsc::channel();
                    let run = NodeRun {
                        node: node.clone(),
                        weak: weak.clone(),
                        label: label.to_owned(),
                        back: back.clone(),
                        threads: Arc::clone(&threads),
                    };
                    let client = nodes.client(&node.0, node.1);
                    let spawned = std::thread::Builder::new()
                        .name("fncache-near".to_owned())
                        .spawn(move || run.run(client, &node_inbox));
                    if let Err(e) = spawned {
                        tracing::warn!(error = %e, "fncache: a near cache link thread did not start");
                        waiting.push(w.again(None));
                        continue;
                    }
                    map.insert(node.clone(), sender.clone());
                    sender
                }
            };
            // Sent under the lock: a node thread that is ending has removed itself first.
            if let Err(returned) = sender.send(w) {
                map.remove(&node);
                waiting.push(returned.0.again(None));
            }
        }
    }
}

/// What a node thread knows.
struct NodeRun {
    node: (String, u16),
    weak: Weak<Near>,
    label: String,
    back: Sender<Wanted>,
    threads: Arc<NodeMap>,
}

impl NodeRun {
    fn run(self, client: redis::RedisResult<redis::Client>, inbox: &Receiver<Wanted>) {
        let mut held: Vec<(Wanted, Instant)> = Vec::new();
        let mut awaited: VecDeque<(Wanted, Instant)> = VecDeque::new();
        let lost = client
            .and_then(|c| c.get_connection_with_timeout(crate::store::redis::CONNECT_TIMEOUT))
            .and_then(|con| prepare(con, &self.label))
            .and_then(|(con, offset)| self.listen(con, offset, inbox, &mut held, &mut awaited));
        if let Err(e) = lost {
            tracing::debug!(error = %e, node = ?self.node, "fncache: a near cache link to a node lost or not up");
        }
        // Everything this connection held or was asked goes back to the resolver.
        let near = self.weak.upgrade();
        let mut returned: Vec<Wanted> = Vec::new();
        for (w, since) in held {
            if let Some(near) = &near {
                near.link_down(&w.gate);
            }
            returned.push(w.again(Some(since)));
        }
        returned.extend(awaited.into_iter().map(|(w, _)| w.again(None)));
        let mut map = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&self.node);
        returned.extend(inbox.try_iter());
        drop(map);
        for w in returned {
            let _ = self.back.send(w);
        }
    }

    /// Subscribes what it is given and applies what the node sends, until the connection
    /// fails (`Err`) or the near cache is dropped. `awaited`: the subscriptions sent and not
    /// confirmed yet, with when they were sent.
    ///
    /// Only pushes are relied on: redis-rs counts every read that times out as a reply it
    /// must skip later (`recv_response`), so replies that are not pushes (a `PONG`, an error)
    /// may never be seen. Hence the probe of a silent link is a `SUBSCRIBE` of the tracking
    /// channel again (its confirmation is a push), and a subscription not confirmed within
    /// [`AWAIT_MAX`] (refused: `NOPERM`, or `MOVED` when the slot went meanwhile) goes back
    /// to the resolver.
    fn listen(
        &self,
        mut con: redis::Connection,
        offset: i64,
        inbox: &Receiver<Wanted>,
        held: &mut Vec<(Wanted, Instant)>,
        awaited: &mut VecDeque<(Wanted, Instant)>,
    ) -> redis::RedisResult<()> {
        subscribe(&mut con, "SUBSCRIBE", &[TRACKING_CHANNEL])?;
        con.set_read_timeout(Some(POLL))?;
        let mut heard = Instant::now();
        // When a `PING` went out with nothing heard since.
        let mut pinged: Option<Instant> = None;
        loop {
            if self.weak.strong_count() == 0 {
                return Ok(());
            }
            for w in inbox.try_iter() {
                let command = redis::cmd("SSUBSCRIBE")
                    .arg(&w.channel)
                    .get_packed_command();
                // Awaited before it is sent: a send that fails hands it back with the rest.
                awaited.push_back((w, Instant::now()));
                con.send_packed_command(&command)?;
            }
            while awaited
                .front()
                .is_some_and(|(_, sent)| sent.elapsed() >= AWAIT_MAX)
            {
                if let Some((w, _)) = awaited.pop_front() {
                    tracing::debug!(
                        channel = w.channel,
                        "fncache: a near channel's subscription was not confirmed"
                    );
                    let _ = self.back.send(w.again(None));
                }
            }
            let value = match con.recv_response() {
                Ok(value) => value,
                Err(e) if e.is_timeout() => {
                    if pinged.is_some_and(|t| t.elapsed() >= POLL * 2) {
                        return Err(redis::RedisError::from((
                            redis::ErrorKind::Io,
                            "the node did not answer the near link's probe",
                        )));
                    }
                    if pinged.is_none() && heard.elapsed() >= PING_AFTER {
                        let probe = redis::cmd("SUBSCRIBE")
                            .arg(TRACKING_CHANNEL)
                            .get_packed_command();
                        con.send_packed_command(&probe)?;
                        pinged = Some(Instant::now());
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            heard = Instant::now();
            pinged = None;
            let Some(near) = self.weak.upgrade() else {
                return Ok(());
            };
            self.take(&near, value, offset, held, awaited);
        }
    }

    /// One value off the connection: a message, a confirmation, a slot's move, a `PING`'s
    /// answer, or a refused subscription.
    fn take(
        &self,
        near: &Near,
        value: redis::Value,
        offset: i64,
        held: &mut Vec<(Wanted, Instant)>,
        awaited: &mut VecDeque<(Wanted, Instant)>,
    ) {
        use redis::{PushKind, Value};
        let channel_of = |data: &[Value]| match data.first() {
            Some(Value::BulkString(b)) => Some(b.clone()),
            _ => None,
        };
        match value {
            Value::Push {
                kind: PushKind::SMessage,
                data,
            } => match data.get(1) {
                Some(Value::BulkString(payload)) => near.message(Some(payload)),
                _ => near.message(None),
            },
            // A flush (the prefix tracked has no keys), or anything on the tracking channel.
            Value::Push {
                kind: PushKind::Invalidate | PushKind::Message,
                ..
            } => near.message(None),
            Value::Push {
                kind: PushKind::SSubscribe,
                data,
            } => {
                let confirmed = channel_of(&data);
                let at = awaited
                    .iter()
                    .position(|(w, _)| Some(w.channel.as_bytes()) == confirmed.as_deref());
                if let Some((w, _)) = at.and_then(|at| awaited.remove(at)) {
                    near.link_up(&w.gate, offset);
                    held.push((w, Instant::now()));
                }
            }
            Value::Push {
                kind: PushKind::SUnsubscribe,
                data,
            } => {
                // The channel's slot moved: it goes down, and to its new node.
                let channel = channel_of(&data);
                if let Some(at) = held
                    .iter()
                    .position(|(w, _)| Some(w.channel.as_bytes()) == channel.as_deref())
                {
                    let (w, since) = held.swap_remove(at);
                    near.link_down(&w.gate);
                    let _ = self.back.send(w.again(Some(since)));
                }
            }
            // The probe's answer (a `subscribe` push), or a reply seen despite the skipping
            // (a refused subscription is handled by its deadline, see `listen`).
            _ => {}
        }
    }
}
