//! Batches: many keys of one function looked up, computed and stored together.
//!
//! A batch is one [`Call`] per distinct key, the same state machine a single call is, driven
//! together: whatever the calls want from the store in a round goes out as one
//! [`Cache::run_many`](crate::Cache) (one pipeline, one round trip: a batch's keys all live in
//! one structure); the calls that end up computing (they hold their key's lease, or no
//! stampede protection applies) are computed by one call of `compute_missing`; the calls whose
//! key another caller computes (this process's flight, another process's lease) wait for it
//! as single calls do, after this batch's own computations are stored, so two batches that
//! overlap never wait on each other. Freshness, fail-safe, fail-open, hooks and stats are the
//! calls' own, so a batch behaves as its calls would one by one.
//!
//! [`Batch`] is pure; [`drive_batch!`] is the loop of both front-ends around it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::call::{Action, Call, Computed, Input};
use crate::core::{Core, Surface};
use crate::error::{Error, ErrorKind};
use crate::flight::Flight;
use crate::key::Member;
use crate::mode::Ambient;
use crate::options::Options;
use crate::store::{StoreOp, StoreReply};
use crate::telemetry::StoreTimer;

/// What a front-end does next for a batch.
pub(crate) enum Work {
    /// Send these ops together (within the duration), then [`Batch::stored`].
    Store(Vec<StoreOp>, Duration),
    /// Call `compute_missing` with the arguments at these positions of the caller's list,
    /// then [`Batch::computed`].
    Compute(Vec<usize>),
    /// Wait for these leaders of this process with [`Batch::followed`], each up to its
    /// duration counted from the instant given, then, if given, sleep that long and
    /// [`Batch::woke`].
    Wait(
        Vec<(usize, Arc<Flight>, Duration)>,
        Instant,
        Option<Duration>,
    ),
    /// Every call has returned: [`Batch::finish`].
    Done,
}

/// How a batch ended.
pub(crate) enum Ended<T, E> {
    /// Every argument's value, in the caller's order.
    Values(Vec<T>),
    /// `compute_missing` returned this error (nothing of it was stored).
    Failed(E),
    /// `compute_missing` returned the wrong number of values (nothing of it was stored).
    Broken(Error),
}

impl<T, E> Ended<T, E> {
    /// The explicit API's answer.
    fn into_result(self) -> Result<Result<Vec<T>, E>, Error> {
        match self {
            Ended::Values(values) => Ok(Ok(values)),
            Ended::Failed(e) => Ok(Err(e)),
            Ended::Broken(e) => Err(e),
        }
    }
}

/// How `compute_missing` failed (its error or panic is the front-end's to return).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Failure {
    Failed,
    Panicked,
}

/// A batch in progress: one call per distinct key; `S` says how the calls' failures surface.
pub(crate) struct Batch<'a, S, T> {
    function: &'a str,
    calls: Vec<Call<'a, S, T>>,
    /// What each call waits for (`None`: it has returned, or its action is out).
    pending: Vec<Option<Action<T>>>,
    /// Each call's value once it has one.
    values: Vec<Option<T>>,
    /// Each call's first position in the caller's list.
    firsts: Vec<usize>,
    /// Each position's call.
    positions: Vec<usize>,
    /// The calls whose ops, computations or sleeps are out, with each store op's start.
    out: Vec<(usize, Option<Instant>)>,
    /// `compute_missing` failed: later computations are not attempted.
    failed: Option<Failure>,
    /// `compute_missing` returned the wrong number of values.
    mismatch: Option<Error>,
}

