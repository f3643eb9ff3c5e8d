//! The control page (see docs/control-protocol.md): a 4 KiB MMIO page the VMM exposes at the
//! guest-physical address given by `pinvm.ctl=0x...` on the kernel command line. The register
//! map, event codes and mailbox packing are [`proto::control`], shared with the VMM's device.
//!
//! All MMIO access of the agent is here (the only other `unsafe` code is the thin libc wrappers
//! in `sys.rs`). Every register access is a single aligned 32-bit volatile load or store, so
//! each one is exactly one 4-byte MMIO exit on the host.

use proto::control::{mailbox_words, reg, ControlEventKind, MAGIC, PAGE_SIZE, VERSION};
use std::io;

/// Finds `pinvm.ctl=<addr>` in a kernel command line (the last occurrence wins, as for kernel
/// parameters). Accepts `0x`-prefixed hex or decimal.
pub fn parse_cmdline(cmdline: &str) -> Option<u64> {
    let mut found = None;
    for word in cmdline.split_ascii_whitespace() {
        if let Some(v) = word.strip_prefix("pinvm.ctl=") {
            found = Some(parse_addr(v));
        }
    }
    found.flatten()
}

fn parse_addr(v: &str) -> Option<u64> {
    match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

/// A mapped control page.
pub struct Ctl {
    base: *mut u32,
}

impl Ctl {
    /// Maps the page at physical address `addr` through /dev/mem and checks MAGIC.
    pub fn map(addr: u64) -> Result<Ctl, String> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(format!("pinvm.ctl={addr:#x} is not page aligned"));
        }
        let offset = libc::off_t::try_from(addr)
            .map_err(|_| format!("pinvm.ctl={addr:#x} is out of range"))?;
        // SAFETY: the path is a NUL-terminated literal; open has no memory-safety requirements
        // beyond that.
        let fd = unsafe {
            libc::open(
                c"/dev/mem".as_ptr(),
                libc::O_RDWR | libc::O_SYNC | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(format!(
                "open /dev/mem: {}",
                crate::describe(&io::Error::last_os_error())
            ));
        }
        // SAFETY: we ask the kernel for a fresh shared mapping at an address of its choosing, so
        // no existing Rust object is affected; fd is a valid descriptor we own.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE_SIZE as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                offset,
            )
        };
        let err = io::Error::last_os_error();
        // SAFETY: fd is ours and not used afterwards; the mapping stays valid after close.
        unsafe { libc::close(fd) };
        if p == libc::MAP_FAILED {
            return Err(format!(
                "mmap /dev/mem at {addr:#x}: {}",
                crate::describe(&err)
            ));
        }
        let ctl = Ctl { base: p.cast() };
        let magic = ctl.read(reg::MAGIC);
        if magic != MAGIC {
            return Err(format!(
                "no control page at {addr:#x} (magic {magic:#010x}, expected {MAGIC:#010x})"
            ));
        }
        let version = ctl.read(reg::VERSION);
        if version != VERSION {
            say!("control page version {version}, agent speaks {VERSION}");
        }
        Ok(ctl)
    }

    fn in_page(off: u64) -> bool {
        off.is_multiple_of(4) && off < PAGE_SIZE
    }

    fn read(&self, off: u64) -> u32 {
        if !Self::in_page(off) {
            return 0;
        }
        // SAFETY: `base` is a live PAGE_SIZE-byte mapping (never unmapped: the Ctl lives until
        // reboot) and page aligned; `off` was just checked to be 4-aligned and below
        // PAGE_SIZE, so the pointer is in bounds and aligned for u32. Volatile keeps it one
        // 32-bit load.
        unsafe { std::ptr::read_volatile(self.base.add((off / 4) as usize)) }
    }

    fn write(&self, off: u64, val: u32) {
        if !Self::in_page(off) {
            return;
        }
        // SAFETY: as in `read`: in-bounds, aligned pointer into our own MMIO mapping, which no
        // Rust reference aliases. Volatile keeps it one 32-bit store (one MMIO exit).
        unsafe { std::ptr::write_volatile(self.base.add((off / 4) as usize), val) }
    }

    /// Reports an event: mailbox words, LEN, STATUS, then EVENT (which the host acts on).
    pub fn send(&self, event: ControlEventKind, status: u32, msg: &str) {
        let (len, words) = mailbox_words(msg);
        for (i, w) in words.iter().enumerate() {
            self.write(reg::MAILBOX + 4 * i as u64, *w);
        }
        self.write(reg::LEN, len);
        self.write(reg::STATUS, status);
        self.write(reg::EVENT, event.code());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline() {
        assert_eq!(
            parse_cmdline("console=ttyS0 pinvm.ctl=0xd0000000 quiet\n"),
            Some(0xd000_0000)
        );
        assert_eq!(parse_cmdline("pinvm.ctl=0XD0001000"), Some(0xd000_1000));
        assert_eq!(parse_cmdline("pinvm.ctl=4096"), Some(4096));
        assert_eq!(
            parse_cmdline("a=1 pinvm.ctl=0x1000 pinvm.ctl=0x2000"),
            Some(0x2000)
        );
        assert_eq!(parse_cmdline("console=ttyS0"), None);
        assert_eq!(parse_cmdline("xpinvm.ctl=0x1000"), None);
        assert_eq!(parse_cmdline("pinvm.ctl=0xzz"), None);
        assert_eq!(parse_cmdline("pinvm.ctl="), None);
        assert_eq!(parse_cmdline(""), None);
    }

    /// The index of the u32 word at register offset `off`.
    fn word(off: u64) -> usize {
        (off / 4) as usize
    }

    #[test]
    fn send_writes_registers_in_protocol_order() {
        // A plain buffer stands in for the MMIO page (it outlives the Ctl).
        let mut page = vec![0u32; word(PAGE_SIZE)];
        page[word(reg::MAGIC)] = MAGIC;
        {
            let ctl = Ctl {
                base: page.as_mut_ptr(),
            };
            assert_eq!(ctl.read(reg::MAGIC), MAGIC);
            ctl.send(ControlEventKind::AgentError, 2, "exec sh: No such file");
        }
        assert_eq!(page[word(reg::EVENT)], 4);
        assert_eq!(page[word(reg::STATUS)], 2);
        assert_eq!(page[word(reg::LEN)], 21);
        let bytes: Vec<u8> = page[word(reg::MAILBOX)..word(reg::MAILBOX) + 6]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        assert_eq!(&bytes, b"exec sh: No such file\0\0\0");
        // Out-of-page offsets are refused rather than written.
        let ctl = Ctl {
            base: page.as_mut_ptr(),
        };
        ctl.write(PAGE_SIZE, 1);
        ctl.write(3, 1);
        assert_eq!(ctl.read(PAGE_SIZE), 0);
    }
}
