//! Thin safe wrappers over the few libc calls std does not offer. Together with `ctl.rs` this is
//! the only `unsafe` code of the agent; each wrapper passes only valid pointers it owns.

use std::ffi::CStr;
use std::io;
use std::os::fd::AsRawFd;

pub fn getpid() -> i32 {
    // SAFETY: getpid takes no arguments and cannot fail.
    unsafe { libc::getpid() }
}

/// mount(2); `data` is the filesystem-specific option string (NULL when None).
pub fn mount(
    source: &CStr,
    target: &CStr,
    fstype: &CStr,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> io::Result<()> {
    let data = data.map_or(std::ptr::null(), |d| d.as_ptr().cast::<libc::c_void>());
    // SAFETY: all strings are NUL-terminated CStr borrowed for the duration of the call; data
    // is NULL or such a string, which is what the kernel expects for every filesystem.
    let r = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// waitpid(-1, &status, 0): reaps any child. Returns (pid, raw wait status).
pub fn wait_any() -> io::Result<(i32, i32)> {
    let mut status = 0;
    // SAFETY: `status` is a valid, writable c_int for the duration of the call.
    let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
    if pid < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok((pid, status))
    }
}

/// Waits until everything written to the console (fds 1 and 2 inherit it) has left the UART,
/// so the host has seen all of the command's output before CMD_DONE. Errors (not a tty) are
/// ignored: then there is nothing to drain.
pub fn drain_console() {
    for fd in [1, 2] {
        // SAFETY: tcdrain takes a plain fd and touches no memory of ours.
        unsafe { libc::tcdrain(fd) };
    }
}

/// syncfs(2) on the filesystem holding `fd`.
pub fn syncfs(fd: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: syncfs takes a plain fd (borrowed, so open for the call) and touches no memory.
    if unsafe { libc::syncfs(fd.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// FS_IOC_FIEMAP = _IOWR('f', 11, struct fiemap) (linux/fs.h; struct fiemap is 32 bytes).
const FS_IOC_FIEMAP: u32 = 0xc020_660b;
/// Sync the file before mapping (fm_flags).
pub const FIEMAP_FLAG_SYNC: u32 = 0x1;
/// fe_flags: the last extent of the file.
pub const FIEMAP_EXTENT_LAST: u32 = 0x1;
/// Extents asked for per FS_IOC_FIEMAP call.
pub const FIEMAP_BATCH: usize = 32;

/// struct fiemap_extent (linux/fiemap.h), 56 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FiemapExtent {
    pub logical: u64,
    pub physical: u64,
    pub length: u64,
    reserved64: [u64; 2],
    pub flags: u32,
    reserved: [u32; 3],
}

/// struct fiemap (linux/fiemap.h) followed by room for FIEMAP_BATCH extents.
#[repr(C)]
struct Fiemap {
    start: u64,
    length: u64,
    flags: u32,
    mapped_extents: u32,
    extent_count: u32,
    reserved: u32,
    extents: [FiemapExtent; FIEMAP_BATCH],
}

/// One FS_IOC_FIEMAP call: the extents (at most FIEMAP_BATCH) of the file open as `fd` that
/// overlap the byte range from `start` to the end of the file, all offsets in bytes.
pub fn fiemap(fd: &impl AsRawFd, start: u64, flags: u32) -> io::Result<Vec<FiemapExtent>> {
    let mut req = Fiemap {
        start,
        length: u64::MAX, // FIEMAP_MAX_OFFSET
        flags,
        mapped_extents: 0,
        extent_count: FIEMAP_BATCH as u32,
        reserved: 0,
        extents: [FiemapExtent::default(); FIEMAP_BATCH],
    };
    // SAFETY: `req` is a live, writable struct fiemap with room for `extent_count` extents,
    // exactly what FS_IOC_FIEMAP reads and fills; the fd is borrowed, so open for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FIEMAP as _, &mut req as *mut Fiemap) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = (req.mapped_extents as usize).min(FIEMAP_BATCH);
    Ok(req.extents[..n].to_vec())
}

pub fn sync() {
    // SAFETY: sync takes no arguments.
    unsafe { libc::sync() }
}

/// reboot(RB_AUTOBOOT). Only returns on failure.
pub fn reboot() -> io::Error {
    // SAFETY: reboot takes a plain integer command; memory safety is not involved.
    unsafe { libc::reboot(libc::RB_AUTOBOOT) };
    io::Error::last_os_error()
}

pub fn pause() {
    // SAFETY: pause takes no arguments.
    unsafe { libc::pause() };
}
