//! `pinvm run SCENARIO`: run one scenario on one kernel and filesystem, print the verdicts
//! with their evidence, exit 0 (nothing found), 1 (corruption or a kernel problem found) or
//! 125 (could not test): what `git bisect run` expects.

use super::hostfiles::HostFileArgs;
use super::kernel::KernelArgs;
use anyhow::Result;
use clap::Args;
use devices::terminal::visible_line;
use harness::case::{fresh_dir, run_case_with, Case};
use harness::scenario::{self, Scenario};
use harness::{CaseResult, Outcome};
use machine::outcome::{EXIT_FAIL, EXIT_UNTESTABLE};
use machine::Machine;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  pinvm run S06                      # scenarios/S06-*.toml on 6.12, its first filesystem\n  \
pinvm run S06 --html s06.html      # and its timeline report\n  \
pinvm run scenarios/S03-gup-reclaim.toml --kernel-version 6.1 --fs xfs --runs 3\n  \
git bisect run pinvm run S03 --kernel ~/linux/vmlinux   # compares with the 6.12 expectation"
)]
pub struct RunArgs {
    /// A scenario file, or a scenario's name or id in scenarios/ (e.g. S03).
    pub scenario: PathBuf,
    #[command(flatten)]
    pub kernel: KernelArgs,
    #[command(flatten)]
    pub files: HostFileArgs,
    /// Filesystem (default: the scenario's first).
    #[arg(long)]
    pub fs: Option<String>,
    /// Repeat the run N times (each on a fresh VM and disk; seeds S, S+1, ...).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub runs: u32,
    /// Seed for the scenario's {rand:A-B} numbers.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Results folder (console, journal, DMA log, steps, verdicts.json per run); it must not
    /// exist or be empty. Default: pinvm-out/<scenario>-<kernel>-<fs>-<unix time>.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Keep the final disk image (disk.img) in the results folder.
    #[arg(long)]
    pub keep_disk: bool,
    /// Copy the guest console to stdout.
    #[arg(long, short)]
    pub verbose: bool,
    /// Write the timeline report to FILE (self-contained HTML; with --runs N an index, each
    /// run's page in its folder).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

pub fn run(machine: &dyn Machine, a: RunArgs) -> Result<i32> {
    let files = a.files.files()?;
    let path = scenario::resolve(&a.scenario)?;
    let s = Scenario::load(&path)?;
    let fs = a.fs.clone().unwrap_or_else(|| s.filesystems[0].clone());
    if !scenario::FILESYSTEMS.contains(&fs.as_str()) {
        anyhow::bail!("--fs {fs}: expected one of {:?}", scenario::FILESYSTEMS);
    }
    // Fail now, not after the boot, when there is nothing to compare with.
    s.expectation(&a.kernel.kernel_version, &fs)?;
    let out = a.out.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        PathBuf::from(format!(
            "pinvm-out/{}-{}-{fs}-{now}",
            s.name, a.kernel.kernel_version
        ))
    });
    fresh_dir(&out)?;
    let mut code = 0;
    for run in 1..=a.runs {
        let dir = if a.runs == 1 {
            out.clone()
        } else {
            out.join(format!("run{run}"))
        };
        let case = Case {
            scenario: &s,
            kernel: a.kernel.choice().for_scenario(&s),
            fs: fs.clone(),
            run,
            seed: a.seed + u64::from(run - 1),
            dir: dir.clone(),
            keep_disk: a.keep_disk,
            echo: a.verbose,
        };
        eprintln!(
            "pinvm: {} ({}) on {} {fs}, run {run}/{}: {}",
            s.name, s.id, a.kernel.kernel_version, a.runs, s.title
        );
        let r = run_case_with(machine, &case, &files)?;
        print_result(&r);
        code = match (code, r.code) {
            (EXIT_FAIL, _) | (_, EXIT_FAIL) => EXIT_FAIL,
            (EXIT_UNTESTABLE, _) | (_, EXIT_UNTESTABLE) => EXIT_UNTESTABLE,
            _ => 0,
        };
    }
    let word = match code {
        0 => "nothing found",
        EXIT_FAIL => "FOUND corruption or a kernel problem",
        _ => "could not test",
    };
    if let Some(h) = &a.html {
        super::report::write(&out, Some(h))?;
    }
    println!(
        "pinvm run: {word} (exit {code}); results in {}",
        out.display()
    );
    Ok(code)
}

/// The human summary of one run (guest-derived text made visible: `devices::terminal`).
fn print_result(r: &CaseResult) {
    println!(
        "== {} on {} {}, run {}, seed {}: {:.1} s",
        r.scenario,
        r.kernel_line(),
        r.fs,
        r.run,
        r.seed,
        r.duration.as_secs_f64()
    );
    if r.outcome == Outcome::Untestable {
        println!(
            "could not test: {}",
            visible_line(r.why.as_deref().unwrap_or("?"))
        );
    } else if r.analysis.verdicts.is_empty() {
        println!("verdict: clean ({} DMA writes into {} pages, {} block writes, {} pages checked on disk)",
            r.analysis.stats.dma_writes, r.analysis.stats.pages_with_dma,
            r.analysis.stats.journal_writes, r.analysis.stats.pages_checked_on_disk);
    }
    for v in &r.analysis.verdicts {
        println!("verdict: {}", visible_line(&v.summary));
        for e in v.evidence.iter().take(6) {
            println!("  - {}", visible_line(&e.text));
            for l in e.console.iter().take(8) {
                println!("      | {}", visible_line(l));
            }
        }
        if v.evidence.len() > 6 {
            println!("  - ... {} more in verdicts.json", v.evidence.len() - 6);
        }
    }
    for n in r.analysis.notes.iter().take(8) {
        println!("note: {}", visible_line(n));
    }
    let exp = if r.expected.is_empty() {
        "a clean run".to_string()
    } else {
        r.expected.join(", ")
    };
    let matched = if r.outcome.matches_expectation() {
        "matches the scenario's expectation".to_string()
    } else {
        format!(
            "does NOT match: {}",
            visible_line(r.why.as_deref().unwrap_or("(no reason)"))
        )
    };
    println!("expected: {exp} → {} ({matched})", r.outcome.label());
    if let Some(f) = &r.finding {
        println!("recorded finding: {}", visible_line(f));
    }
    if let Some(dir) = &r.results_dir {
        println!("results: {}", dir.display());
    }
}
