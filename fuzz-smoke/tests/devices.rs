//! Fuzz targets of `devices`: what a guest can do to the virtio devices and the control page.
//! The virtio-blk request path (descriptor table, available ring, headers and data), the
//! dmapin device's two queues (posted pages, control messages, schedules), and register
//! sequences on the virtio-mmio transport in front of a real block device.
//! Invariants: no panic, every chain answered at most once, the disk keeps its size, the base
//! image is never written, and a device stops within a second whatever the guest started.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::scratch;
use devices::block::disk::CowDisk;
use devices::block::{process_queue, Block, BlockConfig};
use devices::dmapin::{DmaPin, DmaPinConfig};
use devices::virtio::mmio::MmioTransport;
use devices::virtio::testing::{guest_memory, RawDesc, TestQueue, F_NEXT, F_WRITE};
use devices::virtio::{Interrupt, VirtioDevice};
use fuzz_smoke::{bytes, fuzz};
use proptest::prelude::*;
use vm_memory::{Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const MEM: usize = 0x40000;
const DISK: usize = 64 * 512;
/// Where the target's guest bytes (headers, messages, data) start.
const PAYLOAD: u64 = 0x8000;

fn base_image() -> &'static PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let p = scratch().join("base.img");
        std::fs::write(&p, vec![0x5au8; DISK]).expect("scratch base image");
        p
    })
}

fn base_is_untouched() -> bool {
    std::fs::read(base_image()).is_ok_and(|b| b.len() == DISK && b.iter().all(|&x| x == 0x5a))
}

/// A descriptor: mostly inside guest memory, sometimes at hostile addresses and lengths.
fn desc() -> impl Strategy<Value = RawDesc> {
    let addr = prop_oneof![
        8 => 0u64..MEM as u64,
        1 => Just(u64::MAX - 7),
        1 => (1u64 << 40)..(1u64 << 40) + 0x1000,
    ];
    let len = prop_oneof![
        6 => 0u32..0x2000,
        1 => Just(u32::MAX),
        1 => 0x1000u32..0x10_0000,
    ];
    (addr, len, 0u16..8, any::<u16>()).prop_map(|(addr, len, flags, next)| RawDesc {
        addr,
        len,
        flags,
        next,
    })
}

/// A split ring's contents: descriptors, published heads, guest payload.
#[derive(Clone, Debug)]
struct Ring {
    size_log2: u8,
    descs: Vec<RawDesc>,
    heads: Vec<u16>,
    payload: Vec<u8>,
}

fn ring() -> impl Strategy<Value = Ring> {
    (
        0u8..5,
        proptest::collection::vec(desc(), 16),
        proptest::collection::vec(any::<u16>(), 0..24),
        bytes(512),
    )
        .prop_map(|(size_log2, descs, heads, payload)| Ring {
            size_log2,
            descs,
            heads,
            payload,
        })
}

fn lay_out(mem: &GuestMemoryMmap, base: u64, r: &Ring) -> TestQueue {
    let size = 1u16 << r.size_log2;
    let mut tq = TestQueue::new(mem, base, size);
    for (i, d) in r.descs.iter().take(usize::from(size)).enumerate() {
        tq.write_desc(i as u16, *d);
    }
    for &h in &r.heads {
        tq.publish(h % (2 * size));
    }
    tq
}

#[test]
fn block_queue() {
    fuzz("block_queue", ring(), |r| {
        let mem = guest_memory(MEM);
        let tq = lay_out(&mem, 0, &r);
        mem.write_slice(&r.payload, GuestAddress(PAYLOAD))
            .expect("payload fits");
        let disk = CowDisk::open_in(base_image(), scratch()).expect("base image");
        let config = BlockConfig {
            queue_size: tq.size().max(4),
            ..Default::default()
        };
        let block = Block::new(disk, config).expect("block device");
        let handle = block.handle();
        let mut queue = tq.create_queue();
        let interrupt = Interrupt::new(EventFd::new(EFD_NONBLOCK).expect("eventfd"));
        let res = process_queue(handle.backend(), &mem, &mut queue, &interrupt);
        let s = handle.stats();
        let answered = s.ok + s.ioerr + s.unsupp + s.skipped;
        if res.is_ok() {
            prop_assert_eq!(answered, u64::from(tq.used_idx()));
        }
        prop_assert!(answered <= r.heads.len() as u64);
        prop_assert_eq!(handle.with_backend(|b| b.disk().size()), DISK as u64);
        prop_assert!(base_is_untouched());
        Ok(())
    });
}

