//! The `DmaPin` virtio device: queue 0 ("dma") receives pinned pages, queue 1 ("ctl")
//! receives START/STOP/RETURN messages. See the module documentation of [`super`] for the
//! wire formats.

use std::io;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemory, Permissions};
use vmm_sys_util::eventfd::EventFd;
use zerocopy::{FromZeros, IntoBytes};

use proto::dma_log::DmaLogWriter;
use proto::dmapin::wire::{
    VirtioDmapinBufHdr, VirtioDmapinBufStatus, VirtioDmapinCtl, BUF_HDR_LEN, BUF_STATUS_LEN,
    CTL_LEN, CTL_STATUS_LEN,
};
use proto::dmapin::{ctl_status, op, schedule, CTL_QUEUE, DEVICE_ID, DMA_QUEUE, MAX_BURST};
use proto::stamp::dma::PAGE;

use super::engine::{run_engine_thread, DmaObserver, DmaStats, Engine, Job, PostedPage, Schedule};
use crate::virtio::chain::{pop_chain, Desc};
use crate::virtio::worker::Worker;
use crate::virtio::{features, queue_bit, ActivateError, DeviceNotifier, GuestMem, VirtioDevice};

/// How to build a [`DmaPin`].
#[derive(Clone, Debug)]
pub struct DmaPinConfig {
    /// DMA log file; `None` disables logging.
    pub log: Option<PathBuf>,
    /// Maximum number of regions.
    pub max_regions: usize,
    /// Maximum number of posted pages (all regions together).
    pub max_pages: usize,
    /// Queue sizes offered: (dma, ctl).
    pub queue_sizes: [u16; 2],
    /// Most records the DMA log takes ([`DEFAULT_LOG_LIMIT`]: 1 GiB). Once it is full the
    /// device makes no more DMA writes (each refused one is counted in
    /// [`DmaStats::refused_log_full`]), so the log stays a complete record of what the device
    /// wrote.
    pub log_limit: u64,
}

/// Default [`DmaPinConfig::log_limit`]: 2^24 records of 64 bytes, 1 GiB.
pub const DEFAULT_LOG_LIMIT: u64 = 1 << 24;

impl Default for DmaPinConfig {
    fn default() -> Self {
        DmaPinConfig {
            log: None,
            max_regions: 64,
            max_pages: 1 << 16,
            queue_sizes: [1024, 64],
            log_limit: DEFAULT_LOG_LIMIT,
        }
    }
}

/// Why [`DmaPin::new`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DmaPinError {
    /// The DMA log file could not be created.
    #[error("cannot create DMA log {path}: {source}")]
    Log {
        /// The log file asked for in [`DmaPinConfig::log`].
        path: PathBuf,
        /// The error from creating it or writing its header.
        source: io::Error,
    },
    /// One of [`DmaPinConfig::queue_sizes`] is not a power of two in 2..=32768 (split
    /// virtqueue sizes are powers of two up to 32768, virtio 1.2 §2.7).
    #[error("queue size {0} is not a power of two in 2..=32768")]
    QueueSize(u16),
}

/// VMM-side handle: counters, log flush, region inspection; usable after the device was
/// boxed into a transport.
#[derive(Clone)]
pub struct DmaPinHandle {
    engine: Arc<Engine>,
}

impl DmaPinHandle {
    /// DMA and queue counters so far.
    pub fn stats(&self) -> DmaStats {
        self.engine.lock().stats
    }
    /// Flush and fdatasync the DMA log.
    pub fn flush(&self) -> io::Result<()> {
        self.engine.lock().flush_log()
    }
    /// Posted pages of `region`, in posting order.
    pub fn pages(&self, region: u32) -> Option<Vec<PostedPage>> {
        self.engine
            .lock()
            .regions
            .get(&region)
            .map(|r| r.pages.clone())
    }
    /// Current schedule of `region` (`None`: stopped or unknown).
    pub fn schedule(&self, region: u32) -> Option<Schedule> {
        self.engine.lock().regions.get(&region)?.schedule
    }
    /// The block observer to put in `BlockConfig::observer`.
    pub fn observer(&self) -> Arc<DmaObserver> {
        Arc::new(DmaObserver::new(self.engine.clone()))
    }
    /// The engine (tests, benchmarks).
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }
}

/// The DMA device.
pub struct DmaPin {
    engine: Arc<Engine>,
    config: DmaPinConfig,
    /// The queue thread ("pinvm-dmapin").
    worker: Worker,
    /// The Burst/Rate engine thread ("pinvm-dma"); it exits once the queue thread is gone.
    engine_thread: Option<JoinHandle<()>>,
}

