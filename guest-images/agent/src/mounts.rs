//! The pseudo filesystems /init mounts before anything else.

use crate::sys;
use std::ffi::CStr;
use std::io;

const MOUNTS: [(&CStr, &CStr, &CStr); 3] = [
    (c"proc", c"/proc", c"proc"),
    (c"sysfs", c"/sys", c"sysfs"),
    // The initramfs already holds /dev/console, /dev/null and /dev/mem; devtmpfs on top of them
    // is fine (its own nodes replace them). The kernel may have automounted it (EBUSY).
    (c"devtmpfs", c"/dev", c"devtmpfs"),
];

/// Mounts /proc (needed to read the command line), printing errors.
pub fn mount_proc() {
    mount(MOUNTS[0]);
}

/// Mounts /sys and /dev, printing errors.
pub fn mount_rest() {
    for m in &MOUNTS[1..] {
        mount(*m);
    }
}

fn mount((source, target, fstype): (&CStr, &CStr, &CStr)) {
    // devtmpfs holds device nodes, so no MS_NODEV/MS_NOEXEC there.
    let flags = if fstype == c"devtmpfs" {
        libc::MS_NOSUID
    } else {
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC
    };
    match sys::mount(source, target, fstype, flags) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
        Err(e) => report(target, e),
    }
}

fn report(target: &CStr, e: io::Error) {
    say!(
        "mount {}: {}",
        target.to_string_lossy(),
        crate::describe(&e)
    );
}
