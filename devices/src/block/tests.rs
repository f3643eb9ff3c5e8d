//! End-to-end block tests: real GuestMemoryMmap, a split virtqueue written by hand
//! (`virtio::testing::TestQueue`), the request path and the COW disk.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proto::journal::{self, Journal};
use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::eventfd::EFD_NONBLOCK;
use vmm_sys_util::tempdir::TempDir;

use super::*;
use crate::bus::BusDevice;
use crate::virtio::mmio::MmioTransport;
use crate::virtio::testing::{guest_memory, RawDesc, TestQueue, F_INDIRECT, F_NEXT, F_WRITE};
use crate::virtio::Interrupt;

const MEM: usize = 1 << 20;
const HDR: u64 = 0x10000;
const STATUS: u64 = 0x18000;
const DATA: u64 = 0x20000;

struct Env {
    _dir: TempDir,
    base: PathBuf,
    base_bytes: Vec<u8>,
    mem: GuestMemoryMmap,
    tq: TestQueue,
    queue: Queue,
    handle: BlockHandle,
    _block: Block,
    interrupt: Interrupt,
    nreq: u64,
}

fn env_with(disk_sectors: u64, qsize: u16, f: impl FnOnce(&mut BlockConfig, &Path)) -> Env {
    let dir = TempDir::new().unwrap();
    let base = dir.as_path().join("base.img");
    let base_bytes: Vec<u8> = (0..disk_sectors * 512).map(|i| (i / 512) as u8).collect();
    std::fs::write(&base, &base_bytes).unwrap();
    let mut config = BlockConfig {
        id: "pinvm-7".into(),
        queue_size: qsize,
        ..Default::default()
    };
    f(&mut config, dir.as_path());
    let disk = CowDisk::open_in(&base, dir.as_path()).unwrap();
    let block = Block::new(disk, config).unwrap();
    let mem = guest_memory(MEM);
    let tq = TestQueue::new(&mem, 0x1000, qsize);
    Env {
        _dir: dir,
        base,
        base_bytes,
        queue: tq.create_queue(),
        tq,
        mem,
        handle: block.handle(),
        _block: block,
        interrupt: Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap()),
        nreq: 0,
    }
}

fn env(disk_sectors: u64) -> Env {
    env_with(disk_sectors, 16, |_, _| {})
}

impl Env {
    /// Write a header for request slot `i` and return its GPA.
    fn header(&self, i: u64, kind: u32, sector: u64) -> u64 {
        let a = HDR + 16 * i;
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&kind.to_le_bytes());
        h[8..].copy_from_slice(&sector.to_le_bytes());
        self.mem.write_slice(&h, GuestAddress(a)).unwrap();
        a
    }

    /// Queue a well-formed request: header, `data` buffers, status. Returns the status GPA.
    fn submit(&mut self, kind: u32, sector: u64, data: &[(u64, u32)]) -> u64 {
        let i = self.nreq;
        self.nreq += 1;
        let h = self.header(i, kind, sector);
        let st = STATUS + i;
        self.mem.write_obj(0xffu8, GuestAddress(st)).unwrap();
        let write = kind == 0 || kind == 8;
        let mut bufs = vec![(h, 16, false)];
        bufs.extend(data.iter().map(|&(a, l)| (a, l, write)));
        bufs.push((st, 1, true));
        let head = self.tq.add_chain(&bufs);
        self.tq.publish(head);
        st
    }

    fn run(&mut self) -> Result<(), virtio_queue::Error> {
        process_queue(
            self.handle.backend(),
            &self.mem,
            &mut self.queue,
            &self.interrupt,
        )
    }

    fn status_at(&self, a: u64) -> u8 {
        self.mem.read_obj(GuestAddress(a)).unwrap()
    }

    fn fill(&self, a: u64, len: usize, byte: u8) {
        self.mem
            .write_slice(&vec![byte; len], GuestAddress(a))
            .unwrap();
    }

    fn read(&self, a: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.mem.read_slice(&mut v, GuestAddress(a)).unwrap();
        v
    }

    fn disk_bytes(&self, off: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.handle
            .with_backend(|b| b.disk().read_at(&mut v, off))
            .unwrap();
        v
    }

    fn assert_base_untouched(&self) {
        assert_eq!(std::fs::read(&self.base).unwrap(), self.base_bytes);
    }
}

