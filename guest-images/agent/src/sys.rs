//! Thin safe wrappers over the few libc calls std does not offer. Together with `ctl.rs` and
//! `steps/dmapin_ioctl.rs` (the /dev/dmapin ioctls) this is the only `unsafe` code of the agent;
//! each wrapper passes only valid pointers it owns.

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

/// mknod(2) of a character device node (mode 0600); an existing node is fine.
pub fn mknod_char(path: &CStr, major: u32, minor: u32) -> io::Result<()> {
    let dev = libc::makedev(major, minor);
    // SAFETY: `path` is a NUL-terminated CStr borrowed for the call; mknod reads nothing else.
    let r = unsafe { libc::mknod(path.as_ptr(), libc::S_IFCHR | 0o600, dev) };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EEXIST) {
        Ok(())
    } else {
        Err(e)
    }
}

/// Open a tty write-only, not as our controlling terminal, and put it in raw mode (no
/// output processing, so every byte written reaches the port unchanged).
pub fn open_tty_raw(path: &CStr) -> io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: `path` is a NUL-terminated CStr borrowed for the call.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else; the File closes it.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    // SAFETY: termios is a plain C struct for which all-zero bytes are a valid value.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `t` is a valid, writable termios and `fd` an open descriptor for the call.
    if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `t` is a valid termios filled by tcgetattr.
    unsafe { libc::cfmakeraw(&mut t) };
    // SAFETY: as above; tcsetattr only reads `t`.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
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

