//! Host-only tests of the DMA device: hand-built virtqueues in guest memory
//! (`virtio::testing`), the engine, the OnWriteback race against a real block device, and a
//! bandwidth benchmark (`cargo test -p devices --release -- --ignored dma_bandwidth
//! --nocapture`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vm_memory::{Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
use vmm_sys_util::tempdir::TempDir;

use proto::dma_log::{DmaLog, Trigger};
use proto::dmapin::{ctl_status, op, schedule, MAX_BURST};
use proto::stamp::dma::{classify_block, encode_page, BlockClass, PAGE};

use super::device::{DmaPin, DmaPinConfig, DmaPinHandle};
use super::engine::{Engine, PostedPage, Region};
use crate::block::disk::CowDisk;
use crate::block::{process_queue, Block, BlockConfig};
use crate::virtio::testing::{guest_memory, RawDesc, TestQueue, F_NEXT};
use crate::virtio::{Interrupt, VirtioDevice};

const MEM: usize = 4 << 20;
const DMA_Q: u64 = 0x1000;
const CTL_Q: u64 = 0x3000;
const BLK_Q: u64 = 0x5000;
const HDR: u64 = 0x10000;
const MSG: u64 = 0x20000;
const STATUS: u64 = 0x28000;
const BLK_HDR: u64 = 0x30000;
const BLK_STATUS: u64 = 0x38000;
const DSTATUS: u64 = 0x2c000;
const PAGES: u64 = 0x100000;

struct Env {
    dir: TempDir,
    mem: GuestMemoryMmap,
    dma: TestQueue,
    ctl: TestQueue,
    evts: Vec<EventFd>,
    dev: DmaPin,
    handle: DmaPinHandle,
    nhdr: u64,
    nmsg: u64,
}

fn env_with(f: impl FnOnce(&mut DmaPinConfig, &Path)) -> Env {
    let dir = TempDir::new().unwrap();
    let mut config = DmaPinConfig {
        queue_sizes: [64, 8],
        ..Default::default()
    };
    f(&mut config, dir.as_path());
    let mem = guest_memory(MEM);
    let dma = TestQueue::new(&mem, DMA_Q, 64);
    let ctl = TestQueue::new(&mem, CTL_Q, 8);
    let mut dev = DmaPin::new(config).unwrap();
    let evts: Vec<EventFd> = (0..2)
        .map(|_| EventFd::new(EFD_NONBLOCK).unwrap())
        .collect();
    let interrupt = Arc::new(Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap()));
    dev.activate(
        GuestMemoryAtomic::new(mem.clone()),
        0,
        vec![dma.create_queue(), ctl.create_queue()],
        interrupt,
        evts.iter().map(|e| e.try_clone().unwrap()).collect(),
    )
    .unwrap();
    Env {
        dir,
        handle: dev.handle(),
        dev,
        mem,
        dma,
        ctl,
        evts,
        nhdr: 0,
        nmsg: 0,
    }
}

