//! `fncache top`: the shared per-function counters and the entries of each cache, sampled
//! every interval, with rates from the difference between two samples.
//!
//! On a terminal (stdout), without `--once`, `--iterations` or `--json`, the view takes the
//! alternate screen in raw mode and redraws in place until q, Esc or Ctrl-C, then puts the
//! terminal back as it was (also when a sample fails). Otherwise frames are printed one after
//! the other: `--iterations N` of them (`--once`: one), a blank line between two tables, or
//! one JSON document per line with `--json`; when stdout is not a terminal and neither says
//! how many, one frame.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use crossterm::{cursor, execute, queue, terminal};
use fncache::__admin::{Admin, CacheInfo};
use fncache::{Layout, Stats};
use serde_json::{Value, json};

use crate::table::{Align, Table, bytes, cut};
use crate::{Failure, OPERATIONAL, layout_name};

/// Which caches to watch, and how.
pub(crate) struct Watch<'a> {
    pub(crate) prefix: &'a str,
    /// A cache name, and a policy tag to tell caches of that name apart.
    pub(crate) cache: Option<(&'a str, Option<&'a str>)>,
    pub(crate) interval: Duration,
    /// Frames to print; `None`: until the user quits (on a terminal).
    pub(crate) frames: Option<u64>,
    pub(crate) json: bool,
}

/// One cache's counters and entries at one moment.
#[derive(Debug, Clone)]
struct CacheSample {
    name: String,
    policy: &'static str,
    layout: Layout,
    entries: u64,
    memory: Option<u64>,
    total: Stats,
    functions: BTreeMap<String, FunctionSample>,
}

#[derive(Debug, Clone)]
struct FunctionSample {
    stats: Stats,
    /// Exact in the per-function layouts only (`None` elsewhere).
    entries: Option<u64>,
    memory: Option<u64>,
}

/// Every watched cache at one moment.
#[derive(Debug, Clone)]
struct Sample {
    at: Instant,
    /// The server's clock (microseconds since the epoch).
    server_us: u64,
    caches: Vec<CacheSample>,
}

/// What a row shows: totals, and rates over the interval since the previous sample.
#[derive(Debug, Clone, PartialEq)]
struct Rates {
    calls: u64,
    calls_per_s: Option<f64>,
    misses_per_s: Option<f64>,
    /// Over the interval; `None` when it had no reads (or on the first frame).
    hit_ratio: Option<f64>,
    hit_ratio_total: Option<f64>,
    errors: u64,
}

/// Totals of `now`, rates against `before` over `secs` seconds. A counter that went down
/// (the counters' key expired or was deleted) counts as no change.
fn rates(now: &Stats, before: Option<&Stats>, secs: f64) -> Rates {
    let per_s = |new: u64, old: u64| {
        // Counters fit an f64 exactly up to 2^53; a rate needs no more.
        #[allow(clippy::cast_precision_loss)]
        let delta = new.saturating_sub(old) as f64;
        delta / secs
    };
    let (calls_per_s, misses_per_s, hit_ratio) = match before {
        Some(old) if secs > 0.0 => {
            let mut delta = Stats::default();
            delta.hits = now.hits.saturating_sub(old.hits);
            delta.misses = now.misses.saturating_sub(old.misses);
            (
                Some(per_s(now.calls, old.calls)),
                Some(per_s(now.misses, old.misses)),
                delta.hit_ratio(),
            )
        }
        _ => (None, None, None),
    };
    Rates {
        calls: now.calls,
        calls_per_s,
        misses_per_s,
        hit_ratio,
        hit_ratio_total: now.hit_ratio(),
        errors: now.errors,
    }
}

fn sample(admin: &Admin, watch: &Watch<'_>) -> Result<Sample, Failure> {
    let caches: Vec<CacheInfo> = admin
        .caches(watch.prefix)?
        .into_iter()
        .filter(|c| {
            watch.cache.is_none_or(|(name, policy)| {
                c.name == name && policy.is_none_or(|p| p == c.policy.tag())
            })
        })
        .collect();
    let mut out = Vec::new();
    for cache in &caches {
        let shared = admin.shared_stats(cache)?;
        let structures = admin.structures(cache)?;
        let per_function = cache.layout.is_per_function();
        let functions = shared
            .functions
            .into_iter()
            .map(|(identity, stats)| {
                let mine = || {
                    structures
                        .iter()
                        .filter(|s| s.functions.contains(&identity))
                };
                let entries = per_function.then(|| mine().map(|s| s.entries).sum());
                let memory = if per_function {
                    mine().map(|s| s.memory).sum()
                } else {
                    None
                };
                let sample = FunctionSample {
                    stats,
                    entries,
                    memory,
                };
                (identity, sample)
            })
            .collect();
        out.push(CacheSample {
            name: cache.name.clone(),
            policy: cache.policy.tag(),
            layout: cache.layout,
            entries: structures.iter().map(|s| s.entries).sum(),
            memory: structures.iter().map(|s| s.memory).sum(),
            total: shared.total,
            functions,
        });
    }
    Ok(Sample {
        at: Instant::now(),
        server_us: admin.server_time_us()?,
        caches: out,
    })
}

