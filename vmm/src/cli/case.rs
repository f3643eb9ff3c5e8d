//! One cell of a scenario's matrix: boot the kernel with the scenario's workload on a fresh
//! filesystem, record everything (console, block journal with data, DMA log, final disk), let
//! the oracle judge, and compare with the expectation. Shared by `pinvm run` and `pinvm suite`.

use super::boot::{prepare, where_stopped, UserDisk};
use super::kernel::KernelChoice;
use anyhow::{Context, Result};
use guest_images::disk::Fs;
use guest_images::initramfs::Job;
use oracle::{Analysis, FileExtent, FileMap, Inputs, TimedStep};
use proto::agent::StepReport;
use proto::dma_log::DmaLog;
use proto::journal::Journal;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use vmm::outcome::{self, EXIT_FAIL, EXIT_UNTESTABLE};
use vmm::report::Outcome;
use vmm::runner::{self, DmaSpec, RunReport, RunSpec};
use vmm::scenario::{expand, expect, Scenario};

/// What to run.
pub struct Case<'a> {
    pub scenario: &'a Scenario,
    /// The kernel: a version pinvm builds, or a file (then `kernel_version` names the
    /// expectation to compare with).
    pub kernel: KernelChoice,
    pub fs: String,
    pub run: u32,
    pub seed: u64,
    /// Results folder for this case (created; must not exist or be empty).
    pub dir: PathBuf,
    pub keep_disk: bool,
    /// Copy the guest console to stdout while it runs.
    pub echo: bool,
}

/// What happened.
pub struct CaseResult {
    /// `git bisect run` contract: 0 nothing found, 1 corruption or a kernel problem found,
    /// 125 could not test.
    pub code: i32,
    pub analysis: Analysis,
    pub outcome: Outcome,
    /// Why the outcome does not match the expectation, or why the run was untestable.
    pub why: Option<String>,
    pub expected: expect::Expectation,
    pub kernel_release: Option<String>,
    pub duration: Duration,
}

impl CaseResult {
    pub fn found(&self) -> Vec<String> {
        self.analysis
            .kinds()
            .iter()
            .map(|k| k.name().to_string())
            .collect()
    }

    /// One line: the first verdict's summary, the reason for a mismatch, or "clean".
    pub fn summary(&self) -> String {
        match (&self.why, self.analysis.verdicts.first()) {
            (Some(w), _) if self.outcome == Outcome::Untestable => format!("could not test: {w}"),
            (_, Some(v)) => v.summary.clone(),
            (Some(w), None) => w.clone(),
            (None, None) => {
                "clean: every page's last DMA generation is on disk, no kernel report".into()
            }
        }
    }

    /// Evidence lines: every verdict's summary and evidence, then the notes.
    pub fn evidence_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(w) = &self.why {
            out.push(format!("expectation: {w}"));
        }
        for v in &self.analysis.verdicts {
            out.push(v.summary.clone());
            for e in &v.evidence {
                out.push(format!("  {}", e.text));
                for c in e.console.iter().take(12) {
                    out.push(format!("    | {c}"));
                }
            }
        }
        for n in &self.analysis.notes {
            out.push(format!("note: {n}"));
        }
        out
    }
}

