//! The vhost-user transport driven by a real vhost-user frontend (the `vhost` crate's
//! `Frontend`, speaking the protocol over a Unix socket as QEMU does) in front of the real
//! block device: guest memory is one memfd shared by "frontend" and backend.

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use vhost::vhost_user::message::{VhostUserConfigFlags, VhostUserProtocolFeatures};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vm_memory::{Bytes, FileOffset, GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
use vmm_sys_util::tempdir::TempDir;

use super::Server;
use crate::block::disk::CowDisk;
use crate::block::{Block, BlockConfig};
use crate::virtio::testing::TestQueue;
use crate::virtio::VirtioDevice;

const MEM: u64 = 1 << 20;
/// Where the "frontend" pretends guest RAM sits in its address space.
const FRONTEND_VA: u64 = 0x7f12_0000_0000;

/// Guest memory in a file, as QEMU's memory-backend-memfd provides it.
fn shared_memory() -> (std::fs::File, GuestMemoryMmap) {
    let f = vmm_sys_util::tempfile::TempFile::new().unwrap().into_file();
    f.set_len(MEM).unwrap();
    let region =
        MmapRegion::from_file(FileOffset::new(f.try_clone().unwrap(), 0), MEM as usize).unwrap();
    let mem =
        GuestMemoryMmap::from_regions(vec![GuestRegionMmap::new(region, GuestAddress(0)).unwrap()])
            .unwrap();
    (f, mem)
}

fn block_device(dir: &TempDir) -> Box<dyn VirtioDevice> {
    let base = dir.as_path().join("base.img");
    std::fs::write(&base, vec![0u8; 1 << 20]).unwrap();
    let disk = CowDisk::open_in(&base, dir.as_path()).unwrap();
    Box::new(Block::new(disk, BlockConfig::default()).unwrap())
}

struct Connected {
    front: Frontend,
    mem: GuestMemoryMmap,
    _file: std::fs::File,
    kick: EventFd,
    call: EventFd,
    tq: TestQueue,
}

/// Connect and negotiate the way QEMU's vhost-user-blk does, up to an enabled ring.
fn connect(sock: &std::path::Path) -> Connected {
    let mut front = Frontend::connect(sock, 1).unwrap();
    front.set_owner().unwrap();
    let offered = front.get_features().unwrap();
    assert_ne!(
        offered & (1 << 30),
        0,
        "VHOST_USER_F_PROTOCOL_FEATURES offered"
    );
    assert_ne!(offered & (1 << 32), 0, "VERSION_1 offered");
    front.set_features(offered).unwrap();
    let proto = front.get_protocol_features().unwrap();
    assert!(proto.contains(VhostUserProtocolFeatures::CONFIG));
    front.set_protocol_features(proto).unwrap();
    let (file, mem) = shared_memory();
    front
        .set_mem_table(&[VhostUserMemoryRegionInfo {
            guest_phys_addr: 0,
            memory_size: MEM,
            userspace_addr: FRONTEND_VA,
            mmap_offset: 0,
            mmap_handle: file.as_raw_fd(),
        }])
        .unwrap();
    let tq = TestQueue::new(&mem, 0x1000, 64);
    front.set_vring_num(0, 64).unwrap();
    front
        .set_vring_addr(
            0,
            &VringConfigData {
                queue_max_size: 256,
                queue_size: 64,
                flags: 0,
                desc_table_addr: FRONTEND_VA + tq.desc_addr(),
                used_ring_addr: FRONTEND_VA + tq.used_addr(),
                avail_ring_addr: FRONTEND_VA + tq.avail_addr(),
                log_addr: None,
            },
        )
        .unwrap();
    front.set_vring_base(0, 0).unwrap();
    let call = EventFd::new(EFD_NONBLOCK).unwrap();
    let kick = EventFd::new(EFD_NONBLOCK).unwrap();
    front.set_vring_call(0, &call).unwrap();
    front.set_vring_kick(0, &kick).unwrap();
    front.set_vring_enable(0, true).unwrap();
    Connected {
        front,
        mem,
        _file: file,
        kick,
        call,
        tq,
    }
}

#[test]
fn block_write_through_a_vhost_user_frontend() {
    let dir = TempDir::new().unwrap();
    let sock = dir.as_path().join("blk.sock");
    let server = Server::start(&sock, "test-vu-blk", block_device(&dir)).unwrap();
    let mut c = connect(&sock);

    // Config space comes from the device: capacity is 2048 sectors.
    let (_, cfg) = c
        .front
        .get_config(0, 8, VhostUserConfigFlags::WRITABLE, &[0u8; 8])
        .unwrap();
    assert_eq!(u64::from_le_bytes(cfg[..8].try_into().unwrap()), 2048);

    // One OUT request: sector 8, 4 KiB of 0x5a, status byte.
    let (hdr, data, status) = (0x10000u64, 0x20000u64, 0x18000u64);
    let mut hb = [0u8; 16];
    hb[..4].copy_from_slice(&1u32.to_le_bytes());
    hb[8..].copy_from_slice(&8u64.to_le_bytes());
    c.mem.write_slice(&hb, GuestAddress(hdr)).unwrap();
    c.mem
        .write_slice(&[0x5a; 4096], GuestAddress(data))
        .unwrap();
    c.mem.write_obj(0xffu8, GuestAddress(status)).unwrap();
    let head =
        c.tq.add_chain(&[(hdr, 16, false), (data, 4096, false), (status, 1, true)]);
    c.tq.publish(head);
    c.kick.write(1).unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    while c.tq.used_idx() < 1 {
        assert!(
            Instant::now() < deadline,
            "the device never completed the request"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(c.mem.read_obj::<u8>(GuestAddress(status)).unwrap(), 0);
    assert_eq!(c.tq.used_elem(0).0, u32::from(head));
    assert!(
        c.call.read().unwrap() >= 1,
        "the call eventfd was signalled"
    );

    // Stopping the ring (as QEMU does at shutdown) resets the device; the frontend leaving
    // ends the server cleanly.
    let state = c.front.get_vring_base(0).unwrap();
    assert_eq!(state, 0);
    drop(c);
    assert_eq!(server.join(), None);
}

#[test]
fn hostile_setup_values_are_refused() {
    use super::VhostUserTransport;
    use vhost::vhost_user::message::{VhostUserMemoryRegion, VhostUserVringAddrFlags};
    use vhost::vhost_user::VhostUserBackendReqHandlerMut as H;
    let dir = TempDir::new().unwrap();
    let mut t = VhostUserTransport::new(block_device(&dir));
    H::set_owner(&mut t).unwrap();
    assert!(H::set_owner(&mut t).is_err(), "owned twice");
    let offered = H::get_features(&mut t).unwrap();
    assert!(
        H::set_features(&mut t, offered | (1 << 60)).is_err(),
        "unknown feature"
    );
    assert!(H::set_vring_num(&mut t, 5, 64).is_err(), "no such ring");
    assert!(
        H::set_vring_num(&mut t, 0, 100).is_err(),
        "not a power of two"
    );
    assert!(H::set_vring_num(&mut t, 0, 0).is_err());
    assert!(
        H::set_vring_num(&mut t, 0, 1 << 20).is_err(),
        "larger than the maximum"
    );
    assert!(H::set_vring_base(&mut t, 0, 1 << 16).is_err());
    let flags = VhostUserVringAddrFlags::empty();
    assert!(
        H::set_vring_addr(&mut t, 0, VhostUserVringAddrFlags::empty(), 0, 0, 0, 0).is_err(),
        "addresses before a memory table"
    );
    let (file, _mem) = shared_memory();
    let region = [VhostUserMemoryRegion::new(0, MEM, FRONTEND_VA, 0)];
    H::set_mem_table(&mut t, &region, vec![file], None).unwrap();
    assert!(
        H::set_vring_addr(&mut t, 0, flags, 0x1000, 0x2000, 0x3000, 0).is_err(),
        "an address outside every region"
    );
    assert!(H::get_config(&mut t, u32::MAX, 8, VhostUserConfigFlags::WRITABLE).is_err());
    assert!(H::get_config(&mut t, 0, 0x2000, VhostUserConfigFlags::WRITABLE).is_err());
    assert!(H::set_config(
        &mut t,
        u32::MAX - 1,
        &[0; 4],
        VhostUserConfigFlags::WRITABLE
    )
    .is_err());
    assert!(!t.is_active());
}

/// A fresh eventfd as the `File` a frontend's message carries.
fn eventfd_file() -> std::fs::File {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let e = EventFd::new(EFD_NONBLOCK).unwrap();
    // SAFETY: the descriptor is the EventFd's own, given up by `into_raw_fd`: the File is its
    // only owner.
    unsafe { std::fs::File::from_raw_fd(e.into_raw_fd()) }
}

proptest::proptest! {
    /// Any sequence of set-up messages with any values: the transport refuses what is wrong
    /// and never panics (it faces QEMU, but QEMU relays what the guest's driver wrote).
    #[test]
    fn any_message_sequence_is_survived(ops in proptest::collection::vec(
        (0u8..11, proptest::prelude::any::<u32>(), proptest::prelude::any::<u64>()), 0..40)) {
        use super::VhostUserTransport;
        use vhost::vhost_user::message::{VhostUserMemoryRegion, VhostUserVringAddrFlags};
        use vhost::vhost_user::VhostUserBackendReqHandlerMut as H;
        let dir = TempDir::new().unwrap();
        let mut t = VhostUserTransport::new(block_device(&dir));
        for (op, a, b) in ops {
            let idx = (a % 3) as u8;
            let _ = match op {
                0 => H::set_owner(&mut t),
                1 => H::set_features(&mut t, b),
                2 => {
                    let (file, _mem) = shared_memory();
                    let r = [VhostUserMemoryRegion::new(b % (1 << 40), MEM, FRONTEND_VA, 0)];
                    H::set_mem_table(&mut t, &r, vec![file], None).map(|_| ())
                }
                3 => H::set_vring_num(&mut t, u32::from(idx), a),
                4 => H::set_vring_addr(
                    &mut t,
                    u32::from(idx),
                    VhostUserVringAddrFlags::empty(),
                    FRONTEND_VA + (b % MEM),
                    FRONTEND_VA + (b / 3 % MEM),
                    FRONTEND_VA + (b / 7 % MEM),
                    0,
                ),
                5 => H::set_vring_base(&mut t, u32::from(idx), a),
                6 => H::set_vring_kick(&mut t, idx, Some(eventfd_file())),
                10 => H::set_vring_call(&mut t, idx, Some(eventfd_file())),
                7 => H::set_vring_enable(&mut t, u32::from(idx), b % 2 == 0),
                8 => H::get_vring_base(&mut t, u32::from(idx)).map(|_| ()),
                9 => H::get_config(&mut t, a % 0x2000, (b % 0x2000) as u32, VhostUserConfigFlags::WRITABLE).map(|_| ()),
                _ => Ok(()),
            };
        }
    }
}
