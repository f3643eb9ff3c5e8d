//! The guest's selftest output → per-test results → pinvm's KTAP with each test's own
//! output nested under it.
//!
//! The guest script brackets each test with `PINVM-SELFTEST-BEGIN <name>` and
//! `PINVM-SELFTEST-END <name> <status>` lines on the console; kernel messages (lines
//! starting with a `[ seconds]` timestamp) that land between them are left out of the nested
//! output.

/// kselftest's exit status for "skipped" (`KSFT_SKIP`).
pub const KSFT_SKIP: i32 = 4;
/// At most this many lines of one test's output are kept (the console is bounded anyway).
const MAX_LINES: usize = 20_000;

const BEGIN: &str = "PINVM-SELFTEST-BEGIN ";
const END: &str = "PINVM-SELFTEST-END ";

/// How one test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Exit 0.
    Pass,
    /// Exit [`KSFT_SKIP`] (the kernel or the environment lacks what it needs), or exit 0
    /// with every test case skipped (nothing was tested).
    Skip,
    /// Any other exit status.
    Fail(i32),
    /// It started and never ended (the guest crashed, hung or was stopped).
    Unfinished,
    /// It never started.
    NotRun,
}

/// One test's result with its own output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    /// `suite:test`.
    pub name: String,
    /// How it ended.
    pub status: Status,
    /// Its output lines (TAP/KTAP as kselftest prints it), kernel messages left out.
    pub output: Vec<String>,
}

impl TestResult {
    /// kselftest's `# Totals: pass:N fail:N ...` line, if it printed one.
    pub fn totals(&self) -> Option<&str> {
        self.output
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("# Totals: "))
    }

    /// Its test cases in order, each with the `# [RUN] ...` line before it (what
    /// kselftest's mm tests print to say which case runs).
    pub fn cases(&self) -> Vec<Case> {
        let mut run = String::new();
        let mut out = Vec::new();
        for l in &self.output {
            if let Some(r) = l.strip_prefix("# [RUN] ") {
                run = r.to_string();
                continue;
            }
            let (ok, rest) = if let Some(r) = l.strip_prefix("ok ") {
                (true, r)
            } else if let Some(r) = l.strip_prefix("not ok ") {
                (false, r)
            } else {
                continue;
            };
            let (n, text) = rest.split_once(' ').unwrap_or((rest, ""));
            let Ok(n) = n.parse() else { continue };
            let (outcome, detail) = match text.split_once("# SKIP") {
                Some((_, why)) => (CaseOutcome::Skip, why.trim()),
                None if ok => (CaseOutcome::Pass, text.trim()),
                None => (CaseOutcome::Fail, text.trim()),
            };
            out.push(Case {
                n,
                run: run.clone(),
                outcome,
                detail: detail.to_string(),
            });
        }
        out
    }
}

/// How a test case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseOutcome {
    /// `ok`.
    Pass,
    /// `not ok`.
    Fail,
    /// `ok ... # SKIP`.
    Skip,
}

/// One test case of a test's TAP output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Its number.
    pub n: u32,
    /// The `# [RUN]` description before it (empty when the test prints none).
    pub run: String,
    /// How it ended.
    pub outcome: CaseOutcome,
    /// The rest of its line (the skip reason for a skip).
    pub detail: String,
}

/// What a guest kernel needs for a kselftest skip reason to go away, for the reasons pinvm's
/// guest config is known to cause (matched as substrings of the skip line).
const HINTS: [(&str, &str); 5] = [
    (
        "gup_test not available",
        "CONFIG_GUP_TEST=y (with CONFIG_DEBUG_FS=y: /sys/kernel/debug/gup_test)",
    ),
    (
        "huge pages",
        "CONFIG_HUGETLBFS=y and huge pages reserved (vm.nr_hugepages)",
    ),
    (
        "io_uring",
        "CONFIG_IO_URING=y, and liburing-dev on the host when the test is built",
    ),
    ("userfaultfd", "CONFIG_USERFAULTFD=y"),
    ("THP", "CONFIG_TRANSPARENT_HUGEPAGE=y"),
];

