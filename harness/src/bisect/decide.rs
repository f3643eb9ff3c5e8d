//! Deciding a revision from repeated runs of a flaky reproducer (pure).
//!
//! The rules, after syzkaller's bisection: a revision is **bad** once the *target* signature
//! was detected twice (one detection can be a fluke of the reproducer's own schedule, and
//! an unrelated problem is not the target); it is **good** once it ran clean often enough
//! that, at the bad rate measured on the bad endpoint, a bad revision would have shown the
//! target with the stated confidence: `(1 - rate)^n <= 1 - confidence`. Runs that found
//! something else (an unrelated verdict) or could not test count as neither. A revision
//! still undecided after the run budget is skipped, with the reason.

use serde::{Deserialize, Serialize};

/// How one run of a revision came out, against the target signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum RunClass {
    /// The target signature was found.
    Detected,
    /// Nothing was found.
    Clean,
    /// Something else was found (not the target), or the run could not test: neither.
    Other(String),
}

/// The runs of a revision so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Runs that found the target.
    pub detected: u32,
    /// Runs that found nothing.
    pub clean: u32,
    /// Runs that were neither.
    pub other: u32,
}

impl Tally {
    /// Adds a run.
    pub fn add(&mut self, c: &RunClass) {
        match c {
            RunClass::Detected => self.detected += 1,
            RunClass::Clean => self.clean += 1,
            RunClass::Other(_) => self.other += 1,
        }
    }

    /// All runs.
    pub fn runs(&self) -> u32 {
        self.detected + self.clean + self.other
    }
}

/// A revision's verdict for the bisection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", content = "reason", rename_all = "snake_case")]
pub enum Decision {
    /// The target reproduces here.
    Bad,
    /// Clean often enough for the stated confidence.
    Good,
    /// Neither could be decided (or the revision could not be built or booted).
    Skip(String),
}

/// Detections that make a revision bad.
pub const DETECTIONS_FOR_BAD: u32 = 2;

/// Most clean runs ever asked for (a very rare reproducer would otherwise ask for
/// hundreds); the confidence actually reached is reported.
pub const MAX_CLEAN_RUNS: u32 = 32;

/// Clean runs needed to call a revision good when a bad one shows the target at `rate`.
pub fn clean_runs_needed(rate: f64, confidence: f64) -> u32 {
    if rate.is_nan() || confidence.is_nan() || rate <= 0.0 || confidence <= 0.0 {
        return MAX_CLEAN_RUNS;
    }
    if rate >= 1.0 {
        return 1;
    }
    let n = ((1.0 - confidence).ln() / (1.0 - rate).ln()).ceil();
    if n.is_finite() {
        (n.max(1.0) as u32).min(MAX_CLEAN_RUNS)
    } else {
        MAX_CLEAN_RUNS
    }
}

/// The confidence `n` clean runs give against a bad rate `rate`: `1 - (1 - rate)^n`.
pub fn confidence_of(rate: f64, n: u32) -> f64 {
    1.0 - (1.0 - rate.clamp(0.0, 1.0)).powi(n as i32)
}

/// The decision so far (`None`: run again). `budget` caps the runs of the revision.
pub fn decide(t: &Tally, need_clean: u32, budget: u32) -> Option<Decision> {
    if t.detected >= DETECTIONS_FOR_BAD {
        return Some(Decision::Bad);
    }
    if t.detected == 0 && t.clean >= need_clean {
        return Some(Decision::Good);
    }
    if t.runs() < budget {
        return None;
    }
    Some(Decision::Skip(match t.detected {
        1 => format!(
            "one detection in {} runs: not bad (needs {DETECTIONS_FOR_BAD}), not good",
            t.runs()
        ),
        _ => format!(
            "{} clean of {need_clean} needed in {} runs ({} neither)",
            t.clean,
            t.runs(),
            t.other
        ),
    }))
}

/// The run budget of a bisection revision: room for `need_clean` clean runs plus as many
/// that count as neither, and at least six runs, so that a bad revision whose reproducer
/// misses now and then still shows its two detections (at a rate of 5/6, two detections in
/// six runs fail to come in 0.07 % of revisions, in four runs in 1.7 %).
pub fn budget(need_clean: u32) -> u32 {
    (2 * need_clean + 2).max(3 * DETECTIONS_FOR_BAD)
}

/// What the endpoints say about the reproducer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoints {
    /// The bad endpoint's runs.
    pub bad: Tally,
    /// The good endpoint's runs.
    pub good: Tally,
}