impl<'a, S: Surface, T: Serialize + DeserializeOwned> Batch<'a, S, T> {
    /// Starts a call per distinct key of `members` (the keys of the caller's list, in order).
    pub(crate) fn begin<O: Options<T> + ?Sized>(
        core: &'a Core,
        function: &'a str,
        members: Vec<Result<Member, Error>>,
        options: &'a O,
        ambient: &Ambient,
    ) -> Result<Batch<'a, S, T>, S> {
        let mut batch = Batch {
            function,
            calls: Vec::new(),
            pending: Vec::new(),
            values: Vec::new(),
            firsts: Vec::new(),
            positions: Vec::with_capacity(members.len()),
            out: Vec::new(),
            failed: None,
            mismatch: None,
        };
        let mut seen: HashMap<Member, usize> = HashMap::new();
        for (position, member) in members.into_iter().enumerate() {
            // Arguments without a key (they do not serialize) are each a call of their own,
            // which computes without the cache.
            if let Ok(m) = &member
                && let Some(&call) = seen.get(m)
            {
                batch.positions.push(call);
                continue;
            }
            let index = batch.calls.len();
            if let Ok(m) = &member {
                seen.insert(*m, index);
            }
            // Never owned: the batch's function is one for all its keys, run inline.
            let call = core.begin(function, member, options, ambient, false, None)?;
            batch.calls.push(call);
            batch.pending.push(None);
            batch.values.push(None);
            batch.firsts.push(position);
            batch.positions.push(index);
        }
        for i in 0..batch.calls.len() {
            let action = batch.calls[i].next(Input::Start)?;
            batch.settle(i, action)?;
        }
        Ok(batch)
    }

    /// Takes a call's next action: a return is kept, anything else waits in `pending`.
    fn settle(&mut self, i: usize, action: Action<T>) -> Result<(), S> {
        match action {
            Action::Return(value) => self.values[i] = Some(value),
            // The computed value is already kept (see `computed`).
            Action::ReturnComputed => {}
            // Never asked of a batch (its calls are not owned); refused, should it come.
            Action::Background(_) => {
                let next = self.calls[i].next(Input::Spawned(false))?;
                return self.settle(i, next);
            }
            other => self.pending[i] = Some(other),
        }
        Ok(())
    }

    /// What to do next: store ops first (they finish calls and free their keys), then
    /// computations, then waits for other callers' values.
    pub(crate) fn work(&mut self) -> Result<Work, S> {
        loop {
            let wanting = |pending: &[Option<Action<T>>], pick: fn(&Action<T>) -> bool| {
                (0..pending.len())
                    .filter(|&i| pending[i].as_ref().is_some_and(pick))
                    .collect::<Vec<usize>>()
            };
            let storing = wanting(&self.pending, |a| matches!(a, Action::Store(..)));
            if !storing.is_empty() {
                let mut ops = Vec::with_capacity(storing.len());
                let mut timeout = Duration::ZERO;
                for i in storing {
                    if let Some(Action::Store(op, t)) = self.pending[i].take() {
                        ops.push(op);
                        timeout = timeout.max(t);
                        self.out.push((i, self.calls[i].span().store_started()));
                    }
                }
                return Ok(Work::Store(ops, timeout));
            }
            let computing = wanting(&self.pending, |a| matches!(a, Action::Compute { .. }));
            if !computing.is_empty() {
                for &i in &computing {
                    self.pending[i] = None;
                }
                if let Some(failure) = self.failed {
                    // compute_missing failed already: these keys fail alike.
                    for i in computing {
                        let next = self.calls[i].next(Input::Computed(failed(failure)))?;
                        self.settle(i, next)?;
                    }
                    continue;
                }
                let positions = computing.iter().map(|&i| self.firsts[i]).collect();
                self.out = computing.into_iter().map(|i| (i, None)).collect();
                return Ok(Work::Compute(positions));
            }
            let now = Instant::now();
            let mut follows = Vec::new();
            let mut sleep: Option<Duration> = None;
            for i in 0..self.pending.len() {
                match self.pending[i].take() {
                    // Waited for one after another, but each as if from now, so that a round
                    // waits no longer than its longest wait.
                    Some(Action::Follow(flight, timeout)) => follows.push((i, flight, timeout)),
                    Some(Action::Sleep(pause)) => {
                        // The shortest pause: polling a key sooner than its own pause only
                        // looks earlier.
                        sleep = Some(sleep.map_or(pause, |s| s.min(pause)));
                        self.out.push((i, None));
                    }
                    other => self.pending[i] = other,
                }
            }
            if follows.is_empty() && sleep.is_none() {
                return Ok(Work::Done);
            }
            return Ok(Work::Wait(follows, now, sleep));
        }
    }

    /// The replies to the ops of [`Work::Store`], in order.
    pub(crate) fn stored(&mut self, replies: Vec<Result<StoreReply, Error>>) -> Result<(), S> {
        let out = std::mem::take(&mut self.out);
        let mut replies = replies.into_iter();
        for (i, started) in out {
            let reply = replies.next().unwrap_or_else(|| {
                Err(Error::new(
                    ErrorKind::Backend,
                    "fncache internal: a batched op got no reply",
                ))
            });
            self.calls[i].span_mut().store_done(started);
            let next = self.calls[i].next(Input::Stored(reply))?;
            self.settle(i, next)?;
        }
        Ok(())
    }

    /// What `compute_missing` returned for [`Work::Compute`]: its values, in the order of the
    /// arguments it was given, or how it failed.
    pub(crate) fn computed(&mut self, outcome: Result<Vec<T>, Failure>) -> Result<(), S> {
        let out = std::mem::take(&mut self.out);
        let outcome = match outcome {
            Ok(values) if values.len() != out.len() => {
                self.mismatch = Some(Error::new(
                    ErrorKind::BatchLength,
                    format!(
                        "compute_missing of `{}` returned {} values for {} arguments; nothing \
                         was stored",
                        self.function,
                        values.len(),
                        out.len()
                    ),
                ));
                Err(Failure::Failed)
            }
            other => other,
        };
        match outcome {
            Ok(values) => {
                for ((i, _), value) in out.into_iter().zip(values) {
                    let next = self.calls[i].next(Input::Computed(Computed::Value(&value)))?;
                    self.values[i] = Some(value);
                    self.settle(i, next)?;
                }
            }
            Err(failure) => {
                self.failed = Some(failure);
                for (i, _) in out {
                    let next = self.calls[i].next(Input::Computed(failed(failure)))?;
                    self.settle(i, next)?;
                }
            }
        }
        Ok(())
    }

    /// The outcome of waiting for call `i`'s leader.
    pub(crate) fn followed(
        &mut self,
        i: usize,
        outcome: Option<Option<Arc<Vec<u8>>>>,
    ) -> Result<(), S> {
        let next = self.calls[i].next(Input::Followed(outcome))?;
        self.settle(i, next)
    }

    /// The sleep of [`Work::Wait`] is over.
    pub(crate) fn woke(&mut self) -> Result<(), S> {
        for (i, _) in std::mem::take(&mut self.out) {
            let next = self.calls[i].next(Input::Woke)?;
            self.settle(i, next)?;
        }
        Ok(())
    }

    /// The values in the caller's order (a duplicate argument gets its key's value), or the
    /// error of a `compute_missing` that returned the wrong number of values.
    pub(crate) fn finish(mut self) -> Result<Vec<T>, Error>
    where
        T: Clone,
    {
        if let Some(mismatch) = self.mismatch.take() {
            return Err(mismatch);
        }
        let mut out = Vec::with_capacity(self.positions.len());
        for &i in &self.positions {
            match &self.values[i] {
                Some(value) => out.push(value.clone()),
                None => {
                    return Err(Error::new(
                        ErrorKind::Backend,
                        format!(
                            "fncache internal: a call of the batch of `{}` ended without a value",
                            self.function
                        ),
                    ));
                }
            }
        }
        Ok(out)
    }
}

