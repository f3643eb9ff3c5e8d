//! The virtio-blk structures the device shares with the driver, laid out as virtio 1.2 §5.2
//! defines them (little endian, no padding): the request header it reads from guest memory
//! and the part of the configuration space it offers.
//!
//! Both are `#[repr(C)]` structs of vm-memory's little-endian integer types implementing
//! `ByteValued`, so they are read from and written to guest memory whole (`Bytes::read_obj`)
//! and viewed as bytes (`ByteValued::as_slice`) without hand-written offsets.

use std::mem::size_of;

use vm_memory::{ByteValued, Le32, Le64};

/// `struct virtio_blk_outhdr`: the device-readable header that starts every request.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestHeader {
    /// VIRTIO_BLK_T_* (see `request::RequestKind`).
    pub request_type: Le32,
    /// `ioprio` in the legacy interface; ignored.
    pub reserved: Le32,
    /// First 512-byte sector of the request (IN and OUT).
    pub sector: Le64,
}

// Compile-time form of the layout the SAFETY argument below relies on.
const _: () = assert!(size_of::<RequestHeader>() == 16);

// SAFETY: `RequestHeader` is `repr(C)` and holds only `Le32`/`Le64` fields, which are
// themselves `ByteValued` (transparent wrappers of u32/u64); their sizes add up to the
// struct's size (asserted above), so there is no padding, every byte pattern is a valid
// value, and the struct holds no references.
unsafe impl ByteValued for RequestHeader {}

/// The leading fields of `struct virtio_blk_config` that the device offers; configuration
/// space past them reads as zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConfigSpace {
    /// Disk size in 512-byte sectors.
    pub capacity: Le64,
    /// Largest segment size (VIRTIO_BLK_F_SIZE_MAX, not offered: 0).
    pub size_max: Le32,
    /// Most data segments per request (VIRTIO_BLK_F_SEG_MAX).
    pub seg_max: Le32,
}

// Compile-time form of the layout the SAFETY argument below relies on.
const _: () = assert!(size_of::<ConfigSpace>() == 16);

// SAFETY: `ConfigSpace` is `repr(C)` and holds only `Le64`/`Le32` fields, which are
// themselves `ByteValued` (transparent wrappers of u64/u32); their sizes add up to the
// struct's size (asserted above), so there is no padding, every byte pattern is a valid
// value, and the struct holds no references.
unsafe impl ByteValued for ConfigSpace {}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use vm_memory::{Bytes, GuestAddress};

    use super::*;
    use crate::virtio::testing::guest_memory;

    #[test]
    fn request_header_layout() {
        assert_eq!(size_of::<RequestHeader>(), 16);
        assert_eq!(offset_of!(RequestHeader, request_type), 0);
        assert_eq!(offset_of!(RequestHeader, reserved), 4);
        assert_eq!(offset_of!(RequestHeader, sector), 8);
    }

    #[test]
    fn request_header_reads_little_endian_bytes() {
        let mem = guest_memory(0x1000);
        let mut raw = [0u8; 16];
        raw[..4].copy_from_slice(&8u32.to_le_bytes());
        raw[4..8].copy_from_slice(&0xdead_beefu32.to_le_bytes());
        raw[8..].copy_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
        mem.write_slice(&raw, GuestAddress(0x100)).unwrap();
        let h: RequestHeader = mem.read_obj(GuestAddress(0x100)).unwrap();
        assert_eq!(h.request_type.to_native(), 8);
        assert_eq!(h.reserved.to_native(), 0xdead_beef);
        assert_eq!(h.sector.to_native(), 0x0102_0304_0506_0708);
        assert_eq!(h.as_slice(), raw);
    }

    #[test]
    fn config_space_layout_and_bytes() {
        assert_eq!(size_of::<ConfigSpace>(), 16);
        assert_eq!(offset_of!(ConfigSpace, capacity), 0);
        assert_eq!(offset_of!(ConfigSpace, size_max), 8);
        assert_eq!(offset_of!(ConfigSpace, seg_max), 12);
        let c = ConfigSpace {
            capacity: 0x1122_3344_5566_7788u64.into(),
            size_max: 0u32.into(),
            seg_max: 254u32.into(),
        };
        let mut want = 0x1122_3344_5566_7788u64.to_le_bytes().to_vec();
        want.extend(0u32.to_le_bytes());
        want.extend(254u32.to_le_bytes());
        assert_eq!(c.as_slice(), want);
    }
}