/// The kernel option a skip reason points at, if pinvm knows it.
pub fn config_hint(reason: &str) -> Option<&'static str> {
    HINTS
        .iter()
        .find(|(k, _)| reason.contains(k))
        .map(|(_, h)| *h)
}

/// Every distinct skip reason of `r` with how many cases it skipped, in first-seen order.
pub fn skip_reasons(r: &TestResult) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for c in r
        .cases()
        .into_iter()
        .filter(|c| c.outcome == CaseOutcome::Skip)
    {
        match out.iter_mut().find(|(d, _)| *d == c.detail) {
            Some((_, n)) => *n += 1,
            None => out.push((c.detail, 1)),
        }
    }
    out
}

fn is_kernel_line(l: &str) -> bool {
    let Some(rest) = l.strip_prefix('[') else {
        return false;
    };
    rest.split_once(']').is_some_and(|(t, _)| {
        let t = t.trim();
        !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    })
}

/// Parses the console for the tests `names`, in order.
pub fn parse(console: &str, names: &[String]) -> Vec<TestResult> {
    let mut results: Vec<TestResult> = names
        .iter()
        .map(|n| TestResult {
            name: n.clone(),
            status: Status::NotRun,
            output: Vec::new(),
        })
        .collect();
    let mut current: Option<usize> = None;
    for line in console.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(n) = line.strip_prefix(BEGIN) {
            current = results.iter().position(|r| r.name == n.trim());
            if let Some(i) = current {
                results[i].status = Status::Unfinished;
            }
        } else if let Some(rest) = line.strip_prefix(END) {
            let mut w = rest.split_whitespace();
            let (Some(n), Some(code)) = (w.next(), w.next().and_then(|c| c.parse::<i32>().ok()))
            else {
                continue;
            };
            if let Some(r) = results.iter_mut().find(|r| r.name == n) {
                r.status = match code {
                    0 => Status::Pass,
                    KSFT_SKIP => Status::Skip,
                    c => Status::Fail(c),
                };
            }
            current = None;
        } else if let Some(i) = current {
            if !is_kernel_line(line) && results[i].output.len() < MAX_LINES {
                results[i].output.push(line.to_string());
            }
        }
    }
    for r in &mut results {
        let cases = r.cases();
        if r.status == Status::Pass
            && !cases.is_empty()
            && cases.iter().all(|c| c.outcome == CaseOutcome::Skip)
        {
            r.status = Status::Skip;
        }
    }
    results
}

