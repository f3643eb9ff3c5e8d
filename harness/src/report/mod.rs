//! Results of `pinvm suite` and the files it writes from them.
//!
//! A suite runs a matrix of scenarios × kernel versions × filesystems (× repeated runs) and
//! compares what each run found with the scenario's expectation. [`SuiteResult`] holds that
//! matrix; the writers turn it into what the usual consumers read:
//!
//! | module | format | read by |
//! |---|---|---|
//! | [`ktap`] | KTAP version 1, one subtest block per scenario | kunit_tool (`kunit.py parse`), kselftest-style CI log parsers |
//! | [`junit`] | JUnit XML, one `<testsuite>` per scenario | Jenkins, GitLab, GitHub test reporters (like `fstests -R xunit`) |
//! | [`kcidb`] | KernelCI kcidb I/O schema v5.3 JSON | `kcidb-validate`, `kcidb-submit`, dashboards |
//! | [`table`] | a plain-text table and a markdown findings table | people, the README |
//! | [`timeline`] | one self-contained HTML page per case (per-page timeline of DMA writes against block writes) and a suite index | people, mailing-list threads, CI artifacts |
//!
//! Every writer uses the same idea of "passed": a run passes when its [`Outcome`] matches the
//! scenario's expectation ([`Outcome::matches_expectation`]: a clean run that was expected to be
//! clean, or the predicted verdicts found). An unexpected pass is a mismatch like any other; an
//! untestable run (build, boot or infrastructure failure, exit 125 for `pinvm run`) is a skip,
//! never a pass. Each module documents its exact mapping.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod junit;
pub mod kcidb;
pub mod ktap;
pub mod table;
pub mod timeline;

#[cfg(test)]
mod consumers;

/// How one run compares with its scenario's expectation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// No problem found, none expected.
    Pass,
    /// The expected verdicts were found (the kernel misbehaves as predicted).
    ExpectedFailure,
    /// Verdicts were expected, none found.
    UnexpectedPass,
    /// Verdicts found that do not match the expectation (or a crash).
    Failure,
    /// Could not test: build/boot/infra (exit 125 for `pinvm run`).
    Untestable,
}

impl Outcome {
    /// Every outcome, in the order the summaries list them.
    pub const ALL: [Outcome; 5] = [
        Outcome::Pass,
        Outcome::ExpectedFailure,
        Outcome::UnexpectedPass,
        Outcome::Failure,
        Outcome::Untestable,
    ];

    /// True when the run behaved as the scenario predicts (`Pass` or `ExpectedFailure`).
    pub fn matches_expectation(self) -> bool {
        matches!(self, Outcome::Pass | Outcome::ExpectedFailure)
    }

    /// Short label: "pass", "xfail", "xpass", "fail", "untestable".
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::ExpectedFailure => "xfail",
            Outcome::UnexpectedPass => "xpass",
            Outcome::Failure => "fail",
            Outcome::Untestable => "untestable",
        }
    }

    /// The serde name ("pass", "expected_failure", ...), for places that want the long form.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::ExpectedFailure => "expected_failure",
            Outcome::UnexpectedPass => "unexpected_pass",
            Outcome::Failure => "failure",
            Outcome::Untestable => "untestable",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// One run of one scenario on one kernel and filesystem: what `pinvm run` prints, what
/// `pinvm suite` collects, what every report writer reads. Built by `crate::case::run_case`
/// (the one-line fields are derived from `analysis` and `why` when it is built).
#[derive(Clone, Debug, serde::Serialize)]
pub struct CaseResult {
    /// e.g. "S03-gup-reclaim"
    pub scenario: String,
    /// One line.
    pub description: String,
    /// "6.12"
    pub kernel: String,
    /// `uname -r`-like string if known, e.g. "6.12.57".
    pub kernel_release: Option<String>,
    /// File names of the patches under test the kernel was built with (the command line's,
    /// then the scenario's), in order; empty for pinvm's stock kernel or a given file.
    pub patches: Vec<String>,
    /// Which machine ran the guest (`machine::Machine::name`), e.g. "kvm", "qemu-tcg".
    pub machine: String,
    /// "ext4"
    pub fs: String,
    /// 1-based run index (a case may be repeated with --runs).
    pub run: u32,
    /// Seed of the scenario's `{rand:A-B}` numbers.
    pub seed: u64,
    /// `git bisect run` contract: 0 nothing found, 1 corruption or a kernel problem found,
    /// 125 could not test.
    pub code: i32,
    /// How the run compares with the expectation.
    pub outcome: Outcome,
    /// Expected verdict kinds, e.g. ["kernel_warning", "lost_write"].
    pub expected: Vec<String>,
    /// Verdict kinds found.
    pub found: Vec<String>,
    /// One line, e.g. "lost_write: page 3 (file offset 12288): disk has generation 1, last DMA
    /// generation 4".
    pub summary: String,
    /// Lines of evidence (may be many; the writers truncate).
    pub evidence: Vec<String>,
    /// Recorded finding text when the measured truth differs from the research prediction.
    pub finding: Option<String>,
    /// Why the outcome does not match the expectation, or why the run was untestable.
    pub why: Option<String>,
    /// Everything the oracle concluded (empty when the run could not be tested).
    pub analysis: oracle::Analysis,
    /// How long the case took, preparation included.
    pub duration: Duration,
    /// The case's results folder.
    pub results_dir: Option<PathBuf>,
}

