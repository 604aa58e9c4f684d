//! The hit-ratio simulator (issue 12): replays access traces and Zipf workloads through every
//! eviction policy of fncache's embedded store, moka's TinyLFU and Belady's offline optimum, at
//! several cache sizes, and prints a table per workload (hit ratio in %, sizes as a share of
//! the workload's distinct keys) with each policy's average gap to the optimum, then writes a
//! chart per workload (SVG) into `--out`. Results and the command behind them:
//! docs/hit-ratio.md.
//!
//! ```text
//! cargo run --release -p fncache --example hit_ratio -- [OPTIONS] [TRACE|DIR]...
//!
//!   TRACE|DIR        trace files (.gz, .xz or plain; text: one key per line, binary:
//!                    big-endian u32 keys), or directories: every *.trace* file in them
//!   --zipf S         also a Zipf(S) workload (repeatable), drawn over --keys keys
//!   --keys N         Zipf keys (default 100000)
//!   --accesses N     Zipf accesses (default 1000000)
//!   --seed N         Zipf seed (default 1)
//!   --limit N        only the first N accesses of each trace
//!   --quick          --limit 200000 and --accesses 200000
//!   --sizes A,B,..   cache sizes in % of distinct keys (default 1,5,10,25,50)
//!   --policies P,..  fncache policies by tag (default all: lru,lru_t,fifo,fifo_t,lfu,mru,rr)
//!   --no-moka        leave moka out
//!   --wtinylfu       add `wtlfu`: a reference model of W-TinyLFU with a fixed 1% window
//!                    (wtinylfu.rs), what a `Policy::TinyLfu` could reach
//!   --jobs N         replays run at once (default: the machine's cores)
//!   --out DIR        where the charts go (default target/hit-ratio)
//!   --markdown       tables in Markdown
//! ```
//!
//! fncache is driven through its public API only: a blocking [`fncache::blocking::Cache`] on
//! the embedded store with `maxsize` = the size, one function, `get_or_compute` per access; a
//! hit is a call that did not execute the function. moka is `moka::sync::Cache` with
//! `max_capacity` = the size, a fixed hasher and `run_pending_tasks` after every access, so
//! that its result does not depend on timing.

mod belady;
mod svg;
mod workload;
mod wtinylfu;

use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use fncache::{Cache, Policy};

/// What one replay runs through.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Subject {
    Belady,
    Fncache(Policy),
    Moka,
    /// The W-TinyLFU reference model of `wtinylfu.rs` (not a policy of fncache).
    WTinyLfu,
}

impl Subject {
    fn label(self) -> &'static str {
        match self {
            Subject::Belady => "Belady",
            Subject::Fncache(policy) => policy.tag(),
            Subject::Moka => "moka",
            Subject::WTinyLfu => "wtlfu",
        }
    }
}