/// pinvm's KTAP: one line per test, each test's own output nested (indented 4 spaces) before
/// its result line, as KTAP nests subtests. `note` (e.g. the kernel's release and the
/// working filesystem) becomes a `#` line.
pub fn ktap(results: &[TestResult], note: &str, why: Option<&str>) -> String {
    let mut out = format!("KTAP version 1\n# {note}\n1..{}\n", results.len());
    for (i, r) in results.iter().enumerate() {
        out.push_str(&format!("    # Subtest: {}\n", r.name));
        for l in &r.output {
            out.push_str("    ");
            out.push_str(l);
            out.push('\n');
        }
        let n = i + 1;
        let line = match r.status {
            Status::Pass => format!("ok {n} {}", r.name),
            Status::Skip => format!("ok {n} {} # SKIP", r.name),
            Status::Fail(c) => format!("not ok {n} {} # exit status {c}", r.name),
            Status::Unfinished => format!(
                "not ok {n} {} # did not finish: {}",
                r.name,
                why.unwrap_or("the guest stopped")
            ),
            Status::NotRun => format!(
                "not ok {n} {} # SKIP not run: {}",
                r.name,
                why.unwrap_or("the guest stopped before it")
            ),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &str = "[    0.5] booting\n\
PINVM-SELFTEST-BEGIN mm:gup_longterm\n\
TAP version 13\n\
1..2\n\
# [RUN] R/W longterm GUP pin in MAP_SHARED file mapping ... with memfd\n\
[    1.234567] some kernel message\n\
ok 1 # SKIP gup_test not available\n\
not ok 2 Should have failed\n\
# Totals: pass:0 fail:1 xfail:0 xpass:0 skip:1 error:0\n\
PINVM-SELFTEST-END mm:gup_longterm 1\n\
PINVM-SELFTEST-BEGIN mm:cow\n\
TAP version 13\n\
ok 1 # SKIP no\n\
PINVM-SELFTEST-END mm:cow 0\n\
PINVM-SELFTEST-BEGIN mm:ksm\n\
TAP version 13\n";

    #[test]
    fn results_statuses_and_output() {
        let names = ["mm:gup_longterm", "mm:cow", "mm:ksm"].map(String::from);
        let r = parse(CONSOLE, &names);
        assert_eq!(r[0].status, Status::Fail(1));
        assert_eq!(r[0].output.len(), 6, "{:?}", r[0].output);
        assert!(!r[0].output.iter().any(|l| l.contains("kernel message")));
        assert_eq!(
            r[0].totals(),
            Some("pass:0 fail:1 xfail:0 xpass:0 skip:1 error:0")
        );
        let cases = r[0].cases();
        assert_eq!(cases.len(), 2);
        assert_eq!(
            (cases[0].outcome, cases[0].detail.as_str()),
            (CaseOutcome::Skip, "gup_test not available")
        );
        assert!(cases[0]
            .run
            .ends_with("MAP_SHARED file mapping ... with memfd"));
        assert_eq!(
            (cases[1].n, cases[1].outcome, cases[1].detail.as_str()),
            (2, CaseOutcome::Fail, "Should have failed")
        );
        assert_eq!(r[1].status, Status::Skip, "exit 0 with every case skipped");
        assert_eq!(
            skip_reasons(&r[0]),
            vec![("gup_test not available".to_string(), 1)]
        );
        assert!(config_hint("gup_test not available")
            .unwrap()
            .contains("CONFIG_GUP_TEST"));
        assert_eq!(config_hint("no"), None);
        assert_eq!(r[2].status, Status::Unfinished);
        let r = parse(CONSOLE, &["mm:hmm".to_string()]);
        assert_eq!(r[0].status, Status::NotRun);
    }

    #[test]
    fn ktap_nests_each_test() {
        let names = ["mm:gup_longterm", "mm:cow", "mm:ksm"].map(String::from);
        let r = parse(CONSOLE, &names);
        let k = ktap(&r, "6.12.117 on ext4", Some("hang"));
        assert!(
            k.starts_with("KTAP version 1\n# 6.12.117 on ext4\n1..3\n"),
            "{k}"
        );
        assert!(
            k.contains("    # Subtest: mm:gup_longterm\n    TAP version 13\n"),
            "{k}"
        );
        assert!(
            k.contains(
                "    # Totals: pass:0 fail:1 xfail:0 xpass:0 skip:1 error:0\n\
                 not ok 1 mm:gup_longterm # exit status 1\n"
            ),
            "{k}"
        );
        assert!(k.contains("ok 2 mm:cow # SKIP\n"), "{k}");
        assert!(
            k.contains("not ok 3 mm:ksm # did not finish: hang\n"),
            "{k}"
        );
        let k = ktap(&parse("", &names[..1]), "n", Some("no boot"));
        assert!(
            k.contains("not ok 1 mm:gup_longterm # SKIP not run: no boot\n"),
            "{k}"
        );
        let pass = TestResult {
            name: "mm:x".into(),
            status: Status::Skip,
            output: vec![],
        };
        assert!(ktap(&[pass], "n", None).contains("ok 1 mm:x # SKIP\n"));
    }
}
