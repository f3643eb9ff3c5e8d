//! From a run record and the records its devices wrote (DMA log, block journal, final disk)
//! to the oracle's analysis.

use anyhow::{Context, Result};
use guest_images::disk::Fs;
use machine::RunReport;
use oracle::{Analysis, FileExtent, FileMap, Inputs, TimedStep};
use proto::agent::StepReport;
use proto::dma_log::DmaLog;
use proto::journal::Journal;
use std::path::Path;

/// Gather the run's records and let the oracle judge. `steps` are the workload lines the
/// agent ran (the last one a `fiemap` of the target file on disk 0, a `fs` filesystem);
/// `watchdog` is the hang reason when the run timed out.
pub fn analyze(
    fs: Fs,
    steps: &[String],
    report: &RunReport,
    watchdog: Option<String>,
) -> Result<Analysis> {
    let records = &report.records;
    let mut notes = Vec::new();
    let dma = match records.dma_log.as_deref().map(DmaLog::open) {
        Some(Ok(l)) => l.records().collect::<Result<Vec<_>, _>>()?,
        Some(Err(e)) => {
            notes.push(format!("no DMA log: {e}"));
            vec![]
        }
        None => {
            notes.push("no DMA log: the run kept none".into());
            vec![]
        }
    };
    let journal_path = records.journals.first().and_then(|j| j.as_deref());
    let journal = match journal_path.map(Journal::open) {
        Some(Ok(j)) => j.records().collect::<Result<Vec<_>, _>>()?,
        Some(Err(e)) => {
            notes.push(format!("no block journal: {e}"));
            vec![]
        }
        None => {
            notes.push("no block journal: the run kept none".into());
            vec![]
        }
    };
    let disk = records.kept_disks.first().and_then(|d| d.as_deref());
    let disk = match disk {
        Some(d) if !d.is_file() => {
            notes.push(format!(
                "no final disk image at {}: the file's pages are not checked on disk",
                d.display()
            ));
            None
        }
        d => d,
    };
    // Only the file offsets the device wrote are checked on disk.
    let dma_offsets: Vec<u64> = dma.iter().map(|r| r.file_offset).collect();
    let file = match disk {
        Some(disk) => file_map(fs, steps, report, disk, &dma_offsets, &mut notes)?,
        None => None,
    };
    let image = disk.and_then(|d| std::fs::File::open(d).ok());
    let inputs = Inputs {
        dma,
        journal,
        file,
        image: image.as_ref().map(|f| f as &dyn oracle::DiskImage),
        console: &report.console,
        steps: timed_steps(steps, report),
        watchdog: watchdog.map(|w| with_blocked_step(w, steps, &report.steps)),
    };
    let mut a = oracle::analyze(&inputs);
    a.notes.splice(0..0, notes);
    Ok(a)
}

/// The watchdog's reason, plus the step the agent was running when the run was stopped: the
/// step after the last one it reported (a step that blocked past the scenario's timeout).
fn with_blocked_step(watchdog: String, steps: &[String], reports: &[StepReport]) -> String {
    let last = reports
        .iter()
        .filter(|r| !matches!(r, StepReport::Extent { .. }))
        .map(|r| r.index())
        .max()
        .unwrap_or(0);
    match steps.get(last as usize) {
        Some(line) => format!("{watchdog}; step {} `{line}` never finished", last + 1),
        None => watchdog,
    }
}

/// Each step's report (extents aside) with its workload line and arrival time.
fn timed_steps(steps: &[String], report: &RunReport) -> Vec<TimedStep> {
    report
        .steps
        .iter()
        .zip(&report.step_ns)
        .filter(|(r, _)| !matches!(r, StepReport::Extent { .. }))
        .map(|(r, &t)| TimedStep {
            // Step numbers come from the guest: 0 or one past the job is no line.
            line: (r.index() as usize)
                .checked_sub(1)
                .and_then(|i| steps.get(i))
                .cloned()
                .unwrap_or_default(),
            report: r.clone(),
            time_ns: t,
        })
        .collect()
}

/// The target file's extents on `disk`, from the closing `fiemap` (the last step), if it ran.
/// An extent that the final image does not hold (the file moved after it was mapped) is an
/// error when the device wrote into its range, which the oracle must then check; otherwise it
/// is left out with a note (nothing on it is judged).
fn file_map(
    fs: Fs,
    steps: &[String],
    report: &RunReport,
    disk: &Path,
    dma_offsets: &[u64],
    notes: &mut Vec<String>,
) -> Result<Option<FileMap>> {
    let fiemap_index = steps.len() as u32;
    let fiemap_done = report
        .steps
        .iter()
        .any(|r| matches!(r, StepReport::Done { index, .. } if *index == fiemap_index));
    if !fiemap_done {
        return Ok(None);
    }
    let mut extents = Vec::new();
    for r in &report.steps {
        if let StepReport::Extent {
            index,
            logical,
            physical,
            length,
            flags,
        } = r
        {
            if *index == fiemap_index {
                let mapped = guest_images::disk::device_offset(fs, disk, *physical);
                let written = dma_offsets
                    .iter()
                    .any(|o| o.checked_sub(*logical).is_some_and(|d| d < *length));
                if let (Err(e), false) = (&mapped, written) {
                    notes.push(format!(
                        "file offset {logical}: its FIEMAP extent is not in the final image \
                         ({e:#}); the device wrote nothing there, so nothing there is checked"
                    ));
                    continue;
                }
                extents.push(FileExtent {
                    logical: *logical,
                    device: mapped.with_context(|| {
                        format!(
                            "file offset {logical}: its FIEMAP extent (physical {physical:#x}) \
                                 is not in the final disk image: the file was rewritten after \
                                 the closing FIEMAP, so the extents do not describe what is on \
                                 disk (journal and DMA log show the moves)"
                        )
                    })?,
                    length: *length,
                    flags: *flags,
                });
            }
        }
    }
    Ok(Some(FileMap { extents }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_names_the_step_that_never_finished() {
        let steps: Vec<String> = ["sync", "write /mnt/g 4M stamp:g", "fsync /mnt/f"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut reports = Vec::new();
        reports.push(StepReport::Done {
            index: 1,
            op: "sync".into(),
            detail: String::new(),
        });
        let w = with_blocked_step("timeout".into(), &steps, &reports);
        assert_eq!(
            w,
            "timeout; step 2 `write /mnt/g 4M stamp:g` never finished"
        );
        reports.push(StepReport::Done {
            index: 3,
            op: "fsync".into(),
            detail: String::new(),
        });
        reports.push(StepReport::Done {
            index: 2,
            op: "write".into(),
            detail: String::new(),
        });
        assert_eq!(
            with_blocked_step("timeout".into(), &steps, &reports),
            "timeout"
        );
    }
}
