//! The ioctl ABI of `/dev/dmapin` (guest user space ↔ driver): the argument structs, the
//! method and flag values, and the ioctl numbers. Structs are `#[repr(C)]` with the header's
//! field order and native endianness; none has implicit padding (the `IntoBytes` derive
//! checks that). The guest agent makes the calls.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The device node the driver registers.
pub const DEVICE: &str = "/dev/dmapin";

/// `dmapin_pin.method`: get_user_pages (mmap_read_lock).
pub const DMAPIN_GUP: u32 = 0;
/// `dmapin_pin.method`: get_user_pages_fast.
pub const DMAPIN_GUP_FAST: u32 = 1;
/// `dmapin_pin.method`: pin_user_pages (mmap_read_lock).
pub const DMAPIN_PIN: u32 = 2;
/// `dmapin_pin.method`: pin_user_pages_fast.
pub const DMAPIN_PIN_FAST: u32 = 3;
/// `dmapin_pin.method`: pin_user_pages + FOLL_LONGTERM.
pub const DMAPIN_PIN_LONGTERM: u32 = 4;
/// `dmapin_pin.method`: pin_user_pages_fast + FOLL_LONGTERM.
pub const DMAPIN_PIN_FAST_LONGTERM: u32 = 5;

/// `dmapin_pin.flags`: FOLL_WRITE.
pub const DMAPIN_WRITE: u32 = 1;

/// Longest region in bytes (the driver answers a longer pin with EINVAL).
pub const DMAPIN_MAX_LEN: u64 = 64 << 20;
/// Most regions per open file.
pub const DMAPIN_MAX_REGIONS: u32 = 64;

/// `dmapin_release.method`: dirty the pages with the page lock, then unpin
/// (`unpin_user_pages_dirty_lock`, or `set_page_dirty_lock` + `put_page`).
pub const DMAPIN_REL_DIRTY_LOCK: u32 = 0;
/// `dmapin_release.method`: `set_page_dirty` without the page lock, then unpin.
pub const DMAPIN_REL_DIRTY_NOLOCK: u32 = 1;
/// `dmapin_release.method`: unpin without dirtying.
pub const DMAPIN_REL_NO_DIRTY: u32 = 2;

/// `struct dmapin_pin` (DMAPIN_IOC_PIN): pin a page-aligned range of user memory.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DmapinPin {
    /// In: start address, page aligned.
    pub addr: u64,
    /// In: length, page aligned, 1..=[`DMAPIN_MAX_LEN`].
    pub len: u64,
    /// In: `DMAPIN_GUP`...
    pub method: u32,
    /// In: [`DMAPIN_WRITE`] or 0.
    pub flags: u32,
    /// Out: the new region's id, 0 when nothing was pinned.
    pub region_id: u32,
    /// Out: pages pinned (may be fewer than `npages`).
    pub npinned: u32,
    /// Out: the negative errno the kernel API returned, or 0.
    pub err: i32,
    /// Out: `len` / page size.
    pub npages: u32,
}

/// `struct dmapin_post` (DMAPIN_IOC_POST): hand a region's pages to the device.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DmapinPost {
    /// In: the region.
    pub region_id: u32,
    /// Out: chains added in this call.
    pub posted: u32,
    /// In: file offset of the region's page 0.
    pub file_offset: u64,
    /// Out: 0, or -ENOSPC when the queue was full (a partial post).
    pub err: i32,
    /// Reserved.
    pub reserved: u32,
}

/// `struct dmapin_ctl` (DMAPIN_IOC_START, DMAPIN_IOC_STOP).
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DmapinCtl {
    /// In: the region.
    pub region_id: u32,
    /// In: passed to the device ([`super::schedule`]).
    pub schedule: u32,
    /// In: passed to the device.
    pub params: [u64; 4],
    /// Out: -(the device's status), or -ETIMEDOUT.
    pub status: i32,
    /// Reserved.
    pub reserved: u32,
}

/// `struct dmapin_query` (DMAPIN_IOC_QUERY): a region's counters and its pages' state.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DmapinQuery {
    /// In: the region.
    pub region_id: u32,
    /// The pin method, as pinned.
    pub method: u32,
    /// The pin flags.
    pub flags: u32,
    /// Pages in the region.
    pub npages: u32,
    /// Pages pinned.
    pub npinned: u32,
    /// Chains the device currently owns.
    pub inflight: u32,
    /// Start address.
    pub addr: u64,
    /// Chains posted, cumulative.
    pub posted: u64,
    /// Chains returned on the used ring.
    pub completed: u64,
    /// Sum of `dma_writes` of the returned chains' statuses.
    pub dma_writes: u64,
    /// Sum of the used lengths of the returned chains.
    pub used_bytes: u64,
    /// Pinned pages that are dirty.
    pub nr_dirty: u32,
    /// Pinned pages under writeback.
    pub nr_writeback: u32,
    /// Pinned pages with PG_private (e.g. buffer heads attached).
    pub nr_private: u32,
    /// Pinned pages without a mapping (truncated).
    pub nr_no_mapping: u32,
    /// Pinned pages for which folio_maybe_dma_pinned() holds.
    pub nr_maybe_pinned: u32,
    /// Reserved.
    pub reserved: u32,
}

