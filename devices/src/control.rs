//! The control page: a 4 KiB MMIO page through which the guest agent reports events to the VMM.
//! Protocol: docs/control-protocol.md; its register map, codes and mailbox packing are
//! [`proto::control`], this is the VMM's device.
//!
//! The bus hands every MMIO access inside the page to [`ControlPage::read`] /
//! [`ControlPage::write`] with the offset relative to the page start. Registers are 32 bits
//! wide; any access that is not 4 bytes wide and 4-byte aligned is ignored (reads return
//! zeros) and counted in [`ControlPage::bad_accesses`]. Each write to EVENT produces one
//! [`ControlEvent`] on the channel given to [`ControlPage::new`], timestamped on arrival, with
//! the STATUS and LEN written before it and the first LEN mailbox bytes as its message. After
//! an EVENT, STATUS and LEN are reset to 0, so an event without an argument or message needs
//! only the EVENT write. Nothing here panics, whatever the guest writes.

use std::sync::mpsc::SyncSender;
use std::time::Instant;

use proto::control::{mailbox_message, reg, ControlEventKind, MAGIC, PAGE_SIZE, VERSION};

/// One event reported by the guest.
#[derive(Clone, Debug)]
pub struct ControlEvent {
    /// The value written to EVENT, decoded (unknown codes are kept as such).
    pub kind: ControlEventKind,
    /// Value of STATUS when EVENT was written (0 if not written since the previous event).
    pub status: u32,
    /// The first LEN mailbox bytes (LEN clamped to 2048), invalid UTF-8 replaced lossily.
    pub message: String,
    /// When the EVENT write reached the VMM.
    pub at: Instant,
    /// The same moment on CLOCK_MONOTONIC in ns: the clock of the block journal and the DMA
    /// log, so step results can be ordered against disk writes and DMA.
    pub at_ns: u64,
}

/// The device behind the control page.
pub struct ControlPage {
    sink: Box<dyn FnMut(ControlEvent) + Send>,
    status: u32,
    len: u32,
    mailbox: [u8; reg::MAILBOX_SIZE as usize],
    bad_accesses: u64,
}

impl ControlPage {
    /// Events are sent to `sink`, a bounded channel: while it is full the EVENT write waits
    /// (the guest is slowed down, host memory does not grow); if its receiver is gone events
    /// are dropped silently.
    pub fn new(sink: SyncSender<ControlEvent>) -> Self {
        Self::with_sink(move |event| {
            let _ = sink.send(event);
        })
    }

    /// Every event is handed to `sink` on the thread of the EVENT write (a vCPU thread), e.g.
    /// to wrap it into the run's own message type.
    pub fn with_sink(sink: impl FnMut(ControlEvent) + Send + 'static) -> Self {
        ControlPage {
            sink: Box::new(sink),
            status: 0,
            len: 0,
            mailbox: [0; reg::MAILBOX_SIZE as usize],
            bad_accesses: 0,
        }
    }

    /// Number of accesses ignored so far because of their width, alignment or offset.
    pub fn bad_accesses(&self) -> u64 {
        self.bad_accesses
    }

    /// A 4-byte aligned in-page register offset, or None (counted) for anything else.
    fn check(&mut self, offset: u64, width: usize) -> Option<u64> {
        if width == 4 && offset.is_multiple_of(4) && offset < PAGE_SIZE {
            Some(offset)
        } else {
            self.bad_accesses += 1;
            None
        }
    }

    /// MMIO read at `offset` from the page start. MAGIC and VERSION read their values; every
    /// other offset (including the write-only registers) reads as zero.
    pub fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let value = match self.check(offset, data.len()) {
            Some(reg::MAGIC) => MAGIC,
            Some(reg::VERSION) => VERSION,
            _ => return,
        };
        data.copy_from_slice(&value.to_le_bytes());
    }

    /// MMIO write at `offset` from the page start.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(offset) = self.check(offset, data.len()) else {
            return;
        };
        let Ok(bytes) = <[u8; 4]>::try_from(data) else {
            return; // unreachable: check() guarantees 4 bytes
        };
        let value = u32::from_le_bytes(bytes);
        match offset {
            reg::EVENT => self.event(value),
            reg::STATUS => self.status = value,
            reg::LEN => self.len = value.min(reg::MAILBOX_SIZE as u32),
            o if o >= reg::MAILBOX => {
                let i = (o - reg::MAILBOX) as usize;
                if let Some(dst) = self.mailbox.get_mut(i..i + 4) {
                    dst.copy_from_slice(&bytes);
                }
            }
            _ => {} // MAGIC, VERSION and unknown offsets ignore writes
        }
    }

    fn event(&mut self, code: u32) {
        let at = Instant::now();
        let at_ns = crate::clock::monotonic_ns();
        let event = ControlEvent {
            kind: ControlEventKind::from_code(code),
            status: self.status,
            message: mailbox_message(&self.mailbox, self.len),
            at,
            at_ns,
        };
        self.status = 0;
        self.len = 0;
        (self.sink)(event);
    }
}

