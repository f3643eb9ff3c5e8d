//! The control page (see docs/control-protocol.md): a 4 KiB MMIO page the VMM exposes at the
//! guest-physical address given by `pinvm.ctl=0x...` on the kernel command line.
//!
//! All MMIO access of the agent is here (the only other `unsafe` code is the thin libc wrappers
//! in `sys.rs`). Every register access is a single aligned 32-bit volatile load or store, so
//! each one is exactly one 4-byte MMIO exit on the host.

use std::io;

/// Size of the control page.
pub const PAGE_SIZE: usize = 0x1000;

const MAGIC: usize = 0x000;
const VERSION: usize = 0x004;
const EVENT: usize = 0x008;
const STATUS: usize = 0x00c;
const LEN: usize = 0x010;
const MAILBOX: usize = 0x800;
/// Largest message the mailbox holds.
pub const MAILBOX_SIZE: usize = 0x800;

/// Value of the MAGIC register: "PNVM" little-endian.
pub const MAGIC_VALUE: u32 = 0x4d56_4e50;
/// Protocol version this agent speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// Event codes written to EVENT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Event {
    AgentStarted = 1,
    CmdStarted = 2,
    CmdDone = 3,
    AgentError = 4,
    #[allow(dead_code)] // used by later workload steps
    Log = 5,
    Step = 6,
}

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

/// Packs a message into the little-endian u32 words the mailbox is written with (the last word
/// padded with zero bytes). Messages longer than the mailbox are cut at a UTF-8 boundary.
/// Returns (length in bytes, words).
pub fn mailbox_words(msg: &str) -> (u32, Vec<u32>) {
    let mut end = msg.len().min(MAILBOX_SIZE);
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    let bytes = &msg.as_bytes()[..end];
    let words = bytes
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect();
    (end as u32, words)
}

/// A mapped control page.
pub struct Ctl {
    base: *mut u32,
}

impl Ctl {
    /// Maps the page at physical address `addr` through /dev/mem and checks MAGIC.
    pub fn map(addr: u64) -> Result<Ctl, String> {
        if !addr.is_multiple_of(PAGE_SIZE as u64) {
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
                PAGE_SIZE,
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
        let magic = ctl.read(MAGIC);
        if magic != MAGIC_VALUE {
            return Err(format!(
                "no control page at {addr:#x} (magic {magic:#010x}, expected {MAGIC_VALUE:#010x})"
            ));
        }
        let version = ctl.read(VERSION);
        if version != PROTOCOL_VERSION {
            say!("control page version {version}, agent speaks {PROTOCOL_VERSION}");
        }
        Ok(ctl)
    }

    fn in_page(off: usize) -> bool {
        off.is_multiple_of(4) && off < PAGE_SIZE
    }

    fn read(&self, off: usize) -> u32 {
        if !Self::in_page(off) {
            return 0;
        }
        // SAFETY: `base` is a live PAGE_SIZE-byte mapping (never unmapped: the Ctl lives until
        // reboot) and page aligned; `off` was just checked to be 4-aligned and below
        // PAGE_SIZE, so the pointer is in bounds and aligned for u32. Volatile keeps it one
        // 32-bit load.
        unsafe { std::ptr::read_volatile(self.base.add(off / 4)) }
    }

    fn write(&self, off: usize, val: u32) {
        if !Self::in_page(off) {
            return;
        }
        // SAFETY: as in `read`: in-bounds, aligned pointer into our own MMIO mapping, which no
        // Rust reference aliases. Volatile keeps it one 32-bit store (one MMIO exit).
        unsafe { std::ptr::write_volatile(self.base.add(off / 4), val) }
    }

    /// Reports an event: mailbox words, LEN, STATUS, then EVENT (which the host acts on).
    pub fn send(&self, event: Event, status: u32, msg: &str) {
        let (len, words) = mailbox_words(msg);
        for (i, w) in words.iter().enumerate() {
            self.write(MAILBOX + 4 * i, *w);
        }
        self.write(LEN, len);
        self.write(STATUS, status);
        self.write(EVENT, event as u32);
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

    #[test]
    fn send_writes_registers_in_protocol_order() {
        // A plain buffer stands in for the MMIO page (it outlives the Ctl).
        let mut page = vec![0u32; PAGE_SIZE / 4];
        page[MAGIC / 4] = MAGIC_VALUE;
        {
            let ctl = Ctl {
                base: page.as_mut_ptr(),
            };
            assert_eq!(ctl.read(MAGIC), MAGIC_VALUE);
            ctl.send(Event::AgentError, 2, "exec sh: No such file");
        }
        assert_eq!(page[EVENT / 4], 4);
        assert_eq!(page[STATUS / 4], 2);
        assert_eq!(page[LEN / 4], 21);
        let bytes: Vec<u8> = page[MAILBOX / 4..MAILBOX / 4 + 6]
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

    #[test]
    fn mailbox_packing() {
        assert_eq!(mailbox_words(""), (0, vec![]));
        assert_eq!(
            mailbox_words("abcd"),
            (4, vec![u32::from_le_bytes(*b"abcd")])
        );
        assert_eq!(
            mailbox_words("abcdef"),
            (
                6,
                vec![u32::from_le_bytes(*b"abcd"), u32::from_le_bytes(*b"ef\0\0")]
            )
        );
        let long = "x".repeat(5000);
        let (len, words) = mailbox_words(&long);
        assert_eq!((len, words.len()), (2048, 512));
        // cut at a char boundary: 2047 ASCII bytes then a 2-byte char
        let s = format!("{}é", "y".repeat(2047));
        assert_eq!(mailbox_words(&s).0, 2047);
    }
}
