//! Walking split-virtqueue descriptor chains (virtio 1.2 §2.7.5), shared by the devices.
//!
//! A device takes the next available chain with [`pop_chain`]: its head index and at most
//! `max + 1` of its descriptors as plain [`Desc`] values. Taking one more than the device
//! accepts keeps an over-long chain visible as such. virtio-queue's iterator stops by itself
//! after `queue size` descriptors (or the length of an indirect table) and at a link to an
//! index outside the table, so loops and bad links always end; a chain that ended that way
//! still has NEXT set on its last descriptor, which [`is_complete`] detects.
//!
//! What a chain must look like is the device's business (`block::request::parse`,
//! `dmapin::device::DeviceCore`); the checks they share are here, with checked address
//! arithmetic: [`is_complete`], [`in_memory`], [`Desc::in_memory`] and [`Desc::last_byte`].

use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueOwnedT};
use vm_memory::{GuestAddress, GuestMemory, Permissions};

/// The parts of a split descriptor the devices look at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Desc {
    /// Guest-physical address of the buffer.
    pub addr: u64,
    /// Length of the buffer in bytes.
    pub len: u32,
    /// Device-writable (VIRTQ_DESC_F_WRITE).
    pub writable: bool,
    /// VIRTQ_DESC_F_NEXT was set.
    pub has_next: bool,
}

impl From<Descriptor> for Desc {
    fn from(d: Descriptor) -> Self {
        Desc {
            addr: d.addr().0,
            len: d.len(),
            writable: d.is_write_only(),
            has_next: d.has_next(),
        }
    }
}

impl Desc {
    /// Whether the whole buffer lies inside guest memory, accessible with `perm`.
    pub fn in_memory<M: GuestMemory + ?Sized>(&self, mem: &M, perm: Permissions) -> bool {
        in_memory(mem, self.addr, self.len, perm)
    }

    /// Address of the buffer's last byte; `None` for an empty buffer or one that runs past
    /// the end of the address space.
    pub fn last_byte(&self) -> Option<u64> {
        let tail = self.len.checked_sub(1)?;
        self.addr.checked_add(u64::from(tail))
    }
}

/// Whether `len` bytes at `addr` lie inside guest memory, accessible with `perm`. A range
/// that wraps the address space is never inside.
pub fn in_memory<M: GuestMemory + ?Sized>(mem: &M, addr: u64, len: u32, perm: Permissions) -> bool {
    mem.check_range(GuestAddress(addr), len as usize, perm)
}

/// A chain taken off a queue's available ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// Head descriptor index: what goes back into the used ring.
    pub head: u16,
    /// Its first descriptors, at most `max + 1` (see [`collect_chain`]).
    pub descs: Vec<Desc>,
}

/// Take at most `max + 1` descriptors from a chain, so that a chain longer than `max` stays
/// recognisable (see [`is_complete`]).
pub fn collect_chain(chain: impl Iterator<Item = Descriptor>, max: usize) -> Vec<Desc> {
    chain.take(max.saturating_add(1)).map(Desc::from).collect()
}

/// Whether `descs` (from [`collect_chain`] with the same `max`) is a whole chain: not empty,
/// at most `max` descriptors, and the last one does not link further (no loop, bad index or
/// chain longer than the queue cut it short).
pub fn is_complete(descs: &[Desc], max: usize) -> bool {
    descs.last().is_some_and(|last| !last.has_next) && descs.len() <= max
}

