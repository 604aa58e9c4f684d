//! The Redis store: pure request planning ([`plan`]) and two thin drivers that send the
//! planned requests, one blocking and one async, to a server or a cluster ([`cluster`]);
//! [`connect`] resolves where they connect.

pub(crate) mod batch;
pub(crate) mod cluster;
pub(crate) mod connect;
pub(crate) mod plan;
pub(crate) mod script;
pub(crate) mod subscriber;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub(crate) use self::connect::RedisTarget;
use self::plan::{Capabilities, Hints, Plan, RecordedUse, Request, Step, Topology};
use crate::error::{Error, ErrorKind};
use crate::near::Near;
use crate::store::{Freshness, StoreOp, StoreReply, StoreSettings};

/// How long establishing a connection may take, at most (a call's op timeout may be shorter).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long one request may wait for its reply inside the connections fncache builds (calls
/// bound each op by their own op timeout on top). The async driver applies it itself, and only
/// to ops whose timeout is longer (see [`AsyncRedis::send_on`]).
pub(crate) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle blocking connections kept for reuse.
const MAX_IDLE: usize = 64;
/// Idle blocking cluster connections kept for reuse (each holds a socket per node).
const MAX_IDLE_CLUSTER: usize = 16;

fn topology(target: &RedisTarget) -> Topology {
    if target.is_cluster() {
        Topology::Cluster
    } else {
        Topology::Server
    }
}

/// The maps a hit looks up (structure names, members): SipHash, std's default, was a
/// measurable part of a hit's client time; foldhash is seeded per process, so a caller still
/// cannot steer keys into one bucket.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What a cache's plans learned about its server's commands (see [`Capabilities`]), shared by
/// every op of the cache: probed once, not per op.
/// 0 until something is learned.
#[derive(Debug, Default)]
struct Learned(AtomicU8);

impl Learned {
    const SCRIPTS_ONLY: u8 = 1;
    const DELIFEQ: u8 = 2;

    fn get(&self) -> Option<Capabilities> {
        match self.0.load(Ordering::Relaxed) {
            Learned::SCRIPTS_ONLY => Some(Capabilities { delifeq: false }),
            Learned::DELIFEQ => Some(Capabilities { delifeq: true }),
            _ => None,
        }
    }

    /// Keeps what `plan` learned, if anything.
    fn keep(&self, plan: &Plan) {
        if let Some(capabilities) = plan.learned() {
            let value = if capabilities.delifeq {
                Learned::DELIFEQ
            } else {
                Learned::SCRIPTS_ONLY
            };
            self.0.store(value, Ordering::Relaxed);
        }
    }
}

/// When this process last renewed each structure's TTL with a hit, so that a hit asks the
/// script to renew it at most once per step (1% of the TTL, at most a second) instead of the
/// script reading `PTTL` on every hit. Guarantees what the server-side gate of `put.lua` does:
/// after a hit the structure has at least its TTL less a step to live. Several processes
/// renew once per step each; a TTL shortened from outside is renewed up to a step later.
#[derive(Debug, Default)]
struct SlideGate(Mutex<FastMap<String, Instant>>);

impl SlideGate {
    /// Structures remembered at most; past that all are forgotten (each renews once more).
    const MAX: usize = 4096;

    /// The hints for `op`, and the index key of a lookup that asks to renew its structure.
    fn hints(&self, op: &StoreOp, settings: &StoreSettings) -> (Hints, Option<String>) {
        self.hints_at(op, settings, Instant::now())
    }

    fn hints_at(
        &self,
        op: &StoreOp,
        settings: &StoreSettings,
        now: Instant,
    ) -> (Hints, Option<String>) {
        let renewing = match (op, settings.ttl) {
            (StoreOp::Get { structure, .. }, Some(ttl)) if settings.slide => {
                // As `slide` in prelude.lua: the step is 1% of the TTL, at most a second.
                let step = (ttl / 100).min(Duration::from_secs(1));
                let due = self
                    .0
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(structure.index.as_str())
                    .is_none_or(|&at| now.saturating_duration_since(at) >= step);
                due.then(|| structure.index.clone())
            }
            _ => None,
        };
        let hints = Hints {
            // Only `touch_batch` scores uses with the caller's clock; else the server's TIME.
            now_us: if settings.touch_batch.is_some() {
                Hints::clock()
            } else {
                0
            },
            slide: renewing.is_some(),
        };
        (hints, renewing)
    }

