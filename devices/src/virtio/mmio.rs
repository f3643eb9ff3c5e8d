//! virtio-mmio transport, version 2 ("modern"), virtio 1.2 §4.2.
//!
//! [`MmioTransport`] is a [`BusDevice`] covering one 4 KiB slot. Registers 0x000..0x100 are
//! 32 bits wide: any other width or an unaligned offset is ignored (reads return zero).
//! Configuration space at 0x100.. accepts any width and is forwarded to the device.
//!
//! Wiring done by the VMM (see also [`crate::virtio::cmdline_entry`]):
//! - the `irq` EventFd given to [`MmioTransport::new`] is registered with `KVM_IRQFD` for the
//!   slot's GSI;
//! - each `queue_evts[i]` is registered with `KVM_IOEVENTFD` at `base + 0x50` (QUEUE_NOTIFY),
//!   datamatch `i as u32`. Without the ioeventfd, a QUEUE_NOTIFY write reaching
//!   [`BusDevice::write`] signals the same EventFd, so the device works either way.
//!
//! Status machine: ACKNOWLEDGE → DRIVER → FEATURES_OK → DRIVER_OK, each bit accepted only if
//! its predecessors are set; FAILED is accepted at any time; writing 0 resets the device;
//! writes that clear bits are ignored. FEATURES_OK is refused (the bit stays clear, which the
//! driver detects by reading STATUS back) if the driver accepted a feature we did not offer
//! or did not accept VERSION_1. Queue registers are writable only while FEATURES_OK is set
//! and DRIVER_OK is not. At DRIVER_OK every queue must be ready and pass `Queue::is_valid`;
//! if that or [`VirtioDevice::activate`] fails, STATUS gets DEVICE_NEEDS_RESET and a config
//! interrupt is raised.

use std::sync::Arc;

use virtio_bindings::virtio_mmio::*;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestAddressSpace;
use vmm_sys_util::eventfd::EventFd;

use super::{features, status, GuestMem, Interrupt, VirtioDevice};
use crate::bus::BusDevice;

/// MAGIC register value: "virt".
pub const MMIO_MAGIC: u32 = 0x7472_6976;
/// Transport version: 2 (modern).
pub const MMIO_VERSION: u32 = 2;
/// Size of one virtio-mmio slot.
pub const MMIO_SLOT_SIZE: u64 = 0x1000;
/// Offset of the QUEUE_NOTIFY register (where the VMM registers the ioeventfds).
pub const QUEUE_NOTIFY_OFFSET: u64 = VIRTIO_MMIO_QUEUE_NOTIFY as u64;
/// Vendor ID reported to the guest.
pub const VENDOR_ID: u32 = 0;

/// A virtio device exposed through a virtio-mmio slot.
pub struct MmioTransport {
    device: Box<dyn VirtioDevice>,
    mem: GuestMem,
    interrupt: Arc<Interrupt>,
    queue_evts: Vec<EventFd>,
    queues: Vec<Queue>,
    offered: u64,
    acked: u64,
    /// The driver wrote a non-zero value to a feature page above 1.
    acked_unknown_page: bool,
    device_features_sel: u32,
    driver_features_sel: u32,
    queue_sel: u32,
    status: u8,
    config_generation: u32,
    active: bool,
    bad_accesses: u64,
}

