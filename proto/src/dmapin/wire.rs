//! The virtqueue formats between the dmapin driver and the device (all little endian):
//!
//! - dma queue: a chain is the device-readable [`VirtioDmapinBufHdr`], one device-writable
//!   page buffer at the header's `gpa`, and a device-writable [`VirtioDmapinBufStatus`],
//!   filled in when the device returns the chain;
//! - ctl queue: a chain is the device-readable [`VirtioDmapinCtl`] and a device-writable le32
//!   status ([`super::ctl_status`]).

use zerocopy::little_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `struct virtio_dmapin_buf_hdr`: which page a dma-queue chain carries.
#[repr(C)]
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    Immutable,
    KnownLayout,
    Unaligned,
)]
pub struct VirtioDmapinBufHdr {
    /// The region the page belongs to.
    pub region_id: U32,
    /// Index of the page within the region.
    pub page_index: U32,
    /// User-supplied file offset of this page.
    pub file_offset: U64,
    /// Guest-physical address of the page (the same as the page descriptor's).
    pub gpa: U64,
}

/// `struct virtio_dmapin_buf_status`: written by the device when it returns a chain.
#[repr(C)]
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    Immutable,
    KnownLayout,
    Unaligned,
)]
pub struct VirtioDmapinBufStatus {
    /// DMA writes the device made into the page.
    pub dma_writes: U32,
    /// Reserved, 0.
    pub flags: U32,
}

/// `struct virtio_dmapin_ctl`: one control message.
#[repr(C)]
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    Immutable,
    KnownLayout,
    Unaligned,
)]
pub struct VirtioDmapinCtl {
    /// [`super::op`].
    pub cmd: U32,
    /// The region the message is about.
    pub region_id: U32,
    /// START: [`super::schedule`] (opaque to the driver).
    pub schedule: U32,
    /// Reserved, 0.
    pub reserved: U32,
    /// START: the schedule's parameters (opaque to the driver).
    pub params: [U64; 4],
}

/// Bytes of [`VirtioDmapinBufHdr`].
pub const BUF_HDR_LEN: u32 = size_of::<VirtioDmapinBufHdr>() as u32;
/// Bytes of [`VirtioDmapinBufStatus`].
pub const BUF_STATUS_LEN: u32 = size_of::<VirtioDmapinBufStatus>() as u32;
/// Bytes of [`VirtioDmapinCtl`].
pub const CTL_LEN: u32 = size_of::<VirtioDmapinCtl>() as u32;
/// Bytes of the ctl queue's le32 status.
pub const CTL_STATUS_LEN: u32 = 4;

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// Sizes and offsets of the uapi header's wire structs (no padding anywhere).
    #[test]
    fn layouts() {
        assert_eq!(BUF_HDR_LEN, 24);
        assert_eq!(offset_of!(VirtioDmapinBufHdr, page_index), 4);
        assert_eq!(offset_of!(VirtioDmapinBufHdr, file_offset), 8);
        assert_eq!(offset_of!(VirtioDmapinBufHdr, gpa), 16);
        assert_eq!(BUF_STATUS_LEN, 8);
        assert_eq!(offset_of!(VirtioDmapinBufStatus, flags), 4);
        assert_eq!(CTL_LEN, 48);
        assert_eq!(offset_of!(VirtioDmapinCtl, region_id), 4);
        assert_eq!(offset_of!(VirtioDmapinCtl, schedule), 8);
        assert_eq!(offset_of!(VirtioDmapinCtl, reserved), 12);
        assert_eq!(offset_of!(VirtioDmapinCtl, params), 16);
    }

    #[test]
    fn little_endian_bytes() {
        let h = VirtioDmapinBufHdr {
            region_id: 0x0403_0201.into(),
            page_index: 5.into(),
            file_offset: 0x1000.into(),
            gpa: 0x0102_0304_0506_0708.into(),
        };
        let b = h.as_bytes();
        assert_eq!(b[..8], [1, 2, 3, 4, 5, 0, 0, 0]);
        assert_eq!(b[8..16], [0, 0x10, 0, 0, 0, 0, 0, 0]);
        assert_eq!(b[16..], [8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(VirtioDmapinBufHdr::read_from_bytes(b).unwrap(), h);
        let mut c = VirtioDmapinCtl::default();
        c.params[3] = u64::MAX.into();
        assert_eq!(c.as_bytes()[40..], [0xff; 8]);
    }
}
