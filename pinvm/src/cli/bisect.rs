//! `pinvm bisect`: the commit that introduced what a scenario (or a command) reproduces.

use anyhow::{bail, Result};
use clap::Args;
use devices::terminal::{visible, visible_line, Keep};
use guest_images::kernel::source::{git_dir, rev_parse};
use harness::bisect::probe::{Prober, Reproducer};
use harness::bisect::{self, report, Spec};
use harness::scenario::{self, Scenario};
use machine::Machine;
use std::io::Write;
use std::path::PathBuf;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
pinvm bisect --tree ~/linux --good v6.12 --bad HEAD S03b --fs ext4\n  \
pinvm bisect --tree ~/linux --good v6.12 --bad HEAD --match lost_write --runs 3 S06\n  \
pinvm bisect --tree ~/linux --good A --bad B -- /bin/sh -c 'test -e /proc/x'\n\
Run the same command again to resume an interrupted bisection.")]
pub struct BisectArgs {
    /// The kernel git repository (never modified: the bisection runs in a private clone).
    #[arg(long, value_name = "PATH")]
    tree: PathBuf,
    /// A revision without the problem.
    #[arg(long, value_name = "REV")]
    good: String,
    /// A revision with the problem.
    #[arg(long, value_name = "REV")]
    bad: String,
    /// The scenario that reproduces the problem (a file, or a name/id in scenarios/).
    #[arg(required_unless_present = "cmd", conflicts_with = "cmd")]
    scenario: Option<PathBuf>,
    /// The scenario's filesystem (default: its first).
    #[arg(long)]
    fs: Option<String>,
    /// Runs of the good endpoint (the bad one runs twice as many; a bisection revision
    /// runs until decided).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=50))]
    runs: u32,
    /// The target signature: a verdict kind (lost_write, kernel_warning, ...) or text of a
    /// report title (e.g. 'WARNING in ext4_dirty_folio'); repeatable, all must be present.
    /// Default: what every failing run of the bad revision found.
    #[arg(long = "match", value_name = "VERDICT|TITLE")]
    matches: Vec<String>,
    /// Confidence for calling a revision good, given the bad revision's measured rate.
    #[arg(long, default_value_t = 0.95)]
    confidence: f64,
    /// A config fragment for every build (repeatable).
    #[arg(long = "config", value_name = "FRAGMENT")]
    configs: Vec<PathBuf>,
    /// Results folder (kept for resuming). Default: pinvm-bisect/<what>-<good>-<bad>.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Seconds before a command run's watchdog stops the guest (at most a day).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout: u64,
    /// The command to run in the guest instead of a scenario, after `--`.
    #[arg(last = true, value_name = "CMD")]
    cmd: Vec<String>,
}

pub fn run(machine: &dyn Machine, a: BisectArgs) -> Result<i32> {
    if !(0.5..1.0).contains(&a.confidence) {
        bail!(
            "--confidence {}: expected a number in [0.5, 1)",
            a.confidence
        );
    }
    let gdir = git_dir(&a.tree)?;
    let (good, bad) = (rev_parse(&gdir, &a.good)?, rev_parse(&gdir, &a.bad)?);
    let (reproducer, what) = match &a.scenario {
        Some(s) => {
            let s = Scenario::load(&scenario::resolve(s)?)?;
            let fs = a.fs.clone().unwrap_or_else(|| s.filesystems[0].clone());
            if !s.filesystems.contains(&fs) {
                bail!("--fs {fs}: scenario {} runs on {:?}", s.name, s.filesystems);
            }
            let what = format!("{}-{fs}", s.name);
            (
                Reproducer::Scenario {
                    scenario: Box::new(s),
                    fs,
                },
                what,
            )
        }
        None => (
            Reproducer::Command {
                argv: a.cmd.clone(),
                timeout: a.timeout,
            },
            "cmd".to_string(),
        ),
    };
    let out = a.out.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "pinvm-bisect/{what}-{}-{}",
            &good[..12],
            &bad[..12]
        ))
    });
    let spec = Spec {
        prober: Prober {
            machine,
            tree: a.tree.clone(),
            reproducer,
            out: out.clone(),
            configs: a.configs.clone(),
        },
        good,
        bad,
        runs: a.runs,
        matches: a.matches.clone(),
        confidence: a.confidence,
    };
    eprintln!("pinvm bisect: results in {}", out.display());
    // Progress and the report name what the guest printed (crash titles): shown through the
    // one escape for guest text; report.txt keeps the text as it is.
    let r = bisect::bisect(&spec, &mut |line| {
        eprintln!("pinvm bisect: {}", visible_line(line))
    })?;
    report::write_json(&r, &out)?;
    let text = report::text(&r);
    std::fs::write(out.join("report.txt"), &text)?;
    std::io::stdout().write_all(&visible(text.as_bytes(), Keep::Lines))?;
    println!("details: {}", out.join("bisect.json").display());
    Ok(r.exit_code())
}
