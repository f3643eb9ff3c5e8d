//! unstable_write: the device wrote into a page while a block write of that page was in
//! flight (between the request's arrival and its completion, the host copies guest memory
//! into the disk: anything the device writes meanwhile may or may not be in the copy).

use crate::inputs::Inputs;
use crate::verdict::{Evidence, Verdict, VerdictKind};
use proto::journal::RequestKind;

/// The unstable_write verdict: every DMA write that overlaps the guest pages of a block OUT
/// request and lands between its submission and its completion (journal times); None when
/// there is none.
pub fn check(inputs: &Inputs) -> Option<Verdict> {
    let outs: Vec<_> = inputs
        .journal
        .iter()
        .filter(|r| r.kind == RequestKind::Out)
        .collect();
    let mut cases = Vec::new();
    for d in &inputs.dma {
        let (a, b) = (d.gpa, d.gpa + u64::from(d.bytes));
        for r in &outs {
            if d.time_ns < r.submit_ns || d.time_ns > r.complete_ns {
                continue;
            }
            // Byte position of the overlap within the request, to name its sector.
            let mut pos = 0u64;
            let mut hit = None;
            for s in &r.segments {
                let (sa, sb) = (s.addr, s.addr + u64::from(s.len));
                if a < sb && sa < b {
                    hit = Some(pos + a.max(sa) - sa);
                    break;
                }
                pos += u64::from(s.len);
            }
            let Some(at) = hit else { continue };
            let sector = r.sector + at / 512;
            cases.push(Evidence {
                text: format!(
                    "DMA generation {} into region {} page {} (file offset {}, {} bytes at \
                     gpa {:#x}) landed {} µs after block write seq {} of sector {} arrived and \
                     {} µs before it completed",
                    d.generation,
                    d.region,
                    d.page,
                    d.file_offset,
                    d.bytes,
                    d.gpa,
                    (d.time_ns - r.submit_ns) / 1000,
                    r.seq,
                    sector,
                    (r.complete_ns - d.time_ns) / 1000
                ),
                region: Some(d.region),
                page: Some(d.page),
                file_offset: Some(d.file_offset),
                sector: Some(sector),
                sectors: Some(u64::from(d.bytes).div_ceil(512)),
                generations: vec![d.generation],
                journal_seq: Some(r.seq),
                times_ns: vec![r.submit_ns, d.time_ns, r.complete_ns],
                ..Evidence::default()
            });
        }
    }
    Verdict::from_cases(
        VerdictKind::UnstableWrite,
        "DMA write into a page under block write",
        cases,
    )
}
