//! What the kernel said about itself on the console (BUG, WARNING, Oops, ..., hangs), and the
//! VMM's watchdog.

use crate::console::{parse, CrashKind, CrashReport};
use crate::inputs::Inputs;
use crate::verdict::{Evidence, Verdict, VerdictKind};

/// The verdict a console report stands for.
pub fn kind_of(c: CrashKind) -> VerdictKind {
    match c {
        CrashKind::Warning => VerdictKind::KernelWarning,
        CrashKind::Bug | CrashKind::Kasan | CrashKind::Ubsan => VerdictKind::KernelBug,
        CrashKind::Oops
        | CrashKind::GeneralProtection
        | CrashKind::PageFault
        | CrashKind::Panic => VerdictKind::KernelOops,
        CrashKind::HungTask | CrashKind::RcuStall | CrashKind::SoftLockup => VerdictKind::Hang,
    }
}

fn evidence(r: &CrashReport) -> Evidence {
    Evidence {
        text: match r.time_s {
            Some(t) => format!("{} (console line {}, {t:.6} s)", r.title, r.line + 1),
            None => format!("{} (console line {})", r.title, r.line + 1),
        },
        console: r.excerpt.clone(),
        ..Evidence::default()
    }
}

/// kernel_bug, kernel_warning, kernel_oops and hang verdicts, in that order; also returns how
/// many console reports there were.
pub fn check(inputs: &Inputs) -> (Vec<Verdict>, usize) {
    let reports = parse(inputs.console);
    let mut out = Vec::new();
    for kind in [
        VerdictKind::KernelBug,
        VerdictKind::KernelWarning,
        VerdictKind::KernelOops,
    ] {
        let cases: Vec<Evidence> = reports
            .iter()
            .filter(|r| kind_of(r.kind) == kind)
            .map(evidence)
            .collect();
        out.extend(Verdict::from_cases(kind, "console report", cases));
    }
    out.extend(hang(&reports, inputs.watchdog.as_deref()));
    (out, reports.len())
}

/// The hang verdict, which keeps apart the two ways a hang shows: the kernel reported blocked
/// tasks, stalls or lockups on the console (each with the task's stack), and the guest stopped
/// answering (the VMM's watchdog ended the run). The summary says which of the two happened.
fn hang(reports: &[CrashReport], watchdog: Option<&str>) -> Option<Verdict> {
    let mut cases: Vec<Evidence> = reports
        .iter()
        .filter(|r| kind_of(r.kind) == VerdictKind::Hang)
        .map(|r| {
            let mut e = evidence(r);
            e.text = format!("the kernel reported: {}", e.text);
            e
        })
        .collect();
    let reported = cases.len();
    let first_title = reports
        .iter()
        .find(|r| kind_of(r.kind) == VerdictKind::Hang)
        .map(|r| r.title.clone());
    if let Some(w) = watchdog {
        cases.push(Evidence::new(format!(
            "the guest stopped answering: watchdog: {w}"
        )));
    }
    let mut v = Verdict::from_cases(VerdictKind::Hang, "hang", cases)?;
    v.summary = match (first_title, watchdog) {
        (Some(t), None) => format!(
            "hang: the kernel reported {reported} blocked task(s) or stall(s), the guest kept \
             answering; first: {t}"
        ),
        (Some(t), Some(w)) => format!(
            "hang: the kernel reported {reported} blocked task(s) or stall(s) (first: {t}), \
             then the guest stopped answering (watchdog: {w})"
        ),
        (None, Some(w)) => format!(
            "hang: the guest stopped answering (watchdog: {w}); the kernel reported no \
             blocked task"
        ),
        (None, None) => return None,
    };
    Some(v)
}
