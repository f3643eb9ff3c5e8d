//! acked_not_persisted: the guest's fsync of the pinned file succeeded, and the disk FLUSH the
//! host completed during it came after the device had written a generation of a pinned page,
//! but no write of that generation (or a newer one) had reached the disk before the FLUSH.
//! The guest was told the data is durable while it was not: a crash right after the fsync
//! would lose it (John Hubbard's prediction for writeback that skips pinned pages). Whether
//! the data reached the disk later is said in the evidence; the final image is judged by
//! lost_write.
//!
//! Not judged here: a generation the device wrote while a block write of its page was being
//! copied (a block write mixing it with an older one counts as that generation reaching the
//! disk; the mix is torn_block's), and pages in a range the workload discarded (a `punch`,
//! `truncate` or direct `pwrite` after the first pin: expected losses, noted by lost_write).

use super::discarded_ranges;
use crate::inputs::{Inputs, TimedStep, PAGE};
use crate::verdict::{Evidence, Verdict, VerdictKind};
use proto::journal::{JournalRecord, RequestKind};
use proto::stamp::dma::{classify_block, BlockClass};
use std::collections::{BTreeMap, HashSet};

/// A step that claims durability of the pinned file, with the time the step started (the
/// previous report's arrival: the agent runs its steps one after the other) and ended.
struct Claim<'a> {
    step: &'a TimedStep,
    start_ns: u64,
}

/// The durability claims of the workload: successful `fsync`/`fdatasync` of a file a pinned
/// mapping maps, `msync` of a pinned mapping, `syncfs` and `sync`.
fn claims<'a>(steps: &'a [TimedStep]) -> Vec<Claim<'a>> {
    let mut mapped: BTreeMap<&str, &str> = BTreeMap::new();
    let mut pinned: HashSet<&str> = HashSet::new();
    for s in steps.iter().filter(|s| s.ok()) {
        let w: Vec<&str> = s.line.split_whitespace().collect();
        match w.as_slice() {
            ["mmap", name, path, _] => {
                mapped.insert(name, path);
            }
            ["pin", _, name, ..] => {
                pinned.insert(name);
            }
            _ => {}
        }
    }
    let files: HashSet<&str> = pinned
        .iter()
        .filter_map(|n| mapped.get(n).copied())
        .collect();
    let mut out = Vec::new();
    let mut prev_ns = None;
    for s in steps {
        let w: Vec<&str> = s.line.split_whitespace().collect();
        let claim = match w.as_slice() {
            ["fsync" | "fdatasync", path] => files.contains(path),
            ["msync", name] => pinned.contains(name),
            ["syncfs", _] | ["sync"] => true,
            _ => false,
        };
        if let (true, true, Some(start_ns)) = (claim, s.ok(), prev_ns) {
            out.push(Claim { step: s, start_ns });
        }
        prev_ns = Some(s.time_ns);
    }
    out
}

/// A device page: (region, page index).
type DevicePage = (u32, u32);

/// A block write that put one whole generation of a device page on the disk.
struct DiskWrite {
    generation: u64,
    complete_ns: u64,
    seq: u64,
}

/// The device's latest write of a page before some moment.
struct DeviceWrite {
    generation: u64,
    file_offset: u64,
    time_ns: u64,
}

/// Every 4 KiB block of a successful write that holds a generation of a device page, by page:
/// a block mixing generations counts for the newest of them.
fn persisted(journal: &[JournalRecord]) -> BTreeMap<DevicePage, Vec<DiskWrite>> {
    let mut out: BTreeMap<DevicePage, Vec<DiskWrite>> = BTreeMap::new();
    for r in journal
        .iter()
        .filter(|r| r.kind == RequestKind::Out && r.status == 0)
    {
        let Some(d) = &r.data else { continue };
        for b in d.chunks_exact(PAGE as usize) {
            let block = b.try_into().expect("4 KiB chunk");
            let (region, page, generation) = match classify_block(block) {
                BlockClass::Uniform {
                    region,
                    page,
                    generation,
                } => (region, page, generation),
                BlockClass::Mixed {
                    region,
                    page,
                    generations,
                } => (region, page, generations.into_iter().max().unwrap_or(0)),
                BlockClass::Foreign => continue,
            };
            out.entry((region, page)).or_default().push(DiskWrite {
                generation,
                complete_ns: r.complete_ns,
                seq: r.seq,
            });
        }
    }
    out
}

/// The latest generation the device had written into each page before `t` ns.
fn written_before(inputs: &Inputs, t: u64) -> BTreeMap<DevicePage, DeviceWrite> {
    let mut out: BTreeMap<DevicePage, DeviceWrite> = BTreeMap::new();
    for r in inputs.dma.iter().filter(|r| r.time_ns < t) {
        let w = DeviceWrite {
            generation: r.generation,
            file_offset: r.file_offset,
            time_ns: r.time_ns,
        };
        match out.get(&(r.region, r.page)) {
            Some(e) if (e.generation, e.time_ns) > (w.generation, w.time_ns) => {}
            _ => {
                out.insert((r.region, r.page), w);
            }
        }
    }
    out
}

/// The last successful FLUSH that completed within (start, end] ns.
fn flush_within(journal: &[JournalRecord], start: u64, end: u64) -> Option<&JournalRecord> {
    journal
        .iter()
        .filter(|r| r.kind == RequestKind::Flush && r.status == 0)
        .filter(|r| r.complete_ns > start && r.complete_ns <= end)
        .max_by_key(|r| r.complete_ns)
}

/// acked_not_persisted, one case per (claim, page), or None.
pub fn check(inputs: &Inputs) -> Option<Verdict> {
    let on_disk = persisted(&inputs.journal);
    let discarded = discarded_ranges(inputs);
    let mut cases = Vec::new();
    for c in claims(&inputs.steps) {
        let Some(flush) = flush_within(&inputs.journal, c.start_ns, c.step.time_ns) else {
            continue;
        };
        for ((region, page), dev) in written_before(inputs, c.start_ns) {
            let off = dev.file_offset;
            if discarded.iter().any(|(a, b, _)| (*a..*b).contains(&off)) {
                continue;
            }
            let writes = on_disk
                .get(&(region, page))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let mut newer = writes.iter().filter(|w| w.generation >= dev.generation);
            if newer.clone().any(|w| w.complete_ns <= flush.complete_ns) {
                continue;
            }
            let later = newer
                .by_ref()
                .min_by_key(|w| w.complete_ns)
                .map(|w| {
                    format!(
                        "it reached the disk only later (write seq {} at {} ns)",
                        w.seq, w.complete_ns
                    )
                })
                .unwrap_or_else(|| "no write of it ever reached the disk".into());
            cases.push(Evidence {
                text: format!(
                    "`{}` (step {}) returned 0 at {} ns after FLUSH seq {} completed at {} ns, \
                     but region {region} page {page} (file offset {}) generation {}, written \
                     by the device at {} ns, was not on the disk: {later}",
                    c.step.line,
                    c.step.report.index(),
                    c.step.time_ns,
                    flush.seq,
                    flush.complete_ns,
                    dev.file_offset,
                    dev.generation,
                    dev.time_ns,
                ),
                region: Some(region),
                page: Some(page),
                file_offset: Some(dev.file_offset),
                generations: vec![dev.generation],
                journal_seq: Some(flush.seq),
                times_ns: vec![dev.time_ns, flush.complete_ns, c.step.time_ns],
                ..Evidence::default()
            });
        }
    }
    Verdict::from_cases(
        VerdictKind::AckedNotPersisted,
        "page acknowledged durable but not on disk",
        cases,
    )
}