impl DmaPin {
    /// A device with `config`'s limits and queue sizes; creates the DMA log if one is asked
    /// for. The engine thread starts at activation.
    pub fn new(config: DmaPinConfig) -> Result<DmaPin, DmaPinError> {
        for &qs in &config.queue_sizes {
            if !(2..=32768).contains(&qs) || !qs.is_power_of_two() {
                return Err(DmaPinError::QueueSize(qs));
            }
        }
        let log = match &config.log {
            Some(path) => Some(
                DmaLogWriter::create(path).map_err(|source| DmaPinError::Log {
                    path: path.clone(),
                    source,
                })?,
            ),
            None => None,
        };
        Ok(DmaPin {
            engine: Arc::new(Engine::new(log, config.log_limit)),
            config,
            worker: Worker::new("pinvm-dmapin"),
            engine_thread: None,
        })
    }

    /// A handle on this device's engine that stays usable after the device was boxed into a
    /// transport (counters, log flush, regions, the block observer).
    pub fn handle(&self) -> DmaPinHandle {
        DmaPinHandle {
            engine: self.engine.clone(),
        }
    }

    /// Shortcut for `handle().observer()`.
    pub fn observer(&self) -> Arc<DmaObserver> {
        self.handle().observer()
    }

    fn stop_worker(&mut self) {
        // Joining the queue thread drops its `DeviceCore` and with it the job sender, so the
        // engine thread ends too. The queue state only matters to a transport that resumes
        // queues elsewhere.
        let _ = self.worker.stop();
        // A running burst (up to MAX_BURST generations of every posted page, minutes of work)
        // or rate schedule must not hold up a reset or the machine's teardown: cancel every
        // schedule, so the engine stops within PAGES_PER_LOCK page writes.
        self.engine.cancel_schedules();
        if let Some(t) = self.engine_thread.take() {
            let _ = t.join();
        }
        let mut st = self.engine.lock();
        // Reset: all posted buffers are forgotten (the driver re-posts after re-init).
        st.reset();
        let _ = st.flush_log();
    }
}

/// State the device thread owns besides the engine.
pub struct DeviceCore {
    /// The engine shared with the engine thread, the handle and the block observer.
    pub engine: Arc<Engine>,
    /// [`DmaPinConfig::max_regions`]: pages for a new region beyond this many are refused.
    pub max_regions: usize,
    /// [`DmaPinConfig::max_pages`]: pages beyond this many (all regions) are refused.
    pub max_pages: usize,
    /// Where START sends Burst and Rate jobs for the engine thread.
    pub jobs: Sender<Job>,
}

