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
        VerdictKind::Hang,
    ] {
        let mut cases: Vec<Evidence> = reports
            .iter()
            .filter(|r| kind_of(r.kind) == kind)
            .map(evidence)
            .collect();
        if kind == VerdictKind::Hang {
            if let Some(w) = &inputs.watchdog {
                cases.push(Evidence::new(format!("watchdog: {w}")));
            }
        }
        let what = match kind {
            VerdictKind::Hang => "hang",
            _ => "console report",
        };
        if let Some(v) = Verdict::from_cases(kind, what, cases) {
            out.push(v);
        }
    }
    (out, reports.len())
}
