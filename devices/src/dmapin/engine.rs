//! The DMA engine: the region table shared by the device thread, the engine thread and the
//! block observer, the stamped page writes, and the schedules.
//!
//! - [`Engine`] holds the region table (region id → posted pages, in posting order) and the
//!   DMA log behind one mutex. Every DMA write goes through [`EngineState::write_page_range`],
//!   which writes stamped sectors into guest memory with vm-memory `Bytes::write_slice`
//!   (volatile copies) and appends one log record.
//! - [`run_engine_thread`] serves `Burst` and `Rate` jobs (thread "pinvm-dma").
//! - [`DmaObserver`] is a [`BlockObserver`]: for regions started with `OnWriteback`, when a
//!   block OUT request's data segments cover a posted page, it writes the next generation into
//!   that page so that the block device copies the page's first half from generation `g` and
//!   its second half from generation `g+1` (see [`DmaObserver`]).
//!
//! Lock order: the block device calls the observer with its backend lock held; the engine
//! never takes the block lock, so holding the engine lock inside the observer is safe.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use proto::dma_log::{DmaLogWriter, DmaRecord, Trigger};
use proto::journal::RequestKind;
use proto::stamp::dma::{encode_into, PAGE, SECTOR};
use vm_memory::{Bytes, GuestAddress, GuestAddressSpace};

use crate::block::observer::{BlockObserver, RequestView, COPY_CHUNK};
use crate::clock::monotonic_ns;
use crate::virtio::GuestMem;

/// How a started region is driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// `count` full-page generations of every page of the region, back to back.
    Burst {
        /// Generations to write (START accepts 1..=`proto::dmapin::MAX_BURST`).
        count: u64,
    },
    /// `hz` generations of every page per second, for `duration`.
    Rate {
        /// Generations per second (START accepts 1..=100000).
        hz: u32,
        /// How long the schedule runs (START accepts 1 ms..=24 h).
        duration: Duration,
    },
    /// One new generation of a page each time a block OUT request copies it, injected at the
    /// page's halfway point. `max_triggers` = 0: unlimited.
    OnWriteback {
        /// Injections allowed after START; 0: unlimited.
        max_triggers: u64,
    },
}

/// One posted page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostedPage {
    /// Page index from the driver's header.
    pub index: u32,
    /// Guest-physical address of the page (4096 bytes), from the chain's data descriptor.
    pub gpa: u64,
    /// Byte offset in the guest file the page caches, from the driver's header; logged with
    /// every write so the oracle can map DMA to disk blocks.
    pub file_offset: u64,
    /// Last generation written (0: never written).
    pub generation: u64,
    /// Descriptor head of the chain that posted it (returned on RETURN).
    pub head: u16,
    /// GPA of the chain's `virtio_dmapin_buf_status` (filled in on RETURN).
    pub status_gpa: u64,
    /// DMA writes made into this page (reported in the status on RETURN).
    pub dma_writes: u32,
}