/// One frame: `now`, with rates against `before`.
struct Frame<'a> {
    now: &'a Sample,
    before: Option<&'a Sample>,
    secs: f64,
}

impl<'a> Frame<'a> {
    fn new(now: &'a Sample, before: Option<&'a Sample>) -> Frame<'a> {
        let secs = before.map_or(0.0, |b| now.at.duration_since(b.at).as_secs_f64());
        Frame { now, before, secs }
    }

    fn earlier(&self, cache: &CacheSample) -> Option<&'a CacheSample> {
        self.before?
            .caches
            .iter()
            .find(|c| c.name == cache.name && c.policy == cache.policy)
    }

    /// The rows of `cache`, busiest first (by calls per second, else by calls).
    fn rows<'c>(&self, cache: &'c CacheSample) -> Vec<(String, Rates, &'c FunctionSample)> {
        let earlier = self.earlier(cache);
        let mut rows: Vec<_> = cache
            .functions
            .iter()
            .map(|(identity, f)| {
                let old = earlier.map(|e| e.functions.get(identity).map(|o| &o.stats));
                // A function new since the previous sample started from zero.
                let zero = Stats::default();
                let old = old.map(|o| o.unwrap_or(&zero));
                (identity.clone(), rates(&f.stats, old, self.secs), f)
            })
            .collect();
        rows.sort_by(|a, b| {
            let key = |r: &Rates| (r.calls_per_s.unwrap_or(0.0), r.calls);
            key(&b.1)
                .partial_cmp(&key(&a.1))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.0.cmp(&b.0))
        });
        rows
    }

    fn total(&self, cache: &CacheSample) -> Rates {
        let earlier = self.earlier(cache).map(|e| &e.total);
        let zero = Stats::default();
        let old = self.before.map(|_| earlier.unwrap_or(&zero));
        rates(&cache.total, old, self.secs)
    }

    fn json(&self) -> Value {
        let ratio = |r: Option<f64>| r.map_or(Value::Null, |r| json!(r));
        let caches: Vec<Value> = self
            .now
            .caches
            .iter()
            .map(|cache| {
                let total = self.total(cache);
                let functions: Vec<Value> = self
                    .rows(cache)
                    .iter()
                    .map(|(identity, r, f)| {
                        json!({
                            "function": identity,
                            "calls": r.calls,
                            "calls_per_s": r.calls_per_s,
                            "hits": f.stats.hits,
                            "misses": f.stats.misses,
                            "misses_per_s": r.misses_per_s,
                            "hit_ratio": ratio(r.hit_ratio),
                            "hit_ratio_total": ratio(r.hit_ratio_total),
                            "errors": r.errors,
                            "entries": f.entries,
                            "memory_bytes": f.memory,
                        })
                    })
                    .collect();
                json!({
                    "cache": cache.name,
                    "layout": layout_name(cache.layout),
                    "policy": cache.policy,
                    "entries": cache.entries,
                    "memory_bytes": cache.memory,
                    "calls": total.calls,
                    "calls_per_s": total.calls_per_s,
                    "misses_per_s": total.misses_per_s,
                    "hit_ratio": ratio(total.hit_ratio),
                    "hit_ratio_total": ratio(total.hit_ratio_total),
                    "errors": total.errors,
                    "functions": functions,
                })
            })
            .collect();
        json!({
            "server_time_us": self.now.server_us,
            "interval_s": self.before.map(|_| self.secs),
            "caches": caches,
        })
    }

    /// The frame as lines of at most 80 characters; `hint` goes on the first.
    fn text(&self, hint: &str) -> String {
        let secs_of_day = self.now.server_us / 1_000_000 % 86_400;
        let clock = format!(
            "{:02}:{:02}:{:02} UTC",
            secs_of_day / 3600,
            secs_of_day / 60 % 60,
            secs_of_day % 60
        );
        let title = format!(
            "fncache top: {} cache{}{hint}",
            self.now.caches.len(),
            if self.now.caches.len() == 1 { "" } else { "s" }
        );
        let title = cut(&title, crate::table::WIDTH - clock.len() - 1);
        let pad = crate::table::WIDTH - title.chars().count() - clock.len();
        let mut out = format!("{title}{}{clock}\n", " ".repeat(pad));
        if self.now.caches.is_empty() {
            out.push_str("(no cache)\n");
        }
        for cache in &self.now.caches {
            let total = self.total(cache);
            out.push('\n');
            let head = format!(
                "cache {} ({}, {}): {} entries, {}, {} calls/s, hit {}",
                cache.name,
                layout_name(cache.layout),
                cache.policy,
                cache.entries,
                cache.memory.map_or("-".to_owned(), bytes),
                rate(total.calls_per_s),
                percent(total.hit_ratio.or(total.hit_ratio_total)),
            );
            out.push_str(&cut(&head, crate::table::WIDTH));
            out.push('\n');
            // Headers as wide as the usual cells (`100.0%`, `123.4 KiB`), so that columns
            // keep their place from one frame to the next.
            let mut table = Table::new(&[
                ("FUNCTION", Align::Left),
                ("CALLS", Align::Right),
                ("CALLS/S", Align::Right),
                ("  HIT%", Align::Right),
                ("MISS/S", Align::Right),
                ("ERRORS", Align::Right),
                ("ENTRIES", Align::Right),
                ("   MEMORY", Align::Right),
            ]);
            for (identity, r, f) in self.rows(cache) {
                table.row(vec![
                    identity,
                    r.calls.to_string(),
                    rate(r.calls_per_s),
                    percent(r.hit_ratio.or(r.hit_ratio_total)),
                    rate(r.misses_per_s),
                    r.errors.to_string(),
                    f.entries.map_or("-".to_owned(), |n| n.to_string()),
                    f.memory.map_or("-".to_owned(), bytes),
                ]);
            }
            out.push_str(&table.render(0));
        }
        out
    }
}

