//! `pinvm bisect`: find the commit that introduced a problem a scenario (or a command)
//! reproduces, flake-aware, verified, resumable, without touching the user's checkout.
//!
//! 1. The endpoints first: the bad revision runs `2 × runs` times (its detection rate is
//!    measured), the good one `runs` times (it must be clean every time); otherwise the
//!    bisection stops, saying which endpoint is wrong.
//! 2. `git bisect --no-checkout` in a private bare clone that shares the user's objects
//!    ([`git`]) proposes revisions; each is built incrementally in the repository's build
//!    slot with pinvm's driver and platform patches and decided by [`decide`] (a revision the
//!    patches do not apply to, or that does not build or boot, is skipped with the reason).
//! 3. The culprit is verified four ways ([`Verification`]).
//! 4. Everything is saved as it happens (`<out>/revs/*.json`, evidence folders, the bisect
//!    log), so running the same command again resumes; [`report`] writes the table and JSON.

pub mod decide;
pub mod git;
pub mod probe;
pub mod report;

use anyhow::{bail, Context, Result};
use decide::{Decision, Endpoints, Tally};
use probe::{Prober, RevRecord, Target};
use serde::Serialize;
use std::path::PathBuf;

/// The role of the bad endpoint's line.
const BAD_ENDPOINT: &str = "bad endpoint";
/// The role of the good endpoint's line.
const GOOD_ENDPOINT: &str = "good endpoint";

/// What to bisect.
pub struct Spec<'a> {
    /// Runs the reproducer and holds the paths.
    pub prober: Prober<'a>,
    /// The known-good revision (as the user wrote it).
    pub good: String,
    /// The known-bad revision.
    pub bad: String,
    /// Runs per endpoint check (the bad endpoint runs twice as many).
    pub runs: u32,
    /// The target signature given with `--match` (empty: learnt from the bad endpoint).
    pub matches: Vec<String>,
    /// Confidence for calling a revision good.
    pub confidence: f64,
}

/// The four checks of a culprit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    /// The culprit reproduces (bad by the rules).
    pub culprit_reproduces: Option<bool>,
    /// Its parent is clean (good by the rules).
    pub parent_clean: Option<bool>,
    /// The bad revision with the culprit reverted is clean.
    pub revert_clean: Option<bool>,
    /// The culprit's vmlinux differs from its parent's (false: a no-op commit).
    pub vmlinux_differs: Option<bool>,
    /// Why a check failed or could not be made.
    pub notes: Vec<String>,
}

impl Verification {
    /// Whether all four checks passed.
    pub fn verified(&self) -> bool {
        [
            self.culprit_reproduces,
            self.parent_clean,
            self.revert_clean,
            self.vmlinux_differs,
        ]
        .iter()
        .all(|c| *c == Some(true))
    }
}

/// How a bisection ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Conclusion {
    /// The first bad commit.
    Culprit {
        /// Its id.
        commit: String,
        /// Its subject.
        subject: String,
        /// The four checks.
        verification: Verification,
    },
    /// Skipped revisions leave these candidates.
    Inconclusive {
        /// The commits the first bad one is among.
        candidates: Vec<String>,
    },
    /// The bisection could not run.
    CouldNotBisect {
        /// Why.
        reason: String,
    },
}

/// A revision's line in the report.
#[derive(Debug, Clone, Serialize)]
pub struct RevLine {
    /// Why it was tested: `bad endpoint`, `good endpoint`, `bisect`, `verify: parent`...
    pub role: String,
    /// The record.
    pub record: RevRecord,
    /// Its tally against the target.
    pub tally: Tally,
    /// Its decision.
    pub decision: Option<Decision>,
}

/// The whole result.
#[derive(Debug, Clone, Serialize)]
pub struct BisectResult {
    /// How it ended.
    pub conclusion: Conclusion,
    /// The target signature.
    pub target: Target,
    /// The bad endpoint's detection rate.
    pub rate: f64,
    /// The confidence asked for.
    pub confidence: f64,
    /// Clean runs a good revision needed.
    pub clean_runs_needed: u32,
    /// Every revision tested, in order.
    pub revisions: Vec<RevLine>,
    /// `git bisect log` (replay with `git bisect replay`).
    pub bisect_log: String,
    /// Seconds building and running.
    pub build_seconds: f64,
    /// Seconds in runs.
    pub run_seconds: f64,
    /// Wall-clock seconds of this invocation.
    pub total_seconds: f64,
}

