//! Where virtio devices sit on our x86 machine: one virtio-mmio slot each, from
//! `layout::VIRTIO_MMIO_BASE` up, with a legacy GSI each, announced to the guest on its
//! command line (`virtio_mmio.device=`).

use crate::arch::x86_64::layout;
use anyhow::{Context, Result};
use devices::bus::Bus;
use devices::virtio::mmio::{MmioTransport, MMIO_SLOT_SIZE, QUEUE_NOTIFY_OFFSET};
use devices::virtio::{cmdline_entry, GuestMem, VirtioDevice};
use kvm_ioctls::{IoEventAddress, VmFd};
use std::sync::{Arc, Mutex};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// First GSI for virtio-mmio devices: 0-4 are taken by PIT, i8042, cascade, COM2 and COM1.
const VIRTIO_FIRST_GSI: u32 = 5;
/// Last legacy GSI of the IOAPIC.
const VIRTIO_LAST_GSI: u32 = 23;
/// How many virtio devices fit.
pub const MAX_VIRTIO_DEVICES: usize = (VIRTIO_LAST_GSI - VIRTIO_FIRST_GSI + 1) as usize;

/// Guest-physical base and GSI of virtio-mmio slot `i`.
pub fn virtio_slot(i: usize) -> (u64, u32) {
    (
        layout::VIRTIO_MMIO_BASE + i as u64 * MMIO_SLOT_SIZE,
        VIRTIO_FIRST_GSI + i as u32,
    )
}

/// The command-line words announcing the first `count` slots to the guest.
pub fn cmdline_words(count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let (base, gsi) = virtio_slot(i);
            cmdline_entry(base, gsi)
        })
        .collect()
}

/// Put `device` in virtio-mmio slot `slot`: an irqfd for its interrupt, one ioeventfd per queue
/// on QUEUE_NOTIFY (datamatch = queue index, so notifications never leave the kernel), and the
/// transport on the MMIO bus.
pub fn attach_virtio(
    vm: &VmFd,
    mmio: &mut Bus,
    mem: &GuestMem,
    slot: usize,
    device: Box<dyn VirtioDevice>,
) -> Result<()> {
    let (base, gsi) = virtio_slot(slot);
    let irq = EventFd::new(EFD_NONBLOCK)?;
    vm.register_irqfd(&irq, gsi)
        .with_context(|| format!("KVM_IRQFD for virtio slot {slot}"))?;
    let mut notify = Vec::new();
    for q in 0..device.queue_max_sizes().len() as u32 {
        let e = EventFd::new(EFD_NONBLOCK)?;
        vm.register_ioevent(&e, &IoEventAddress::Mmio(base + QUEUE_NOTIFY_OFFSET), q)
            .with_context(|| format!("KVM_IOEVENTFD for virtio slot {slot} queue {q}"))?;
        notify.push(e);
    }
    let transport = MmioTransport::new(device, mem.clone(), irq, notify);
    mmio.insert(base, MMIO_SLOT_SIZE, Arc::new(Mutex::new(transport)))?;
    Ok(())
}
