//! Cached async functions of every shape where a web server runs them: as the handlers of an
//! axum `Router` (served with `tower::ServiceExt::oneshot`) and inside `tokio::spawn`, on the
//! embedded store and on a real `redis-server`.
//!
//! Compiling this file is half of the test: axum accepts a handler only if its future is
//! `Send`, and so does `tokio::spawn`. The shapes: free functions and methods; owned,
//! borrowed, skipped and `impl`-generic arguments; plain and `Result` returns; and the options
//! that change the path a call takes (`refresh_after` inline and in the background,
//! `wait = false` with `default`, `compute_timeout` borrowed and owned, `strict`,
//! `stampede_protection = false`, `lock_timeout`, and the later `tags`, `cache_if`,
//! `entry_ttl_from`, `ttl_jitter`, `negative_ttl`/`cache_err_if` and `batch`), plus the
//! explicit API with a borrowing closure. The other half asserts the values the handlers answer and how often bodies ran.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fncache::clock::ManualClock;
use fncache::{Cache, Mode};
use fncache_testing::RedisServer;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tower::ServiceExt;

/// How long values of the refreshing functions stay fresh.
const REFRESH: Duration = Duration::from_millis(300);
/// How long entries of the functions with a compute timeout live (then they are a fallback).
const SHORT_TTL: Duration = Duration::from_millis(300);
/// More than both: what the scenario lets pass to make entries stale or expired.
const PAST: Duration = Duration::from_millis(400);

// --- the application -----------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    id: u64,
    name: String,
}

#[derive(Debug)]
pub enum AppError {
    NotFound(String),
    Cache(fncache::Error),
}

impl From<fncache::Error> for AppError {
    fn from(error: fncache::Error) -> Self {
        AppError::Cache(error)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::NotFound(what) => (StatusCode::NOT_FOUND, format!("no {what}")),
            AppError::Cache(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cache: {e}")),
        }
        .into_response()
    }
}

/// A database pool: not serializable (every function skips it), shared by reference across
/// awaits (so the bodies' futures hold a borrow while suspended, as real ones do).
#[derive(Default)]
pub struct Pool {
    queries: AtomicU64,
    /// While closed, gated queries wait for `opened`.
    closed: AtomicBool,
    opened: Notify,
}

impl Pool {
    /// One query: counted, and a real suspension point.
    async fn query(&self) -> u64 {
        tokio::task::yield_now().await;
        self.queries.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// A query that waits while the pool is closed.
    async fn gated_query(&self) -> u64 {
        while self.closed.load(Ordering::SeqCst) {
            let opened = self.opened.notified();
            if !self.closed.load(Ordering::SeqCst) {
                break;
            }
            opened.await;
        }
        self.query().await
    }

    fn queries(&self) -> u64 {
        self.queries.load(Ordering::SeqCst)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    fn open(&self) {
        self.closed.store(false, Ordering::SeqCst);
        self.opened.notify_waiters();
    }
}

impl AsRef<Pool> for Pool {
    fn as_ref(&self) -> &Pool {
        self
    }
}

/// The cache of the free functions: the scenario running (one at a time, see the test).
static CURRENT: Mutex<Option<Cache>> = Mutex::new(None);

fn current() -> Cache {
    CURRENT
        .lock()
        .unwrap()
        .clone()
        .expect("a scenario is running")
}

// --- free functions ------------------------------------------------------------------------

/// The README's headline shape: a skipped borrowed pool, an owned key argument, a `Result`.
#[fncache::cached(cache = current(), skip(db))]
async fn load_user(db: &Pool, id: u64) -> Result<User, AppError> {
    let n = db.query().await;
    if id == 0 {
        return Err(AppError::NotFound(format!("user {id}")));
    }
    Ok(User {
        id,
        name: format!("user{id}@{n}"),
    })
}

/// A borrowed key argument, a plain return.
#[fncache::cached(cache = current(), skip(db))]
async fn greet(db: &Pool, name: &str) -> String {
    let n = db.query().await;
    format!("hello {name} #{n}")
}

/// Generic arguments: a skipped borrowed `impl Trait`, a generic key argument.
#[fncache::cached(cache = current(), skip(db))]
async fn label<T: Serialize + fmt::Display + Send + Sync>(
    db: &(impl AsRef<Pool> + Sync),
    thing: T,
) -> String {
    let n = db.as_ref().query().await;
    format!("<{thing}> #{n}")
}

/// A borrowed argument and an error type with a lifetime of its own (`&'static str`).
#[fncache::cached(cache = current(), skip(db))]
async fn initials(db: &Pool, name: &str) -> Result<String, &'static str> {
    db.query().await;
    let initials: String = name
        .split('-')
        .filter_map(|part| part.chars().next())
        .collect();
    if initials.is_empty() {
        return Err("no name");
    }
    Ok(initials)
}

/// Owned arguments and `refresh_after`: a stale value is served while a task refreshes it.
#[fncache::cached(cache = current(), skip(db), refresh_after = REFRESH)]
async fn rank(db: Arc<Pool>, id: u64) -> Result<u64, AppError> {
    Ok(id * 1000 + db.query().await)
}

/// `wait = false` with a default: a cold miss answers the default and fills in a task.
#[fncache::cached(cache = current(), skip(db), wait = false, default = 0)]
async fn visits(db: Arc<Pool>, page: u64) -> u64 {
    page * 1000 + db.query().await
}

/// Owned arguments and `compute_timeout`: a slow recomputation of an expired entry is left to
/// finish in a task while the stale value is served.
#[fncache::cached(
    cache = current(),
    skip(db),
    entry_ttl = SHORT_TTL,
    max_stale = Duration::from_secs(60),
    compute_timeout = Duration::from_millis(50)
)]
async fn report(db: Arc<Pool>, id: u64) -> Result<String, AppError> {
    Ok(format!("report {id} #{}", db.gated_query().await))
}

