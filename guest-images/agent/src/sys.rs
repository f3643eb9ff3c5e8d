//! Thin safe wrappers over the few libc calls std does not offer. Together with `ctl.rs` this is
//! the only `unsafe` code of the agent; each wrapper passes only valid pointers it owns.

use std::ffi::CStr;
use std::io;

pub fn getpid() -> i32 {
    // SAFETY: getpid takes no arguments and cannot fail.
    unsafe { libc::getpid() }
}

/// mount(2) without data.
pub fn mount(source: &CStr, target: &CStr, fstype: &CStr, flags: libc::c_ulong) -> io::Result<()> {
    // SAFETY: all strings are NUL-terminated CStr borrowed for the duration of the call; data
    // is NULL, which every filesystem we mount accepts.
    let r = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            std::ptr::null(),
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
