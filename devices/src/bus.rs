//! Address-range dispatch for port I/O and MMIO exits.
//!
//! The vCPU threads hand every `IoIn/IoOut/MmioRead/MmioWrite` exit to a [`Bus`]; the bus finds
//! the device whose range holds the address and calls it with the offset into that range.
//! Devices sit behind a `Mutex` because several vCPU threads may touch the same device.

use std::sync::{Arc, Mutex};

/// A device reachable through a bus: it sees offsets relative to its base address.
pub trait BusDevice: Send {
    /// Fill `data` with the value at `offset`. Unknown registers read as zero.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// Handle a write of `data` at `offset`. Unknown registers ignore writes.
    fn write(&mut self, offset: u64, data: &[u8]);
}

/// Why [`Bus::insert`] refused a range.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// The range has length 0 or its end is past `u64::MAX`.
    #[error("bus range {base:#x}+{len:#x} is empty or wraps around")]
    BadRange {
        /// First address of the range.
        base: u64,
        /// Length of the range in bytes.
        len: u64,
    },
    /// The range shares an address with one already on the bus.
    #[error("bus range {base:#x}+{len:#x} overlaps {other_base:#x}+{other_len:#x}")]
    Overlap {
        /// First address of the refused range.
        base: u64,
        /// Length of the refused range in bytes.
        len: u64,
        /// First address of the range already registered.
        other_base: u64,
        /// Length of the range already registered.
        other_len: u64,
    },
}

struct Entry {
    base: u64,
    len: u64,
    device: Arc<Mutex<dyn BusDevice>>,
}

/// A set of non-overlapping address ranges, each owned by one device.
#[derive(Default)]
pub struct Bus {
    entries: Vec<Entry>,
}

impl Bus {
    /// A bus with no devices: every access misses.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register `device` for `[base, base + len)`.
    pub fn insert(
        &mut self,
        base: u64,
        len: u64,
        device: Arc<Mutex<dyn BusDevice>>,
    ) -> Result<(), BusError> {
        if len == 0 || base.checked_add(len).is_none() {
            return Err(BusError::BadRange { base, len });
        }
        if let Some(e) = self
            .entries
            .iter()
            .find(|e| base < e.base + e.len && e.base < base + len)
        {
            return Err(BusError::Overlap {
                base,
                len,
                other_base: e.base,
                other_len: e.len,
            });
        }
        self.entries.push(Entry { base, len, device });
        self.entries.sort_by_key(|e| e.base);
        Ok(())
    }

    fn find(&self, addr: u64) -> Option<(&Entry, u64)> {
        let idx = self.entries.partition_point(|e| e.base <= addr);
        let e = self.entries.get(idx.checked_sub(1)?)?;
        (addr - e.base < e.len).then_some((e, addr - e.base))
    }

    /// Dispatch a read. Returns false (and zero-fills `data`) when no device owns `addr`:
    /// unknown ports must read as 0, not 0xff, or the kernel's RTC probe and `kb_wait` are slow.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.find(addr) {
            Some((e, off)) => {
                lock(&e.device).read(off, data);
                true
            }
            None => {
                data.fill(0);
                false
            }
        }
    }

    /// Dispatch a write. Returns false when no device owns `addr` (the write is dropped).
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.find(addr) {
            Some((e, off)) => {
                lock(&e.device).write(off, data);
                true
            }
            None => false,
        }
    }
}

/// Lock a device, recovering from a poisoned lock: a device that panicked on one vCPU must
/// not take the whole VMM down with it on the next access.
fn lock<'a>(
    m: &'a Mutex<dyn BusDevice + 'static>,
) -> std::sync::MutexGuard<'a, dyn BusDevice + 'static> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        writes: Vec<(u64, Vec<u8>)>,
    }
    impl BusDevice for Recorder {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.writes.push((offset, data.to_vec()));
        }
    }

    #[test]
    fn dispatches_by_offset_and_zero_fills_unknown() {
        let mut bus = Bus::new();
        let a = Arc::new(Mutex::new(Recorder::default()));
        bus.insert(0x3f8, 8, a.clone()).unwrap();
        let mut b = [0xffu8; 1];
        assert!(bus.read(0x3fa, &mut b));
        assert_eq!(b, [2]);
        let mut b = [0xffu8; 2];
        assert!(!bus.read(0x400, &mut b));
        assert_eq!(b, [0, 0]);
        assert!(!bus.read(0x3f7, &mut b));
        assert!(bus.write(0x3ff, &[7]));
        assert!(!bus.write(0x400, &[7]));
        assert_eq!(a.lock().unwrap().writes, vec![(7, vec![7])]);
    }

    #[test]
    fn rejects_overlaps_and_bad_ranges() {
        let mut bus = Bus::new();
        let d = || Arc::new(Mutex::new(Recorder::default())) as Arc<Mutex<dyn BusDevice>>;
        bus.insert(0x60, 5, d()).unwrap();
        assert!(matches!(
            bus.insert(0x64, 1, d()),
            Err(BusError::Overlap { .. })
        ));
        assert!(matches!(
            bus.insert(0x5c, 5, d()),
            Err(BusError::Overlap { .. })
        ));
        bus.insert(0x5c, 4, d()).unwrap();
        assert_eq!(
            bus.insert(0, 0, d()),
            Err(BusError::BadRange { base: 0, len: 0 })
        );
        assert!(bus.insert(u64::MAX, 2, d()).is_err());
    }
}
