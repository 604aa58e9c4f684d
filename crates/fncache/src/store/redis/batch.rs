//! Several store ops sent together: the plans of a batch, driven in rounds, each round's
//! requests packed into one pipeline (one round trip).
//!
//! A batch's ops all touch one structure (a batch is of one function, and every layout keeps
//! one function's entries in one structure, of one hash slot on a cluster), so one pipeline
//! per round is one round trip per structure, and on a cluster it goes to one node. Like
//! [`Plan`], this is pure: the drivers send the requests of [`Many::round`] and feed the
//! replies to [`Many::feed`].

use redis::Value;

use std::time::Duration;

use super::plan::{Plan, Request, Step};
use super::script::is_noscript;
use super::{AsyncRedis, BlockingRedis, is_reusable_after, topology};
use crate::error::Error;
use crate::store::{StoreOp, StoreReply, StoreSettings};

/// One op of the batch.
#[derive(Debug)]
struct Slot {
    plan: Plan,
    /// What the driver keeps for this plan (the structure whose TTL a lookup renews).
    renewing: Option<String>,
    /// The request to send next (kept while it is in a pipeline, to send again alone when
    /// the server answers `NOSCRIPT`).
    request: Option<Request>,
    /// The request goes alone next time (its script must be loaded first).
    alone: bool,
    out: Option<Result<StoreReply, Error>>,
}

/// How a request of the current round was sent.
#[derive(Debug)]
enum Sent {
    /// In the round's pipeline, for these slots, in order.
    Piped(Vec<usize>),
    /// Alone, for this slot.
    Alone(usize),
}

/// The plans of several ops, advanced together.
#[derive(Debug)]
pub(crate) struct Many {
    slots: Vec<Slot>,
    sent: Vec<Sent>,
}

impl Many {
    /// Starts every plan (with what the driver keeps for it).
    pub(crate) fn new(plans: Vec<(Plan, Option<String>)>) -> Many {
        let mut many = Many {
            slots: plans
                .into_iter()
                .map(|(plan, renewing)| Slot {
                    plan,
                    renewing,
                    request: None,
                    alone: false,
                    out: None,
                })
                .collect(),
            sent: Vec::new(),
        };
        for i in 0..many.slots.len() {
            many.advance(i, None);
        }
        many
    }

    /// The requests of the next round (empty when every op is done): every script call and
    /// plain command waiting goes into one pipeline; what cannot (a cluster-wide request, a
    /// script to send again after `NOSCRIPT`) goes alone after it.
    pub(crate) fn round(&mut self) -> Vec<Request> {
        let ready: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].request.is_some())
            .collect();
        let (piped, alone): (Vec<usize>, Vec<usize>) = ready.into_iter().partition(|&i| {
            let slot = &self.slots[i];
            !slot.alone && matches!(slot.request, Some(Request::Script(_) | Request::Cmd(_)))
        });
        let mut requests = Vec::new();
        // A pipeline of one is the request itself.
        let (piped, alone) = if piped.len() < 2 {
            (Vec::new(), piped.into_iter().chain(alone).collect())
        } else {
            (piped, alone)
        };
        if !piped.is_empty() {
            let mut pipe = redis::pipe();
            // Each command answers for itself: one failing script fails only its own op.
            pipe.ignore_errors();
            for &i in &piped {
                match &self.slots[i].request {
                    Some(Request::Script(call)) => {
                        pipe.add_command(call.cmd().clone());
                    }
                    Some(Request::Cmd(cmd)) => {
                        pipe.add_command(cmd.clone());
                    }
                    _ => {}
                }
            }
            requests.push(Request::Pipe(pipe));
            self.sent.push(Sent::Piped(piped));
        }
        for i in alone {
            if let Some(request) = self.slots[i].request.take() {
                requests.push(request);
                self.sent.push(Sent::Alone(i));
            }
        }
        requests
    }

    /// The replies to the requests of the last [`Many::round`], in order.
    pub(crate) fn feed(&mut self, replies: Vec<redis::RedisResult<Value>>) {
        let sent = std::mem::take(&mut self.sent);
        for (sent, reply) in sent.into_iter().zip(replies) {
            match sent {
                Sent::Alone(i) => self.advance(i, Some(reply)),
                Sent::Piped(slots) => self.feed_pipe(&slots, reply),
            }
        }
    }

    fn feed_pipe(&mut self, slots: &[usize], reply: redis::RedisResult<Value>) {
        let values = match reply {
            Ok(Value::Array(values)) if values.len() == slots.len() => {
                values.into_iter().map(Value::extract_error).collect()
            }
            Ok(other) => {
                let e = redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "a pipeline answered out of shape",
                    format!("{} replies expected, got {other:?}", slots.len()),
                ));
                values_of_error(slots.len(), &e)
            }
            Err(e) => values_of_error(slots.len(), &e),
        };
        for (&i, value) in slots.iter().zip(values) {
            match value {
                Err(e) if is_noscript(&e) => {
                    // Sent again alone next round, which loads the script first.
                    self.slots[i].alone = true;
                }
                reply => {
                    self.slots[i].request = None;
                    self.advance(i, Some(reply));
                }
            }
        }
    }

    /// Ends every op still going with `e` (the connection cannot be used any more).
    pub(crate) fn abort(&mut self, e: &redis::RedisError) {
        self.sent.clear();
        for slot in &mut self.slots {
            if slot.out.is_none() {
                slot.request = None;
                slot.out = Some(Err(Error::from_redis(e.clone())));
            }
        }
    }

    /// Every op's plan (for the driver to keep what it learned) and result, in order.
    pub(crate) fn finish(self) -> Vec<(Plan, Option<String>, Result<StoreReply, Error>)> {
        self.slots
            .into_iter()
            .map(|slot| {
                let out = slot.out.unwrap_or_else(|| {
                    Err(Error::new(
                        crate::ErrorKind::Backend,
                        "fncache internal: a batched op ended without a reply",
                    ))
                });
                (slot.plan, slot.renewing, out)
            })
            .collect()
    }

    fn advance(&mut self, i: usize, reply: Option<redis::RedisResult<Value>>) {
        let slot = &mut self.slots[i];
        slot.alone = false;
        match slot.plan.step(reply) {
            Ok(Step::Send(request)) => slot.request = Some(request),
            Ok(Step::Done(out)) => slot.out = Some(Ok(out)),
            Err(e) => slot.out = Some(Err(e)),
        }
    }
}

