//! Register-level tests of the virtio-mmio transport with a fake device.

use std::sync::{Arc, Mutex};

use vm_memory::GuestMemoryAtomic;
use vmm_sys_util::eventfd::EFD_NONBLOCK;

use super::*;
use crate::virtio::testing::{guest_memory, TestQueue};
use crate::virtio::{ActivateError, DeviceNotifier};

#[derive(Default, Debug)]
struct Log {
    activations: Vec<(u64, Vec<bool>, Vec<bool>)>, // (acked, ready, event_idx)
    resets: u32,
    config_writes: Vec<(u64, Vec<u8>)>,
}

struct Fake {
    log: Arc<Mutex<Log>>,
    sizes: Vec<u16>,
    fail_activate: bool,
}

impl VirtioDevice for Fake {
    fn device_type(&self) -> u32 {
        2
    }
    fn queue_max_sizes(&self) -> &[u16] {
        &self.sizes
    }
    fn features(&self) -> u64 {
        // bit 9 (FLUSH), EVENT_IDX, and RING_PACKED which the transport must strip.
        (1 << 9) | features::RING_EVENT_IDX | features::RING_PACKED
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            *b = (offset as u8).wrapping_add(i as u8);
        }
    }
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        self.log
            .lock()
            .unwrap()
            .config_writes
            .push((offset, data.to_vec()));
    }
    fn activate(
        &mut self,
        _mem: GuestMem,
        acked: u64,
        queues: Vec<Queue>,
        _notifier: Arc<dyn DeviceNotifier>,
        _queue_evts: Vec<EventFd>,
    ) -> Result<(), ActivateError> {
        if self.fail_activate {
            return Err(ActivateError::BadQueue(0));
        }
        self.log.lock().unwrap().activations.push((
            acked,
            queues.iter().map(|q| q.ready()).collect(),
            queues.iter().map(|q| q.event_idx_enabled()).collect(),
        ));
        Ok(())
    }
    fn reset(&mut self) {
        self.log.lock().unwrap().resets += 1;
    }
}

struct Rig {
    t: MmioTransport,
    log: Arc<Mutex<Log>>,
    tq: TestQueue,
}

fn rig_with(fail_activate: bool) -> Rig {
    let mem = guest_memory(0x10_0000);
    let tq = TestQueue::new(&mem, 0x1000, 16);
    let log = Arc::new(Mutex::new(Log::default()));
    let dev = Fake {
        log: log.clone(),
        sizes: vec![16],
        fail_activate,
    };
    let t = MmioTransport::new(
        Box::new(dev),
        GuestMemoryAtomic::new(mem),
        EventFd::new(EFD_NONBLOCK).unwrap(),
        vec![EventFd::new(EFD_NONBLOCK).unwrap()],
    );
    Rig { t, log, tq }
}

fn rig() -> Rig {
    rig_with(false)
}