#[test]
fn out_then_in_roundtrip() {
    let mut e = env(64);
    e.fill(DATA, 4096, 0xa1);
    e.fill(DATA + 0x3000, 1024, 0xb2);
    let s1 = e.submit(1, 8, &[(DATA, 4096), (DATA + 0x3000, 1024)]);
    let s2 = e.submit(0, 7, &[(DATA + 0x8000, 512), (DATA + 0x9000, 5120)]);
    e.run().unwrap();
    assert_eq!((e.status_at(s1), e.status_at(s2)), (0, 0));
    assert_eq!(e.tq.used_idx(), 2);
    assert_eq!(e.tq.used_elem(0), (0, 1));
    assert_eq!(e.tq.used_elem(1), (4, 5632 + 1));
    // Sector 7 is untouched base data, then the written 5 KiB.
    assert_eq!(e.read(DATA + 0x8000, 512), vec![7u8; 512]);
    let got = e.read(DATA + 0x9000, 5120);
    assert_eq!(&got[..4096], &[0xa1; 4096][..]);
    assert_eq!(&got[4096..], &[0xb2; 1024][..]);
    assert_eq!(e.interrupt.status(), 1);
    assert!(e.interrupt.irq_evt().read().unwrap() >= 1);
    assert_eq!(e.handle.stats().ok, 2);
    e.assert_base_untouched();

    // --keep-disk
    let out = e.base.with_file_name("kept.img");
    e.handle.save_as(&out).unwrap();
    let kept = std::fs::read(&out).unwrap();
    assert_eq!(&kept[8 * 512..8 * 512 + 4096], &[0xa1; 4096][..]);
    assert_eq!(&kept[..8 * 512], &e.base_bytes[..8 * 512]);
}

#[test]
fn flush_get_id_unsupported() {
    let mut e = env(8);
    let f = e.submit(4, 0, &[]);
    e.fill(DATA, 32, 0xee);
    let g = e.submit(8, 0, &[(DATA, 32)]);
    let d = e.submit(11, 0, &[(DATA + 0x100, 16)]);
    let short = e.submit(8, 0, &[(DATA + 0x200, 4)]);
    e.fill(DATA + 0x200, 8, 0xee);
    e.run().unwrap();
    assert_eq!(e.status_at(f), 0);
    assert_eq!(e.status_at(g), 0);
    let mut id = b"pinvm-7".to_vec();
    id.resize(20, 0);
    assert_eq!(e.read(DATA, 20), id);
    assert_eq!(e.read(DATA + 20, 12), vec![0xee; 12]);
    assert_eq!(e.status_at(d), 2);
    assert_eq!(e.status_at(short), 0);
    assert_eq!(e.read(DATA + 0x200, 8), b"pinv\xee\xee\xee\xee");
    let used: Vec<_> = (0..4).map(|i| e.tq.used_elem(i).1).collect();
    assert_eq!(used, [1, 21, 1, 5]);
    let s = e.handle.stats();
    assert_eq!((s.ok, s.unsupp, s.requests), (3, 1, 4));
}