/// The replies of a pipeline that failed as a whole: its error, for each command.
fn values_of_error(n: usize, e: &redis::RedisError) -> Vec<redis::RedisResult<Value>> {
    (0..n).map(|_| Err(e.clone())).collect()
}

impl BlockingRedis {
    /// Runs several ops of one structure together (see [`Many`]), each request bounded by
    /// `timeout`; a reply per op, in order. `Err` when no connection could be had.
    pub(crate) fn run_many(
        &self,
        ops: Vec<StoreOp>,
        settings: &StoreSettings,
        timeout: Duration,
    ) -> Result<Vec<Result<StoreReply, Error>>, Error> {
        let mut con = self.checkout()?;
        con.bound(timeout)?;
        self.send_due(&mut con, settings)?;
        // The near copies the ops may change are dropped once the batch is over.
        let (mut many, changes) = self.memory.many(ops, settings, topology(&self.target));
        let mut healthy = true;
        loop {
            let requests = many.round();
            if requests.is_empty() {
                break;
            }
            let mut replies = Vec::with_capacity(requests.len());
            for request in &requests {
                match con.send(request) {
                    // The connection is in an unknown state: drop it, fail what is left.
                    Err(e) if !is_reusable_after(&e) => {
                        healthy = false;
                        replies.push(Err(e));
                        break;
                    }
                    sent => replies.push(sent),
                }
            }
            let broken = (!healthy).then(|| replies.last().cloned()).flatten();
            many.feed(replies);
            if let Some(Err(e)) = broken {
                many.abort(&e);
                break;
            }
        }
        if healthy {
            self.checkin(con);
        }
        Ok(self.settle(many, changes))
    }
}

impl AsyncRedis {
    /// [`BlockingRedis::run_many`] for the async driver, all within `timeout`.
    pub(crate) async fn run_many(
        &self,
        ops: Vec<StoreOp>,
        settings: &StoreSettings,
        timeout: Duration,
    ) -> Result<Vec<Result<StoreReply, Error>>, Error> {
        let mut con = self.connect_bounded().await?;
        // One deadline for the uses sent first and the batch's rounds: the connection has no
        // response timeout of its own (see `AsyncRedis::send_on`).
        let deadline = tokio::time::Instant::now() + timeout;
        match tokio::time::timeout_at(deadline, self.send_due(&mut con, settings, timeout)).await {
            Ok(sent) => sent?,
            Err(_) => return Err(super::op_timed_out(timeout)),
        }
        // The near copies the ops may change are dropped once the batch is over.
        let (mut many, changes) = self.memory.many(ops, settings, topology(&self.target));
        let rounds = async {
            loop {
                let requests = many.round();
                if requests.is_empty() {
                    return;
                }
                let mut replies = Vec::with_capacity(requests.len());
                let mut broken = None;
                for request in &requests {
                    match self.send_on(&mut con, request, timeout).await {
                        Err(e) if !is_reusable_after(&e) => {
                            self.reset();
                            broken = Some(e.clone());
                            replies.push(Err(e));
                            break;
                        }
                        sent => replies.push(sent),
                    }
                }
                many.feed(replies);
                if let Some(e) = broken {
                    many.abort(&e);
                    return;
                }
            }
        };
        if tokio::time::timeout_at(deadline, rounds).await.is_err() {
            let late = redis::RedisError::from((
                redis::ErrorKind::Io,
                "the backend did not answer within the op timeout",
                format!("{timeout:?}"),
            ));
            many.abort(&late);
        }
        Ok(self.settle(many, changes))
    }
}

