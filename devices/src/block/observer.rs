//! Observer hooks around the data copy of block requests.
//!
//! The block device calls a [`BlockObserver`] on its device thread while it serves IN and OUT
//! requests:
//!
//! 1. [`before_copy`](BlockObserver::before_copy) once the request is validated, before any
//!    byte moves;
//! 2. [`mid_copy`](BlockObserver::mid_copy) after each 4 KiB block of the request's data
//!    buffer has been copied (for OUT: read from guest memory *and* written to the disk;
//!    for IN: read from disk and written to guest memory), with the number of bytes copied so
//!    far — including after the last block;
//! 3. [`after_copy`](BlockObserver::after_copy) when all data has been copied, before the
//!    status byte is written and the chain is returned to the guest.
//!
//! The device copies block `k` from guest memory only after `mid_copy(.., k*4096)` returned,
//! so an observer that writes guest pages from inside `mid_copy` decides deterministically
//! which generation of the data each block picks up (the "write that page mid-copy" race a
//! DMA device injects). The hooks run synchronously on the device thread: keep them short.

use proto::journal::{RequestKind, Segment};

/// Bytes copied between two [`BlockObserver::mid_copy`] calls.
pub const COPY_CHUNK: u64 = 4096;

/// What an observer learns about a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestView {
    /// Sequence number (same as in the journal).
    pub seq: u64,
    /// Direction: [`RequestKind::In`] (disk to guest) or [`RequestKind::Out`] (guest to disk).
    pub kind: RequestKind,
    /// First sector.
    pub sector: u64,
    /// Number of 512-byte sectors.
    pub sectors: u64,
    /// Guest-physical data buffers, in chain order.
    pub segments: Vec<Segment>,
}

impl RequestView {
    /// Total data bytes.
    pub fn len(&self) -> u64 {
        self.sectors * 512
    }

    /// Whether the request moves no data (zero sectors).
    pub fn is_empty(&self) -> bool {
        self.sectors == 0
    }
}

/// Hooks called around each IN/OUT request's data copy. All methods default to doing nothing.
pub trait BlockObserver: Send + Sync {
    /// The request was validated; no data byte has moved yet.
    fn before_copy(&self, _req: &RequestView) {}
    /// `copied_bytes` bytes of the data buffer have been copied (a multiple of 4096, or the
    /// total for the last call).
    fn mid_copy(&self, _req: &RequestView, _copied_bytes: u64) {}
    /// Called with the status the request will complete with.
    fn after_copy(&self, _req: &RequestView, _status: u8) {}
}