fn rate(r: Option<f64>) -> String {
    r.map_or("-".to_owned(), |r| format!("{r:.1}"))
}

fn percent(r: Option<f64>) -> String {
    r.map_or("-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

/// Runs `fncache top`.
pub(crate) fn run(admin: &Admin, watch: &Watch<'_>) -> Result<(), Failure> {
    let interactive = watch.frames.is_none() && !watch.json && std::io::stdout().is_terminal();
    if interactive {
        return live(admin, watch);
    }
    let mut before: Option<Sample> = None;
    for i in 0..watch.frames.unwrap_or(1) {
        if i > 0 {
            std::thread::sleep(watch.interval);
        }
        let now = sample(admin, watch)?;
        let frame = Frame::new(&now, before.as_ref());
        if watch.json {
            println!("{}", frame.json());
        } else {
            if i > 0 {
                println!();
            }
            print!("{}", frame.text(""));
        }
        // Scripts read each frame as it comes.
        std::io::stdout()
            .flush()
            .map_err(|e| crate::fail(OPERATIONAL, format!("stdout: {e}")))?;
        before = Some(now);
    }
    Ok(())
}

/// The terminal in raw mode on the alternate screen, put back when dropped: on q, on an
/// error, on a panic's unwinding.
struct Screen;

impl Screen {
    fn enter() -> Result<Screen, Failure> {
        terminal::enable_raw_mode().map_err(tty)?;
        // From here on, dropping the guard restores whatever was entered.
        let screen = Screen;
        execute!(
            std::io::stdout(),
            terminal::EnterAlternateScreen,
            cursor::Hide
        )
        .map_err(tty)?;
        Ok(screen)
    }

    /// Draws `text` from the top left, cut to the terminal's size.
    fn draw(&self, text: &str) -> Result<(), Failure> {
        // A terminal that does not know its size (0 x 0, as some pseudo-terminals say) gets
        // the classic one.
        let (columns, rows) = match terminal::size().map_err(tty)? {
            (0, _) | (_, 0) => (80, 24),
            size => size,
        };
        let mut out = std::io::stdout().lock();
        queue!(out, cursor::MoveTo(0, 0)).map_err(tty)?;
        for (i, line) in text.lines().take(usize::from(rows)).enumerate() {
            if i > 0 {
                // Raw mode: a line feed does not return the carriage.
                out.write_all(b"\r\n").map_err(tty)?;
            }
            out.write_all(cut(line, usize::from(columns)).as_bytes())
                .map_err(tty)?;
            queue!(out, terminal::Clear(terminal::ClearType::UntilNewLine)).map_err(tty)?;
        }
        queue!(out, terminal::Clear(terminal::ClearType::FromCursorDown)).map_err(tty)?;
        out.flush().map_err(tty)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        // Best effort: there is nowhere to report a terminal that cannot be restored.
        let _ = execute!(
            std::io::stdout(),
            cursor::Show,
            terminal::LeaveAlternateScreen
        );
        let _ = terminal::disable_raw_mode();
    }
}

fn tty(e: std::io::Error) -> Failure {
    crate::fail(OPERATIONAL, format!("terminal: {e}"))
}

/// Whether `event` asks to quit: q, Esc, Ctrl-C (raw mode turns it into a key).
fn quits(event: &Event) -> bool {
    let Event::Key(key) = event else {
        return false;
    };
    key.kind == KeyEventKind::Press
        && match key.code {
            KeyCode::Char('q' | 'Q') | KeyCode::Esc => true,
            KeyCode::Char('c') => key.modifiers.contains(KeyModifiers::CONTROL),
            _ => false,
        }
}

fn live(admin: &Admin, watch: &Watch<'_>) -> Result<(), Failure> {
    let screen = Screen::enter()?;
    let hint = format!(", every {:.1}s (q to quit)", watch.interval.as_secs_f64());
    let mut before: Option<Sample> = None;
    loop {
        let now = sample(admin, watch)?;
        let text = Frame::new(&now, before.as_ref()).text(&hint);
        screen.draw(&text)?;
        before = Some(now);
        let next = Instant::now() + watch.interval;
        loop {
            let left = next.saturating_duration_since(Instant::now());
            if left.is_zero() || !event::poll(left).map_err(tty)? {
                break;
            }
            match event::read().map_err(tty)? {
                ref e if quits(e) => return Ok(()),
                Event::Resize(..) => screen.draw(&text)?,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(calls: u64, hits: u64, misses: u64) -> Stats {
        let mut s = Stats::default();
        s.calls = calls;
        s.hits = hits;
        s.misses = misses;
        s
    }

    #[test]
    fn rates_come_from_the_difference_between_two_samples() {
        let first = rates(&stats(10, 6, 4), None, 0.0);
        assert_eq!(first.calls_per_s, None, "no rate without an earlier sample");
        assert_eq!(first.hit_ratio, None);
        assert_eq!(first.hit_ratio_total, Some(0.6));
        // 30 calls in 2 s, of which 27 hits and 3 misses.
        let r = rates(&stats(40, 33, 7), Some(&stats(10, 6, 4)), 2.0);
        assert_eq!(r.calls_per_s, Some(15.0));
        assert_eq!(r.misses_per_s, Some(1.5));
        assert_eq!(r.hit_ratio, Some(0.9));
        assert_eq!(r.calls, 40);
        // Idle: zero rates and no interval hit ratio.
        let idle = rates(&stats(40, 33, 7), Some(&stats(40, 33, 7)), 1.0);
        assert_eq!(idle.calls_per_s, Some(0.0));
        assert_eq!(idle.hit_ratio, None);
        // Counters that went down (their key expired) are no change, not a negative rate.
        let reset = rates(&stats(1, 1, 0), Some(&stats(40, 33, 7)), 1.0);
        assert_eq!(reset.calls_per_s, Some(0.0));
    }

    fn sample(at: Instant, functions: &[(&str, Stats)]) -> Sample {
        Sample {
            at,
            server_us: 1_764_374_400_000_000 + 3_723_000_000,
            caches: vec![CacheSample {
                name: "shop".into(),
                policy: "lru_t",
                layout: Layout::PerFunction,
                entries: 3,
                memory: Some(2048),
                total: functions.iter().fold(Stats::default(), |mut t, (_, s)| {
                    t.calls += s.calls;
                    t.hits += s.hits;
                    t.misses += s.misses;
                    t
                }),
                functions: functions
                    .iter()
                    .map(|(name, s)| {
                        let f = FunctionSample {
                            stats: *s,
                            entries: Some(1),
                            memory: Some(100),
                        };
                        ((*name).to_owned(), f)
                    })
                    .collect(),
            }],
        }
    }

    #[test]
    fn frames_put_the_busiest_first_and_fit_80_columns() {
        let t0 = Instant::now();
        let before = sample(t0, &[("a", stats(100, 50, 50)), ("b", stats(10, 5, 5))]);
        let long = "x".repeat(100);
        let now = sample(
            t0 + Duration::from_secs(2),
            &[
                ("a", stats(102, 52, 50)),
                ("b", stats(30, 25, 5)),
                (&long, stats(1, 0, 1)),
            ],
        );
        let frame = Frame::new(&now, Some(&before));
        let text = frame.text(", every 1.0s (q to quit)");
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{line}");
        }
        assert!(
            text.starts_with("fncache top: 1 cache, every 1.0s"),
            "{text}"
        );
        assert!(text.lines().next().unwrap_or("").ends_with("01:02:03 UTC"));
        let order: Vec<&str> = text
            .lines()
            .skip(4)
            .map(|l| l.split(' ').next().unwrap_or(""))
            .collect();
        assert_eq!(order[..2], ["b", "a"], "{text}");
        let value = frame.json();
        let b = &value["caches"][0]["functions"][0];
        assert_eq!(b["function"], "b");
        assert_eq!(b["calls_per_s"], 10.0);
        assert_eq!(b["hit_ratio"], 1.0);
        // New since the previous sample: counted from zero.
        assert_eq!(value["caches"][0]["functions"][2]["calls_per_s"], 0.5);
        assert_eq!(value["interval_s"], 2.0);
    }
}
