//! `fncache bench`: the hit-ratio simulator (issue 12). Replays access traces and Zipf
//! workloads through every eviction policy of fncache's embedded store, moka's TinyLFU and
//! Belady's offline optimum, at several cache sizes (shares of the workload's distinct keys),
//! and prints a table per workload (hit ratio in %) with each policy's average gap to the
//! optimum; `--plot` writes the chart (SVG). Results and the command behind them:
//! docs/hit-ratio.md.
//!
//! fncache is driven through its public API only: a blocking [`fncache::blocking::Cache`] on
//! the embedded store with `maxsize` = the size, one function, `get_or_compute` per access; a
//! hit is a call that did not execute the function. moka is `moka::sync::Cache` with
//! `max_capacity` = the size, a fixed hasher and `run_pending_tasks` after every access, so
//! that its result does not depend on timing. No server is involved.

mod arc;
mod belady;
mod frequency;
mod links;
mod lirs;
mod svg;
mod workload;
mod wtinylfu;

use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Args;
use fncache::{Cache, Policy};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value, json};

use crate::{Failure, OPERATIONAL, USAGE, fail};

/// The fncache policies the simulator knows, by the name `--policies` takes and the tables
/// show: every policy of the library, in its order. The one place to change when a policy is
/// to be left out or named otherwise.
fn policies() -> Vec<(&'static str, Policy)> {
    Policy::ALL.iter().map(|&p| (p.tag(), p)).collect()
}

/// The options of `fncache bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Trace files (.gz, .xz or plain; text: one key per line, binary: big-endian u32 keys),
    /// directories (their *.trace* files), or zipf:S (a Zipf workload of exponent S).
    #[arg(value_name = "TRACE|DIR|zipf:S", required = true)]
    workloads: Vec<String>,
    /// Cache sizes, in % of each workload's distinct keys.
    #[arg(long, value_delimiter = ',', default_value = "1,5,10,25,50")]
    sizes: Vec<f64>,
    /// fncache policies by tag (default: all).
    #[arg(long, value_delimiter = ',')]
    policies: Vec<String>,
    /// At most N requests per workload: a trace's first N; N Zipf draws (default 1000000).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Distinct keys of the Zipf workloads.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    keys: usize,
    /// Seed of the Zipf workloads.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// Leave moka out.
    #[arg(long)]
    no_moka: bool,
    /// Add reference models (not fncache's policies), by name: lirs (LIRS), arc (ARC), wtlfu
    /// (W-TinyLFU with a fixed 1% window), plfu (perfect LFU: every key's count, never
    /// aged), static (offline: the most used keys of the whole trace), a0 (Zipf workloads
    /// only: the most probable keys seen so far, the best online policy there).
    #[arg(long, value_delimiter = ',', value_name = "NAME,..")]
    reference: Vec<String>,
    /// The same as `--reference wtlfu`.
    #[arg(long, hide = true)]
    wtinylfu: bool,
    /// Replays run at once (default: the machine's cores).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Write the chart (SVG) to FILE; to DIR/NAME.svg, NAME the workload's, when a
    /// directory (or ending in /), which several workloads need.
    #[arg(long, value_name = "FILE.svg|DIR")]
    plot: Option<PathBuf>,
    /// Tables in Markdown.
    #[arg(long)]
    markdown: bool,
}

/// Zipf draws when `--limit` does not say.
const ZIPF_REQUESTS: usize = 1_000_000;

/// What one replay runs through.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Subject {
    Belady,
    Fncache(&'static str, Policy),
    Moka,
    /// A model of `--reference` (not a policy of fncache).
    Reference(Reference),
}

impl Subject {
    fn label(self) -> &'static str {
        match self {
            Subject::Belady => "Belady",
            Subject::Fncache(name, _) => name,
            Subject::Moka => "moka",
            Subject::Reference(r) => r.label(),
        }
    }

    /// Whether a program could run it: it does not look at the trace's future.
    fn online(self) -> bool {
        !matches!(
            self,
            Subject::Belady | Subject::Reference(Reference::Static)
        )
    }
}