/// One thing the dmapin driver (or a hostile guest) puts on a queue.
#[derive(Clone, Debug)]
enum DmaOp {
    /// Post a page: header (region, page, file offset, gpa), page, status.
    Post {
        region: u32,
        page: u32,
        gpa_page: u8,
        raw_gpa: Option<u64>,
    },
    /// A control message.
    Ctl {
        cmd: u32,
        region: u32,
        schedule: u32,
        params: [u64; 4],
    },
}

fn dma_op() -> impl Strategy<Value = DmaOp> {
    let param = prop_oneof![
        Just(0u64),
        Just(1),
        Just(3),
        Just(1 << 20),
        Just(100_000),
        Just(u64::MAX),
        any::<u64>()
    ];
    prop_oneof![
        (
            0u32..3,
            0u32..8,
            0u8..16,
            proptest::option::weighted(0.1, any::<u64>())
        )
            .prop_map(|(region, page, gpa_page, raw_gpa)| DmaOp::Post {
                region,
                page,
                gpa_page,
                raw_gpa
            }),
        (
            0u32..5,
            prop_oneof![0u32..3, any::<u32>()],
            0u32..5,
            [param.clone(), param.clone(), param.clone(), param]
        )
            .prop_map(|(cmd, region, schedule, params)| DmaOp::Ctl {
                cmd,
                region,
                schedule,
                params
            }),
    ]
}

const DMA_Q: u64 = 0x1000;
const CTL_Q: u64 = 0x3000;
const PAGES: u64 = 0x20000;

