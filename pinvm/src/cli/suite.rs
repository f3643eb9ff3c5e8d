//! `pinvm suite`: run scenarios over a matrix of kernels × filesystems (× runs), compare each
//! result with its expectation, print KTAP and write JSON/JUnit. Exit 0 only when every
//! outcome matches its expectation; 1 when one does not; 125 when nothing mismatched but some
//! case could not be tested.

use anyhow::{bail, Context, Result};
use clap::Args;
use devices::terminal::{visible, Keep};
use harness::case::fresh_dir;
use harness::report::{self, CaseResult};
use harness::scenario::{self, Scenario};
use harness::suite::{self, Cell, MatrixFilter, Shard, SuiteOptions, SuiteProgress};
use machine::outcome::{EXIT_FAIL, EXIT_UNTESTABLE};
use machine::Machine;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  pinvm suite                                   # every scenario, its own kernels and filesystems\n  \
pinvm suite S03 S04 --kernel-version 6.1,6.12 --fs ext4 --ktap\n  \
pinvm suite --shard 2/4 --json kcidb.json --junit junit.xml\n  \
pinvm suite S03 S06 --fs ext4 --html index.html   # timeline pages and their index"
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
    /// Write the timeline report: a self-contained HTML page in every case's folder and, at
    /// FILE, the index with the outcome matrix (scenario × kernel × fs) linking to them.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// A patch under test, applied to every kernel the suite builds (repeatable, in order).
    #[arg(long = "patch", value_name = "FILE")]
    pub patches: Vec<PathBuf>,
    /// A config fragment applied to every kernel the suite builds (repeatable, in order).
    #[arg(long = "config", value_name = "FRAGMENT")]
    pub configs: Vec<PathBuf>,
}

/// Refuse kernel versions and filesystems pinvm does not know.
fn check_filters(a: &SuiteArgs) -> Result<()> {
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
    Ok(())
}

/// `--out`, or pinvm-out/suite-<unix time>.
fn out_dir(a: &SuiteArgs) -> PathBuf {
    a.out.clone().unwrap_or_else(|| {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        PathBuf::from(format!("pinvm-out/suite-{now}"))
    })
}

pub fn run(machine: &dyn Machine, a: SuiteArgs) -> Result<i32> {
    check_filters(&a)?;
    let shard = match &a.shard {
        Some(s) => s.parse::<Shard>()?,
        None => Shard::ALL,
    };
    let scenarios = load_scenarios(&a.scenarios)?;
    let filter = MatrixFilter {
        kernels: a.kernel_version.clone(),
        filesystems: a.fs.clone(),
        runs: a.runs,
    };
    let cells = suite::cells(&scenarios, &filter, shard);
    if cells.is_empty() {
        bail!("no case to run: the scenarios' kernels and filesystems do not meet --kernel-version/--fs/--shard");
    }
    let out = out_dir(&a);
    fresh_dir(&out)?;
    eprintln!(
        "pinvm suite: {} cases ({} scenarios{}), {} at a time; results in {}",
        cells.len(),
        scenarios.len(),
        if shard.count > 1 {
            format!(", shard {}/{}", shard.index, shard.count)
        } else {
            String::new()
        },
        a.jobs,
        out.display()
    );
    let opts = SuiteOptions {
        out: &out,
        runs: a.runs,
        seed: a.seed,
        keep_disk: a.keep_disk,
        jobs: a.jobs,
        patches: a.patches.clone(),
        configs: a.configs.clone(),
    };
    for (k, e) in suite::build_kernels(machine, &cells, &opts) {
        eprintln!("pinvm suite: kernel {k}: {e:#} (its cases will be untestable)");
    }
    let progress = Progress {
        total: cells.len(),
        tty: std::io::stderr().is_terminal() && a.jobs == 1,
        t0: Instant::now(),
    };
    let suite = suite::run(machine, &cells, &opts, &progress);
    write_reports(&a, &out, &suite)?;
    if let Some(h) = &a.html {
        super::report::write(&out, Some(h))?;
    }
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

/// The scenarios named on the command line (files, directories, names or ids), or all.
fn load_scenarios(args: &[PathBuf]) -> Result<Vec<Scenario>> {
    let paths: Vec<PathBuf> = args
        .iter()
        .map(|p| {
            if p.exists() {
                Ok(p.clone())
            } else {
                scenario::resolve(p)
            }
        })
        .collect::<Result<_>>()?;
    scenario::load_all(&paths)
}

/// Progress on stderr: a status line while a case runs (on a terminal, one job at a time),
/// one result line per case.
struct Progress {
    total: usize,
    tty: bool,
    t0: Instant,
}

impl SuiteProgress for Progress {
    fn started(&self, done: usize, cell: &Cell) {
        if self.tty {
            // A status line while the case runs; the result line replaces it.
            eprint!(
                "\r\x1b[K[{:>3}/{}] running {} on {} {} (started {:.0} s into the suite)",
                done + 1,
                self.total,
                cell.scenario.name,
                cell.kernel,
                cell.fs,
                self.t0.elapsed().as_secs_f64()
            );
        }
    }

    fn finished(&self, done: usize, cell: &Cell, r: &CaseResult) {
        if self.tty {
            eprint!("\r\x1b[K");
        }
        eprintln!(
            "[{done:>3}/{}] {:<28} {:<5} {:<6} {:<10} {:>6.1} s  {}",
            self.total,
            cell.scenario.name,
            cell.kernel,
            cell.fs,
            r.outcome.label(),
            r.duration.as_secs_f64(),
            report::verdict_list(&r.found, "clean")
        );
    }
}

/// The table or KTAP on stdout; kcidb JSON, JUnit and findings files as asked; findings.md
/// and suite.ktap in the results folder.
fn write_reports(a: &SuiteArgs, out: &std::path::Path, suite: &report::SuiteResult) -> Result<()> {
    // Summaries carry guest text (crash titles): shown on the terminal through the one escape.
    let mut shown = Vec::new();
    if a.ktap {
        report::ktap::write(suite, &mut shown)?;
    } else {
        report::table::write_table(suite, &mut shown)?;
    }
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    w.write_all(&visible(&shown, Keep::Lines))?;
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
        write_file(p, "--json", &|b| report::kcidb::write(suite, "pinvm", b))?;
    }
    if let Some(p) = &a.junit {
        write_file(p, "--junit", &|b| report::junit::write(suite, b))?;
    }
    if let Some(p) = &a.findings {
        write_file(p, "--findings", &|b| {
            b.write_all(report::table::findings_markdown(suite).as_bytes())
        })?;
    }
    write_file(&out.join("findings.md"), "findings", &|b| {
        b.write_all(report::table::findings_markdown(suite).as_bytes())
    })?;
    write_file(&out.join("suite.ktap"), "KTAP", &|b| {
        report::ktap::write(suite, b)
    })
}