    /// Records a renewal: only a lookup that hit renewed (a miss or an expired entry does not).
    fn settle(&self, renewing: Option<String>, result: &Result<StoreReply, Error>) {
        // Most ops renew nothing: no clock read for them.
        if renewing.is_some() {
            self.settle_at(renewing, result, Instant::now());
        }
    }

    fn settle_at(
        &self,
        renewing: Option<String>,
        result: &Result<StoreReply, Error>,
        now: Instant,
    ) {
        let (Some(index), Ok(StoreReply::Looked(lookup))) = (renewing, result) else {
            return;
        };
        if matches!(lookup.freshness, Freshness::Fresh | Freshness::Stale) {
            let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if last.len() >= SlideGate::MAX {
                last.clear();
            }
            last.insert(index, now);
        }
    }
}

/// Uses recorded by hits under `touch_batch`, waiting to be applied to their indexes.
#[derive(Debug, Default)]
struct Recorded(Mutex<Pending>);

#[derive(Debug, Default)]
struct Pending {
    /// When the oldest use waiting was recorded.
    since: Option<Instant>,
    /// Per index key, the latest score of each member used.
    uses: FastMap<String, FastMap<crate::key::Member, u64>>,
}

impl Recorded {
    /// Members remembered per structure at most; later uses of other members are dropped
    /// until the next flush (they would only move those members up the order).
    const MAX_MEMBERS: usize = 1 << 16;

    fn record(&self, used: RecordedUse) {
        let mut pending = self.0.lock().unwrap_or_else(|e| e.into_inner());
        pending.since.get_or_insert_with(Instant::now);
        // One lookup of the structure on the way of every hit; its first use inserts it.
        match pending.uses.get_mut(used.structure.index.as_str()) {
            Some(members) => Recorded::note(members, &used),
            None => {
                let mut members = FastMap::default();
                Recorded::note(&mut members, &used);
                pending.uses.insert(used.structure.index.clone(), members);
            }
        }
    }

    fn note(members: &mut FastMap<crate::key::Member, u64>, used: &RecordedUse) {
        if members.len() < Recorded::MAX_MEMBERS || members.contains_key(&used.member) {
            let score = members.entry(used.member).or_default();
            *score = (*score).max(used.score);
        }
    }

    /// The requests that apply every recorded use, once the oldest is `delay` old.
    fn due(&self, delay: Option<Duration>) -> Vec<Request> {
        let Some(delay) = delay else {
            return Vec::new();
        };
        let uses = {
            let mut pending = self.0.lock().unwrap_or_else(|e| e.into_inner());
            if pending.since.is_none_or(|t| t.elapsed() < delay) {
                return Vec::new();
            }
            pending.since = None;
            std::mem::take(&mut pending.uses)
        };
        uses.into_iter()
            .map(|(index, members)| {
                let members: Vec<_> = members.into_iter().collect();
                plan::apply_uses(&index, &members)
            })
            .collect()
    }
}

/// What a driver remembers from one op to the next, the same for both drivers: the server's
/// commands it learned, when it last renewed each structure's TTL, the uses of hits
/// waiting to be applied (`touch_batch`), and the cache's near cache, if any.
#[derive(Debug, Default)]
struct Memory {
    learned: Learned,
    gate: SlideGate,
    recorded: Recorded,
    near: Option<Arc<Near>>,
}

impl Memory {
    /// The requests that apply uses recorded by hits, Redis hits under `touch_batch` and near
    /// hits (once the oldest waiting is `touch_batch` old, else the near cache's TTL), sent
    /// before the next op so that a put that evicts sees them.
    fn due(&self, settings: &StoreSettings) -> Vec<Request> {
        let mut due = self.recorded.due(settings.touch_batch);
        if let Some(near) = &self.near {
            let delay = settings.touch_batch.unwrap_or(near.settings().ttl);
            due.extend(
                near.due_uses(delay)
                    .into_iter()
                    .filter_map(|(index, touch, uses)| {
                        plan::apply_near_uses(&index, touch, &uses, settings)
                    }),
            );
        }
        due
    }