/// The command line.
struct Options {
    inputs: Vec<PathBuf>,
    zipf: Vec<f64>,
    keys: usize,
    accesses: usize,
    seed: u64,
    limit: Option<usize>,
    sizes: Vec<f64>,
    policies: Vec<Policy>,
    moka: bool,
    wtinylfu: bool,
    jobs: usize,
    out: PathBuf,
    markdown: bool,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        inputs: Vec::new(),
        zipf: Vec::new(),
        keys: 100_000,
        accesses: 1_000_000,
        seed: 1,
        limit: None,
        sizes: vec![1.0, 5.0, 10.0, 25.0, 50.0],
        policies: Policy::ALL.to_vec(),
        moka: true,
        wtinylfu: false,
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        out: PathBuf::from("target/hit-ratio"),
        markdown: false,
    };
    let mut args = args.into_iter();
    fn number<T: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<T, String> {
        let value = value.ok_or(format!("{flag} needs a value"))?;
        value
            .parse()
            .map_err(|_| format!("{flag}: not a number: {value}"))
    }
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--zipf" => o.zipf.push(number(&arg, args.next())?),
            "--keys" => o.keys = number(&arg, args.next())?,
            "--accesses" => o.accesses = number(&arg, args.next())?,
            "--seed" => o.seed = number(&arg, args.next())?,
            "--limit" => o.limit = Some(number(&arg, args.next())?),
            "--quick" => {
                o.limit = Some(200_000);
                o.accesses = 200_000;
            }
            "--sizes" => {
                let list: String = number(&arg, args.next())?;
                o.sizes = list
                    .split(',')
                    .map(|s| number("--sizes", Some(s.trim().to_owned())))
                    .collect::<Result<_, _>>()?;
                if o.sizes.iter().any(|&s| !(s > 0.0 && s <= 100.0)) {
                    return Err("--sizes: each in (0, 100]".into());
                }
            }
            "--policies" => {
                let list: String = number(&arg, args.next())?;
                o.policies = list
                    .split(',')
                    .map(|tag| {
                        Policy::ALL
                            .into_iter()
                            .find(|p| p.tag() == tag.trim())
                            .ok_or(format!("--policies: no policy {tag:?}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--no-moka" => o.moka = false,
            "--wtinylfu" => o.wtinylfu = true,
            "--jobs" => o.jobs = number::<usize>(&arg, args.next())?.max(1),
            "--out" => o.out = number(&arg, args.next())?,
            "--markdown" => o.markdown = true,
            // `cargo bench`-style harness flags, should someone pass them.
            "--bench" | "--nocapture" => {}
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            _ => o.inputs.push(PathBuf::from(arg)),
        }
    }
    if o.inputs.is_empty() && o.zipf.is_empty() {
        return Err("nothing to replay: give trace files or directories, or --zipf S".into());
    }
    Ok(o)
}

/// One key sequence to replay.
struct Workload {
    name: String,
    /// Keys renumbered 0.. (see [`belady::dense`]): every subject sees the same sequence.
    trace: Vec<u32>,
    distinct: usize,
    note: String,
}

fn load(o: &Options) -> Result<Vec<Workload>, String> {
    let mut files = Vec::new();
    for input in &o.inputs {
        if input.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(input)
                .map_err(|e| format!("{}: {e}", input.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().contains(".trace"))
                })
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(input.clone());
        }
    }
    let mut workloads = Vec::new();
    for file in files {
        let full = workload::read_trace(&file, None)?;
        let total = full.len();
        let keys = &full[..o.limit.unwrap_or(total).min(total)];
        let (trace, distinct) = belady::dense(keys);
        let name = file
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let name = name.split(".trace").next().unwrap_or(&name).to_owned();
        let note = if trace.len() < total {
            format!("first {} of {} accesses", group(trace.len()), group(total))
        } else {
            format!("{} accesses", group(total))
        };
        workloads.push(Workload {
            name,
            trace,
            distinct,
            note,
        });
    }
    for &s in &o.zipf {
        let keys = workload::zipf_trace(o.keys, s, o.accesses, o.seed);
        let (trace, distinct) = belady::dense(&keys);
        workloads.push(Workload {
            name: format!("zipf-{s}"),
            trace,
            distinct,
            note: format!(
                "{} accesses over {} keys, seed {}",
                group(o.accesses),
                group(o.keys),
                o.seed
            ),
        });
    }
    Ok(workloads)
}

/// Hits of `subject` replaying `w` with room for `capacity` entries.
fn replay(subject: Subject, w: &Workload, capacity: usize) -> Result<u64, String> {
    let accesses = w.trace.len() as u64;
    match subject {
        Subject::Belady => Ok(belady::belady_hits(&w.trace, w.distinct, capacity)),
        Subject::WTinyLfu => Ok(wtinylfu::hits(&w.trace, w.distinct, capacity)),
        Subject::Moka => {
            let cache = moka::sync::Cache::builder()
                .max_capacity(capacity as u64)
                .build_with_hasher(BuildHasherDefault::<DefaultHasher>::default());
            let mut hits = 0;
            for &key in &w.trace {
                if cache.get(&key).is_some() {
                    hits += 1;
                } else {
                    cache.insert(key, ());
                }
                cache.run_pending_tasks();
            }
            Ok(hits)
        }
        Subject::Fncache(policy) => {
            let cache = Cache::builder(format!("sim-{}-{capacity}-{}", w.name, policy.tag()))
                .memory()
                .policy(policy)
                .maxsize(capacity)
                .no_ttl()
                .build_blocking()
                .map_err(|e| format!("building the {} cache: {e}", policy.tag()))?;
            let mut execs = 0;
            for &key in &w.trace {
                let value: u32 = cache
                    .get_or_compute("f", &(key,), || {
                        execs += 1;
                        key
                    })
                    .map_err(|e| format!("{}: {e}", policy.tag()))?;
                if value != key {
                    return Err(format!("{}: key {key} answered {value}", policy.tag()));
                }
            }
            let errors = cache.stats().errors;
            if errors > 0 {
                return Err(format!("{}: {errors} store errors", policy.tag()));
            }
            Ok(accesses - execs)
        }
    }
}

