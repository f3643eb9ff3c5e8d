//! The control page (docs/control-protocol.md, version [`VERSION`]): a 4 KiB MMIO page through
//! which the guest agent reports events to the VMM. This module is the protocol both sides
//! share: the register map, the identification values, the event codes and how a message is
//! packed into the mailbox. The VMM's device is `devices::control::ControlPage`; the agent's
//! MMIO access is in its `ctl` module.
//!
//! Registers are 32 bits wide, little endian, accessed with aligned 4-byte loads and stores.
//! An event is: the message into MAILBOX (32-bit words, the last one zero padded), its length
//! into LEN, an argument into STATUS, then the event code into EVENT, which the VMM acts on.
//!
//! Machines without a control page (QEMU) carry the same events as framed lines on a serial
//! port: [`serial`]. One protocol, two transports.

/// Size of the control page in guest-physical address space.
pub const PAGE_SIZE: u64 = 0x1000;
/// Default guest-physical address (first page of the MMIO window), announced to the guest as
/// `pinvm.ctl=0x<hex>` on the kernel command line; the agent tries it when the command line
/// does not say.
pub const DEFAULT_ADDR: u64 = 0xd000_0000;
/// Value of the MAGIC register: "PNVM" little-endian.
pub const MAGIC: u32 = 0x4d56_4e50;
/// Protocol version, reported in the VERSION register (the agent warns on a mismatch).
pub const VERSION: u32 = 1;

pub mod serial;

/// Register offsets from the page start.
pub mod reg {
    /// Read-only: [`super::MAGIC`].
    pub const MAGIC: u64 = 0x000;
    /// Read-only: [`super::VERSION`].
    pub const VERSION: u64 = 0x004;
    /// Write-only: an event code ([`super::ControlEventKind::code`]); sends the event.
    pub const EVENT: u64 = 0x008;
    /// Write-only: the next event's argument.
    pub const STATUS: u64 = 0x00c;
    /// Write-only: the next event's message length in bytes.
    pub const LEN: u64 = 0x010;
    /// Write-only: the message bytes.
    pub const MAILBOX: u64 = 0x800;
    /// Mailbox capacity in bytes (0x800..0x1000).
    pub const MAILBOX_SIZE: u64 = 0x800;
}

/// What the agent reported: the codes written to EVENT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlEventKind {
    /// 1: `/init` started (marks "time to guest init").
    AgentStarted,
    /// 2: the command was spawned.
    CmdStarted,
    /// 3: the command ended; `status` is its shell-style status (exit code or 128+signal).
    CmdDone,
    /// 4: the agent hit an error; `status` is an errno or 0, `message` says what went wrong.
    AgentError,
    /// 5: a line for the host's log.
    Log,
    /// 6: outcome of one workload step (or one FIEMAP extent of a step); `status` is 0 or the
    /// step's errno, `message` one line parsed by [`crate::agent::parse_step`].
    Step,
    /// Any other code the guest wrote to EVENT.
    Unknown(u32),
}

impl ControlEventKind {
    /// The kind of event code `code`.
    pub fn from_code(code: u32) -> Self {
        match code {
            1 => Self::AgentStarted,
            2 => Self::CmdStarted,
            3 => Self::CmdDone,
            4 => Self::AgentError,
            5 => Self::Log,
            6 => Self::Step,
            c => Self::Unknown(c),
        }
    }

    /// The code written to EVENT for this kind.
    pub fn code(self) -> u32 {
        match self {
            Self::AgentStarted => 1,
            Self::CmdStarted => 2,
            Self::CmdDone => 3,
            Self::AgentError => 4,
            Self::Log => 5,
            Self::Step => 6,
            Self::Unknown(c) => c,
        }
    }
}

/// Packs a message into the little-endian u32 words the mailbox is written with (the last word
/// padded with zero bytes). Messages longer than the mailbox are cut at a UTF-8 boundary.
/// Returns (length in bytes, words).
pub fn mailbox_words(msg: &str) -> (u32, Vec<u32>) {
    let mut end = msg.len().min(reg::MAILBOX_SIZE as usize);
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

/// The message of an event: the first `len` bytes of the mailbox (`len` clamped to its size),
/// invalid UTF-8 replaced lossily.
pub fn mailbox_message(mailbox: &[u8], len: u32) -> String {
    let len = (len as usize).min(mailbox.len());
    String::from_utf8_lossy(&mailbox[..len]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identification_and_register_map() {
        assert_eq!(MAGIC.to_le_bytes(), *b"PNVM");
        assert_eq!(VERSION, 1);
        assert_eq!(
            [reg::MAGIC, reg::VERSION, reg::EVENT, reg::STATUS, reg::LEN],
            [0, 4, 8, 0xc, 0x10]
        );
        assert_eq!(reg::MAILBOX + reg::MAILBOX_SIZE, PAGE_SIZE);
        assert!(DEFAULT_ADDR.is_multiple_of(PAGE_SIZE));
    }

    #[test]
    fn kind_codes_round_trip() {
        for code in 0..10 {
            assert_eq!(ControlEventKind::from_code(code).code(), code);
        }
        assert_eq!(ControlEventKind::from_code(3), ControlEventKind::CmdDone);
        assert_eq!(ControlEventKind::from_code(6), ControlEventKind::Step);
        assert_eq!(ControlEventKind::Step.code(), 6);
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

    #[test]
    fn packed_messages_unpack() {
        for msg in ["", "abc", "log é line", &"z".repeat(2048)] {
            let (len, words) = mailbox_words(msg);
            let mut mailbox = [0u8; reg::MAILBOX_SIZE as usize];
            for (i, w) in words.iter().enumerate() {
                mailbox[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
            }
            assert_eq!(mailbox_message(&mailbox, len), msg);
        }
        let mailbox = [b'o', b'k', 0xff, 0xfe];
        assert_eq!(mailbox_message(&mailbox, 4), "ok\u{fffd}\u{fffd}");
        assert_eq!(mailbox_message(&mailbox, u32::MAX), "ok\u{fffd}\u{fffd}");
        assert_eq!(mailbox_message(&mailbox, 1), "o");
    }
}
