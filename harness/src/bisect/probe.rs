//! Testing one revision: build it (incrementally, in the repository's build slot) with
//! pinvm's driver and platform patches plus any extra patch (a revert), then run the
//! reproducer on it, each run in its own evidence folder. Every run is saved as soon as it
//! ends (`<out>/revs/<label>.json`), so an interrupted bisection resumes where it stopped.

use super::decide::{RunClass, Tally};
use crate::case::{run_case, Case};
use crate::kernel::{default_kernel, KernelChoice};
use crate::prepare::{prepare, UserDisk};
use crate::scenario::Scenario;
use anyhow::{Context, Result};
use guest_images::initramfs::Job;
use machine::outcome::{self, EXIT_UNTESTABLE};
use machine::{DmaSpec, Machine, RunSpec};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What reproduces the problem.
#[derive(Debug, Clone)]
pub enum Reproducer {
    /// A scenario on one filesystem.
    Scenario {
        /// The scenario.
        scenario: Box<Scenario>,
        /// Its filesystem.
        fs: String,
    },
    /// A command run in the guest; a failure (status 1..=124, or a kernel crash) is a
    /// finding named `command_failed`.
    Command {
        /// argv.
        argv: Vec<String>,
        /// Seconds before the watchdog stops the guest.
        timeout: u64,
    },
}

/// The finding a failing command run reports.
pub const COMMAND_FAILED: &str = "command_failed";

/// One run's raw result (classified against the target later: the target may only be
/// known once the bad endpoint ran).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// 1-based; also the seed of the scenario's random numbers.
    pub index: u32,
    /// 0 clean, 1 something found, 125 could not test.
    pub code: i32,
    /// Verdict kinds found (or `command_failed`).
    pub found: Vec<String>,
    /// One-line summaries of what was found (titles, evidence), searched by `--match`.
    pub summaries: Vec<String>,
    /// Why it could not test, or the case's summary.
    pub summary: String,
    /// The run's evidence folder.
    pub dir: PathBuf,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// How the revision's kernel was built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// Kernel cache key.
    pub key: String,
    /// SHA-256 of the vmlinux (a commit that changes nothing in it is a no-op).
    pub vmlinux_sha256: String,
    /// The vmlinux.
    pub vmlinux: PathBuf,
    /// VERSION.PATCHLEVEL, e.g. `6.12`.
    pub version: String,
    /// Seconds this probe spent getting the kernel (0 from the cache).
    pub seconds: f64,
    /// Found in the cache.
    pub cached: bool,
    /// Built incrementally in a kept build slot.
    pub incremental: bool,
    /// Source files the build slot had to rewrite.
    pub files_written: usize,
}

/// Everything known about one revision (plus extra patches).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevRecord {
    /// `<commit[..12]>`, or with `-revert-<culprit[..12]>`.
    pub label: String,
    /// The commit id.
    pub commit: String,
    /// Its subject.
    pub subject: String,
    /// Extra patches applied (paths).
    pub patches: Vec<PathBuf>,
    /// The build, once done.
    pub build: Option<BuildRecord>,
    /// Why it could not be built, if it could not.
    pub build_error: Option<String>,
    /// The runs so far.
    pub runs: Vec<RunRecord>,
}

impl RevRecord {
    /// Seconds spent in runs.
    pub fn run_seconds(&self) -> f64 {
        self.runs.iter().map(|r| r.seconds).sum()
    }
}

/// The target signature: what a run must show to count as a detection. Every element must
/// be present: a verdict kind (`lost_write`, `kernel_warning`, `command_failed`...) or a
/// text found in what the run reported (a crash title such as `WARNING in ext4_dirty_folio`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The elements.
    pub elements: Vec<String>,
}

impl Target {
    /// Whether a run shows every element.
    pub fn matches(&self, r: &RunRecord) -> bool {
        !self.elements.is_empty()
            && self.elements.iter().all(|e| {
                r.found.iter().any(|f| f == e) || r.summaries.iter().any(|s| s.contains(e))
            })
    }