#[test]
fn journal_records_writes_and_flushes() {
    let mut e = env_with(64, 16, |c, dir| {
        c.journal = Some((
            dir.join("j.bin"),
            JournalOptions {
                record_data: true,
                record_reads: false,
            },
        ));
    });
    e.fill(DATA, 4096, 1);
    e.fill(DATA + 0x2000, 4096, 2);
    e.fill(DATA + 0x4000, 1024, 3);
    let t0 = monotonic_ns();
    e.submit(1, 4, &[(DATA, 4096), (DATA + 0x2000, 2048)]);
    e.submit(0, 0, &[(DATA + 0x6000, 512)]);
    e.submit(1, 60, &[(DATA + 0x2000, 1024), (DATA + 0x4000, 1024)]);
    e.submit(4, 0, &[]);
    e.submit(1, 63, &[(DATA, 1024)]); // past the end: IOERR, not a request
    e.run().unwrap();
    // FLUSH flushed the journal buffer already.
    let path = e.handle.journal_path().unwrap();
    let recs: Vec<_> = Journal::open(&path)
        .unwrap()
        .records()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(recs.len(), 3);
    let seqs: Vec<_> = recs.iter().map(|r| (r.seq, r.kind)).collect();
    assert_eq!(
        seqs,
        [
            (1, RequestKind::Out),
            (3, RequestKind::Out),
            (4, RequestKind::Flush)
        ]
    );
    let r = &recs[0];
    assert_eq!((r.sector, r.sectors, r.status), (4, 12, 0));
    assert!(t0 <= r.submit_ns && r.submit_ns <= r.complete_ns);
    assert_eq!(
        r.segments,
        [
            Segment {
                addr: DATA,
                len: 4096
            },
            Segment {
                addr: DATA + 0x2000,
                len: 2048
            }
        ]
    );
    assert_eq!(r.hashes.len(), 2);
    assert_eq!(
        (r.hashes[0].sector, r.hashes[0].len, r.hashes[0].hash),
        (4, 4096, block_hash(&[1; 4096]))
    );
    assert_eq!(
        (r.hashes[1].sector, r.hashes[1].len, r.hashes[1].hash),
        (12, 2048, block_hash(&[2; 2048]))
    );
    let mut expect = vec![1u8; 4096];
    expect.extend([2u8; 2048]);
    assert_eq!(r.data.as_deref(), Some(&expect[..]));
    // A 4 KiB hash block spanning two segments.
    let mut mixed = vec![2u8; 1024];
    mixed.extend([3u8; 1024]);
    assert_eq!(recs[1].hashes[0].hash, block_hash(&mixed));
    assert_eq!(recs[2].sectors, 0);
    let mut text = Vec::new();
    journal::render_file(&path, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("#1 OUT OK sector=4 sectors=12"), "{text}");
    assert!(text.contains("#4 FLUSH OK"), "{text}");
}

/// The journal is bounded: past the data limit records carry hashes only, past the journal
/// limit writes are refused (IOERR) and nothing more is recorded, so the disk never holds data
/// the journal does not explain. It used to grow by every written byte for the whole run.
#[test]
fn journal_size_is_bounded() {
    let mut e = env_with(64, 32, |c, dir| {
        c.journal = Some((
            dir.join("j.bin"),
            JournalOptions {
                record_data: true,
                record_reads: false,
            },
        ));
        c.journal_data_limit = 16 + 2 * (4 + 56 + 12 + 28 + 8 + 4096);
        c.journal_limit = c.journal_data_limit + 3 * (4 + 56 + 12 + 28);
    });
    e.fill(DATA, 4096, 7);
    let statuses: Vec<u64> = (0..8)
        .map(|i| e.submit(1, 8 * (i % 4), &[(DATA, 4096)]))
        .collect();
    e.run().unwrap();
    let got: Vec<u8> = statuses.iter().map(|&a| e.status_at(a)).collect();
    assert_eq!(
        got,
        [0, 0, 0, 0, 0, 1, 1, 1],
        "written, hash-only, then refused"
    );
    let s = e.handle.stats();
    assert_eq!(
        (s.journal_data_dropped, s.journal_full_refused),
        (3, 3),
        "{s:?}"
    );
    e.handle.flush().unwrap();
    let path = e.handle.journal_path().unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    let recs: Vec<_> = Journal::open(&path)
        .unwrap()
        .records()
        .map(|r| r.unwrap())
        .collect();
    let with_data: Vec<bool> = recs.iter().map(|r| r.data.is_some()).collect();
    assert_eq!(with_data, [true, true, false, false, false]);
    assert!(size <= 16 + 2 * (4 + 56 + 12 + 28 + 8 + 4096) + 3 * (4 + 56 + 12 + 28));
}