/// Wait until `done` or `limit`; the device threads work asynchronously.
fn settle(limit: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !done() && Instant::now() < until {
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[test]
fn dmapin_queues() {
    let strategy = (
        proptest::collection::vec(dma_op(), 0..24),
        proptest::collection::vec((0u16..64, desc()), 0..4),
    );
    fuzz("dmapin_queues", strategy, |(ops, corrupt)| {
        let mem = guest_memory(MEM);
        let mut dma = TestQueue::new(&mem, DMA_Q, 64);
        let mut ctl = TestQueue::new(&mem, CTL_Q, 16);
        let config = DmaPinConfig {
            log: Some(common::scratch_file("dmapin.log")),
            queue_sizes: [64, 16],
            max_pages: 32,
            max_regions: 4,
            log_limit: 256,
        };
        let mut dev = DmaPin::new(config).expect("dmapin device");
        let handle = dev.handle();
        let evts: Vec<EventFd> = (0..2)
            .map(|_| EventFd::new(EFD_NONBLOCK).expect("eventfd"))
            .collect();
        let irq = Arc::new(Interrupt::new(EventFd::new(EFD_NONBLOCK).expect("eventfd")));
        dev.activate(
            GuestMemoryAtomic::new(mem.clone()),
            0,
            vec![dma.create_queue(), ctl.create_queue()],
            irq,
            evts.iter()
                .map(|e| e.try_clone().expect("eventfd"))
                .collect(),
        )
        .expect("activation");
        let mut ctls = 0u16;
        for (i, op) in ops.iter().enumerate() {
            let slot = PAYLOAD + 64 * i as u64;
            match *op {
                DmaOp::Post {
                    region,
                    page,
                    gpa_page,
                    raw_gpa,
                } => {
                    let gpa = raw_gpa.unwrap_or(PAGES + 4096 * u64::from(gpa_page));
                    let mut h = [0u8; 24];
                    h[..4].copy_from_slice(&region.to_le_bytes());
                    h[4..8].copy_from_slice(&page.to_le_bytes());
                    h[8..16].copy_from_slice(&(u64::from(page) * 4096).to_le_bytes());
                    h[16..].copy_from_slice(&gpa.to_le_bytes());
                    mem.write_slice(&h, GuestAddress(slot)).expect("in memory");
                    let head = dma.add_chain(&[
                        (slot, 24, false),
                        (gpa, 4096, true),
                        (slot + 32, 8, true),
                    ]);
                    dma.publish(head);
                }
                DmaOp::Ctl {
                    cmd,
                    region,
                    schedule,
                    params,
                } => {
                    let mut m = [0u8; 48];
                    m[..4].copy_from_slice(&cmd.to_le_bytes());
                    m[4..8].copy_from_slice(&region.to_le_bytes());
                    m[8..12].copy_from_slice(&schedule.to_le_bytes());
                    for (k, p) in params.iter().enumerate() {
                        m[16 + 8 * k..24 + 8 * k].copy_from_slice(&p.to_le_bytes());
                    }
                    mem.write_slice(&m, GuestAddress(slot)).expect("in memory");
                    let head = ctl.add_chain(&[(slot, 48, false), (slot + 48, 4, true)]);
                    ctl.publish(head);
                    ctls += 1;
                }
            }
        }
        for (i, d) in &corrupt {
            dma.write_desc(i % 64, *d);
            ctl.write_desc(i % 16, *d);
        }
        for e in &evts {
            e.write(1).expect("notify");
        }
        settle(Duration::from_millis(50), || ctl.used_idx() >= ctls);
        prop_assert!(handle.pages(0).map_or(0, |p| p.len()) <= 32);
        // Whatever the guest started (a burst of 2^20 generations, a rate schedule), the
        // device stops at once.
        let t = Instant::now();
        drop(dev);
        prop_assert!(
            t.elapsed() < Duration::from_secs(1),
            "teardown took {:?}",
            t.elapsed()
        );
        // Each posted chain comes back at most once, unless the guest pointed a writable
        // buffer at its own rings (then the device's writes land there, as the guest asked).
        let own_rings = !corrupt.is_empty()
            || ops.iter().any(|o| {
                matches!(
                    o,
                    DmaOp::Post {
                        raw_gpa: Some(_),
                        ..
                    }
                )
            });
        if !own_rings {
            prop_assert!(usize::from(dma.used_idx()) <= ops.len());
        }
        Ok(())
    });
}

/// One register access of the driver.
#[derive(Clone, Debug)]
struct Access {
    write: bool,
    offset: u64,
    width: u8,
    value: u64,
}

fn access() -> impl Strategy<Value = Access> {
    // The registers of virtio-mmio v2 (most of the time), the config space, anything.
    let reg = prop_oneof![
        6 => (0u64..0x40).prop_map(|i| i * 4),
        1 => 0x100u64..0x140,
        1 => 0u64..0x2000,
    ];
    let width = prop_oneof![8 => Just(4u8), 1 => Just(1), 1 => Just(2), 1 => Just(8)];
    let value = prop_oneof![
        Just(0u64),
        Just(1),
        Just(3),
        Just(7),
        Just(11),
        Just(15),
        Just(0x80),
        Just(u64::from(u32::MAX)),
        (0u64..0x40).prop_map(|q| q * 0x400),
        any::<u64>(),
    ];
    (any::<bool>(), reg, width, value).prop_map(|(w, offset, width, value)| Access {
        write: w || offset == 0x70,
        offset,
        width,
        value,
    })
}

#[test]
fn mmio_registers() {
    let strategy = (proptest::collection::vec(access(), 0..48), bytes(256));
    fuzz("mmio_registers", strategy, |(accesses, payload)| {
        let mem = guest_memory(MEM);
        mem.write_slice(&payload, GuestAddress(PAYLOAD))
            .expect("payload fits");
        let disk = CowDisk::open_in(base_image(), scratch()).expect("base image");
        let block = Block::new(
            disk,
            BlockConfig {
                queue_size: 16,
                ..Default::default()
            },
        )
        .expect("block device");
        let handle = block.handle();
        let mut t = MmioTransport::new(
            Box::new(block),
            GuestMemoryAtomic::new(mem),
            EventFd::new(EFD_NONBLOCK).expect("eventfd"),
            vec![EventFd::new(EFD_NONBLOCK).expect("eventfd")],
        );
        let read32 = |t: &mut MmioTransport, off: u64| {
            let mut b = [0u8; 4];
            devices::bus::BusDevice::read(t, off, &mut b);
            u32::from_le_bytes(b)
        };
        for a in &accesses {
            let w = usize::from(a.width);
            if a.write {
                devices::bus::BusDevice::write(&mut t, a.offset, &a.value.to_le_bytes()[..w]);
            } else {
                let mut b = vec![0u8; w];
                devices::bus::BusDevice::read(&mut t, a.offset, &mut b);
            }
            prop_assert_eq!(read32(&mut t, 0), 0x7472_6976, "MAGIC reads 'virt'");
            prop_assert_eq!(read32(&mut t, 4), 2);
        }
        // Writing 0 to STATUS resets, whatever came before.
        devices::bus::BusDevice::write(&mut t, 0x70, &0u32.to_le_bytes());
        prop_assert_eq!(read32(&mut t, 0x70), 0);
        prop_assert!(!t.is_active());
        let started = Instant::now();
        drop(t);
        prop_assert!(started.elapsed() < Duration::from_secs(1));
        prop_assert_eq!(handle.with_backend(|b| b.disk().size()), DISK as u64);
        prop_assert!(base_is_untouched());
        Ok(())
    });
}

// The flags the chains above use, named for readers of the ring layouts.
const _: (u16, u16) = (F_NEXT, F_WRITE);

/// Guest text with the bytes that matter to a terminal: ESC, C1 controls as raw bytes and
/// UTF-8 encoded (C2 80..9F), pieces of other multi-byte characters, plain text.
fn terminal_text() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        bytes(8),
        Just(b"\x1b[2J".to_vec()),
        (0x80u8..=0x9f).prop_map(|b| vec![0xc2, b]),
        (0x80u8..=0x9f).prop_map(|b| vec![b]),
        Just("— ā é 𝄞".as_bytes().to_vec()),
        Just(vec![0xe2, 0x80]),
        Just(vec![0xf0, 0x9d]),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

/// `devices::terminal`: whatever the guest prints, nothing that drives a terminal comes out
/// (no C0 but newline, CR and tab, no DEL, no C1 raw or encoded), and the console echo's
/// stream, fed in any pieces, shows the same as the whole text at once.
#[test]
fn terminal_escape() {
    use devices::terminal::{visible, Keep, VisibleStream};
    let strategy = (terminal_text(), proptest::collection::vec(1usize..8, 0..64));
    fuzz("terminal_escape", strategy, |(text, cuts)| {
        let whole = visible(&text, Keep::Lines);
        for chunk in whole.utf8_chunks() {
            for c in chunk.valid().chars() {
                prop_assert!(
                    !c.is_control() || matches!(c, '\n' | '\r' | '\t'),
                    "{c:?} in {whole:?}"
                );
            }
            for b in chunk.invalid() {
                prop_assert!(!(0x80..=0x9f).contains(b), "raw {b:#x} in {whole:?}");
            }
        }
        let mut stream = VisibleStream::new(Keep::Lines);
        let mut out = Vec::new();
        let mut rest = &text[..];
        for n in cuts.iter().cycle().take(text.len() + 1) {
            let (piece, tail) = rest.split_at((*n).min(rest.len()));
            out.extend(stream.push(piece));
            rest = tail;
        }
        out.extend(stream.push(rest));
        // What the stream still holds is an unfinished character at the very end.
        let held = stream.push(b"\n");
        let mut expected = whole.clone();
        expected.extend(visible(b"\n", Keep::Lines));
        let mut got = out;
        got.extend(held);
        prop_assert_eq!(got, expected);
        Ok(())
    });
}