impl MmioTransport {
    /// Wrap `device`. `irq` is the irqfd for this slot's GSI; `queue_evts` must hold one
    /// EventFd per queue of the device (extra ones are dropped, missing ones make activation
    /// fail). The transport keeps them for its lifetime and hands duplicates to the device
    /// at every activation.
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestMem,
        irq: EventFd,
        queue_evts: Vec<EventFd>,
    ) -> Self {
        let queues = device
            .queue_max_sizes()
            .iter()
            .map(|&max| Queue::new(max).unwrap_or_else(|_| Queue::new(1).expect("size 1 is valid")))
            .collect();
        let offered = (device.features() | features::VERSION_1) & !features::RING_PACKED;
        MmioTransport {
            device,
            mem,
            interrupt: Arc::new(Interrupt::new(irq)),
            queue_evts,
            queues,
            offered,
            acked: 0,
            acked_unknown_page: false,
            device_features_sel: 0,
            driver_features_sel: 0,
            queue_sel: 0,
            status: 0,
            config_generation: 0,
            active: false,
            bad_accesses: 0,
        }
    }

    /// The interrupt handle (its `irq_evt()` is the irqfd to register).
    pub fn interrupt(&self) -> &Arc<Interrupt> {
        &self.interrupt
    }

    /// The queue notification EventFds, index = queue index = ioeventfd datamatch.
    pub fn queue_evts(&self) -> &[EventFd] {
        &self.queue_evts
    }

    /// Current STATUS register value (including DEVICE_NEEDS_RESET).
    pub fn status(&self) -> u8 {
        let mut s = self.status;
        if self.interrupt.needs_reset() {
            s |= status::DEVICE_NEEDS_RESET;
        }
        s
    }

    /// Whether the device is activated (DRIVER_OK accepted and activation succeeded).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Features the driver accepted.
    pub fn acked_features(&self) -> u64 {
        self.acked
    }

    /// Accesses ignored because of their width, alignment or offset.
    pub fn bad_accesses(&self) -> u64 {
        self.bad_accesses
    }

    /// Reset everything to the power-on state and stop the device.
    pub fn reset(&mut self) {
        self.device.reset();
        self.active = false;
        for q in &mut self.queues {
            q.reset();
            q.set_event_idx(false);
            q.set_next_avail(0);
            q.set_next_used(0);
        }
        self.interrupt.clear();
        self.acked = 0;
        self.acked_unknown_page = false;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.queue_sel = 0;
        self.status = 0;
    }

    fn has(&self, bits: u8) -> bool {
        self.status & bits == bits
    }

    fn queue_config_allowed(&self) -> bool {
        self.has(status::FEATURES_OK) && !self.has(status::DRIVER_OK)
    }

    fn selected_queue(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    fn device_error(&mut self) {
        self.interrupt.signal_device_error();
    }

    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        let value = value as u8;
        if value & self.status != self.status {
            // Drivers only ever add bits (or reset with 0).
            return;
        }
        let new = value & !self.status;
        if new & status::FAILED != 0 {
            self.status |= status::FAILED;
        }
        if new & status::ACKNOWLEDGE != 0 {
            self.status |= status::ACKNOWLEDGE;
        }
        if new & status::DRIVER != 0 && self.has(status::ACKNOWLEDGE) {
            self.status |= status::DRIVER;
        }
        if new & status::FEATURES_OK != 0
            && self.has(status::ACKNOWLEDGE | status::DRIVER)
            && self.features_acceptable()
        {
            self.status |= status::FEATURES_OK;
            let event_idx = self.acked & features::RING_EVENT_IDX != 0;
            for q in &mut self.queues {
                q.set_event_idx(event_idx);
            }
        }
        if new & status::DRIVER_OK != 0 && self.has(status::FEATURES_OK) {
            self.status |= status::DRIVER_OK;
            self.activate();
        }
    }

    fn features_acceptable(&self) -> bool {
        !self.acked_unknown_page
            && self.acked & !self.offered == 0
            && self.acked & features::VERSION_1 != 0
    }

    fn activate(&mut self) {
        if self.active {
            return;
        }
        let mem = self.mem.memory();
        let all_valid = self.queues.iter().all(|q| q.is_valid(&*mem));
        drop(mem);
        if !all_valid || self.queue_evts.len() < self.queues.len() {
            self.device_error();
            return;
        }
        let mut queues = Vec::with_capacity(self.queues.len());
        let mut evts = Vec::with_capacity(self.queues.len());
        for (q, evt) in self.queues.iter().zip(&self.queue_evts) {
            match (Queue::try_from(q.state()), evt.try_clone()) {
                (Ok(q), Ok(e)) => {
                    queues.push(q);
                    evts.push(e);
                }
                _ => {
                    self.device_error();
                    return;
                }
            }
        }
        match self.device.activate(
            self.mem.clone(),
            self.acked,
            queues,
            self.interrupt.clone(),
            evts,
        ) {
            Ok(()) => self.active = true,
            Err(_) => self.device_error(),
        }
    }

    fn read_reg(&mut self, offset: u32) -> u32 {
        match offset {
            VIRTIO_MMIO_MAGIC_VALUE => MMIO_MAGIC,
            VIRTIO_MMIO_VERSION => MMIO_VERSION,
            VIRTIO_MMIO_DEVICE_ID => self.device.device_type(),
            VIRTIO_MMIO_VENDOR_ID => VENDOR_ID,
            VIRTIO_MMIO_DEVICE_FEATURES => match self.device_features_sel {
                0 => self.offered as u32,
                1 => (self.offered >> 32) as u32,
                _ => 0,
            },
            VIRTIO_MMIO_QUEUE_NUM_MAX => self.selected_queue().map_or(0, |q| q.max_size().into()),
            VIRTIO_MMIO_QUEUE_READY => self.selected_queue().is_some_and(|q| q.ready()).into(),
            VIRTIO_MMIO_INTERRUPT_STATUS => self.interrupt.status(),
            VIRTIO_MMIO_STATUS => self.status().into(),
            // No shared memory regions: length and base read as all-ones ("absent").
            VIRTIO_MMIO_SHM_LEN_LOW
            | VIRTIO_MMIO_SHM_LEN_HIGH
            | VIRTIO_MMIO_SHM_BASE_LOW
            | VIRTIO_MMIO_SHM_BASE_HIGH => u32::MAX,
            VIRTIO_MMIO_CONFIG_GENERATION => self.config_generation,
            _ => {
                self.bad_accesses += 1;
                0
            }
        }
    }

    fn write_reg(&mut self, offset: u32, v: u32) {
        match offset {
            VIRTIO_MMIO_DEVICE_FEATURES_SEL => self.device_features_sel = v,
            VIRTIO_MMIO_DRIVER_FEATURES_SEL => self.driver_features_sel = v,
            VIRTIO_MMIO_DRIVER_FEATURES => {
                if !self.has(status::DRIVER) || self.has(status::FEATURES_OK) {
                    self.bad_accesses += 1;
                    return;
                }
                match self.driver_features_sel {
                    0 => self.acked = (self.acked & !0xffff_ffff) | u64::from(v),
                    1 => self.acked = (self.acked & 0xffff_ffff) | (u64::from(v) << 32),
                    _ => self.acked_unknown_page |= v != 0,
                }
            }
            VIRTIO_MMIO_QUEUE_SEL => self.queue_sel = v,
            VIRTIO_MMIO_QUEUE_NUM
            | VIRTIO_MMIO_QUEUE_READY
            | VIRTIO_MMIO_QUEUE_DESC_LOW
            | VIRTIO_MMIO_QUEUE_DESC_HIGH
            | VIRTIO_MMIO_QUEUE_AVAIL_LOW
            | VIRTIO_MMIO_QUEUE_AVAIL_HIGH
            | VIRTIO_MMIO_QUEUE_USED_LOW
            | VIRTIO_MMIO_QUEUE_USED_HIGH => {
                if !self.queue_config_allowed() {
                    self.bad_accesses += 1;
                    return;
                }
                let Some(q) = self.selected_queue() else {
                    self.bad_accesses += 1;
                    return;
                };
                match offset {
                    // An invalid size is ignored; `is_valid` at DRIVER_OK still applies.
                    VIRTIO_MMIO_QUEUE_NUM => {
                        let _ = u16::try_from(v).map(|s| q.try_set_size(s));
                    }
                    VIRTIO_MMIO_QUEUE_READY => q.set_ready(v == 1),
                    VIRTIO_MMIO_QUEUE_DESC_LOW => q.set_desc_table_address(Some(v), None),
                    VIRTIO_MMIO_QUEUE_DESC_HIGH => q.set_desc_table_address(None, Some(v)),
                    VIRTIO_MMIO_QUEUE_AVAIL_LOW => q.set_avail_ring_address(Some(v), None),
                    VIRTIO_MMIO_QUEUE_AVAIL_HIGH => q.set_avail_ring_address(None, Some(v)),
                    VIRTIO_MMIO_QUEUE_USED_LOW => q.set_used_ring_address(Some(v), None),
                    _ => q.set_used_ring_address(None, Some(v)),
                }
            }
            VIRTIO_MMIO_QUEUE_NOTIFY => match self.queue_evts.get(v as usize) {
                Some(evt) => {
                    let _ = evt.write(1);
                }
                None => self.bad_accesses += 1,
            },
            VIRTIO_MMIO_INTERRUPT_ACK => self.interrupt.ack(v),
            VIRTIO_MMIO_STATUS => self.write_status(v),
            _ => self.bad_accesses += 1,
        }
    }
}

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if offset >= MMIO_SLOT_SIZE {
            self.bad_accesses += 1;
        } else if offset >= u64::from(VIRTIO_MMIO_CONFIG) {
            self.device
                .read_config(offset - u64::from(VIRTIO_MMIO_CONFIG), data);
        } else if data.len() == 4 && offset.is_multiple_of(4) {
            let v = self.read_reg(offset as u32);
            data.copy_from_slice(&v.to_le_bytes());
        } else {
            self.bad_accesses += 1;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if offset >= MMIO_SLOT_SIZE {
            self.bad_accesses += 1;
        } else if offset >= u64::from(VIRTIO_MMIO_CONFIG) {
            self.device
                .write_config(offset - u64::from(VIRTIO_MMIO_CONFIG), data);
        } else if let (Ok(bytes), true) = (<[u8; 4]>::try_from(data), offset.is_multiple_of(4)) {
            self.write_reg(offset as u32, u32::from_le_bytes(bytes));
        } else {
            self.bad_accesses += 1;
        }
    }
}

impl Drop for MmioTransport {
    fn drop(&mut self) {
        self.device.reset();
    }
}

#[cfg(test)]
mod tests;
