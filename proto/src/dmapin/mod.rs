//! The dmapin driver's two ABIs, as its uapi header `guest-images/driver/virtio_dmapin.h`
//! defines them (a test in guest-images compiles the header and compares every size, offset
//! and number with the values here):
//!
//! - [`wire`]: the virtqueue formats between the guest driver and the device (all little
//!   endian), with the opcodes, schedules and statuses below;
//! - [`ioctl`]: the ioctl ABI of `/dev/dmapin` between the guest agent and the driver (native
//!   endian, as any ioctl).
//!
//! Neither ABI carries a version; [`ABI_VERSION`] names the one described here.

pub mod ioctl;
pub mod wire;

/// Version of the two ABIs in this module. Not carried anywhere: the driver, the agent and the
/// device are always built from one tree. A change to either ABI must change this constant,
/// the uapi header and `guest-images/driver/README.md` together.
pub const ABI_VERSION: u32 = 1;

/// Virtio device ID of the DMA device (`VIRTIO_ID_DMAPIN`; not an allocated virtio ID: "PI").
pub const DEVICE_ID: u32 = 0x5049;
/// Index of the dma queue (pinned pages, `VIRTIO_DMAPIN_VQ_DMA`).
pub const DMA_QUEUE: usize = 0;
/// Index of the ctl queue (control messages, `VIRTIO_DMAPIN_VQ_CTL`).
pub const CTL_QUEUE: usize = 1;

/// Ctl opcodes (`virtio_dmapin_ctl.cmd`, `VIRTIO_DMAPIN_CTL_*`).
pub mod op {
    /// Start DMA into a region's pages with a schedule.
    pub const START: u32 = 1;
    /// Stop a region's schedule.
    pub const STOP: u32 = 2;
    /// Return every dma-queue chain of the region on the used ring.
    pub const RETURN: u32 = 3;
}

/// Ctl `schedule` values (for START; opaque to the driver, chosen by the agent's
/// `dma_start` step).
pub mod schedule {
    /// `params[0]` = generation count (1..=[`super::MAX_BURST`]).
    pub const BURST: u32 = 1;
    /// `params[0]` = hz (1..=100000), `params[1]` = duration in ms.
    pub const RATE: u32 = 2;
    /// `params[0]` = max injections (0 = unlimited).
    pub const ON_WRITEBACK: u32 = 3;
}

/// Ctl status values (le32 written to the device-writable buffer): 0 or a positive errno,
/// as the driver expects.
pub mod ctl_status {
    /// Done.
    pub const OK: u32 = 0;
    /// Malformed message, unknown op or schedule, bad parameters (EINVAL).
    pub const INVALID: u32 = 22;
    /// Region id not known: no page posted for it (ENOENT).
    pub const NO_REGION: u32 = 2;
}

/// Largest accepted Burst count.
pub const MAX_BURST: u64 = 1 << 20;
