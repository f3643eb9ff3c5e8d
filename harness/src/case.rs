//! One cell of a scenario's matrix: boot the kernel with the scenario's workload on a fresh
//! filesystem, record everything (console, block journal with data, DMA log, final disk), let
//! the oracle judge, and compare with the expectation. Shared by `pinvm run` and `pinvm suite`.

use crate::analyze::analyze;
use crate::kernel::KernelChoice;
use crate::prepare::{check_initrd_fits, prepare_with, HostFiles, UserDisk};
use crate::record::{report_json, where_stopped};
use crate::report::{CaseResult, Outcome};
use crate::scenario::{expand, expect, Expectation, Scenario};
use anyhow::{Context, Result};
use guest_images::disk::Fs;
use guest_images::initramfs::Job;
use machine::outcome::{self, EXIT_FAIL, EXIT_UNTESTABLE};
use machine::{DmaSpec, Machine, RunReport, RunSpec, VmEnd};
use oracle::Analysis;
use proto::agent::StepReport;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What to run.
pub struct Case<'a> {
    /// The scenario.
    pub scenario: &'a Scenario,
    /// The kernel: a version pinvm builds, or a file (then `kernel_version` names the
    /// expectation to compare with).
    pub kernel: KernelChoice,
    /// The filesystem of the disk ("ext4", "xfs", "btrfs").
    pub fs: String,
    /// 1-based run index.
    pub run: u32,
    /// Seed of the scenario's `{rand:A-B}` numbers.
    pub seed: u64,
    /// Results folder for this case (created; must not exist or be empty).
    pub dir: PathBuf,
    /// Keep the final disk image (disk.img) in the results folder.
    pub keep_disk: bool,
    /// Copy the guest console to stdout while it runs.
    pub echo: bool,
}

/// The step that opens /dev/dmapin first: its ENOENT/ENODEV/ENXIO means the kernel has no
/// dmapin driver.
const DMAPIN_OPEN_STEP: &str = "pin";

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

/// Run one case on `machine`. Errors are only for problems with the results folder;
/// everything that stops the test itself is an untestable result.
pub fn run_case(machine: &dyn Machine, c: &Case) -> Result<CaseResult> {
    run_case_with(machine, c, &HostFiles::default())
}

/// [`run_case`] with host files in the guest (`--put`, `--share`).
pub fn run_case_with(machine: &dyn Machine, c: &Case, files: &HostFiles) -> Result<CaseResult> {
    let t0 = Instant::now();
    fresh_dir(&c.dir)?;
    let s = c.scenario;
    let steps = expand::expand(s, &c.kernel.kernel_version, machine.name(), c.seed)?;
    std::fs::write(c.dir.join("steps"), steps.join("\n") + "\n")?;
    let fs: Fs = c.fs.parse()?;
    let expected = s.expectation(&c.kernel.kernel_version, &c.fs)?.clone();
    let untestable = |u: Untestable| {
        let v = Verdicts::untestable(u.why);
        let r = result(c, machine, &expected, v, u.release, t0.elapsed());
        write_verdicts(c, &r, &expected, &[], None, u.cache_key.as_deref())?;
        Ok(r)
    };
    let cache = guest_images::cache::cache_dir()?;
    let kernel = c.kernel.for_machine(machine);
    let (spec, booted) = match case_run(c, &kernel, fs, &steps, &cache, files) {
        Ok(x) => x,
        Err(u) => return untestable(u),
    };
    let (report, watchdog) = match run_and_check(machine, &spec, &booted) {
        Ok(x) => x,
        Err(u) => return untestable(u),
    };
    let analysis = match analyze(fs, &steps, &report, watchdog) {
        Ok(a) => a,
        Err(e) => {
            // The run happened but its records cannot be judged (e.g. the file's extents
            // moved after its closing FIEMAP): untestable, with the run's record kept.
            let v = Verdicts::untestable(format!("judging the run: {e:#}"));
            let key = booted.cache_key.clone();
            let r = result(c, machine, &expected, v, booted.release, t0.elapsed());
            write_verdicts(c, &r, &expected, &[], Some(&report), key.as_deref())?;
            return Ok(r);
        }
    };
    let titles: Vec<String> = oracle::console::parse(&report.console)
        .into_iter()
        .map(|r| r.title)
        .collect();
    let (outcome, why) = expect::compare(&expected, &analysis.kinds(), &titles);
    let verdicts = Verdicts {
        code: if analysis.verdicts.is_empty() {
            0
        } else {
            EXIT_FAIL
        },
        outcome,
        why,
        analysis,
    };
    let key = booted.cache_key.clone();
    let r = result(
        c,
        machine,
        &expected,
        verdicts,
        booted.release,
        t0.elapsed(),
    );
    write_verdicts(c, &r, &expected, &titles, Some(&report), key.as_deref())?;
    if !c.keep_disk {
        let _ = std::fs::remove_file(c.dir.join("disk.img"));
    }
    Ok(r)
}