// --- the options that came after (tags, value hooks, negative caching, batches) ------------

/// Tags evaluated over a borrowed argument.
#[fncache::cached(cache = current(), skip(db), tags = [format!("name:{name}"), "names"])]
async fn tagged(db: &Pool, name: &str) -> String {
    format!("tagged {name} #{}", db.query().await)
}

/// Value hooks (and jitter) over a borrowed call's `Result`.
#[fncache::cached(
    cache = current(),
    skip(db),
    cache_if = |v: &String| !v.is_empty(),
    entry_ttl_from = |v: &String| Duration::from_secs(60 + v.len() as u64),
    ttl_jitter = Duration::from_millis(10)
)]
async fn hooked(db: &Pool, name: &str) -> Result<String, AppError> {
    Ok(format!("hooked {name} #{}", db.query().await))
}

/// An error negative caching stores (it is serialized with the entry).
#[derive(Debug, Serialize, Deserialize)]
pub struct Missing(String);

/// Negative caching of a borrowed call's error.
#[fncache::cached(
    cache = current(),
    skip(db),
    negative_ttl = Duration::from_secs(60),
    cache_err_if = |e: &Missing| !e.0.is_empty()
)]
async fn negative(db: &Pool, name: &str) -> Result<String, Missing> {
    let n = db.query().await;
    if name.starts_with('x') {
        return Err(Missing(format!("{name} #{n}")));
    }
    Ok(format!("negative {name} #{n}"))
}

/// A batch over a borrowed list, with a skipped borrowed pool.
#[fncache::cached(batch, cache = current(), skip(db))]
async fn lengths(db: &Pool, words: &[String]) -> Vec<u64> {
    let n = db.query().await;
    words.iter().map(|w| w.len() as u64 * 1000 + n).collect()
}

// --- methods -------------------------------------------------------------------------------

pub struct Repo {
    cache: Cache,
    pool: Arc<Pool>,
}

impl Repo {
    /// `&self` skipped, an owned key argument, a `Result`.
    #[fncache::cached(cache = self.cache, skip(self))]
    async fn user(&self, id: u64) -> Result<User, AppError> {
        load_user_uncached(&self.pool, id).await
    }

    /// A borrowed key argument and `strict = true`: backend errors would be `AppError::Cache`.
    #[fncache::cached(cache = self.cache, skip(self), strict = true)]
    async fn user_by_name(&self, name: &str) -> Result<User, AppError> {
        let n = self.pool.query().await;
        if name.is_empty() {
            return Err(AppError::NotFound("name".to_owned()));
        }
        Ok(User {
            id: n,
            name: name.to_owned(),
        })
    }