fn env() -> Env {
    env_with(|_, _| {})
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn page_gpa(i: u64) -> u64 {
    PAGES + i * PAGE as u64
}

impl Env {
    /// Write a 24-byte dma header; returns (header GPA, status GPA for the chain).
    fn header(&mut self, region: u32, page: u32, file_offset: u64, gpa: u64) -> (u64, u64) {
        let i = self.nhdr;
        self.nhdr += 1;
        let mut h = [0u8; 24];
        h[..4].copy_from_slice(&region.to_le_bytes());
        h[4..8].copy_from_slice(&page.to_le_bytes());
        h[8..16].copy_from_slice(&file_offset.to_le_bytes());
        h[16..].copy_from_slice(&gpa.to_le_bytes());
        let a = HDR + 32 * i;
        let st = DSTATUS + 8 * i;
        self.mem.write_slice(&h, GuestAddress(a)).unwrap();
        self.mem.write_obj(u64::MAX, GuestAddress(st)).unwrap();
        (a, st)
    }

    /// Post a page; returns (chain head, status GPA).
    fn post(&mut self, region: u32, page: u32, gpa: u64) -> (u16, u64) {
        let (h, st) = self.header(region, page, u64::from(page) * 4096, gpa);
        let head = self
            .dma
            .add_chain(&[(h, 24, false), (gpa, 4096, true), (st, 8, true)]);
        self.dma.publish(head);
        self.evts[0].write(1).unwrap();
        (head, st)
    }

    /// Send a ctl message, wait for the reply, return (used len, status).
    fn ctl(&mut self, opc: u32, region: u32, sched: u32, params: [u64; 4]) -> (u32, u32) {
        let i = self.nmsg;
        self.nmsg += 1;
        let mut m = [0u8; 48];
        m[..4].copy_from_slice(&opc.to_le_bytes());
        m[4..8].copy_from_slice(&region.to_le_bytes());
        m[8..12].copy_from_slice(&sched.to_le_bytes());
        for (k, p) in params.iter().enumerate() {
            m[16 + 8 * k..24 + 8 * k].copy_from_slice(&p.to_le_bytes());
        }
        let ma = MSG + 64 * i;
        let sa = STATUS + 4 * i;
        self.mem.write_slice(&m, GuestAddress(ma)).unwrap();
        self.mem
            .write_obj(0xdead_beefu32, GuestAddress(sa))
            .unwrap();
        let head = self.ctl.add_chain(&[(ma, 48, false), (sa, 4, true)]);
        self.ctl.publish(head);
        self.evts[1].write(1).unwrap();
        let want = i as u16 + 1;
        wait_for("ctl reply", || self.ctl.used_idx() == want);
        let (id, len) = self.ctl.used_elem(i as u16);
        assert_eq!(id, u32::from(head));
        (len, self.mem.read_obj(GuestAddress(sa)).unwrap())
    }

    fn page(&self, gpa: u64) -> [u8; PAGE] {
        let mut b = [0u8; PAGE];
        self.mem.read_slice(&mut b, GuestAddress(gpa)).unwrap();
        b
    }

    fn wait_pages(&self, region: u32, n: usize) {
        wait_for("pages posted", || {
            self.handle.pages(region).map(|p| p.len()) == Some(n)
        });
    }
}

#[test]
fn burst_writes_last_generation_and_return_releases_buffers() {
    let mut e = env_with(|c, d| c.log = Some(d.join("dma.log")));
    let posted: Vec<(u16, u64)> = (0..3)
        .map(|i| e.post(5, i, page_gpa(u64::from(i))))
        .collect();
    e.wait_pages(5, 3);
    assert_eq!(e.dma.used_idx(), 0, "accepted pages are held");
    assert_eq!(e.ctl(op::START, 5, schedule::BURST, [4, 0, 0, 0]), (4, 0));
    wait_for("burst done", || e.handle.stats().writes == 12);
    wait_for("schedule cleared", || e.handle.schedule(5).is_none());
    for i in 0..3u32 {
        assert_eq!(
            classify_block(&e.page(page_gpa(u64::from(i)))),
            BlockClass::Uniform {
                region: 5,
                page: i,
                generation: 4
            }
        );
    }
    assert_eq!(e.ctl(op::RETURN, 5, 0, [0; 4]), (4, ctl_status::OK));
    assert_eq!(e.dma.used_idx(), 3);
    let mut got: Vec<(u32, u32)> = (0..3).map(|i| e.dma.used_elem(i)).collect();
    got.sort();
    let mut want: Vec<(u32, u32)> = posted
        .iter()
        .map(|&(h, _)| (u32::from(h), 4096 + 8))
        .collect();
    want.sort();
    assert_eq!(got, want);
    for &(_, st) in &posted {
        // virtio_dmapin_buf_status: dma_writes = 4, flags = 0.
        assert_eq!(e.mem.read_obj::<u64>(GuestAddress(st)).unwrap(), 4);
    }
    assert!(e.handle.pages(5).is_none());
    // Region gone: further ops on it fail.
    assert_eq!(e.ctl(op::STOP, 5, 0, [0; 4]).1, ctl_status::NO_REGION);

    e.handle.flush().unwrap();
    let recs: Vec<_> = DmaLog::open(&e.dir.as_path().join("dma.log"))
        .unwrap()
        .records()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(recs.len(), 12);
    for (k, r) in recs.iter().enumerate() {
        assert_eq!(r.trigger, Trigger::Burst);
        assert_eq!(r.region, 5);
        assert_eq!(r.page, (k % 3) as u32);
        assert_eq!(r.generation, (k / 3) as u64 + 1);
        assert_eq!(r.gpa, page_gpa((k % 3) as u64));
        assert_eq!(r.file_offset, (k % 3) as u64 * 4096);
        assert_eq!(r.bytes, 4096);
    }
    assert!(recs.windows(2).all(|w| w[0].time_ns <= w[1].time_ns));
    drop(e.dev);
}

#[test]
fn rate_and_stop() {
    let mut e = env();
    e.post(1, 0, page_gpa(0));
    e.wait_pages(1, 1);
    // 1 kHz for 10 s, stopped after a few generations.
    assert_eq!(
        e.ctl(op::START, 1, schedule::RATE, [1000, 10_000, 0, 0]).1,
        0
    );
    wait_for("some rate writes", || e.handle.stats().writes >= 5);
    assert_eq!(e.ctl(op::STOP, 1, 0, [0; 4]).1, 0);
    let n = e.handle.stats().writes;
    std::thread::sleep(Duration::from_millis(50));
    assert!(e.handle.stats().writes <= n + 1);
    let g = e.handle.pages(1).unwrap()[0].generation;
    assert!(g >= 5);
    assert!(matches!(
        classify_block(&e.page(page_gpa(0))),
        BlockClass::Uniform { region: 1, page: 0, generation } if generation == g
    ));
}

#[test]
fn hostile_dma_chains_are_refused() {
    let mut e = env_with(|c, _| {
        c.max_pages = 3;
        c.max_regions = 2;
    });
    let p0 = page_gpa(0);
    let (h, st) = e.header(1, 0, 0, p0);
    let (hx, _) = e.header(1, 0, 0, MEM as u64 - 2048);
    let (hw, _) = e.header(1, 0, 0, u64::MAX - 100);
    let (hm, _) = e.header(1, 0, 0, page_gpa(1)); // gpa field disagrees with desc 1
    let out = MEM as u64 + 4096;
    let cases: Vec<Vec<(u64, u32, bool)>> = vec![
        vec![(h, 24, false)],                                   // no page
        vec![(h, 24, false), (p0, 4096, true)],                 // no status
        vec![(h, 24, true), (p0, 4096, true), (st, 8, true)],   // header writable
        vec![(h, 16, false), (p0, 4096, true), (st, 8, true)],  // short header
        vec![(h, 24, false), (p0, 2048, true), (st, 8, true)],  // short page
        vec![(h, 24, false), (p0, 4096, false), (st, 8, true)], // page read-only
        vec![(h, 24, false), (p0, 4096, true), (st, 4, true)],  // short status
        vec![(h, 24, false), (p0, 4096, true), (st, 8, false)], // status read-only
        vec![(h, 24, false), (p0, 4096, true), (out, 8, true)], // status outside
        vec![
            (hx, 24, false),
            (MEM as u64 - 2048, 4096, true),
            (st, 8, true),
        ], // page past end
        vec![(hw, 24, false), (u64::MAX - 100, 4096, true), (st, 8, true)], // wrapping GPA
        vec![(out, 24, false), (p0, 4096, true), (st, 8, true)], // header outside
        vec![(hm, 24, false), (p0, 4096, true), (st, 8, true)], // gpa mismatch
        vec![
            (h, 24, false),
            (p0, 4096, true),
            (page_gpa(1), 4096, true),
            (st, 8, true),
        ], // four buffers
    ];
    let n = cases.len() as u16;
    for bufs in &cases {
        let head = e.dma.add_chain(bufs);
        e.dma.publish(head);
    }
    e.evts[0].write(1).unwrap();
    wait_for("refusals", || e.dma.used_idx() == n);
    for i in 0..n {
        assert_eq!(e.dma.used_elem(i).1, 0);
    }
    assert_eq!(e.handle.stats().dma_rejected, u64::from(n));
    // Refusals with a usable status buffer zero it.
    assert_eq!(e.mem.read_obj::<u64>(GuestAddress(st)).unwrap(), 0);
    assert!(e.handle.pages(1).is_none());

    // Caps: 2 regions, 3 pages; duplicates refused.
    e.post(1, 0, page_gpa(0));
    e.post(2, 0, page_gpa(1));
    e.post(3, 0, page_gpa(2)); // third region
    e.post(1, 0, page_gpa(3)); // duplicate page index
    e.post(2, 1, page_gpa(0)); // duplicate GPA
    e.post(1, 1, page_gpa(4));
    e.post(1, 2, page_gpa(5)); // fourth page
    wait_for("caps", || e.handle.stats().dma_rejected == u64::from(n) + 4);
    assert_eq!(e.handle.pages(1).unwrap().len(), 2);
    assert_eq!(e.handle.pages(2).unwrap().len(), 1);
    assert!(e.handle.pages(3).is_none());
    assert_eq!(e.dma.used_idx(), n + 4);

    // A chain looping on itself only yields its descriptors up to the queue size.
    let (d, _) = e.header(1, 9, 0, 0);
    let slot = 0u16;
    e.dma.write_desc(
        slot,
        RawDesc {
            addr: d,
            len: 24,
            flags: F_NEXT,
            next: slot,
        },
    );
    e.dma.publish(slot);
    e.evts[0].write(1).unwrap();
    wait_for("loop refused", || e.dma.used_idx() == n + 5);
    assert_eq!(e.dma.used_elem(n + 4).1, 0);
}

#[test]
fn hostile_ctl_messages() {
    let mut e = env();
    e.post(1, 0, page_gpa(0));
    e.wait_pages(1, 1);
    assert_eq!(
        e.ctl(op::START, 9, schedule::BURST, [1, 0, 0, 0]).1,
        ctl_status::NO_REGION
    );
    assert_eq!(e.ctl(77, 1, 0, [0; 4]).1, ctl_status::INVALID);
    assert_eq!(e.ctl(op::START, 1, 99, [0; 4]).1, ctl_status::INVALID);
    assert_eq!(
        e.ctl(op::START, 1, schedule::BURST, [0; 4]).1,
        ctl_status::INVALID
    );
    assert_eq!(
        e.ctl(op::START, 1, schedule::BURST, [u64::MAX, 0, 0, 0]).1,
        ctl_status::INVALID
    );
    assert_eq!(
        e.ctl(op::START, 1, schedule::RATE, [0, 10, 0, 0]).1,
        ctl_status::INVALID
    );
    // Short message: status INVALID.
    let head = e.ctl.add_chain(&[(MSG, 8, false), (STATUS, 4, true)]);
    e.ctl.publish(head);
    // No status buffer: returned with len 0.
    let head2 = e.ctl.add_chain(&[(MSG, 48, false)]);
    e.ctl.publish(head2);
    // Status buffer outside memory.
    let head3 = e.ctl.add_chain(&[(MSG, 48, false), (MEM as u64, 4, true)]);
    e.ctl.publish(head3);
    e.evts[1].write(1).unwrap();
    wait_for("ctl", || e.ctl.used_idx() == 9);
    assert_eq!(e.ctl.used_elem(6).1, 4);
    assert_eq!(
        e.mem.read_obj::<u32>(GuestAddress(STATUS)).unwrap(),
        ctl_status::INVALID
    );
    assert_eq!(e.ctl.used_elem(7).1, 0);
    assert_eq!(e.ctl.used_elem(8).1, 0);
    assert_eq!(e.handle.stats().writes, 0);
}

struct BlockEnv {
    _dir: TempDir,
    block: Block,
    tq: TestQueue,
    queue: virtio_queue::Queue,
    interrupt: Interrupt,
    n: u64,
}

impl BlockEnv {
    fn new(
        mem: &GuestMemoryMmap,
        observer: Arc<dyn crate::block::observer::BlockObserver>,
    ) -> Self {
        let dir = TempDir::new().unwrap();
        let base = dir.as_path().join("base.img");
        std::fs::write(&base, vec![0x5au8; 1 << 20]).unwrap();
        let disk = CowDisk::open_in(&base, dir.as_path()).unwrap();
        let block = Block::new(
            disk,
            BlockConfig {
                observer: Some(observer),
                queue_size: 16,
                ..Default::default()
            },
        )
        .unwrap();
        let tq = TestQueue::new(mem, BLK_Q, 16);
        BlockEnv {
            _dir: dir,
            block,
            queue: tq.create_queue(),
            tq,
            interrupt: Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap()),
            n: 0,
        }
    }

    /// Serve one OUT request of `data` segments at `sector`; returns its status.
    fn write(&mut self, mem: &GuestMemoryMmap, sector: u64, data: &[(u64, u32)]) -> u8 {
        let h = BLK_HDR + 16 * self.n;
        let st = BLK_STATUS + self.n;
        self.n += 1;
        let mut hdr = [0u8; 16];
        hdr[..4].copy_from_slice(&1u32.to_le_bytes());
        hdr[8..].copy_from_slice(&sector.to_le_bytes());
        mem.write_slice(&hdr, GuestAddress(h)).unwrap();
        let mut bufs = vec![(h, 16, false)];
        bufs.extend(data.iter().map(|&(a, l)| (a, l, false)));
        bufs.push((st, 1, true));
        let head = self.tq.add_chain(&bufs);
        self.tq.publish(head);
        let handle = self.block.handle();
        process_queue(handle.backend(), mem, &mut self.queue, &self.interrupt).unwrap();
        mem.read_obj(GuestAddress(st)).unwrap()
    }

    fn disk(&self, off: u64) -> [u8; PAGE] {
        let mut b = [0u8; PAGE];
        self.block
            .handle()
            .with_backend(|be| be.disk().read_at(&mut b, off))
            .unwrap();
        b
    }
}