/// Why a case could not test its kernel, and the kernel's release if it got that far.
struct Untestable {
    why: String,
    release: Option<String>,
    cache_key: Option<String>,
}

impl Untestable {
    fn before_boot(why: String) -> Untestable {
        Untestable {
            why,
            release: None,
            cache_key: None,
        }
    }
}

/// What the run needs besides its [`RunSpec`]: to name where hung vCPUs were, and to report
/// the kernel's release and cache key.
struct Booted {
    system_map: Option<PathBuf>,
    release: Option<String>,
    cache_key: Option<String>,
}

/// The case's run: a fresh image of its filesystem, the kernel, the job (every step runs even
/// after a failure: the oracle judges the whole run, and a failed fsync must not hide the
/// extents that show what was lost), everything recorded into the results folder; images
/// come from `cache`.
fn case_run(
    c: &Case,
    kernel: &KernelChoice,
    fs: Fs,
    steps: &[String],
    cache: &Path,
    files: &HostFiles,
) -> Result<(RunSpec, Booted), Untestable> {
    let s = c.scenario;
    let p = |n: &str| c.dir.join(n);
    let image = guest_images::disk::create(cache, fs, fs.default_size())
        .map_err(|e| Untestable::before_boot(format!("making the {fs:?} image: {e:#}")))?;
    let job = Job {
        steps: steps.to_vec(),
        keep_going: true,
        ..Job::default()
    };
    let user = UserDisk {
        image: Some(image),
        journal: Some(p("journal")),
        journal_data: true,
        keep: Some(p("disk.img")),
    };
    let prepared = prepare_with(kernel, job, user, files)
        .map_err(|e| Untestable::before_boot(format!("{e:#}")))?;
    check_initrd_fits(prepared.initrd.len(), s.memory)
        .map_err(|e| Untestable::before_boot(format!("{e:#}")))?;
    let spec = RunSpec {
        kernel: prepared.kernel,
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
    let booted = Booted {
        system_map: prepared.system_map,
        release: prepared.release,
        cache_key: prepared.cache_key,
    };
    Ok((spec, booted))
}

/// Run `spec` and keep only runs that tested the kernel: it booted, the agent worked, and no
/// step found the kernel lacking what the workload needs. Returns the run record and, for a
/// hang, the watchdog's reason for the oracle.
fn run_and_check(
    machine: &dyn Machine,
    spec: &RunSpec,
    booted: &Booted,
) -> Result<(RunReport, Option<String>), Untestable> {
    let report = machine
        .run(spec)
        .map_err(|e| Untestable::before_boot(format!("could not boot: {e}")))?;
    let untestable = |why: String| Untestable {
        why,
        release: booted.release.clone(),
        cache_key: booted.cache_key.clone(),
    };
    let vm = outcome::judge(
        &report,
        where_stopped(&report, booted.system_map.as_deref()),
    );
    if vm.code == EXIT_UNTESTABLE {
        return Err(untestable(
            vm.reason.unwrap_or_else(|| "could not test".into()),
        ));
    }
    if let Some(why) = missing_kernel_feature(&report) {
        return Err(untestable(why));
    }
    let watchdog =
        matches!(report.end, VmEnd::Timeout).then(|| vm.reason.unwrap_or_else(|| "timeout".into()));
    Ok((report, watchdog))
}

/// A step that failed because the kernel lacks what the workload needs: the `pin` step could
/// not open /dev/dmapin (ENOENT: no device node, ENODEV/ENXIO: no driver behind it; the
/// driver patch is not applied), or a system call is not built in (ENOSYS: a config option is
/// off). The kernel could not be tested, which is not a verdict about it (`git bisect run`
/// must skip, not blame).
fn missing_kernel_feature(r: &RunReport) -> Option<String> {
    r.steps.iter().find_map(|s| match s {
        StepReport::Failed {
            index,
            op,
            errno,
            message,
        } if *errno == libc::ENOSYS
            || (op == DMAPIN_OPEN_STEP
                && matches!(*errno, libc::ENOENT | libc::ENODEV | libc::ENXIO)) =>
        {
            Some(format!(
                "step {index} needs what this kernel lacks: {message} (build it with pinvm \
                 kernel build, which applies the dmapin driver and pinvm's config)"
            ))
        }
        _ => None,
    })
}

/// How a case turned out, before it becomes a [`CaseResult`].
struct Verdicts {
    code: i32,
    outcome: Outcome,
    why: Option<String>,
    analysis: Analysis,
}

impl Verdicts {
    fn untestable(why: String) -> Verdicts {
        Verdicts {
            code: EXIT_UNTESTABLE,
            outcome: Outcome::Untestable,
            why: Some(why),
            analysis: Analysis::default(),
        }
    }
}

/// The case's result, with its one-line summary and evidence lines.
fn result(
    c: &Case,
    machine: &dyn Machine,
    expected: &Expectation,
    v: Verdicts,
    kernel_release: Option<String>,
    duration: Duration,
) -> CaseResult {
    CaseResult {
        scenario: c.scenario.name.clone(),
        description: c.scenario.title.clone(),
        kernel: c.kernel.kernel_version.clone(),
        kernel_release,
        patches: c.kernel.patch_names(),
        machine: machine.name().to_string(),
        fs: c.fs.clone(),
        run: c.run,
        seed: c.seed,
        code: v.code,
        outcome: v.outcome,
        expected: expected.verdicts.clone(),
        found: v
            .analysis
            .kinds()
            .iter()
            .map(|k| k.name().to_string())
            .collect(),
        summary: summary(v.outcome, v.why.as_deref(), &v.analysis),
        evidence: evidence_lines(v.why.as_deref(), &v.analysis),
        finding: expected.finding.clone(),
        why: v.why,
        analysis: v.analysis,
        duration,
        results_dir: Some(c.dir.clone()),
    }
}

/// One line: the first verdict's summary, the reason for a mismatch, or "clean".
fn summary(outcome: Outcome, why: Option<&str>, a: &Analysis) -> String {
    match (why, a.verdicts.first()) {
        (Some(w), _) if outcome == Outcome::Untestable => format!("could not test: {w}"),
        (_, Some(v)) => v.summary.clone(),
        (Some(w), None) => w.to_string(),
        (None, None) => {
            "clean: every page's last DMA generation is on disk, no kernel report".into()
        }
    }
}

/// Evidence lines: every verdict's summary and evidence, then the notes.
fn evidence_lines(why: Option<&str>, a: &Analysis) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(w) = why {
        out.push(format!("expectation: {w}"));
    }
    for v in &a.verdicts {
        out.push(v.summary.clone());
        for e in &v.evidence {
            out.push(format!("  {}", e.text));
            for c in e.console.iter().take(12) {
                out.push(format!("    | {c}"));
            }
        }
    }
    for n in &a.notes {
        out.push(format!("note: {n}"));
    }
    out
}