/// The cache size in entries for `percent` of `distinct` keys: at least one.
fn capacity(percent: f64, distinct: usize) -> usize {
    ((percent / 100.0 * distinct as f64).round() as usize).max(1)
}

/// `1234567` as `1,234,567`.
fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Hit ratios (%) of one workload: `ratios[size][subject]`.
struct Results {
    ratios: Vec<Vec<f64>>,
}

/// The rows of a workload's table: one per size, then the average gap to Belady (points, the
/// lower the better) and the average difference to moka (points, the higher the better).
fn table(o: &Options, subjects: &[Subject], w: &Workload, r: &Results) -> String {
    let moka = subjects.iter().position(|&s| s == Subject::Moka);
    let n = o.sizes.len() as f64;
    let gap: Vec<Option<f64>> = subjects
        .iter()
        .enumerate()
        .map(|(j, _)| (j > 0).then(|| r.ratios.iter().map(|row| row[0] - row[j]).sum::<f64>() / n))
        .collect();
    let vs_moka: Vec<Option<f64>> = (0..subjects.len())
        .map(|j| {
            let m = moka?;
            (j > 0 && j != m).then(|| r.ratios.iter().map(|row| row[j] - row[m]).sum::<f64>() / n)
        })
        .collect();
    let cell = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    let mut rows: Vec<Vec<String>> = Vec::new();
    rows.push(
        std::iter::once("size".to_owned())
            .chain(subjects.iter().map(|s| s.label().to_owned()))
            .collect(),
    );
    for (i, &size) in o.sizes.iter().enumerate() {
        rows.push(
            std::iter::once(format!("{size}%"))
                .chain(r.ratios[i].iter().map(|&v| format!("{v:.2}")))
                .collect(),
        );
    }
    rows.push(
        std::iter::once("gap".to_owned())
            .chain(gap.iter().map(|&v| cell(v)))
            .collect(),
    );
    if moka.is_some() {
        rows.push(
            std::iter::once("vs moka".to_owned())
                .chain(vs_moka.iter().map(|&v| cell(v)))
                .collect(),
        );
    }
    let sizes: Vec<String> = o
        .sizes
        .iter()
        .map(|&s| group(capacity(s, w.distinct)))
        .collect();
    let mut out = format!(
        "{}: {}, {} distinct keys;\nsizes {} entries\n",
        w.name,
        w.note,
        group(w.distinct),
        sizes.join(", ")
    );
    out.push_str(&render(&rows, o.markdown));
    out
}

/// Right-aligned columns, the first of width 7 and the others 6 (80 columns hold 11), or
/// Markdown.
fn render(rows: &[Vec<String>], markdown: bool) -> String {
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        if markdown {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
            if i == 0 {
                out.push_str(&format!("|{}\n", "---:|".repeat(row.len())));
            }
        } else {
            let line: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(j, c)| {
                    if j == 0 {
                        format!("{c:>7}")
                    } else {
                        format!("{c:>6}")
                    }
                })
                .collect();
            out.push_str(line.join(" ").trim_end());
            out.push('\n');
        }
    }
    out
}

