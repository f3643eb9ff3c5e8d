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
use std::time::{Duration, Instant};

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
        Some(disk) => file_map(
            fs,
            steps,
            &report.steps,
            disk,
            &dma_offsets,
            MAP_BUDGET,
            &mut notes,
        )?,
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

/// What placing the file's extents on the final image may cost at most: on btrfs each one is
/// a `btrfs-map-logical` process, and the guest says how many extents there are. Past either
/// limit the remaining extents are left unplaced, with a note, and their pages are not judged.
#[derive(Clone, Copy, Debug)]
struct MapBudget {
    /// Extents placed at most.
    extents: usize,
    /// Time spent placing them at most.
    time: Duration,
}

/// The budget of a run's analysis: far above a scenario's file (a few hundred extents), and
/// about two minutes of `btrfs-map-logical`.
const MAP_BUDGET: MapBudget = MapBudget {
    extents: 65_536,
    time: Duration::from_secs(120),
};

/// The device-written file offsets, sorted and without repeats (each record's offset and its
/// page's start: the oracle asks about both).
fn written_offsets(dma_offsets: &[u64]) -> Vec<u64> {
    let mut v: Vec<u64> = dma_offsets
        .iter()
        .flat_map(|&o| [o, o - o % oracle::inputs::PAGE])
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Whether the device wrote into [logical, logical + length): a binary search in the sorted
/// `written` offsets (no arithmetic on the guest's numbers can overflow).
fn wrote_into(written: &[u64], logical: u64, length: u64) -> bool {
    let i = written.partition_point(|&o| o < logical);
    written.get(i).is_some_and(|&o| o - logical < length)
}

/// The target file's extents on `disk`, from the closing `fiemap` (the last step), if it ran.
/// Only extents the device wrote into are placed on the image (the oracle judges nothing
/// else), cheapest test first: on btrfs placing one runs a process. An extent the device
/// wrote into that the final image does not hold (the file moved after it was mapped) is an
/// error, since the oracle would judge the wrong blocks. Past `budget`, extents are left
/// unplaced with a note (their pages are not judged; the verdict stands on the rest).
fn file_map(
    fs: Fs,
    steps: &[String],
    reports: &[StepReport],
    disk: &Path,
    dma_offsets: &[u64],
    budget: MapBudget,
    notes: &mut Vec<String>,
) -> Result<Option<FileMap>> {
    let fiemap_index = steps.len() as u32;
    let fiemap_done = reports
        .iter()
        .any(|r| matches!(r, StepReport::Done { index, .. } if *index == fiemap_index));
    if !fiemap_done {
        return Ok(None);
    }
    let written = written_offsets(dma_offsets);
    let started = Instant::now();
    let mut extents = Vec::new();
    let mut unmapped = Vec::new();
    for r in reports {
        let StepReport::Extent {
            index,
            logical,
            physical,
            length,
            flags,
        } = r
        else {
            continue;
        };
        if *index != fiemap_index || !wrote_into(&written, *logical, *length) {
            continue;
        }
        if extents.len() >= budget.extents || started.elapsed() >= budget.time {
            unmapped.push((*logical, *length));
            continue;
        }
        let device = guest_images::disk::device_offset(fs, disk, *physical).with_context(|| {
            format!(
                "file offset {logical}: its FIEMAP extent (physical {physical:#x}) is not in \
                 the final disk image: the file was rewritten after the closing FIEMAP, so the \
                 extents do not describe what is on disk (journal and DMA log show the moves)"
            )
        })?;
        extents.push(FileExtent {
            logical: *logical,
            device,
            length: *length,
            flags: *flags,
        });
    }
    if !unmapped.is_empty() {
        notes.push(format!(
            "{} of the file's extents that the device wrote into were not placed on the disk \
             image: the analysis places at most {} extents in {} s ({} placed in {:.1} s); the \
             pages in them are not checked on disk",
            unmapped.len(),
            budget.extents,
            budget.time.as_secs(),
            extents.len(),
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(Some(FileMap { extents, unmapped }))
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

    fn extent(index: u32, logical: u64, length: u64) -> StepReport {
        StepReport::Extent {
            index,
            logical,
            physical: logical + (1 << 20),
            length,
            flags: 0,
        }
    }

    /// `n` one-page extents of the closing `fiemap` (step 2 of a two-line job), then its
    /// report.
    fn fiemap_reports(n: u64) -> (Vec<String>, Vec<StepReport>) {
        let steps = vec!["sync".to_string(), "fiemap /mnt/f".to_string()];
        let mut reports: Vec<StepReport> = (0..n).map(|i| extent(2, i * 4096, 4096)).collect();
        reports.push(StepReport::Done {
            index: 2,
            op: "fiemap".into(),
            detail: format!("extents={n}"),
        });
        (steps, reports)
    }

    /// On btrfs every extent placed costs a `btrfs-map-logical` process; extents the device
    /// never wrote into used to be placed all the same (one process each, and a note each
    /// when the image did not hold them). Now they are not looked at.
    #[test]
    fn extents_the_device_did_not_write_are_never_placed() {
        let dir = std::env::temp_dir().join(format!("pinvm-filemap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let disk = dir.join("not-btrfs.img");
        std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
        let (steps, reports) = fiemap_reports(2000);
        let mut notes = Vec::new();
        let t0 = Instant::now();
        let map = file_map(
            Fs::Btrfs,
            &steps,
            &reports,
            &disk,
            &[],
            MAP_BUDGET,
            &mut notes,
        )
        .unwrap()
        .unwrap();
        let took = t0.elapsed();
        assert!(map.extents.is_empty() && map.unmapped.is_empty());
        assert!(
            notes.is_empty(),
            "{} notes: {:?}",
            notes.len(),
            notes.first()
        );
        assert!(took < Duration::from_secs(1), "{took:?}");
        // One extent the device wrote into is placed, and this image cannot place it.
        let e = file_map(
            Fs::Btrfs,
            &steps,
            &reports,
            &disk,
            &[1999 * 4096 + 100],
            MAP_BUDGET,
            &mut notes,
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("file offset 8187904"), "{e:#}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// 200,000 extents and as many DMA offsets (unsorted, repeated): the written test used to
    /// compare every offset with every extent (4 * 10^10 steps); sorted offsets and a binary
    /// search take well under a second. Past the budget, extents are left unplaced with a
    /// note, and the map says which, so the oracle does not take them for holes.
    #[test]
    fn many_extents_are_placed_quickly_and_within_the_budget() {
        const N: u64 = 200_000;
        let (steps, reports) = fiemap_reports(N);
        // Every extent written into, from the last to the first, each twice; none past it.
        let dma: Vec<u64> = (0..N)
            .rev()
            .flat_map(|i| [i * 4096 + 512, i * 4096])
            .collect();
        let disk = Path::new("/dev/null");
        let mut notes = Vec::new();
        let t0 = Instant::now();
        let map = file_map(
            Fs::Ext4,
            &steps,
            &reports,
            disk,
            &dma,
            MAP_BUDGET,
            &mut notes,
        )
        .unwrap()
        .unwrap();
        let took = t0.elapsed();
        eprintln!("{N} extents, {} DMA offsets: {took:?}", dma.len());
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert_eq!(map.extents.len(), MAP_BUDGET.extents);
        assert_eq!(map.unmapped.len(), N as usize - MAP_BUDGET.extents);
        assert_eq!(map.unmapped[0], (MAP_BUDGET.extents as u64 * 4096, 4096));
        assert_eq!(notes.len(), 1);
        assert!(
            notes[0].starts_with(&format!(
                "{} of the file's extents that the device wrote into were not placed",
                N as usize - MAP_BUDGET.extents
            )),
            "{}",
            notes[0]
        );
        // A time budget spent: nothing placed, everything noted, still a map.
        let mut notes = Vec::new();
        let none = MapBudget {
            extents: usize::MAX,
            time: Duration::ZERO,
        };
        let map = file_map(Fs::Ext4, &steps, &reports, disk, &dma, none, &mut notes)
            .unwrap()
            .unwrap();
        assert_eq!((map.extents.len(), map.unmapped.len()), (0, N as usize));
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn the_written_test_is_exact_at_the_edges_and_never_overflows() {
        let w = written_offsets(&[8192 + 5, 4096, u64::MAX]);
        assert_eq!(w, [4096, 8192, 8192 + 5, u64::MAX - 4095, u64::MAX]);
        assert!(wrote_into(&w, 4096, 1));
        assert!(!wrote_into(&w, 4097, 4095));
        assert!(wrote_into(&w, 0, 4097));
        assert!(!wrote_into(&w, 0, 4096));
        assert!(!wrote_into(&w, 8192 + 6, 100));
        assert!(wrote_into(&w, u64::MAX, u64::MAX));
        assert!(wrote_into(&w, 0, u64::MAX));
        assert!(!wrote_into(&w, 0, 0));
        assert!(!wrote_into(&[], 0, u64::MAX));
    }

    /// Step numbers are the guest's: `step 0` used to underflow `index - 1` (a panic in a
    /// debug build, the wrong line in a release one); 0 and one past the job name no line.
    #[test]
    fn step_numbers_from_the_guest_that_name_no_line() {
        let steps = vec!["sync".to_string(), "fsync /mnt/f".to_string()];
        let done = |index| StepReport::Done {
            index,
            op: "sync".into(),
            detail: String::new(),
        };
        let report = RunReport {
            machine: "test".into(),
            end: machine::VmEnd::Reset,
            cmd_status: Some(0),
            agent_started: true,
            agent_errors: vec![],
            console: String::new(),
            console_line_ns: vec![],
            console_at_cmd_done: None,
            timings: machine::Timings::default(),
            vcpu_rips: vec![],
            notes: vec![],
            quirks: String::new(),
            cmdline: String::new(),
            steps: vec![
                done(0),
                done(1),
                extent(2, 0, 4096),
                done(2),
                done(3),
                done(u32::MAX),
            ],
            step_times: vec![Duration::ZERO; 6],
            step_ns: vec![10, 11, 12, 13, 14, 15],
            records: machine::RecordPaths::default(),
        };
        let got: Vec<(u32, String, u64)> = timed_steps(&steps, &report)
            .into_iter()
            .map(|t| (t.report.index(), t.line, t.time_ns))
            .collect();
        assert_eq!(
            got,
            [
                (0, String::new(), 10),
                (1, "sync".into(), 11),
                (2, "fsync /mnt/f".into(), 13),
                (3, String::new(), 14),
                (u32::MAX, String::new(), 15),
            ]
        );
        let w = with_blocked_step("timeout".into(), &steps, &report.steps);
        assert_eq!(w, "timeout", "the guest's step u32::MAX names no line");
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