impl Endpoints {
    /// The measured bad rate: detections over the bad endpoint's runs that tested.
    pub fn rate(&self) -> f64 {
        let tested = self.bad.detected + self.bad.clean;
        if tested == 0 {
            0.0
        } else {
            f64::from(self.bad.detected) / f64::from(tested)
        }
    }

    /// Why the bisection cannot start, if it cannot: the bad endpoint must reproduce (at
    /// least [`DETECTIONS_FOR_BAD`] detections) and the good one must be clean every time.
    pub fn check(&self) -> Result<(), String> {
        if self.bad.detected < DETECTIONS_FOR_BAD {
            return Err(format!(
                "the bad revision does not reproduce the target: {} detection(s) in {} runs \
                 ({} clean, {} neither); pick another --bad, more --runs or another --match",
                self.bad.detected,
                self.bad.runs(),
                self.bad.clean,
                self.bad.other
            ));
        }
        if self.good.detected > 0 {
            return Err(format!(
                "the good revision reproduces the target ({} of {} runs): pick an older --good",
                self.good.detected,
                self.good.runs()
            ));
        }
        if self.good.clean == 0 {
            return Err(format!(
                "the good revision never ran clean ({} runs found something else or could \
                 not test): it cannot anchor the bisection",
                self.good.runs()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(detected: u32, clean: u32, other: u32) -> Tally {
        Tally {
            detected,
            clean,
            other,
        }
    }

    #[test]
    fn clean_runs_follow_the_rate_and_the_confidence() {
        assert_eq!(clean_runs_needed(1.0, 0.95), 1);
        assert_eq!(clean_runs_needed(0.5, 0.95), 5); // 0.5^5 = 0.031
        assert_eq!(clean_runs_needed(0.5, 0.99), 7); // 0.5^7 = 0.0078
        assert_eq!(clean_runs_needed(0.25, 0.95), 11);
        assert_eq!(clean_runs_needed(0.01, 0.95), MAX_CLEAN_RUNS);
        assert_eq!(clean_runs_needed(0.0, 0.95), MAX_CLEAN_RUNS);
        assert_eq!(clean_runs_needed(f64::NAN, 0.95), MAX_CLEAN_RUNS);
        assert!(confidence_of(0.5, 5) > 0.95 && confidence_of(0.5, 4) < 0.95);
    }

    #[test]
    fn two_detections_make_bad_enough_clean_runs_make_good() {
        assert_eq!(decide(&tally(2, 0, 0), 5, 9), Some(Decision::Bad));
        assert_eq!(decide(&tally(2, 7, 3), 5, 9), Some(Decision::Bad));
        assert_eq!(decide(&tally(0, 5, 0), 5, 9), Some(Decision::Good));
        assert_eq!(decide(&tally(0, 4, 0), 5, 9), None);
        // One detection is not "good", whatever the clean runs.
        assert_eq!(decide(&tally(1, 6, 0), 5, 9), None);
        assert!(
            matches!(decide(&tally(1, 8, 0), 5, 9), Some(Decision::Skip(r)) if r.contains("one detection"))
        );
        // Runs that are neither do not count as clean.
        assert_eq!(decide(&tally(0, 2, 3), 5, 9), None);
        assert!(matches!(
            decide(&tally(0, 2, 7), 5, 9),
            Some(Decision::Skip(_))
        ));
    }

    #[test]
    fn budgets_leave_room() {
        assert_eq!(budget(1), 6);
        assert_eq!(budget(5), 12);
        assert!(budget(MAX_CLEAN_RUNS) > MAX_CLEAN_RUNS);
    }

    #[test]
    fn endpoints_must_anchor_the_bisection() {
        let e = |bad, good| Endpoints { bad, good };
        assert!(e(tally(2, 2, 0), tally(0, 2, 0)).check().is_ok());
        assert_eq!(e(tally(2, 2, 0), tally(0, 2, 0)).rate(), 0.5);
        assert_eq!(e(tally(3, 0, 1), tally(0, 2, 0)).rate(), 1.0);
        let err = e(tally(1, 3, 0), tally(0, 2, 0)).check().unwrap_err();
        assert!(err.contains("bad revision does not reproduce"), "{err}");
        let err = e(tally(4, 0, 0), tally(1, 1, 0)).check().unwrap_err();
        assert!(err.contains("good revision reproduces"), "{err}");
        let err = e(tally(4, 0, 0), tally(0, 0, 2)).check().unwrap_err();
        assert!(err.contains("never ran clean"), "{err}");
    }
}