#[test]
fn hostile_chains_never_panic() {
    let qs = 32u16;
    let mut e = env_with(64, qs, |_, _| {});
    let mem = e.mem.clone();
    let ok_status = |e: &Env, a| e.status_at(a);
    let mut expect = Vec::new(); // (status gpa or None, expected status, expected used len)

    // GPA out of range.
    let s = e.submit(1, 0, &[(MEM as u64 - 512, 1024)]);
    expect.push((Some(s), 1, 1));
    // Wrong direction: IN whose data is device-readable.
    let h = e.header(50, 0, 0);
    let head =
        e.tq.add_chain(&[(h, 16, false), (DATA, 512, false), (STATUS + 50, 1, true)]);
    e.tq.publish(head);
    expect.push((Some(STATUS + 50), 1, 1));
    // Zero-length data.
    let s = e.submit(1, 0, &[(DATA, 0)]);
    expect.push((Some(s), 1, 1));
    // Huge sector numbers (overflow and plain out of range).
    let s = e.submit(1, u64::MAX, &[(DATA, 512)]);
    expect.push((Some(s), 1, 1));
    let s = e.submit(0, 64, &[(DATA, 512)]);
    expect.push((Some(s), 1, 1));
    // Header too short.
    let h = e.header(51, 1, 0);
    let head =
        e.tq.add_chain(&[(h, 8, false), (DATA, 512, false), (STATUS + 51, 1, true)]);
    e.tq.publish(head);
    expect.push((Some(STATUS + 51), 1, 1));
    // Missing status descriptor (last one device-readable).
    let h = e.header(52, 1, 0);
    mem.write_obj(0xffu8, GuestAddress(STATUS + 52)).unwrap();
    let head = e.tq.add_chain(&[(h, 16, false), (DATA, 512, false)]);
    e.tq.publish(head);
    expect.push((Some(STATUS + 52), 0xff, 0));
    let run1 = expect.len();
    e.run().unwrap();
    for (i, (st, want, used)) in expect.iter().enumerate() {
        assert_eq!(e.tq.used_elem(i as u16).1, *used, "case {i}");
        if let Some(a) = st {
            assert_eq!(ok_status(&e, *a), *want, "case {i}");
        }
    }
    assert_eq!(e.tq.used_idx() as usize, run1);

    // Descriptor loop: 3 -> 4 -> 3 ...
    e.tq.write_desc(
        3,
        RawDesc {
            addr: e.header(53, 1, 0),
            len: 16,
            flags: F_NEXT,
            next: 4,
        },
    );
    e.tq.write_desc(
        4,
        RawDesc {
            addr: STATUS + 53,
            len: 1,
            flags: F_NEXT | F_WRITE,
            next: 3,
        },
    );
    e.tq.publish(3);
    e.run().unwrap();
    // Chain longer than the queue: all descriptors chained, the last pointing past the table.
    for i in 0..qs {
        e.tq.write_desc(
            i,
            RawDesc {
                addr: DATA,
                len: 512,
                flags: F_NEXT | F_WRITE,
                next: i + 1,
            },
        );
    }
    e.tq.publish(0);
    e.run().unwrap();
    assert_eq!(e.tq.used_idx() as usize, run1 + 2);
    assert_eq!(e.tq.used_elem(run1 as u16), (3, 0));
    assert_eq!(e.tq.used_elem(run1 as u16 + 1), (0, 0));

    // Indirect table outside guest memory, and an indirect table that is not a multiple of 16.
    e.tq.write_desc(
        0,
        RawDesc {
            addr: e.header(54, 1, 0),
            len: 16,
            flags: F_NEXT,
            next: 1,
        },
    );
    e.tq.write_desc(
        1,
        RawDesc {
            addr: 1 << 40,
            len: 64,
            flags: F_INDIRECT,
            next: 0,
        },
    );
    e.tq.publish(0);
    e.tq.write_desc(
        2,
        RawDesc {
            addr: e.header(55, 1, 0),
            len: 16,
            flags: F_NEXT,
            next: 5,
        },
    );
    e.tq.write_desc(
        5,
        RawDesc {
            addr: DATA,
            len: 17,
            flags: F_INDIRECT,
            next: 0,
        },
    );
    e.tq.publish(2);
    e.run().unwrap();
    assert_eq!(e.tq.used_idx() as usize, run1 + 4);

    // A good request still works afterwards.
    e.tq = TestQueue::new(&mem, 0x1000, qs);
    e.queue = e.tq.create_queue();
    e.fill(DATA, 512, 0x5a);
    let s = e.submit(1, 3, &[(DATA, 512)]);
    e.run().unwrap();
    assert_eq!(e.status_at(s), 0);
    assert_eq!(e.disk_bytes(3 * 512, 512), vec![0x5a; 512]);
    // Nothing else reached the disk: sectors other than 3 still hold base data.
    assert_eq!(e.disk_bytes(0, 512), vec![0; 512]);
    assert_eq!(e.disk_bytes(63 * 512, 512), vec![63; 512]);
    e.assert_base_untouched();

    // Broken rings are device errors (Err), not panics: head index out of range...
    e.tq.publish(999);
    assert!(e.run().is_err());
    // ... and an available index claiming more entries than the queue holds.
    e.tq = TestQueue::new(&mem, 0x1000, qs);
    e.queue = e.tq.create_queue();
    e.tq.set_avail_idx(1000);
    assert!(e.run().is_err());
}

