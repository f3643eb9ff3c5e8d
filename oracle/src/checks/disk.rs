//! What reached the disk: torn blocks (in the journal's writes and on the final image), stale
//! blocks (a write going back to older data) and lost writes (the final image lacks the
//! device's last generation of a page).

use super::{discarded_ranges, final_release_ns, last_writes};
use crate::inputs::{Inputs, PAGE};
use crate::verdict::{Evidence, Verdict, VerdictKind};
use proto::dma_log::DmaRecord;
use proto::journal::RequestKind;
use proto::stamp::dma::{classify_block, BlockClass};
use proto::stamp::file as file_stamp;
use std::collections::HashMap;

const SECTOR: u64 = 512;

/// Every 4 KiB block of every OUT request with data: (journal seq, first sector, the block).
fn written_blocks<'a>(inputs: &'a Inputs) -> impl Iterator<Item = (u64, u64, u64, &'a [u8])> {
    inputs
        .journal
        .iter()
        .filter(|r| r.kind == RequestKind::Out && r.status == 0)
        .filter_map(|r| r.data.as_deref().map(|d| (r, d)))
        .flat_map(|(r, d)| {
            d.chunks_exact(PAGE as usize)
                .enumerate()
                .map(move |(i, b)| (r.seq, r.sector + i as u64 * 8, r.complete_ns, b))
        })
}

fn block(b: &[u8]) -> BlockClass {
    classify_block(b.try_into().expect("4 KiB chunk"))
}

/// When the device wrote generation `g` of (region, page), from the DMA log.
fn dma_times(dma: &[DmaRecord]) -> HashMap<(u32, u32, u64), u64> {
    let mut t = HashMap::new();
    for r in dma {
        t.entry((r.region, r.page, r.generation))
            .and_modify(|x: &mut u64| *x = (*x).min(r.time_ns))
            .or_insert(r.time_ns);
    }
    t
}

/// File offset of each (region, page), from the DMA log (the driver's header for the page).
fn page_offsets(dma: &[DmaRecord]) -> HashMap<(u32, u32), u64> {
    dma.iter()
        .map(|r| ((r.region, r.page), r.file_offset))
        .collect()
}

/// torn_block: a 4 KiB block mixing generations of one page, in a write the host saw or on
/// the final image.
pub fn torn(inputs: &Inputs) -> Option<Verdict> {
    let offsets = page_offsets(&inputs.dma);
    let mut cases = Vec::new();
    for (seq, sector, done, b) in written_blocks(inputs) {
        if let BlockClass::Mixed {
            region,
            page,
            generations,
        } = block(b)
        {
            let healed = final_class(inputs, sector * SECTOR).map(|c| match c {
                BlockClass::Mixed { .. } => " (still torn on the final image)".to_string(),
                BlockClass::Uniform { generation, .. } => {
                    format!(" (the final image holds generation {generation} there)")
                }
                BlockClass::Foreign => " (the final image holds other data there)".into(),
            });
            cases.push(Evidence {
                text: format!(
                    "block write seq {seq} at sector {sector} holds region {region} page {page} \
                     with sector generations {generations:?}{}",
                    healed.unwrap_or_default()
                ),
                region: Some(region),
                page: Some(page),
                file_offset: offsets.get(&(region, page)).copied(),
                sector: Some(sector),
                sectors: Some(8),
                generations: generations.to_vec(),
                journal_seq: Some(seq),
                times_ns: vec![done],
                ..Evidence::default()
            });
        }
    }
    // Torn blocks on the final image that no journaled write explains (e.g. no journal data).
    // Only pages the device wrote can hold its stamps, so only their blocks are looked at:
    // the extents are the guest's word (a reported length may be anything), the DMA log is
    // bounded by what the device did.
    if let (Some(file), Some(_)) = (&inputs.file, inputs.image) {
        let seen: std::collections::HashSet<u64> = cases.iter().filter_map(|e| e.sector).collect();
        let mut dma_offsets: Vec<u64> = offsets.values().map(|o| o - o % PAGE).collect();
        dma_offsets.sort_unstable();
        dma_offsets.dedup();
        for file_off in dma_offsets {
            let Some(dev) = file.device_of(file_off) else {
                continue;
            };
            if seen.contains(&(dev / SECTOR)) {
                continue;
            }
            if let Some(BlockClass::Mixed {
                region,
                page,
                generations,
            }) = final_class(inputs, dev)
            {
                cases.push(Evidence {
                    text: format!(
                        "the final image at file offset {} (sector {}) holds region {region} \
                             page {page} with sector generations {generations:?}",
                        file_off,
                        dev / SECTOR
                    ),
                    region: Some(region),
                    page: Some(page),
                    file_offset: Some(file_off),
                    sector: Some(dev / SECTOR),
                    sectors: Some(8),
                    generations: generations.to_vec(),
                    ..Evidence::default()
                });
            }
        }
    }
    Verdict::from_cases(VerdictKind::TornBlock, "torn block", cases)
}