/// The key test: a block OUT request covering a posted page lands on disk as a torn block
/// (first half generation g, second half g+1), and the page ends up entirely g+1.
#[test]
fn on_writeback_tears_the_block_on_disk() {
    let mut e = env_with(|c, d| c.log = Some(d.join("dma.log")));
    let p = page_gpa(0);
    let q = page_gpa(1);
    e.post(3, 0, p);
    e.post(3, 1, q);
    e.wait_pages(3, 2);
    let mut blk = BlockEnv::new(&e.mem, e.handle.observer());
    // Generation 1 everywhere, then arm the writeback injection.
    assert_eq!(e.ctl(op::START, 3, schedule::BURST, [1, 0, 0, 0]).1, 0);
    wait_for("burst", || e.handle.stats().writes == 2);
    wait_for("burst done", || e.handle.schedule(3).is_none());
    assert_eq!(e.ctl(op::START, 3, schedule::ON_WRITEBACK, [0; 4]).1, 0);

    // Aligned: one 4 KiB OUT request of page p at sector 8.
    assert_eq!(blk.write(&e.mem, 8, &[(p, 4096)]), 0);
    assert_eq!(
        classify_block(&blk.disk(8 * 512)),
        BlockClass::Mixed {
            region: 3,
            page: 0,
            generations: [1, 1, 1, 1, 2, 2, 2, 2]
        }
    );
    assert_eq!(
        classify_block(&e.page(p)),
        BlockClass::Uniform {
            region: 3,
            page: 0,
            generation: 2
        }
    );

    // Misaligned: an unposted 2 KiB buffer, page q, another 2 KiB; the page straddles two
    // copy chunks and its halfway point is a chunk boundary.
    let other = page_gpa(10);
    e.mem
        .write_slice(&[0x11u8; 4096], GuestAddress(other))
        .unwrap();
    assert_eq!(
        blk.write(
            &e.mem,
            64,
            &[(other, 2048), (q, 4096), (other + 2048, 2048)]
        ),
        0
    );
    let mut torn = [0u8; PAGE];
    blk.block
        .handle()
        .with_backend(|be| be.disk().read_at(&mut torn, 64 * 512 + 2048))
        .unwrap();
    assert_eq!(
        classify_block(&torn),
        BlockClass::Mixed {
            region: 3,
            page: 1,
            generations: [1, 1, 1, 1, 2, 2, 2, 2]
        }
    );
    // Page p again: now 2 | 3.
    assert_eq!(blk.write(&e.mem, 16, &[(p, 4096)]), 0);
    assert!(matches!(
        classify_block(&blk.disk(16 * 512)),
        BlockClass::Mixed {
            page: 0,
            generations: [2, 2, 2, 2, 3, 3, 3, 3],
            ..
        }
    ));
    // Unposted data is untouched and IN requests never trigger.
    assert_eq!(classify_block(&blk.disk(0)), BlockClass::Foreign);
    assert_eq!(e.handle.stats().writeback_injections, 3);

    // STOP disarms.
    assert_eq!(e.ctl(op::STOP, 3, 0, [0; 4]).1, 0);
    assert_eq!(blk.write(&e.mem, 24, &[(p, 4096)]), 0);
    assert_eq!(
        classify_block(&blk.disk(24 * 512)),
        BlockClass::Uniform {
            region: 3,
            page: 0,
            generation: 3
        }
    );

    e.handle.flush().unwrap();
    let recs: Vec<_> = DmaLog::open(&e.dir.as_path().join("dma.log"))
        .unwrap()
        .records()
        .map(|r| r.unwrap())
        .collect();
    // 2 burst writes + 3 injections × 2 halves.
    assert_eq!(recs.len(), 8);
    let wb: Vec<_> = recs[2..].iter().collect();
    assert_eq!(wb[0].trigger, Trigger::Writeback { seq: 1 });
    assert_eq!(
        (wb[0].page_offset, wb[0].bytes, wb[0].gpa),
        (2048, 2048, p + 2048)
    );
    assert_eq!((wb[1].page_offset, wb[1].gpa, wb[1].generation), (0, p, 2));
    assert_eq!(wb[2].trigger, Trigger::Writeback { seq: 2 });
    assert_eq!(wb[4].trigger, Trigger::Writeback { seq: 3 });
    assert_eq!(wb[5].generation, 3);
}