#[test]
fn event_idx_suppresses_interrupts() {
    let mut e = env(64);
    e.queue.set_event_idx(true);
    e.tq.set_used_event(2); // interrupt once used.idx passes 2 (i.e. reaches 3)
    e.submit(4, 0, &[]);
    e.run().unwrap();
    assert_eq!(e.interrupt.status(), 0);
    e.submit(4, 0, &[]);
    e.run().unwrap();
    assert_eq!(e.interrupt.status(), 0);
    e.submit(4, 0, &[]);
    e.run().unwrap();
    assert_eq!(e.interrupt.status(), 1);
    assert_eq!(e.tq.used_idx(), 3);
}

/// Rewrites the guest buffer from "generation 1" to "generation 2" once half the request has
/// been copied.
struct Flipper {
    mem: GuestMemoryMmap,
    buf: u64,
    len: usize,
    calls: AtomicU64,
}

impl BlockObserver for Flipper {
    fn before_copy(&self, req: &RequestView) {
        assert_eq!(req.kind, RequestKind::Out);
        self.calls.fetch_add(1000, AtomicOrdering::SeqCst);
    }
    fn mid_copy(&self, req: &RequestView, copied: u64) {
        self.calls.fetch_add(1, AtomicOrdering::SeqCst);
        if copied == req.len() / 2 {
            self.mem
                .write_slice(&vec![2u8; self.len], GuestAddress(self.buf))
                .unwrap();
        }
    }
    fn after_copy(&self, _req: &RequestView, status: u8) {
        assert_eq!(status, 0);
        self.calls.fetch_add(1_000_000, AtomicOrdering::SeqCst);
    }
}

#[test]
fn observer_splits_one_write_across_generations() {
    let mem = guest_memory(MEM);
    let flipper = Arc::new(Flipper {
        mem: mem.clone(),
        buf: DATA,
        len: 16384,
        calls: AtomicU64::new(0),
    });
    let obs = flipper.clone();
    let mut e = env_with(64, 16, move |c, dir| {
        c.observer = Some(obs);
        c.journal = Some((dir.join("j.bin"), JournalOptions::default()));
    });
    // Use the observer's memory as the guest memory (same mapping for queue and data).
    e.mem = mem.clone();
    e.tq = TestQueue::new(&mem, 0x1000, 16);
    e.queue = e.tq.create_queue();

    e.fill(DATA, 16384, 1);
    let s = e.submit(1, 16, &[(DATA, 8192), (DATA + 8192, 8192)]);
    e.run().unwrap();
    assert_eq!(e.status_at(s), 0);
    let disk = e.disk_bytes(16 * 512, 16384);
    assert_eq!(
        &disk[..8192],
        &[1u8; 8192][..],
        "first half from generation 1"
    );
    assert_eq!(
        &disk[8192..],
        &[2u8; 8192][..],
        "second half from generation 2"
    );
    assert_eq!(flipper.calls.load(AtomicOrdering::SeqCst), 1_001_004);
    // The journal's hashes describe what actually reached the disk.
    e.handle.flush().unwrap();
    let rec = Journal::open(&e.handle.journal_path().unwrap())
        .unwrap()
        .records()
        .next()
        .unwrap()
        .unwrap();
    let hashes: Vec<_> = rec.hashes.iter().map(|h| (h.sector, h.hash)).collect();
    assert_eq!(
        hashes,
        [
            (16, block_hash(&[1; 4096])),
            (24, block_hash(&[1; 4096])),
            (32, block_hash(&[2; 4096])),
            (40, block_hash(&[2; 4096]))
        ]
    );
}

