//! Block write journal: a compact binary log of the requests the block device served, written
//! by `devices::block` and read by the oracle and `pinvm journal show`.
//! The format is specified in docs/journal-format.md (version [`VERSION`]); summary:
//!
//! ```text
//! header  : magic "PINVMJNL" | u16 version=1 | u16 flags | u32 hash_block=4096
//! record* : u32 body_len | body (body_len bytes)
//! body    : u64 seq | u32 type | u8 status | u8 rflags | u16 0 | u64 submit_ns | u64 complete_ns
//!           | u64 sector | u64 sectors | u32 nseg | nseg*(u64 gpa, u32 len)
//!           | u32 nhash | nhash*(u64 sector, u32 len, [u8;16] sha256[..16])
//!           | if rflags&1: u64 data_len | data
//! ```
//!
//! All integers little endian. Times are CLOCK_MONOTONIC nanoseconds (the clock of every
//! pinvm log, so logs can be merged). Hashes cover consecutive 4 KiB blocks of the request's
//! data buffer (the concatenation of its segments in chain order); block `k` starts at sector
//! `sector + 8k`, and the last block may be shorter (a multiple of 512 bytes).
//!
//! - [`JournalWriter`] writes a journal, [`Journal`] reads one back;
//! - [`render`] and [`render_file`] print records for people;
//! - the byte layout is in the private `codec` module.

mod codec;
mod reader;
mod render;
mod resync;
mod writer;

use std::io;

use sha2::{Digest, Sha256};

pub use reader::{Journal, Records};
pub use render::{render, render_file};
pub use writer::JournalWriter;

/// File magic.
pub const MAGIC: [u8; 8] = *b"PINVMJNL";
/// Format version written by this code, checked by [`Journal::open`].
pub const VERSION: u16 = 1;
/// Bytes of data per hash.
pub const HASH_BLOCK: u32 = 4096;
/// Bytes of SHA-256 kept per block.
pub const HASH_LEN: usize = 16;
/// Header flag: data of written blocks is recorded.
pub const FLAG_RECORD_DATA: u16 = 1;
/// Header flag: IN requests are recorded too.
pub const FLAG_RECORD_READS: u16 = 2;
/// Header size in bytes.
pub const HEADER_LEN: u64 = 16;

/// virtio-blk status codes (the status byte returned to the guest, recorded per request).
pub mod status {
    /// VIRTIO_BLK_S_OK.
    pub const OK: u8 = 0;
    /// VIRTIO_BLK_S_IOERR.
    pub const IOERR: u8 = 1;
    /// VIRTIO_BLK_S_UNSUPP.
    pub const UNSUPP: u8 = 2;
}

/// Request type from the virtio-blk header (the record's `type` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// VIRTIO_BLK_T_IN (0): disk → guest.
    In,
    /// VIRTIO_BLK_T_OUT (1): guest → disk.
    Out,
    /// VIRTIO_BLK_T_FLUSH (4).
    Flush,
    /// VIRTIO_BLK_T_GET_ID (8).
    GetId,
    /// Anything else (answered with UNSUPP).
    Other(u32),
}

impl RequestKind {
    /// The kind of type code `code`.
    pub fn from_code(code: u32) -> Self {
        match code {
            0 => Self::In,
            1 => Self::Out,
            4 => Self::Flush,
            8 => Self::GetId,
            c => Self::Other(c),
        }
    }

    /// The virtio-blk type code.
    pub fn code(self) -> u32 {
        match self {
            Self::In => 0,
            Self::Out => 1,
            Self::Flush => 4,
            Self::GetId => 8,
            Self::Other(c) => c,
        }
    }

    /// Short upper-case name, e.g. "OUT".
    pub fn name(self) -> String {
        match self {
            Self::In => "IN".into(),
            Self::Out => "OUT".into(),
            Self::Flush => "FLUSH".into(),
            Self::GetId => "GET_ID".into(),
            Self::Other(c) => format!("TYPE{c}"),
        }
    }
}

/// One guest buffer of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
}

/// What the journal records beyond the default (OUT and FLUSH with hashes only).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JournalOptions {
    /// Store the full data of each recorded request.
    pub record_data: bool,
    /// Also record IN requests.
    pub record_reads: bool,
}

impl JournalOptions {
    /// The header flags of these options.
    pub fn flags(self) -> u16 {
        let mut flags = 0;
        if self.record_data {
            flags |= FLAG_RECORD_DATA;
        }
        if self.record_reads {
            flags |= FLAG_RECORD_READS;
        }
        flags
    }

    /// The options header flags `flags` stand for.
    pub fn from_flags(flags: u16) -> Self {
        JournalOptions {
            record_data: flags & FLAG_RECORD_DATA != 0,
            record_reads: flags & FLAG_RECORD_READS != 0,
        }
    }
}

/// Truncated SHA-256 of one block.
pub fn block_hash(data: &[u8]) -> [u8; HASH_LEN] {
    let full = Sha256::digest(data);
    full[..HASH_LEN].try_into().expect("sha256 is 32 bytes")
}

/// Hash of one block of a request's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHash {
    /// Disk sector where this block starts.
    pub sector: u64,
    /// Block length in bytes (4096, or less for the last block).
    pub len: u32,
    /// [`block_hash`] of the block.
    pub hash: [u8; HASH_LEN],
}

/// One journaled request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalRecord {
    /// Per-device request sequence number (every parsed request gets one, journaled or not).
    pub seq: u64,
    /// The request type.
    pub kind: RequestKind,
    /// Status byte returned to the guest ([`status`]).
    pub status: u8,
    /// When the device took the request (CLOCK_MONOTONIC ns).
    pub submit_ns: u64,
    /// When the device completed it.
    pub complete_ns: u64,
    /// First sector (IN/OUT).
    pub sector: u64,
    /// Number of 512-byte sectors (IN/OUT), else 0.
    pub sectors: u64,
    /// The data buffers in chain order.
    pub segments: Vec<Segment>,
    /// Hashes of the data's 4 KiB blocks.
    pub hashes: Vec<BlockHash>,
    /// Full data, when [`JournalOptions::record_data`] was set.
    pub data: Option<Vec<u8>>,
}

/// Parsed journal header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalHeader {
    /// Format version ([`VERSION`]).
    pub version: u16,
    /// What the writer recorded.
    pub options: JournalOptions,
    /// Bytes per hashed block.
    pub hash_block: u32,
}

/// Why a journal or one of its records cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading the file failed.
    #[error("journal I/O error: {0}")]
    Io(#[from] io::Error),
    /// The file does not start with [`MAGIC`].
    #[error("not a pinvm journal (bad magic)")]
    BadMagic,
    /// A version this code does not read.
    #[error("unsupported journal version {0}")]
    Version(u16),
    /// The file ends inside a record (the writer stopped mid-append).
    #[error("truncated record at offset {offset}: {available} of {needed} bytes present")]
    Truncated {
        /// File offset of the record's length prefix.
        offset: u64,
        /// Bytes the record needs.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// A complete record whose body does not parse.
    #[error("corrupt record at offset {offset}: {reason}")]
    Corrupt {
        /// File offset of the record's length prefix.
        offset: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
}

#[cfg(test)]
mod tests;
