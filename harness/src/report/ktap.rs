//! KTAP version 1 (Documentation/dev-tools/ktap.rst), shaped the way kunit_tool's parser
//! (`tools/testing/kunit/kunit_parser.py`) reads nested results.
//!
//! ```text
//! KTAP version 1
//! 1..2                                    one test per scenario
//!   KTAP version 1
//!   # Subtest: S03-gup-reclaim
//!   1..3                                  one subtest per kernel × fs × run
//!   # S03-gup-reclaim: <description>
//!   # 6.12_ext4: expected kernel_warning, lost_write; found lost_write, kernel_warning
//!   # 6.12_ext4: lost_write: page 3 (file offset 12288): ...
//!   # 6.12_ext4: evidence: <up to 5 lines>
//!   # 6.12_ext4: kernel 6.12.57, 41.2 s, results in /path
//!   ok 1 6.12_ext4 # XFAIL lost_write: page 3 (file offset 12288): ...
//!   ...
//! # S03-gup-reclaim: 2 xfail, 1 fail
//! not ok 2 S03-gup-reclaim
//! # Totals: pass:2 fail:1 xfail:2 xpass:1 skip:1 error:0
//! ```
//!
//! Case names are `<kernel>_<fs>`, with `_run<N>` for repeated runs after the first.
//!
//! The totals line is kselftest's (`ksft_print_cnts`): pass, fail, xfail, xpass, skip (an
//! untestable run) and error (always 0: a run that could not test is a skip, as below), so
//! the log parsers of kselftest CI read it as they read kselftest's own.
//!
//! # Result mapping
//!
//! The test a line reports is "does this run behave as the scenario predicts", so `ok` means
//! the run matched its expectation:
//!
//! | outcome | line | kunit_tool reads |
//! |---|---|---|
//! | pass | `ok N name` | PASSED |
//! | expected failure | `ok N name # XFAIL <summary>` | PASSED |
//! | unexpected pass | `not ok N name # XPASS <summary>` | FAILED |
//! | failure | `not ok N name # <summary>` | FAILED |
//! | untestable | `ok N name # SKIP <summary>` | SKIPPED |
//!
//! Why: KTAP lists XFAIL as a directive ("a test is expected to fail", used by kselftest), and
//! a parser that does not know a directive must fall back to `ok`/`not ok`. kunit_tool
//! recognises only SKIP, so the `ok`/`not ok` word alone has to carry the verdict: an expected
//! failure is `ok` (the kernel misbehaved exactly as predicted; the XFAIL directive keeps that
//! visible), an unexpected pass is `not ok` (the prediction or the test's power is wrong,
//! someone must look; XPASS is kselftest's word for it). TODO is never used: KTAP discourages
//! it and TAP consumers count `not ok # TODO` as not failing. SKIP is written with `ok`, as in
//! the spec's examples, so TAP consumers without SKIP support still do not count it as a
//! failure, while kunit_tool reports it as skipped rather than passed.
//!
//! A scenario is `not ok` when any of its runs is, `ok # SKIP` when all its runs were
//! untestable, and `ok` otherwise (skipped subtests do not fail a parent, as in the spec).
//!
//! # Text hygiene
//!
//! Free text (summaries, evidence, paths) goes on one line; in result lines `#` is replaced by
//! `No.` (the directive and description are split on `#`), a leading word that is itself a
//! directive keyword gets a prefix, and the three markers kunit_tool takes as the end of KTAP
//! output anywhere in a line (`List of all partitions:`, `Kernel panic - not syncing: VFS:`,
//! `reboot: System halted`) are rewritten (`:` → ` -`) so quoted console evidence cannot cut
//! the parse short.

use std::io::{self, Write};

use super::{one_line, truncate_chars, CaseResult, Counts, Outcome, SuiteResult};

/// Evidence lines shown per case; the rest are counted.
pub const MAX_EVIDENCE_LINES: usize = 5;
/// Characters kept of one diagnostic or result text.
pub const MAX_TEXT: usize = 240;

const INDENT: &str = "  ";