impl crate::bus::BusDevice for ControlPage {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        ControlPage::read(self, offset, data)
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        ControlPage::write(self, offset, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::control::DEFAULT_ADDR;
    use std::sync::mpsc::{sync_channel, Receiver};

    fn page() -> (ControlPage, Receiver<ControlEvent>) {
        let (tx, rx) = sync_channel(256);
        (ControlPage::new(tx), rx)
    }

    fn w32(p: &mut ControlPage, off: u64, v: u32) {
        p.write(off, &v.to_le_bytes());
    }

    fn r32(p: &mut ControlPage, off: u64) -> u32 {
        let mut b = [0xffu8; 4];
        p.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    /// Writes a message the way the agent does: 32-bit words, last one zero padded.
    fn mailbox(p: &mut ControlPage, msg: &[u8]) {
        for (i, c) in msg.chunks(4).enumerate() {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            p.write(reg::MAILBOX + 4 * i as u64, &w);
        }
        w32(p, reg::LEN, msg.len() as u32);
    }

    #[test]
    fn identification_registers() {
        let (mut p, _rx) = page();
        assert_eq!(r32(&mut p, reg::MAGIC), 0x4d56_4e50);
        let mut b = [0u8; 4];
        p.read(0, &mut b);
        assert_eq!(&b, b"PNVM");
        assert_eq!(r32(&mut p, reg::VERSION), 1);
        for off in [
            reg::EVENT,
            reg::STATUS,
            reg::LEN,
            0x14,
            0x7fc,
            reg::MAILBOX,
            0xffc,
        ] {
            assert_eq!(r32(&mut p, off), 0, "offset {off:#x}");
        }
        assert_eq!(p.bad_accesses(), 0);
    }

    #[test]
    fn event_sequence_like_the_agent() {
        let (mut p, rx) = page();
        let t0 = Instant::now();
        w32(&mut p, reg::EVENT, 1);
        let e = rx.try_recv().unwrap();
        assert_eq!(e.kind, ControlEventKind::AgentStarted);
        assert_eq!((e.status, e.message.as_str()), (0, ""));
        assert!(e.at >= t0);

        w32(&mut p, reg::EVENT, 2);
        assert_eq!(rx.try_recv().unwrap().kind, ControlEventKind::CmdStarted);

        mailbox(&mut p, b"cannot run 'x': No such file or directory");
        w32(&mut p, reg::STATUS, 2);
        w32(&mut p, reg::EVENT, 4);
        let e = rx.try_recv().unwrap();
        assert_eq!(e.kind, ControlEventKind::AgentError);
        assert_eq!(e.status, 2);
        assert_eq!(e.message, "cannot run 'x': No such file or directory");

        // STATUS and LEN were consumed by the previous event.
        w32(&mut p, reg::STATUS, 137);
        w32(&mut p, reg::EVENT, 3);
        let e = rx.try_recv().unwrap();
        assert_eq!(
            (e.kind, e.status, e.message.as_str()),
            (ControlEventKind::CmdDone, 137, "")
        );

        mailbox(&mut p, "log é line".as_bytes());
        w32(&mut p, reg::EVENT, 5);
        let e = rx.try_recv().unwrap();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ControlEventKind::Log, "log é line")
        );

        mailbox(
            &mut p,
            b"step 2 fsync err 5 fsync /mnt/f: Input/output error",
        );
        w32(&mut p, reg::STATUS, 5);
        w32(&mut p, reg::EVENT, 6);
        let e = rx.try_recv().unwrap();
        assert_eq!(
            (e.kind, e.status, e.message.as_str()),
            (
                ControlEventKind::Step,
                5,
                "step 2 fsync err 5 fsync /mnt/f: Input/output error"
            )
        );

        w32(&mut p, reg::EVENT, 0xdead);
        assert_eq!(
            rx.try_recv().unwrap().kind,
            ControlEventKind::Unknown(0xdead)
        );
        assert!(rx.try_recv().is_err());
        assert_eq!(p.bad_accesses(), 0);
    }

    #[test]
    fn works_behind_the_bus() {
        use crate::bus::Bus;
        use std::sync::{Arc, Mutex};
        let (p, rx) = page();
        let mut bus = Bus::new();
        bus.insert(DEFAULT_ADDR, PAGE_SIZE, Arc::new(Mutex::new(p)))
            .unwrap();
        let mut b = [0u8; 4];
        assert!(bus.read(DEFAULT_ADDR, &mut b));
        assert_eq!(&b, b"PNVM");
        assert!(bus.write(DEFAULT_ADDR + reg::EVENT, &1u32.to_le_bytes()));
        assert_eq!(rx.try_recv().unwrap().kind, ControlEventKind::AgentStarted);
    }