/// What the final image holds at disk byte offset `dev`.
fn final_class(inputs: &Inputs, dev: u64) -> Option<BlockClass> {
    let img = inputs.image?;
    let mut b = [0u8; PAGE as usize];
    img.read_at(dev, &mut b).ok()?;
    Some(classify_block(&b))
}

/// stale_block: a write that puts older device data over newer device data already written
/// to the same disk block.
pub fn stale(inputs: &Inputs) -> Option<Verdict> {
    let times = dma_times(&inputs.dma);
    let offsets = page_offsets(&inputs.dma);
    // disk block → (seq, region, page, generation, DMA time) of the newest data written there.
    let mut newest: HashMap<u64, (u64, u32, u32, u64, u64)> = HashMap::new();
    let mut cases = Vec::new();
    for (seq, sector, done, b) in written_blocks(inputs) {
        let BlockClass::Uniform {
            region,
            page,
            generation,
        } = block(b)
        else {
            continue;
        };
        let Some(&t) = times.get(&(region, page, generation)) else {
            continue;
        };
        match newest.get(&sector) {
            Some(&(pseq, pr, pp, pg, pt)) if pt > t => cases.push(Evidence {
                text: format!(
                    "block write seq {seq} at sector {sector} put region {region} page {page} \
                     generation {generation} over region {pr} page {pp} generation {pg}, \
                     written by seq {pseq} and newer"
                ),
                region: Some(region),
                page: Some(page),
                file_offset: offsets.get(&(region, page)).copied(),
                sector: Some(sector),
                sectors: Some(8),
                generations: vec![generation, pg],
                journal_seq: Some(seq),
                times_ns: vec![done],
                ..Evidence::default()
            }),
            _ => {
                newest.insert(sector, (seq, region, page, generation, t));
            }
        }
    }
    Verdict::from_cases(VerdictKind::StaleBlock, "stale block write", cases)
}