    /// `refresh_after` with a borrowed argument: the caller who finds it stale refreshes
    /// inline.
    #[fncache::cached(cache = self.cache, skip(self), refresh_after = REFRESH)]
    async fn greeting(&self, name: &str) -> String {
        let n = self.pool.query().await;
        format!("hi {name} #{n}")
    }

    /// A generic key argument and a skipped `impl Fn`, without stampede protection.
    #[fncache::cached(cache = self.cache, skip(self, audit), stampede_protection = false)]
    async fn describe<T: Serialize + fmt::Display + Send + Sync>(
        &self,
        thing: T,
        audit: impl Fn(&str) + Send + Sync,
    ) -> String {
        let n = self.pool.query().await;
        audit("describe");
        format!("[{thing}] #{n}")
    }

    /// `compute_timeout` on the borrowed path (the slow future is kept and dropped with the
    /// call), with a `lock_timeout` of its own.
    #[fncache::cached(
        cache = self.cache,
        skip(self),
        entry_ttl = SHORT_TTL,
        max_stale = Duration::from_secs(60),
        compute_timeout = Duration::from_millis(50),
        lock_timeout = Duration::from_secs(2)
    )]
    async fn summary(&self, id: u64) -> Result<String, AppError> {
        Ok(format!("summary {id} #{}", self.pool.gated_query().await))
    }

    /// An associated function with owned arguments: background refresh.
    #[fncache::cached(cache = current(), skip(pool), refresh_after = REFRESH)]
    async fn trending(pool: Arc<Pool>, page: u64) -> Vec<u64> {
        vec![page, pool.query().await]
    }

    /// The explicit API, with a closure that borrows `self` and `name`.
    async fn shout(&self, name: &str) -> Result<String, AppError> {
        // The cache's error, then the function's.
        let text = self
            .cache
            .try_get_or_compute("shout", &(name,), || async {
                let n = self.pool.query().await;
                Ok::<_, AppError>(format!("{} #{n}", name.to_uppercase()))
            })
            .await??;
        Ok(text)
    }

    /// The explicit API's `?`-shaped variant.
    async fn whisper(&self, name: &str) -> Result<String, AppError> {
        let text = self
            .cache
            .get_or_try_compute("whisper", &(name,), || async {
                let n = self.pool.query().await;
                if name.is_empty() {
                    return Err(AppError::NotFound("name".to_owned()));
                }
                Ok(format!("{} #{n}", name.to_lowercase()))
            })
            .await?;
        Ok(format!("({text})"))
    }
}

// --- handlers ------------------------------------------------------------------------------

#[derive(Clone)]
pub struct App {
    repo: Arc<Repo>,
}

async fn user_handler(State(app): State<App>, Path(id): Path<u64>) -> Result<String, AppError> {
    let user = load_user(&app.repo.pool, id).await?;
    Ok(user.name)
}

async fn repo_user(State(app): State<App>, Path(id): Path<u64>) -> Result<String, AppError> {
    Ok(app.repo.user(id).await?.name)
}

async fn by_name(State(app): State<App>, Path(name): Path<String>) -> Result<String, AppError> {
    let user = app.repo.user_by_name(&name).await?;
    Ok(format!("{}={}", user.name, user.id))
}

async fn greet_handler(State(app): State<App>, Path(name): Path<String>) -> String {
    format!(
        "{} / {}",
        greet(&app.repo.pool, &name).await,
        app.repo.greeting(&name).await
    )
}

async fn label_handler(State(app): State<App>, Path(n): Path<u64>) -> String {
    let word = format!("w{n}");
    format!(
        "{} / {}",
        label(&app.repo.pool, n).await,
        app.repo.describe(word.as_str(), |_| {}).await
    )
}

