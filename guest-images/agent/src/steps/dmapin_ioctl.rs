//! The `/dev/dmapin` ioctl calls. The ABI (argument structs and ioctl numbers) is
//! [`proto::dmapin::ioctl`], shared with the host's header check; the `unsafe` calls of the
//! dmapin steps live here (and only here).

use proto::dmapin::ioctl::{
    DmapinCtl, DmapinPin, DmapinPost, DmapinQuery, DmapinRelease, DMAPIN_IOC_PIN, DMAPIN_IOC_POST,
    DMAPIN_IOC_QUERY, DMAPIN_IOC_RELEASE, DMAPIN_IOC_START, DMAPIN_IOC_STOP,
};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

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

/// DMAPIN_IOC_PIN.
pub fn pin(dev: &File, arg: &mut DmapinPin) -> io::Result<()> {
    // SAFETY: DMAPIN_IOC_PIN is defined with struct dmapin_pin = DmapinPin.
    unsafe { ioctl(dev, DMAPIN_IOC_PIN, arg) }
}

/// DMAPIN_IOC_POST.
pub fn post(dev: &File, arg: &mut DmapinPost) -> io::Result<()> {
    // SAFETY: DMAPIN_IOC_POST is defined with struct dmapin_post = DmapinPost.
    unsafe { ioctl(dev, DMAPIN_IOC_POST, arg) }
}

/// DMAPIN_IOC_START (`start`) or DMAPIN_IOC_STOP.
pub fn ctl(dev: &File, start: bool, arg: &mut DmapinCtl) -> io::Result<()> {
    let req = if start {
        DMAPIN_IOC_START
    } else {
        DMAPIN_IOC_STOP
    };
    // SAFETY: DMAPIN_IOC_START and _STOP are both defined with struct dmapin_ctl = DmapinCtl.
    unsafe { ioctl(dev, req, arg) }
}

/// DMAPIN_IOC_QUERY.
pub fn query(dev: &File, arg: &mut DmapinQuery) -> io::Result<()> {
    // SAFETY: DMAPIN_IOC_QUERY is defined with struct dmapin_query = DmapinQuery.
    unsafe { ioctl(dev, DMAPIN_IOC_QUERY, arg) }
}

/// DMAPIN_IOC_RELEASE.
pub fn release(dev: &File, arg: &mut DmapinRelease) -> io::Result<()> {
    // SAFETY: DMAPIN_IOC_RELEASE is defined with struct dmapin_release = DmapinRelease (_IOW:
    // the driver only reads it).
    unsafe { ioctl(dev, DMAPIN_IOC_RELEASE, arg) }
}
