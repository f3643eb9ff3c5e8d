//! A suite: scenarios over a matrix of kernels × filesystems (× runs), optionally one shard
//! of it, run a few cases at a time on one machine; the result is a [`SuiteResult`] for the
//! report writers.

use crate::case::{run_case, Case};
use crate::kernel::{default_kernel, KernelChoice};
use crate::report::{CaseResult, Outcome, SuiteResult};
use crate::scenario::Scenario;
use anyhow::{Context, Result};
use machine::Machine;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

/// One cell of the matrix.
pub struct Cell<'a> {
    /// The scenario.
    pub scenario: &'a Scenario,
    /// Kernel version.
    pub kernel: String,
    /// Filesystem.
    pub fs: String,
    /// 1-based run index.
    pub run: u32,
}

/// Which part of every scenario's own matrix to run.
#[derive(Debug, Clone, Default)]
pub struct MatrixFilter {
    /// Kernel versions to keep (empty: each scenario's own list).
    pub kernels: Vec<String>,
    /// Filesystems to keep (empty: each scenario's own list).
    pub filesystems: Vec<String>,
    /// Runs per cell (at least 1).
    pub runs: u32,
}

/// Shard `index` (1-based) of `count`: every `count`-th cell of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based.
    pub index: usize,
    /// At least 1.
    pub count: usize,
}

impl Shard {
    /// The whole matrix.
    pub const ALL: Shard = Shard { index: 1, count: 1 };
}

impl std::str::FromStr for Shard {
    type Err = anyhow::Error;

    /// "I/N" with 1 <= I <= N.
    fn from_str(spec: &str) -> Result<Shard> {
        let (index, count) = spec
            .split_once('/')
            .and_then(|(i, n)| Some((i.parse::<usize>().ok()?, n.parse::<usize>().ok()?)))
            .filter(|(i, n)| *n >= 1 && (1..=*n).contains(i))
            .with_context(|| format!("--shard {spec}: expected I/N with 1 <= I <= N"))?;
        Ok(Shard { index, count })
    }
}

/// The cells of `scenarios`' matrices that `filter` keeps, in order, then those of `shard`.
pub fn cells<'a>(scenarios: &'a [Scenario], filter: &MatrixFilter, shard: Shard) -> Vec<Cell<'a>> {
    let keep = |list: &[String], x: &String| list.is_empty() || list.contains(x);
    let mut cells = Vec::new();
    for s in scenarios {
        for k in s.kernels.iter().filter(|k| keep(&filter.kernels, k)) {
            for f in s
                .filesystems
                .iter()
                .filter(|f| keep(&filter.filesystems, f))
            {
                for run in 1..=filter.runs {
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
    cells
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % shard.count == shard.index - 1)
        .map(|(_, c)| c)
        .collect()
}

/// Build (or find) every kernel the cells need (a version with the suite's and its
/// scenario's patches), one at a time, so parallel cases do not race to build the same one.
/// Returns the kernels that failed, described by version and patches (their cases will be
/// untestable).
pub fn build_kernels(
    machine: &dyn Machine,
    cells: &[Cell],
    opts: &SuiteOptions,
) -> Vec<(String, anyhow::Error)> {
    let mut kernels: Vec<KernelChoice> = Vec::new();
    for c in cells {
        let k = opts.kernel_for(c).for_machine(machine);
        let same = |o: &KernelChoice| {
            o.kernel_version == k.kernel_version && o.patches == k.patches && o.configs == k.configs
        };
        if !kernels.iter().any(same) {
            kernels.push(k);
        }
    }
    kernels
        .into_iter()
        .filter_map(|k| default_kernel(&k).err().map(|e| (describe(&k), e)))
        .collect()
}

/// "6.12", or "6.12 + a.patch, b.config" when patches or fragments are added.
fn describe(k: &KernelChoice) -> String {
    let extra: Vec<String> = k
        .patch_names()
        .into_iter()
        .chain(k.configs.iter().map(|c| c.display().to_string()))
        .collect();
    if extra.is_empty() {
        k.kernel_version.clone()
    } else {
        format!("{} + {}", k.kernel_version, extra.join(", "))
    }
}

/// How to run the cells.
pub struct SuiteOptions<'a> {
    /// Results folder (one subfolder per case); made by the caller.
    pub out: &'a Path,
    /// Runs per cell (names the run subfolders when > 1).
    pub runs: u32,
    /// Seed of run 1 (run N gets seed + N - 1).
    pub seed: u64,
    /// Keep every case's final disk image.
    pub keep_disk: bool,
    /// Cases at the same time.
    pub jobs: u32,
    /// Patches under test, applied to every kernel the suite builds.
    pub patches: Vec<PathBuf>,
    /// Config fragments, applied to every kernel the suite builds.
    pub configs: Vec<PathBuf>,
}

impl SuiteOptions<'_> {
    /// The kernel of version `v` with the suite's patches and fragments.
    pub fn kernel(&self, v: &str) -> KernelChoice {
        KernelChoice {
            patches: self.patches.clone(),
            configs: self.configs.clone(),
            ..KernelChoice::version(v)
        }
    }

    /// The kernel `cell` boots: its version with the suite's patches and fragments, then its
    /// scenario's.
    pub fn kernel_for(&self, cell: &Cell) -> KernelChoice {
        self.kernel(&cell.kernel).for_scenario(cell.scenario)
    }
}