async fn initials_handler(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<String, (StatusCode, &'static str)> {
    initials(&app.repo.pool, &name)
        .await
        .map_err(|e| (StatusCode::BAD_REQUEST, e))
}

async fn rank_handler(State(app): State<App>, Path(id): Path<u64>) -> Result<String, AppError> {
    Ok(rank(app.repo.pool.clone(), id).await?.to_string())
}

async fn visits_handler(State(app): State<App>, Path(page): Path<u64>) -> String {
    visits(app.repo.pool.clone(), page).await.to_string()
}

async fn report_handler(State(app): State<App>, Path(id): Path<u64>) -> Result<String, AppError> {
    report(app.repo.pool.clone(), id).await
}

async fn summary_handler(State(app): State<App>, Path(id): Path<u64>) -> Result<String, AppError> {
    app.repo.summary(id).await
}

async fn trending_handler(State(app): State<App>, Path(page): Path<u64>) -> String {
    format!("{:?}", Repo::trending(app.repo.pool.clone(), page).await)
}

async fn later_handler(State(app): State<App>, Path(name): Path<String>) -> String {
    let pool = &app.repo.pool;
    let words = [name.clone(), format!("{name}{name}")];
    format!(
        "{} / {:?} / {:?} / {:?}",
        tagged(pool, &name).await,
        hooked(pool, &name).await.ok(),
        negative(pool, &name).await,
        lengths(pool, &words).await
    )
}

async fn shout_handler(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<String, AppError> {
    app.repo.shout(&name).await
}

async fn whisper_handler(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<String, AppError> {
    app.repo.whisper(&name).await
}

fn router(app: App) -> Router {
    Router::new()
        .route("/users/{id}", get(user_handler))
        .route("/repo/users/{id}", get(repo_user))
        .route("/by-name/{name}", get(by_name))
        .route("/greet/{name}", get(greet_handler))
        .route("/label/{n}", get(label_handler))
        .route("/initials/{name}", get(initials_handler))
        .route("/rank/{id}", get(rank_handler))
        .route("/visits/{page}", get(visits_handler))
        .route("/report/{id}", get(report_handler))
        .route("/summary/{id}", get(summary_handler))
        .route("/trending/{page}", get(trending_handler))
        .route("/shout/{name}", get(shout_handler))
        .route("/whisper/{name}", get(whisper_handler))
        .route("/later/{name}", get(later_handler))
        .with_state(app)
}

// --- compile-time checks -------------------------------------------------------------------

fn assert_send<T: Send>(_: &T) {}

/// Every function's future is `Send`, with arguments borrowed from locals.
#[allow(dead_code)]
fn futures_are_send(repo: &Repo, pool: &Arc<Pool>) {
    let name = String::from("local");
    let name = name.as_str();
    assert_send(&load_user(pool, 1));
    assert_send(&greet(pool, name));
    assert_send(&label(pool, name));
    assert_send(&initials(pool, name));
    assert_send(&repo.cache.try_get_or_compute("f", &(name,), || async {
        Ok::<_, &'static str>(name.len())
    }));
    assert_send(&rank(pool.clone(), 1));
    assert_send(&visits(pool.clone(), 1));
    assert_send(&report(pool.clone(), 1));
    assert_send(&repo.user(1));
    assert_send(&repo.user_by_name(name));
    assert_send(&repo.greeting(name));
    assert_send(&repo.describe(name, |_| {}));
    assert_send(&repo.summary(1));
    assert_send(&Repo::trending(pool.clone(), 1));
    assert_send(&repo.shout(name));
    assert_send(&repo.whisper(name));
    assert_send(&tagged(pool, name));
    assert_send(&hooked(pool, name));
    assert_send(&negative(pool, name));
    let words = [name.to_owned()];
    assert_send(&lengths(pool, &words));
    assert_send(&load_user_is_cached(&1));
    assert_send(&greet_invalidate(&name));
    assert_send(
        &repo
            .cache
            .get_or_compute("f", &(name,), || async { name.len() }),
    );
}

// --- the scenario --------------------------------------------------------------------------

/// One store: the cache, a way to let time pass for its entries, the app.
struct Scenario {
    who: &'static str,
    server: Option<RedisServer>,
    clock: Arc<ManualClock>,
    cache: Cache,
    app: App,
    router: Router,
}

impl Scenario {
    fn new(server: Option<RedisServer>) -> Scenario {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "web{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let clock = Arc::new(ManualClock::new());
        let builder = Cache::builder(name).clock(clock.clone());
        let cache = match &server {
            Some(server) => builder.redis(server.url()),
            None => builder.memory(),
        }
        .build()
        .unwrap();
        *CURRENT.lock().unwrap() = Some(cache.clone());
        let app = App {
            repo: Arc::new(Repo {
                cache: cache.clone(),
                pool: Arc::new(Pool::default()),
            }),
        };
        Scenario {
            who: if server.is_some() { "redis" } else { "memory" },
            server,
            clock,
            cache,
            router: router(app.clone()),
            app,
        }
    }

    fn pool(&self) -> &Pool {
        &self.app.repo.pool
    }

    /// Serves one GET request: its status and body.
    async fn get(&self, uri: &str) -> (StatusCode, String) {
        let request = Request::get(uri).body(Body::empty()).unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    /// The body of a GET request that must succeed.
    async fn ok(&self, uri: &str) -> String {
        let (status, body) = self.get(uri).await;
        assert_eq!(status, StatusCode::OK, "{}: GET {uri}: {body}", self.who);
        body
    }

    /// Counts the pool's queries made by `f`.
    async fn queries<R>(&self, f: impl Future<Output = R>) -> (R, u64) {
        let before = self.pool().queries();
        let out = f.await;
        (out, self.pool().queries() - before)
    }

    /// Lets time pass for the entries: the manual clock of the embedded store; on Redis, whose
    /// own clock judges freshness, real time.
    async fn pass(&self, time: Duration) {
        if self.server.is_some() {
            tokio::time::sleep(time).await;
        } else {
            self.clock.advance(time);
        }
    }

    /// Waits for background work to reach a state (the deadline turns a hang into a failure).
    async fn eventually(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{}: never happened: {what}",
                self.who
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Each route answers from the cache the second time.
async fn handlers_answer_cached_values(s: &Scenario) {
    let who = s.who;
    let (first, ran) = s.queries(s.ok("/users/7")).await;
    assert_eq!((first.as_str(), ran), ("user7@1", 1), "{who}");
    let (again, ran) = s.queries(s.ok("/users/7")).await;
    assert_eq!((again, ran), (first, 0), "{who}: cached");
    // An error is answered as the handler's error, and never cached.
    for _ in 0..2 {
        let ((status, body), ran) = s.queries(s.get("/users/0")).await;
        assert_eq!(
            (status, body.as_str(), ran),
            (StatusCode::NOT_FOUND, "no user 0", 1),
            "{who}"
        );
    }

    let (first, ran) = s.queries(s.ok("/repo/users/8")).await;
    assert_eq!((first.as_str(), ran), ("user8@4", 1), "{who}");
    assert_eq!(s.queries(s.ok("/repo/users/8")).await, (first, 0), "{who}");

    let (first, ran) = s.queries(s.ok("/by-name/ada")).await;
    assert_eq!((first.as_str(), ran), ("ada=5", 1), "{who}");
    assert_eq!(s.queries(s.ok("/by-name/ada")).await, (first, 0), "{who}");

    let (first, ran) = s.queries(s.ok("/greet/bob")).await;
    assert_eq!(
        (first.as_str(), ran),
        ("hello bob #6 / hi bob #7", 2),
        "{who}"
    );
    assert_eq!(s.queries(s.ok("/greet/bob")).await, (first, 0), "{who}");

    let (first, ran) = s.queries(s.ok("/label/3")).await;
    assert_eq!((first.as_str(), ran), ("<3> #8 / [w3] #9", 2), "{who}");
    assert_eq!(s.queries(s.ok("/label/3")).await, (first, 0), "{who}");

    let (first, ran) = s.queries(s.ok("/initials/ada-lovelace")).await;
    assert_eq!((first.as_str(), ran), ("al", 1), "{who}");
    assert_eq!(
        s.queries(s.ok("/initials/ada-lovelace")).await,
        (first, 0),
        "{who}"
    );
    let ((status, body), ran) = s.queries(s.get("/initials/-")).await;
    assert_eq!(
        (status, body.as_str(), ran),
        (StatusCode::BAD_REQUEST, "no name", 1),
        "{who}"
    );

    let (first, ran) = s.queries(s.ok("/shout/eve")).await;
    assert_eq!((first.as_str(), ran), ("EVE #12", 1), "{who}");
    assert_eq!(s.queries(s.ok("/shout/eve")).await, (first, 0), "{who}");

    let (first, ran) = s.queries(s.ok("/whisper/EVE")).await;
    assert_eq!((first.as_str(), ran), ("(eve #13)", 1), "{who}");
    assert_eq!(s.queries(s.ok("/whisper/EVE")).await, (first, 0), "{who}");
}

/// The options that take another path: background and inline refresh, a default answered at
/// once, recomputations abandoned at the compute timeout.
async fn handlers_take_every_path(s: &Scenario) {
    let who = s.who;
    let base = s.pool().queries();

    // refresh_after, owned: the stale value at once, the new one after a task refreshed it.
    let first = s.ok("/rank/2").await;
    assert_eq!(first, (2000 + base + 1).to_string(), "{who}");
    let trending = s.ok("/trending/4").await;
    assert_eq!(trending, format!("[4, {}]", base + 2), "{who}");
    s.pass(PAST).await;
    assert_eq!(
        s.ok("/rank/2").await,
        first,
        "{who}: stale, refreshing in a task"
    );
    assert_eq!(s.ok("/trending/4").await, trending, "{who}: stale");
    s.eventually("both refreshes", || s.cache.stats().refreshes == 2)
        .await;
    let refreshed = s.ok("/rank/2").await;
    assert_ne!(refreshed, first, "{who}: refreshed in the background");
    assert_ne!(s.ok("/trending/4").await, trending, "{who}");

    // refresh_after, borrowed: the caller refreshes inline and gets the new value.
    let greeted = s.ok("/greet/cy").await;
    s.pass(PAST).await;
    let (again, ran) = s.queries(s.ok("/greet/cy")).await;
    assert_eq!(
        ran, 1,
        "{who}: only the method refreshes (the free fn has no refresh_after)"
    );
    assert_ne!(again, greeted, "{who}: refreshed inline");

    // wait = false with a default: 0 at once, the value after a task filled the cache.
    let writes = s.cache.stats().writes;
    assert_eq!(s.ok("/visits/9").await, "0", "{who}: the default");
    s.eventually("the fill", || s.cache.stats().writes == writes + 1)
        .await;
    let filled = s.ok("/visits/9").await;
    assert_eq!(
        filled.parse::<u64>().unwrap() / 1000,
        9,
        "{who}: the filled value: {filled}"
    );

    // compute_timeout, owned and borrowed: an expired entry's slow recomputation is abandoned
    // for the stale value; the owned one goes on in a task and stores its value.
    let report = s.ok("/report/1").await;
    let summary = s.ok("/summary/1").await;
    s.pass(PAST).await;
    s.pool().close();
    assert_eq!(
        s.ok("/report/1").await,
        report,
        "{who}: stale past the timeout"
    );
    assert_eq!(
        s.ok("/summary/1").await,
        summary,
        "{who}: stale past the timeout"
    );
    let writes = s.cache.stats().writes;
    s.pool().open();
    s.eventually("the abandoned recomputation stores its value", || {
        s.cache.stats().writes == writes + 1
    })
    .await;
    assert_ne!(s.ok("/report/1").await, report, "{who}: the task's value");
}

/// Each function, and each handler, as a task of its own.
async fn tasks_run_every_shape(s: &Scenario) {
    let who = s.who;
    let app = s.app.clone();
    let mut tasks = tokio::task::JoinSet::new();
    {
        let app = app.clone();
        tasks.spawn(async move {
            let pool = &app.repo.pool;
            let name = String::from("tasks");
            let user = load_user(pool, 11).await.unwrap();
            let greeting = greet(pool, &name).await;
            let label = label(pool, &name).await;
            let initials = initials(pool, &name).await.unwrap();
            format!("{}|{greeting}|{label}|{initials}", user.id)
        });
    }
    {
        let app = app.clone();
        tasks.spawn(async move {
            let repo = &app.repo;
            let name = String::from("tasks");
            let user = repo.user(12).await.unwrap();
            let by_name = repo.user_by_name(&name).await.unwrap();
            let greeting = repo.greeting(&name).await;
            let described = repo
                .describe(name.as_str(), |what: &str| assert_eq!(what, "describe"))
                .await;
            let summary = repo.summary(12).await.unwrap();
            let shout = repo.shout(&name).await.unwrap();
            let whisper = repo.whisper(&name).await.unwrap();
            format!(
                "{}|{}|{greeting}|{described}|{summary}|{shout}|{whisper}",
                user.id, by_name.name
            )
        });
    }
    {
        let pool = app.repo.pool.clone();
        tasks.spawn(async move {
            let rank = rank(pool.clone(), 13).await.unwrap();
            let visits = visits(pool.clone(), 13).await;
            let report = report(pool.clone(), 13).await.unwrap();
            let trending = Repo::trending(pool, 13).await;
            format!("{rank}|{visits}|{report}|{trending:?}")
        });
    }
    {
        let app = app.clone();
        tasks.spawn(async move {
            let name = user_handler(State(app.clone()), Path(14)).await.unwrap();
            let greeted = greet_handler(State(app.clone()), Path("h".to_owned())).await;
            let whisper = whisper_handler(State(app), Path(String::new())).await;
            assert!(
                matches!(whisper, Err(AppError::NotFound(_))),
                "the handler's own error"
            );
            format!("{name}|{greeted}")
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        answers.push(answer.unwrap());
    }
    assert_eq!(answers.len(), 4, "{who}");
    // The same calls again, now from the cache: the same answers, no query.
    let queries = s.pool().queries();
    let pool = &app.repo.pool;
    assert_eq!(load_user(pool, 11).await.unwrap().id, 11, "{who}");
    assert_eq!(app.repo.user(12).await.unwrap().id, 12, "{who}");
    assert_eq!(
        app.repo.shout("tasks").await.unwrap(),
        greeted_part(&answers, "TASKS"),
        "{who}"
    );
    assert_eq!(s.pool().queries(), queries, "{who}: all cached");
}

/// The options that came after the first trial (tags, value hooks, negative caching, batches):
/// in a handler and in a task, and served from the cache the second time (the error too).
async fn later_options_serve_handlers_and_tasks(s: &Scenario) {
    let who = s.who;
    for name in ["bob", "xavier"] {
        let uri = format!("/later/{name}");
        let (first, queries) = s.queries(s.ok(&uri)).await;
        assert_eq!(queries, 4, "{who}: {first}");
        let (second, queries) = s.queries(s.ok(&uri)).await;
        assert_eq!((second.as_str(), queries), (first.as_str(), 0), "{who}");
    }
    let app = s.app.clone();
    let task = tokio::spawn(async move {
        let pool = &app.repo.pool;
        let name = String::from("task");
        let words = vec![name.clone()];
        let tagged = tagged(pool, &name).await;
        let hooked = hooked(pool, &name).await.unwrap();
        let negative = negative(pool, "xtask").await.unwrap_err();
        let lengths = lengths(pool, &words).await;
        format!("{tagged}|{hooked}|{negative:?}|{lengths:?}")
    });
    let answer = task.await.unwrap();
    assert!(answer.starts_with("tagged task #"), "{who}: {answer}");
    assert!(answer.contains("Missing(\"xtask #"), "{who}: {answer}");
}

/// The `TASKS #n` part of the answers.
fn greeted_part(answers: &[String], prefix: &str) -> String {
    answers
        .iter()
        .flat_map(|a| a.split('|'))
        .find(|part| part.starts_with(prefix))
        .unwrap()
        .to_owned()
}

/// The `?`-shaped explicit API hands the cache's own error to the handler's error type.
async fn cache_errors_become_the_handlers_error(s: &Scenario) {
    let refuse = Mode {
        read: true,
        write: false,
        exec: false,
    };
    let error = s
        .cache
        .with_mode(refuse, s.app.repo.whisper("nobody"))
        .await
        .unwrap_err();
    match error {
        AppError::Cache(e) => assert!(e.is_miss(), "{}: {e}", s.who),
        AppError::NotFound(what) => panic!("{}: not the cache's error: {what}", s.who),
    }
}

#[test]
fn every_shape_serves_requests_and_runs_in_tasks_on_every_store() {
    // One scenario at a time: the free functions use the cache of the running one.
    for redis in [false, true] {
        let scenario = Scenario::new(redis.then(RedisServer::spawn));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            handlers_answer_cached_values(&scenario).await;
            handlers_take_every_path(&scenario).await;
            tasks_run_every_shape(&scenario).await;
            cache_errors_become_the_handlers_error(&scenario).await;
            later_options_serve_handlers_and_tasks(&scenario).await;
        });
    }
}