fn failed<'v, T>(failure: Failure) -> Computed<'v, T> {
    match failure {
        Failure::Failed => Computed::Failed,
        Failure::Panicked => Computed::Panicked,
    }
}

/// The loop that walks a [`Batch`] to its end, written once for both front-ends (as
/// `drive_call!` is for one call): `.await` is passed for the async one.
///
/// Expects `$cache` with `run_many(ops, timeout)`, `$args` the caller's list (`Clone`
/// arguments), `$compute` the caller's `compute_missing`, and `$run` the front-end's way to
/// call it (catching a panic); evaluates to `Result<Ended<T, E>, S>`.
macro_rules! drive_batch {
    ($cache:expr, $batch:ident, $args:expr, $compute:expr, run: $run:path,
        sleep: $sleep:path, follow: $follow:ident $(, .$aw:tt)?) => {{
        let mut compute = $compute;
        // The user's error, or the panic, of compute_missing.
        let mut failure = None;
        loop {
            match $batch.work()? {
                $crate::batch::Work::Store(ops, timeout) => {
                    let replies = $cache.run_many(ops, timeout) $(.$aw)?;
                    $batch.stored(replies)?;
                }
                $crate::batch::Work::Compute(positions) => {
                    let missing: Vec<_> = positions.iter().map(|&p| $args[p].clone()).collect();
                    let outcome = $run(&mut compute, missing) $(.$aw)?;
                    match outcome {
                        Ok(Ok(values)) => $batch.computed(Ok(values))?,
                        Ok(Err(e)) => {
                            failure = Some(Ok(e));
                            $batch.computed(Err($crate::batch::Failure::Failed))?;
                        }
                        Err(panic) => {
                            failure = Some(Err(panic));
                            $batch.computed(Err($crate::batch::Failure::Panicked))?;
                        }
                    }
                }
                $crate::batch::Work::Wait(follows, since, sleep) => {
                    for (i, flight, timeout) in follows {
                        let left = timeout.saturating_sub(since.elapsed());
                        let outcome = flight.$follow(left) $(.$aw)?;
                        $batch.followed(i, outcome)?;
                    }
                    if let Some(pause) = sleep {
                        $sleep(pause) $(.$aw)?;
                        $batch.woke()?;
                    }
                }
                $crate::batch::Work::Done => break,
            }
        }
        match failure {
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            Some(Ok(e)) => {
                // Every call has ended (leases released or held for the throttle).
                drop($batch);
                Ok($crate::batch::Ended::Failed(e))
            }
            None => Ok(match $batch.finish() {
                Ok(values) => $crate::batch::Ended::Values(values),
                Err(e) => $crate::batch::Ended::Broken(e),
            }),
        }
    }};
}

/// Starts timing each op of a batch.
pub(crate) fn start_timers(core: &Core, ops: &[StoreOp]) -> Vec<Option<StoreTimer>> {
    ops.iter().map(|op| core.telemetry.start(op)).collect()
}

/// Ends the timings of a batch's ops.
pub(crate) fn stop_timers(
    core: &Core,
    timers: Vec<Option<StoreTimer>>,
    results: &[Result<StoreReply, Error>],
) {
    for (timer, result) in timers.into_iter().zip(results) {
        core.telemetry.stop(&core.name, timer, result);
    }
}