/// Hears about the suite's progress (from the worker threads).
pub trait SuiteProgress: Sync {
    /// A cell starts; `done` cases have finished so far.
    fn started(&self, done: usize, cell: &Cell);
    /// A cell finished, the `done`-th to do so.
    fn finished(&self, done: usize, cell: &Cell, result: &CaseResult);
}

/// Run every cell on `machine`, `opts.jobs` at a time, and collect the results in cell order.
pub fn run(
    machine: &dyn Machine,
    cells: &[Cell],
    opts: &SuiteOptions,
    progress: &dyn SuiteProgress,
) -> SuiteResult {
    let started = SystemTime::now();
    let t0 = Instant::now();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, CaseResult)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.min(cells.len() as u32) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(cell) = cells.get(i) else { break };
                progress.started(done.load(Ordering::SeqCst), cell);
                let r = run_cell(machine, opts, cell);
                let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                progress.finished(n, cell, &r);
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((i, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(i, _)| *i);
    SuiteResult {
        started,
        duration: t0.elapsed(),
        cases: results.into_iter().map(|(_, r)| r).collect(),
    }
}

/// The results folder of `cell`: `<out>/<scenario>/<kernel>-<fs>[/run<N>]`.
fn cell_dir(opts: &SuiteOptions, cell: &Cell) -> PathBuf {
    let mut dir = opts
        .out
        .join(&cell.scenario.name)
        .join(format!("{}-{}", cell.kernel, cell.fs));
    if opts.runs > 1 {
        dir = dir.join(format!("run{}", cell.run));
    }
    dir
}

/// Run one cell; a case that fails outside its test (its results folder) is untestable.
fn run_cell(machine: &dyn Machine, opts: &SuiteOptions, cell: &Cell) -> CaseResult {
    let s = cell.scenario;
    let dir = cell_dir(opts, cell);
    let case = Case {
        scenario: s,
        kernel: opts.kernel_for(cell),
        fs: cell.fs.clone(),
        run: cell.run,
        seed: opts.seed + u64::from(cell.run - 1),
        dir: dir.clone(),
        keep_disk: opts.keep_disk,
        echo: false,
    };
    let t0 = Instant::now();
    match run_case(machine, &case) {
        Ok(r) => r,
        Err(e) => CaseResult {
            scenario: s.name.clone(),
            description: s.title.clone(),
            kernel: cell.kernel.clone(),
            kernel_release: None,
            patches: case.kernel.patch_names(),
            machine: machine.name().to_string(),
            fs: cell.fs.clone(),
            run: cell.run,
            seed: case.seed,
            code: machine::outcome::EXIT_UNTESTABLE,
            outcome: Outcome::Untestable,
            expected: vec![],
            found: vec![],
            summary: format!("could not test: {e:#}"),
            evidence: vec![],
            finding: None,
            why: Some(format!("{e:#}")),
            analysis: oracle::Analysis::default(),
            duration: t0.elapsed(),
            results_dir: Some(dir),
        },
    }
}
