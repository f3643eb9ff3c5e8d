//! virtio-blk device (virtio 1.2 §5.2) over a copy-on-write disk, with a request journal and
//! observer hooks.
//!
//! - [`Block`] implements [`VirtioDevice`]; put it in a [`crate::virtio::MmioTransport`].
//! - Requests are served on a device thread ("pinvm-blk", a [`Worker`]) that [`Block`]
//!   starts at activation (DRIVER_OK) and stops (and joins) at reset or drop. The thread
//!   waits on the queue's notification EventFd; each wake-up runs [`process_queue`], which
//!   drains the available ring, so any number of requests can be in flight, and notifies the
//!   driver when `Queue::needs_notification` says so (EVENT_IDX is supported).
//! - Parsing is in [`request`], the virtio-blk structures in [`layout`], the disk in
//!   [`disk`], the hooks in [`observer`]; the journal's format, writer and reader are
//!   [`proto::journal`] (this device decides what to record).
//! - [`BlockHandle`] (from [`Block::handle`]) stays usable by the VMM after the device was
//!   boxed into the transport: flush the journal and disk at exit, `save_as` for
//!   `--keep-disk`, counters.
//!
//! Offered features: VERSION_1 (added by the transport), FLUSH, SEG_MAX, RING_EVENT_IDX.
//! Configuration space: a [`layout::ConfigSpace`] (`le64 capacity` in sectors at 0,
//! `le32 size_max` = 0 at 8, `le32 seg_max` at 12); everything else reads as zero. DISCARD
//! and WRITE_ZEROES are not offered (types 11/13 answer UNSUPP).

pub mod disk;
pub mod layout;
pub mod observer;
pub mod request;

#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use virtio_bindings::virtio_blk::{VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_SEG_MAX};
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use virtio_queue::{Queue, QueueT};
use vm_memory::{ByteValued, Bytes, GuestAddress, GuestMemory};
use vmm_sys_util::eventfd::EventFd;

use proto::journal::{
    block_hash, status, BlockHash, JournalOptions, JournalRecord, JournalWriter, RequestKind,
    Segment,
};

use crate::clock::monotonic_ns;
use crate::virtio::chain::{pop_chain, Desc};
use crate::virtio::worker::Worker;
use crate::virtio::{features, queue_bit, ActivateError, DeviceNotifier, GuestMem, VirtioDevice};
use disk::{CowDisk, DiskError, SECTOR_SIZE};
use layout::ConfigSpace;
use observer::{BlockObserver, RequestView, COPY_CHUNK};
use request::{parse, Limits, Request, ID_BYTES};

/// Default (and maximum offered) queue size.
pub const DEFAULT_QUEUE_SIZE: u16 = 256;

/// How to build a [`Block`].
#[derive(Clone)]
pub struct BlockConfig {
    /// Answer to GET_ID (at most 20 bytes are used; shorter ids are NUL-padded),
    /// e.g. "pinvm-0".
    pub id: String,
    /// Journal file and options; `None` disables journaling.
    pub journal: Option<(PathBuf, JournalOptions)>,
    /// Hooks around each data copy.
    pub observer: Option<Arc<dyn BlockObserver>>,
    /// Queue size offered (power of two, 4..=32768). The seg_max advertised is
    /// `queue_size - 2`.
    pub queue_size: u16,
    /// With `record_data`, requests carry their data while the journal stays within this many
    /// bytes; later ones carry their hashes only (counted in
    /// [`BlockStats::journal_data_dropped`]). Default [`JOURNAL_DATA_LIMIT`].
    pub journal_data_limit: u64,
    /// A journal this large takes no more records: later writes are refused with IOERR (and
    /// counted in [`BlockStats::journal_full_refused`]) so that the disk never holds data the
    /// journal does not explain; reads and flushes are served, unrecorded. Default
    /// [`JOURNAL_LIMIT`].
    pub journal_limit: u64,
}

/// Default [`BlockConfig::journal_data_limit`]: 1 GiB.
pub const JOURNAL_DATA_LIMIT: u64 = 1 << 30;
/// Default [`BlockConfig::journal_limit`]: 2 GiB (hash-only records are about 1/150 of the
/// data they describe: the guest has to write some 150 GiB more to reach it).
pub const JOURNAL_LIMIT: u64 = 2 << 30;