/// Take the next available chain of `queue` (see [`collect_chain`] for `max`). `Ok(None)`:
/// the available ring is empty. `Err`: the ring itself is broken (the driver claims more
/// available entries than the queue holds, or the ring is outside guest memory). A head
/// index outside the descriptor table gives a chain without descriptors; putting that head
/// into the used ring then fails.
pub fn pop_chain<M: GuestMemory>(
    queue: &mut Queue,
    mem: &M,
    max: usize,
) -> Result<Option<Chain>, virtio_queue::Error> {
    Ok(queue.iter(mem)?.next().map(|chain| Chain {
        head: chain.head_index(),
        descs: collect_chain(chain, max),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::virtio::testing::{guest_memory, RawDesc, TestQueue, F_NEXT, F_WRITE};

    fn d(addr: u64, len: u32, has_next: bool) -> Desc {
        Desc {
            addr,
            len,
            writable: false,
            has_next,
        }
    }

    #[test]
    fn last_byte_is_checked() {
        assert_eq!(d(0x1000, 1, false).last_byte(), Some(0x1000));
        assert_eq!(d(0x1000, 16, false).last_byte(), Some(0x100f));
        assert_eq!(d(0x1000, 0, false).last_byte(), None);
        assert_eq!(d(u64::MAX, 1, false).last_byte(), Some(u64::MAX));
        assert_eq!(d(u64::MAX, 2, false).last_byte(), None);
    }

    #[test]
    fn ranges_inside_guest_memory() {
        let mem = guest_memory(0x10000);
        assert!(d(0xff00, 0x100, false).in_memory(&mem, Permissions::Read));
        assert!(!d(0xff00, 0x101, false).in_memory(&mem, Permissions::Write));
        assert!(!d(u64::MAX - 1, 4, false).in_memory(&mem, Permissions::Read));
        assert!(in_memory(&mem, 0xffff, 1, Permissions::Write));
        assert!(!in_memory(&mem, 0x10000, 1, Permissions::Write));
    }

    #[test]
    fn completeness() {
        assert!(!is_complete(&[], 4));
        assert!(is_complete(&[d(0, 1, true), d(0, 1, false)], 2));
        assert!(!is_complete(&[d(0, 1, true), d(0, 1, true)], 2));
        assert!(!is_complete(
            &[d(0, 1, true), d(0, 1, true), d(0, 1, false)],
            2
        ));
    }

    #[test]
    fn pop_chain_takes_heads_in_order_and_caps_length() {
        let mem = guest_memory(0x10000);
        let mut tq = TestQueue::new(&mem, 0x1000, 8);
        let a = tq.add_chain(&[(0x4000, 16, false), (0x5000, 1, true)]);
        let b = tq.add_chain(&[(0x6000, 8, false); 5]);
        tq.publish(a);
        tq.publish(b);
        let mut q = tq.create_queue();
        let first = pop_chain(&mut q, &mem, 4).unwrap().unwrap();
        assert_eq!(first.head, a);
        assert_eq!(
            first.descs,
            [
                d(0x4000, 16, true),
                Desc {
                    addr: 0x5000,
                    len: 1,
                    writable: true,
                    has_next: false
                }
            ]
        );
        assert!(is_complete(&first.descs, 4));
        // Five descriptors with max 3: four are taken, the chain is not complete.
        let second = pop_chain(&mut q, &mem, 3).unwrap().unwrap();
        assert_eq!((second.head, second.descs.len()), (b, 4));
        assert!(!is_complete(&second.descs, 3));
        assert_eq!(pop_chain(&mut q, &mem, 3).unwrap(), None);
    }

    #[test]
    fn loops_end_and_broken_rings_are_errors() {
        let mem = guest_memory(0x10000);
        let mut tq = TestQueue::new(&mem, 0x1000, 4);
        tq.write_desc(
            0,
            RawDesc {
                addr: 0x4000,
                len: 1,
                flags: F_NEXT | F_WRITE,
                next: 0,
            },
        );
        tq.publish(0);
        let mut q = tq.create_queue();
        // The loop yields at most `queue size` descriptors, the last still linking on.
        let looped = pop_chain(&mut q, &mem, 16).unwrap().unwrap();
        assert!(looped.descs.len() <= 4);
        assert!(!is_complete(&looped.descs, 16));
        // A head index outside the table: no descriptors.
        tq.publish(99);
        let bad = pop_chain(&mut q, &mem, 16).unwrap().unwrap();
        assert_eq!((bad.head, bad.descs.len()), (99, 0));
        // More available entries than the queue holds: the ring is broken.
        tq.set_avail_idx(1000);
        assert!(pop_chain(&mut q, &mem, 16).is_err());
    }
}