/// A region: pages in posting order plus its schedule.
#[derive(Clone, Debug, Default)]
pub struct Region {
    /// Posted pages, in posting order.
    pub pages: Vec<PostedPage>,
    /// Current schedule; `None` when stopped.
    pub schedule: Option<Schedule>,
    /// Bumped by every START/STOP/RETURN, so running jobs notice they were superseded.
    pub epoch: u64,
    /// Writeback injections done since the last START.
    pub triggers: u64,
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmaStats {
    /// DMA writes (log records) performed.
    pub writes: u64,
    /// Bytes written into guest memory by those writes.
    pub bytes: u64,
    /// Writeback injections (each is two half-page writes).
    pub writeback_injections: u64,
    /// Pages accepted on the dma queue.
    pub pages_posted: u64,
    /// Dma-queue chains refused (returned with length 0).
    pub dma_rejected: u64,
    /// Ctl messages answered with an error status.
    pub ctl_errors: u64,
    /// Guest memory writes that failed (page left guest memory?).
    pub write_errors: u64,
    /// Log write errors (logging stops after the first).
    pub log_errors: u64,
    /// DMA writes not made because the log was full (`DmaPinConfig::log_limit`).
    pub refused_log_full: u64,
}

/// Writeback injection in progress for one page of one block request.
#[derive(Clone, Copy, Debug)]
struct Pending {
    region: u32,
    /// Position of the page in the region's page list (pages are only ever appended; the
    /// GPA is checked again before use, in case the region was returned and posted anew).
    pos: usize,
    gpa: u64,
    /// Offset of the page in the request's data buffer.
    data_off: u64,
    /// 0: nothing written yet, 1: second half written, 2: done.
    phase: u8,
    generation: u64,
}

/// Everything behind the engine lock.
#[derive(Default)]
pub struct EngineState {
    pub(crate) mem: Option<GuestMem>,
    /// Region id → region, for every region with a posted page.
    pub regions: BTreeMap<u32, Region>,
    /// Page GPA → (region id, position in the region's page list), for the observer.
    pub(crate) by_gpa: BTreeMap<u64, (u32, usize)>,
    pub(crate) log: Option<DmaLogWriter>,
    /// Most records `log` takes; no DMA write is made past it.
    pub(crate) log_limit: u64,
    /// Counters since the device was created (a reset keeps them).
    pub stats: DmaStats,
    /// Per block request (seq): its armed pages, in data-offset order.
    pending: HashMap<u64, VecDeque<Pending>>,
}

impl EngineState {
    /// Total posted pages.
    pub fn total_pages(&self) -> usize {
        self.by_gpa.len()
    }

    /// Write sectors `sectors` of generation `generation` of page `page_pos` (position in
    /// the region's page list) into guest memory and log it. Returns false if the write failed
    /// (no memory attached, or the page is no longer in guest memory).
    pub fn write_page_range(
        &mut self,
        region: u32,
        page_pos: usize,
        generation: u64,
        sectors: Range<usize>,
        trigger: Trigger,
    ) -> bool {
        let Some(page) = self
            .regions
            .get(&region)
            .and_then(|r| r.pages.get(page_pos))
            .copied()
        else {
            return false;
        };
        let Some(mem) = self.mem.as_ref().map(|m| m.memory()) else {
            return false;
        };
        // A write the log cannot take is not made: the log stays the whole truth.
        if self
            .log
            .as_ref()
            .is_some_and(|l| l.records_written() >= self.log_limit)
        {
            self.stats.refused_log_full += 1;
            return false;
        }
        let ts = monotonic_ns();
        let mut buf = [0u8; PAGE];
        let start = sectors.start * SECTOR;
        let end = sectors.end * SECTOR;
        for s in sectors {
            let chunk: &mut [u8; SECTOR] = (&mut buf[s * SECTOR..(s + 1) * SECTOR])
                .try_into()
                .expect("512 bytes");
            encode_into(chunk, region, page.index, s as u32, generation, ts);
        }
        let gpa = page.gpa + start as u64;
        if mem
            .write_slice(&buf[start..end], GuestAddress(gpa))
            .is_err()
        {
            self.stats.write_errors += 1;
            return false;
        }
        if let Some(p) = self
            .regions
            .get_mut(&region)
            .and_then(|r| r.pages.get_mut(page_pos))
        {
            p.generation = p.generation.max(generation);
            p.dma_writes = p.dma_writes.saturating_add(1);
        }
        self.stats.writes += 1;
        self.stats.bytes += (end - start) as u64;
        if let Some(log) = &mut self.log {
            let rec = DmaRecord {
                time_ns: ts,
                region,
                page: page.index,
                file_offset: page.file_offset,
                generation,
                gpa,
                bytes: (end - start) as u32,
                page_offset: start as u16,
                trigger,
            };
            if log.write(&rec).is_err() {
                self.stats.log_errors += 1;
                self.log = None;
            }
        }
        true
    }

    /// Write the next generation of pages `from..` of `region`, at most [`PAGES_PER_LOCK`]
    /// of them. Returns the position after the last page written, or None if the region is
    /// gone.
    fn write_generation_chunk(
        &mut self,
        region: u32,
        from: usize,
        trigger: Trigger,
    ) -> Option<usize> {
        let n = self.regions.get(&region)?.pages.len();
        let end = n.min(from.saturating_add(PAGES_PER_LOCK));
        for i in from..end {
            let g = self.regions.get(&region)?.pages.get(i)?.generation + 1;
            self.write_page_range(region, i, g, 0..8, trigger);
        }
        Some(end)
    }