#[test]
fn on_writeback_max_triggers() {
    let mut e = env();
    let p = page_gpa(0);
    e.post(4, 0, p);
    e.wait_pages(4, 1);
    let mut blk = BlockEnv::new(&e.mem, e.handle.observer());
    assert_eq!(
        e.ctl(op::START, 4, schedule::ON_WRITEBACK, [1, 0, 0, 0]).1,
        0
    );
    assert_eq!(blk.write(&e.mem, 0, &[(p, 4096)]), 0);
    assert_eq!(blk.write(&e.mem, 8, &[(p, 4096)]), 0);
    assert_eq!(e.handle.stats().writeback_injections, 1);
    // Never-written page: first half is whatever the guest had (foreign), second half gen 1.
    assert_eq!(classify_block(&blk.disk(0)), BlockClass::Foreign);
    assert!(matches!(
        classify_block(&blk.disk(8 * 512)),
        BlockClass::Uniform { generation: 1, .. }
    ));
}

#[test]
fn reset_is_not_held_up_by_a_giant_burst() {
    let mut e = env();
    for i in 0..16u32 {
        e.post(1, i, page_gpa(u64::from(i)));
    }
    e.wait_pages(1, 16);
    // The largest burst the device accepts: about 16 million page writes.
    assert_eq!(
        e.ctl(op::START, 1, schedule::BURST, [MAX_BURST, 0, 0, 0]).1,
        0
    );
    wait_for("the burst runs", || e.handle.stats().writes > 16);
    let t0 = Instant::now();
    e.dev.reset();
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "reset waited {:?} for the burst",
        t0.elapsed()
    );
    let writes = e.handle.stats().writes;
    assert!(
        writes < 16 * MAX_BURST,
        "the burst ran to its end ({writes} writes)"
    );
}