    /// What `op` may change of the near copies, taken before it is sent (see [`Memory::after`]).
    fn changes(&self, op: &StoreOp) -> Option<crate::near::Change> {
        self.near.as_ref().and_then(|_| crate::near::Change::of(op))
    }

    /// An op was sent (and answered, failed or timed out: it may have happened): the near
    /// copies it may have changed go now, so that the caller reads its own write before the
    /// channel's message comes back.
    fn after(&self, change: Option<crate::near::Change>) {
        if let (Some(near), Some(change)) = (&self.near, change) {
            near.apply(change);
        }
    }

    /// The plan of `op` with what the driver knows, and the structure whose TTL its lookup
    /// renews (for [`Memory::keep`]).
    fn plan(
        &self,
        op: StoreOp,
        settings: &StoreSettings,
        topology: Topology,
    ) -> (Plan, Option<String>) {
        let (hints, renewing) = self.gate.hints(&op, settings);
        let plan = Plan::with_hints(op, settings, topology, hints).knowing(self.learned.get());
        (plan, renewing)
    }

    /// The plans of a batch's ops, advanced together, and what each may change of the near
    /// copies (taken before they are sent).
    fn many(
        &self,
        ops: Vec<StoreOp>,
        settings: &StoreSettings,
        topology: Topology,
    ) -> (batch::Many, Vec<Option<crate::near::Change>>) {
        let changes = ops.iter().map(|op| self.changes(op)).collect();
        let plans = ops
            .into_iter()
            .map(|op| self.plan(op, settings, topology))
            .collect();
        (batch::Many::new(plans), changes)
    }

    /// Keeps what a finished `plan` taught: capabilities, a renewal, a hit's use to record.
    fn keep(&self, plan: &mut Plan, renewing: Option<String>, result: &Result<StoreReply, Error>) {
        self.learned.keep(plan);
        self.gate.settle(renewing, result);
        if let Some(used) = plan.take_recorded() {
            self.recorded.record(used);
        }
    }
}

/// The error of an op that the backend did not answer within its op timeout.
fn op_timed_out(timeout: Duration) -> Error {
    Error::new(
        crate::ErrorKind::Backend,
        format!("the backend did not answer within the op timeout ({timeout:?})"),
    )
}

/// The blocking driver: a small pool of synchronous connections (to a server or a cluster),
/// or the user's r2d2 pool; no runtime needed.
#[derive(Debug)]
pub(crate) struct BlockingRedis {
    target: RedisTarget,
    idle: Mutex<Vec<Pooled>>,
    memory: Memory,
}

/// A checked-out connection (its `Debug` says nothing about the server's credentials).
enum Pooled {
    /// With the read/write timeout it is set to.
    Server(redis::Connection, Option<Duration>),
    /// Its timeouts are the cluster client's (fncache sets them on the clients it builds).
    Cluster(Box<redis::cluster::ClusterConnection>),
    /// From the user's r2d2 pool, which takes it back on drop; its settings are the user's.
    Shared(r2d2::PooledConnection<redis::Client>),
}

impl fmt::Debug for Pooled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pooled::Server(..) => "Connection",
            Pooled::Cluster(_) => "ClusterConnection",
            Pooled::Shared(_) => "PooledConnection",
        })
    }
}

impl Pooled {
    /// Bounds each request of a connection fncache made by `timeout`.
    fn bound(&mut self, timeout: Duration) -> Result<(), Error> {
        if let Pooled::Server(con, current) = self
            && *current != Some(timeout)
        {
            con.set_read_timeout(Some(timeout))
                .and_then(|()| con.set_write_timeout(Some(timeout)))
                .map_err(Error::from_redis)?;
            *current = Some(timeout);
        }
        Ok(())
    }

    fn send(&mut self, request: &Request) -> redis::RedisResult<Value> {
        match self {
            Pooled::Server(con, _) => send_blocking(con, request),
            Pooled::Shared(con) => send_blocking(con, request),
            Pooled::Cluster(con) => cluster::send_blocking(con, request),
        }
    }
}

