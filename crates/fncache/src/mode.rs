//! Modes (read / write / exec switches) and the scopes that carry them, and scoped stats
//! collectors, per thread (blocking front-end) or per task (async front-end).

use std::cell::RefCell;
use std::sync::Arc;

use crate::stats::Counters;

/// What a call may do: read the cache, write it, execute the function.
///
/// Set it for a region of code with `with_mode` on either front-end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mode {
    /// Look the value up in the cache.
    pub read: bool,
    /// Store a computed value.
    pub write: bool,
    /// Run the function when the cache has no value (`false` turns a miss into an error).
    pub exec: bool,
}

impl Mode {
    /// Read, compute on a miss, store: normal caching.
    pub const DEFAULT: Mode = Mode {
        read: true,
        write: true,
        exec: true,
    };
    /// Skip the cache entirely: always compute, never read or store.
    pub const BYPASS: Mode = Mode {
        read: false,
        write: false,
        exec: true,
    };
    /// Read; on a miss compute but do not store.
    pub const READ_ONLY: Mode = Mode {
        read: true,
        write: false,
        exec: true,
    };
    /// Always compute and overwrite the stored value.
    pub const WRITE_ONLY: Mode = Mode {
        read: false,
        write: true,
        exec: true,
    };
}

impl Default for Mode {
    fn default() -> Self {
        Mode::DEFAULT
    }
}

/// Identifies one cache (all clones of it) inside scopes.
pub(crate) type CacheId = u64;

/// The modes and stats collectors in force for the current thread or task.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ambient {
    modes: Vec<(CacheId, Mode)>,
    collectors: Vec<(CacheId, Arc<Counters>)>,
}

impl Ambient {
    /// The innermost mode set for `cache`, or the default.
    pub(crate) fn mode(&self, cache: CacheId) -> Mode {
        self.modes
            .iter()
            .rev()
            .find(|(id, _)| *id == cache)
            .map(|(_, m)| *m)
            .unwrap_or_default()
    }

    /// Every collector open for `cache` (nested scopes all see the call).
    pub(crate) fn collectors(&self, cache: CacheId) -> Vec<Arc<Counters>> {
        // Every call asks, almost always of no scope: an iterator and its `collect` cost
        // more than the rest of that answer.
        if self.collectors.is_empty() {
            return Vec::new();
        }
        self.collectors
            .iter()
            .filter(|(id, _)| *id == cache)
            .map(|(_, c)| Arc::clone(c))
            .collect()
    }

    pub(crate) fn with_mode(mut self, cache: CacheId, mode: Mode) -> Ambient {
        self.modes.push((cache, mode));
        self
    }

    pub(crate) fn with_collector(mut self, cache: CacheId, counters: Arc<Counters>) -> Ambient {
        self.collectors.push((cache, counters));
        self
    }
}

thread_local! {
    static THREAD_AMBIENT: RefCell<Ambient> = RefCell::new(Ambient::default());
}

/// The ambient of the current thread (blocking front-end).
pub(crate) fn thread_ambient() -> Ambient {
    // Most threads never set a scope: their ambient is empty, and a default one costs less
    // than a clone.
    THREAD_AMBIENT.with(|a| {
        let a = a.borrow();
        if a.modes.is_empty() && a.collectors.is_empty() {
            Ambient::default()
        } else {
            a.clone()
        }
    })
}

/// Runs `f` with `ambient` installed on this thread, restoring the previous one afterwards,
/// also when `f` panics.
pub(crate) fn in_thread_ambient<R>(ambient: Ambient, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Ambient>);
    impl Drop for Restore {
        fn drop(&mut self) {
            if let Some(previous) = self.0.take() {
                THREAD_AMBIENT.with(|a| *a.borrow_mut() = previous);
            }
        }
    }
    let previous = THREAD_AMBIENT.with(|a| std::mem::replace(&mut *a.borrow_mut(), ambient));
    let _restore = Restore(Some(previous));
    f()
}

tokio::task_local! {
    static TASK_AMBIENT: Ambient;
}

/// The ambient of the current task (async front-end); the default outside any scope.
pub(crate) fn task_ambient() -> Ambient {
    TASK_AMBIENT.try_with(|a| a.clone()).unwrap_or_default()
}

/// Runs `fut` with `ambient` installed for the task.
pub(crate) async fn in_task_ambient<F: std::future::Future>(ambient: Ambient, fut: F) -> F::Output {
    TASK_AMBIENT.scope(ambient, fut).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn innermost_mode_of_the_right_cache_wins() {
        let a = Ambient::default()
            .with_mode(1, Mode::BYPASS)
            .with_mode(2, Mode::READ_ONLY)
            .with_mode(1, Mode::WRITE_ONLY);
        assert_eq!(a.mode(1), Mode::WRITE_ONLY);
        assert_eq!(a.mode(2), Mode::READ_ONLY);
        assert_eq!(a.mode(3), Mode::DEFAULT);
    }

    #[test]
    fn thread_ambient_is_restored_after_a_panic() {
        let result = std::panic::catch_unwind(|| {
            in_thread_ambient(Ambient::default().with_mode(9, Mode::BYPASS), || {
                assert_eq!(thread_ambient().mode(9), Mode::BYPASS);
                panic!("boom");
            })
        });
        assert!(result.is_err());
        assert_eq!(thread_ambient().mode(9), Mode::DEFAULT);
    }
}
