//! What the guest reported: filesystem errors (step errnos and kernel filesystem messages),
//! other failed steps, and where the guest's word disagrees with what the host saw.

use crate::console::{fs_messages, FsSeverity};
use crate::inputs::Inputs;
use crate::verdict::{Evidence, Verdict, VerdictKind};
use proto::agent::StepReport;
use proto::journal::RequestKind;

const EIO: i32 = 5;
/// ext4's EFSBADCRC.
const EBADMSG: i32 = 74;
/// ext4's EFSCORRUPTED, btrfs' "dirty folio without notifying the fs".
const EUCLEAN: i32 = 117;

/// fs_error: a step failed with EIO/EBADMSG/EUCLEAN, or the kernel printed a filesystem
/// error or a checksum failure.
pub fn fs_error(inputs: &Inputs) -> Option<Verdict> {
    let mut cases = Vec::new();
    for s in &inputs.steps {
        if let StepReport::Failed {
            index,
            op,
            errno,
            message,
        } = &s.report
        {
            if [EIO, EBADMSG, EUCLEAN].contains(errno) && !is_mismatch(&s.report) {
                cases.push(Evidence {
                    text: format!(
                        "step {index} `{}` ({op}) failed: errno {errno}: {message}",
                        s.line
                    ),
                    times_ns: vec![s.time_ns],
                    ..Evidence::default()
                });
            }
        }
    }
    for m in fs_messages(inputs.console) {
        if m.checksum || matches!(m.severity, FsSeverity::Error | FsSeverity::Critical) {
            cases.push(Evidence {
                text: format!("console line {}: {}", m.line + 1, m.text),
                console: vec![m.text.clone()],
                ..Evidence::default()
            });
        }
    }
    Verdict::from_cases(VerdictKind::FsError, "filesystem error", cases)
}

/// A `verify` step that read back other bytes than the pattern (the agent reports EIO with
/// "mismatch at offset"): the guest saw data other than what it wrote.
fn is_mismatch(r: &StepReport) -> bool {
    matches!(r, StepReport::Failed { op, message, .. } if op == "verify" && message.contains("mismatch"))
}

/// Read-back mismatches the guest reported: evidence of a lost write that the host could not
/// see (no DMA log for that data, e.g. an O_DIRECT read as the writer).
pub fn read_back_mismatches(inputs: &Inputs) -> Vec<Evidence> {
    inputs
        .steps
        .iter()
        .filter(|s| is_mismatch(&s.report))
        .map(|s| Evidence {
            text: format!(
                "the guest read back other data than it wrote: step {} `{}`: {}",
                s.report.index(),
                s.line,
                match &s.report {
                    StepReport::Failed { message, .. } => message.as_str(),
                    _ => "",
                }
            ),
            times_ns: vec![s.time_ns],
            ..Evidence::default()
        })
        .collect()
}

/// Filesystem warnings (not errors) the kernel printed, e.g. ext4's "page N does not have
/// buffers attached": evidence for a lost write, not a verdict of their own.
pub fn fs_warnings(inputs: &Inputs) -> Vec<String> {
    fs_messages(inputs.console)
        .into_iter()
        .filter(|m| m.severity == FsSeverity::Warning && !m.checksum)
        .map(|m| m.text)
        .collect()
}

/// step_failed: a step failed for another reason than a filesystem error.
pub fn step_failed(inputs: &Inputs) -> Option<Verdict> {
    let cases = inputs
        .steps
        .iter()
        .filter_map(|s| match &s.report {
            StepReport::Failed {
                index,
                errno,
                message,
                ..
            } if ![EIO, EBADMSG, EUCLEAN].contains(errno) => Some(Evidence {
                text: format!("step {index} `{}` failed: errno {errno}: {message}", s.line),
                times_ns: vec![s.time_ns],
                ..Evidence::default()
            }),
            _ => None,
        })
        .collect();
    Verdict::from_cases(VerdictKind::StepFailed, "failed step", cases)
}

/// Where the guest's word and the host's records disagree: a sync step that reported success
/// although no FLUSH reached the disk while it ran, after writes the disk had not yet been
/// asked to make durable.
pub fn disagreements(inputs: &Inputs) -> Vec<String> {
    let mut notes = Vec::new();
    if inputs.journal.is_empty() {
        return notes;
    }
    let syncs = ["fsync", "fdatasync", "syncfs", "sync", "msync"];
    let mut prev_ns = 0u64;
    for s in &inputs.steps {
        let start = prev_ns;
        prev_ns = s.time_ns;
        if !(s.ok() && syncs.contains(&s.op())) {
            continue;
        }
        let in_step = |t: u64| t >= start && t <= s.time_ns;
        let wrote = inputs
            .journal
            .iter()
            .any(|r| r.kind == RequestKind::Out && in_step(r.complete_ns));
        let flushed = inputs
            .journal
            .iter()
            .any(|r| r.kind == RequestKind::Flush && in_step(r.complete_ns));
        if wrote && !flushed {
            notes.push(format!(
                "the guest reported step {} `{}` done, and the disk received writes while it \
                 ran, but no FLUSH: those writes were not made durable before the guest was told \
                 so",
                s.report.index(),
                s.line
            ));
        }
    }
    notes
}