fn run(o: &Options) -> Result<(), String> {
    let started = Instant::now();
    let workloads = load(o)?;
    let mut subjects = vec![Subject::Belady];
    subjects.extend(o.policies.iter().map(|&p| Subject::Fncache(p)));
    if o.moka {
        subjects.push(Subject::Moka);
    }
    if o.wtinylfu {
        subjects.push(Subject::WTinyLfu);
    }
    // Every (workload, size, subject), longest traces first so the threads end together.
    let mut tasks: Vec<(usize, usize, usize)> = Vec::new();
    for (w, _) in workloads.iter().enumerate() {
        for s in 0..o.sizes.len() {
            for j in 0..subjects.len() {
                tasks.push((w, s, j));
            }
        }
    }
    tasks.sort_by_key(|&(w, _, _)| std::cmp::Reverse(workloads[w].trace.len()));
    let results: Vec<Mutex<Results>> = workloads
        .iter()
        .map(|_| {
            Mutex::new(Results {
                ratios: vec![vec![0.0; subjects.len()]; o.sizes.len()],
            })
        })
        .collect();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    eprintln!(
        "{} workloads x {} sizes x {} subjects on {} threads",
        workloads.len(),
        o.sizes.len(),
        subjects.len(),
        o.jobs
    );
    std::thread::scope(|scope| {
        for _ in 0..o.jobs {
            scope.spawn(|| {
                while let Some(&(w, s, j)) = tasks.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let wl = &workloads[w];
                    let cap = capacity(o.sizes[s], wl.distinct);
                    match replay(subjects[j], wl, cap) {
                        Ok(hits) => {
                            let ratio = 100.0 * hits as f64 / wl.trace.len().max(1) as f64;
                            if let Ok(mut r) = results[w].lock() {
                                r.ratios[s][j] = ratio;
                            }
                            let done = done.fetch_add(1, Ordering::Relaxed) + 1;
                            if done.is_multiple_of((tasks.len() / 20).max(1)) {
                                eprintln!(
                                    "{done}/{} replays, {:.0} s",
                                    tasks.len(),
                                    started.elapsed().as_secs_f64()
                                );
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                            // Stop the other threads at their next task.
                            next.store(tasks.len(), Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    // Per subject, over every workload and size: gap to Belady, difference to moka.
    let mut gap_sum = vec![0.0; subjects.len()];
    let mut moka_sum = vec![0.0; subjects.len()];
    let mut best_gap = 0.0;
    let mut best_vs_moka = 0.0;
    let mut cells = 0.0;
    let moka = subjects.iter().position(|&s| s == Subject::Moka);
    for (w, result) in workloads.iter().zip(results) {
        let r = result
            .into_inner()
            .map_err(|_| "a replay thread panicked")?;
        println!("{}", table(o, &subjects, w, &r));
        for row in &r.ratios {
            for j in 0..subjects.len() {
                gap_sum[j] += row[0] - row[j];
                if let Some(m) = moka {
                    moka_sum[j] += row[j] - row[m];
                }
            }
            let best = subjects
                .iter()
                .zip(row)
                .filter(|(s, _)| matches!(s, Subject::Fncache(_)))
                .map(|(_, &v)| v)
                .fold(f64::NEG_INFINITY, f64::max);
            best_gap += row[0] - best;
            if let Some(m) = moka {
                best_vs_moka += best - row[m];
            }
            cells += 1.0;
        }
        let series: Vec<(String, Vec<f64>)> = subjects
            .iter()
            .enumerate()
            .map(|(j, s)| {
                (
                    s.label().to_owned(),
                    r.ratios.iter().map(|row| row[j]).collect(),
                )
            })
            .collect();
        let path = o.out.join(format!("{}.svg", w.name));
        let title = format!("{} ({})", w.name, w.note);
        std::fs::write(&path, svg::chart(&title, &o.sizes, &series))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mut rows = vec![
        std::iter::once("all".to_owned())
            .chain(subjects.iter().map(|s| s.label().to_owned()))
            .collect::<Vec<_>>(),
    ];
    let avg = |sum: f64| format!("{:.2}", sum / cells);
    rows.push(
        std::iter::once("gap".to_owned())
            .chain(
                gap_sum
                    .iter()
                    .enumerate()
                    .map(|(j, &g)| if j == 0 { "-".into() } else { avg(g) }),
            )
            .collect(),
    );
    if let Some(m) = moka {
        rows.push(
            std::iter::once("vs moka".to_owned())
                .chain(
                    moka_sum
                        .iter()
                        .enumerate()
                        .map(|(j, &d)| if j == 0 || j == m { "-".into() } else { avg(d) }),
                )
                .collect(),
        );
    }
    println!(
        "Average over {} workloads x {} sizes, in points of hit ratio\n(gap: Belady minus the \
         policy; vs moka: the policy minus moka)",
        workloads.len(),
        o.sizes.len()
    );
    print!("{}", render(&rows, o.markdown));
    // A blank line first: in Markdown, a line right under a table would be one more row.
    print!(
        "\nThe best fncache policy of each row: {} points below Belady on average",
        avg(best_gap)
    );
    if moka.is_some() {
        print!(",\n{} vs moka", avg(best_vs_moka));
    }
    println!(".");
    eprintln!(
        "{:.0} s; charts in {}",
        started.elapsed().as_secs_f64(),
        o.out.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let options = match parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("hit_ratio: {e}\n(see the top of examples/hit_ratio/main.rs for usage)");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hit_ratio: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(keys: &[u64]) -> Workload {
        let (trace, distinct) = belady::dense(keys);
        Workload {
            name: "test".into(),
            trace,
            distinct,
            note: String::new(),
        }
    }

    #[test]
    fn fncache_replays_count_hits_by_executions() {
        // Room for 2, a b a c a b: LRU keeps a (hit twice), evicts b at c, misses b.
        let w = workload(&[1, 2, 1, 3, 1, 2]);
        assert_eq!(replay(Subject::Fncache(Policy::Lru), &w, 2), Ok(2));
        // FIFO evicts a (the oldest) at c: a misses, then b was evicted by a: 1 hit.
        assert_eq!(replay(Subject::Fncache(Policy::Fifo), &w, 2), Ok(1));
        // Belady drops c (never used again) at once: a and b hit to the end.
        assert_eq!(replay(Subject::Belady, &w, 2), Ok(3));
        // Room for everything: only the 3 first uses miss, for every subject.
        for subject in [
            Subject::Belady,
            Subject::Moka,
            Subject::Fncache(Policy::Random),
            Subject::Fncache(Policy::Lfu),
        ] {
            assert_eq!(replay(subject, &w, 3), Ok(3), "{subject:?}");
        }
    }

    #[test]
    fn sizes_are_shares_of_distinct_keys_at_least_one() {
        assert_eq!(capacity(1.0, 100_000), 1_000);
        assert_eq!(capacity(1.0, 20), 1);
        assert_eq!(capacity(25.0, 1010), 253);
    }

    #[test]
    fn args_parse_and_reject_nonsense() {
        let args = |s: &str| parse_args(s.split_whitespace().map(str::to_owned));
        let o = args("--zipf 0.9 --sizes 1,50 --policies lru,rr --no-moka t.gz").expect("ok");
        assert_eq!(o.zipf, [0.9]);
        assert_eq!(o.sizes, [1.0, 50.0]);
        assert_eq!(o.policies, [Policy::Lru, Policy::Random]);
        assert_eq!(o.inputs, [PathBuf::from("t.gz")]);
        assert!(!o.moka);
        assert!(args("").is_err(), "nothing to do");
        assert!(args("--zipf x").is_err());
        assert!(args("--zipf 1 --policies tinylfu").is_err());
        assert!(args("--zipf 1 --sizes 0").is_err());
    }

    #[test]
    fn tables_fit_80_columns() {
        let o = parse_args(["--zipf".to_owned(), "1".to_owned()]).expect("ok");
        let subjects: Vec<Subject> = std::iter::once(Subject::Belady)
            .chain(Policy::ALL.map(Subject::Fncache))
            .chain([Subject::Moka])
            .collect();
        let r = Results {
            ratios: vec![vec![100.0; subjects.len()]; o.sizes.len()],
        };
        let mut w = workload(&[1, 2, 3]);
        w.name = "cache2k-orm-busy".into();
        w.note = "first 200,000 of 5,000,000 accesses".into();
        w.distinct = 100_000;
        let text = table(&o, &subjects, &w, &r);
        for line in text.lines() {
            assert!(line.len() <= 80, "{} columns: {line}", line.len());
        }
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(group(999), "999");
    }
}
