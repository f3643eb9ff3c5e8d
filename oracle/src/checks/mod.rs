//! The checks, one module per source of evidence.

pub mod acked;
pub mod disk;
pub mod guest;
pub mod kernel;
pub mod unstable;

use crate::inputs::{Inputs, TimedStep};
use proto::dma_log::DmaRecord;
use std::collections::BTreeMap;

/// The last DMA write of each file page: keyed by file offset, the record with the latest
/// time (a page may belong to several regions; what counts is the last write into it).
pub fn last_writes(dma: &[DmaRecord], until_ns: Option<u64>) -> BTreeMap<u64, DmaRecord> {
    let mut last: BTreeMap<u64, DmaRecord> = BTreeMap::new();
    for r in dma {
        if until_ns.is_some_and(|t| r.time_ns > t) {
            continue;
        }
        let e = last.entry(r.file_offset).or_insert(*r);
        if (r.time_ns, r.generation) >= (e.time_ns, e.generation) {
            *e = *r;
        }
    }
    last
}

/// The moment of the final release: the report of the last successful `release` step. DMA
/// after it is not expected on disk. None when no region was released by a step.
pub fn final_release_ns(steps: &[TimedStep]) -> Option<u64> {
    steps
        .iter()
        .filter(|s| s.ok() && s.op() == "release")
        .map(|s| s.time_ns)
        .max()
}

/// Ranges of the file the workload itself discarded or overwrote while pages were pinned
/// (`punch`, `truncate`, `pwrite ... direct` after the first `pin`): the device's data there
/// is not expected on disk (research notes S10).
pub fn discarded_ranges(inputs: &Inputs) -> Vec<(u64, u64, String)> {
    let mut out = Vec::new();
    let mut pinned = false;
    for s in inputs.steps.iter().filter(|s| s.ok()) {
        let w: Vec<&str> = s.line.split_whitespace().collect();
        match w.as_slice() {
            ["pin", ..] => pinned = true,
            ["punch", _, off, len] if pinned => {
                if let (Some(o), Some(l)) = (size(off), size(len)) {
                    out.push((o, o + l, s.line.clone()));
                }
            }
            ["truncate", _, sz] if pinned => {
                if let Some(o) = size(sz) {
                    out.push((o, u64::MAX, s.line.clone()));
                }
            }
            ["pwrite", _, off, sz, _, "direct"] if pinned => {
                if let (Some(o), Some(l)) = (size(off), size(sz)) {
                    out.push((o, o + l, s.line.clone()));
                }
            }
            _ => {}
        }
    }
    out
}

/// A SIZE as the agent's steps write it: decimal with an optional K, M or G.
pub fn size(s: &str) -> Option<u64> {
    let (num, mul) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 1 << 10),
        b'M' => (&s[..s.len() - 1], 1 << 20),
        b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mul)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(size("4K"), Some(4096));
        assert_eq!(size("12"), Some(12));
        assert_eq!(size("2M"), Some(2 << 20));
        assert_eq!(size("x"), None);
        assert_eq!(size(""), None);
    }
}