impl CaseResult {
    /// The case's name inside its scenario: kernel, filesystem and, for repeated runs after the
    /// first, the run: `6.12_ext4`, `6.12_ext4_run2` with `sep` = "_"; `6.12.ext4.run2` with
    /// ".". Run 1 has no suffix so that a case keeps its name whatever `--runs` was.
    pub fn case_name(&self, sep: &str) -> String {
        let mut s = format!("{}{sep}{}", self.kernel, self.fs);
        if self.run > 1 {
            s.push_str(&format!("{sep}run{}", self.run));
        }
        s
    }

    /// The kernel as prose: "6.12", its release when known, and its patches under test:
    /// "6.12 (6.12.117) + page_try_gup_pin-A-6.12.patch".
    pub fn kernel_line(&self) -> String {
        let mut s = self.kernel.clone();
        if let Some(r) = &self.kernel_release {
            s.push_str(&format!(" ({r})"));
        }
        if !self.patches.is_empty() {
            s.push_str(&format!(" + {}", self.patches.join(", ")));
        }
        s
    }

    /// "6.12/ext4" or "6.12/ext4 run 2", for prose.
    pub fn where_(&self) -> String {
        let mut s = format!("{}/{}", self.kernel, self.fs);
        if self.run > 1 {
            s.push_str(&format!(" run {}", self.run));
        }
        s
    }

    /// "expected lost_write, kernel_warning; found lost_write" ("nothing" for empty lists).
    pub fn expectation_line(&self) -> String {
        format!(
            "expected {}; found {}",
            verdict_list(&self.expected, "nothing"),
            verdict_list(&self.found, "nothing")
        )
    }
}

/// `kinds` joined with ", ", or `empty` when there are none.
pub fn verdict_list(kinds: &[String], empty: &str) -> String {
    if kinds.is_empty() {
        empty.to_string()
    } else {
        kinds.join(", ")
    }
}

/// A whole `pinvm suite` run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SuiteResult {
    /// When the suite started.
    pub started: SystemTime,
    /// How long it ran.
    pub duration: Duration,
    /// Every case, in matrix order.
    pub cases: Vec<CaseResult>,
}

/// How many cases ended with each outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// [`Outcome::Pass`]
    pub pass: usize,
    /// [`Outcome::ExpectedFailure`]
    pub expected_failure: usize,
    /// [`Outcome::UnexpectedPass`]
    pub unexpected_pass: usize,
    /// [`Outcome::Failure`]
    pub failure: usize,
    /// [`Outcome::Untestable`]
    pub untestable: usize,
}