/// A batch's replies from Redis, the breaker told how the round trip went: a failure to send
/// at all (no connection, an open breaker) is each op's failure.
pub(crate) fn settle_round(
    core: &Core,
    n: usize,
    results: Result<Vec<Result<StoreReply, Error>>, Error>,
) -> Vec<Result<StoreReply, Error>> {
    match results {
        Ok(results) => {
            let failed = results
                .iter()
                .find_map(|r| r.as_ref().err().filter(|e| e.is_backend()));
            match failed {
                Some(e) => core.report::<()>(&Err(e.copy())),
                None => core.report(&Ok(())),
            }
            results
        }
        Err(e) => {
            core.report::<()>(&Err(e.copy()));
            each(n, &e)
        }
    }
}

/// `e` as the failure of each of `n` ops.
pub(crate) fn each(n: usize, e: &Error) -> Vec<Result<StoreReply, Error>> {
    (0..n).map(|_| Err(e.copy())).collect()
}

/// Calls `compute_missing` in a task's future, catching a panic.
async fn run_async<A, T, E, F, Fut>(
    f: &mut F,
    args: Vec<A>,
) -> std::thread::Result<Result<Vec<T>, E>>
where
    F: FnMut(Vec<A>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, E>>,
{
    use futures_util::FutureExt;
    std::panic::AssertUnwindSafe(async move { f(args).await })
        .catch_unwind()
        .await
}

/// Calls `compute_missing` on this thread, catching a panic.
fn run_blocking<A, T, E, F>(f: &mut F, args: Vec<A>) -> std::thread::Result<Result<Vec<T>, E>>
where
    F: FnMut(Vec<A>) -> Result<Vec<T>, E>,
{
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || f(args)))
}