/// The reference models `--reference` adds: measuring sticks from the literature, to tell
/// what a workload allows, not policies of fncache.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reference {
    /// LIRS (`lirs.rs`).
    Lirs,
    /// ARC (`arc.rs`).
    Arc,
    /// W-TinyLFU with a fixed window (`wtinylfu.rs`).
    WTinyLfu,
    /// Perfect LFU (`frequency.rs`).
    PerfectLfu,
    /// The static optimum, offline (`frequency.rs`).
    Static,
    /// A0 with the workload's own distribution (`frequency.rs`; Zipf workloads only).
    A0,
}

impl Reference {
    const ALL: [Reference; 6] = [
        Reference::Lirs,
        Reference::Arc,
        Reference::WTinyLfu,
        Reference::PerfectLfu,
        Reference::Static,
        Reference::A0,
    ];

    fn label(self) -> &'static str {
        match self {
            Reference::Lirs => "lirs",
            Reference::Arc => "arc",
            Reference::WTinyLfu => "wtlfu",
            Reference::PerfectLfu => "plfu",
            Reference::Static => "static",
            Reference::A0 => "a0",
        }
    }

    fn hits(self, w: &Workload, capacity: usize) -> u64 {
        match self {
            Reference::Lirs => lirs::hits(&w.trace, w.distinct, capacity),
            Reference::Arc => arc::hits(&w.trace, w.distinct, capacity),
            Reference::WTinyLfu => wtinylfu::hits(&w.trace, w.distinct, capacity),
            Reference::PerfectLfu => frequency::perfect_lfu_hits(&w.trace, w.distinct, capacity),
            Reference::Static => frequency::static_hits(&w.trace, w.distinct, capacity),
            // `run` refuses a0 for a workload without ranks.
            Reference::A0 => w
                .ranks
                .as_deref()
                .map_or(0, |ranks| frequency::a0_hits(&w.trace, ranks, capacity)),
        }
    }
}

/// One key sequence to replay.
struct Workload {
    name: String,
    /// The file or `zipf:S` it came from.
    source: String,
    /// Keys renumbered 0.. (see [`belady::dense`]): every subject sees the same sequence.
    trace: Vec<u32>,
    distinct: usize,
    note: String,
    /// Each key's rank in its distribution (0 the most probable), where the workload is drawn
    /// from a known one (Zipf); `None` for a trace.
    ranks: Option<Vec<u32>>,
}

/// The simulator's settings, checked.
struct Plan {
    sizes: Vec<f64>,
    subjects: Vec<Subject>,
    jobs: usize,
    markdown: bool,
}

