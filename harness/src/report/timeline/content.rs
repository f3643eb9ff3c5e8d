//! What one block of a journaled write carried, read from the write's recorded data: a DMA
//! generation of a pinned page (whole or torn), the file's own stamped content from before
//! the DMA, zeros, or something else. The request's data is the guest's: every field read
//! from it is bounded by the stamp decoders.

use proto::journal::{JournalRecord, RequestKind, HASH_BLOCK};
use proto::stamp::dma::{classify_block, BlockClass, PAGE};
use proto::stamp::file;

/// The content of one 4 KiB block of a block write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// Sectors 0..7 of one page stamped by the DMA device; `generations[i]` is sector i's.
    Dma {
        /// dmapin region id.
        region: u32,
        /// Page index in the region.
        page: u32,
        /// Generation of each sector (all equal unless the block is torn).
        generations: [u64; 8],
    },
    /// The file's stamp pattern (`stamp:<tag>` of the workload) at this file offset: what the
    /// file held before the device wrote.
    File {
        /// The stamp's tag.
        tag: String,
        /// The file offset the first sector names.
        offset: u64,
    },
    /// All zero bytes.
    Zeros,
    /// Anything else (metadata, another file, a partial block).
    Other,
    /// The journal kept no data for this request (hashes only).
    Unknown,
}

impl Content {
    /// Whether the block mixes DMA generations (a torn block).
    pub fn torn(&self) -> bool {
        match self {
            Content::Dma { generations, .. } => generations.iter().any(|&g| g != generations[0]),
            _ => false,
        }
    }

    /// One line for people: "generation 3", "TORN: sectors 0-3 gen 1, 4-7 gen 2", ...
    pub fn label(&self) -> String {
        match self {
            Content::Dma { generations, .. } if self.torn() => {
                format!("TORN: {}", sector_runs(generations))
            }
            Content::Dma { generations, .. } => format!("generation {}", generations[0]),
            Content::File { tag, offset } => {
                format!("file content '{tag}' of offset {offset} (from before the DMA)")
            }
            Content::Zeros => "zeros".into(),
            Content::Other => "other data (not a stamped page)".into(),
            Content::Unknown => "content not recorded (journal without data)".into(),
        }
    }
}

/// "sectors 0-3 generation 1, 4-7 generation 2".
fn sector_runs(g: &[u64; 8]) -> String {
    let mut runs: Vec<String> = Vec::new();
    let mut start = 0;
    for i in 1..=8 {
        if i == 8 || g[i] != g[start] {
            let range = if i - 1 == start {
                format!("{start}")
            } else {
                format!("{start}-{}", i - 1)
            };
            runs.push(format!("{range} generation {}", g[start]));
            start = i;
        }
    }
    format!("sectors {}", runs.join(", "))
}

/// Classify one block of a request's data (`block` is at most 4096 bytes).
pub fn classify(block: &[u8]) -> Content {
    if let Ok(whole) = <&[u8; PAGE]>::try_from(block) {
        match classify_block(whole) {
            BlockClass::Uniform {
                region,
                page,
                generation,
            } => {
                return Content::Dma {
                    region,
                    page,
                    generations: [generation; 8],
                }
            }
            BlockClass::Mixed {
                region,
                page,
                generations,
            } => {
                return Content::Dma {
                    region,
                    page,
                    generations,
                }
            }
            BlockClass::Foreign => {}
        }
    }
    if let Some((tag, offset)) = block.get(..file::SECTOR).and_then(file::decode) {
        return Content::File {
            tag: tag.to_string(),
            offset,
        };
    }
    if block.iter().all(|&b| b == 0) {
        return Content::Zeros;
    }
    Content::Other
}

/// One block of a write: where it starts on the disk and what it carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// First 512-byte sector of the block.
    pub sector: u64,
    /// What it carried.
    pub content: Content,
}

/// A journaled request, reduced to what the timeline shows (its data replaced by the content
/// of each block).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Journal sequence number.
    pub seq: u64,
    /// Request type.
    pub kind: RequestKind,
    /// Status returned to the guest.
    pub status: u8,
    /// When the device took it (CLOCK_MONOTONIC ns).
    pub submit_ns: u64,
    /// When it completed.
    pub complete_ns: u64,
    /// First sector.
    pub sector: u64,
    /// Sectors.
    pub sectors: u64,
    /// Each 4 KiB block (OUT requests).
    pub blocks: Vec<Block>,
}

impl Request {
    /// The request `r`, its data classified block by block (blocks follow the hashes, so a
    /// request that failed part-way has only the blocks it copied).
    pub fn from_record(r: &JournalRecord) -> Request {
        let blocks = match (&r.data, r.kind) {
            (_, k) if k != RequestKind::Out => vec![],
            (Some(data), _) => data
                .chunks(HASH_BLOCK as usize)
                .zip(r.hashes.iter())
                .map(|(b, h)| Block {
                    sector: h.sector,
                    content: classify(b),
                })
                .collect(),
            (None, _) => r
                .hashes
                .iter()
                .map(|h| Block {
                    sector: h.sector,
                    content: Content::Unknown,
                })
                .collect(),
        };
        Request {
            seq: r.seq,
            kind: r.kind,
            status: r.status,
            submit_ns: r.submit_ns,
            complete_ns: r.complete_ns,
            sector: r.sector,
            sectors: r.sectors,
            blocks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::stamp::dma::{encode, encode_page};

    #[test]
    fn blocks_are_classified() {
        let c = classify(&encode_page(1, 2, 3, 99));
        assert_eq!(
            c,
            Content::Dma {
                region: 1,
                page: 2,
                generations: [3; 8]
            }
        );
        assert!(!c.torn());
        assert_eq!(c.label(), "generation 3");
        let mut torn = encode_page(1, 2, 1, 5).to_vec();
        for s in 4..8 {
            torn[s * 512..(s + 1) * 512].copy_from_slice(&encode(1, 2, s as u32, 2, 6));
        }
        let t = classify(&torn);
        assert!(t.torn());
        assert_eq!(
            t.label(),
            "TORN: sectors 0-3 generation 1, 4-7 generation 2"
        );
        let mut f = vec![0u8; 4096];
        file::fill("file", 8192, &mut f);
        assert_eq!(
            classify(&f),
            Content::File {
                tag: "file".into(),
                offset: 8192
            }
        );
        assert_eq!(classify(&[0u8; 4096]), Content::Zeros);
        assert_eq!(classify(&[7u8; 4096]), Content::Other);
        assert_eq!(classify(&[7u8; 1024]), Content::Other);
    }
}