/// One generation of a region of 65,536 pages (the most a region takes) used to be written
/// under one hold of the engine lock, so a STOP, a reset or the teardown (which cancel under
/// that lock) waited for the rest of the generation. Now the engine writes
/// `PAGES_PER_LOCK` pages per hold and checks for cancellation between holds.
#[test]
fn cancelling_a_65536_page_burst_waits_for_a_chunk_not_a_generation() {
    use super::engine::{run_engine_thread, Job, Schedule, PAGES_PER_LOCK};
    const N: usize = 65_536;
    // Every page distinct in guest memory (256 MiB, touched as the DMA writes them), each
    // write logged: the real cost of a generation.
    let mem = guest_memory(PAGES as usize + N * PAGE);
    let dir = TempDir::new().unwrap();
    let log = proto::dma_log::DmaLogWriter::create(&dir.as_path().join("dma.log")).unwrap();
    let engine = Arc::new(Engine::new(Some(log), 1 << 24));
    {
        let mut st = engine.lock();
        st.mem = Some(GuestMemoryAtomic::new(mem.clone()));
        let mut r = Region {
            schedule: Some(super::engine::Schedule::Burst { count: MAX_BURST }),
            epoch: 1,
            ..Region::default()
        };
        for i in 0..N as u64 {
            r.pages.push(PostedPage {
                index: i as u32,
                gpa: page_gpa(i),
                file_offset: i * 4096,
                generation: 0,
                head: 0,
                status_gpa: 0,
                dma_writes: 0,
            });
        }
        st.regions.insert(1, r);
    }
    // One whole generation, for comparison.
    let t = Instant::now();
    assert!(engine.write_generation(1, 1, Trigger::Burst));
    let generation = t.elapsed();
    assert_eq!(engine.lock().stats.writes, N as u64);

    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn({
        let engine = engine.clone();
        move || run_engine_thread(engine, rx)
    });
    tx.send(Job::Run {
        region: 1,
        epoch: 1,
        schedule: Schedule::Burst { count: MAX_BURST },
    })
    .unwrap();
    wait_for("the burst runs", || {
        engine.lock().stats.writes > (N + N / 8) as u64
    });
    // Whoever takes the lock meanwhile (the device thread for a guest's STOP, the block
    // observer) waits for a chunk at most: sampled over about two generations.
    let mut longest = Duration::ZERO;
    let sampled = Instant::now();
    while sampled.elapsed() < 2 * generation {
        std::thread::sleep(Duration::from_millis(7));
        let t = Instant::now();
        let st = engine.lock();
        longest = longest.max(t.elapsed());
        drop(st);
    }
    let t = Instant::now();
    engine.cancel_schedules();
    drop(tx);
    thread.join().unwrap();
    let stop = t.elapsed();
    let writes = engine.lock().stats.writes;
    eprintln!(
        "65,536-page region: one generation {generation:?}; the lock waited for at most \
         {longest:?} while the burst ran; cancel + join of the running burst {stop:?} \
         ({writes} page writes in all)"
    );
    // A chunk is 1/256 of the generation; allow for a loaded machine.
    assert!(
        longest < generation / 8 + Duration::from_millis(20),
        "the lock waited {longest:?}; a generation takes {generation:?}"
    );
    assert!(
        stop < generation / 8 + Duration::from_millis(20),
        "stopping took {stop:?}; a generation takes {generation:?}, a chunk of {PAGES_PER_LOCK} \
         pages {:?}",
        generation / (N / PAGES_PER_LOCK) as u32
    );
}