fn plan(args: &BenchArgs) -> Result<Plan, Failure> {
    if args.sizes.iter().any(|&s| !(s > 0.0 && s <= 100.0)) {
        return Err(fail(
            USAGE,
            "--sizes: each size is a percentage in (0, 100]",
        ));
    }
    let known = policies();
    let chosen: Vec<(&'static str, Policy)> = if args.policies.is_empty() {
        known.clone()
    } else {
        args.policies
            .iter()
            .map(|tag| {
                known
                    .iter()
                    .find(|(name, _)| *name == tag.trim())
                    .copied()
                    .ok_or_else(|| {
                        let names: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
                        fail(
                            USAGE,
                            format!(
                                "--policies: no policy `{tag}` (known: {})",
                                names.join(", ")
                            ),
                        )
                    })
            })
            .collect::<Result<_, _>>()?
    };
    let mut subjects = vec![Subject::Belady];
    subjects.extend(chosen.iter().map(|&(name, p)| Subject::Fncache(name, p)));
    if !args.no_moka {
        subjects.push(Subject::Moka);
    }
    let mut references = args
        .reference
        .iter()
        .map(|name| {
            Reference::ALL
                .into_iter()
                .find(|r| r.label() == name.trim())
                .ok_or_else(|| {
                    let names: Vec<&str> = Reference::ALL.iter().map(|r| r.label()).collect();
                    fail(
                        USAGE,
                        format!(
                            "--reference: no model `{name}` (known: {})",
                            names.join(", ")
                        ),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if args.wtinylfu {
        references.push(Reference::WTinyLfu);
    }
    for r in references {
        if !subjects.contains(&Subject::Reference(r)) {
            subjects.push(Subject::Reference(r));
        }
    }
    Ok(Plan {
        sizes: args.sizes.clone(),
        subjects,
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1),
        markdown: args.markdown,
    })
}

/// The workloads the arguments name, in order (a directory's traces sorted by name).
fn load(args: &BenchArgs) -> Result<Vec<Workload>, Failure> {
    let mut workloads = Vec::new();
    for source in &args.workloads {
        if let Some(s) = source.strip_prefix("zipf:") {
            workloads.push(zipf(args, s)?);
            continue;
        }
        let path = Path::new(source);
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| fail(USAGE, format!("cannot read `{source}`: {e}")))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.file_name()
                            .is_some_and(|n| n.to_string_lossy().contains(".trace"))
                })
                .collect();
            if found.is_empty() {
                return Err(fail(
                    USAGE,
                    format!("directory `{source}` holds no *.trace* file"),
                ));
            }
            found.sort();
            for file in found {
                workloads.push(trace(args, &file)?);
            }
        } else {
            workloads.push(trace(args, path)?);
        }
    }
    Ok(workloads)
}

fn trace(args: &BenchArgs, file: &Path) -> Result<Workload, Failure> {
    let full = workload::read_trace(file, None).map_err(|e| fail(USAGE, e))?;
    if full.is_empty() {
        return Err(fail(
            USAGE,
            format!("{}: an empty trace (no accesses)", file.display()),
        ));
    }
    let total = full.len();
    let keys = &full[..args.limit.unwrap_or(total).min(total)];
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
    Ok(Workload {
        name,
        source: file.display().to_string(),
        trace,
        distinct,
        note,
        ranks: None,
    })
}

fn zipf(args: &BenchArgs, exponent: &str) -> Result<Workload, Failure> {
    let s: f64 = exponent
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
        .ok_or_else(|| {
            fail(
                USAGE,
                format!("zipf:{exponent}: the exponent is a number >= 0 (as in zipf:0.9)"),
            )
        })?;
    if args.keys == 0 {
        return Err(fail(USAGE, "--keys: at least 1"));
    }
    let requests = args.limit.unwrap_or(ZIPF_REQUESTS).max(1);
    let keys = workload::zipf_trace(args.keys, s, requests, args.seed);
    let (trace, distinct) = belady::dense(&keys);
    // The sampler draws ranks: a key's rank is the key itself, its dense id the order of its
    // first draw.
    let mut ranks = vec![0u32; distinct];
    for (&dense, &rank) in trace.iter().zip(&keys) {
        ranks[dense as usize] = u32::try_from(rank).unwrap_or(u32::MAX);
    }
    Ok(Workload {
        name: format!("zipf-{s}"),
        source: format!("zipf:{exponent}"),
        trace,
        distinct,
        note: format!(
            "{} accesses over {} keys, seed {}",
            group(requests),
            group(args.keys),
            args.seed
        ),
        ranks: Some(ranks),
    })
}

/// Accesses between two updates of the progress bar.
const PROGRESS_STEP: u64 = 1 << 14;