impl DeviceCore {
    /// Handle one dma-queue chain. `Some(len)`: return it now with that used length (refused:
    /// 0, with a zeroed status if the chain has a usable status buffer); `None`: the page was
    /// accepted and is held until RETURN.
    pub fn handle_dma<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        head: u16,
        descs: &[Desc],
    ) -> Option<u32> {
        let status_ok = |s: &Desc| {
            s.writable
                && s.len >= BUF_STATUS_LEN
                && mem.check_range(
                    GuestAddress(s.addr),
                    BUF_STATUS_LEN as usize,
                    Permissions::Write,
                )
        };
        let refuse = |c: &Self| {
            if let Some(s) = descs.get(2).filter(|s| descs.len() == 3 && status_ok(s)) {
                let zero = VirtioDmapinBufStatus::new_zeroed();
                let _ = mem.write_slice(zero.as_bytes(), GuestAddress(s.addr));
            }
            c.engine.lock().stats.dma_rejected += 1;
            Some(0)
        };
        let [h, d, s] = descs else {
            return refuse(self);
        };
        if h.writable
            || h.len < BUF_HDR_LEN
            || !d.writable
            || (d.len as usize) < PAGE
            || !status_ok(s)
            || !mem.check_range(
                GuestAddress(h.addr),
                BUF_HDR_LEN as usize,
                Permissions::Read,
            )
            || !mem.check_range(GuestAddress(d.addr), PAGE, Permissions::Write)
        {
            return refuse(self);
        }
        let mut hdr = VirtioDmapinBufHdr::new_zeroed();
        if mem
            .read_slice(hdr.as_mut_bytes(), GuestAddress(h.addr))
            .is_err()
        {
            return refuse(self);
        }
        let (region, index) = (hdr.region_id.get(), hdr.page_index.get());
        let (file_offset, gpa) = (hdr.file_offset.get(), hdr.gpa.get());
        if gpa != d.addr {
            return refuse(self);
        }
        let mut st = self.engine.lock();
        let new_region = !st.regions.contains_key(&region);
        if st.total_pages() >= self.max_pages
            || (new_region && st.regions.len() >= self.max_regions)
            || st.by_gpa.contains_key(&d.addr)
            || st
                .regions
                .get(&region)
                .is_some_and(|r| r.pages.iter().any(|p| p.index == index))
        {
            drop(st);
            return refuse(self);
        }
        let pages = &mut st.regions.entry(region).or_default().pages;
        let pos = pages.len();
        pages.push(PostedPage {
            index,
            gpa: d.addr,
            file_offset,
            generation: 0,
            head,
            status_gpa: s.addr,
            dma_writes: 0,
        });
        st.by_gpa.insert(d.addr, (region, pos));
        st.stats.pages_posted += 1;
        None
    }

    /// Handle one ctl chain. Returns (used length, pages to return on the dma queue).
    pub fn handle_ctl<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        descs: &[Desc],
    ) -> (u32, Vec<PostedPage>) {
        let mut returned = Vec::new();
        // The status buffer: the first device-writable descriptor, which must come after the
        // message and be the last one.
        let status_addr = match descs {
            [m, s] if !m.writable && s.writable && s.len >= CTL_STATUS_LEN => mem
                .check_range(
                    GuestAddress(s.addr),
                    CTL_STATUS_LEN as usize,
                    Permissions::Write,
                )
                .then_some(s.addr),
            _ => None,
        };
        let Some(status_addr) = status_addr else {
            self.engine.lock().stats.ctl_errors += 1;
            return (0, returned);
        };
        let m = descs[0];
        let mut msg = VirtioDmapinCtl::new_zeroed();
        let status = if m.len < CTL_LEN
            || mem
                .read_slice(msg.as_mut_bytes(), GuestAddress(m.addr))
                .is_err()
        {
            ctl_status::INVALID
        } else {
            self.ctl(&msg, &mut returned)
        };
        if status != ctl_status::OK {
            self.engine.lock().stats.ctl_errors += 1;
        }
        if mem
            .write_obj(status.to_le(), GuestAddress(status_addr))
            .is_err()
        {
            return (0, returned);
        }
        (CTL_STATUS_LEN, returned)
    }

    fn ctl(&self, msg: &VirtioDmapinCtl, returned: &mut Vec<PostedPage>) -> u32 {
        let (opc, region, sched) = (msg.cmd.get(), msg.region_id.get(), msg.schedule.get());
        let params = msg.params.map(|p| p.get());
        let mut st = self.engine.lock();
        if !st.regions.contains_key(&region) {
            return if matches!(opc, op::START | op::STOP | op::RETURN) {
                ctl_status::NO_REGION
            } else {
                ctl_status::INVALID
            };
        }
        match opc {
            op::START => {
                let schedule = match sched {
                    schedule::BURST if (1..=MAX_BURST).contains(&params[0]) => {
                        Schedule::Burst { count: params[0] }
                    }
                    schedule::RATE
                        if (1..=100_000).contains(&params[0])
                            && (1..=86_400_000).contains(&params[1]) =>
                    {
                        Schedule::Rate {
                            hz: params[0] as u32,
                            duration: Duration::from_millis(params[1]),
                        }
                    }
                    schedule::ON_WRITEBACK => Schedule::OnWriteback {
                        max_triggers: params[0],
                    },
                    _ => return ctl_status::INVALID,
                };
                let r = st.regions.get_mut(&region).expect("checked");
                r.epoch += 1;
                r.schedule = Some(schedule);
                r.triggers = 0;
                let epoch = r.epoch;
                drop(st);
                if !matches!(schedule, Schedule::OnWriteback { .. }) {
                    let _ = self.jobs.send(Job::Run {
                        region,
                        epoch,
                        schedule,
                    });
                }
                ctl_status::OK
            }
            op::STOP => {
                let r = st.regions.get_mut(&region).expect("checked");
                r.epoch += 1;
                r.schedule = None;
                ctl_status::OK
            }
            op::RETURN => {
                let r = st.regions.remove(&region).expect("checked");
                for p in &r.pages {
                    st.by_gpa.remove(&p.gpa);
                }
                returned.extend(r.pages);
                ctl_status::OK
            }
            _ => ctl_status::INVALID,
        }
    }
}

