//! The ioctl ABI of `/dev/dmapin`, transcribed from `include/uapi/linux/virtio_dmapin.h`
//! (guest-images/kernel/patches/driver/virtio-dmapin.patch; README.md there). Structs are
//! `#[repr(C)]` with the header's field order; none has implicit padding. The `unsafe` ioctl
//! calls of the dmapin steps live here (and only here).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

pub const DEVICE: &str = "/dev/dmapin";

// dmapin_pin.method
pub const DMAPIN_GUP: u32 = 0;
pub const DMAPIN_GUP_FAST: u32 = 1;
pub const DMAPIN_PIN: u32 = 2;
pub const DMAPIN_PIN_FAST: u32 = 3;
pub const DMAPIN_PIN_LONGTERM: u32 = 4;
pub const DMAPIN_PIN_FAST_LONGTERM: u32 = 5;

/// dmapin_pin.flags: FOLL_WRITE.
pub const DMAPIN_WRITE: u32 = 1;

// (DMAPIN_MAX_LEN, 64 MiB per region, is the driver's to enforce: a longer pin is EINVAL.)

// dmapin_release.method
pub const DMAPIN_REL_DIRTY_LOCK: u32 = 0;
pub const DMAPIN_REL_DIRTY_NOLOCK: u32 = 1;
pub const DMAPIN_REL_NO_DIRTY: u32 = 2;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmapinPin {
    pub addr: u64,
    pub len: u64,
    pub method: u32,
    pub flags: u32,
    pub region_id: u32,
    pub npinned: u32,
    pub err: i32,
    pub npages: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmapinPost {
    pub region_id: u32,
    pub posted: u32,
    pub file_offset: u64,
    pub err: i32,
    pub reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmapinCtl {
    pub region_id: u32,
    pub schedule: u32,
    pub params: [u64; 4],
    pub status: i32,
    pub reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmapinQuery {
    pub region_id: u32,
    pub method: u32,
    pub flags: u32,
    pub npages: u32,
    pub npinned: u32,
    pub inflight: u32,
    pub addr: u64,
    pub posted: u64,
    pub completed: u64,
    pub dma_writes: u64,
    pub used_bytes: u64,
    pub nr_dirty: u32,
    pub nr_writeback: u32,
    pub nr_private: u32,
    pub nr_no_mapping: u32,
    pub nr_maybe_pinned: u32,
    pub reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmapinRelease {
    pub region_id: u32,
    pub method: u32,
}

// linux/ioctl.h (asm-generic, as on x86): nr bits 0..8, type 8..16, size 16..30, dir 30..32.
const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | ((DMAPIN_IOC_MAGIC as u32) << 8) | nr
}

pub const DMAPIN_IOC_MAGIC: u8 = 0xd7;
pub const DMAPIN_IOC_PIN: u32 = ioc(IOC_READ | IOC_WRITE, 1, size_of::<DmapinPin>());
pub const DMAPIN_IOC_POST: u32 = ioc(IOC_READ | IOC_WRITE, 2, size_of::<DmapinPost>());
pub const DMAPIN_IOC_START: u32 = ioc(IOC_READ | IOC_WRITE, 3, size_of::<DmapinCtl>());
pub const DMAPIN_IOC_STOP: u32 = ioc(IOC_READ | IOC_WRITE, 4, size_of::<DmapinCtl>());
pub const DMAPIN_IOC_QUERY: u32 = ioc(IOC_READ | IOC_WRITE, 5, size_of::<DmapinQuery>());
pub const DMAPIN_IOC_RELEASE: u32 = ioc(IOC_WRITE, 6, size_of::<DmapinRelease>());

/// One ioctl on the open /dev/dmapin with the struct that `req` selects.
///
/// # Safety
/// `T` must be the struct the ioctl number `req` is defined with (its size is encoded in it,
/// and the driver copies exactly that many bytes in and, for _IOWR, back out).
unsafe fn ioctl<T>(dev: &File, req: u32, arg: &mut T) -> io::Result<()> {
    // SAFETY: per the contract above `arg` is a live, writable struct of the size the driver
    // copies from/to; the fd is borrowed, so open for the call.
    let r = unsafe { libc::ioctl(dev.as_raw_fd(), req as _, arg as *mut T) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

pub fn pin(dev: &File, arg: &mut DmapinPin) -> io::Result<()> {
    // SAFETY: DMAPIN_IOC_PIN is defined with struct dmapin_pin = DmapinPin.
    unsafe { ioctl(dev, DMAPIN_IOC_PIN, arg) }
}

pub fn post(dev: &File, arg: &mut DmapinPost) -> io::Result<()> {
    // SAFETY: DMAPIN_IOC_POST is defined with struct dmapin_post = DmapinPost.
    unsafe { ioctl(dev, DMAPIN_IOC_POST, arg) }
}

/// START (`start`) or STOP.
pub fn ctl(dev: &File, start: bool, arg: &mut DmapinCtl) -> io::Result<()> {
    let req = if start {
        DMAPIN_IOC_START
    } else {
        DMAPIN_IOC_STOP
    };
    // SAFETY: DMAPIN_IOC_START and _STOP are both defined with struct dmapin_ctl = DmapinCtl.
    unsafe { ioctl(dev, req, arg) }
}

pub fn query(dev: &File, arg: &mut DmapinQuery) -> io::Result<()> {
    // SAFETY: DMAPIN_IOC_QUERY is defined with struct dmapin_query = DmapinQuery.
    unsafe { ioctl(dev, DMAPIN_IOC_QUERY, arg) }
}

pub fn release(dev: &File, arg: &mut DmapinRelease) -> io::Result<()> {
    // SAFETY: DMAPIN_IOC_RELEASE is defined with struct dmapin_release = DmapinRelease (_IOW:
    // the driver only reads it).
    unsafe { ioctl(dev, DMAPIN_IOC_RELEASE, arg) }
}

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
