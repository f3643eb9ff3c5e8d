//! Summaries for people: a plain-text table for the terminal, one row per run, and a markdown
//! findings table (scenario × kernel/filesystem) for the README.

use std::io::{self, Write};

use super::{one_line, truncate_chars, verdict_list, CaseResult, Outcome, SuiteResult};

/// The width `write_table` keeps its rows within.
pub const WIDTH: usize = 160;

const HEADERS: [&str; 7] = [
    "scenario", "kernel", "fs", "run", "outcome", "found", "summary",
];
/// Widest each column but the summary may grow.
const CAPS: [usize; 6] = [28, 12, 8, 3, 10, 32];
const MIN_SUMMARY: usize = 20;

/// One row per case (scenario, kernel, fs, run, outcome label, found verdicts, summary cut to
/// keep the row within [`WIDTH`] columns), then the totals per outcome and whether every run
/// matched its expectation.
pub fn write_table(s: &SuiteResult, w: &mut impl Write) -> io::Result<()> {
    let rows: Vec<[String; 7]> = s
        .cases
        .iter()
        .map(|c| {
            [
                one_line(&c.scenario),
                one_line(&c.kernel),
                one_line(&c.fs),
                c.run.to_string(),
                c.outcome.label().to_string(),
                one_line(&verdict_list(&c.found, "-")),
                one_line(&c.summary),
            ]
        })
        .collect();
    let mut widths = [0usize; 6];
    for (i, width) in widths.iter_mut().enumerate() {
        let longest = rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
        *width = longest.max(HEADERS[i].len()).min(CAPS[i]);
    }
    let used: usize = widths.iter().map(|w| w + 2).sum();
    let summary_width = WIDTH.saturating_sub(used).max(MIN_SUMMARY);
    let line = |cells: [&str; 7]| -> String {
        let mut out = String::new();
        for (i, width) in widths.iter().enumerate() {
            let cell = truncate_chars(cells[i], *width);
            let pad = width - cell.chars().count();
            // The run number is right-aligned, the rest left-aligned.
            if i == 3 {
                out.push_str(&" ".repeat(pad));
                out.push_str(&cell);
            } else {
                out.push_str(&cell);
                out.push_str(&" ".repeat(pad));
            }
            out.push_str("  ");
        }
        out.push_str(&truncate_chars(cells[6], summary_width));
        out.trim_end().to_string()
    };
    writeln!(w, "{}", line(HEADERS))?;
    for r in &rows {
        writeln!(
            w,
            "{}",
            line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6]])
        )?;
    }
    if rows.is_empty() {
        writeln!(w, "(no cases)")?;
    }
    let c = s.counts();
    writeln!(
        w,
        "total: {} run{} in {:.1} s: {}",
        c.total(),
        if c.total() == 1 { "" } else { "s" },
        s.duration.as_secs_f64(),
        c.summary()
    )?;
    if s.all_match() {
        writeln!(w, "result: every run matches its expectation")
    } else {
        let mut parts = Vec::new();
        if c.mismatching() > 0 {
            parts.push(format!(
                "{} run{} do{} not match {} expectation ({} xpass, {} fail)",
                c.mismatching(),
                if c.mismatching() == 1 { "" } else { "s" },
                if c.mismatching() == 1 { "es" } else { "" },
                if c.mismatching() == 1 { "its" } else { "their" },
                c.unexpected_pass,
                c.failure
            ));
        }
        if c.untestable > 0 {
            parts.push(format!("{} untestable", c.untestable));
        }
        writeln!(w, "result: {}", parts.join("; "))
    }
}

/// "✓" for a run that matches its expectation, "✗" for a mismatch, "⊘" for untestable.
pub fn marker(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass | Outcome::ExpectedFailure => "✓",
        Outcome::UnexpectedPass | Outcome::Failure => "✗",
        Outcome::Untestable => "⊘",
    }
}