/// Batches, async.
impl crate::Cache {
    /// Returns the cached results of `function` for each arguments of `args_list`, in order,
    /// computing all the missing ones with one call of `compute_missing`.
    ///
    /// The keys are looked up together (one round trip: a function's keys share one
    /// structure, one hash slot on a cluster), `compute_missing` gets only the arguments whose
    /// values are missing (each distinct one once, in the order of their first appearance)
    /// and must return one value per argument, in the same order; the values are then stored
    /// together (one more round trip). Arguments that appear several times are computed once
    /// and their value returned at each of their places.
    ///
    /// Each key behaves as a [`Cache::get_or_compute`](crate::Cache::get_or_compute) of it would: a key another caller is
    /// computing (a caller of this process, or of another process holding the key's lease)
    /// is waited for, not recomputed; stale and expired entries, fail-safe and fail-open are
    /// the same; the stats count each distinct key as a hit or a miss. Should a key waited for
    /// not arrive (its computer failed, or `lock_timeout` passed), `compute_missing` is
    /// called again for such keys: that is why it is `FnMut` (it usually runs once). An empty
    /// list does nothing: no I/O, no call.
    ///
    /// A `compute_missing` that returns a wrong number of values makes the batch fail with
    /// [`ErrorKind::BatchLength`] and stores nothing. A value the codec cannot give back
    /// exactly is returned but not stored, as for a single call.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), fncache::Error> {
    /// let cache = fncache::Cache::builder("doc").memory().build()?;
    /// cache.put("name", &7u64, &"ada".to_owned()).await?;
    /// let names = cache
    ///     .get_or_compute_many("name", &[7u64, 8, 7], |missing: Vec<u64>| async move {
    ///         assert_eq!(missing, [8]); // 7 was cached, and 8 is computed once
    ///         missing.iter().map(|id| format!("user {id}")).collect::<Vec<_>>()
    ///     })
    ///     .await?;
    /// assert_eq!(names, ["ada", "user 8", "ada"]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_or_compute_many<A, T, F, Fut>(
        &self,
        function: &str,
        args_list: &[A],
        compute_missing: F,
    ) -> Result<Vec<T>, Error>
    where
        A: Serialize + Clone,
        T: Serialize + DeserializeOwned + Clone,
        F: FnMut(Vec<A>) -> Fut,
        Fut: Future<Output = Vec<T>>,
    {
        self.get_or_compute_many_with(
            &crate::CallOptions::new(),
            function,
            args_list,
            compute_missing,
        )
        .await
    }

    /// [`Cache::get_or_compute_many`](crate::Cache::get_or_compute_many) with the function's own options, which apply to every
    /// key of the batch (their hooks judge each value, their tags tag each entry).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), fncache::Error> {
    /// let cache = fncache::Cache::builder("doc").memory().build()?;
    /// let options = fncache::CallOptions::new().tags(["users"]);
    /// let squares = cache
    ///     .get_or_compute_many_with(&options, "square", &[2u64, 3], |xs: Vec<u64>| async move {
    ///         xs.iter().map(|x| x * x).collect::<Vec<u64>>()
    ///     })
    ///     .await?;
    /// assert_eq!(squares, [4, 9]);
    /// assert_eq!(cache.invalidate_tag("users").await?, 2);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_or_compute_many_with<O, A, T, F, Fut>(
        &self,
        options: &O,
        function: &str,
        args_list: &[A],
        compute_missing: F,
    ) -> Result<Vec<T>, Error>
    where
        O: Options<T> + ?Sized,
        A: Serialize + Clone,
        T: Serialize + DeserializeOwned + Clone,
        F: FnMut(Vec<A>) -> Fut,
        Fut: Future<Output = Vec<T>>,
    {
        let mut compute_missing = compute_missing;
        let result = self
            .try_get_or_compute_many_with(options, function, args_list, |missing| {
                let values = compute_missing(missing);
                async move { Ok::<Vec<T>, std::convert::Infallible>(values.await) }
            })
            .await?;
        Ok(result.unwrap_or_else(|never| match never {}))
    }

    /// [`Cache::get_or_compute_many`](crate::Cache::get_or_compute_many) for a fallible `compute_missing`: its `Err` is passed
    /// through (inside the `Ok` of the cache's own result) and nothing of it is stored (the
    /// values found in the cache are not returned either: the batch failed).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), fncache::Error> {
    /// let cache = fncache::Cache::builder("doc").memory().build()?;
    /// let found = cache
    ///     .try_get_or_compute_many("find", &[1u64, 2], |ids: Vec<u64>| async move {
    ///         if ids.contains(&2) { Err("2 is gone") } else { Ok(ids) }
    ///     })
    ///     .await?;
    /// assert_eq!(found, Err("2 is gone"));
    /// assert!(!cache.contains("find", &1u64).await?);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn try_get_or_compute_many<A, T, E, F, Fut>(
        &self,
        function: &str,
        args_list: &[A],
        compute_missing: F,
    ) -> Result<Result<Vec<T>, E>, Error>
    where
        A: Serialize + Clone,
        T: Serialize + DeserializeOwned + Clone,
        F: FnMut(Vec<A>) -> Fut,
        Fut: Future<Output = Result<Vec<T>, E>>,
    {
        self.try_get_or_compute_many_with(
            &crate::CallOptions::new(),
            function,
            args_list,
            compute_missing,
        )
        .await
    }

    /// [`Cache::try_get_or_compute_many`](crate::Cache::try_get_or_compute_many) with the function's own options.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), fncache::Error> {
    /// let cache = fncache::Cache::builder("doc").memory().build()?;
    /// let options = fncache::CallOptions::new().cache_if(|n: &u64| *n > 0);
    /// let counts = cache
    ///     .try_get_or_compute_many_with(&options, "count", &["a", "b"], |keys: Vec<&str>| async move {
    ///         Ok::<_, std::io::Error>(keys.iter().map(|k| if *k == "a" { 1 } else { 0 }).collect())
    ///     })
    ///     .await?
    ///     .unwrap();
    /// assert_eq!(counts, [1, 0]);
    /// assert!(!cache.contains("count", &"b").await?); // refused by cache_if
    /// # Ok(())
    /// # }
    /// ```
    pub async fn try_get_or_compute_many_with<O, A, T, E, F, Fut>(
        &self,
        options: &O,
        function: &str,
        args_list: &[A],
        compute_missing: F,
    ) -> Result<Result<Vec<T>, E>, Error>
    where
        O: Options<T> + ?Sized,
        A: Serialize + Clone,
        T: Serialize + DeserializeOwned + Clone,
        F: FnMut(Vec<A>) -> Fut,
        Fut: Future<Output = Result<Vec<T>, E>>,
    {
        self.many::<O, Error, A, T, E, F, Fut>(options, function, args_list, compute_missing)
            .await?
            .into_result()
    }

    /// The one batch path of this front-end; `S` says how the calls' failures surface.
    pub(crate) async fn many<O, S, A, T, E, F, Fut>(
        &self,
        options: &O,
        function: &str,
        args_list: &[A],
        compute_missing: F,
    ) -> Result<Ended<T, E>, S>
    where
        O: Options<T> + ?Sized,
        S: Surface,
        A: Serialize + Clone,
        T: Serialize + DeserializeOwned + Clone,
        F: FnMut(Vec<A>) -> Fut,
        Fut: Future<Output = Result<Vec<T>, E>>,
    {
        if args_list.is_empty() {
            return Ok(Ended::Values(Vec::new()));
        }
        let core = &self.inner.core;
        let ambient = crate::mode::task_ambient();
        let members = args_list
            .iter()
            .map(|args| crate::key::member(function, args))
            .collect();
        let mut batch: Batch<'_, S, T> = Batch::begin(core, function, members, options, &ambient)?;
        drive_batch!(self, batch, args_list, compute_missing, run: run_async,
            sleep: tokio::time::sleep, follow: wait_async, .await)
    }
}