/// Fill in a returned page's status; the used length is the bytes the device wrote into
/// the chain's writable buffers (the page if it was ever written, plus the status).
fn return_page<M: GuestMemory + ?Sized>(mem: &M, p: &PostedPage) -> u32 {
    let st = VirtioDmapinBufStatus {
        dma_writes: p.dma_writes.into(),
        flags: 0.into(),
    };
    if mem
        .write_slice(st.as_bytes(), GuestAddress(p.status_gpa))
        .is_err()
    {
        return 0;
    }
    let page = if p.dma_writes > 0 { PAGE as u32 } else { 0 };
    page + BUF_STATUS_LEN
}

/// Drain both queues (dma, ctl) until no new chains arrived after notifications were
/// re-enabled, then notify the driver once for every queue whose `needs_notification` said
/// so. `Err`: a ring is broken.
///
/// This is the whole per-notification work of the device, whichever queue was notified and
/// whichever transport delivered the notification: the [`Worker`] of [`DmaPin`] calls it,
/// and so can any other event loop that owns both queues.
pub fn process_queues<M: GuestMemory>(
    core: &DeviceCore,
    mem: &M,
    queues: &mut [Queue; 2],
    notifier: &dyn DeviceNotifier,
) -> Result<(), virtio_queue::Error> {
    let [dma, ctl] = queues;
    let mut notify = 0;
    let mut needs = |q: &mut Queue, index: usize| -> Result<(), virtio_queue::Error> {
        if q.needs_notification(mem)? {
            notify |= queue_bit(index);
        }
        Ok(())
    };
    loop {
        dma.disable_notification(mem)?;
        while let Some(chain) = pop_chain(dma, mem, 3)? {
            if let Some(len) = core.handle_dma(mem, chain.head, &chain.descs) {
                dma.add_used(mem, chain.head, len)?;
                needs(dma, DMA_QUEUE)?;
            }
        }
        ctl.disable_notification(mem)?;
        while let Some(chain) = pop_chain(ctl, mem, 2)? {
            let (len, returned) = core.handle_ctl(mem, &chain.descs);
            // Return the region's buffers before answering, so the driver sees them when it
            // processes the reply.
            for p in returned {
                let len = return_page(mem, &p);
                dma.add_used(mem, p.head, len)?;
                needs(dma, DMA_QUEUE)?;
            }
            ctl.add_used(mem, chain.head, len)?;
            needs(ctl, CTL_QUEUE)?;
        }
        let a = dma.enable_notification(mem)?;
        let b = ctl.enable_notification(mem)?;
        if !a && !b {
            break;
        }
    }
    if notify != 0 {
        notifier.notify_used(notify);
    }
    Ok(())
}

impl VirtioDevice for DmaPin {
    fn device_type(&self) -> u32 {
        DEVICE_ID
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.config.queue_sizes
    }

    fn features(&self) -> u64 {
        features::VERSION_1 | features::RING_EVENT_IDX
    }

    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }

    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    fn activate(
        &mut self,
        mem: GuestMem,
        _acked_features: u64,
        queues: Vec<Queue>,
        notifier: Arc<dyn DeviceNotifier>,
        queue_evts: Vec<EventFd>,
    ) -> Result<(), ActivateError> {
        let claimed = self.worker.claim(2, queues, queue_evts)?;
        self.engine.lock().mem = Some(mem.clone());
        let (tx, rx) = channel();
        let engine = self.engine.clone();
        let engine_thread = std::thread::Builder::new()
            .name("pinvm-dma".into())
            .spawn(move || run_engine_thread(engine, rx))
            .map_err(ActivateError::Thread)?;
        let core = DeviceCore {
            engine: self.engine.clone(),
            max_regions: self.config.max_regions,
            max_pages: self.config.max_pages,
            jobs: tx,
        };
        // Dropping `core` (with the queue thread, or at once if it cannot start) drops the job
        // sender: the engine thread exits.
        let started = self
            .worker
            .start(claimed, mem, notifier, move |mem, queues, notifier| {
                let queues: &mut [Queue; 2] = queues.try_into().expect("claimed two queues");
                process_queues(&core, mem, queues, notifier)
            });
        if let Err(e) = started {
            let _ = engine_thread.join();
            return Err(e);
        }
        self.engine_thread = Some(engine_thread);
        Ok(())
    }

    fn reset(&mut self) {
        self.stop_worker();
    }
}

impl Drop for DmaPin {
    fn drop(&mut self) {
        self.stop_worker();
    }
}