impl BisectResult {
    /// Exit code: 0 found and verified, 1 found but not verified, 125 could not bisect.
    pub fn exit_code(&self) -> i32 {
        match &self.conclusion {
            Conclusion::Culprit { verification, .. } if verification.verified() => 0,
            Conclusion::Culprit { .. } => 1,
            _ => 125,
        }
    }
}

/// The state of a running bisection.
struct Run<'a, 'p> {
    spec: &'a Spec<'p>,
    repo: git::Private,
    target: Target,
    lines: Vec<RevLine>,
    progress: &'a mut dyn FnMut(&str),
}

/// Runs the bisection; `progress` gets one line per event.
pub fn bisect(spec: &Spec, progress: &mut dyn FnMut(&str)) -> Result<BisectResult> {
    let t0 = std::time::Instant::now();
    let out = &spec.prober.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let repo = git::Private::open_or_clone(&spec.prober.tree, &out.join("repo.git"))?;
    let user_gdir = guest_images::kernel::source::git_dir(&spec.prober.tree)?;
    let bad = guest_images::kernel::source::rev_parse(&user_gdir, &spec.bad)?;
    let good = guest_images::kernel::source::rev_parse(&user_gdir, &spec.good)?;
    if !repo.is_ancestor(&good, &bad) {
        bail!(
            "--good {} is not an ancestor of --bad {}",
            spec.good,
            spec.bad
        );
    }
    let mut run = Run {
        spec,
        repo,
        target: Target {
            elements: spec.matches.clone(),
        },
        lines: Vec::new(),
        progress,
    };
    let conclusion = match run.endpoints(&bad, &good)? {
        Err(reason) => Conclusion::CouldNotBisect { reason },
        Ok(need) => run.search(&bad, &good, need)?,
    };
    let rate = run.rate();
    let need = decide::clean_runs_needed(rate, spec.confidence);
    let bisect_log = run.repo.bisect_log().unwrap_or_default();
    let build_seconds = run
        .lines
        .iter()
        .filter_map(|l| l.record.build.as_ref().map(|b| b.seconds))
        .sum();
    let run_seconds = run.lines.iter().map(|l| l.record.run_seconds()).sum();
    Ok(BisectResult {
        conclusion,
        target: run.target,
        rate,
        confidence: spec.confidence,
        clean_runs_needed: need,
        revisions: run.lines,
        bisect_log,
        build_seconds,
        run_seconds,
        total_seconds: t0.elapsed().as_secs_f64(),
    })
}

impl Run<'_, '_> {
    fn say(&mut self, line: String) {
        (self.progress)(&line);
    }

    fn rate(&self) -> f64 {
        let find = |role: &str| {
            self.lines
                .iter()
                .find(|l| l.role == role)
                .map(|l| l.tally)
                .unwrap_or_default()
        };
        Endpoints {
            bad: find(BAD_ENDPOINT),
            good: find(GOOD_ENDPOINT),
        }
        .rate()
    }

    /// Tests a revision (plus patches) `runs` times, or until decided when `need` is given.
    fn probe(
        &mut self,
        role: &str,
        commit: &str,
        patches: &[PathBuf],
        label: &str,
        fixed_runs: Option<u32>,
        need_clean: u32,
    ) -> Result<Option<Decision>> {
        let subject = self.repo.subject(commit);
        let p = &self.spec.prober;
        let mut rec = p.load(label, commit, &subject, patches);
        self.say(format!(
            "{role}: {} {subject}",
            &commit[..12.min(commit.len())]
        ));
        p.ensure_built(&mut rec)?;
        let decision = match &rec.build_error {
            Some(e) => Some(Decision::Skip(format!(
                "could not build: {}",
                first_line(e)
            ))),
            None => self.run_until_decided(&mut rec, fixed_runs, need_clean)?,
        };
        if self.target.elements.is_empty() && role == BAD_ENDPOINT {
            self.target = Target::learn(&rec.runs);
            let t = self.target.elements.join(" + ");
            self.say(format!(
                "target signature (learnt from the bad revision): {t}"
            ));
        }
        let tally = self.target.tally(&rec);
        self.say(format!(
            "  {} runs: {} detected, {} clean, {} neither → {}",
            tally.runs(),
            tally.detected,
            tally.clean,
            tally.other,
            decision_text(&decision)
        ));
        self.lines.push(RevLine {
            role: role.to_string(),
            record: rec,
            tally,
            decision: decision.clone(),
        });
        Ok(decision)
    }