/// Writes `s` as KTAP version 1.
pub fn write(s: &SuiteResult, w: &mut impl Write) -> io::Result<()> {
    writeln!(w, "KTAP version 1")?;
    let groups = s.by_scenario();
    writeln!(w, "1..{}", groups.len())?;
    if groups.is_empty() {
        writeln!(w, "# no cases in this suite")?;
    }
    for (i, (scenario, cases)) in groups.iter().enumerate() {
        write_scenario(w, i + 1, scenario, cases)?;
    }
    let c = s.counts();
    writeln!(
        w,
        "# Totals: pass:{} fail:{} xfail:{} xpass:{} skip:{} error:0",
        c.pass, c.failure, c.expected_failure, c.unexpected_pass, c.untestable
    )?;
    Ok(())
}

fn write_scenario(
    w: &mut impl Write,
    n: usize,
    scenario: &str,
    cases: &[&CaseResult],
) -> io::Result<()> {
    let name = test_name(scenario);
    writeln!(w, "{INDENT}KTAP version 1")?;
    writeln!(w, "{INDENT}# Subtest: {name}")?;
    writeln!(w, "{INDENT}1..{}", cases.len())?;
    if let Some(d) = cases
        .first()
        .map(|c| c.description.trim())
        .filter(|d| !d.is_empty())
    {
        diag(w, INDENT, &name, d)?;
    }
    for (j, c) in cases.iter().enumerate() {
        write_case(w, j + 1, c)?;
    }
    let counts = Counts::of(cases.iter().copied());
    let nonzero: Vec<String> = Outcome::ALL
        .iter()
        .filter(|&&o| counts.get(o) > 0)
        .map(|&o| format!("{} {}", counts.get(o), o.label()))
        .collect();
    diag(w, "", &name, &nonzero.join(", "))?;
    if counts.mismatching() > 0 {
        writeln!(w, "not ok {n} {name}")
    } else if counts.untestable == counts.total() {
        writeln!(
            w,
            "ok {n} {name} # SKIP all {} runs untestable",
            counts.total()
        )
    } else {
        writeln!(w, "ok {n} {name}")
    }
}

fn write_case(w: &mut impl Write, n: usize, c: &CaseResult) -> io::Result<()> {
    let name = test_name(&c.case_name("_"));
    if !c.expected.is_empty() || !c.found.is_empty() {
        diag(w, INDENT, &name, &c.expectation_line())?;
    }
    if !c.summary.trim().is_empty() {
        diag(w, INDENT, &name, &c.summary)?;
    }
    for e in c.evidence.iter().take(MAX_EVIDENCE_LINES) {
        diag(w, INDENT, &name, &format!("evidence: {e}"))?;
    }
    if c.evidence.len() > MAX_EVIDENCE_LINES {
        let more = c.evidence.len() - MAX_EVIDENCE_LINES;
        let whole = match &c.results_dir {
            Some(d) => format!(" (all in {})", d.display()),
            None => String::new(),
        };
        diag(
            w,
            INDENT,
            &name,
            &format!("evidence: ... {more} more lines{whole}"),
        )?;
    }
    if let Some(f) = &c.finding {
        diag(w, INDENT, &name, &format!("finding: {f}"))?;
    }
    let mut facts = Vec::new();
    if let Some(r) = &c.kernel_release {
        facts.push(format!("kernel {r}"));
    }
    if !c.patches.is_empty() {
        facts.push(format!("patches {}", c.patches.join(", ")));
    }
    facts.push(format!("machine {}", c.machine));
    facts.push(format!("{:.1} s", c.duration.as_secs_f64()));
    if let Some(d) = &c.results_dir {
        facts.push(format!("results in {}", d.display()));
    }
    diag(w, INDENT, &name, &facts.join(", "))?;

    let summary = result_text(&c.summary);
    let (word, directive) = match c.outcome {
        Outcome::Pass => ("ok", None),
        Outcome::ExpectedFailure => ("ok", Some("XFAIL")),
        Outcome::UnexpectedPass => ("not ok", Some("XPASS")),
        Outcome::Failure => ("not ok", None),
        Outcome::Untestable => ("ok", Some("SKIP")),
    };
    let tail = match (directive, summary.is_empty()) {
        (Some(d), true) => format!(" # {d}"),
        (Some(d), false) => format!(" # {d} {summary}"),
        (None, true) => String::new(),
        (None, false) => format!(" # {}", guard_directive(&summary)),
    };
    // A pass carries no diagnostic on its result line: the summary is above it.
    let tail = if c.outcome == Outcome::Pass {
        String::new()
    } else {
        tail
    };
    writeln!(w, "{INDENT}{word} {n} {name}{tail}")
}