/// lost_write: for every page the device wrote before the final release, the final image must
/// hold that last write's generation at the page's place in the file. Pages the workload
/// itself discarded (punch, truncate, O_DIRECT overwrite) are noted, not judged.
pub fn lost(inputs: &Inputs, notes: &mut Vec<String>, checked: &mut usize) -> Option<Verdict> {
    if inputs.dma.is_empty() {
        return None;
    }
    let (Some(file), Some(_)) = (&inputs.file, inputs.image) else {
        notes.push(
            "lost_write not judged: no file extents (a `fiemap` step) or no final image".into(),
        );
        return None;
    };
    let until = final_release_ns(&inputs.steps);
    let last = last_writes(&inputs.dma, until);
    let discarded = discarded_ranges(inputs);
    let times = dma_times(&inputs.dma);
    let acked = acked_syncs(inputs, until);
    let unmapped = file.unmapped_ranges();
    let mut not_placed = 0u64;
    let mut cases = Vec::new();
    for (&off, want) in &last {
        if let Some((_, _, line)) = discarded.iter().find(|(a, b, _)| off >= *a && off < *b) {
            notes.push(format!(
                "file offset {off}: the device's generation {} of region {} page {} is not \
                 expected on disk: the workload discarded that range ({line})",
                want.generation, want.region, want.page
            ));
            continue;
        }
        if unmapped.contains(off) {
            not_placed += 1;
            continue;
        }
        *checked += 1;
        let mut ev = Evidence {
            region: Some(want.region),
            page: Some(want.page),
            file_offset: Some(off),
            times_ns: vec![want.time_ns],
            ..Evidence::default()
        };
        let Some(dev) = file.device_of(off) else {
            ev.text = format!(
                "file offset {off} (region {} page {}): the file has no block there on disk \
                 (a hole); the device's last generation {} is lost{acked}",
                want.region, want.page, want.generation
            );
            ev.generations = vec![want.generation];
            cases.push(ev);
            continue;
        };
        ev.sector = Some(dev / SECTOR);
        ev.sectors = Some(8);
        let found = final_class(inputs, dev).unwrap_or(BlockClass::Foreign);
        let on_disk = match found {
            BlockClass::Uniform {
                region,
                page,
                generation,
            } if (region, page, generation) == (want.region, want.page, want.generation) => {
                continue;
            }
            BlockClass::Uniform {
                region,
                page,
                generation,
            } => {
                let when = times.get(&(region, page, generation)).copied();
                if when.is_some_and(|t| t >= want.time_ns) {
                    continue; // newer data than the cut-off (DMA after the release)
                }
                ev.generations = vec![generation, want.generation];
                format!("generation {generation} of region {region} page {page}")
            }
            BlockClass::Mixed {
                region,
                page,
                generations,
            } => {
                if region == want.region
                    && page == want.page
                    && generations.iter().all(|&g| g >= want.generation)
                {
                    continue;
                }
                ev.generations = generations.to_vec();
                format!("a torn mix of region {region} page {page} generations {generations:?}")
            }
            BlockClass::Foreign => {
                let mut b = [0u8; PAGE as usize];
                let stamp = inputs
                    .image
                    .and_then(|i| i.read_at(dev, &mut b).ok())
                    .and_then(|_| file_stamp::decode(&b[..512]));
                ev.generations = vec![want.generation];
                match stamp {
                    Some((tag, pos)) => format!(
                        "the file's content from before the DMA (stamp '{tag}' of offset {pos})"
                    ),
                    None => "data that is not the device's".into(),
                }
            }
        };
        ev.text = format!(
            "file offset {off} (sector {}): the disk holds {on_disk}, not the device's last \
             generation {} of region {} page {}{acked}",
            dev / SECTOR,
            want.generation,
            want.region,
            want.page
        );
        cases.push(ev);
    }
    if not_placed > 0 {
        notes.push(format!(
            "lost_write: {not_placed} pages the device wrote are not judged: their extents were \
             not placed on the disk image (see the analysis note on the file's extents)"
        ));
    }
    Verdict::from_cases(VerdictKind::LostWrite, "lost page", cases)
}

/// ", although the guest's fsync (step 12) reported success" when a sync step after the
/// final release succeeded: the guest believed the data durable.
fn acked_syncs(inputs: &Inputs, after: Option<u64>) -> String {
    let syncs = [
        "fsync",
        "fdatasync",
        "msync",
        "syncfs",
        "sync",
        "sync_file_range",
    ];
    inputs
        .steps
        .iter()
        .rfind(|s| s.ok() && syncs.contains(&s.op()) && after.is_none_or(|t| s.time_ns >= t))
        .map(|s| {
            format!(
                ", although the guest's `{}` (step {}) reported success",
                s.line.trim(),
                s.report.index()
            )
        })
        .unwrap_or_default()
}