impl BlockingRedis {
    pub(crate) fn new(target: RedisTarget) -> BlockingRedis {
        BlockingRedis {
            target,
            idle: Mutex::new(Vec::new()),
            memory: Memory::default(),
        }
    }

    /// The driver of a cache with a near cache: its ops drop the copies they change, and
    /// carry its hits to the policy.
    pub(crate) fn with_near(mut self, near: Option<Arc<Near>>) -> BlockingRedis {
        self.memory.near = near;
        self
    }

    /// Runs one store op to completion, each request bounded by `timeout`.
    pub(crate) fn run(
        &self,
        op: StoreOp,
        settings: &StoreSettings,
        timeout: Duration,
    ) -> Result<StoreReply, Error> {
        let mut con = self.checkout()?;
        con.bound(timeout)?;
        // Uses recorded by earlier hits go first, so that this op (a put that evicts) sees them.
        self.send_due(&mut con, settings)?;
        let change = self.memory.changes(&op);
        let (mut plan, renewing) = self.memory.plan(op, settings, topology(&self.target));
        let mut reply = None;
        let mut healthy = true;
        let result = loop {
            let request = match plan.step(reply.take()) {
                Ok(Step::Send(request)) => request,
                Ok(Step::Done(out)) => break Ok(out),
                Err(e) => break Err(e),
            };
            match con.send(&request) {
                // The connection is in an unknown state: drop it and fail this op.
                Err(e) if !is_reusable_after(&e) => {
                    healthy = false;
                    break Err(Error::from_redis(e));
                }
                sent => reply = Some(sent),
            }
        };
        self.memory.keep(&mut plan, renewing, &result);
        self.memory.after(change);
        if healthy {
            self.checkin(con);
        }
        result
    }

    /// Sends the uses recorded by earlier hits (`touch_batch`, near hits), so that the op
    /// that follows on `con` (a put that evicts) sees them. A failure that leaves the
    /// connection usable only delays them to the next op.
    fn send_due(&self, con: &mut Pooled, settings: &StoreSettings) -> Result<(), Error> {
        for request in self.memory.due(settings) {
            if let Err(e) = con.send(&request)
                && !is_reusable_after(&e)
            {
                return Err(Error::from_redis(e));
            }
        }
        Ok(())
    }

    fn checkout(&self) -> Result<Pooled, Error> {
        if let Some(con) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(con);
        }
        match &self.target {
            // Connecting has its own bound (see `AsyncRedis::run`).
            RedisTarget::Server { client, .. } => client
                .get_connection_with_timeout(CONNECT_TIMEOUT)
                .map(|con| Pooled::Server(con, None))
                .map_err(Error::from_redis),
            // Timeouts are the cluster client's (fncache sets them on the clients it builds).
            RedisTarget::Cluster { client, .. } => client
                .get_connection()
                .map(|con| Pooled::Cluster(Box::new(con)))
                .map_err(Error::from_redis),
            RedisTarget::Pool(pool) => pool.get().map(Pooled::Shared).map_err(|e| {
                Error::with_source(ErrorKind::Backend, "no connection from your r2d2 pool", e)
            }),
            RedisTarget::Manager(_) => Err(Error::config(
                "a ConnectionManager cannot serve the blocking front-end",
            )),
        }
    }

    fn checkin(&self, con: Pooled) {
        let max = match con {
            Pooled::Server(..) => MAX_IDLE,
            Pooled::Cluster(_) => MAX_IDLE_CLUSTER,
            // Dropping it hands it back to the user's pool.
            Pooled::Shared(_) => return,
        };
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < max {
            idle.push(con);
        }
    }
}

fn send_blocking(con: &mut redis::Connection, request: &Request) -> redis::RedisResult<Value> {
    match request {
        Request::Script(invocation) => invocation.invoke(con),
        Request::Cmd(cmd) => cmd.query(con),
        Request::Pipe(pipe) => pipe.query(con),
        Request::AllPrimaries(_) | Request::OnNode(..) => Err(cluster::not_a_cluster()),
    }
}

/// A connection that saw this error can serve the next request (the server answered).
fn is_reusable_after(e: &redis::RedisError) -> bool {
    !(e.is_unrecoverable_error() || e.is_timeout() || e.is_io_error() || e.is_connection_dropped())
}