/// One diagnostic line `<indent># <who>: <text>`.
fn diag(w: &mut impl Write, indent: &str, who: &str, text: &str) -> io::Result<()> {
    let text = truncate_chars(&defuse(&one_line(text)), MAX_TEXT);
    // "# Subtest: " opens a test for kunit_tool; a case or scenario named "Subtest" must not.
    let who = if who == "Subtest" { "(Subtest)" } else { who };
    writeln!(w, "{indent}# {who}: {text}")
}

/// A test name KTAP can carry: no `#`, no whitespace (kunit-style identifiers), not empty.
pub fn test_name(s: &str) -> String {
    let n: String = defuse(&one_line(s))
        .chars()
        .map(|c| {
            if c == '#' || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect();
    if n.is_empty() {
        "unnamed".to_string()
    } else {
        n
    }
}

/// Text for after the `#` of a result line.
fn result_text(s: &str) -> String {
    let t = defuse(&one_line(s)).replace('#', "No.");
    truncate_chars(t.trim(), MAX_TEXT)
}

/// Diagnostic data without a directive must not start with a word a parser would take for one.
fn guard_directive(s: &str) -> String {
    let first = s.split_whitespace().next().unwrap_or("");
    let first = first.trim_end_matches(|c: char| !c.is_alphanumeric());
    const KEYWORDS: [&str; 6] = ["SKIP", "TODO", "XFAIL", "XPASS", "TIMEOUT", "ERROR"];
    if KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(first)) {
        format!("fail: {s}")
    } else {
        s.to_string()
    }
}

/// Rewrites the markers kunit_tool's `isolate_ktap_output` takes as the end of KTAP output
/// wherever they appear in a line.
fn defuse(s: &str) -> String {
    s.replace("List of all partitions:", "List of all partitions -")
        .replace(
            "Kernel panic - not syncing: VFS:",
            "Kernel panic - not syncing - VFS:",
        )
        .replace("reboot: System halted", "reboot - System halted")
}

#[cfg(test)]
mod tests {
    use super::super::testdata;
    use super::*;

    fn render(s: &SuiteResult) -> String {
        let mut out = Vec::new();
        write(s, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// What a parsed result line says.
    #[derive(Debug, PartialEq)]
    struct Res {
        ok: bool,
        num: usize,
        name: String,
        directive: Option<String>,
    }

    /// A node of the parsed tree: its plan and its results, in order, with their subtests.
    #[derive(Debug, Default)]
    struct Block {
        plan: usize,
        subtest_names: Vec<String>,
        results: Vec<(Res, Option<Block>)>,
    }

    /// A strict line-by-line KTAP reader for what this writer produces: every block starts with
    /// a version line at its indentation, has a plan, and numbers its results 1..=plan; every
    /// nested block is indented by exactly two more spaces and is followed by its parent's
    /// result line, whose name is the one in `# Subtest:`.
    fn parse(text: &str) -> Block {
        let lines: Vec<&str> = text.lines().collect();
        let mut pos = 0;
        let b = parse_block(&lines, &mut pos, 0);
        assert_eq!(pos, lines.len(), "trailing lines after the top-level block");
        b
    }

    fn indent_of(l: &str) -> usize {
        l.len() - l.trim_start_matches(' ').len()
    }

    fn parse_result(l: &str) -> Option<Res> {
        let (ok, rest) = if let Some(r) = l.strip_prefix("not ok ") {
            (false, r)
        } else if let Some(r) = l.strip_prefix("ok ") {
            (true, r)
        } else {
            return None;
        };
        let (num, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let (name, directive) = match rest.split_once(" # ") {
            Some((n, d)) => (
                n,
                Some(d.split_whitespace().next().unwrap_or("").to_string()),
            ),
            None => (rest, None),
        };
        assert!(!name.contains('#'), "name with #: {l}");
        assert!(!name.is_empty(), "result without a name: {l}");
        Some(Res {
            ok,
            num: num.parse().unwrap_or_else(|_| panic!("bad number in {l}")),
            name: name.to_string(),
            directive,
        })
    }

    fn parse_block(lines: &[&str], pos: &mut usize, depth: usize) -> Block {
        let ind = depth * 2;
        let mut b = Block::default();
        assert_eq!(lines[*pos], format!("{}KTAP version 1", " ".repeat(ind)));
        *pos += 1;
        if let Some(name) = lines[*pos].trim_start().strip_prefix("# Subtest: ") {
            assert_eq!(indent_of(lines[*pos]), ind);
            b.subtest_names.push(name.to_string());
            *pos += 1;
        }
        let plan_line = lines[*pos];
        assert_eq!(indent_of(plan_line), ind, "plan indentation: {plan_line:?}");
        b.plan = plan_line
            .trim_start()
            .strip_prefix("1..")
            .expect("plan line")
            .parse()
            .unwrap();
        *pos += 1;
        let mut pending_sub: Option<Block> = None;
        while *pos < lines.len() {
            let l = lines[*pos];
            let li = indent_of(l);
            let body = &l[li..];
            if li < ind {
                break;
            }
            if li == ind + 2 && body == "KTAP version 1" {
                assert!(
                    pending_sub.is_none(),
                    "two subtest blocks without a result line"
                );
                pending_sub = Some(parse_block(lines, pos, depth + 1));
                continue;
            }
            assert_eq!(
                li,
                ind,
                "unexpected indentation at line {}: {l:?}",
                *pos + 1
            );
            if body.starts_with('#') {
                *pos += 1;
                continue;
            }
            let r = parse_result(body).unwrap_or_else(|| panic!("unknown line {l:?}"));
            assert_eq!(r.num, b.results.len() + 1, "numbering at {l:?}");
            if let Some(sub) = &pending_sub {
                assert_eq!(
                    sub.subtest_names,
                    vec![r.name.clone()],
                    "parent result name"
                );
            }
            b.results.push((r, pending_sub.take()));
            *pos += 1;
        }
        assert!(
            pending_sub.is_none(),
            "subtest block without its result line"
        );
        assert_eq!(b.results.len(), b.plan, "plan count");
        b
    }

    #[test]
    fn parses_back_with_plans_and_indentation() {
        let s = testdata::suite();
        let text = render(&s);
        let top = parse(&text);
        assert_eq!(top.plan, 2);
        let (s01, s01_sub) = &top.results[0];
        assert_eq!(
            (s01.ok, s01.name.as_str(), s01.directive.as_deref()),
            (true, "S01-baseline", None)
        );
        let s01_sub = s01_sub.as_ref().unwrap();
        assert_eq!(s01_sub.plan, 2);
        let names: Vec<_> = s01_sub
            .results
            .iter()
            .map(|(r, _)| r.name.as_str())
            .collect();
        assert_eq!(names, ["6.12_ext4", "6.12_xfs"]);
        assert!(s01_sub
            .results
            .iter()
            .all(|(r, _)| r.ok && r.directive.is_none()));

        let (s03, s03_sub) = &top.results[1];
        assert_eq!((s03.ok, s03.name.as_str()), (false, "S03-gup-reclaim"));
        let got: Vec<_> = s03_sub
            .as_ref()
            .unwrap()
            .results
            .iter()
            .map(|(r, _)| (r.name.as_str(), r.ok, r.directive.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("6.12_ext4", true, Some("XFAIL")),
                ("6.12_ext4_run2", true, Some("XFAIL")),
                ("6.1_ext4", false, Some("XPASS")),
                ("6.12_xfs", false, Some("torn_block:")),
                ("6.1_xfs", true, Some("SKIP")),
            ]
        );
        assert!(text.ends_with("# Totals: pass:2 fail:1 xfail:2 xpass:1 skip:1 error:0\n"));
    }

    #[test]
    fn diagnostics_carry_summary_and_a_few_evidence_lines() {
        let text = render(&testdata::suite());
        let xfail_block: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.contains("# Subtest: S03-gup-reclaim"))
            .take_while(|l| !l.starts_with("  ok 1 "))
            .collect();
        assert!(xfail_block.contains(
            &"  # 6.12_ext4: expected kernel_warning, lost_write; found lost_write, kernel_warning"
        ));
        assert!(xfail_block
            .iter()
            .any(|l| l.starts_with("  # 6.12_ext4: lost_write: page 3")));
        let ev: Vec<_> = xfail_block
            .iter()
            .filter(|l| l.contains("evidence:"))
            .collect();
        assert_eq!(ev.len(), MAX_EVIDENCE_LINES + 1);
        assert!(ev
            .last()
            .unwrap()
            .contains("3 more lines (all in /tmp/results/S03-gup-reclaim/6.12-ext4-1)"));
        assert!(xfail_block.contains(&"  # 6.12_ext4: kernel 6.12.57, machine kvm, 12.3 s, results in /tmp/results/S03-gup-reclaim/6.12-ext4-1"));
        assert!(text.contains("  ok 1 6.12_ext4 # XFAIL lost_write: page 3 (file offset 12288)"));
        assert!(text.contains("  ok 5 6.1_xfs # SKIP kernel 6.1 failed to boot"));
        assert!(text.contains(
            "# S03-gup-reclaim: 2 xfail, 1 xpass, 1 fail, 1 untestable\nnot ok 2 S03-gup-reclaim\n"
        ));
    }

    #[test]
    fn empty_suite() {
        let text = render(&testdata::empty());
        assert_eq!(
            text,
            "KTAP version 1\n1..0\n# no cases in this suite\n# Totals: pass:0 fail:0 xfail:0 xpass:0 skip:0 error:0\n"
        );
        assert_eq!(parse(&text).plan, 0);
    }

    #[test]
    fn all_untestable_scenario_is_skipped_and_partial_skips_do_not_fail() {
        let mut s = testdata::empty();
        s.cases = vec![
            testdata::case("S05", "6.1", "btrfs", 1, Outcome::Untestable),
            testdata::case("S05", "6.12", "btrfs", 1, Outcome::Untestable),
            testdata::case("S06", "6.1", "btrfs", 1, Outcome::Untestable),
            testdata::case("S06", "6.12", "btrfs", 1, Outcome::Pass),
        ];
        let text = render(&s);
        let top = parse(&text);
        assert_eq!(top.results[0].0.directive.as_deref(), Some("SKIP"));
        assert!(top.results[0].0.ok);
        assert!(text.contains("\nok 1 S05 # SKIP all 2 runs untestable\n"));
        assert_eq!(
            top.results[1].0,
            Res {
                ok: true,
                num: 2,
                name: "S06".into(),
                directive: None
            }
        );
    }

    #[test]
    fn a_scenario_named_subtest_opens_no_extra_test() {
        let mut s = testdata::empty();
        s.cases = vec![testdata::case("Subtest", "6.12", "ext4", 1, Outcome::Pass)];
        let text = render(&s);
        assert_eq!(text.matches("# Subtest: ").count(), 1);
        assert!(text.contains("\n# (Subtest): 1 pass\nok 1 Subtest\n"));
        assert_eq!(parse(&text).results[0].0.name, "Subtest");
    }

    #[test]
    fn hostile_text_stays_in_its_line() {
        let mut c = testdata::case("S 07#x", "6.12", "ext4", 3, Outcome::Failure);
        c.summary = "TODO: page #3\nnot ok 9 fake # SKIP reboot: System halted".into();
        c.evidence = vec![
            "Kernel panic - not syncing: VFS: Unable to mount root fs".into(),
            "List of all partitions:".into(),
            "ok 1 injected".into(),
            "x".repeat(1000),
        ];
        c.finding = Some("line one\nline two".into());
        let mut s = testdata::empty();
        s.cases = vec![c];
        let text = render(&s);
        let top = parse(&text);
        let (scen, sub) = &top.results[0];
        assert_eq!(scen.name, "S_07_x");
        assert!(!scen.ok);
        let (r, _) = &sub.as_ref().unwrap().results[0];
        assert_eq!(r.name, "6.12_ext4_run3");
        assert!(!r.ok);
        // The summary starts with TODO: it must not read as the TODO directive.
        assert_eq!(r.directive.as_deref(), Some("fail:"));
        for l in text.lines() {
            for end in [
                "List of all partitions:",
                "Kernel panic - not syncing: VFS:",
                "reboot: System halted",
            ] {
                assert!(!l.contains(end), "KTAP end marker in {l:?}");
            }
            assert!(l.chars().count() <= MAX_TEXT + 40, "long line {l:?}");
            if l.trim_start().starts_with("not ok") || l.trim_start().starts_with("ok") {
                assert!(
                    l.matches(" # ").count() <= 1,
                    "more than one directive separator in {l:?}"
                );
                assert!(!l.contains(" # SKIP"), "fake skip in {l:?}");
            }
        }
    }
}