/// `verdicts.json` in the results folder (`kernel_key`: the kernel's cache key, when pinvm
/// built it).
fn write_verdicts(
    c: &Case,
    r: &CaseResult,
    expected: &Expectation,
    titles: &[String],
    report: Option<&RunReport>,
    kernel_key: Option<&str>,
) -> Result<()> {
    let s = c.scenario;
    let v = json!({
        "scenario": s.name,
        "id": s.id,
        "title": s.title,
        "file": s.path,
        "kernel": c.kernel.kernel_version,
        "kernel_file": c.kernel.kernel,
        "kernel_source": c.kernel.source,
        "patches": c.kernel.patches,
        "configs": c.kernel.configs,
        "kernel_release": r.kernel_release,
        "kernel_cache_key": kernel_key,
        "machine": r.machine,
        "fs": c.fs,
        "run": c.run,
        "seed": c.seed,
        "exit_code": r.code,
        "outcome": r.outcome,
        "why": r.why,
        "expected": expected,
        "found": r.found,
        "console_titles": titles,
        "verdicts": r.analysis.verdicts,
        "notes": r.analysis.notes,
        "stats": r.analysis.stats,
        "duration_s": r.duration.as_secs_f64(),
        "vm": report.map(|rep| report_json(rep, &outcome::judge(rep, None))),
    });
    let path = c.dir.join("verdicts.json");
    std::fs::write(&path, serde_json::to_string_pretty(&v)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use machine::{RecordPaths, Timings};

    fn failed(op: &str, errno: i32) -> RunReport {
        RunReport {
            machine: "test".into(),
            end: VmEnd::Reset,
            cmd_status: Some(0),
            agent_started: true,
            agent_errors: vec![],
            console: String::new(),
            console_line_ns: vec![],
            console_at_cmd_done: None,
            timings: Timings::default(),
            vcpu_rips: vec![],
            notes: vec![],
            quirks: String::new(),
            cmdline: String::new(),
            steps: vec![StepReport::Failed {
                index: 4,
                op: op.into(),
                errno,
                message: "m".into(),
            }],
            step_times: vec![Duration::ZERO],
            step_ns: vec![0],
            records: RecordPaths::default(),
        }
    }

    #[test]
    fn missing_driver_or_syscall_is_untestable() {
        assert!(missing_kernel_feature(&failed("pin", libc::ENOENT)).is_some());
        assert!(missing_kernel_feature(&failed("pin", libc::ENODEV)).is_some());
        assert!(missing_kernel_feature(&failed("fallocate", libc::ENOSYS)).is_some());
        // A pin refused by the kernel is a result, not a missing feature.
        assert!(missing_kernel_feature(&failed("pin", libc::EFAULT)).is_none());
        // ENOENT from another step is the workload's business.
        assert!(missing_kernel_feature(&failed("fsync", libc::ENOENT)).is_none());
    }
}