/// Batches, blocking.
impl crate::blocking::Cache {
    /// Returns the cached results of `function` for each arguments of `args_list`, in order,
    /// computing all the missing ones with one call of `compute_missing`; see
    /// [`crate::Cache::get_or_compute_many`].
    ///
    /// ```
    /// let cache = fncache::Cache::builder("doc").memory().build_blocking()?;
    /// cache.put("name", &7u64, &"ada".to_owned())?;
    /// let names = cache.get_or_compute_many("name", &[7u64, 8, 8], |missing: Vec<u64>| {
    ///     assert_eq!(missing, [8]);
    ///     missing.iter().map(|id| format!("user {id}")).collect::<Vec<_>>()
    /// })?;
    /// assert_eq!(names, ["ada", "user 8", "user 8"]);
    /// # Ok::<(), fncache::Error>(())
    /// ```
    pub fn get_or_compute_many<A, T, F>(
        &self,
        function: &str,
        args_list: &[A],
        compute_missing: F,
    ) -> Result<Vec<T>, Error>
    where
        A: Serialize + Clone,
        T: Serialize + DeserializeOwned + Clone,
        F: FnMut(Vec<A>) -> Vec<T>,
    {
        self.get_or_compute_many_with(
            &crate::CallOptions::new(),
            function,
            args_list,
            compute_missing,
        )
    }

    /// [`crate::blocking::Cache::get_or_compute_many`] with the function's own options,
    /// which apply to every key of the batch.
    ///
    /// ```
    /// use std::time::Duration;
    /// let cache = fncache::Cache::builder("doc").memory().build_blocking()?;
    /// let options = fncache::CallOptions::new().entry_ttl(Duration::from_secs(60));
    /// let squares = cache.get_or_compute_many_with(&options, "square", &[2u64, 3], |xs: Vec<u64>| {
    ///     xs.iter().map(|x| x * x).collect::<Vec<u64>>()
    /// })?;
    /// assert_eq!(squares, [4, 9]);
    /// # Ok::<(), fncache::Error>(())
    /// ```
    pub fn get_or_compute_many_with<O, A, T, F>(
        &self,
        options: &O,
        function: &str,
        args_list: &[A],
        compute_missing: F,
    ) -> Result<Vec<T>, Error>
    where
        O: Options<T> + ?Sized,
        A: Serialize + Clone,
        T: Serialize + DeserializeOwned + Clone,
        F: FnMut(Vec<A>) -> Vec<T>,
    {
        let mut compute_missing = compute_missing;
        let result =
            self.try_get_or_compute_many_with(options, function, args_list, |missing| {
                Ok::<Vec<T>, std::convert::Infallible>(compute_missing(missing))
            })?;
        Ok(result.unwrap_or_else(|never| match never {}))
    }

    /// [`crate::blocking::Cache::get_or_compute_many`] for a fallible `compute_missing`; see
    /// [`crate::Cache::try_get_or_compute_many`].
    ///
    /// ```
    /// let cache = fncache::Cache::builder("doc").memory().build_blocking()?;
    /// let parsed = cache.try_get_or_compute_many("parse", &["1", "x"], |texts: Vec<&str>| {
    ///     texts.iter().map(|t| t.parse::<u64>()).collect::<Result<Vec<_>, _>>()
    /// })?;
    /// assert!(parsed.is_err());
    /// assert!(!cache.contains("parse", &"1")?); // nothing of a failed batch is stored
    /// # Ok::<(), fncache::Error>(())
    /// ```
    pub fn try_get_or_compute_many<A, T, E, F>(
        &self,
        function: &str,
        args_list: &[A],
        compute_missing: F,
    ) -> Result<Result<Vec<T>, E>, Error>
    where
        A: Serialize + Clone,
        T: Serialize + DeserializeOwned + Clone,
        F: FnMut(Vec<A>) -> Result<Vec<T>, E>,
    {
        self.try_get_or_compute_many_with(
            &crate::CallOptions::new(),
            function,
            args_list,
            compute_missing,
        )
    }

    /// [`crate::blocking::Cache::try_get_or_compute_many`] with the function's own options.
    ///
    /// ```
    /// let cache = fncache::Cache::builder("doc").memory().build_blocking()?;
    /// let options = fncache::CallOptions::new().cache_none(false);
    /// let found = cache.try_get_or_compute_many_with(&options, "find", &[1u64, 2], |ids: Vec<u64>| {
    ///     Ok::<_, std::io::Error>(ids.iter().map(|&id| (id == 1).then_some(id)).collect())
    /// })?;
    /// assert_eq!(found.unwrap(), [Some(1), None]);
    /// assert!(!cache.contains("find", &2u64)?); // `None` is not stored
    /// # Ok::<(), fncache::Error>(())
    /// ```
    pub fn try_get_or_compute_many_with<O, A, T, E, F>(
        &self,
        options: &O,
        function: &str,
        args_list: &[A],
        compute_missing: F,
    ) -> Result<Result<Vec<T>, E>, Error>
    where
        O: Options<T> + ?Sized,
        A: Serialize + Clone,
        T: Serialize + DeserializeOwned + Clone,
        F: FnMut(Vec<A>) -> Result<Vec<T>, E>,
    {
        self.many::<O, Error, A, T, E, F>(options, function, args_list, compute_missing)?
            .into_result()
    }

