//! `pinvm suite`: run scenarios over a matrix of kernels × filesystems (× runs), compare each
//! result with its expectation, print KTAP and write JSON/JUnit. Exit 0 only when every
//! outcome matches its expectation; 1 when one does not; 125 when nothing mismatched but some
//! case could not be tested.

use super::case::{fresh_dir, run_case, Case, CaseResult};
use super::kernel::{default_kernel, KernelChoice};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};
use vmm::outcome::{EXIT_FAIL, EXIT_UNTESTABLE};
use vmm::report::{self, Outcome, SuiteResult};
use vmm::scenario::{self, Scenario};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  pinvm suite                                   # every scenario, its own kernels and filesystems\n  \
pinvm suite S03 S04 --kernel-version 6.1,6.12 --fs ext4 --ktap\n  \
pinvm suite --shard 2/4 --json kcidb.json --junit junit.xml"
)]
pub struct SuiteArgs {
    /// Scenario files, directories, or names/ids in scenarios/ (default: all of scenarios/).
    pub scenarios: Vec<PathBuf>,
    /// Kernel versions to run (comma-separated; default: each scenario's own list).
    #[arg(long, value_delimiter = ',')]
    pub kernel_version: Vec<String>,
    /// Filesystems to run (comma-separated; default: each scenario's own list).
    #[arg(long, value_delimiter = ',')]
    pub fs: Vec<String>,
    /// Run each case N times (seeds S, S+1, ...).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Cases to run at the same time (each VM has the scenario's vCPUs).
    #[arg(short = 'j', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    /// Run only shard I of N (1-based) of the matrix, for CI parallelism.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// Print KTAP to stdout (instead of the table).
    #[arg(long)]
    pub ktap: bool,
    /// Write KernelCI (kcidb) JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Write the markdown findings table (scenario × kernel/fs) to FILE.
    #[arg(long, value_name = "FILE")]
    pub findings: Option<PathBuf>,
    /// Results folder (one subfolder per case); must not exist or be empty.
    /// Default: pinvm-out/suite-<unix time>.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Keep every case's final disk image.
    #[arg(long)]
    pub keep_disk: bool,
}

struct Cell<'a> {
    scenario: &'a Scenario,
    kernel: String,
    fs: String,
    run: u32,
}

fn shard(spec: &str) -> Result<(usize, usize)> {
    let (i, n) = spec
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
        .filter(|(i, n)| *n >= 1 && (1..=*n).contains(i))
        .with_context(|| format!("--shard {spec}: expected I/N with 1 <= I <= N"))?;
    Ok((i, n))
}

