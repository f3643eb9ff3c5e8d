//! pinvm's oracle: turns what the host recorded during a run into verdicts with evidence.
//!
//! It trusts the host's records (the DMA log, the block journal, the final disk image, the
//! console bytes) and the guest only for the file's extents and the results of its steps; when
//! the two disagree it says so in the analysis' notes.

#![warn(missing_docs)]

pub mod checks;
pub mod console;
pub mod inputs;
pub mod verdict;

pub use inputs::{DiskImage, FileExtent, FileMap, Inputs, Ranges, TimedStep};
pub use verdict::{Analysis, Evidence, Verdict, VerdictKind};

use proto::journal::RequestKind;

/// Run every check over one run's records.
pub fn analyze(inputs: &Inputs) -> Analysis {
    let mut a = Analysis::default();
    a.stats.dma_writes = inputs.dma.len();
    a.stats.pages_with_dma = checks::last_writes(&inputs.dma, None).len();
    a.stats.journal_writes = inputs
        .journal
        .iter()
        .filter(|r| r.kind == RequestKind::Out)
        .count();
    a.stats.journal_flushes = inputs
        .journal
        .iter()
        .filter(|r| r.kind == RequestKind::Flush)
        .count();
    if !inputs.journal.is_empty()
        && inputs
            .journal
            .iter()
            .any(|r| r.kind == RequestKind::Out && r.data.is_none())
    {
        a.notes.push(
            "the journal has no write data: torn and stale blocks are judged on the final \
             image only"
                .into(),
        );
    }
    a.push(checks::disk::torn(inputs));
    let mut checked = 0;
    let mut lost = checks::disk::lost(inputs, &mut a.notes, &mut checked);
    a.stats.pages_checked_on_disk = checked;
    let mismatches = checks::guest::read_back_mismatches(inputs);
    if !mismatches.is_empty() {
        match &mut lost {
            Some(v) => {
                v.count += mismatches.len();
                v.evidence.extend(mismatches);
            }
            None => {
                lost = Verdict::from_cases(VerdictKind::LostWrite, "read-back mismatch", mismatches)
            }
        }
    }
    if let Some(v) = &mut lost {
        for w in checks::guest::fs_warnings(inputs) {
            v.evidence.push(Evidence {
                text: format!("the kernel warned: {w}"),
                console: vec![w],
                ..Evidence::default()
            });
        }
    }
    a.push(lost);
    a.push(checks::disk::stale(inputs));
    a.push(checks::acked::check(inputs));
    a.push(checks::unstable::check(inputs));
    a.push(checks::guest::fs_error(inputs));
    let (kernel, reports) = checks::kernel::check(inputs);
    a.stats.console_reports = reports;
    a.verdicts.extend(kernel);
    a.push(checks::guest::step_failed(inputs));
    a.notes.extend(checks::guest::disagreements(inputs));
    a
}

#[cfg(test)]
mod tests;
