//! `dmapin`: a virtio device that DMAs stamped data into pinned guest file pages, to test
//! what filesystems do when a device writes into pages under writeback.
//!
//! - [`device::DmaPin`] implements [`crate::virtio::VirtioDevice`] (device ID
//!   [`proto::dmapin::DEVICE_ID`], 2 queues); put it in a [`crate::virtio::MmioTransport`].
//! - [`engine`]: region table, stamped writes, Burst/Rate engine thread, and the
//!   [`engine::DmaObserver`] block observer (OnWriteback race injection).
//! - The formats are in `proto`: the queue structs and codes in [`proto::dmapin`], the
//!   self-describing 512-byte sector format in [`proto::stamp::dma`], the DMA log in
//!   [`proto::dma_log`] (this device decides when to write and what to log).
//!
//! Wire format (all little endian):
//!
//! - queue 0 "dma": chain = device-readable header `virtio_dmapin_buf_hdr {le32 region_id,
//!   le32 page_index, le64 file_offset, le64 gpa}` (24 bytes) + one device-writable buffer of
//!   at least 4096 bytes at `gpa` (the pinned page; the device uses its first 4096 bytes) +
//!   one device-writable `virtio_dmapin_buf_status {le32 dma_writes, le32 flags=0}` (8
//!   bytes). Accepted chains are held until a RETURN for their region; then the status gets
//!   the number of DMA writes made into the page and the used length is the bytes written
//!   (4096 if the page was ever written, + 8 for the status). Refused chains (wrong shape or
//!   direction, short buffers, buffers outside guest memory, header `gpa` not the page
//!   descriptor's address, duplicate GPA or page index, more than `max_pages` pages or
//!   `max_regions` regions) are returned at once with used length 0 (status zeroed when the
//!   status buffer is usable).
//! - queue 1 "ctl": chain = device-readable `virtio_dmapin_ctl {le32 cmd, le32 region_id,
//!   le32 schedule, le32 reserved, le64 params[4]}` (48 bytes) + device-writable `le32
//!   status`: 0 or a positive errno (see [`proto::dmapin::op`], [`proto::dmapin::schedule`],
//!   [`proto::dmapin::ctl_status`]). A chain without a usable status buffer is returned with used
//!   length 0. On RETURN the region's dma chains are put on queue 0's used ring before the
//!   ctl reply.
//!
//! This follows the guest driver's uapi header, guest-images/driver/virtio_dmapin.h
//! (`include/uapi/linux/virtio_dmapin.h` in the kernel tree).
//!
//! Threads: "pinvm-dmapin" (queues) and "pinvm-dma" (Burst/Rate jobs), both started at
//! activation and joined at reset/drop. OnWriteback writes happen on the block device's
//! thread, inside its observer hooks.

pub mod device;
pub mod engine;

#[cfg(test)]
mod tests;

pub use device::{DmaPin, DmaPinConfig, DmaPinError, DmaPinHandle, DEFAULT_LOG_LIMIT};
pub use engine::{DmaObserver, DmaStats, Schedule};