impl Default for BlockConfig {
    fn default() -> Self {
        BlockConfig {
            id: "pinvm-0".into(),
            journal: None,
            observer: None,
            queue_size: DEFAULT_QUEUE_SIZE,
            journal_data_limit: JOURNAL_DATA_LIMIT,
            journal_limit: JOURNAL_LIMIT,
        }
    }
}

/// Why a block device could not be created, flushed or saved.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// [`BlockConfig::queue_size`] is outside what virtio split rings allow (a power of two,
    /// at most 32768) or below 4, which leaves no room for a header, data and status.
    #[error("queue size {0} is not a power of two in 4..=32768")]
    QueueSize(u16),
    /// The journal file could not be created.
    #[error("cannot create journal {path}: {source}")]
    Journal {
        /// The journal file asked for in [`BlockConfig::journal`].
        path: PathBuf,
        /// The error from creating it or writing its header.
        source: io::Error,
    },
    /// Flushing the journal's buffer to its file failed.
    #[error("journal write failed: {0}")]
    JournalIo(#[source] io::Error),
    /// The copy-on-write disk failed (sync, save).
    #[error(transparent)]
    Disk(#[from] DiskError),
}

/// Request counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockStats {
    /// Chains that parsed into a request (each got a sequence number).
    pub requests: u64,
    /// Requests completed with status OK.
    pub ok: u64,
    /// Requests or chains answered IOERR.
    pub ioerr: u64,
    /// Requests answered UNSUPP.
    pub unsupp: u64,
    /// Chains without a usable status byte, returned with used length 0.
    pub skipped: u64,
    /// Journal write errors (journaling stops after the first).
    pub journal_errors: u64,
    /// Requests journaled without their data ([`BlockConfig::journal_data_limit`]).
    pub journal_data_dropped: u64,
    /// Writes refused (IOERR) because the journal was full ([`BlockConfig::journal_limit`]).
    pub journal_full_refused: u64,
    /// Reads and flushes served but not journaled because the journal was full.
    pub journal_full_unrecorded: u64,
}

/// Everything a request needs besides guest memory: shared between the [`Block`], its device
/// thread and any [`BlockHandle`].
pub struct BlockBackend {
    disk: CowDisk,
    journal: Option<JournalWriter>,
    journal_path: Option<PathBuf>,
    observer: Option<Arc<dyn BlockObserver>>,
    id: [u8; ID_BYTES],
    next_seq: u64,
    limits: Limits,
    stats: BlockStats,
    journal_data_limit: u64,
    journal_limit: u64,
}