    /// The run's class against this target.
    pub fn classify(&self, r: &RunRecord) -> RunClass {
        if r.code == EXIT_UNTESTABLE {
            return RunClass::Other(format!("could not test: {}", r.summary));
        }
        if self.matches(r) {
            return RunClass::Detected;
        }
        if r.code == 0 && r.found.is_empty() {
            return RunClass::Clean;
        }
        RunClass::Other(format!("not the target: {}", r.found.join(", ")))
    }

    /// The tally of a revision's runs.
    pub fn tally(&self, rec: &RevRecord) -> Tally {
        let mut t = Tally::default();
        for r in &rec.runs {
            t.add(&self.classify(r));
        }
        t
    }

    /// The default target: what every bad-endpoint run that found something agreed on.
    pub fn learn(runs: &[RunRecord]) -> Target {
        let mut finding = runs
            .iter()
            .filter(|r| r.code != EXIT_UNTESTABLE && !r.found.is_empty());
        let Some(first) = finding.next() else {
            return Target::default();
        };
        let mut elements = first.found.clone();
        for r in finding {
            elements.retain(|e| r.found.contains(e));
        }
        Target { elements }
    }
}

/// Where a bisection keeps things, and what it runs.
pub struct Prober<'a> {
    /// The machine runs run on.
    pub machine: &'a dyn Machine,
    /// The user's repository.
    pub tree: PathBuf,
    /// The reproducer.
    pub reproducer: Reproducer,
    /// The results folder (`revs/` inside).
    pub out: PathBuf,
    /// Config fragments for every build.
    pub configs: Vec<PathBuf>,
}