/// Make `dir` for results; refuse a non-empty one (results are never overwritten).
pub fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        anyhow::bail!(
            "results folder {} exists and is not empty; not overwriting it (use another --out)",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

fn untestable(c: &Case, why: String, t0: Instant) -> Result<CaseResult> {
    let expected = c
        .scenario
        .expectation(&c.kernel.kernel_version, &c.fs)?
        .clone();
    let r = CaseResult {
        code: EXIT_UNTESTABLE,
        analysis: Analysis::default(),
        outcome: Outcome::Untestable,
        why: Some(why),
        expected,
        kernel_release: None,
        duration: t0.elapsed(),
    };
    write_verdicts(c, &r, &[], None)?;
    Ok(r)
}

/// Run one case. Errors are only for problems with the results folder; everything that stops
/// the test itself is an untestable result.
pub fn run_case(c: &Case) -> Result<CaseResult> {
    let t0 = Instant::now();
    fresh_dir(&c.dir)?;
    let s = c.scenario;
    let steps = expand::expand(s, &c.kernel.kernel_version, c.seed)?;
    std::fs::write(c.dir.join("steps"), steps.join("\n") + "\n")?;
    let fs: Fs = c.fs.parse()?;
    let cache = guest_images::cache::cache_dir()?;
    let image = match guest_images::disk::create(&cache, fs, fs.default_size()) {
        Ok(i) => i,
        Err(e) => return untestable(c, format!("making the {fs:?} image: {e:#}"), t0),
    };
    let p = |n: &str| c.dir.join(n);
    // Every step runs even after a failure: the oracle judges the whole run (a failed fsync
    // must not hide the extents that show what was lost).
    let job = Job {
        steps: steps.clone(),
        keep_going: true,
        ..Job::default()
    };
    let user = UserDisk {
        image: Some(image),
        journal: Some(p("journal")),
        journal_data: true,
        keep: Some(p("disk.img")),
    };
    let prepared = match prepare(&c.kernel, job, user) {
        Ok(x) => x,
        Err(e) => return untestable(c, format!("{e:#}"), t0),
    };
    let spec = RunSpec {
        kernel: prepared.kernel.clone(),
        initrd: Some(prepared.initrd),
        append: s.append.clone(),
        cpus: s.cpus,
        mem_mib: s.memory,
        timeout: Duration::from_secs(s.timeout),
        echo: c.echo,
        console_log: Some(p("console.log")),
        disks: prepared.disks,
        dma: Some(DmaSpec {
            log: Some(p("dma.log")),
        }),
    };
    let report = match runner::run(&spec) {
        Ok(r) => r,
        Err(e) => return untestable(c, format!("could not boot: {e:#}"), t0),
    };
    let vm = outcome::judge(
        &report,
        where_stopped(&report, prepared.system_map.as_deref()),
    );
    let watchdog = matches!(report.end, runner::VmEnd::Timeout)
        .then(|| vm.reason.clone().unwrap_or_else(|| "timeout".into()));
    if vm.code == EXIT_UNTESTABLE {
        let why = vm.reason.clone().unwrap_or_else(|| "could not test".into());
        let mut r = untestable(c, why, t0)?;
        r.kernel_release = prepared.release;
        return Ok(r);
    }
    if let Some(why) = missing_kernel_feature(&report) {
        let mut r = untestable(c, why, t0)?;
        r.kernel_release = prepared.release;
        return Ok(r);
    }
    let analysis = analyze(c, fs, &steps, &report, watchdog)?;
    let titles: Vec<String> = oracle::console::parse(&report.console)
        .into_iter()
        .map(|r| r.title)
        .collect();
    let expected = s.expectation(&c.kernel.kernel_version, &c.fs)?.clone();
    let (outcome, why) = expect::compare(&expected, &analysis.kinds(), &titles);
    let code = if analysis.verdicts.is_empty() {
        0
    } else {
        EXIT_FAIL
    };
    let r = CaseResult {
        code,
        analysis,
        outcome,
        why,
        expected,
        kernel_release: prepared.release,
        duration: t0.elapsed(),
    };
    write_verdicts(c, &r, &titles, Some(&report))?;
    if !c.keep_disk {
        let _ = std::fs::remove_file(p("disk.img"));
    }
    Ok(r)
}

/// A step that failed because the kernel lacks what the workload needs (no /dev/dmapin: the
/// driver patch is not applied; ENOSYS: a config option is off): the kernel could not be
/// tested, which is not a verdict about it (`git bisect run` must skip, not blame).
fn missing_kernel_feature(r: &RunReport) -> Option<String> {
    const ENOSYS: i32 = 38;
    r.steps.iter().find_map(|s| match s {
        StepReport::Failed {
            index,
            errno,
            message,
            ..
        } if *errno == ENOSYS || message.contains("cannot open /dev/dmapin") => Some(format!(
            "step {index} needs what this kernel lacks: {message} (build it with pinvm kernel \
             build, which applies the dmapin driver and pinvm's config)"
        )),
        _ => None,
    })
}

/// Gather the run's records and let the oracle judge.
fn analyze(
    c: &Case,
    fs: Fs,
    steps: &[String],
    report: &RunReport,
    watchdog: Option<String>,
) -> Result<Analysis> {
    let p = |n: &str| c.dir.join(n);
    let mut notes = Vec::new();
    let dma = match DmaLog::open(&p("dma.log")) {
        Ok(l) => l.records().collect::<Result<Vec<_>, _>>()?,
        Err(e) => {
            notes.push(format!("no DMA log: {e}"));
            vec![]
        }
    };
    let journal = match Journal::open(&p("journal")) {
        Ok(j) => j.records().collect::<Result<Vec<_>, _>>()?,
        Err(e) => {
            notes.push(format!("no block journal: {e}"));
            vec![]
        }
    };
    let timed: Vec<TimedStep> = report
        .steps
        .iter()
        .zip(&report.step_ns)
        .filter(|(r, _)| !matches!(r, StepReport::Extent { .. }))
        .map(|(r, &t)| TimedStep {
            line: steps
                .get(r.index() as usize - 1)
                .cloned()
                .unwrap_or_default(),
            report: r.clone(),
            time_ns: t,
        })
        .collect();
    // The target file's extents: from the closing `fiemap` (the last step), if it ran.
    let fiemap_index = steps.len() as u32;
    let fiemap_done = report
        .steps
        .iter()
        .any(|r| matches!(r, StepReport::Done { index, .. } if *index == fiemap_index));
    let disk = p("disk.img");
    let file = if fiemap_done {
        let mut extents = Vec::new();
        for r in &report.steps {
            if let StepReport::Extent {
                index,
                logical,
                physical,
                length,
                flags,
            } = r
            {
                if *index == fiemap_index {
                    extents.push(FileExtent {
                        logical: *logical,
                        device: guest_images::disk::device_offset(fs, &disk, *physical)?,
                        length: *length,
                        flags: *flags,
                    });
                }
            }
        }
        Some(FileMap { extents })
    } else {
        None
    };
    let image = std::fs::File::open(&disk).ok();
    let inputs = Inputs {
        dma,
        journal,
        file,
        image: image.as_ref().map(|f| f as &dyn oracle::DiskImage),
        console: &report.console,
        steps: timed,
        watchdog,
    };
    let mut a = oracle::analyze(&inputs);
    a.notes.splice(0..0, notes);
    Ok(a)
}

/// `verdicts.json` in the results folder.
fn write_verdicts(
    c: &Case,
    r: &CaseResult,
    titles: &[String],
    report: Option<&RunReport>,
) -> Result<()> {
    let s = c.scenario;
    let v = json!({
        "scenario": s.name,
        "id": s.id,
        "title": s.title,
        "file": s.path,
        "kernel": c.kernel.kernel_version,
        "kernel_file": c.kernel.kernel,
        "kernel_release": r.kernel_release,
        "fs": c.fs,
        "run": c.run,
        "seed": c.seed,
        "exit_code": r.code,
        "outcome": r.outcome,
        "why": r.why,
        "expected": r.expected,
        "found": r.found(),
        "console_titles": titles,
        "verdicts": r.analysis.verdicts,
        "notes": r.analysis.notes,
        "stats": r.analysis.stats,
        "duration_s": r.duration.as_secs_f64(),
        "vm": report.map(|rep| super::boot::report_json(rep, &outcome::judge(rep, None))),
    });
    let path = c.dir.join("verdicts.json");
    std::fs::write(&path, serde_json::to_string_pretty(&v)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}