impl Rig {
    fn r(&mut self, off: u32) -> u32 {
        let mut b = [0u8; 4];
        self.t.read(off.into(), &mut b);
        u32::from_le_bytes(b)
    }
    fn w(&mut self, off: u32, v: u32) {
        self.t.write(off.into(), &v.to_le_bytes());
    }
    fn status(&mut self) -> u32 {
        self.r(VIRTIO_MMIO_STATUS)
    }
    fn ack_features(&mut self, f: u64) {
        self.w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
        self.w(VIRTIO_MMIO_DRIVER_FEATURES, f as u32);
        self.w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        self.w(VIRTIO_MMIO_DRIVER_FEATURES, (f >> 32) as u32);
    }
    fn setup_queue(&mut self) {
        let (d, a, u) = (
            self.tq.desc_addr(),
            self.tq.avail_addr(),
            self.tq.used_addr(),
        );
        self.w(VIRTIO_MMIO_QUEUE_SEL, 0);
        self.w(VIRTIO_MMIO_QUEUE_NUM, 16);
        self.w(VIRTIO_MMIO_QUEUE_DESC_LOW, d as u32);
        self.w(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
        self.w(VIRTIO_MMIO_QUEUE_AVAIL_LOW, a as u32);
        self.w(VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
        self.w(VIRTIO_MMIO_QUEUE_USED_LOW, u as u32);
        self.w(VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
        self.w(VIRTIO_MMIO_QUEUE_READY, 1);
    }
    /// The full Linux probe sequence up to FEATURES_OK.
    fn up_to_features_ok(&mut self, f: u64) {
        self.w(VIRTIO_MMIO_STATUS, 1);
        self.w(VIRTIO_MMIO_STATUS, 1 | 2);
        self.ack_features(f);
        self.w(VIRTIO_MMIO_STATUS, 1 | 2 | 8);
    }
}

const GOOD: u64 = features::VERSION_1 | features::RING_EVENT_IDX | (1 << 9);

#[test]
fn identity_registers_and_features() {
    let mut r = rig();
    assert_eq!(r.r(VIRTIO_MMIO_MAGIC_VALUE), 0x7472_6976);
    assert_eq!(r.r(VIRTIO_MMIO_VERSION), 2);
    assert_eq!(r.r(VIRTIO_MMIO_DEVICE_ID), 2);
    assert_eq!(r.r(VIRTIO_MMIO_VENDOR_ID), 0);
    r.w(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    assert_eq!(r.r(VIRTIO_MMIO_DEVICE_FEATURES), (1 << 9) | (1 << 29));
    r.w(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    // VERSION_1 added, RING_PACKED (bit 34) stripped.
    assert_eq!(r.r(VIRTIO_MMIO_DEVICE_FEATURES), 1);
    r.w(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
    assert_eq!(r.r(VIRTIO_MMIO_DEVICE_FEATURES), 0);
    r.w(VIRTIO_MMIO_QUEUE_SEL, 0);
    assert_eq!(r.r(VIRTIO_MMIO_QUEUE_NUM_MAX), 16);
    r.w(VIRTIO_MMIO_QUEUE_SEL, 1);
    assert_eq!(r.r(VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
    assert_eq!(r.r(VIRTIO_MMIO_SHM_LEN_LOW), u32::MAX);
    // Config space: any width, offset relative to 0x100.
    let mut b = [0u8; 2];
    r.t.read(0x105, &mut b);
    assert_eq!(b, [5, 6]);
    r.t.write(0x108, &[1, 2, 3]);
    assert_eq!(
        r.log.lock().unwrap().config_writes,
        vec![(8, vec![1, 2, 3])]
    );
    // Non-32-bit register accesses are ignored.
    let mut b = [0xffu8; 2];
    r.t.read(0, &mut b);
    assert_eq!(b, [0, 0]);
    let before = r.t.bad_accesses();
    r.t.write(VIRTIO_MMIO_STATUS.into(), &[1]);
    r.t.write(0x2000, &[0; 4]);
    assert_eq!(r.status(), 0);
    assert_eq!(r.t.bad_accesses(), before + 2);
}

#[test]
fn happy_path_activates_with_event_idx() {
    let mut r = rig();
    r.up_to_features_ok(GOOD);
    assert_eq!(r.status(), 1 | 2 | 8);
    r.setup_queue();
    assert_eq!(r.r(VIRTIO_MMIO_QUEUE_READY), 1);
    r.w(VIRTIO_MMIO_STATUS, 1 | 2 | 8 | 4);
    assert_eq!(r.status(), 15);
    assert!(r.t.is_active());
    let log = r.log.lock().unwrap();
    assert_eq!(log.activations, vec![(GOOD, vec![true], vec![true])]);
}

#[test]
fn features_ok_rejected_for_unoffered_or_missing_version1() {
    for bad in [
        GOOD | (1 << 3),              // never offered
        GOOD | features::RING_PACKED, // stripped from the offer
        GOOD & !features::VERSION_1,  // legacy driver
    ] {
        let mut r = rig();
        r.up_to_features_ok(bad);
        assert_eq!(r.status(), 1 | 2, "features {bad:#x}");
        // DRIVER_OK without FEATURES_OK is refused too.
        r.w(VIRTIO_MMIO_STATUS, 1 | 2 | 4);
        assert_eq!(r.status(), 1 | 2);
        assert!(!r.t.is_active());
    }
    // A non-zero write to feature page 2 is an unoffered feature.
    let mut r = rig();
    r.w(VIRTIO_MMIO_STATUS, 1);
    r.w(VIRTIO_MMIO_STATUS, 3);
    r.ack_features(GOOD);
    r.w(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 2);
    r.w(VIRTIO_MMIO_DRIVER_FEATURES, 1);
    r.w(VIRTIO_MMIO_STATUS, 11);
    assert_eq!(r.status(), 3);
}

#[test]
fn bad_status_sequences() {
    let mut r = rig();
    // DRIVER before ACKNOWLEDGE, FEATURES_OK before DRIVER, DRIVER_OK first: all ignored.
    r.w(VIRTIO_MMIO_STATUS, 2);
    assert_eq!(r.status(), 0);
    r.w(VIRTIO_MMIO_STATUS, 1);
    r.w(VIRTIO_MMIO_STATUS, 1 | 8);
    assert_eq!(r.status(), 1);
    r.w(VIRTIO_MMIO_STATUS, 1 | 4);
    assert_eq!(r.status(), 1);
    // Feature writes before DRIVER are ignored.
    r.ack_features(GOOD);
    assert_eq!(r.t.acked_features(), 0);
    r.w(VIRTIO_MMIO_STATUS, 3);
    r.ack_features(GOOD);
    r.w(VIRTIO_MMIO_STATUS, 11);
    // Clearing bits is ignored; FAILED is accepted any time.
    r.w(VIRTIO_MMIO_STATUS, 1);
    assert_eq!(r.status(), 11);
    // Feature writes after FEATURES_OK are ignored.
    r.ack_features(features::VERSION_1);
    assert_eq!(r.t.acked_features(), GOOD);
    r.w(VIRTIO_MMIO_STATUS, 11 | 128);
    assert_eq!(r.status(), 11 | 128);
}

#[test]
fn queue_registers_only_between_features_ok_and_driver_ok() {
    let mut r = rig();
    // Before FEATURES_OK.
    r.w(VIRTIO_MMIO_STATUS, 1);
    r.w(VIRTIO_MMIO_STATUS, 3);
    r.setup_queue();
    assert_eq!(r.r(VIRTIO_MMIO_QUEUE_READY), 0);
    r.ack_features(GOOD);
    r.w(VIRTIO_MMIO_STATUS, 11);
    r.setup_queue();
    assert_eq!(r.r(VIRTIO_MMIO_QUEUE_READY), 1);
    r.w(VIRTIO_MMIO_STATUS, 15);
    assert!(r.t.is_active());
    // After DRIVER_OK: ignored.
    r.w(VIRTIO_MMIO_QUEUE_READY, 0);
    r.w(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x8000);
    assert_eq!(r.r(VIRTIO_MMIO_QUEUE_READY), 1);
    assert_eq!(r.t.queues[0].desc_table(), r.tq.desc_addr());
}

#[test]
fn invalid_queue_sets_needs_reset() {
    // Queue never made ready.
    let mut r = rig();
    r.up_to_features_ok(GOOD);
    r.w(VIRTIO_MMIO_STATUS, 15);
    assert!(!r.t.is_active());
    assert_eq!(r.status(), 15 | 64);
    assert_eq!(r.r(VIRTIO_MMIO_INTERRUPT_STATUS), 2);
    assert_eq!(r.t.interrupt().irq_evt().read().unwrap(), 1);
    assert!(r.log.lock().unwrap().activations.is_empty());

    // Ring outside guest memory.
    let mut r = rig();
    r.up_to_features_ok(GOOD);
    r.setup_queue();
    r.w(VIRTIO_MMIO_QUEUE_USED_HIGH, 1);
    r.w(VIRTIO_MMIO_STATUS, 15);
    assert_eq!(r.status(), 15 | 64);

    // Device refuses activation.
    let mut r = rig_with(true);
    r.up_to_features_ok(GOOD);
    r.setup_queue();
    r.w(VIRTIO_MMIO_STATUS, 15);
    assert_eq!(r.status(), 15 | 64);
    // Bad queue size is ignored (stays at max) rather than accepted.
    let mut r = rig();
    r.up_to_features_ok(GOOD);
    r.setup_queue();
    r.w(VIRTIO_MMIO_QUEUE_NUM, 3);
    r.w(VIRTIO_MMIO_QUEUE_NUM, 1 << 20);
    assert_eq!(r.t.queues[0].size(), 16);
}

#[test]
fn reset_clears_everything() {
    let mut r = rig();
    r.up_to_features_ok(GOOD);
    r.setup_queue();
    r.w(VIRTIO_MMIO_STATUS, 15);
    r.t.interrupt().signal_used_queue();
    r.w(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    r.w(VIRTIO_MMIO_STATUS, 0);
    assert_eq!(r.status(), 0);
    assert!(!r.t.is_active());
    assert_eq!(r.t.acked_features(), 0);
    assert_eq!(r.r(VIRTIO_MMIO_INTERRUPT_STATUS), 0);
    assert_eq!(r.r(VIRTIO_MMIO_QUEUE_READY), 0);
    assert_eq!(r.r(VIRTIO_MMIO_DEVICE_FEATURES), 1 << 9 | 1 << 29);
    let q = &r.t.queues[0];
    assert!(!q.event_idx_enabled());
    assert_eq!(q.next_avail(), 0);
    assert_eq!(r.log.lock().unwrap().resets, 1);
    // And the device can be brought up again.
    r.up_to_features_ok(features::VERSION_1);
    r.setup_queue();
    r.w(VIRTIO_MMIO_STATUS, 15);
    assert!(r.t.is_active());
    let log = r.log.lock().unwrap();
    assert_eq!(
        log.activations[1],
        (features::VERSION_1, vec![true], vec![false])
    );
    drop(log);
    drop(r.t);
    assert_eq!(r.log.lock().unwrap().resets, 2);
}

#[test]
fn interrupt_ack_and_notify() {
    let mut r = rig();
    r.t.interrupt().signal_used_queue();
    r.t.interrupt().signal_config();
    assert_eq!(r.r(VIRTIO_MMIO_INTERRUPT_STATUS), 3);
    r.w(VIRTIO_MMIO_INTERRUPT_ACK, 1);
    assert_eq!(r.r(VIRTIO_MMIO_INTERRUPT_STATUS), 2);
    // QUEUE_NOTIFY without a KVM ioeventfd signals the queue's EventFd itself.
    r.w(VIRTIO_MMIO_QUEUE_NOTIFY, 0);
    assert_eq!(r.t.queue_evts()[0].read().unwrap(), 1);
    r.w(VIRTIO_MMIO_QUEUE_NOTIFY, 7);
    assert!(r.t.queue_evts()[0].read().is_err());
}