/// The whole path as the VMM wires it: transport registers, DRIVER_OK spawns the device
/// thread, QUEUE_NOTIFY wakes it, the irqfd fires, STATUS=0 stops it.
#[test]
fn transport_and_device_thread_end_to_end() {
    let dir = TempDir::new().unwrap();
    let base = dir.as_path().join("base.img");
    std::fs::write(&base, vec![0u8; 1 << 20]).unwrap();
    let block = Block::new(
        CowDisk::open_in(&base, dir.as_path()).unwrap(),
        BlockConfig {
            journal: Some((dir.as_path().join("j.bin"), JournalOptions::default())),
            ..Default::default()
        },
    )
    .unwrap();
    let handle = block.handle();
    let mem = guest_memory(MEM);
    let irq = EventFd::new(EFD_NONBLOCK).unwrap();
    let irq_read = irq.try_clone().unwrap();
    let mut t = MmioTransport::new(
        Box::new(block),
        GuestMemoryAtomic::new(mem.clone()),
        irq,
        vec![EventFd::new(EFD_NONBLOCK).unwrap()],
    );
    let w = |t: &mut MmioTransport, off: u64, v: u32| t.write(off, &v.to_le_bytes());
    let r = |t: &mut MmioTransport, off: u64| {
        let mut b = [0u8; 4];
        t.read(off, &mut b);
        u32::from_le_bytes(b)
    };
    // Config space: capacity 2048 sectors, seg_max 254.
    let mut cap = [0u8; 8];
    t.read(0x100, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), 2048);
    assert_eq!(r(&mut t, 0x10c), 254);
    w(&mut t, 0x70, 1);
    w(&mut t, 0x70, 3);
    w(&mut t, 0x24, 0);
    let f0 = r(&mut t, 0x10);
    w(&mut t, 0x14, 1);
    let f1 = r(&mut t, 0x10);
    assert_eq!(f0, (1 << 9) | (1 << 2) | (1 << 29));
    assert_eq!(f1, 1);
    w(&mut t, 0x20, f0);
    w(&mut t, 0x24, 1);
    w(&mut t, 0x20, f1);
    w(&mut t, 0x70, 11);
    assert_eq!(r(&mut t, 0x70), 11);
    let mut tq = TestQueue::new(&mem, 0x1000, 256);
    assert_eq!(r(&mut t, 0x34), 256);
    w(&mut t, 0x38, 256);
    w(&mut t, 0x80, tq.desc_addr() as u32);
    w(&mut t, 0x90, tq.avail_addr() as u32);
    w(&mut t, 0xa0, tq.used_addr() as u32);
    w(&mut t, 0x44, 1);
    w(&mut t, 0x70, 15);
    assert_eq!(r(&mut t, 0x70), 15);

    // Several requests in flight at once.
    let n = 8u64;
    for i in 0..n {
        let h = HDR + 16 * i;
        let mut hb = [0u8; 16];
        hb[..4].copy_from_slice(&1u32.to_le_bytes());
        hb[8..].copy_from_slice(&(i * 8).to_le_bytes());
        mem.write_slice(&hb, GuestAddress(h)).unwrap();
        mem.write_slice(&[i as u8 + 1; 4096], GuestAddress(DATA + 4096 * i))
            .unwrap();
        let head = tq.add_chain(&[
            (h, 16, false),
            (DATA + 4096 * i, 4096, false),
            (STATUS + i, 1, true),
        ]);
        tq.publish(head);
    }
    w(&mut t, 0x50, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while tq.used_idx() < n as u16 {
        assert!(
            Instant::now() < deadline,
            "device thread did not complete requests"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(irq_read.read().unwrap() >= 1);
    assert_eq!(r(&mut t, 0x60) & 1, 1);
    w(&mut t, 0x64, 1);
    for i in 0..n {
        assert_eq!(mem.read_obj::<u8>(GuestAddress(STATUS + i)).unwrap(), 0);
    }
    // Reset joins the thread and flushes the journal.
    w(&mut t, 0x70, 0);
    assert_eq!(r(&mut t, 0x70), 0);
    let recs: Vec<_> = Journal::open(&handle.journal_path().unwrap())
        .unwrap()
        .records()
        .collect();
    assert_eq!(recs.len(), n as usize);
    let out = dir.as_path().join("kept.img");
    handle.save_as(&out).unwrap();
    let kept = std::fs::read(&out).unwrap();
    for i in 0..n as usize {
        assert_eq!(kept[i * 4096..(i + 1) * 4096], [i as u8 + 1; 4096]);
    }
    drop(t);
}

// ---- property test: random chains against a small disk ----

/// Checks every data copy stays on the disk.
struct Bounds {
    capacity: u64,
}
impl BlockObserver for Bounds {
    fn before_copy(&self, req: &RequestView) {
        assert!(req.sector + req.sectors <= self.capacity);
    }
}

#[derive(Debug, Clone)]
struct ArbDesc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

fn arb_addr() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => (0u64..0x40).prop_map(|k| DATA + k * 512),
        1 => (0u64..0x8).prop_map(|k| HDR + 16 * k),
        1 => (0u64..0x8).prop_map(|k| STATUS + k),
        1 => any::<u64>(),
        1 => Just(MEM as u64 - 1),
    ]
}

