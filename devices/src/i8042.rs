//! The i8042 keyboard controller, reduced to what a guest needs from it: the CPU reset line.
//!
//! With `reboot=k` Linux writes 0xFE to port 0x64 to reboot; that is how the guest ends the VM.
//! Reads return 0 (status bit 1 clear), so the kernel's `kb_wait()` returns at once.

use crate::bus::BusDevice;
use vm_superio::{I8042Device, Trigger};

/// Port range of the controller: data port 0x60 to command/status port 0x64.
pub const I8042_BASE: u64 = 0x60;
/// Number of ports from [`I8042_BASE`] (0x60..=0x64).
pub const I8042_LEN: u64 = 5;

/// Calls a closure when the guest pulses the reset line.
pub struct ResetTrigger(Box<dyn Fn() + Send>);

impl ResetTrigger {
    /// A trigger that calls `f`, synchronously, on the thread that dispatched the guest's
    /// write (a vCPU thread).
    pub fn new(f: impl Fn() + Send + 'static) -> Self {
        Self(Box::new(f))
    }
}

impl Trigger for ResetTrigger {
    type E = std::convert::Infallible;
    fn trigger(&self) -> Result<(), Self::E> {
        (self.0)();
        Ok(())
    }
}

/// The controller on the port-I/O bus at [`I8042_BASE`]: single-byte accesses only, anything
/// wider reads as zero and is ignored on write.
pub struct I8042 {
    inner: I8042Device<ResetTrigger>,
}

impl I8042 {
    /// A controller that fires `on_reset` when the guest writes 0xFE to port 0x64.
    pub fn new(on_reset: ResetTrigger) -> Self {
        Self {
            inner: I8042Device::new(on_reset),
        }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if data.len() == 1 && offset < I8042_LEN {
            data[0] = self.inner.read(offset as u8);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if data.len() == 1 && offset < I8042_LEN {
            // The trigger is infallible.
            let _ = self.inner.write(offset as u8, data[0]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn reset_command_fires_trigger_and_status_reads_zero() {
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = n.clone();
        let mut dev = I8042::new(ResetTrigger::new(move || {
            n2.fetch_add(1, Ordering::SeqCst);
        }));
        let mut b = [0xffu8];
        dev.read(4, &mut b);
        assert_eq!(b[0] & 2, 0, "kb_wait must see an empty input buffer");
        dev.write(4, &[0x20]);
        assert_eq!(n.load(Ordering::SeqCst), 0);
        dev.write(4, &[0xfe]);
        assert_eq!(n.load(Ordering::SeqCst), 1);
        dev.write(4, &[0xfe, 0]); // wrong width: ignored
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }
}