impl Prober<'_> {
    fn record_path(&self, label: &str) -> PathBuf {
        self.out.join("revs").join(format!("{label}.json"))
    }

    /// The saved record of `label`, or a new one.
    pub fn load(&self, label: &str, commit: &str, subject: &str, patches: &[PathBuf]) -> RevRecord {
        let saved = std::fs::read_to_string(self.record_path(label))
            .ok()
            .and_then(|t| serde_json::from_str::<RevRecord>(&t).ok())
            .filter(|r| r.commit == commit && r.patches == patches);
        saved.unwrap_or_else(|| RevRecord {
            label: label.to_string(),
            commit: commit.to_string(),
            subject: subject.to_string(),
            patches: patches.to_vec(),
            build: None,
            build_error: None,
            runs: Vec::new(),
        })
    }

    /// Saves a record (temp + rename).
    pub fn save(&self, rec: &RevRecord) -> Result<()> {
        let path = self.record_path(&rec.label);
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_string_pretty(rec)? + "\n")
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }

    /// Builds the revision's kernel if that was not done (a failure is recorded).
    pub fn ensure_built(&self, rec: &mut RevRecord) -> Result<()> {
        // A build recorded by a run on another machine may lack the bzImage this one boots.
        let bootable = |b: &BuildRecord| {
            !self.machine.boots_bzimage() || b.vmlinux.with_file_name("bzImage").is_file()
        };
        if rec.build.as_ref().is_some_and(bootable) || rec.build_error.is_some() {
            return Ok(());
        }
        let t0 = Instant::now();
        let choice = KernelChoice {
            source: Some(format!("{}@{}", self.tree.display(), rec.commit)),
            patches: rec.patches.clone(),
            configs: self.configs.clone(),
            ..KernelChoice::default()
        }
        .for_machine(self.machine);
        match default_kernel(&choice) {
            Ok(k) => {
                let inc = k.manifest.incremental.as_ref();
                rec.build = Some(BuildRecord {
                    key: k.manifest.key.clone(),
                    vmlinux_sha256: guest_images::cache::sha256_file(&k.vmlinux)?,
                    vmlinux: k.vmlinux.clone(),
                    version: k.manifest.version.clone(),
                    seconds: if k.cached {
                        0.0
                    } else {
                        t0.elapsed().as_secs_f64()
                    },
                    cached: k.cached,
                    incremental: inc.is_some_and(|i| i.incremental),
                    files_written: inc.map(|i| i.files_written).unwrap_or(0),
                });
            }
            Err(e) => rec.build_error = Some(format!("{e:#}")),
        }
        self.save(rec)
    }

    /// Runs the reproducer once more on the built revision and saves the record.
    pub fn run_once(&self, rec: &mut RevRecord) -> Result<()> {
        let Some(build) = rec.build.clone() else {
            anyhow::bail!("{} is not built", rec.label);
        };
        let index = rec.runs.len() as u32 + 1;
        let dir = self
            .out
            .join("revs")
            .join(&rec.label)
            .join(format!("run-{index}"));
        if dir.exists() {
            // A run interrupted before its record was saved: its folder is incomplete.
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        let t0 = Instant::now();
        let mut r = match &self.reproducer {
            Reproducer::Scenario { scenario, fs } => {
                self.run_scenario(scenario, fs, &build, index, &dir)?
            }
            Reproducer::Command { argv, timeout } => {
                self.run_command(argv, *timeout, &build, index, &dir)?
            }
        };
        r.seconds = t0.elapsed().as_secs_f64();
        rec.runs.push(r);
        self.save(rec)
    }

    fn run_scenario(
        &self,
        s: &Scenario,
        fs: &str,
        build: &BuildRecord,
        index: u32,
        dir: &Path,
    ) -> Result<RunRecord> {
        let case = Case {
            scenario: s,
            kernel: KernelChoice {
                kernel: Some(build.vmlinux.clone()),
                kernel_version: build.version.clone(),
                ..KernelChoice::default()
            },
            fs: fs.to_string(),
            run: index,
            seed: u64::from(index),
            dir: dir.to_path_buf(),
            keep_disk: false,
            echo: false,
        };
        let c = run_case(self.machine, &case)?;
        let mut summaries = vec![c.summary.clone()];
        summaries.extend(c.analysis.verdicts.iter().map(|v| v.summary.clone()));
        Ok(RunRecord {
            index,
            code: c.code,
            found: c.found,
            summaries,
            summary: c.summary,
            dir: dir.to_path_buf(),
            seconds: 0.0,
        })
    }

    fn run_command(
        &self,
        argv: &[String],
        timeout: u64,
        build: &BuildRecord,
        index: u32,
        dir: &Path,
    ) -> Result<RunRecord> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let choice = KernelChoice {
            kernel: Some(build.vmlinux.clone()),
            kernel_version: build.version.clone(),
            ..KernelChoice::default()
        };
        let job = Job {
            argv: argv.to_vec(),
            ..Job::default()
        };
        let record = |code: i32, summary: String| RunRecord {
            index,
            code,
            found: if code == 0 || code == EXIT_UNTESTABLE {
                Vec::new()
            } else {
                vec![COMMAND_FAILED.to_string()]
            },
            summaries: vec![summary.clone()],
            summary,
            dir: dir.to_path_buf(),
            seconds: 0.0,
        };
        let p = match prepare(&choice, job, UserDisk::default()) {
            Ok(p) => p,
            Err(e) => return Ok(record(EXIT_UNTESTABLE, format!("{e:#}"))),
        };
        let spec = RunSpec {
            kernel: p.kernel.clone(),
            initrd: Some(p.initrd),
            append: Vec::new(),
            cpus: 2,
            mem_mib: 256,
            timeout: Duration::from_secs(timeout),
            echo: false,
            console_log: Some(dir.join("console.log")),
            disks: p.disks,
            dma: Some(DmaSpec { log: None }),
        };
        let report = match self.machine.run(&spec) {
            Ok(r) => r,
            Err(e) => return Ok(record(EXIT_UNTESTABLE, format!("could not boot: {e}"))),
        };
        let where_ = crate::record::where_stopped(&report, p.system_map.as_deref());
        let v = outcome::judge(&report, where_);
        let code = if (1..=124).contains(&v.code) {
            1
        } else {
            v.code
        };
        let summary = v
            .reason
            .unwrap_or_else(|| format!("the command exited with {}", v.code));
        Ok(record(code, summary))
    }
}