/// truncate(2): sets the size of the file at `path`.
pub fn truncate(path: &CStr, len: u64) -> io::Result<()> {
    let len = off_t(len)?;
    // SAFETY: `path` is a NUL-terminated CStr borrowed for the call; no other memory is used.
    if unsafe { libc::truncate(path.as_ptr(), len) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// fallocate(2) with `mode` (e.g. FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE).
pub fn fallocate(fd: &impl AsRawFd, mode: libc::c_int, offset: u64, len: u64) -> io::Result<()> {
    let (offset, len) = (off_t(offset)?, off_t(len)?);
    // SAFETY: fallocate takes a plain (borrowed, so open) fd and integers; no memory of ours.
    if unsafe { libc::fallocate(fd.as_raw_fd(), mode, offset, len) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// sync_file_range(2); `nbytes` 0 means "to the end of the file".
pub fn sync_file_range(
    fd: &impl AsRawFd,
    offset: u64,
    nbytes: u64,
    flags: libc::c_uint,
) -> io::Result<()> {
    let (offset, nbytes) = (off_t(offset)?, off_t(nbytes)?);
    // SAFETY: a plain (borrowed, so open) fd and integers; no memory of ours is touched.
    if unsafe { libc::sync_file_range(fd.as_raw_fd(), offset, nbytes, flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A file offset or length as off_t (EINVAL above i64::MAX, as the kernel would say).
fn off_t(v: u64) -> io::Result<libc::off_t> {
    libc::off_t::try_from(v).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
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

/// A shared read-write file mapping (`mmap` step), unmapped on drop. The file stays open so
/// that `touch` can check it still covers the mapping (a store beyond the end of the file
/// would raise SIGBUS, and PID 1 must not die).
#[derive(Debug)]
pub struct Mapping {
    addr: *mut u8,
    len: usize,
    file: std::fs::File,
}

/// x86_64 base page size (the guest kernel and the dmapin driver use 4 KiB pages).
pub const PAGE_SIZE: usize = 4096;

impl Mapping {
    /// mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED, file, 0). `len` must not be 0.
    pub fn new(file: std::fs::File, len: usize) -> io::Result<Mapping> {
        // SAFETY: a fresh mapping at an address the kernel chooses (NULL hint, no MAP_FIXED),
        // so no existing memory of ours is replaced; the fd is open for the call.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            addr: p.cast(),
            len,
            file,
        })
    }

    pub fn addr(&self) -> usize {
        self.addr as usize
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The mapped file.
    pub fn file(&self) -> &std::fs::File {
        &self.file
    }

    /// Reads the first byte of every page and stores it back (one write fault per page, the
    /// data unchanged). The caller checks first that the file covers the whole mapping.
    /// Returns the number of pages touched.
    pub fn touch_pages(&self) -> usize {
        let mut n = 0;
        for off in (0..self.len).step_by(PAGE_SIZE) {
            // SAFETY: `off < len`, so the byte lies inside our live PROT_READ|PROT_WRITE
            // mapping; volatile keeps the compiler from eliding the load/store pair. The file
            // backs it (checked by the caller), so neither access raises SIGBUS.
            unsafe {
                let p = self.addr.add(off);
                p.write_volatile(p.read_volatile());
            }
            n += 1;
        }
        n
    }

    /// A copy of the mapped bytes (for tests).
    #[cfg(test)]
    pub fn to_vec(&self) -> Vec<u8> {
        // SAFETY: the whole range is our live, readable mapping, backed by the file in tests.
        unsafe { std::slice::from_raw_parts(self.addr, self.len) }.to_vec()
    }

    /// msync(MS_SYNC) over the whole mapping.
    pub fn msync(&self) -> io::Result<()> {
        // SAFETY: the range is exactly our own live mapping; msync touches no other memory.
        let r = unsafe { libc::msync(self.addr.cast(), self.len, libc::MS_SYNC) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// madvise(advice) over the whole mapping (only MADV_PAGEOUT and MADV_DONTNEED are used:
    /// for a shared file mapping both keep the data, the file holds it).
    pub fn madvise(&self, advice: libc::c_int) -> io::Result<()> {
        // SAFETY: the range is exactly our own live mapping; for MAP_SHARED file pages neither
        // advice used here loses data (DONTNEED drops PTEs, later accesses refault from the
        // page cache), and no Rust reference into the mapping exists.
        let r = unsafe { libc::madvise(self.addr.cast(), self.len, advice) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// One pread() of the file open as `fd` at `offset` into the whole mapping: the kernel
    /// writes the file's bytes into the mapped pages (with O_DIRECT, a DMA target buffer that
    /// is itself a file mapping). Returns the bytes read.
    pub fn pread_into(&self, fd: &impl AsRawFd, offset: u64) -> io::Result<usize> {
        let offset = off_t(offset)?;
        // SAFETY: the buffer is exactly our own live, writable mapping (kept alive by the
        // borrow of self); only the kernel writes it and no Rust reference into it exists.
        byte_count(unsafe { libc::pread(fd.as_raw_fd(), self.addr.cast(), self.len, offset) })
    }

    /// One pwrite() of the whole mapping to the file open as `fd` at `offset`: the mapped pages
    /// are the write's source buffer (with O_DIRECT, the block layer reads them while the
    /// device may still be writing into them). Returns the bytes written.
    pub fn pwrite_from(&self, fd: &impl AsRawFd, offset: u64) -> io::Result<usize> {
        let offset = off_t(offset)?;
        // SAFETY: the buffer is exactly our own live mapping (kept alive by the borrow of
        // self), readable for `len` bytes; the kernel only reads it.
        byte_count(unsafe { libc::pwrite(fd.as_raw_fd(), self.addr.cast(), self.len, offset) })
    }

    /// process_vm_writev() to our own pid: the kernel copies `data` into the mapping at byte
    /// `offset` (through get_user_pages of the target range, as for another process). The
    /// range must lie inside the mapping (EINVAL otherwise). Returns the bytes written.
    pub fn process_vm_write(&self, offset: usize, data: &[u8]) -> io::Result<usize> {
        if offset > self.len || data.len() > self.len - offset {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let local = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        let remote = libc::iovec {
            // SAFETY: offset <= len (checked above), so the pointer stays inside the mapping.
            iov_base: unsafe { self.addr.add(offset) }.cast(),
            iov_len: data.len(),
        };
        // SAFETY: the local iovec describes `data` (only read); the remote one a range of our
        // own live writable mapping (checked above), which only the kernel writes; no Rust
        // reference into the mapping exists.
        let r = unsafe { libc::process_vm_writev(libc::getpid(), &local, 1, &remote, 1, 0) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as usize)
        }
    }

    /// munmap, reporting its error (Drop ignores it).
    pub fn unmap(mut self) -> io::Result<()> {
        // SAFETY: our own live mapping; `len` becomes 0 below so Drop does not unmap it again,
        // and no reference into the mapping exists (only raw accesses in the methods above).
        let r = unsafe { libc::munmap(self.addr.cast(), self.len) };
        self.len = 0;
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

// SAFETY: a Mapping is only an address range and its open file. All methods take &self and
// either pass the range to the kernel (msync, madvise, pread, process_vm_writev) or access it
// with raw volatile loads and stores; no Rust reference into the mapping is ever made. Using
// it from several threads at once (the race steps) is what the kernel sees from any
// multi-threaded program; the mapping stays mapped while any &Mapping lives.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: our own live mapping (len 0 marks one already unmapped by unmap()).
            unsafe { libc::munmap(self.addr.cast(), self.len) };
        }
    }
}

/// A read/write-style return value: the byte count, or the errno as an error.
fn byte_count(r: isize) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}