/// `struct dmapin_release` (DMAPIN_IOC_RELEASE): unpin a region.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct DmapinRelease {
    /// In: the region.
    pub region_id: u32,
    /// In: `DMAPIN_REL_...`.
    pub method: u32,
}

// linux/ioctl.h (asm-generic, as on x86): nr bits 0..8, type 8..16, size 16..30, dir 30..32.
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((DMAPIN_IOC_MAGIC as u32) << 8) | nr
}

/// The ioctl type byte of /dev/dmapin.
pub const DMAPIN_IOC_MAGIC: u8 = 0xd7;
/// `_IOWR(DMAPIN_IOC_MAGIC, 1, struct dmapin_pin)`.
pub const DMAPIN_IOC_PIN: u32 = ioc(IOC_READ | IOC_WRITE, 1, size_of::<DmapinPin>());
/// `_IOWR(DMAPIN_IOC_MAGIC, 2, struct dmapin_post)`.
pub const DMAPIN_IOC_POST: u32 = ioc(IOC_READ | IOC_WRITE, 2, size_of::<DmapinPost>());
/// `_IOWR(DMAPIN_IOC_MAGIC, 3, struct dmapin_ctl)`.
pub const DMAPIN_IOC_START: u32 = ioc(IOC_READ | IOC_WRITE, 3, size_of::<DmapinCtl>());
/// `_IOWR(DMAPIN_IOC_MAGIC, 4, struct dmapin_ctl)`.
pub const DMAPIN_IOC_STOP: u32 = ioc(IOC_READ | IOC_WRITE, 4, size_of::<DmapinCtl>());
/// `_IOWR(DMAPIN_IOC_MAGIC, 5, struct dmapin_query)`.
pub const DMAPIN_IOC_QUERY: u32 = ioc(IOC_READ | IOC_WRITE, 5, size_of::<DmapinQuery>());
/// `_IOW(DMAPIN_IOC_MAGIC, 6, struct dmapin_release)`: the driver only reads the struct.
pub const DMAPIN_IOC_RELEASE: u32 = ioc(IOC_WRITE, 6, size_of::<DmapinRelease>());

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::offset_of;

    /// Sizes and offsets from the header's field lists (no padding anywhere), and the ioctl
    /// numbers worked out by hand from _IOWR/_IOW: dir << 30 | size << 16 | 0xd7 << 8 | nr,
    /// dir = 3 (read|write) for _IOWR, 1 (write) for _IOW.
    #[test]
    fn layouts_and_ioctl_numbers_match_the_header() {
        assert_eq!(size_of::<DmapinPin>(), 40);
        assert_eq!(offset_of!(DmapinPin, method), 16);
        assert_eq!(offset_of!(DmapinPin, region_id), 24);
        assert_eq!(offset_of!(DmapinPin, npages), 36);
        assert_eq!(size_of::<DmapinPost>(), 24);
        assert_eq!(offset_of!(DmapinPost, file_offset), 8);
        assert_eq!(offset_of!(DmapinPost, err), 16);
        assert_eq!(size_of::<DmapinCtl>(), 48);
        assert_eq!(offset_of!(DmapinCtl, params), 8);
        assert_eq!(offset_of!(DmapinCtl, status), 40);
        assert_eq!(size_of::<DmapinQuery>(), 88);
        assert_eq!(offset_of!(DmapinQuery, addr), 24);
        assert_eq!(offset_of!(DmapinQuery, used_bytes), 56);
        assert_eq!(offset_of!(DmapinQuery, nr_dirty), 64);
        assert_eq!(offset_of!(DmapinQuery, reserved), 84);
        assert_eq!(size_of::<DmapinRelease>(), 8);

        assert_eq!(DMAPIN_IOC_PIN, 0xc028_d701); // _IOWR(0xd7, 1, 40 bytes)
        assert_eq!(DMAPIN_IOC_POST, 0xc018_d702); // _IOWR(0xd7, 2, 24 bytes)
        assert_eq!(DMAPIN_IOC_START, 0xc030_d703); // _IOWR(0xd7, 3, 48 bytes)
        assert_eq!(DMAPIN_IOC_STOP, 0xc030_d704); // _IOWR(0xd7, 4, 48 bytes)
        assert_eq!(DMAPIN_IOC_QUERY, 0xc058_d705); // _IOWR(0xd7, 5, 88 bytes)
        assert_eq!(DMAPIN_IOC_RELEASE, 0x4008_d706); // _IOW(0xd7, 6, 8 bytes)
    }
}