impl Counts {
    /// The counts of `cases`.
    pub fn of<'a>(cases: impl IntoIterator<Item = &'a CaseResult>) -> Counts {
        let mut c = Counts::default();
        for case in cases {
            c.add(case.outcome);
        }
        c
    }

    /// Count one more case with outcome `o`.
    pub fn add(&mut self, o: Outcome) {
        *self.get_mut(o) += 1;
    }

    /// How many cases had outcome `o`.
    pub fn get(&self, o: Outcome) -> usize {
        match o {
            Outcome::Pass => self.pass,
            Outcome::ExpectedFailure => self.expected_failure,
            Outcome::UnexpectedPass => self.unexpected_pass,
            Outcome::Failure => self.failure,
            Outcome::Untestable => self.untestable,
        }
    }

    fn get_mut(&mut self, o: Outcome) -> &mut usize {
        match o {
            Outcome::Pass => &mut self.pass,
            Outcome::ExpectedFailure => &mut self.expected_failure,
            Outcome::UnexpectedPass => &mut self.unexpected_pass,
            Outcome::Failure => &mut self.failure,
            Outcome::Untestable => &mut self.untestable,
        }
    }

    /// How many cases in all.
    pub fn total(&self) -> usize {
        Outcome::ALL.iter().map(|&o| self.get(o)).sum()
    }

    /// Runs whose outcome matches the expectation.
    pub fn matching(&self) -> usize {
        self.pass + self.expected_failure
    }

    /// Runs that ran and did not match (unexpected passes and failures).
    pub fn mismatching(&self) -> usize {
        self.unexpected_pass + self.failure
    }

    /// "3 pass, 2 xfail, 0 xpass, 1 fail, 0 untestable"
    pub fn summary(&self) -> String {
        Outcome::ALL
            .iter()
            .map(|&o| format!("{} {}", self.get(o), o.label()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl SuiteResult {
    /// True when every case matched its expectation (vacuously true for an empty suite); an
    /// untestable case does not match.
    pub fn all_match(&self) -> bool {
        self.cases.iter().all(|c| c.outcome.matches_expectation())
    }

    /// How many cases ended with each outcome.
    pub fn counts(&self) -> Counts {
        Counts::of(&self.cases)
    }

    /// The cases grouped by scenario, scenarios in order of first appearance, cases in their
    /// original order.
    pub fn by_scenario(&self) -> Vec<(&str, Vec<&CaseResult>)> {
        let mut groups: Vec<(&str, Vec<&CaseResult>)> = Vec::new();
        for c in &self.cases {
            match groups.iter_mut().find(|(s, _)| *s == c.scenario) {
                Some((_, v)) => v.push(c),
                None => groups.push((&c.scenario, vec![c])),
            }
        }
        groups
    }
}

/// Seconds as a float, for `time=`/`duration` fields.
pub(crate) fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Date and time in UTC of `t`: (year, month, day, hour, minute, second, microsecond). Times
/// before 1970 clamp to the epoch.
fn utc_parts(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian), 400-year eras.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        (rem / 60 % 60) as u32,
        (rem % 60) as u32,
        d.subsec_micros(),
    )
}

/// `2026-01-31T12:34:56` (UTC, no zone designator: the form the JUnit schema's `timestamp`
/// wants).
pub(crate) fn iso8601_local(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, _) = utc_parts(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}")
}

/// `2026-01-31T12:34:56.789000+00:00` (RFC 3339, the form kcidb's examples use).
pub(crate) fn rfc3339_utc(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, us) = utc_parts(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{us:06}+00:00")
}

/// `20260131T123456Z`, compact, for ids.
pub(crate) fn compact_utc(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, _) = utc_parts(t);
    format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
}

