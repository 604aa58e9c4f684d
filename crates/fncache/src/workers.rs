//! A small bounded pool of threads for the blocking front-end's background work (refreshing
//! stale entries, filling the cache after a default was served).
//!
//! Threads start on first use, so a cache that never refreshes costs nothing. The queue is
//! bounded: when it is full the job is refused, and the caller simply does not refresh this
//! time (the entry stays stale and a later call tries again). Background work must never pile
//! up without bound behind a slow function.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;

/// A unit of background work.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// The pool of one cache (shared by its clones).
#[derive(Debug)]
pub(crate) struct Workers {
    threads: usize,
    queue: usize,
    sender: OnceLock<Option<SyncSender<Job>>>,
}

impl Workers {
    /// A pool of `threads` workers and room for `queue` waiting jobs.
    pub(crate) fn new(threads: usize, queue: usize) -> Workers {
        Workers {
            threads: threads.max(1),
            queue,
            sender: OnceLock::new(),
        }
    }

    /// Queues `job`; gives it back when the queue is full or no worker could be started.
    pub(crate) fn submit(&self, job: Job) -> Result<(), Job> {
        let Some(sender) = self.sender.get_or_init(|| self.start()) else {
            return Err(job);
        };
        sender.try_send(job).map_err(|e| match e {
            TrySendError::Full(job) | TrySendError::Disconnected(job) => job,
        })
    }

    fn start(&self) -> Option<SyncSender<Job>> {
        let (sender, receiver) = sync_channel::<Job>(self.queue);
        let receiver = Arc::new(Mutex::new(receiver));
        let mut started = 0;
        for i in 0..self.threads {
            let receiver = Arc::clone(&receiver);
            let spawned = thread::Builder::new()
                .name(format!("fncache-worker-{i}"))
                .spawn(move || work(&receiver));
            if spawned.is_ok() {
                started += 1;
            }
        }
        (started > 0).then_some(sender)
    }
}

/// A worker's loop: run jobs until every sender is gone. A panicking job is contained (the
/// caller already got its answer; the refresh is just lost).
fn work(receiver: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let guard = receiver.lock().unwrap_or_else(|e| e.into_inner());
            guard.recv()
        };
        let Ok(job) = job else { return };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    #[test]
    fn runs_jobs_and_survives_a_panicking_one() {
        let workers = Workers::new(2, 8);
        let (tx, rx) = channel();
        assert!(
            workers
                .submit(Box::new(|| panic!("a failing refresh")))
                .is_ok()
        );
        for i in 0..4 {
            let tx = tx.clone();
            assert!(
                workers
                    .submit(Box::new(move || tx.send(i).unwrap()))
                    .is_ok()
            );
        }
        let mut got: Vec<i32> = (0..4)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2, 3]);
    }

    #[test]
    fn a_full_queue_refuses_work() {
        let workers = Workers::new(1, 1);
        let (release, wait) = channel::<()>();
        let (started, is_started) = channel::<()>();
        assert!(
            workers
                .submit(Box::new(move || {
                    started.send(()).unwrap();
                    let _ = wait.recv();
                }))
                .is_ok()
        );
        is_started.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(
            workers.submit(Box::new(|| {})).is_ok(),
            "one job fits in the queue"
        );
        assert!(
            workers.submit(Box::new(|| {})).is_err(),
            "the next one is refused"
        );
        release.send(()).unwrap();
    }
}