#[test]
fn reset_forgets_regions() {
    let mut e = env();
    e.post(1, 0, page_gpa(0));
    e.wait_pages(1, 1);
    e.dev.reset();
    assert!(e.handle.pages(1).is_none());
    e.dev.reset(); // harmless twice
}

/// Benchmark (run with `--release -- --ignored --nocapture`): DMA engine bandwidth writing
/// stamped pages into guest memory vs plain memcpy of the same size.
#[test]
#[ignore]
fn dma_bandwidth() {
    const NPAGES: u64 = 256; // 1 MiB
    const ROUNDS: u64 = 200;
    let mem = guest_memory(MEM);
    let engine = Engine::new(None, 0);
    {
        let mut st = engine.lock();
        st.mem = Some(GuestMemoryAtomic::new(mem.clone()));
        let mut r = Region::default();
        for i in 0..NPAGES {
            r.pages.push(PostedPage {
                index: i as u32,
                gpa: page_gpa(i),
                file_offset: i * 4096,
                generation: 0,
                head: 0,
                status_gpa: 0,
                dma_writes: 0,
            });
            st.by_gpa.insert(page_gpa(i), (1, i as usize));
        }
        st.regions.insert(1, r);
    }
    let bytes = (NPAGES * ROUNDS * 4096) as f64;
    let t = Instant::now();
    for g in 1..=ROUNDS {
        let mut st = engine.lock();
        for i in 0..NPAGES as usize {
            st.write_page_range(1, i, g, 0..8, Trigger::Burst);
        }
    }
    let stamped = t.elapsed();
    let src = vec![0xa5u8; 4096];
    let t = Instant::now();
    for _ in 0..ROUNDS {
        for i in 0..NPAGES {
            mem.write_slice(&src, GuestAddress(page_gpa(i))).unwrap();
        }
    }
    let plain = t.elapsed();
    let t = Instant::now();
    for g in 1..=ROUNDS {
        for i in 0..NPAGES {
            std::hint::black_box(encode_page(1, i as u32, g, 0));
        }
    }
    let encode = t.elapsed();
    let mbps = |d: Duration| bytes / d.as_secs_f64() / 1e6;
    println!(
        "dma_bandwidth: {} MiB: stamped engine {:.0} MB/s ({:.2} us/page), encode only {:.0} MB/s, \
         plain write_slice {:.0} MB/s ({:.2} us/page)",
        NPAGES * ROUNDS / 256,
        mbps(stamped),
        stamped.as_secs_f64() * 1e6 / (NPAGES * ROUNDS) as f64,
        mbps(encode),
        mbps(plain),
        plain.as_secs_f64() * 1e6 / (NPAGES * ROUNDS) as f64,
    );
}

