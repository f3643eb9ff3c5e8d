//! Driver-side helpers for tests, fuzzing and benchmarks: lay out a split virtqueue in guest
//! memory and put descriptor chains on it the way a guest driver would (virtio 1.2 §2.7).
//! Compiled for unit tests and with the `test-utils` feature (used by `devices/fuzz`).

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Descriptor flag: the chain continues at `next`.
pub const F_NEXT: u16 = 1;
/// Descriptor flag: device-writable buffer.
pub const F_WRITE: u16 = 2;
/// Descriptor flag: indirect table.
pub const F_INDIRECT: u16 = 4;

/// One raw split-ring descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawDesc {
    /// Guest-physical address of the buffer (`le64 addr`).
    pub addr: u64,
    /// Length of the buffer in bytes (`le32 len`).
    pub len: u32,
    /// [`F_NEXT`], [`F_WRITE`], [`F_INDIRECT`] (`le16 flags`).
    pub flags: u16,
    /// Index of the next descriptor when [`F_NEXT`] is set (`le16 next`).
    pub next: u16,
}

impl RawDesc {
    /// Serialised as in the descriptor table (little endian).
    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.addr.to_le_bytes());
        b[8..12].copy_from_slice(&self.len.to_le_bytes());
        b[12..14].copy_from_slice(&self.flags.to_le_bytes());
        b[14..].copy_from_slice(&self.next.to_le_bytes());
        b
    }
}

/// A split virtqueue laid out in guest memory, seen from the driver side.
pub struct TestQueue {
    mem: GuestMemoryMmap,
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    avail_idx: u16,
    next_desc: u16,
}

impl TestQueue {
    /// Lay out a queue of `size` entries at `base` (16-byte aligned): descriptor table,
    /// then the available ring, then the used ring (4-byte aligned). All zeroed.
    pub fn new(mem: &GuestMemoryMmap, base: u64, size: u16) -> Self {
        let desc = base;
        let avail = desc + 16 * u64::from(size);
        let used = (avail + 6 + 2 * u64::from(size)).next_multiple_of(4);
        let end = used + 6 + 8 * u64::from(size);
        mem.write_slice(&vec![0u8; (end - base) as usize], GuestAddress(base))
            .expect("queue inside guest memory");
        TestQueue {
            mem: mem.clone(),
            size,
            desc,
            avail,
            used,
            avail_idx: 0,
            next_desc: 0,
        }
    }

    /// First byte after the used ring.
    pub fn end(&self) -> u64 {
        self.used + 6 + 8 * u64::from(self.size)
    }

    /// Number of entries (descriptors, and slots in each ring).
    pub fn size(&self) -> u16 {
        self.size
    }
    /// Guest-physical address of the descriptor table (QueueDesc).
    pub fn desc_addr(&self) -> u64 {
        self.desc
    }
    /// Guest-physical address of the available ring (QueueDriver).
    pub fn avail_addr(&self) -> u64 {
        self.avail
    }
    /// Guest-physical address of the used ring (QueueDevice).
    pub fn used_addr(&self) -> u64 {
        self.used
    }

    /// Store descriptor `idx` verbatim (any flags/next, for hostile chains).
    pub fn write_desc(&self, idx: u16, d: RawDesc) {
        let addr = self.desc + 16 * u64::from(idx % self.size);
        self.mem
            .write_slice(&d.to_bytes(), GuestAddress(addr))
            .unwrap();
    }

    /// Write a well-formed chain of `(addr, len, device_writable)` buffers into consecutive
    /// free descriptor slots (wrapping) and return its head index. Does not publish it.
    pub fn add_chain(&mut self, bufs: &[(u64, u32, bool)]) -> u16 {
        let head = self.next_desc;
        for (i, &(addr, len, write)) in bufs.iter().enumerate() {
            let idx = self.next_desc;
            self.next_desc = (self.next_desc + 1) % self.size;
            let last = i + 1 == bufs.len();
            let flags = if write { F_WRITE } else { 0 } | if last { 0 } else { F_NEXT };
            self.write_desc(
                idx,
                RawDesc {
                    addr,
                    len,
                    flags,
                    next: self.next_desc,
                },
            );
        }
        head
    }

    /// Put `head` on the available ring and bump `avail.idx`.
    pub fn publish(&mut self, head: u16) {
        let slot = self.avail + 4 + 2 * u64::from(self.avail_idx % self.size);
        self.mem
            .write_obj(head.to_le(), GuestAddress(slot))
            .unwrap();
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.set_avail_idx(self.avail_idx);
    }

    /// Overwrite `avail.idx` (hostile drivers can claim more entries than exist).
    pub fn set_avail_idx(&self, idx: u16) {
        self.mem
            .write_obj(idx.to_le(), GuestAddress(self.avail + 2))
            .unwrap();
    }

    /// `used_event` (at the end of the available ring), for EVENT_IDX tests.
    pub fn set_used_event(&self, v: u16) {
        let addr = self.avail + 4 + 2 * u64::from(self.size);
        self.mem.write_obj(v.to_le(), GuestAddress(addr)).unwrap();
    }

    /// `used.idx` as written by the device.
    pub fn used_idx(&self) -> u16 {
        u16::from_le(self.mem.read_obj(GuestAddress(self.used + 2)).unwrap())
    }

    /// Used ring element `i`: (descriptor head id, written length).
    pub fn used_elem(&self, i: u16) -> (u32, u32) {
        let addr = self.used + 4 + 8 * u64::from(i % self.size);
        let id: u32 = self.mem.read_obj(GuestAddress(addr)).unwrap();
        let len: u32 = self.mem.read_obj(GuestAddress(addr + 4)).unwrap();
        (u32::from_le(id), u32::from_le(len))
    }

    /// A device-side `Queue` configured for this layout and marked ready.
    pub fn create_queue(&self) -> Queue {
        let mut q = Queue::new(self.size).expect("power-of-two size");
        q.set_desc_table_address(Some(self.desc as u32), Some((self.desc >> 32) as u32));
        q.set_avail_ring_address(Some(self.avail as u32), Some((self.avail >> 32) as u32));
        q.set_used_ring_address(Some(self.used as u32), Some((self.used >> 32) as u32));
        q.set_ready(true);
        q
    }
}

/// Guest memory of `size` bytes at GPA 0.
pub fn guest_memory(size: usize) -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size)]).expect("anonymous mapping")
}