    fn run_until_decided(
        &mut self,
        rec: &mut RevRecord,
        fixed_runs: Option<u32>,
        need_clean: u32,
    ) -> Result<Option<Decision>> {
        let p = &self.spec.prober;
        if let Some(n) = fixed_runs {
            while (rec.runs.len() as u32) < n {
                p.run_once(rec)?;
                self.say_run(rec);
            }
            return Ok(None);
        }
        let budget = decide::budget(need_clean);
        loop {
            let t = self.target.tally(rec);
            if let Some(d) = decide::decide(&t, need_clean, budget) {
                return Ok(Some(d));
            }
            p.run_once(rec)?;
            self.say_run(rec);
        }
    }

    fn say_run(&mut self, rec: &RevRecord) {
        if let Some(r) = rec.runs.last() {
            let line = format!(
                "  run {}: {} ({:.1} s) {}",
                r.index,
                if r.found.is_empty() {
                    "-".into()
                } else {
                    r.found.join(",")
                },
                r.seconds,
                r.dir.display()
            );
            self.say(line);
        }
    }

    /// Checks the endpoints; learns the target if none was given. `Ok(Err(reason))` when
    /// they cannot anchor a bisection; `Ok(Ok(clean runs needed))` otherwise.
    fn endpoints(&mut self, bad: &str, good: &str) -> Result<std::result::Result<u32, String>> {
        let n = self.spec.runs;
        self.probe(BAD_ENDPOINT, bad, &[], &short(bad), Some(2 * n), 0)?;
        let bad_line = self.lines.last().expect("just pushed");
        if let Some(e) = &bad_line.record.build_error {
            return Ok(Err(format!(
                "the bad revision could not be built: {}",
                first_line(e)
            )));
        }
        self.probe(GOOD_ENDPOINT, good, &[], &short(good), Some(n), 0)?;
        if let Some(e) = &self.lines.last().expect("just pushed").record.build_error {
            return Ok(Err(format!(
                "the good revision could not be built: {}",
                first_line(e)
            )));
        }
        // The target may have been learnt after the bad runs: tally again.
        for l in &mut self.lines {
            l.tally = self.target.tally(&l.record);
        }
        let e = Endpoints {
            bad: self.lines[0].tally,
            good: self.lines[1].tally,
        };
        if let Err(why) = e.check() {
            return Ok(Err(why));
        }
        let need = decide::clean_runs_needed(e.rate(), self.spec.confidence);
        self.say(format!(
            "bad rate {:.2}: a good revision needs {need} clean runs for {:.0}% confidence",
            e.rate(),
            self.spec.confidence * 100.0
        ));
        Ok(Ok(need))
    }

    /// The `git bisect` loop, then the verification.
    fn search(&mut self, bad: &str, good: &str, need: u32) -> Result<Conclusion> {
        self.repo.bisect_start(bad, good)?;
        while let Some(rev) = self.repo.bisect_next()? {
            let d = self.probe("bisect", &rev, &[], &short(&rev), None, need)?;
            let term = match d {
                Some(Decision::Bad) => "bad",
                Some(Decision::Good) => "good",
                _ => "skip",
            };
            self.repo.bisect_mark(term, &rev)?;
        }
        std::fs::write(
            self.spec.prober.out.join("bisect.log"),
            self.repo.bisect_log()?,
        )?;
        match self.repo.bisect_end()? {
            Some(git::End::Culprit(c)) => self.verify(&c, bad, need),
            Some(git::End::Range(candidates)) => Ok(Conclusion::Inconclusive { candidates }),
            None => bail!("git bisect stopped without a result; see its log in the results folder"),
        }
    }