/// A markdown table, one row per scenario and one column per (kernel, fs) pair, each cell the
/// verdicts found (or "clean") with the outcome marker and label, e.g. `lost_write ✓ xfail`;
/// repeated runs that differ are listed each with their share (`clean ✗ xpass (1/3)`).
/// Findings (measured truth differing from the research prediction) follow as a list.
pub fn findings_markdown(s: &SuiteResult) -> String {
    let mut kernels: Vec<&str> = Vec::new();
    let mut filesystems: Vec<&str> = Vec::new();
    for c in &s.cases {
        if !kernels.contains(&c.kernel.as_str()) {
            kernels.push(&c.kernel);
        }
        if !filesystems.contains(&c.fs.as_str()) {
            filesystems.push(&c.fs);
        }
    }
    let columns: Vec<(&str, &str)> = kernels
        .iter()
        .flat_map(|k| filesystems.iter().map(move |f| (*k, *f)))
        .filter(|(k, f)| s.cases.iter().any(|c| c.kernel == *k && c.fs == *f))
        .collect();

    let mut out = String::new();
    if s.cases.is_empty() {
        out.push_str("_No cases._\n");
        return out;
    }
    out.push_str("| scenario | what |");
    for (k, f) in &columns {
        out.push_str(&format!(" {} {} |", md(k), md(f)));
    }
    out.push('\n');
    out.push_str("|---|---|");
    for _ in &columns {
        out.push_str("---|");
    }
    out.push('\n');
    for (scenario, cases) in s.by_scenario() {
        let what = cases.first().map(|c| c.description.as_str()).unwrap_or("");
        out.push_str(&format!("| {} | {} |", md(scenario), md(what)));
        for (k, f) in &columns {
            let runs: Vec<&CaseResult> = cases
                .iter()
                .copied()
                .filter(|c| c.kernel == *k && c.fs == *f)
                .collect();
            out.push_str(&format!(" {} |", md(&cell(&runs))));
        }
        out.push('\n');
    }
    out.push_str(
        "\n✓ as the scenario expects (pass: clean as expected; xfail: the expected verdicts \
         found), ✗ not as expected (xpass: expected verdicts not found; fail: other verdicts or \
         a crash), ⊘ untestable (build, boot or infrastructure); (n/m): n of m runs. The \
         expectation is the research notes' prediction, or the measured truth recorded as a \
         finding where a run contradicted it.\n",
    );

    let mut findings: Vec<(String, &str)> = Vec::new();
    for c in &s.cases {
        if let Some(f) = c
            .finding
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            let who = format!("{}, {}/{}", c.scenario, c.kernel, c.fs);
            if !findings.iter().any(|(w, t)| *w == who && *t == f) {
                findings.push((who, f));
            }
        }
    }
    if !findings.is_empty() {
        out.push_str("\nFindings (measured, differing from the prediction):\n\n");
        for (who, f) in findings {
            out.push_str(&format!("- **{}**: {}\n", md(&who), md(f)));
        }
    }
    out
}