    /// Is `(region, epoch)` still the running schedule?
    fn current(&self, region: u32, epoch: u64) -> bool {
        self.regions
            .get(&region)
            .is_some_and(|r| r.epoch == epoch && r.schedule.is_some())
    }

    /// Device reset: forget every region, pending injection and the guest memory.
    /// End every running schedule: a burst stops before its next generation, a rate job at
    /// its next tick (the guest driver sees the region as stopped).
    pub fn cancel_schedules(&mut self) {
        for r in self.regions.values_mut() {
            r.schedule = None;
        }
    }

    /// Forget every region, posted page and pending injection (device reset).
    pub fn reset(&mut self) {
        self.regions.clear();
        self.by_gpa.clear();
        self.pending.clear();
        self.mem = None;
    }

    /// Flush the DMA log's buffer and fdatasync it (nothing to do without a log).
    pub fn flush_log(&mut self) -> std::io::Result<()> {
        match &mut self.log {
            Some(l) => l.flush(),
            None => Ok(()),
        }
    }
}

/// Page writes a schedule makes per hold of the engine lock. A region has up to 65,536 pages;
/// between chunks the lock is released and cancellation checked, so a STOP, a device reset or
/// the machine's teardown waits for at most this many page writes, never a whole generation.
pub const PAGES_PER_LOCK: usize = 256;
/// Longest a schedule waits between two chunks for the threads that want the lock.
const YIELD_LIMIT: Duration = Duration::from_millis(10);

/// The shared engine.
#[derive(Default)]
pub struct Engine {
    state: Mutex<EngineState>,
    /// Bumped by [`Engine::cancel_schedules`] before it takes the lock: a schedule between
    /// two chunks sees it without the lock and stops, rather than racing the canceller for
    /// the lock.
    cancels: AtomicU64,
    /// Threads waiting in [`Engine::lock`]: a schedule lets them have the lock between its
    /// chunks (a mutex lets the thread that just unlocked take it again first).
    waiting: AtomicUsize,
}

impl Engine {
    /// An engine with no regions and no guest memory yet, logging every DMA write to `log`,
    /// at most `log_limit` records (no DMA write is made past them).
    pub fn new(log: Option<DmaLogWriter>, log_limit: u64) -> Engine {
        Engine {
            state: Mutex::new(EngineState {
                log,
                log_limit,
                ..Default::default()
            }),
            cancels: AtomicU64::new(0),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Lock the engine state (a poisoned lock is taken over: the state stays consistent
    /// between statements). Never take the block device's lock while holding it.
    pub fn lock(&self) -> MutexGuard<'_, EngineState> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        st
    }

    /// Between two chunks of a schedule: let the threads waiting for the lock take it (for
    /// at most [`YIELD_LIMIT`], so a thread polling the lock cannot stall the schedule).
    fn let_waiters_in(&self) {
        let until = Instant::now() + YIELD_LIMIT;
        while self.waiting.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            std::thread::yield_now();
        }
    }

    /// End every running schedule (see [`EngineState::cancel_schedules`]); a schedule in the
    /// middle of a generation stops within [`PAGES_PER_LOCK`] page writes.
    pub fn cancel_schedules(&self) {
        self.cancels.fetch_add(1, Ordering::SeqCst);
        self.lock().cancel_schedules();
    }

    /// Write the next generation of every page of `region` while `(region, epoch)` is the
    /// running schedule, [`PAGES_PER_LOCK`] pages per hold of the lock. Returns false if the
    /// schedule was stopped or cancelled (or the region is gone) before the generation ended.
    pub fn write_generation(&self, region: u32, epoch: u64, trigger: Trigger) -> bool {
        let cancels = self.cancels.load(Ordering::SeqCst);
        let mut next = 0;
        loop {
            let mut st = self.lock();
            if !st.current(region, epoch) {
                return false;
            }
            let Some(end) = st.write_generation_chunk(region, next, trigger) else {
                return false;
            };
            if end >= st.regions.get(&region).map_or(0, |r| r.pages.len()) {
                return true;
            }
            drop(st);
            if self.cancels.load(Ordering::SeqCst) != cancels {
                return false;
            }
            self.let_waiters_in();
            next = end;
        }
    }
}

/// A job for the engine thread.
#[derive(Clone, Copy, Debug)]
pub enum Job {
    /// Drive `region` with `schedule` (Burst and Rate; OnWriteback needs no thread) for as
    /// long as the region's epoch is still `epoch`.
    Run {
        /// Region id.
        region: u32,
        /// The region's epoch after the START that sent this job.
        epoch: u64,
        /// The schedule START asked for.
        schedule: Schedule,
    },
}

struct RateJob {
    region: u32,
    epoch: u64,
    period: Duration,
    next: Instant,
    end: Instant,
}

/// Body of the engine thread: runs until `jobs` is disconnected. Bursts run to completion
/// (checking every [`PAGES_PER_LOCK`] pages that the region was not stopped and nothing was
/// cancelled); rate jobs are interleaved.
pub fn run_engine_thread(engine: Arc<Engine>, jobs: Receiver<Job>) {
    let mut rates: Vec<RateJob> = Vec::new();
    loop {
        let now = Instant::now();
        // Fire due rate ticks.
        rates.retain_mut(|r| {
            let mut st = engine.lock();
            if !st.current(r.region, r.epoch) || now >= r.end {
                if st.current(r.region, r.epoch) {
                    if let Some(reg) = st.regions.get_mut(&r.region) {
                        reg.schedule = None;
                    }
                }
                return false;
            }
            if now >= r.next {
                drop(st);
                if !engine.write_generation(r.region, r.epoch, Trigger::Rate) {
                    return false;
                }
                r.next += r.period;
                if r.next < now {
                    // Fell behind: skip missed ticks rather than bursting to catch up.
                    r.next = now + r.period;
                }
            }
            true
        });
        let timeout = rates
            .iter()
            .map(|r| r.next.min(r.end))
            .min()
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_secs(3600));
        match jobs.recv_timeout(timeout) {
            Ok(Job::Run {
                region,
                epoch,
                schedule,
            }) => match schedule {
                Schedule::Burst { count } => {
                    for _ in 0..count {
                        if !engine.write_generation(region, epoch, Trigger::Burst) {
                            break;
                        }
                    }
                    let mut st = engine.lock();
                    if st.current(region, epoch) {
                        if let Some(r) = st.regions.get_mut(&region) {
                            r.schedule = None;
                        }
                    }
                }
                Schedule::Rate { hz, duration } => {
                    let now = Instant::now();
                    rates.push(RateJob {
                        region,
                        epoch,
                        period: Duration::from_secs(1) / hz.max(1),
                        next: now,
                        end: now + duration,
                    });
                }
                Schedule::OnWriteback { .. } => {}
            },
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The block observer half of the engine.
///
/// The block device copies an OUT request's data in 4 KiB chunks and calls `mid_copy(done)`
/// before reading the chunk that starts at data offset `done` (`before_copy` plays that role
/// for the first chunk). For each armed posted page at data offset `p` (the page must lie
/// inside one segment), with halfway point `h = p + 2048`:
///
/// 1. at the hook before the chunk containing byte `h` is read, the observer writes sectors
///    4..7 of generation `g+1` (none of them have been read yet);
/// 2. at the first hook with `done >= h` (all of the first half read, still generation `g`),
///    it writes sectors 0..3 of generation `g+1` — the page is now entirely `g+1`.
///
/// Net effect: exactly as if a full-page DMA of `g+1` landed while the copy was at the
/// page's halfway point; the disk receives a block whose sectors 0..3 are `g` and 4..7 are
/// `g+1` (a [`proto::stamp::dma::BlockClass::Mixed`] block). Both halves are logged (2048 bytes
/// each, trigger `Writeback { seq }`).
#[derive(Clone)]
pub struct DmaObserver {
    engine: Arc<Engine>,
}

impl DmaObserver {
    /// An observer injecting into `engine`'s regions started with `OnWriteback`.
    pub fn new(engine: Arc<Engine>) -> Self {
        DmaObserver { engine }
    }

    /// The hook at data offset `done` (`finish`: the copy ended). Only the armed pages whose
    /// halfway point is before the end of the coming chunk are looked at, and finished ones
    /// leave the front of the list, so a request's whole copy costs O(pages), not O(pages²)
    /// per chunk as it used to.
    fn step(st: &mut EngineState, seq: u64, done: u64, finish: bool) {
        let Some(mut list) = st.pending.remove(&seq) else {
            return;
        };
        for p in list.iter_mut() {
            let h = p.data_off + (PAGE as u64) / 2;
            if !finish && h >= done.saturating_add(COPY_CHUNK) {
                break; // in data-offset order: the rest is for later hooks
            }
            let posted = st
                .regions
                .get(&p.region)
                .and_then(|r| r.pages.get(p.pos))
                .is_some_and(|pg| pg.gpa == p.gpa);
            if p.phase == 2 || !posted || (p.phase == 0 && h < done) {
                p.phase = 2; // done, returned, or its moment passed unseen
                continue;
            }
            let pos = p.pos;
            if p.phase == 0 && !finish {
                let g = st.regions[&p.region].pages[pos].generation + 1;
                p.generation = g;
                st.write_page_range(p.region, pos, g, 4..8, Trigger::Writeback { seq });
                st.stats.writeback_injections += 1;
                if let Some(r) = st.regions.get_mut(&p.region) {
                    r.triggers += 1;
                }
                p.phase = 1;
            }
            if p.phase == 1 && (done >= h || finish) {
                st.write_page_range(
                    p.region,
                    pos,
                    p.generation,
                    0..4,
                    Trigger::Writeback { seq },
                );
                p.phase = 2;
            }
        }
        while list.front().is_some_and(|p| p.phase == 2) {
            list.pop_front();
        }
        if !list.is_empty() && !finish {
            st.pending.insert(seq, list);
        }
    }
}

impl BlockObserver for DmaObserver {
    fn before_copy(&self, req: &RequestView) {
        if req.kind != RequestKind::Out {
            return;
        }
        let mut st = self.engine.lock();
        if !st
            .regions
            .values()
            .any(|r| matches!(r.schedule, Some(Schedule::OnWriteback { .. })))
        {
            return;
        }
        let mut list = VecDeque::new();
        let mut off = 0u64;
        let mut budget: HashMap<u32, u64> = HashMap::new();
        for seg in &req.segments {
            let s = seg.addr;
            let e = s.saturating_add(u64::from(seg.len));
            let lo = s.saturating_sub(PAGE as u64 - 1);
            for (&gpa, &(region, pos)) in st.by_gpa.range(lo..e) {
                if gpa < s || gpa.saturating_add(PAGE as u64) > e {
                    continue; // page not wholly inside this segment
                }
                let Some(r) = st.regions.get(&region) else {
                    continue;
                };
                let Some(Schedule::OnWriteback { max_triggers }) = r.schedule else {
                    continue;
                };
                let used = budget.entry(region).or_insert(r.triggers);
                if max_triggers != 0 && *used >= max_triggers {
                    continue;
                }
                *used += 1;
                list.push_back(Pending {
                    region,
                    pos,
                    gpa,
                    data_off: off + (gpa - s),
                    phase: 0,
                    generation: 0,
                });
            }
            off += u64::from(seg.len);
        }
        if !list.is_empty() {
            st.pending.insert(req.seq, list);
            Self::step(&mut st, req.seq, 0, false);
        }
    }

    fn mid_copy(&self, req: &RequestView, copied_bytes: u64) {
        if req.kind != RequestKind::Out {
            return;
        }
        let mut st = self.engine.lock();
        if st.pending.contains_key(&req.seq) {
            Self::step(&mut st, req.seq, copied_bytes, false);
        }
    }

    fn after_copy(&self, req: &RequestView, _status: u8) {
        let mut st = self.engine.lock();
        if st.pending.contains_key(&req.seq) {
            Self::step(&mut st, req.seq, req.len(), true);
        }
    }
}
