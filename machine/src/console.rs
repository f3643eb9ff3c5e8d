//! Capturing the guest console: every byte goes into a bounded record (for crash detection
//! and reports), into the console log file if the run asked for one, and to our stdout while
//! the guest's command runs (if the run asked for echo). The UART that produces the bytes is
//! the machine's; the capture is shared.

use anyhow::Context;
use devices::serial::{ConsoleRecord, ConsoleSink};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::RunSpec;

/// Console bytes kept for crash detection and reports.
pub const CONSOLE_RECORD_CAP: usize = 16 << 20;

/// The shared side of a run's console: the record and the echo gate.
#[derive(Clone)]
pub struct ConsoleCapture {
    record: Arc<Mutex<ConsoleRecord>>,
    echo_gate: Arc<AtomicBool>,
}

impl ConsoleCapture {
    /// The capture for `spec` and the sink the machine's UART writes into. Creates (truncates)
    /// `spec.console_log` if set.
    pub fn open(spec: &RunSpec) -> anyhow::Result<(ConsoleCapture, ConsoleSink)> {
        let log = match &spec.console_log {
            Some(p) => Some(
                std::fs::File::create(p)
                    .with_context(|| format!("creating console log {}", p.display()))?,
            ),
            None => None,
        };
        let capture = ConsoleCapture {
            record: Arc::new(Mutex::new(ConsoleRecord::new(CONSOLE_RECORD_CAP))),
            echo_gate: Arc::new(AtomicBool::new(false)),
        };
        let gate = spec.echo.then(|| capture.echo_gate.clone());
        let sink = ConsoleSink::new(gate, log, capture.record.clone());
        Ok((capture, sink))
    }

    /// The record (poisoning is ignored: the record is only appended to).
    pub fn record(&self) -> MutexGuard<'_, ConsoleRecord> {
        self.record.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Open (the command started) or close (it is done) the echo to stdout.
    pub fn set_echo(&self, open: bool) {
        self.echo_gate.store(open, Ordering::Relaxed);
    }
}