/// What both drivers do with a finished batch: keep what each plan taught, and drop the near
/// copies its ops may have changed (sent, so they may have happened).
macro_rules! settle {
    ($driver:ty) => {
        impl $driver {
            fn settle(
                &self,
                many: Many,
                changes: Vec<Option<crate::near::Change>>,
            ) -> Vec<Result<StoreReply, Error>> {
                let outs = many
                    .finish()
                    .into_iter()
                    .map(|(mut plan, renewing, out)| {
                        self.memory.keep(&mut plan, renewing, &out);
                        out
                    })
                    .collect();
                for change in changes {
                    self.memory.after(change);
                }
                outs
            }
        }
    };
}

settle!(BlockingRedis);
settle!(AsyncRedis);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{Layout, Naming};
    use crate::policy::Policy;
    use crate::store::redis::plan::{Hints, Topology};
    use crate::store::{StoreOp, StoreSettings};

    fn settings() -> StoreSettings {
        StoreSettings {
            rules: Policy::Lru.rules(),
            maxsize: 10,
            ttl: None,
            slide: false,
            touch_batch: None,
            naming: Naming::new("p:", "n", Policy::Lru, Layout::Shared),
        }
    }

    fn get(s: &StoreSettings, member: u8) -> (Plan, Option<String>) {
        let op = StoreOp::Get {
            structure: s.naming.structure("f"),
            member: [member; 16],
            refresh_after: None,
            lease: None,
            stamp: false,
        };
        let hints = Hints {
            now_us: 0,
            slide: false,
        };
        (Plan::with_hints(op, s, Topology::Server, hints), None)
    }

    /// A server's `NOSCRIPT` reply, as a pipeline answers it among others.
    fn noscript() -> Value {
        redis::parse_redis_value(b"-NOSCRIPT No matching script.\r\n").unwrap()
    }

    /// get.lua's answer for a miss.
    fn miss() -> Value {
        Value::Array(vec![Value::Int(0), Value::Int(0), Value::Nil])
    }

    #[test]
    fn lookups_go_out_as_one_pipeline_and_come_back_apart() {
        let s = settings();
        let mut many = Many::new((1..=3).map(|m| get(&s, m)).collect());
        let round = many.round();
        assert_eq!(round.len(), 1, "one round trip");
        assert!(matches!(&round[0], Request::Pipe(p) if p.len() == 3));
        many.feed(vec![Ok(Value::Array(vec![miss(), miss(), miss()]))]);
        assert!(many.round().is_empty(), "every lookup is done");
        let outs = many.finish();
        assert_eq!(outs.len(), 3);
        assert!(outs.iter().all(|(_, _, out)| out.is_ok()));
    }

    #[test]
    fn a_noscript_reply_is_sent_again_alone() {
        let s = settings();
        let mut many = Many::new((1..=2).map(|m| get(&s, m)).collect());
        let _ = many.round();
        many.feed(vec![Ok(Value::Array(vec![miss(), noscript()]))]);
        let again = many.round();
        assert_eq!(again.len(), 1);
        assert!(
            matches!(&again[0], Request::Script(_)),
            "alone, to load the script"
        );
        many.feed(vec![Ok(miss())]);
        assert!(many.round().is_empty());
        assert!(many.finish().iter().all(|(_, _, out)| out.is_ok()));
    }

    #[test]
    fn a_failed_pipeline_fails_each_op() {
        let s = settings();
        let mut many = Many::new((1..=2).map(|m| get(&s, m)).collect());
        let _ = many.round();
        many.feed(vec![Err(redis::RedisError::from((
            redis::ErrorKind::Io,
            "gone",
        )))]);
        assert!(many.round().is_empty());
        assert!(many.finish().iter().all(|(_, _, out)| out.is_err()));
    }
}
