//! The bisection's report: a table per revision, the conclusion, and `bisect.json`.

use super::{BisectResult, Conclusion};
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

/// Writes `bisect.json` into `out`.
pub fn write_json(r: &BisectResult, out: &Path) -> Result<()> {
    let path = out.join("bisect.json");
    std::fs::write(&path, serde_json::to_string_pretty(r)? + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

/// The human report.
pub fn text(r: &BisectResult) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<40} {:<12} {:>9} {:>5} {:>4} {:>5} {:>5}  decision: subject",
        "role", "commit", "build s", "runs", "det", "clean", "other"
    );
    for l in &r.revisions {
        let build = match (&l.record.build, &l.record.build_error) {
            (Some(b), _) if b.cached => "cached".to_string(),
            (Some(b), _) => format!(
                "{:.0}{}",
                b.seconds,
                if b.incremental { " inc" } else { " full" }
            ),
            (None, Some(_)) => "failed".into(),
            (None, None) => "-".into(),
        };
        let decision = match &l.decision {
            None => "measured".to_string(),
            Some(d) => serde_json::to_value(d)
                .ok()
                .and_then(|v| v.get("decision").and_then(|d| d.as_str()).map(String::from))
                .unwrap_or_default(),
        };
        let _ = writeln!(
            s,
            "{:<40} {:<12} {:>9} {:>5} {:>4} {:>5} {:>5}  {decision}: {}",
            l.role,
            &l.record.commit[..12.min(l.record.commit.len())],
            build,
            l.tally.runs(),
            l.tally.detected,
            l.tally.clean,
            l.tally.other,
            l.record.subject
        );
    }
    let _ = writeln!(
        s,
        "target: {}; bad rate {:.2}; good needs {} clean runs ({:.0}% confidence)",
        r.target.elements.join(" + "),
        r.rate,
        r.clean_runs_needed,
        r.confidence * 100.0
    );
    let _ = writeln!(
        s,
        "time: {:.0} s total, {:.0} s building, {:.0} s running",
        r.total_seconds, r.build_seconds, r.run_seconds
    );
    match &r.conclusion {
        Conclusion::Culprit {
            commit,
            subject,
            verification: v,
        } => {
            let mark = |b: Option<bool>| match b {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "not checked",
            };
            let _ = writeln!(s, "first bad commit: {commit} {subject}");
            let _ = writeln!(
                s,
                "  culprit reproduces:          {}",
                mark(v.culprit_reproduces)
            );
            let _ = writeln!(s, "  its parent is clean:         {}", mark(v.parent_clean));
            let _ = writeln!(s, "  bad with it reverted clean:  {}", mark(v.revert_clean));
            let _ = writeln!(
                s,
                "  its vmlinux differs:         {}",
                mark(v.vmlinux_differs)
            );
            for n in &v.notes {
                let _ = writeln!(s, "  note: {n}");
            }
            let _ = writeln!(
                s,
                "{}",
                if v.verified() {
                    "verified"
                } else {
                    "NOT verified"
                }
            );
        }
        Conclusion::Inconclusive { candidates } => {
            let _ = writeln!(
                s,
                "inconclusive: skipped revisions leave {} candidates: {}",
                candidates.len(),
                candidates.join(" ")
            );
        }
        Conclusion::CouldNotBisect { reason } => {
            let _ = writeln!(s, "could not bisect: {reason}");
        }
    }
    s
}