/// The async driver: a redis-rs `ConnectionManager` (multiplexed, reconnecting) for a server,
/// or an async cluster connection, created on first use inside the caller's runtime so a
/// cache can be built outside any runtime; or the user's own connection manager.
#[derive(Debug)]
pub(crate) struct AsyncRedis {
    target: RedisTarget,
    /// The connection, and the runtime it was made in (its I/O lives there).
    connection: Mutex<Option<(AsyncConnection, Option<tokio::runtime::Id>)>>,
    memory: Memory,
}

/// A shared async connection (cheap to clone).
#[derive(Clone)]
enum AsyncConnection {
    Manager(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl fmt::Debug for AsyncConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AsyncConnection::Manager(_) => "ConnectionManager",
            AsyncConnection::Cluster(_) => "ClusterConnection",
        })
    }
}

impl AsyncRedis {
    pub(crate) fn new(target: RedisTarget) -> AsyncRedis {
        AsyncRedis {
            target,
            connection: Mutex::new(None),
            memory: Memory::default(),
        }
    }

    /// See [`BlockingRedis::with_near`].
    pub(crate) fn with_near(mut self, near: Option<Arc<Near>>) -> AsyncRedis {
        self.memory.near = near;
        self
    }

    /// Runs one store op to completion within `timeout` (a late op is dropped; the
    /// multiplexed connection discards its reply).
    pub(crate) async fn run(
        &self,
        op: StoreOp,
        settings: &StoreSettings,
        timeout: Duration,
    ) -> Result<StoreReply, Error> {
        // Connecting has its own bound: cutting a slow (TLS) handshake at the op timeout would
        // never let a cache connect at all.
        let con = self.connect_bounded().await?;
        let change = self.memory.changes(&op);
        let ran = self.run_on(con, op, settings, timeout);
        let result = match tokio::time::timeout(timeout, ran).await {
            Ok(result) => result,
            Err(_) => Err(op_timed_out(timeout)),
        };
        self.memory.after(change);
        result
    }

    async fn run_on(
        &self,
        mut con: AsyncConnection,
        op: StoreOp,
        settings: &StoreSettings,
        timeout: Duration,
    ) -> Result<StoreReply, Error> {
        // Uses recorded by earlier hits go first, so that this op (a put that evicts) sees them.
        self.send_due(&mut con, settings, timeout).await?;
        let (mut plan, renewing) = self.memory.plan(op, settings, topology(&self.target));
        let result = self.drive(&mut plan, &mut con, timeout).await;
        self.memory.keep(&mut plan, renewing, &result);
        result
    }

