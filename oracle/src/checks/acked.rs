//! acked_not_persisted: the guest's fsync of the pinned file succeeded, and the disk FLUSH the
//! host completed during it came after the device had written a generation of a pinned page,
//! but no write of that generation (or a newer one) had reached the disk before the FLUSH.
//! The guest was told the data is durable while it was not: a crash right after the fsync
//! would lose it (John Hubbard's prediction for writeback that skips pinned pages). Whether
//! the data reached the disk later is said in the evidence; the final image is judged by
//! lost_write.

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
    let files: HashSet<&str> = pinned.iter().filter_map(|n| mapped.get(n).copied()).collect();
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

/// Every 4 KiB block of a successful write that holds one whole generation of a device page:
/// (region, page) → [(generation, completion time, journal seq)].
fn persisted(journal: &[JournalRecord]) -> BTreeMap<(u32, u32), Vec<(u64, u64, u64)>> {
    let mut out: BTreeMap<(u32, u32), Vec<(u64, u64, u64)>> = BTreeMap::new();
    for r in journal
        .iter()
        .filter(|r| r.kind == RequestKind::Out && r.status == 0)
    {
        let Some(d) = &r.data else { continue };
        for b in d.chunks_exact(PAGE as usize) {
            let block = b.try_into().expect("4 KiB chunk");
            if let BlockClass::Uniform {
                region,
                page,
                generation,
            } = classify_block(block)
            {
                out.entry((region, page))
                    .or_default()
                    .push((generation, r.complete_ns, r.seq));
            }
        }
    }
    out
}

/// The latest generation the device had written into each (region, page) before `t` ns,
/// with the file offset and the time of that write.
fn written_before(inputs: &Inputs, t: u64) -> BTreeMap<(u32, u32), (u64, u64, u64)> {
    let mut out: BTreeMap<(u32, u32), (u64, u64, u64)> = BTreeMap::new();
    for r in inputs.dma.iter().filter(|r| r.time_ns < t) {
        let e = out
            .entry((r.region, r.page))
            .or_insert((r.generation, r.file_offset, r.time_ns));
        if (r.generation, r.time_ns) >= (e.0, e.2) {
            *e = (r.generation, r.file_offset, r.time_ns);
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
    let mut cases = Vec::new();
    for c in claims(&inputs.steps) {
        let Some(flush) = flush_within(&inputs.journal, c.start_ns, c.step.time_ns) else {
            continue;
        };
        for ((region, page), (generation, file_offset, dma_ns)) in
            written_before(inputs, c.start_ns)
        {
            let writes = on_disk.get(&(region, page)).map(Vec::as_slice).unwrap_or(&[]);
            let newer = |w: &&(u64, u64, u64)| w.0 >= generation;
            if writes
                .iter()
                .filter(newer)
                .any(|w| w.1 <= flush.complete_ns)
            {
                continue;
            }
            let later = writes
                .iter()
                .filter(newer)
                .min_by_key(|w| w.1)
                .map(|w| format!("it reached the disk only later (write seq {} at {} ns)", w.2, w.1))
                .unwrap_or_else(|| "no write of it ever reached the disk".into());
            cases.push(Evidence {
                text: format!(
                    "`{}` (step {}) returned 0 at {} ns after FLUSH seq {} completed at {} ns, \
                     but region {region} page {page} (file offset {file_offset}) generation \
                     {generation}, written by the device at {dma_ns} ns, was not on the disk: {later}",
                    c.step.line,
                    c.step.report.index(),
                    c.step.time_ns,
                    flush.seq,
                    flush.complete_ns
                ),
                region: Some(region),
                page: Some(page),
                file_offset: Some(file_offset),
                generations: vec![generation],
                journal_seq: Some(flush.seq),
                times_ns: vec![dma_ns, flush.complete_ns, c.step.time_ns],
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