    /// The one batch path of this front-end; `S` says how the calls' failures surface.
    pub(crate) fn many<O, S, A, T, E, F>(
        &self,
        options: &O,
        function: &str,
        args_list: &[A],
        compute_missing: F,
    ) -> Result<Ended<T, E>, S>
    where
        O: Options<T> + ?Sized,
        S: Surface,
        A: Serialize + Clone,
        T: Serialize + DeserializeOwned + Clone,
        F: FnMut(Vec<A>) -> Result<Vec<T>, E>,
    {
        if args_list.is_empty() {
            return Ok(Ended::Values(Vec::new()));
        }
        let core = &self.inner.core;
        let ambient = crate::mode::thread_ambient();
        let members = args_list
            .iter()
            .map(|args| crate::key::member(function, args))
            .collect();
        let mut batch: Batch<'_, S, T> = Batch::begin(core, function, members, options, &ambient)?;
        drive_batch!(self, batch, args_list, compute_missing, run: run_blocking,
            sleep: std::thread::sleep, follow: wait_blocking)
    }
}

/// What `#[cached(batch)]` expands to on a blocking function: the cached values of `keys`, the
/// missing ones computed by the function's body (`compute`), in the shape it returns (see
/// [`BatchReturn`]); `salt` goes into every key. Its failures are counted and logged, never
/// returned (the function keeps its own signature); a body that returns a wrong number of
/// values (or a map without one of its keys) has its own result returned, uncached.
#[doc(hidden)]
pub fn batch_blocking<O, K, T, R, F>(
    cache: &crate::blocking::Cache,
    options: &O,
    function: &str,
    salt: &[&str],
    keys: &[K],
    compute: F,
) -> R
where
    O: Options<T> + ?Sized,
    K: Serialize + Clone,
    T: Serialize + DeserializeOwned + Clone,
    R: BatchReturn<K, T>,
    F: FnMut(Vec<K>) -> R,
{
    let (mut own, mut compute) = (None, compute);
    let salted_keys = salted(salt, keys);
    let ended = cache.many::<O, std::convert::Infallible, _, T, std::convert::Infallible, _>(
        options,
        function,
        &salted_keys,
        |missing| {
            let missing = unsalted(missing);
            let returned = compute(missing.clone());
            Ok(values_or_keep(returned, &missing, &mut own))
        },
    );
    match ended {
        Ok(Ended::Values(values)) => R::from_values(keys, values),
        Ok(Ended::Broken(e)) => {
            cache.absorb(function, BROKEN, &e);
            own.unwrap_or_else(|| R::from_values(&[], Vec::new()))
        }
        Ok(Ended::Failed(never)) | Err(never) => match never {},
    }
}

/// [`batch_blocking`] for an `async fn`.
#[doc(hidden)]
pub async fn batch_async<O, K, T, R, F, Fut>(
    cache: &crate::Cache,
    options: &O,
    function: &str,
    salt: &[&str],
    keys: &[K],
    compute: F,
) -> R
where
    O: Options<T> + ?Sized,
    K: Serialize + Clone,
    T: Serialize + DeserializeOwned + Clone,
    R: BatchReturn<K, T>,
    F: FnMut(Vec<K>) -> Fut,
    Fut: Future<Output = R>,
{
    // A mutex, not a cell: the function's future stays `Send` with a reference to it.
    let own = std::sync::Mutex::new(None);
    let (slot, mut compute) = (&own, compute);
    let salted_keys = salted(salt, keys);
    let ended = cache
        .many::<O, std::convert::Infallible, _, T, std::convert::Infallible, _, _>(
            options,
            function,
            &salted_keys,
            |missing| {
                let missing = unsalted(missing);
                let returned = compute(missing.clone());
                async move {
                    let returned = returned.await;
                    let mut own = None;
                    let values = values_or_keep(returned, &missing, &mut own);
                    if own.is_some() {
                        *slot.lock().unwrap_or_else(|e| e.into_inner()) = own;
                    }
                    Ok(values)
                }
            },
        )
        .await;
    match ended {
        Ok(Ended::Values(values)) => R::from_values(keys, values),
        Ok(Ended::Broken(e)) => {
            cache.absorb(function, BROKEN, &e);
            own.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| R::from_values(&[], Vec::new()))
        }
        Ok(Ended::Failed(never)) | Err(never) => match never {},
    }
}