    async fn drive(
        &self,
        plan: &mut Plan,
        con: &mut AsyncConnection,
        timeout: Duration,
    ) -> Result<StoreReply, Error> {
        let mut reply = None;
        loop {
            match plan.step(reply.take())? {
                Step::Done(out) => return Ok(out),
                Step::Send(request) => {
                    let sent = self.send_on(con, &request, timeout).await;
                    match sent {
                        // Our connections reconnect by themselves, but they are bound to the
                        // runtime that created them: start afresh in the current one (with a
                        // fresh view of a cluster's topology), and fail this op.
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

    /// Sends one request of an op bounded by `timeout`. A connection this driver built has no
    /// response timeout of its own (a second timer per request, besides the op's): each
    /// request on it waits at most [`RESPONSE_TIMEOUT`], which only an op with a longer
    /// timeout needs to be told, and then fails as redis-rs's own timeout did (a timeout error,
    /// after which the connection is made afresh).
    async fn send_on(
        &self,
        con: &mut AsyncConnection,
        request: &Request,
        timeout: Duration,
    ) -> redis::RedisResult<Value> {
        if timeout <= RESPONSE_TIMEOUT || !matches!(self.target, RedisTarget::Server { .. }) {
            return self.send_unbounded(con, request).await;
        }
        // Boxed: only long ops pay for this future, the others keep theirs small.
        let sent = Box::pin(self.send_unbounded(con, request));
        match tokio::time::timeout(RESPONSE_TIMEOUT, sent).await {
            Ok(sent) => sent,
            Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
        }
    }

    async fn send_unbounded(
        &self,
        con: &mut AsyncConnection,
        request: &Request,
    ) -> redis::RedisResult<Value> {
        match con {
            AsyncConnection::Manager(con) => match request {
                Request::Script(invocation) => invocation.invoke_async(con).await,
                Request::Cmd(cmd) => cmd.query_async(con).await,
                Request::Pipe(pipe) => pipe.query_async(con).await,
                Request::AllPrimaries(_) | Request::OnNode(..) => Err(cluster::not_a_cluster()),
            },
            AsyncConnection::Cluster(con) => cluster::send_async(con, request).await,
        }
    }

    /// [`BlockingRedis::send_due`] for the async driver (a broken connection is reset).
    async fn send_due(
        &self,
        con: &mut AsyncConnection,
        settings: &StoreSettings,
        timeout: Duration,
    ) -> Result<(), Error> {
        for request in self.memory.due(settings) {
            if let Err(e) = self.send_on(con, &request, timeout).await
                && !is_reusable_after(&e)
            {
                self.reset();
                return Err(Error::from_redis(e));
            }
        }
        Ok(())
    }

    /// The connection, within [`CONNECT_TIMEOUT`]: connecting has a bound of its own, apart
    /// from the op timeout.
    async fn connect_bounded(&self) -> Result<AsyncConnection, Error> {
        // The usual case, a connection made: no timer to arm and disarm.
        if let Some(con) = self.current() {
            return Ok(con);
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, self.connection()).await {
            Ok(con) => con,
            Err(_) => Err(Error::new(
                ErrorKind::Backend,
                format!("could not connect within {CONNECT_TIMEOUT:?}"),
            )),
        }
    }

    /// The connection made in the current runtime, if there is one.
    fn current(&self) -> Option<AsyncConnection> {
        let runtime = tokio::runtime::Handle::try_current().ok().map(|h| h.id());
        self.connection
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            // A connection made in another runtime dies with it: make one in this runtime
            // (the user's own manager is kept whatever happens).
            .filter(|(_, made_in)| {
                *made_in == runtime || matches!(self.target, RedisTarget::Manager(_))
            })
            .map(|(con, _)| con.clone())
    }

    async fn connection(&self) -> Result<AsyncConnection, Error> {
        if let Some(con) = self.current() {
            return Ok(con);
        }
        let runtime = tokio::runtime::Handle::try_current().ok().map(|h| h.id());
        let con = match &self.target {
            RedisTarget::Server { client, .. } => {
                // No response timeout: `send_on` bounds each request (one timer per op).
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(None)
                    .set_number_of_retries(1);
                AsyncConnection::Manager(
                    ConnectionManager::new_lazy_with_config((**client).clone(), config)
                        .map_err(Error::from_redis)?,
                )
            }
            // Connecting here (rather than lazily) keeps the cluster client's own timeouts.
            RedisTarget::Cluster { client, .. } => AsyncConnection::Cluster(
                client
                    .get_async_connection()
                    .await
                    .map_err(Error::from_redis)?,
            ),
            RedisTarget::Manager(manager) => AsyncConnection::Manager(manager.clone()),
            RedisTarget::Pool(_) => {
                return Err(Error::config(
                    "an r2d2 pool cannot serve the async front-end",
                ));
            }
        };
        // Two tasks may have connected at once: either connection serves.
        *self.connection.lock().unwrap_or_else(|e| e.into_inner()) = Some((con.clone(), runtime));
        Ok(con)
    }

    fn reset(&self) {
        // The user's manager is theirs to keep: it reconnects by itself.
        if !matches!(self.target, RedisTarget::Manager(_)) {
            *self.connection.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

/// Single requests outside the store ops: the shared counters and registry
/// (`shared_stats.rs`) and the operator API (`admin.rs`).
impl BlockingRedis {
    /// True when requests go to a Redis Cluster.
    pub(crate) fn is_cluster(&self) -> bool {
        self.target.is_cluster()
    }

    /// Sends one request, bounded by `timeout`.
    pub(crate) fn send(&self, request: &Request, timeout: Duration) -> Result<Value, Error> {
        let mut con = self.checkout()?;
        con.bound(timeout)?;
        match con.send(request) {
            Err(e) if !is_reusable_after(&e) => Err(Error::from_redis(e)),
            sent => {
                self.checkin(con);
                sent.map_err(Error::from_redis)
            }
        }
    }
}

impl AsyncRedis {
    /// Sends one request within `timeout` (connecting has its own bound, as in `run`).
    pub(crate) async fn send(&self, request: Request, timeout: Duration) -> Result<Value, Error> {
        let mut con = self.connect_bounded().await?;
        let sent = tokio::time::timeout(timeout, self.send_on(&mut con, &request, timeout)).await;
        match sent {
            Ok(Err(e)) if !is_reusable_after(&e) => {
                self.reset();
                Err(Error::from_redis(e))
            }
            Ok(sent) => sent.map_err(Error::from_redis),
            Err(_) => Err(Error::new(
                ErrorKind::Backend,
                format!("the backend did not answer within {timeout:?}"),
            )),
        }
    }

    /// A blocking driver on the same server or cluster (not on a connection manager of the
    /// user's, which only async code can use).
    pub(crate) fn blocking(&self) -> Option<BlockingRedis> {
        match &self.target {
            RedisTarget::Server { .. } | RedisTarget::Cluster { .. } => {
                Some(BlockingRedis::new(self.target.clone()))
            }
            RedisTarget::Manager(_) | RedisTarget::Pool(_) => None,
        }
    }

    /// A driver on the same target and connection, for work that outlives this one (the
    /// last flush of the shared counters when a cache is dropped).
    pub(crate) fn detached(&self) -> AsyncRedis {
        AsyncRedis {
            target: self.target.clone(),
            connection: Mutex::new(
                self.connection
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone(),
            ),
            memory: Memory::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::{Layout, Naming};
    use crate::policy::Policy;
    use crate::store::Lookup;

    fn settings(ttl: Option<Duration>, slide: bool) -> StoreSettings {
        StoreSettings {
            rules: Policy::LruT.rules(),
            maxsize: 3,
            ttl,
            slide,
            touch_batch: None,
            naming: Naming::new("p:", "n", Policy::LruT, Layout::PerFunction),
        }
    }

    fn get(s: &StoreSettings, function: &str) -> StoreOp {
        StoreOp::Get {
            structure: s.naming.structure(function),
            member: [1; 16],
            refresh_after: None,
            lease: None,
            stamp: false,
        }
    }

    fn looked(freshness: Freshness) -> Result<StoreReply, Error> {
        Ok(StoreReply::Looked(Lookup {
            freshness,
            lease: crate::store::LeaseState::NotAsked,
            entry: None,
            store_us: None,
        }))
    }

    #[test]
    fn a_hit_renews_a_structure_at_most_once_per_step() {
        // An hour's TTL: the step is a second.
        let s = settings(Some(Duration::from_secs(3600)), true);
        let gate = SlideGate::default();
        let t0 = Instant::now();
        let (hints, renewing) = gate.hints_at(&get(&s, "f"), &s, t0);
        assert!(hints.slide, "the first lookup asks to renew");
        // A miss renews nothing: the next lookup asks again.
        gate.settle_at(renewing, &looked(Freshness::Missing), t0);
        let (hints, renewing) = gate.hints_at(&get(&s, "f"), &s, t0);
        assert!(hints.slide);
        gate.settle_at(renewing, &looked(Freshness::Fresh), t0);
        let half = t0 + Duration::from_millis(500);
        assert!(
            !gate.hints_at(&get(&s, "f"), &s, half).0.slide,
            "within the step"
        );
        assert!(
            gate.hints_at(&get(&s, "g"), &s, half).0.slide,
            "per structure"
        );
        let step = t0 + Duration::from_secs(1);
        assert!(
            gate.hints_at(&get(&s, "f"), &s, step).0.slide,
            "a step later"
        );
    }

    #[test]
    fn nothing_renews_without_a_sliding_ttl() {
        for s in [
            settings(None, true),
            settings(Some(Duration::from_secs(60)), false),
        ] {
            let (hints, renewing) = SlideGate::default().hints(&get(&s, "f"), &s);
            assert!(!hints.slide && renewing.is_none());
        }
    }
}