    #[test]
    fn step_events_carry_parsable_lines() {
        use proto::agent::{parse_step, StepReport};
        let (mut p, rx) = page();
        assert_eq!(ControlEventKind::from_code(6), ControlEventKind::Step);
        assert_eq!(ControlEventKind::Step.code(), 6);
        for line in [
            "extent 3 logical=0 physical=1048576 length=65536 flags=0x1",
            "step 3 fiemap ok extents=1",
        ] {
            mailbox(&mut p, line.as_bytes());
            w32(&mut p, reg::EVENT, 6);
        }
        let events: Vec<_> = rx.try_iter().collect();
        assert!(events
            .iter()
            .all(|e| e.kind == ControlEventKind::Step && e.status == 0));
        let reports: Vec<_> = events
            .iter()
            .map(|e| parse_step(&e.message).unwrap())
            .collect();
        assert!(matches!(
            reports[0],
            StepReport::Extent {
                index: 3,
                physical: 1_048_576,
                ..
            }
        ));
        assert_eq!(reports[1].detail_field("extents"), Some("1"));
    }

    #[test]
    fn odd_widths_and_alignment_are_ignored_and_counted() {
        let (mut p, rx) = page();
        p.write(reg::EVENT, &[1]);
        p.write(reg::EVENT, &[1, 0]);
        p.write(reg::EVENT, &[1, 0, 0, 0, 0, 0, 0, 0]);
        p.write(reg::EVENT + 1, &[1, 0, 0, 0]);
        p.write(reg::EVENT, &[]);
        assert!(rx.try_recv().is_err());
        assert_eq!(p.bad_accesses(), 5);

        let mut b = [0xffu8; 2];
        p.read(reg::MAGIC, &mut b);
        assert_eq!(b, [0, 0]);
        let mut b = [0xffu8; 8];
        p.read(reg::MAGIC, &mut b);
        assert_eq!(b, [0; 8]);
        let mut b = [0xffu8; 4];
        p.read(reg::MAGIC + 2, &mut b);
        assert_eq!(b, [0; 4]);
        p.read(0, &mut []);
        assert_eq!(p.bad_accesses(), 9);

        // Outside the page: zero reads, ignored writes, counted.
        assert_eq!(r32(&mut p, 0x1000), 0);
        w32(&mut p, 0x1000, 1);
        w32(&mut p, u64::MAX - 3, 1);
        assert_eq!(r32(&mut p, u64::MAX - 3), 0);
        assert!(rx.try_recv().is_err());
        assert_eq!(p.bad_accesses(), 13);
    }

    #[test]
    fn len_is_clamped_and_utf8_is_lossy() {
        let (mut p, rx) = page();
        for i in 0..512u64 {
            w32(&mut p, reg::MAILBOX + 4 * i, u32::from_le_bytes(*b"abcd"));
        }
        w32(&mut p, reg::LEN, u32::MAX);
        w32(&mut p, reg::EVENT, 5);
        let e = rx.try_recv().unwrap();
        assert_eq!(e.message.len(), 2048);
        assert_eq!(&e.message[..8], "abcdabcd");

        w32(
            &mut p,
            reg::MAILBOX,
            u32::from_le_bytes([b'o', b'k', 0xff, 0xfe]),
        );
        w32(&mut p, reg::LEN, 4);
        w32(&mut p, reg::EVENT, 4);
        assert_eq!(rx.try_recv().unwrap().message, "ok\u{fffd}\u{fffd}");
    }

    #[test]
    fn hostile_sequence_never_panics() {
        let (mut p, rx) = page();
        // EVENT before anything else, with a huge LEN but an empty mailbox.
        w32(&mut p, reg::LEN, 0x8000_0000);
        w32(&mut p, reg::EVENT, 4);
        let e = rx.try_recv().unwrap();
        assert_eq!(e.message, "\0".repeat(2048));
        // Every offset with every width, as reads and writes.
        for off in (0..0x1010u64).step_by(1) {
            for width in [0usize, 1, 2, 3, 4, 5, 8, 16] {
                let mut buf = vec![0xa5u8; width];
                p.read(off, &mut buf);
                p.write(off, &buf);
            }
        }
        // Drop the receiver: events are silently discarded.
        drop(rx);
        w32(&mut p, reg::LEN, 7);
        w32(&mut p, reg::EVENT, 3);
        assert!(p.bad_accesses() > 0);
        assert_eq!(r32(&mut p, reg::MAGIC), MAGIC);
    }
}