fn arb_desc() -> impl Strategy<Value = ArbDesc> {
    (
        arb_addr(),
        prop_oneof![3 => (0u32..5).prop_map(|k| k * 512), 1 => Just(16u32), 1 => Just(1u32), 1 => any::<u32>()],
        prop_oneof![4 => 0u16..4, 1 => any::<u16>()],
        prop_oneof![4 => 0u16..8, 1 => any::<u16>()],
    )
        .prop_map(|(addr, len, flags, next)| ArbDesc { addr, len, flags, next })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn random_chains(
        descs in proptest::collection::vec(arb_desc(), 8),
        heads in proptest::collection::vec(0u16..8, 1..6),
        headers in proptest::collection::vec((prop_oneof![0u32..16, any::<u32>()], prop_oneof![0u64..40, any::<u64>()]), 8),
    ) {
        let capacity = 32;
        let mut e = env_with(capacity, 8, |c, _| {
            c.observer = Some(Arc::new(Bounds { capacity }));
        });
        for (i, (kind, sector)) in headers.iter().enumerate() {
            e.header(i as u64, *kind, *sector);
        }
        for s in 0..8 {
            e.mem.write_obj(0xffu8, GuestAddress(STATUS + s)).unwrap();
        }
        for (i, d) in descs.iter().enumerate() {
            e.tq.write_desc(i as u16, RawDesc { addr: d.addr, len: d.len, flags: d.flags, next: d.next });
        }
        for &h in &heads {
            e.tq.publish(h);
        }
        let res = e.run();
        prop_assert!(res.is_ok(), "{res:?}");
        prop_assert_eq!(e.tq.used_idx() as usize, heads.len());
        // Every chain was answered exactly once, with OK/IOERR/UNSUPP or skipped (those are
        // the only values the device ever writes to a status byte).
        let stats = e.handle.stats();
        prop_assert_eq!(stats.ok + stats.ioerr + stats.unsupp + stats.skipped, heads.len() as u64);
        prop_assert_eq!(e.handle.with_backend(|b| b.disk().size()), capacity * 512);
        e.assert_base_untouched();
    }
}

/// `cargo test -p devices --release -- --ignored --nocapture bench_`
#[test]
#[ignore]
fn bench_4k_out_requests() {
    bench_run("no journal", false);
    bench_run("journal (hashes)", true);
}

fn bench_run(label: &str, journal: bool) {
    let mut e = env_with(1 << 16, 256, |c, dir| {
        if journal {
            c.journal = Some((dir.join("bench.jnl"), JournalOptions::default()));
        }
    }); // 32 MiB disk
    e.fill(DATA, 128 * 4096, 0x77);
    let batch = 64u64; // 3 descriptors each: 192 of the 256 slots
    let total = 400 * batch;
    let start = Instant::now();
    for b in 0..total / batch {
        for i in 0..batch {
            let k = b * batch + i;
            let sector = (k * 8) % ((1 << 16) - 8);
            // Reuse header/status slots: one per in-flight request in this batch.
            let h = e.header(i, 1, sector);
            let head = e.tq.add_chain(&[
                (h, 16, false),
                (DATA + 4096 * i, 4096, false),
                (STATUS + i, 1, true),
            ]);
            e.tq.publish(head);
        }
        e.run().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(e.handle.stats().ok, total);
    println!(
        "virtio-blk 4 KiB OUT through the queue -> COW disk, {label}: {total} requests in {secs:.3} s = {:.0} req/s ({:.1} MiB/s)",
        total as f64 / secs,
        total as f64 * 4096.0 / secs / (1 << 20) as f64
    );
}