/// One cell: the distinct (found verdicts, outcome) results of the runs, in order of first
/// appearance, with their share when the runs disagree or when there are several.
fn cell(runs: &[&CaseResult]) -> String {
    if runs.is_empty() {
        return "–".to_string();
    }
    // Runs with the same verdicts (in any order) and outcome, counted; in order of first
    // appearance.
    struct Group<'a> {
        found: Vec<&'a str>,
        outcome: Outcome,
        runs: usize,
        first: &'a CaseResult,
    }
    let mut groups: Vec<Group> = Vec::new();
    for c in runs {
        let mut found: Vec<&str> = c.found.iter().map(String::as_str).collect();
        found.sort_unstable();
        found.dedup();
        match groups
            .iter_mut()
            .find(|g| g.found == found && g.outcome == c.outcome)
        {
            Some(g) => g.runs += 1,
            None => groups.push(Group {
                found,
                outcome: c.outcome,
                runs: 1,
                first: c,
            }),
        }
    }
    groups
        .iter()
        .map(|g| {
            let mut t = match g.outcome {
                Outcome::Untestable => format!("{} untestable", marker(g.outcome)),
                o => format!(
                    "{} {} {}",
                    verdict_list(&g.first.found, "clean"),
                    marker(o),
                    o.label()
                ),
            };
            if runs.len() > 1 {
                t.push_str(&format!(" ({}/{})", g.runs, runs.len()));
            }
            t
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Text for a markdown table cell: one line, `|` escaped.
fn md(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::super::testdata;
    use super::*;

    fn table(s: &SuiteResult) -> String {
        let mut out = Vec::new();
        write_table(s, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn table_rows_and_totals() {
        let t = table(&testdata::suite());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 1 + 7 + 2);
        assert!(lines[0].starts_with("scenario         kernel  fs    run  outcome     found"));
        assert!(lines[2].starts_with("S03-gup-reclaim  6.12    ext4    1  xfail       lost_write, kernel_warning  lost_write: page 3"));
        assert!(lines[4].starts_with("S03-gup-reclaim  6.12    ext4    2  xfail"));
        assert!(lines[5].starts_with("S03-gup-reclaim  6.1     ext4    1  xpass       -"));
        assert!(lines[7].contains("untestable"));
        assert_eq!(
            lines[8],
            "total: 7 runs in 600.0 s: 2 pass, 2 xfail, 1 xpass, 1 fail, 1 untestable"
        );
        assert_eq!(
            lines[9],
            "result: 2 runs do not match their expectation (1 xpass, 1 fail); 1 untestable"
        );
        assert!(lines.iter().all(|l| l.chars().count() <= WIDTH));
    }

    #[test]
    fn long_text_is_cut_to_the_width() {
        let mut c = testdata::case(&"S".repeat(60), "6.12", "ext4", 1, Outcome::Failure);
        c.summary = "z".repeat(500);
        c.found = (0..20).map(|i| format!("verdict_{i}")).collect();
        let mut s = testdata::empty();
        s.cases = vec![c];
        let t = table(&s);
        let row = t.lines().nth(1).unwrap();
        assert_eq!(row.chars().count(), WIDTH);
        assert!(row.ends_with("z…"));
        assert!(row.starts_with(&format!("{}…  ", "S".repeat(27))));
        assert!(t.ends_with("result: 1 run does not match its expectation (0 xpass, 1 fail)\n"));
    }

    #[test]
    fn empty_and_all_matching() {
        let t = table(&testdata::empty());
        assert_eq!(
            t,
            "scenario  kernel  fs  run  outcome  found  summary\n(no cases)\n\
             total: 0 runs in 0.0 s: 0 pass, 0 xfail, 0 xpass, 0 fail, 0 untestable\n\
             result: every run matches its expectation\n"
        );
        let mut s = testdata::empty();
        s.cases = vec![testdata::case("S1", "6.12", "ext4", 1, Outcome::Pass)];
        assert!(table(&s).ends_with("total: 1 run in 0.0 s: 1 pass, 0 xfail, 0 xpass, 0 fail, 0 untestable\nresult: every run matches its expectation\n"));
        assert_eq!(findings_markdown(&testdata::empty()), "_No cases._\n");
    }

    #[test]
    fn findings_table() {
        let mut s = testdata::suite();
        // A third run of S03 on 6.12/ext4 that found nothing.
        s.cases.push(testdata::case(
            "S03-gup-reclaim",
            "6.12",
            "ext4",
            3,
            Outcome::UnexpectedPass,
        ));
        s.cases[4].finding = Some("6.1 grants the long-term pin | no lost write".into());
        let md = findings_markdown(&s);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "| scenario | what | 6.12 ext4 | 6.12 xfs | 6.1 ext4 | 6.1 xfs |"
        );
        assert_eq!(lines[1], "|---|---|---|---|---|---|");
        assert_eq!(
            lines[2],
            "| S01-baseline | S01-baseline: DMA into pinned pages while reclaim runs | clean ✓ pass | clean ✓ pass | – | – |"
        );
        assert_eq!(
            lines[3],
            "| S03-gup-reclaim | S03-gup-reclaim: DMA into pinned pages while reclaim runs \
             | lost_write, kernel_warning ✓ xfail (2/3); clean ✗ xpass (1/3) | torn_block ✗ fail \
             | clean ✗ xpass | ⊘ untestable |"
        );
        assert!(md.contains("\nFindings (measured, differing from the prediction):\n\n"));
        assert!(md.contains(
            "- **S03-gup-reclaim, 6.1/ext4**: 6.1 grants the long-term pin \\| no lost write\n"
        ));
        // Every table row has the same number of cells.
        let pipes: Vec<usize> = lines[..4]
            .iter()
            .map(|l| l.replace("\\|", "").matches('|').count())
            .collect();
        assert!(pipes.iter().all(|&p| p == pipes[0]));
    }
}
