//! The COM1 16550 UART that carries the guest console.
//!
//! Register behaviour comes from vm-superio's `Serial` (THRE is re-raised when IER.THRI is set,
//! MSR follows MCR in loopback, LSR idles at 0x60). This module adds the two ends: an interrupt
//! trigger (an irqfd, so raising IRQ 4 costs no ioctl) and the console sink, which copies every
//! byte to the terminal and/or a log file and keeps a bounded record for crash detection.

use crate::bus::BusDevice;
use crate::terminal::{Keep, VisibleStream};
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use vm_superio::{Serial as Uart, Trigger};
use vmm_sys_util::eventfd::EventFd;

/// COM1's first I/O port.
pub const COM1_BASE: u64 = 0x3f8;
/// Number of 16550 registers (ports) from [`COM1_BASE`].
pub const COM1_LEN: u64 = 8;
/// COM1's legacy interrupt line (ISA IRQ 4, GSI 4).
pub const COM1_IRQ: u32 = 4;

/// Raises an interrupt by signalling an eventfd registered as a KVM irqfd.
pub struct IrqTrigger(pub EventFd);

impl Trigger for IrqTrigger {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// Everything the guest printed, shared between the UART and whoever judges the run.
/// Holds at most `cap` bytes: beyond that the oldest half is dropped (and counted), so a guest
/// that prints forever cannot exhaust host memory.
#[derive(Debug)]
pub struct ConsoleRecord {
    bytes: Vec<u8>,
    dropped: u64,
    cap: usize,
    /// When the first byte of each console line arrived (CLOCK_MONOTONIC ns), line 0 first,
    /// counted from the guest's first byte; at most [`MAX_LINE_TIMES`] lines.
    line_ns: Vec<u64>,
    /// The last byte pushed ended a line (or nothing was pushed yet).
    at_line_start: bool,
}

/// Most console lines whose arrival time a [`ConsoleRecord`] keeps (8 bytes each); later
/// lines have none.
pub const MAX_LINE_TIMES: usize = 1 << 16;

impl ConsoleRecord {
    /// An empty record keeping at most `cap` bytes (at least 2).
    pub fn new(cap: usize) -> Self {
        Self {
            bytes: Vec::new(),
            dropped: 0,
            cap: cap.max(2),
            line_ns: Vec::new(),
            at_line_start: true,
        }
    }

    fn push(&mut self, b: &[u8]) {
        self.time_lines(b, crate::clock::monotonic_ns());
        self.bytes.extend_from_slice(b);
        if self.bytes.len() > self.cap {
            let cut = self.bytes.len() - self.cap / 2;
            self.bytes.drain(..cut);
            self.dropped += cut as u64;
        }
    }

    /// Note the arrival time `now` of every line that starts in `b`.
    fn time_lines(&mut self, b: &[u8], now: u64) {
        for &c in b {
            if std::mem::replace(&mut self.at_line_start, c == b'\n')
                && self.line_ns.len() < MAX_LINE_TIMES
            {
                self.line_ns.push(now);
            }
        }
    }

    /// When each console line's first byte arrived on the host (CLOCK_MONOTONIC ns, the clock
    /// of the journal and the DMA log): element `i` is line `i` (0-based, split at `\n`) of
    /// everything the guest printed, as in the console log; at most [`MAX_LINE_TIMES`] lines.
    pub fn line_ns(&self) -> &[u64] {
        &self.line_ns
    }

    /// Total number of bytes the guest printed so far (including dropped ones).
    pub fn total_len(&self) -> u64 {
        self.dropped + self.bytes.len() as u64
    }

    /// The retained text from absolute byte position `from` on (lossy UTF-8).
    pub fn text_since(&self, from: u64) -> String {
        let start = from.saturating_sub(self.dropped) as usize;
        String::from_utf8_lossy(self.bytes.get(start..).unwrap_or_default()).into_owned()
    }