/// Hits of `subject` replaying `w` with room for `capacity` entries; `progress` is told of
/// the accesses replayed, in steps.
fn replay(
    subject: Subject,
    w: &Workload,
    capacity: usize,
    progress: &dyn Fn(u64),
) -> Result<u64, Failure> {
    let accesses = w.trace.len() as u64;
    let hits = match subject {
        Subject::Belady => belady::belady_hits(&w.trace, w.distinct, capacity),
        Subject::Reference(r) => r.hits(w, capacity),
        Subject::Moka => {
            let cache = moka::sync::Cache::builder()
                .max_capacity(capacity as u64)
                .build_with_hasher(BuildHasherDefault::<DefaultHasher>::default());
            let mut hits = 0;
            for (i, &key) in w.trace.iter().enumerate() {
                if cache.get(&key).is_some() {
                    hits += 1;
                } else {
                    cache.insert(key, ());
                }
                cache.run_pending_tasks();
                if (i as u64 + 1).is_multiple_of(PROGRESS_STEP) {
                    progress(PROGRESS_STEP);
                }
            }
            progress(accesses % PROGRESS_STEP);
            return Ok(hits);
        }
        Subject::Fncache(name, policy) => {
            let broken = |e: fncache::Error| fail(OPERATIONAL, format!("{name}: {e}"));
            let cache = Cache::builder(format!("sim-{}-{capacity}-{name}", w.name))
                .memory()
                .policy(policy)
                .maxsize(capacity)
                .no_ttl()
                .build_blocking()
                .map_err(broken)?;
            let mut execs = 0;
            for (i, &key) in w.trace.iter().enumerate() {
                let value: u32 = cache
                    .get_or_compute("f", &(key,), || {
                        execs += 1;
                        key
                    })
                    .map_err(broken)?;
                if value != key {
                    return Err(fail(
                        OPERATIONAL,
                        format!("{name}: key {key} answered {value}"),
                    ));
                }
                if (i as u64 + 1).is_multiple_of(PROGRESS_STEP) {
                    progress(PROGRESS_STEP);
                }
            }
            progress(accesses % PROGRESS_STEP);
            let errors = cache.stats().errors;
            if errors > 0 {
                return Err(fail(OPERATIONAL, format!("{name}: {errors} store errors")));
            }
            return Ok(accesses - execs);
        }
    };
    progress(accesses);
    Ok(hits)
}

