//! DMA log: one fixed-size binary record per DMA write the dmapin device performed, written by
//! `devices::dmapin` and read by the oracle and `pinvm dma show`. Specified in
//! docs/dma-log-format.md (version [`VERSION`]); summary:
//!
//! ```text
//! header : magic "PINVMDLG" | u16 version=1 | u16 flags=0 | u32 record_len=64
//! record : u64 time_ns | u32 region | u32 page | u64 file_offset | u64 generation | u64 gpa
//!          | u32 bytes | u8 trigger | u8 0 | u16 page_offset | u64 block_seq | u64 0
//! ```
//!
//! Little endian. `time_ns` is CLOCK_MONOTONIC, the block journal's clock, taken just before
//! the write, so the two logs merge by time. A reader stops cleanly at a truncated last record
//! (a crash mid-append).

mod codec;
mod reader;
mod render;
mod writer;

pub use reader::{DmaLog, DmaLogError, DmaRecords};
pub use render::render_file;
pub use writer::DmaLogWriter;

/// File magic.
pub const MAGIC: [u8; 8] = *b"PINVMDLG";
/// Format version, checked by [`DmaLog::open`].
pub const VERSION: u16 = 1;
/// Header length.
pub const HEADER_LEN: usize = 16;
/// Record length (also in the header, and checked by [`DmaLog::open`]).
pub const RECORD_LEN: usize = 64;

/// What caused a DMA write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A Burst schedule.
    Burst,
    /// A Rate schedule.
    Rate,
    /// Injected from the block observer while OUT request `seq` was being copied.
    Writeback {
        /// The journal sequence number of the block request.
        seq: u64,
    },
    /// A trigger code this reader does not know.
    Unknown(u8),
}

impl Trigger {
    /// The record's trigger code.
    pub fn code(self) -> u8 {
        match self {
            Trigger::Burst => 1,
            Trigger::Rate => 2,
            Trigger::Writeback { .. } => 3,
            Trigger::Unknown(c) => c,
        }
    }

    /// The record's `block_seq` field (0 unless a writeback injection).
    fn block_seq(self) -> u64 {
        match self {
            Trigger::Writeback { seq } => seq,
            _ => 0,
        }
    }

    fn from_parts(code: u8, seq: u64) -> Trigger {
        match code {
            1 => Trigger::Burst,
            2 => Trigger::Rate,
            3 => Trigger::Writeback { seq },
            c => Trigger::Unknown(c),
        }
    }
}

/// One DMA write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaRecord {
    /// CLOCK_MONOTONIC ns, just before the write.
    pub time_ns: u64,
    /// Region id.
    pub region: u32,
    /// Page index in the region's posting order.
    pub page: u32,
    /// File offset of the page (from the driver's header).
    pub file_offset: u64,
    /// Generation written.
    pub generation: u64,
    /// Guest-physical address of the first byte written.
    pub gpa: u64,
    /// Bytes written (4096 for a whole page, 2048 for each half of a writeback injection).
    pub bytes: u32,
    /// Offset of `gpa` within the page.
    pub page_offset: u16,
    /// What caused the write.
    pub trigger: Trigger,
}

impl DmaRecord {
    /// The record's 64 bytes.
    pub fn to_bytes(&self) -> [u8; RECORD_LEN] {
        codec::encode(self)
    }

    /// The record in `b`.
    pub fn from_bytes(b: &[u8; RECORD_LEN]) -> DmaRecord {
        codec::decode(b)
    }
}

#[cfg(test)]
mod tests;