pub fn run(a: SuiteArgs) -> Result<i32> {
    for k in &a.kernel_version {
        if !scenario::KERNELS.contains(&k.as_str()) {
            bail!(
                "--kernel-version {k}: expected one of {:?}",
                scenario::KERNELS
            );
        }
    }
    for f in &a.fs {
        if !scenario::FILESYSTEMS.contains(&f.as_str()) {
            bail!("--fs {f}: expected one of {:?}", scenario::FILESYSTEMS);
        }
    }
    let (si, sn) = a.shard.as_deref().map(shard).transpose()?.unwrap_or((1, 1));
    let args: Vec<PathBuf> = a
        .scenarios
        .iter()
        .map(|p| {
            if p.exists() {
                Ok(p.clone())
            } else {
                scenario::resolve(p)
            }
        })
        .collect::<Result<_>>()?;
    let scenarios = scenario::load_all(&args)?;
    let mut cells = Vec::new();
    for s in &scenarios {
        for k in &s.kernels {
            if !a.kernel_version.is_empty() && !a.kernel_version.contains(k) {
                continue;
            }
            for f in &s.filesystems {
                if !a.fs.is_empty() && !a.fs.contains(f) {
                    continue;
                }
                for run in 1..=a.runs {
                    cells.push(Cell {
                        scenario: s,
                        kernel: k.clone(),
                        fs: f.clone(),
                        run,
                    });
                }
            }
        }
    }
    let cells: Vec<Cell> = cells
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % sn == si - 1)
        .map(|(_, c)| c)
        .collect();
    if cells.is_empty() {
        bail!("no case to run: the scenarios' kernels and filesystems do not meet --kernel-version/--fs/--shard");
    }
    let out = a.out.clone().unwrap_or_else(|| {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        PathBuf::from(format!("pinvm-out/suite-{now}"))
    });
    fresh_dir(&out)?;
    // Build (or find) every kernel first, one at a time, so parallel cases do not race to
    // build the same one.
    let mut kernels: Vec<&String> = cells.iter().map(|c| &c.kernel).collect();
    kernels.sort();
    kernels.dedup();
    for k in kernels {
        let choice = KernelChoice {
            kernel: None,
            kernel_version: k.clone(),
        };
        if let Err(e) = default_kernel(&choice) {
            eprintln!("pinvm suite: kernel {k}: {e:#} (its cases will be untestable)");
        }
    }
    let started = SystemTime::now();
    let t0 = Instant::now();
    let total = cells.len();
    eprintln!(
        "pinvm suite: {total} cases ({} scenarios{}), {} at a time; results in {}",
        scenarios.len(),
        if sn > 1 {
            format!(", shard {si}/{sn}")
        } else {
            String::new()
        },
        a.jobs,
        out.display()
    );
    let tty = std::io::stderr().is_terminal() && a.jobs == 1;
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, report::CaseResult)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..a.jobs.min(total as u32) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(cell) = cells.get(i) else { break };
                if tty {
                    // A status line while the case runs; the result line replaces it.
                    eprint!(
                        "\r\x1b[K[{:>3}/{total}] running {} on {} {} (started {:.0} s into the suite)",
                        done.load(Ordering::SeqCst) + 1,
                        cell.scenario.name,
                        cell.kernel,
                        cell.fs,
                        t0.elapsed().as_secs_f64()
                    );
                }
                let r = run_cell(&a, &out, cell);
                let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                if tty {
                    eprint!("\r\x1b[K");
                }
                eprintln!(
                    "[{n:>3}/{total}] {:<28} {:<5} {:<6} {:<10} {:>6.1} s  {}",
                    cell.scenario.name,
                    cell.kernel,
                    cell.fs,
                    r.outcome.label(),
                    r.duration.as_secs_f64(),
                    report::verdict_list(&r.found, "clean")
                );
                results.lock().unwrap().push((i, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    let suite = SuiteResult {
        started,
        duration: t0.elapsed(),
        cases: results.into_iter().map(|(_, r)| r).collect(),
    };
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    if a.ktap {
        report::ktap::write(&suite, &mut w)?;
    } else {
        report::table::write_table(&suite, &mut w)?;
    }
    w.flush()?;
    let write_file = |path: &PathBuf,
                      what: &str,
                      f: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>|
     -> Result<()> {
        let mut buf = Vec::new();
        f(&mut buf)?;
        std::fs::write(path, buf).with_context(|| format!("writing {what} {}", path.display()))
    };
    if let Some(p) = &a.json {
        write_file(p, "--json", &|b| report::kcidb::write(&suite, "pinvm", b))?;
    }
    if let Some(p) = &a.junit {
        write_file(p, "--junit", &|b| report::junit::write(&suite, b))?;
    }
    if let Some(p) = &a.findings {
        write_file(p, "--findings", &|b| {
            b.write_all(report::table::findings_markdown(&suite).as_bytes())
        })?;
    }
    write_file(&out.join("findings.md"), "findings", &|b| {
        b.write_all(report::table::findings_markdown(&suite).as_bytes())
    })?;
    write_file(&out.join("suite.ktap"), "KTAP", &|b| {
        report::ktap::write(&suite, b)
    })?;
    let counts = suite.counts();
    eprintln!(
        "pinvm suite: {} in {:.0} s; results in {}",
        counts.summary(),
        suite.duration.as_secs_f64(),
        out.display()
    );
    Ok(if counts.mismatching() > 0 {
        EXIT_FAIL
    } else if counts.untestable > 0 {
        EXIT_UNTESTABLE
    } else {
        0
    })
}

fn run_cell(a: &SuiteArgs, out: &std::path::Path, cell: &Cell) -> report::CaseResult {
    let s = cell.scenario;
    let mut dir = out
        .join(&s.name)
        .join(format!("{}-{}", cell.kernel, cell.fs));
    if a.runs > 1 {
        dir = dir.join(format!("run{}", cell.run));
    }
    let case = Case {
        scenario: s,
        kernel: KernelChoice {
            kernel: None,
            kernel_version: cell.kernel.clone(),
        },
        fs: cell.fs.clone(),
        run: cell.run,
        seed: a.seed + u64::from(cell.run - 1),
        dir: dir.clone(),
        keep_disk: a.keep_disk,
        echo: false,
    };
    let t0 = Instant::now();
    match run_case(&case) {
        Ok(r) => to_report(&case, &r),
        Err(e) => report::CaseResult {
            scenario: s.name.clone(),
            description: s.title.clone(),
            kernel: cell.kernel.clone(),
            kernel_release: None,
            fs: cell.fs.clone(),
            run: cell.run,
            outcome: Outcome::Untestable,
            expected: vec![],
            found: vec![],
            summary: format!("could not test: {e:#}"),
            evidence: vec![],
            finding: None,
            duration: t0.elapsed(),
            results_dir: Some(dir),
        },
    }
}

/// A case's result as the report writers take it.
pub fn to_report(c: &Case, r: &CaseResult) -> report::CaseResult {
    report::CaseResult {
        scenario: c.scenario.name.clone(),
        description: c.scenario.title.clone(),
        kernel: c.kernel.kernel_version.clone(),
        kernel_release: r.kernel_release.clone(),
        fs: c.fs.clone(),
        run: c.run,
        outcome: r.outcome,
        expected: r.expected.verdicts.clone(),
        found: r.found(),
        summary: r.summary(),
        evidence: r.evidence_lines(),
        finding: r.expected.finding.clone(),
        duration: r.duration,
        results_dir: Some(c.dir.clone()),
    }
}