    /// All the retained text (lossy UTF-8): everything the guest printed unless
    /// [`total_len`](Self::total_len) exceeded the cap.
    pub fn text(&self) -> String {
        self.text_since(0)
    }
}

/// Where console bytes go: always into the record, into the log file if any, and to our
/// stdout while the echo gate is open. The run controller opens the gate when the guest's
/// command starts and closes it when it is done, so stdout carries the command's output (and
/// any kernel report printed meanwhile) but not the boot and reboot chatter; the log and the
/// record keep everything (the log up to [`CONSOLE_LOG_CAP`], the record its own cap of the
/// latest bytes). Echoed text has the tty's CR LF turned back into LF.
pub struct ConsoleSink {
    echo: Option<Arc<AtomicBool>>,
    pending_cr: bool,
    /// The echo's escape on a terminal (it holds back a UTF-8 character split across writes).
    visible: VisibleStream,
    log: Option<File>,
    /// Bytes written to the log so far.
    logged: u64,
    record: Arc<Mutex<ConsoleRecord>>,
}

/// Most bytes of a console log file: a guest printing without end must not fill the host's
/// disk. What comes later is counted in the record, not logged.
pub const CONSOLE_LOG_CAP: u64 = 256 << 20;

impl ConsoleSink {
    /// `echo`: the gate for copying to our stdout (None: never). `log`: append to this file.
    pub fn new(
        echo: Option<Arc<AtomicBool>>,
        log: Option<File>,
        record: Arc<Mutex<ConsoleRecord>>,
    ) -> Self {
        Self {
            echo,
            pending_cr: false,
            visible: VisibleStream::new(Keep::Lines),
            log,
            logged: 0,
            record,
        }
    }