    fn decision_of(&self, commit: &str) -> Option<&RevLine> {
        self.lines
            .iter()
            .rev()
            .find(|l| l.record.commit == commit && l.record.patches.is_empty())
    }

    fn verify(&mut self, culprit: &str, bad: &str, need: u32) -> Result<Conclusion> {
        let mut v = Verification::default();
        let subject = self.repo.subject(culprit);
        self.say(format!("first bad commit: {culprit} {subject}; verifying"));
        v.culprit_reproduces = Some(match self.decision_of(culprit) {
            Some(l) if l.role == BAD_ENDPOINT => l.tally.detected >= decide::DETECTIONS_FOR_BAD,
            Some(l) => l.decision == Some(Decision::Bad),
            None => {
                self.probe("verify: culprit", culprit, &[], &short(culprit), None, need)?
                    == Some(Decision::Bad)
            }
        });
        let parent = self.repo.parent(culprit)?;
        let parent_good = match self.decision_of(&parent) {
            Some(l) if l.role == GOOD_ENDPOINT => Some(Decision::Good),
            Some(l) if l.decision.is_some() => l.decision.clone(),
            _ => self.probe("verify: parent", &parent, &[], &short(&parent), None, need)?,
        };
        v.parent_clean = Some(parent_good == Some(Decision::Good));
        v.revert_clean = self.verify_revert(culprit, bad, need, &mut v.notes)?;
        v.vmlinux_differs = self.vmlinux_differs(culprit, &parent, &mut v.notes);
        for (ok, what) in [
            (v.culprit_reproduces, "the culprit does not reproduce"),
            (v.parent_clean, "the culprit's parent is not clean"),
            (
                v.revert_clean,
                "reverting the culprit on the bad revision is not clean",
            ),
            (
                v.vmlinux_differs,
                "the culprit's vmlinux is its parent's: a no-op commit",
            ),
        ] {
            if ok == Some(false) {
                v.notes.push(what.to_string());
            }
        }
        Ok(Conclusion::Culprit {
            commit: culprit.to_string(),
            subject,
            verification: v,
        })
    }

    fn verify_revert(
        &mut self,
        culprit: &str,
        bad: &str,
        need: u32,
        notes: &mut Vec<String>,
    ) -> Result<Option<bool>> {
        let patch = self
            .spec
            .prober
            .out
            .join("revs")
            .join(format!("revert-{}.patch", short(culprit)));
        std::fs::create_dir_all(patch.parent().expect("has a parent"))?;
        std::fs::write(&patch, self.repo.revert_patch(culprit)?)?;
        let label = format!("{}-revert-{}", short(bad), short(culprit));
        let d = self.probe(
            "verify: bad with the culprit reverted",
            bad,
            &[patch],
            &label,
            None,
            need,
        )?;
        if let Some(l) = self.lines.last().and_then(|l| l.record.build_error.clone()) {
            notes.push(format!(
                "the revert does not apply to or build on the bad revision: {}",
                first_line(&l)
            ));
            return Ok(None);
        }
        Ok(Some(d == Some(Decision::Good)))
    }

    fn vmlinux_differs(
        &self,
        culprit: &str,
        parent: &str,
        notes: &mut Vec<String>,
    ) -> Option<bool> {
        let sha = |c: &str| {
            self.decision_of(c)
                .and_then(|l| l.record.build.as_ref())
                .map(|b| b.vmlinux_sha256.clone())
        };
        match (sha(culprit), sha(parent)) {
            (Some(a), Some(b)) => Some(a != b),
            _ => {
                notes.push("no vmlinux of the culprit or its parent to compare".into());
                None
            }
        }
    }
}

fn short(commit: &str) -> String {
    commit[..12.min(commit.len())].to_string()
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

fn decision_text(d: &Option<Decision>) -> String {
    match d {
        None => "measured".into(),
        Some(Decision::Bad) => "bad".into(),
        Some(Decision::Good) => "good".into(),
        Some(Decision::Skip(why)) => format!("skip ({why})"),
    }
}