/// At most `max` characters of `s` (not bytes), with "…" as the last one when cut.
pub(crate) fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    if max == 0 {
        return String::new();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// `s` on one line: CR, LF and other line breaks become spaces, other control characters
/// become `\xNN`.
pub(crate) fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}' => out.push(' '),
            '\t' => out.push(' '),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod testdata {
    //! Cases shared by the writers' tests.
    use super::*;

    pub fn case(scenario: &str, kernel: &str, fs: &str, run: u32, outcome: Outcome) -> CaseResult {
        let (expected, found, summary): (Vec<&str>, Vec<&str>, &str) = match outcome {
            Outcome::Pass => (vec![], vec![], "clean: every DMA generation reached the disk"),
            Outcome::ExpectedFailure => (
                vec!["kernel_warning", "lost_write"],
                vec!["lost_write", "kernel_warning"],
                "lost_write: page 3 (file offset 12288): disk has generation 1, last DMA generation 4",
            ),
            Outcome::UnexpectedPass => (vec!["lost_write"], vec![], "expected lost_write, found nothing"),
            Outcome::Failure => (
                vec![],
                vec!["torn_block"],
                "torn_block: block 7 sectors 0-3 generation 2, 4-7 generation 3",
            ),
            Outcome::Untestable => (vec![], vec![], "kernel 6.1 failed to boot: no console output"),
        };
        CaseResult {
            scenario: scenario.to_string(),
            description: format!("{scenario}: DMA into pinned pages while reclaim runs"),
            kernel: kernel.to_string(),
            kernel_release: Some(format!("{kernel}.57")),
            patches: vec![],
            machine: "kvm".into(),
            fs: fs.to_string(),
            run,
            outcome,
            expected: expected.into_iter().map(String::from).collect(),
            found: found.into_iter().map(String::from).collect(),
            summary: summary.to_string(),
            evidence: (1..=8).map(|i| format!("evidence line {i}")).collect(),
            finding: None,
            why: None,
            analysis: oracle::Analysis::default(),
            code: 0,
            seed: 0,
            duration: Duration::from_millis(12_345),
            results_dir: Some(PathBuf::from(format!(
                "/tmp/results/{scenario}/{kernel}-{fs}-{run}"
            ))),
        }
    }

    /// Two scenarios: S01 clean on 6.12 ext4 + xfs; S03 with xfail, xpass, fail, untestable and
    /// a repeated run.
    pub fn suite() -> SuiteResult {
        SuiteResult {
            started: UNIX_EPOCH + Duration::from_secs(1_767_225_600), // 2026-01-01T00:00:00Z
            duration: Duration::from_secs(600),
            cases: vec![
                case("S01-baseline", "6.12", "ext4", 1, Outcome::Pass),
                case(
                    "S03-gup-reclaim",
                    "6.12",
                    "ext4",
                    1,
                    Outcome::ExpectedFailure,
                ),
                case("S01-baseline", "6.12", "xfs", 1, Outcome::Pass),
                case(
                    "S03-gup-reclaim",
                    "6.12",
                    "ext4",
                    2,
                    Outcome::ExpectedFailure,
                ),
                case("S03-gup-reclaim", "6.1", "ext4", 1, Outcome::UnexpectedPass),
                case("S03-gup-reclaim", "6.12", "xfs", 1, Outcome::Failure),
                case("S03-gup-reclaim", "6.1", "xfs", 1, Outcome::Untestable),
            ],
        }
    }

    pub fn empty() -> SuiteResult {
        SuiteResult {
            started: UNIX_EPOCH,
            duration: Duration::ZERO,
            cases: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_labels_and_matching() {
        let labels: Vec<_> = Outcome::ALL.iter().map(|o| o.label()).collect();
        assert_eq!(labels, ["pass", "xfail", "xpass", "fail", "untestable"]);
        let m: Vec<_> = Outcome::ALL
            .iter()
            .map(|o| o.matches_expectation())
            .collect();
        assert_eq!(m, [true, true, false, false, false]);
        for o in Outcome::ALL {
            assert_eq!(serde_json::to_value(o).unwrap(), o.name());
        }
    }

    #[test]
    fn counts_and_all_match() {
        let s = testdata::suite();
        let c = s.counts();
        assert_eq!(
            c,
            Counts {
                pass: 2,
                expected_failure: 2,
                unexpected_pass: 1,
                failure: 1,
                untestable: 1
            }
        );
        assert_eq!(c.total(), 7);
        assert_eq!(c.matching(), 4);
        assert_eq!(c.mismatching(), 2);
        assert!(!s.all_match());
        assert!(testdata::empty().all_match());
        let ok = SuiteResult {
            cases: s
                .cases
                .iter()
                .filter(|c| c.outcome.matches_expectation())
                .cloned()
                .collect(),
            ..s.clone()
        };
        assert!(ok.all_match());
        assert_eq!(
            c.summary(),
            "2 pass, 2 xfail, 1 xpass, 1 fail, 1 untestable"
        );
    }

    #[test]
    fn grouping_keeps_first_appearance_order() {
        let s = testdata::suite();
        let g = s.by_scenario();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].0, "S01-baseline");
        assert_eq!(g[0].1.len(), 2);
        assert_eq!(g[1].0, "S03-gup-reclaim");
        let names: Vec<_> = g[1].1.iter().map(|c| c.case_name("_")).collect();
        assert_eq!(
            names,
            [
                "6.12_ext4",
                "6.12_ext4_run2",
                "6.1_ext4",
                "6.12_xfs",
                "6.1_xfs"
            ]
        );
    }

    #[test]
    fn time_formats() {
        let t = UNIX_EPOCH + Duration::from_micros(1_767_225_600_000_000 + 45_296_789_012);
        assert_eq!(iso8601_local(t), "2026-01-01T12:34:56");
        assert_eq!(rfc3339_utc(t), "2026-01-01T12:34:56.789012+00:00");
        assert_eq!(compact_utc(t), "20260101T123456Z");
        assert_eq!(iso8601_local(UNIX_EPOCH), "1970-01-01T00:00:00");
        // Leap day and the end of a year.
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(iso8601_local(leap), "2000-02-29T00:00:00");
        let eoy = UNIX_EPOCH + Duration::from_secs(1_735_689_599); // 2024-12-31T23:59:59
        assert_eq!(iso8601_local(eoy), "2024-12-31T23:59:59");
    }

    #[test]
    fn text_helpers() {
        assert_eq!(truncate_chars("abcdef", 4), "abc…");
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("ééééé", 3), "éé…");
        assert_eq!(one_line("a\nb\r\nc\td\x1b[0m"), "a b  c d\\x1b[0m");
    }
}
