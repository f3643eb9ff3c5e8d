//! Virtio device model: the [`VirtioDevice`] trait that concrete devices (block, dmapin)
//! implement, the [`DeviceNotifier`] through which they notify the driver, the device thread
//! in [`worker`], descriptor-chain walking in [`chain`], and the virtio-mmio transport in
//! [`mmio`] with its [`Interrupt`].
//!
//! Everything a device touches is transport-neutral: virtio-queue `Queue`s, notification
//! EventFds, guest memory as a [`GuestMem`], and a [`DeviceNotifier`]. Under virtio-mmio these
//! come from [`MmioTransport`] (ioeventfds, one [`Interrupt`] per slot); a vhost-user backend
//! would hand over the queues and kick EventFds it got from the frontend and a notifier that
//! writes each queue's call EventFd.
//!
//! Guest memory is shared with device threads as a [`GuestMemoryAtomic<GuestMemoryMmap>`]
//! ([`GuestMem`]): cloning it is cheap, and a device thread calls `.memory()` once per batch of
//! requests, so a later memory hot-(un)plug would be picked up between batches. The VMM keeps
//! its own clone for loading the kernel and registering memslots.

pub mod chain;
pub mod mmio;
#[cfg(any(test, feature = "test-utils"))]
pub mod testing;
pub mod vhost_user;
pub mod worker;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use virtio_bindings::virtio_mmio::{VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INT_VRING};
use virtio_queue::Queue;
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

pub use mmio::MmioTransport;

/// The guest memory handle given to virtio devices (see the module documentation).
pub type GuestMem = GuestMemoryAtomic<GuestMemoryMmap>;

/// Device status bits (virtio 1.2 §2.1), set by the driver in the order of the initialization
/// sequence (§3.1.1); writing 0 resets the device.
pub mod status {
    /// The guest OS found the device and recognised it as a virtio device.
    pub const ACKNOWLEDGE: u8 = 1;
    /// The guest OS knows how to drive the device.
    pub const DRIVER: u8 = 2;
    /// The driver is set up and ready to drive the device: the device may use its queues.
    pub const DRIVER_OK: u8 = 4;
    /// The driver acknowledged all the features it understands; feature negotiation is over
    /// (the device clears this bit again if it refuses the subset).
    pub const FEATURES_OK: u8 = 8;
    /// Set by the device: it hit an error it cannot recover from and needs a reset.
    pub const DEVICE_NEEDS_RESET: u8 = 64;
    /// The driver gave up on the device.
    pub const FAILED: u8 = 128;
}

/// Feature bits used by the transport (virtio 1.2 §6).
pub mod features {
    /// The device conforms to virtio 1.x (mandatory for virtio-mmio version 2).
    pub const VERSION_1: u64 = 1 << 32;
    /// Packed virtqueues: never offered (virtio-queue only processes split rings).
    pub const RING_PACKED: u64 = 1 << 34;
    /// `used_event` / `avail_event` notification suppression.
    pub const RING_EVENT_IDX: u64 = 1 << 29;
}

/// Why [`VirtioDevice::activate`] refused to start the device.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// The queue with this index is not ready (QueueReady 0) or its rings are unusable.
    #[error("queue {0} is not ready or not usable")]
    BadQueue(usize),
    /// The transport handed over a different number of queues (or notification EventFds)
    /// than the device has.
    #[error("expected {expected} queues, got {got}")]
    QueueCount {
        /// Queues the device has ([`VirtioDevice::queue_max_sizes`]).
        expected: usize,
        /// The smaller of the queues and the EventFds handed over.
        got: usize,
    },
    /// Creating the kill EventFd or spawning the device thread failed.
    #[error("cannot start the device thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The device is already serving its queues (activated twice without a reset).
    #[error("device already active")]
    AlreadyActive,
}

/// A virtio device behind a transport.
///
/// The transport owns the register state (features, status, queue configuration). It calls
/// [`activate`](Self::activate) once the driver writes DRIVER_OK and every ready queue passed
/// `Queue::is_valid`, and [`reset`](Self::reset) when the driver writes 0 to STATUS (or the
/// transport is dropped). Between the two the device serves its queues, normally on its own
/// thread.
pub trait VirtioDevice: Send {
    /// Virtio device ID (`virtio_ids`), e.g. 2 for block. Must not be 0.
    fn device_type(&self) -> u32;
    /// Maximum size of each queue; the length of the slice is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];
    /// Feature bits offered to the driver. The transport adds VERSION_1 and removes
    /// RING_PACKED whatever this returns.
    fn features(&self) -> u64;
    /// Read device configuration space at `offset` (relative to 0x100). Bytes past the end
    /// of the configuration space read as zero.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// Write device configuration space. Read-only fields ignore the write.
    fn write_config(&mut self, offset: u64, data: &[u8]);
    /// Start serving `queues` (one per entry of [`queue_max_sizes`](Self::queue_max_sizes),
    /// in order, with `queue_evts[i]` signalled when the driver notifies queue `i`), telling
    /// the driver about used buffers and device errors through `notifier`.
    /// `acked_features` is what the driver accepted.
    fn activate(
        &mut self,
        mem: GuestMem,
        acked_features: u64,
        queues: Vec<Queue>,
        notifier: std::sync::Arc<dyn DeviceNotifier>,
        queue_evts: Vec<EventFd>,
    ) -> Result<(), ActivateError>;
    /// Stop serving queues (joining any device thread) and return to the pre-activation
    /// state. Must be harmless when the device was never activated.
    fn reset(&mut self);
}

