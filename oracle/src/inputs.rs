//! What the oracle reads: host records (DMA log, block journal, final image, console) and the
//! two things it takes from the guest (the file's extents and the step results).

use proto::agent::StepReport;
use proto::dma_log::DmaRecord;
use proto::journal::JournalRecord;
use std::io;

/// Bytes per page and per file-system block in every scenario.
pub const PAGE: u64 = 4096;

/// One extent of the target file, with its start already translated to a byte offset on the
/// disk (FIEMAP's "physical" is a btrfs-logical address on btrfs; the caller maps it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileExtent {
    /// Byte offset in the file where the extent starts.
    pub logical: u64,
    /// Byte offset on the disk where the extent starts.
    pub device: u64,
    /// Length of the extent in bytes.
    pub length: u64,
    /// FIEMAP flags (FIEMAP_EXTENT_UNWRITTEN = 0x800: reads as zeros, not disk content).
    pub flags: u32,
}

/// FIEMAP flag of a preallocated extent never written: the file reads zeros there, whatever
/// the disk holds (linux/fiemap.h).
pub const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;

/// The target file as the guest described it after the workload (from a `fiemap` step).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileMap {
    /// The extents in the order the guest reported them.
    pub extents: Vec<FileExtent>,
    /// File ranges (offset, length) the analysis did not place on the disk (it ran out of its
    /// budget for that): the device's pages in them are not judged on disk, rather than taken
    /// for holes.
    pub unmapped: Vec<(u64, u64)>,
}

impl FileMap {
    /// The [`FileMap::unmapped`] ranges, sorted and merged, to ask about many offsets
    /// (O(log n) each, whatever ranges the analysis was given).
    pub fn unmapped_ranges(&self) -> Ranges {
        Ranges::new(&self.unmapped)
    }

    /// Disk byte offset of the block holding file offset `off`, if the file has one there
    /// (None for a hole, an unwritten extent or past the end).
    pub fn device_of(&self, off: u64) -> Option<u64> {
        // Every number here is the guest's: no arithmetic may overflow.
        self.extents
            .iter()
            .find(|e| off.checked_sub(e.logical).is_some_and(|d| d < e.length))
            .filter(|e| e.flags & FIEMAP_EXTENT_UNWRITTEN == 0)
            .and_then(|e| e.device.checked_add(off - e.logical))
    }
}

/// Sorted, disjoint half-open ranges [start, end) of file offsets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ranges(Vec<(u64, u64)>);

impl Ranges {
    /// The union of `ranges` (offset, length); ends past u64::MAX are cut there.
    pub fn new(ranges: &[(u64, u64)]) -> Ranges {
        let mut v: Vec<(u64, u64)> = ranges
            .iter()
            .filter(|r| r.1 > 0)
            .map(|&(start, len)| (start, start.saturating_add(len)))
            .collect();
        v.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(v.len());
        for (start, end) in v {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        Ranges(merged)
    }

    /// Whether `off` lies in one of the ranges.
    pub fn contains(&self, off: u64) -> bool {
        let i = self.0.partition_point(|r| r.0 <= off);
        i > 0 && off < self.0[i - 1].1
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The final disk image (what the disk held when the guest stopped).
pub trait DiskImage {
    /// Read exactly `buf.len()` bytes at byte offset `off`.
    fn read_at(&self, off: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl DiskImage for std::fs::File {
    fn read_at(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, off)
    }
}

impl DiskImage for Vec<u8> {
    fn read_at(&self, off: u64, buf: &mut [u8]) -> io::Result<()> {
        let start = usize::try_from(off).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let src = self
            .get(start..start + buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// One step result with the step's source line and when its report reached the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedStep {
    /// The step as written in the job (`release r dirty_lock`), when known.
    pub line: String,
    /// What the agent reported for the step.
    pub report: StepReport,
    /// CLOCK_MONOTONIC ns of the report's arrival.
    pub time_ns: u64,
}

impl TimedStep {
    /// The op name (first word of the report).
    pub fn op(&self) -> &str {
        match &self.report {
            StepReport::Done { op, .. } | StepReport::Failed { op, .. } => op,
            StepReport::Extent { .. } => "extent",
        }
    }

    /// Whether the step succeeded (a `Done` report; `Failed` and `Extent` reports are not).
    pub fn ok(&self) -> bool {
        matches!(self.report, StepReport::Done { .. })
    }
}

/// Everything one run left behind.
#[derive(Default)]
pub struct Inputs<'a> {
    /// The DMA log's records, in the order the device wrote them.
    pub dma: Vec<DmaRecord>,
    /// Block journal of the disk holding the target file (OUT records should carry data).
    pub journal: Vec<JournalRecord>,
    /// The target file's extents after the workload; None when the guest did not report them.
    pub file: Option<FileMap>,
    /// The final image of that disk; None when it was not kept (checks on the final image
    /// are skipped).
    pub image: Option<&'a dyn DiskImage>,
    /// Everything the guest printed on its console.
    pub console: &'a str,
    /// The workload's step results, in the order they arrived.
    pub steps: Vec<TimedStep>,
    /// The run was stopped by the watchdog: what the VMM saw (e.g. where the vCPUs were).
    pub watchdog: Option<String>,
}
