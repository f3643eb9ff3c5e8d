//! Fuzz the whole virtio-blk request path: the input describes a split virtqueue (descriptor
//! table, available ring) and the contents of guest memory (request headers, data); the
//! device parses and executes every published chain against a small copy-on-write disk.
//! Invariants: no panic, bounded work, every chain answered once, the disk keeps its size
//! and the base image is never written.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use devices::block::disk::CowDisk;
use devices::block::{process_queue, Block, BlockConfig};
use devices::virtio::testing::{guest_memory, RawDesc, TestQueue};
use devices::virtio::Interrupt;
use libfuzzer_sys::fuzz_target;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

const MEM: usize = 0x10000;
const DISK: usize = 64 * 512;
const PAYLOAD: u64 = 0x1000;

fn base_image() -> &'static PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let p = std::env::temp_dir().join(format!("pinvm-fuzz-base-{}.img", std::process::id()));
        std::fs::write(&p, vec![0x5au8; DISK]).unwrap();
        p
    })
}

struct Input<'a>(&'a [u8]);
impl Input<'_> {
    fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let qsize = 1u16 << (inp.u8() % 5);
    let nheads = usize::from(inp.u8() % 32);
    let mem = guest_memory(MEM);
    let mut tq = TestQueue::new(&mem, 0, qsize);
    for i in 0..qsize {
        let a = inp.u16();
        let l = inp.u16();
        let flags = u16::from(inp.u8());
        let next = u16::from(inp.u8());
        // Mostly in-memory addresses/lengths; the top bits select hostile values.
        let addr = match a >> 14 {
            3 => u64::MAX - u64::from(a & 0xff),
            2 => (1 << 40) + u64::from(a),
            _ => u64::from(a) * 4 % MEM as u64,
        };
        let len = if l & 0x8000 != 0 {
            u32::MAX - u32::from(l & 0xff)
        } else {
            u32::from(l)
        };
        tq.write_desc(
            i,
            RawDesc {
                addr,
                len,
                flags,
                next,
            },
        );
    }
    for _ in 0..nheads {
        let h = u16::from(inp.u8());
        tq.publish(h);
    }
    // The rest is guest memory contents (headers, data) at PAYLOAD.
    let rest = &inp.0[..inp.0.len().min(MEM - PAYLOAD as usize)];
    mem.write_slice(rest, GuestAddress(PAYLOAD)).unwrap();

    let disk = CowDisk::open(base_image()).unwrap();
    let block = Block::new(
        disk,
        BlockConfig {
            queue_size: qsize.max(4),
            ..Default::default()
        },
    )
    .unwrap();
    let handle = block.handle();
    let mut queue = tq.create_queue();
    let interrupt = Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap());
    let res = process_queue(handle.backend(), &mem, &mut queue, &interrupt);
    let stats = handle.stats();
    let answered = stats.ok + stats.ioerr + stats.unsupp + stats.skipped;
    if res.is_ok() {
        assert_eq!(answered, u64::from(tq.used_idx()));
    }
    assert!(answered <= nheads as u64);
    assert_eq!(handle.with_backend(|b| b.disk().size()), DISK as u64);
});