impl BlockBackend {
    /// A backend serving `disk` with `config`'s id, queue size and hooks; creates the journal
    /// file if one is asked for. Sequence numbers start at 1.
    pub fn new(disk: CowDisk, config: &BlockConfig) -> Result<BlockBackend, BlockError> {
        let qs = config.queue_size;
        if !(4..=32768).contains(&qs) || !qs.is_power_of_two() {
            return Err(BlockError::QueueSize(qs));
        }
        let journal = match &config.journal {
            Some((path, opts)) => {
                Some(
                    JournalWriter::create(path, *opts).map_err(|source| BlockError::Journal {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        let mut id = [0u8; ID_BYTES];
        let n = config.id.len().min(ID_BYTES);
        id[..n].copy_from_slice(&config.id.as_bytes()[..n]);
        Ok(BlockBackend {
            limits: Limits {
                capacity: disk.capacity_sectors(),
                seg_max: u32::from(qs) - 2,
                max_descriptors: usize::from(qs),
            },
            disk,
            journal,
            journal_path: config.journal.as_ref().map(|(p, _)| p.clone()),
            observer: config.observer.clone(),
            id,
            next_seq: 1,
            stats: BlockStats::default(),
            journal_data_limit: config.journal_data_limit,
            journal_limit: config.journal_limit,
        })
    }

    /// The copy-on-write disk requests are served from.
    pub fn disk(&self) -> &CowDisk {
        &self.disk
    }

    /// Request counters so far.
    pub fn stats(&self) -> BlockStats {
        self.stats
    }

    /// Parsing limits in force (capacity, seg_max, chain length).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Flush the journal buffer and fdatasync the overlay.
    pub fn flush(&mut self) -> Result<(), BlockError> {
        if let Some(j) = &mut self.journal {
            j.flush().map_err(BlockError::JournalIo)?;
        }
        self.disk.flush()?;
        Ok(())
    }

    /// Serve one descriptor chain: parse, execute, write the status byte. Returns the length
    /// to put in the used ring (bytes written into guest buffers, status byte included;
    /// 0 for a chain without a usable status byte).
    pub fn handle_chain<M: GuestMemory + ?Sized>(&mut self, mem: &M, descs: &[Desc]) -> u32 {
        let submit_ns = monotonic_ns();
        let req = match parse(descs, mem, self.limits) {
            Ok(r) => r,
            Err(m) => {
                return match m.status_addr {
                    Some(addr) => {
                        self.stats.ioerr += 1;
                        let _ = mem.write_obj(status::IOERR, GuestAddress(addr));
                        1
                    }
                    None => {
                        self.stats.skipped += 1;
                        0
                    }
                };
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.stats.requests += 1;
        let full = self
            .journal
            .as_ref()
            .is_some_and(|j| j.wants(req.kind) && j.bytes_written() >= self.journal_limit);
        if full && req.kind == RequestKind::Out {
            // Unrecorded data on the disk would mislead the oracle: refuse the write.
            self.stats.journal_full_refused += 1;
            self.stats.ioerr += 1;
            let _ = mem.write_obj(status::IOERR, GuestAddress(req.status_addr));
            return 1;
        }
        if full {
            self.stats.journal_full_unrecorded += 1;
        }
        let (st, written, hashes, data) = self.execute(mem, &req, seq);
        match st {
            status::OK => self.stats.ok += 1,
            status::UNSUPP => self.stats.unsupp += 1,
            _ => self.stats.ioerr += 1,
        }
        let complete_ns = monotonic_ns();
        if !full && self.journal.as_ref().is_some_and(|j| j.wants(req.kind)) {
            let rec = JournalRecord {
                seq,
                kind: req.kind,
                status: st,
                submit_ns,
                complete_ns,
                sector: if req.kind == RequestKind::Flush {
                    0
                } else {
                    req.sector
                },
                sectors: req.sectors(),
                segments: req.segments.clone(),
                hashes,
                data,
            };
            let j = self.journal.as_mut().expect("checked above");
            let mut res = j.write(&rec);
            if req.kind == RequestKind::Flush {
                res = res.and_then(|()| j.flush());
            }
            if res.is_err() {
                // A journal that lost a record is useless to the oracle: stop writing it
                // rather than produce a silently incomplete log.
                self.stats.journal_errors += 1;
                self.journal = None;
            }
        }
        let _ = mem.write_obj(st, GuestAddress(req.status_addr));
        written.saturating_add(1)
    }

    /// Execute a validated request: (status, bytes written to guest, hashes, data).
    fn execute<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        req: &Request,
        seq: u64,
    ) -> (u8, u32, Vec<BlockHash>, Option<Vec<u8>>) {
        match req.kind {
            RequestKind::In | RequestKind::Out => self.copy_data(mem, req, seq),
            RequestKind::Flush => {
                let st = match self.disk.flush() {
                    Ok(()) => status::OK,
                    Err(_) => status::IOERR,
                };
                (st, 0, Vec::new(), None)
            }
            RequestKind::GetId => {
                let n = (req.data_len as usize).min(ID_BYTES);
                let mut cur = SegCursor::new(&req.segments);
                match cur.write_to_guest(mem, &self.id[..n]) {
                    Ok(()) => (status::OK, n as u32, Vec::new(), None),
                    Err(()) => (status::IOERR, 0, Vec::new(), None),
                }
            }
            RequestKind::Other(_) => (status::UNSUPP, 0, Vec::new(), None),
        }
    }

    fn copy_data<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        req: &Request,
        seq: u64,
    ) -> (u8, u32, Vec<BlockHash>, Option<Vec<u8>>) {
        let journaled = self.journal.as_ref().filter(|j| j.wants(req.kind));
        let hash = journaled.is_some();
        let wants_data = journaled.filter(|j| j.options().record_data);
        let data_fits = wants_data.is_some_and(|j| {
            j.bytes_written().saturating_add(req.data_len) <= self.journal_data_limit
        });
        if wants_data.is_some() && !data_fits {
            self.stats.journal_data_dropped += 1;
        }
        let mut data = data_fits.then(|| Vec::with_capacity(req.data_len as usize));
        let view = self.observer.as_ref().map(|_| RequestView {
            seq,
            kind: req.kind,
            sector: req.sector,
            sectors: req.sectors(),
            segments: req.segments.clone(),
        });
        let observer = self.observer.clone();
        if let (Some(o), Some(v)) = (&observer, &view) {
            o.before_copy(v);
        }
        let mut hashes = Vec::new();
        let mut buf = vec![0u8; COPY_CHUNK as usize];
        let mut cur = SegCursor::new(&req.segments);
        let mut done = 0u64;
        let base = req.sector * SECTOR_SIZE;
        let mut st = status::OK;
        while done < req.data_len {
            let n = (req.data_len - done).min(COPY_CHUNK) as usize;
            let chunk = &mut buf[..n];
            let ok = match req.kind {
                RequestKind::Out => {
                    cur.read_from_guest(mem, chunk).is_ok()
                        && self.disk.write_at(chunk, base + done).is_ok()
                }
                _ => {
                    self.disk.read_at(chunk, base + done).is_ok()
                        && cur.write_to_guest(mem, chunk).is_ok()
                }
            };
            if !ok {
                st = status::IOERR;
                break;
            }
            if hash {
                hashes.push(BlockHash {
                    sector: req.sector + done / SECTOR_SIZE,
                    len: n as u32,
                    hash: block_hash(chunk),
                });
            }
            if let Some(d) = &mut data {
                d.extend_from_slice(chunk);
            }
            done += n as u64;
            if let (Some(o), Some(v)) = (&observer, &view) {
                o.mid_copy(v, done);
            }
        }
        if let (Some(o), Some(v)) = (&observer, &view) {
            o.after_copy(v, st);
        }
        let written = if req.kind == RequestKind::In && st == status::OK {
            u32::try_from(done).unwrap_or(u32::MAX - 1)
        } else {
            0
        };
        (st, written, hashes, data)
    }
}

/// Walks a request's data segments as one contiguous buffer.
struct SegCursor<'a> {
    segs: &'a [Segment],
    idx: usize,
    off: u32,
}

impl<'a> SegCursor<'a> {
    fn new(segs: &'a [Segment]) -> Self {
        SegCursor {
            segs,
            idx: 0,
            off: 0,
        }
    }

    /// Visit the next `len` bytes as (guest address, range of the caller's buffer) pieces.
    fn advance(
        &mut self,
        len: usize,
        mut f: impl FnMut(GuestAddress, std::ops::Range<usize>) -> bool,
    ) -> Result<(), ()> {
        let mut pos = 0;
        while pos < len {
            let seg = self.segs.get(self.idx).ok_or(())?;
            let n = ((seg.len - self.off) as usize).min(len - pos);
            let addr = seg.addr.checked_add(u64::from(self.off)).ok_or(())?;
            if !f(GuestAddress(addr), pos..pos + n) {
                return Err(());
            }
            pos += n;
            self.off += n as u32;
            if self.off == seg.len {
                self.idx += 1;
                self.off = 0;
            }
        }
        Ok(())
    }

    fn read_from_guest<M: GuestMemory + ?Sized>(
        &mut self,
        mem: &M,
        buf: &mut [u8],
    ) -> Result<(), ()> {
        let len = buf.len();
        self.advance(len, |a, r| mem.read_slice(&mut buf[r], a).is_ok())
    }

    fn write_to_guest<M: GuestMemory + ?Sized>(&mut self, mem: &M, buf: &[u8]) -> Result<(), ()> {
        self.advance(buf.len(), |a, r| mem.write_slice(&buf[r], a).is_ok())
    }
}

/// Drain `queue` (the device's only queue, index 0): serve every available chain, return it
/// to the used ring and notify the driver when `needs_notification` says so. Loops until no
/// new chains arrived after notifications were re-enabled. An `Err` means the ring itself is
/// broken (e.g. the driver published more entries than the queue holds or the ring left
/// guest memory).
///
/// This is the whole per-notification work of the device, whichever transport delivered the
/// notification: the [`Worker`] of [`Block`] calls it, and so can any other event loop that
/// owns the queue.
pub fn process_queue<M: GuestMemory>(
    backend: &Mutex<BlockBackend>,
    mem: &M,
    queue: &mut Queue,
    notifier: &dyn DeviceNotifier,
) -> Result<(), virtio_queue::Error> {
    let max = lock(backend).limits.max_descriptors;
    loop {
        queue.disable_notification(mem)?;
        while let Some(chain) = pop_chain(queue, mem, max)? {
            let len = lock(backend).handle_chain(mem, &chain.descs);
            queue.add_used(mem, chain.head, len)?;
            if queue.needs_notification(mem)? {
                notifier.notify_used(queue_bit(0));
            }
        }
        if !queue.enable_notification(mem)? {
            return Ok(());
        }
    }
}

fn lock(m: &Mutex<BlockBackend>) -> MutexGuard<'_, BlockBackend> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A handle on a block device's backend that outlives boxing the device into a transport.
#[derive(Clone)]
pub struct BlockHandle(Arc<Mutex<BlockBackend>>);

impl BlockHandle {
    /// Flush the journal buffer and fdatasync the overlay (call at VMM exit).
    pub fn flush(&self) -> Result<(), BlockError> {
        lock(&self.0).flush()
    }

    /// Write the merged disk image to `path` (for `--keep-disk`).
    pub fn save_as(&self, path: &Path) -> Result<(), BlockError> {
        Ok(lock(&self.0).disk.save_as(path)?)
    }

    /// Request counters so far.
    pub fn stats(&self) -> BlockStats {
        lock(&self.0).stats
    }

    /// Journal file, if journaling is on.
    pub fn journal_path(&self) -> Option<PathBuf> {
        lock(&self.0).journal_path.clone()
    }

    /// Run `f` with the backend locked (tests, benchmarks, fuzzing).
    pub fn with_backend<R>(&self, f: impl FnOnce(&mut BlockBackend) -> R) -> R {
        f(&mut lock(&self.0))
    }

    /// The shared backend, for [`process_queue`].
    pub fn backend(&self) -> &Mutex<BlockBackend> {
        &self.0
    }
}

/// The virtio-blk device.
pub struct Block {
    backend: Arc<Mutex<BlockBackend>>,
    queue_sizes: [u16; 1],
    config_space: ConfigSpace,
    worker: Worker,
}

impl Block {
    /// A block device serving `disk`.
    pub fn new(disk: CowDisk, config: BlockConfig) -> Result<Block, BlockError> {
        let backend = BlockBackend::new(disk, &config)?;
        let config_space = ConfigSpace {
            capacity: backend.limits.capacity.into(),
            size_max: 0u32.into(),
            seg_max: backend.limits.seg_max.into(),
        };
        Ok(Block {
            backend: Arc::new(Mutex::new(backend)),
            queue_sizes: [config.queue_size],
            config_space,
            worker: Worker::new("pinvm-blk"),
        })
    }

    /// A handle on this device's backend that stays usable after the device was boxed into
    /// a transport (flush and save at exit, counters).
    pub fn handle(&self) -> BlockHandle {
        BlockHandle(self.backend.clone())
    }

    fn stop_worker(&mut self) {
        // The queue state only matters to a transport that resumes queues elsewhere.
        let _ = self.worker.stop();
        let _ = lock(&self.backend).flush();
    }
}

impl VirtioDevice for Block {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    fn features(&self) -> u64 {
        features::VERSION_1
            | features::RING_EVENT_IDX
            | (1 << VIRTIO_BLK_F_FLUSH)
            | (1 << VIRTIO_BLK_F_SEG_MAX)
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = offset
                .checked_add(i as u64)
                .and_then(|o| self.config_space.as_slice().get(usize::try_from(o).ok()?))
                .copied()
                .unwrap_or(0);
        }
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {
        // capacity and seg_max are read-only; writeback cache toggling is not offered.
    }

    fn activate(
        &mut self,
        mem: GuestMem,
        _acked_features: u64,
        queues: Vec<Queue>,
        notifier: Arc<dyn DeviceNotifier>,
        queue_evts: Vec<EventFd>,
    ) -> Result<(), ActivateError> {
        let claimed = self.worker.claim(1, queues, queue_evts)?;
        let backend = self.backend.clone();
        self.worker
            .start(claimed, mem, notifier, move |mem, queues, notifier| {
                process_queue(&backend, mem, &mut queues[0], notifier)
            })
    }

    fn reset(&mut self) {
        self.stop_worker();
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        self.stop_worker();
    }
}
