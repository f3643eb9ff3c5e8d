//! From a run record and the records its devices wrote (DMA log, block journal, final disk)
//! to the oracle's analysis.

use anyhow::{Context, Result};
use guest_images::disk::Fs;
use machine::RunReport;
use oracle::{Analysis, FileExtent, FileMap, Inputs, TimedStep};
use proto::agent::StepReport;
use proto::dma_log::DmaLog;
use proto::journal::{Journal, JournalError, JournalRecord};
use std::path::Path;

/// The journal's good records; damaged ones (the reader skips to the next good record) are
/// counted in a note rather than costing the run its verdict. Only a read error fails.
fn journal_records(j: Journal, notes: &mut Vec<String>) -> Result<Vec<JournalRecord>> {
    let mut good = Vec::new();
    let mut damaged = 0u64;
    let mut first = None;
    for r in j.records() {
        match r {
            Ok(r) => good.push(r),
            Err(JournalError::Io(e)) => return Err(e).context("reading the block journal"),
            Err(e) => {
                damaged += 1;
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
    if let Some(first) = first {
        notes.push(format!(
            "the block journal has {damaged} damaged records, judged without them (the first: \
             {first})"
        ));
    }
    Ok(good)
}

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
        Some(Ok(j)) => journal_records(j, &mut notes)?,
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
    use proto::journal::{JournalOptions, JournalWriter, RequestKind};

    fn out(seq: u64) -> JournalRecord {
        JournalRecord {
            seq,
            kind: RequestKind::Out,
            status: 0,
            submit_ns: 1,
            complete_ns: 2,
            sector: 8 * seq,
            sectors: 8,
            segments: vec![],
            hashes: vec![],
            data: Some(vec![seq as u8; 4096]),
        }
    }

    /// A damaged journal record used to fail the whole analysis (the run became untestable,
    /// its verdict lost); now the good records are judged and a note says what was skipped.
    #[test]
    fn a_damaged_journal_record_costs_a_note_not_the_verdict() {
        let dir = std::env::temp_dir().join(format!("pinvm-analyze-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("journal");
        let opts = JournalOptions {
            record_data: true,
            record_reads: false,
        };
        let mut w = JournalWriter::create(&path, opts).unwrap();
        for seq in 1..=3 {
            w.write(&out(seq)).unwrap();
        }
        drop(w);
        let mut b = std::fs::read(&path).unwrap();
        // The second record's segment count overruns its body.
        let second = 16 + 4 + u32::from_le_bytes(b[16..20].try_into().unwrap()) as usize;
        b[second + 4 + 48..second + 4 + 52].copy_from_slice(&1000u32.to_le_bytes());
        std::fs::write(&path, &b).unwrap();
        let mut notes = Vec::new();
        let got = journal_records(Journal::open(&path).unwrap(), &mut notes).unwrap();
        let seqs: Vec<u64> = got.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 3]);
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].starts_with("the block journal has 1 damaged records"),
            "{notes:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

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