    /// `buf` with CR LF pairs turned into LF (a CR split across calls is held back).
    fn unix_newlines(&mut self, buf: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(buf.len() + 1);
        for &b in buf {
            if std::mem::take(&mut self.pending_cr) && b != b'\n' {
                out.push(b'\r');
            }
            if b == b'\r' {
                self.pending_cr = true;
            } else {
                out.push(b);
            }
        }
        out
    }
}

impl Write for ConsoleSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(buf);
        if self
            .echo
            .as_ref()
            .is_some_and(|g| g.load(Ordering::Relaxed))
        {
            let mut text = self.unix_newlines(buf);
            // A closed stdout must not stop the guest: the record and log still get the bytes.
            let mut out = io::stdout().lock();
            if out.is_terminal() {
                // The guest is untrusted: no escape sequence of its reaches the user's terminal.
                text = self.visible.push(&text);
            }
            let _ = out.write_all(&text).and_then(|_| out.flush());
        }
        if let Some(f) = self.log.as_mut() {
            let room = CONSOLE_LOG_CAP.saturating_sub(self.logged);
            let n = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            f.write_all(&buf[..n])?;
            self.logged += n as u64;
            if n < buf.len() && room > 0 {
                f.write_all(b"\n[pinvm: console log cut here at its size limit]\n")?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The UART on the port-I/O bus.
pub struct Serial {
    uart: Uart<IrqTrigger, vm_superio::serial::NoEvents, ConsoleSink>,
}

impl Serial {
    /// A UART that signals `irq` (an irqfd for [`COM1_IRQ`]) and writes what the guest
    /// transmits into `sink`.
    pub fn new(irq: EventFd, sink: ConsoleSink) -> Self {
        Self {
            uart: Uart::new(IrqTrigger(irq), sink),
        }
    }
}

impl BusDevice for Serial {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if data.len() == 1 && offset < COM1_LEN {
            data[0] = self.uart.read(offset as u8);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if data.len() == 1 && offset < COM1_LEN {
            // A failed log write or irqfd signal must not kill the vCPU; the bytes are
            // still in the record.
            let _ = self.uart.write(offset as u8, data[0]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: u64 = 0;
    const IER: u64 = 1;
    const IIR: u64 = 2;
    const LCR: u64 = 3;
    const MCR: u64 = 4;
    const LSR: u64 = 5;
    const MSR: u64 = 6;

    fn uart() -> (Serial, Arc<Mutex<ConsoleRecord>>, EventFd) {
        let rec = Arc::new(Mutex::new(ConsoleRecord::new(1 << 20)));
        let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let s = Serial::new(
            irq.try_clone().unwrap(),
            ConsoleSink::new(None, None, rec.clone()),
        );
        (s, rec, irq)
    }

    fn rd(s: &mut Serial, off: u64) -> u8 {
        let mut b = [0u8];
        s.read(off, &mut b);
        b[0]
    }

    #[test]
    fn output_reaches_record_and_raises_thre() {
        let (mut s, rec, irq) = uart();
        s.write(IER, &[0x02]); // THRI
        assert_eq!(
            irq.read().unwrap(),
            1,
            "enabling THRI must raise THRE at once"
        );
        assert_eq!(rd(&mut s, IIR) & 0x0f, 0x02, "IIR reports THRE");
        for b in b"hi\n" {
            s.write(DATA, &[*b]);
        }
        assert_eq!(rec.lock().unwrap().text(), "hi\n");
        assert!(irq.read().unwrap() >= 1);
    }

    #[test]
    fn idle_lsr_and_loopback_msr() {
        let (mut s, _, _) = uart();
        assert_eq!(rd(&mut s, LSR), 0x60, "THR empty + transmitter empty");
        s.write(MCR, &[0x10 | 0x01]); // loopback + DTR
        assert_ne!(rd(&mut s, MSR) & 0x20, 0, "DSR follows DTR in loopback");
        s.write(MCR, &[0x10 | 0x02]); // loopback + RTS
        assert_ne!(rd(&mut s, MSR) & 0x10, 0, "CTS follows RTS in loopback");
        s.write(DATA, &[0x55]);
        assert_eq!(rd(&mut s, DATA), 0x55, "loopback echoes");
    }

    #[test]
    fn dlab_and_odd_widths() {
        let (mut s, rec, _) = uart();
        s.write(LCR, &[0x80]);
        s.write(DATA, &[0x01]); // divisor low, not output
        assert_eq!(rd(&mut s, DATA), 0x01);
        s.write(LCR, &[0x03]);
        s.write(DATA, b"xy"); // 2-byte access: ignored
        let mut w = [0xffu8; 2];
        s.read(LSR, &mut w);
        assert_eq!(w, [0, 0]);
        assert_eq!(rec.lock().unwrap().text(), "");
    }

    #[test]
    fn the_console_log_stops_at_its_cap() {
        let dir = vmm_sys_util::tempdir::TempDir::new().unwrap();
        let path = dir.as_path().join("console.log");
        let rec = Arc::new(Mutex::new(ConsoleRecord::new(64)));
        let log = File::create(&path).unwrap();
        let mut sink = ConsoleSink::new(None, Some(log), rec.clone());
        sink.logged = CONSOLE_LOG_CAP - 4;
        sink.write_all(b"0123456789").unwrap();
        sink.write_all(b"more").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "0123\n[pinvm: console log cut here at its size limit]\n"
        );
        assert_eq!(
            rec.lock().unwrap().total_len(),
            14,
            "the record still counts everything"
        );
    }

    #[test]
    fn echo_turns_crlf_into_lf() {
        let rec = Arc::new(Mutex::new(ConsoleRecord::new(64)));
        let mut sink = ConsoleSink::new(None, None, rec);
        assert_eq!(sink.unix_newlines(b"a\r\nb\r"), b"a\nb");
        assert_eq!(sink.unix_newlines(b"\nc\rd"), b"\nc\rd");
        sink.write_all(b"x\r\n").unwrap();
        assert_eq!(
            sink.record.lock().unwrap().text(),
            "x\r\n",
            "the record stays raw"
        );
    }

    #[test]
    fn record_is_bounded() {
        let mut r = ConsoleRecord::new(8);
        r.push(b"0123456789");
        assert!(r.bytes.len() <= 8);
        assert_eq!(r.total_len(), 10);
        assert!(r.text().ends_with('9'));
        assert_eq!(r.text_since(9), "9");
        assert_eq!(r.text_since(100), "");
    }

    #[test]
    fn line_times_follow_line_starts_across_pushes() {
        let mut r = ConsoleRecord::new(1 << 10);
        r.time_lines(b"a\r\nb", 10);
        r.time_lines(b"c\n", 20);
        r.time_lines(b"\nd", 30);
        // Lines: "a\r", "bc", "" (the empty line at 30), "d".
        assert_eq!(r.line_ns(), [10, 10, 30, 30]);
        let mut r = ConsoleRecord::new(1 << 10);
        r.time_lines(&vec![b'\n'; MAX_LINE_TIMES + 5], 1);
        assert_eq!(r.line_ns().len(), MAX_LINE_TIMES);
    }
}