/// Notifications from a device to its driver (virtio 1.2 §2.3), delivered the transport's way.
///
/// Device code calls this from its device thread; implementations must be cheap and must not
/// block. [`Interrupt`] is the virtio-mmio implementation (one interrupt line per device); a
/// transport with one call EventFd per queue (vhost-user) signals each queue named in
/// [`notify_used`](Self::notify_used).
pub trait DeviceNotifier: Send + Sync {
    /// Used buffer notification for every queue whose bit ([`queue_bit`]) is set in `queues`.
    /// Devices batch: one call may name several queues; `queues == 0` notifies nothing.
    fn notify_used(&self, queues: u64);
    /// The device hit an error it cannot recover from (e.g. a corrupt ring) and stopped
    /// serving its queues until the driver resets it.
    fn notify_device_error(&self);
}

/// The bit of queue `index` in a [`DeviceNotifier::notify_used`] mask.
pub const fn queue_bit(index: usize) -> u64 {
    1 << index
}

/// The interrupt line of one virtio-mmio device: the INTERRUPT_STATUS bits plus the irqfd the
/// VMM registered with `KVM_IRQFD`. Shared (in an `Arc`) between the transport, which reads
/// and acknowledges the bits, and the device thread, which raises them.
#[derive(Debug)]
pub struct Interrupt {
    status: AtomicU32,
    needs_reset: AtomicBool,
    irq: EventFd,
}

impl Interrupt {
    /// An interrupt line with no pending bits that signals `irq` (registered as the slot's
    /// irqfd) on every raise.
    pub fn new(irq: EventFd) -> Self {
        Interrupt {
            status: AtomicU32::new(0),
            needs_reset: AtomicBool::new(false),
            irq,
        }
    }

    /// The irqfd written on every interrupt.
    pub fn irq_evt(&self) -> &EventFd {
        &self.irq
    }

    /// Current INTERRUPT_STATUS value.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }

    /// INTERRUPT_ACK: clear the given bits.
    pub fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }

    fn raise(&self, bit: u32) {
        self.status.fetch_or(bit, Ordering::SeqCst);
        // An eventfd write only fails if the counter would overflow (it is then already
        // signalled), so there is nothing useful to do with the error.
        let _ = self.irq.write(1);
    }

    /// "Used buffer notification": the device put buffers in a used ring.
    pub fn signal_used_queue(&self) {
        self.raise(VIRTIO_MMIO_INT_VRING);
    }

    /// "Configuration change notification".
    pub fn signal_config(&self) {
        self.raise(VIRTIO_MMIO_INT_CONFIG);
    }

    /// The device hit an error it cannot recover from (e.g. a corrupt ring): the transport
    /// will report DEVICE_NEEDS_RESET in STATUS, and the driver gets a config interrupt.
    pub fn signal_device_error(&self) {
        self.needs_reset.store(true, Ordering::SeqCst);
        self.signal_config();
    }

    /// Whether [`signal_device_error`](Self::signal_device_error) was called since the last
    /// [`clear`](Self::clear).
    pub fn needs_reset(&self) -> bool {
        self.needs_reset.load(Ordering::SeqCst)
    }

    /// Device reset: drop all pending bits.
    pub fn clear(&self) {
        self.status.store(0, Ordering::SeqCst);
        self.needs_reset.store(false, Ordering::SeqCst);
    }
}

/// virtio-mmio has one interrupt per device: any set of used queues raises it once (the
/// driver's handler scans every queue), a device error sets DEVICE_NEEDS_RESET.
impl DeviceNotifier for Interrupt {
    fn notify_used(&self, queues: u64) {
        if queues != 0 {
            self.signal_used_queue();
        }
    }

    fn notify_device_error(&self) {
        self.signal_device_error();
    }
}

/// The `virtio_mmio.device=` kernel command line entry for a 4 KiB slot at `base` with `irq`.
pub fn cmdline_entry(base: u64, irq: u32) -> String {
    format!("virtio_mmio.device=4K@{base:#x}:{irq}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmm_sys_util::eventfd::EFD_NONBLOCK;

    #[test]
    fn cmdline_entry_format() {
        assert_eq!(
            cmdline_entry(0xd000_1000, 5),
            "virtio_mmio.device=4K@0xd0001000:5"
        );
    }

    #[test]
    fn interrupt_bits_and_eventfd() {
        let i = Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap());
        assert!(i.irq_evt().read().is_err());
        i.signal_used_queue();
        i.signal_used_queue();
        assert_eq!(i.status(), 1);
        assert_eq!(i.irq_evt().read().unwrap(), 2);
        i.signal_device_error();
        assert_eq!(i.status(), 3);
        assert!(i.needs_reset());
        i.ack(1);
        assert_eq!(i.status(), 2);
        i.clear();
        assert_eq!(i.status(), 0);
        assert!(!i.needs_reset());
    }

    #[test]
    fn interrupt_as_notifier_raises_once_per_batch() {
        let i = Interrupt::new(EventFd::new(EFD_NONBLOCK).unwrap());
        let n: &dyn DeviceNotifier = &i;
        n.notify_used(0);
        assert_eq!(i.status(), 0);
        assert!(i.irq_evt().read().is_err());
        n.notify_used(queue_bit(0) | queue_bit(1));
        assert_eq!(i.status(), 1);
        assert_eq!(i.irq_evt().read().unwrap(), 1);
        n.notify_device_error();
        assert!(i.needs_reset());
        assert_eq!(i.status(), 3);
    }
}