/// The DMA log is bounded, and never incomplete: past its limit the device makes no more
/// writes (counted), so every write the guest sees is in the log. A burst used to grow the
/// log by 64 bytes per page write for as long as it ran.
#[test]
fn a_full_log_stops_the_dma_instead_of_growing() {
    let mut e = env_with(|c, d| {
        c.log = Some(d.join("dma.log"));
        c.log_limit = 5;
    });
    for i in 0..3 {
        e.post(5, i, page_gpa(u64::from(i)));
    }
    e.wait_pages(5, 3);
    assert_eq!(e.ctl(op::START, 5, schedule::BURST, [4, 0, 0, 0]), (4, 0));
    wait_for("burst done", || e.handle.schedule(5).is_none());
    let s = e.handle.stats();
    assert_eq!((s.writes, s.refused_log_full), (5, 7), "{s:?}");
    e.handle.flush().unwrap();
    let n = DmaLog::open(&e.dir.as_path().join("dma.log"))
        .unwrap()
        .records()
        .count();
    assert_eq!(n, 5);
}

/// The writeback observer's cost is linear in the request's pages: it used to look at every
/// armed page (and search its region for it) at every 4 KiB copy step, about 5 s for one
/// 1024-page request, 8 times more per doubling, with the block and engine locks held.
#[test]
fn writeback_observer_cost_is_linear() {
    use super::engine::{DmaObserver, Schedule};
    use crate::block::observer::{BlockObserver, RequestView};
    use proto::journal::{RequestKind, Segment};
    const N: u64 = 4096; // 16 MiB of pages
    let mem = guest_memory((PAGES + N * PAGE as u64) as usize);
    let engine = Arc::new(Engine::new(None, 0));
    {
        let mut st = engine.lock();
        st.mem = Some(GuestMemoryAtomic::new(mem.clone()));
        let mut r = Region {
            schedule: Some(Schedule::OnWriteback { max_triggers: 0 }),
            ..Region::default()
        };
        for i in 0..N {
            r.pages.push(PostedPage {
                index: i as u32,
                gpa: page_gpa(i),
                file_offset: i * 4096,
                generation: 0,
                head: 0,
                status_gpa: 0,
                dma_writes: 0,
            });
            st.by_gpa.insert(page_gpa(i), (1, i as usize));
        }
        st.regions.insert(1, r);
    }
    let observer = DmaObserver::new(engine.clone());
    let req = RequestView {
        seq: 1,
        kind: RequestKind::Out,
        sector: 0,
        sectors: N * 8,
        segments: vec![Segment {
            addr: page_gpa(0),
            len: (N * PAGE as u64) as u32,
        }],
    };
    let t = Instant::now();
    observer.before_copy(&req);
    for done in (PAGE as u64..req.len()).step_by(PAGE) {
        observer.mid_copy(&req, done);
    }
    observer.after_copy(&req, 0);
    let took = t.elapsed();
    let s = engine.lock().stats;
    assert_eq!((s.writeback_injections, s.writes), (N, 2 * N));
    assert!(took < Duration::from_secs(3), "{N} pages took {took:?}");
    // Every page ends at generation 1, whole.
    for i in [0, N / 2, N - 1] {
        assert_eq!(
            classify_block(&{
                let mut b = [0u8; PAGE];
                mem.read_slice(&mut b, GuestAddress(page_gpa(i))).unwrap();
                b
            }),
            BlockClass::Uniform {
                region: 1,
                page: i as u32,
                generation: 1
            }
        );
    }
}