/// The cache size in entries for `percent` of `distinct` keys: at least one.
fn capacity(percent: f64, distinct: usize) -> usize {
    // Sizes are percentages of a key count: f64 is exact enough, and the result is >= 0.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let entries = (percent / 100.0 * distinct as f64).round() as usize;
    entries.max(1)
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

/// Hits of one workload: `hits[size][subject]`.
struct Results {
    hits: Vec<Vec<u64>>,
}

impl Results {
    /// Hit ratios in %: `[size][subject]`.
    fn percent(&self, w: &Workload) -> Vec<Vec<f64>> {
        let accesses = w.trace.len().max(1) as f64;
        self.hits
            .iter()
            .map(|row| row.iter().map(|&h| 100.0 * h as f64 / accesses).collect())
            .collect()
    }
}

/// Per subject, the average over `rows` of Belady's ratio minus its own (points; `None` for
/// Belady), and of its own minus moka's (`None` for Belady and moka, or without moka).
fn gaps(subjects: &[Subject], rows: &[Vec<f64>]) -> (Vec<Option<f64>>, Vec<Option<f64>>) {
    let moka = subjects.iter().position(|&s| s == Subject::Moka);
    let n = rows.len().max(1) as f64;
    let gap = (0..subjects.len())
        .map(|j| (j > 0).then(|| rows.iter().map(|row| row[0] - row[j]).sum::<f64>() / n))
        .collect();
    let vs_moka = (0..subjects.len())
        .map(|j| {
            let m = moka?;
            (j > 0 && j != m).then(|| rows.iter().map(|row| row[j] - row[m]).sum::<f64>() / n)
        })
        .collect();
    (gap, vs_moka)
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"))
}

/// The rows of a table: a header, one row per size, the average gap to Belady (points, the
/// lower the better) and, with moka, the average difference to it (the higher the better).
fn rows(first: &str, sizes: &[f64], subjects: &[Subject], ratios: &[Vec<f64>]) -> Vec<Vec<String>> {
    let (gap, vs_moka) = gaps(subjects, ratios);
    let mut rows: Vec<Vec<String>> = Vec::new();
    rows.push(
        std::iter::once(first.to_owned())
            .chain(subjects.iter().map(|s| s.label().to_owned()))
            .collect(),
    );
    for (size, ratios) in sizes.iter().zip(ratios) {
        rows.push(
            std::iter::once(format!("{size}%"))
                .chain(ratios.iter().map(|&v| format!("{v:.2}")))
                .collect(),
        );
    }
    rows.push(
        std::iter::once("gap".to_owned())
            .chain(gap.into_iter().map(cell))
            .collect(),
    );
    if subjects.contains(&Subject::Moka) {
        rows.push(
            std::iter::once("vs moka".to_owned())
                .chain(vs_moka.into_iter().map(cell))
                .collect(),
        );
    }
    rows
}

fn table(plan: &Plan, w: &Workload, r: &Results) -> String {
    let sizes: Vec<String> = plan
        .sizes
        .iter()
        .map(|&s| group(capacity(s, w.distinct)))
        .collect();
    let mut out = crate::table::cut(
        &format!(
            "{}: {}, {} distinct keys",
            w.name,
            w.note,
            group(w.distinct)
        ),
        crate::table::WIDTH,
    );
    out.push('\n');
    out.push_str(&crate::table::cut(
        &format!("sizes {} entries", sizes.join(", ")),
        crate::table::WIDTH,
    ));
    out.push('\n');
    out.push_str(&render(
        &rows("size", &plan.sizes, &plan.subjects, &r.percent(w)),
        plan.markdown,
    ));
    out
}

/// Right-aligned columns as wide as their widest cell, in blocks of columns that each fit
/// 80 columns (the first column repeated), or one Markdown table.
fn render(rows: &[Vec<String>], markdown: bool) -> String {
    let mut out = String::new();
    if markdown {
        for (i, row) in rows.iter().enumerate() {
            out.push_str(&format!("| {} |\n", row.join(" | ")));
            if i == 0 {
                out.push_str(&format!("|{}\n", "---:|".repeat(row.len())));
            }
        }
        return out;
    }
    let columns = rows.first().map_or(0, Vec::len);
    let width = |j: usize| {
        rows.iter()
            .map(|row| row.get(j).map_or(0, |c| c.chars().count()))
            .max()
            .unwrap_or(0)
            .max(if j == 0 { 7 } else { 6 })
    };
    let first = width(0);
    // Greedy blocks of the other columns.
    let mut blocks: Vec<Vec<usize>> = vec![Vec::new()];
    let mut used = first;
    for j in 1..columns {
        let w = width(j) + 1;
        if used + w > crate::table::WIDTH && blocks.last().is_some_and(|b| !b.is_empty()) {
            blocks.push(Vec::new());
            used = first;
        }
        used += w;
        if let Some(block) = blocks.last_mut() {
            block.push(j);
        }
    }
    for (b, block) in blocks.iter().enumerate() {
        if b > 0 {
            out.push('\n');
        }
        for row in rows {
            let mut line = format!("{:>first$}", row.first().map_or("", String::as_str));
            for &j in block {
                let w = width(j);
                line.push_str(&format!(" {:>w$}", row.get(j).map_or("", String::as_str)));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

/// Where the chart of `w` goes: `plot` itself, or `plot/<name>.svg` when it is a directory.
fn plot_path(plot: &Path, w: &Workload, several: bool) -> Result<PathBuf, Failure> {
    if plot.is_dir() || plot.to_string_lossy().ends_with('/') {
        return Ok(plot.join(format!("{}.svg", w.name)));
    }
    if several {
        return Err(fail(
            USAGE,
            format!(
                "--plot {}: several workloads need a directory (one chart each)",
                plot.display()
            ),
        ));
    }
    Ok(plot.to_path_buf())
}

/// Runs `fncache bench`.
pub(crate) fn run(args: &BenchArgs, json_out: bool) -> Result<(), Failure> {
    let plan = plan(args)?;
    let workloads = load(args)?;
    let several = workloads.len() > 1;
    // Check where the charts go before minutes of replays.
    let plots: Vec<Option<PathBuf>> = workloads
        .iter()
        .map(|w| {
            args.plot
                .as_deref()
                .map(|p| plot_path(p, w, several))
                .transpose()
        })
        .collect::<Result<_, _>>()?;
    if plan.subjects.contains(&Subject::Reference(Reference::A0))
        && let Some(w) = workloads.iter().find(|w| w.ranks.is_none())
    {
        return Err(fail(
            USAGE,
            format!(
                "--reference a0: {} is a trace, whose distribution is unknown (a0 needs a \
                 zipf:S workload)",
                w.name
            ),
        ));
    }
    let results = simulate(&plan, &workloads, json_out)?;
    let mut out = Vec::new();
    let mut all_ratios: Vec<Vec<f64>> = Vec::new();
    let mut written = Vec::new();
    for ((w, r), plot) in workloads.iter().zip(&results).zip(&plots) {
        let ratios = r.percent(w);
        if let Some(path) = plot {
            let series: Vec<(String, Vec<f64>)> = plan
                .subjects
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    (
                        s.label().to_owned(),
                        ratios.iter().map(|row| row[j]).collect(),
                    )
                })
                .collect();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| fail(OPERATIONAL, format!("{}: {e}", dir.display())))?;
            }
            let title = format!("{} ({})", w.name, w.note);
            std::fs::write(path, svg::chart(&title, &plan.sizes, &series))
                .map_err(|e| fail(OPERATIONAL, format!("{}: {e}", path.display())))?;
            written.push(path.display().to_string());
        }
        if json_out {
            out.push(workload_json(&plan, w, r, &ratios));
        } else {
            if !all_ratios.is_empty() {
                println!();
            }
            print!("{}", table(&plan, w, r));
        }
        all_ratios.extend(ratios);
    }
    if json_out {
        crate::print_json(&json!({
            "sizes_percent": plan.sizes,
            "subjects": plan.subjects.iter().map(|s| s.label()).collect::<Vec<_>>(),
            "workloads": out,
            "plots": written,
        }));
        return Ok(());
    }
    if several {
        println!(
            "\nAverage over {} workloads x {} sizes, in points of hit ratio\n(gap: Belady minus \
             the policy; vs moka: the policy minus moka)",
            workloads.len(),
            plan.sizes.len()
        );
        print!(
            "{}",
            // No size rows: the gaps over every workload's sizes.
            render(
                &rows("all", &[], &plan.subjects, &all_ratios),
                plan.markdown
            )
        );
        let fncache = |s: Subject| matches!(s, Subject::Fncache(..));
        print!(
            "\nThe best fncache policy of each row: {} points below Belady on average",
            best(&plan.subjects, &all_ratios, fncache, 0)
        );
        if plan.subjects.contains(&Subject::Moka) {
            print!(
                ",\n{} vs moka",
                best(&plan.subjects, &all_ratios, fncache, 1)
            );
        }
        println!(".");
        if plan
            .subjects
            .iter()
            .any(|s| matches!(s, Subject::Reference(_)))
        {
            println!(
                "The best online subject of each row (any column but Belady and static):\n{} \
                 points below Belady; the best of every column but Belady: {}.",
                best(&plan.subjects, &all_ratios, Subject::online, 0),
                best(&plan.subjects, &all_ratios, |s| s != Subject::Belady, 0)
            );
        }
    }
    for path in written {
        println!("plot: {path}");
    }
    Ok(())
}

/// The average over `rows` of Belady minus the best subject of the row that `chosen` accepts
/// (`which` 0), or of that best minus moka (`which` 1), in points.
fn best(
    subjects: &[Subject],
    rows: &[Vec<f64>],
    chosen: impl Fn(Subject) -> bool,
    which: usize,
) -> String {
    let moka = subjects.iter().position(|&s| s == Subject::Moka);
    let mut sum = 0.0;
    for row in rows {
        let top = subjects
            .iter()
            .zip(row)
            .filter(|&(&s, _)| chosen(s))
            .map(|(_, &v)| v)
            .fold(f64::NEG_INFINITY, f64::max);
        sum += match (which, moka) {
            (0, _) => row[0] - top,
            (_, Some(m)) => top - row[m],
            (_, None) => 0.0,
        };
    }
    format!("{:.2}", sum / rows.len().max(1) as f64)
}

fn workload_json(plan: &Plan, w: &Workload, r: &Results, ratios: &[Vec<f64>]) -> Value {
    let by_subject = |values: &mut dyn Iterator<Item = Value>| -> Value {
        Value::Object(
            plan.subjects
                .iter()
                .map(|s| s.label().to_owned())
                .zip(values)
                .collect::<Map<String, Value>>(),
        )
    };
    let accesses = w.trace.len().max(1) as f64;
    let sizes: Vec<Value> = plan
        .sizes
        .iter()
        .zip(&r.hits)
        .map(|(&percent, hits)| {
            json!({
                "percent": percent,
                "entries": capacity(percent, w.distinct),
                "hits": by_subject(&mut hits.iter().map(|&h| json!(h))),
                "hit_ratio": by_subject(&mut hits.iter().map(|&h| json!(h as f64 / accesses))),
            })
        })
        .collect();
    let (gap, vs_moka) = gaps(&plan.subjects, ratios);
    json!({
        "name": w.name,
        "source": w.source,
        "note": w.note,
        "accesses": w.trace.len(),
        "distinct": w.distinct,
        "sizes": sizes,
        "gap_points": by_subject(&mut gap.into_iter().map(|v| json!(v))),
        "vs_moka_points": by_subject(&mut vs_moka.into_iter().map(|v| json!(v))),
    })
}

/// Every (workload, size, subject) replayed on `plan.jobs` threads, longest traces first so
/// that the threads end together, with a progress bar on stderr when it is a terminal.
fn simulate(plan: &Plan, workloads: &[Workload], quiet: bool) -> Result<Vec<Results>, Failure> {
    let mut tasks: Vec<(usize, usize, usize)> = Vec::new();
    for w in 0..workloads.len() {
        for s in 0..plan.sizes.len() {
            for j in 0..plan.subjects.len() {
                tasks.push((w, s, j));
            }
        }
    }
    tasks.sort_by_key(|&(w, _, _)| std::cmp::Reverse(workloads[w].trace.len()));
    let total: u64 = tasks
        .iter()
        .map(|&(w, _, _)| workloads[w].trace.len() as u64)
        .sum();
    let bar = if quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {percent:>3}% {human_pos}/{human_len} accesses, {elapsed} (eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let results: Vec<Mutex<Results>> = workloads
        .iter()
        .map(|_| {
            Mutex::new(Results {
                hits: vec![vec![0; plan.subjects.len()]; plan.sizes.len()],
            })
        })
        .collect();
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<Failure>> = Mutex::new(None);
    let progress = |n: u64| bar.inc(n);
    std::thread::scope(|scope| {
        for _ in 0..plan.jobs.min(tasks.len()) {
            scope.spawn(|| {
                while let Some(&(w, s, j)) = tasks.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let wl = &workloads[w];
                    let cap = capacity(plan.sizes[s], wl.distinct);
                    match replay(plan.subjects[j], wl, cap, &progress) {
                        Ok(hits) => {
                            if let Ok(mut r) = results[w].lock() {
                                r.hits[s][j] = hits;
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
    bar.finish_and_clear();
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    results
        .into_iter()
        .map(|r| {
            r.into_inner()
                .map_err(|_| fail(OPERATIONAL, "a replay thread panicked"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(keys: &[u64]) -> Workload {
        let (trace, distinct) = belady::dense(keys);
        Workload {
            name: "test".into(),
            source: "test".into(),
            trace,
            distinct,
            note: String::new(),
            ranks: None,
        }
    }

    fn hits(subject: Subject, w: &Workload, capacity: usize) -> u64 {
        let seen = std::sync::atomic::AtomicU64::new(0);
        let hits = replay(subject, w, capacity, &|n| {
            seen.fetch_add(n, Ordering::Relaxed);
        })
        .unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(
            seen.into_inner(),
            w.trace.len() as u64,
            "progress of {subject:?}"
        );
        hits
    }

    #[test]
    fn fncache_replays_count_hits_by_executions() {
        let lru = Subject::Fncache("lru", Policy::Lru);
        // Room for 2, a b a c a b: LRU keeps a (hit twice), evicts b at c, misses b.
        let w = workload(&[1, 2, 1, 3, 1, 2]);
        assert_eq!(hits(lru, &w, 2), 2);
        // FIFO evicts a (the oldest) at c: a misses, then b was evicted by a: 1 hit.
        assert_eq!(hits(Subject::Fncache("fifo", Policy::Fifo), &w, 2), 1);
        // Belady drops c (never used again) at once: a and b hit to the end.
        assert_eq!(hits(Subject::Belady, &w, 2), 3);
        // Room for everything: only the 3 first uses miss, for every subject.
        for subject in [
            Subject::Belady,
            Subject::Moka,
            Subject::Fncache("rr", Policy::Random),
            Subject::Fncache("lfu", Policy::Lfu),
        ] {
            assert_eq!(hits(subject, &w, 3), 3, "{subject:?}");
        }
        // Progress comes in steps and the rest at the end.
        let long = workload(&(0..40_000).map(|k| k % 7).collect::<Vec<_>>());
        assert_eq!(hits(lru, &long, 7), 40_000 - 7);
    }

    #[test]
    fn every_policy_of_the_library_is_simulated_by_its_tag() {
        let names: Vec<&str> = policies().iter().map(|(n, _)| *n).collect();
        let tags: Vec<&str> = Policy::ALL.iter().map(|p| p.tag()).collect();
        assert_eq!(names, tags);
    }

    #[test]
    fn sizes_are_shares_of_distinct_keys_at_least_one() {
        assert_eq!(capacity(1.0, 100_000), 1_000);
        assert_eq!(capacity(1.0, 20), 1);
        assert_eq!(capacity(25.0, 1010), 253);
    }

    #[test]
    fn tables_fit_80_columns_in_blocks() {
        let sizes = vec![1.0, 5.0, 10.0, 25.0, 50.0];
        // More subjects than one block holds: every library policy twice over.
        let subjects: Vec<Subject> = std::iter::once(Subject::Belady)
            .chain(policies().into_iter().map(|(n, p)| Subject::Fncache(n, p)))
            .chain(policies().into_iter().map(|(n, p)| Subject::Fncache(n, p)))
            .chain([Subject::Moka, Subject::Reference(Reference::WTinyLfu)])
            .collect();
        let plan = Plan {
            sizes,
            subjects,
            jobs: 1,
            markdown: false,
        };
        let mut w = workload(&[1, 2, 3]);
        w.name = "cache2k-orm-busy".into();
        w.note = "first 200,000 of 5,000,000 accesses".into();
        w.distinct = 100_000;
        let r = Results {
            hits: vec![vec![3; plan.subjects.len()]; plan.sizes.len()],
        };
        let text = table(&plan, &w, &r);
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{} columns: {line}", line.len());
        }
        assert_eq!(text.matches("  size").count(), 2, "two blocks: {text}");
        assert_eq!(text.matches("wtlfu").count(), 1, "{text}");
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(group(999), "999");
    }
}
