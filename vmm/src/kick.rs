//! Stopping a vCPU thread that sits in `KVM_RUN`, without touching its vCPU from another thread.
//!
//! `KVM_RUN` holds the vCPU lock, so another thread's vCPU ioctl blocks until the guest exits
//! (seen for minutes on kvm_pvm). Instead the controller sets a stop flag and sends the thread a
//! real-time signal; the handler sets `kvm_run.immediate_exit`, so `KVM_RUN` returns `EINTR`
//! whether the signal lands inside the ioctl or just before it.

use std::cell::Cell;
use std::os::raw::{c_int, c_void};
use std::ptr;
use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

thread_local! {
    /// This thread's `kvm_run.immediate_exit`, or null while no vCPU runs here.
    static IMMEDIATE_EXIT: Cell<*mut u8> = const { Cell::new(ptr::null_mut()) };
}

/// The signal used to kick vCPU threads.
pub fn kick_signal() -> c_int {
    SIGRTMIN()
}

extern "C" fn on_kick(_num: c_int, _info: *mut libc::siginfo_t, _ctx: *mut c_void) {
    let p = IMMEDIATE_EXIT.with(|c| c.get());
    if !p.is_null() {
        // SAFETY: `p` points into the kvm_run page of the vCPU this thread owns; `arm` set it
        // and `disarm` clears it before the VcpuFd (and its mapping) is dropped, and only this
        // thread runs this handler for this thread-local. A byte store is async-signal-safe.
        unsafe { ptr::write_volatile(p, 1) };
    }
}

/// Install the handler once per process.
pub fn install() -> std::io::Result<()> {
    static ONCE: std::sync::OnceLock<Result<(), i32>> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| register_signal_handler(kick_signal(), on_kick).map_err(|e| e.errno()))
        .map_err(std::io::Error::from_raw_os_error)
}

/// Point the handler at the calling thread's `immediate_exit` byte.
pub fn arm(immediate_exit: *mut u8) {
    IMMEDIATE_EXIT.with(|c| c.set(immediate_exit));
}

/// Forget the pointer (call before the vCPU is dropped).
pub fn disarm() {
    IMMEDIATE_EXIT.with(|c| c.set(ptr::null_mut()));
}