/// What a `#[cached(batch)]` function may return: a `Vec<V>` (one value per key, in the keys'
/// order), or a map from key to value, `HashMap<K, V>` or `BTreeMap<K, V>` (one entry per
/// key: its body gets the missing keys and returns their map; the function returns the map of
/// all its keys).
#[doc(hidden)]
pub trait BatchReturn<K, V>: Sized {
    /// The values of `keys` (distinct), in their order; the body's result itself when it does
    /// not hold exactly one value per key.
    fn into_values(self, keys: &[K]) -> Result<Vec<V>, Self>;
    /// What the function returns for `keys` (in the caller's order, duplicates included) and
    /// their values.
    fn from_values(keys: &[K], values: Vec<V>) -> Self;
}

impl<K, V> BatchReturn<K, V> for Vec<V> {
    fn into_values(self, keys: &[K]) -> Result<Vec<V>, Self> {
        if self.len() == keys.len() {
            Ok(self)
        } else {
            Err(self)
        }
    }

    fn from_values(_: &[K], values: Vec<V>) -> Self {
        values
    }
}

/// A map a batch function may return: what [`BatchReturn`] needs of it, so that one impl
/// serves `HashMap` and `BTreeMap`.
trait KeyedMap<K, V>: FromIterator<(K, V)> {
    fn len(&self) -> usize;
    fn contains(&self, key: &K) -> bool;
    fn take(&mut self, key: &K) -> Option<V>;
}

impl<K, V, S> KeyedMap<K, V> for std::collections::HashMap<K, V, S>
where
    K: std::hash::Hash + Eq,
    S: std::hash::BuildHasher + Default,
{
    fn len(&self) -> usize {
        self.len()
    }
    fn contains(&self, key: &K) -> bool {
        self.contains_key(key)
    }
    fn take(&mut self, key: &K) -> Option<V> {
        self.remove(key)
    }
}

impl<K: Ord, V> KeyedMap<K, V> for std::collections::BTreeMap<K, V> {
    fn len(&self) -> usize {
        self.len()
    }
    fn contains(&self, key: &K) -> bool {
        self.contains_key(key)
    }
    fn take(&mut self, key: &K) -> Option<V> {
        self.remove(key)
    }
}

/// The values of `keys` in their order, when `map` holds exactly one entry per key.
fn map_into_values<K, V, M: KeyedMap<K, V>>(mut map: M, keys: &[K]) -> Result<Vec<V>, M> {
    if map.len() != keys.len() || !keys.iter().all(|k| map.contains(k)) {
        return Err(map);
    }
    // Every key is there once (the keys are distinct and as many as the entries).
    Ok(keys.iter().filter_map(|k| map.take(k)).collect())
}

fn map_from_values<K: Clone, V, M: KeyedMap<K, V>>(keys: &[K], values: Vec<V>) -> M {
    keys.iter().cloned().zip(values).collect()
}

impl<K, V, S> BatchReturn<K, V> for std::collections::HashMap<K, V, S>
where
    K: std::hash::Hash + Eq + Clone,
    S: std::hash::BuildHasher + Default,
{
    fn into_values(self, keys: &[K]) -> Result<Vec<V>, Self> {
        map_into_values(self, keys)
    }
    fn from_values(keys: &[K], values: Vec<V>) -> Self {
        map_from_values(keys, values)
    }
}

impl<K: Ord + Clone, V> BatchReturn<K, V> for std::collections::BTreeMap<K, V> {
    fn into_values(self, keys: &[K]) -> Result<Vec<V>, Self> {
        map_into_values(self, keys)
    }
    fn from_values(keys: &[K], values: Vec<V>) -> Self {
        map_from_values(keys, values)
    }
}

/// Each key with what else tells a decorated function's entries apart (the `Self` of a
/// method, the generic types), as its arguments.
fn salted<'s, K: Clone>(salt: &'s [&'s str], keys: &[K]) -> Vec<(&'s [&'s str], K)> {
    keys.iter().map(|key| (salt, key.clone())).collect()
}

fn unsalted<S, K>(keys: Vec<(S, K)>) -> Vec<K> {
    keys.into_iter().map(|(_, key)| key).collect()
}

const BROKEN: &str = "the batch function returned a wrong number of values (or a map without \
     one of its keys), so its own result is returned and nothing is cached";

/// The values a batch function's body returned for `missing`, in its order; when the body broke
/// the contract, its result goes to `own` (the decorated function then returns it as it is)
/// and no values, which the batch reports as `ErrorKind::BatchLength` (`missing` is never
/// empty: a batch computes only when a key is missing).
fn values_or_keep<K, T, R: BatchReturn<K, T>>(
    returned: R,
    missing: &[K],
    own: &mut Option<R>,
) -> Vec<T> {
    match returned.into_values(missing) {
        Ok(values) => values,
        Err(returned) => {
            *own = Some(returned);
            Vec::new()
        }
    }
}
