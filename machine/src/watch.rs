//! Watching a run: what the agent has said so far ([`AgentLog`]) and the run's clock
//! ([`RunWatch`]: the deadline, the grace after CMD_DONE for the guest to reboot, the grace
//! after a kernel panic for the rest of its report). A machine's run loop waits for its own
//! events for at most [`RunWatch::next_wait`] (which also says when the run is over), hands
//! agent events to [`RunWatch::agent`], and ends with [`RunWatch::into_report`].

use crate::agent::{AgentEvent, AgentEventKind};
use crate::console::ConsoleCapture;
use crate::{RecordPaths, RunReport, RunSpec, Timings, VmEnd};
use proto::agent::{parse_step, StepReport};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

/// After the command is done the agent syncs and reboots; give it this long.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// How often the console is checked for a panic.
pub const CONSOLE_POLL: Duration = Duration::from_millis(250);
/// How long the rest of a panic report gets to arrive before the guest is stopped.
pub const PANIC_GRACE: Duration = Duration::from_secs(2);
/// What marks a kernel panic on the console.
pub const PANIC_MARKER: &str = "Kernel panic - not syncing";

/// Most agent errors kept in a run record; later ones are counted, not kept.
pub const MAX_AGENT_ERRORS: usize = 256;
/// Most step reports (extents included) kept in a run record: far above any scenario's (a
/// job has at most a few hundred steps, a FIEMAP of a test file a few hundred extents). Each
/// kept report costs about 1 KiB more while the run's JSON report is built, so this also
/// bounds what a flooding guest adds to pinvm's peak memory (about 16 MiB).
pub const MAX_STEP_REPORTS: usize = 1 << 14;

/// What the agent has told us so far. Bounded: a guest that floods its channel costs the host
/// at most [`MAX_AGENT_ERRORS`] errors and [`MAX_STEP_REPORTS`] step reports, and the run
/// record says how many more it sent.
#[derive(Default)]
pub struct AgentLog {
    dropped_errors: u64,
    dropped_steps: u64,
    started_at: Option<Instant>,
    cmd_done_at: Option<Instant>,
    cmd_status: Option<u32>,
    console_at_cmd_done: Option<u64>,
    errors: Vec<String>,
    steps: Vec<StepReport>,
    step_at: Vec<Instant>,
    step_ns: Vec<u64>,
}

impl AgentLog {
    /// Take one event: the first start opens the console echo, the first CMD_DONE closes it
    /// and marks how much console the command saw; STEP lines are parsed (an unreadable one
    /// is an agent error).
    pub fn event(&mut self, ev: AgentEvent, console: &ConsoleCapture) {
        match ev.kind {
            AgentEventKind::Started => {
                self.started_at.get_or_insert(ev.at);
                console.set_echo(true);
            }
            AgentEventKind::CmdDone { status } if self.cmd_done_at.is_none() => {
                console.set_echo(false);
                self.cmd_done_at = Some(ev.at);
                self.cmd_status = Some(status);
                self.console_at_cmd_done = Some(console.record().total_len());
            }
            AgentEventKind::Error { message, .. } => self.error(message),
            AgentEventKind::Step(_) if self.steps.len() >= MAX_STEP_REPORTS => {
                self.dropped_steps += 1;
            }
            AgentEventKind::Step(line) => match parse_step(&line) {
                Ok(r) => {
                    self.steps.push(r);
                    self.step_at.push(ev.at);
                    self.step_ns.push(ev.at_ns);
                }
                Err(e) => self.error(format!("unreadable STEP report {line:?}: {e}")),
            },
            _ => {}
        }
    }

    fn error(&mut self, message: String) {
        if self.errors.len() < MAX_AGENT_ERRORS {
            self.errors.push(message);
        } else {
            self.dropped_errors += 1;
        }
    }

    /// What the caps dropped, as lines for the run record's agent errors.
    fn dropped(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.dropped_errors > 0 {
            v.push(format!(
                "{} more agent errors were not kept (at most {MAX_AGENT_ERRORS})",
                self.dropped_errors
            ));
        }
        if self.dropped_steps > 0 {
            v.push(format!(
                "{} more step reports were not kept (at most {MAX_STEP_REPORTS})",
                self.dropped_steps
            ));
        }
        v
    }

    /// When CMD_DONE arrived, if it did.
    pub fn cmd_done_at(&self) -> Option<Instant> {
        self.cmd_done_at
    }
}

/// The run's clock and the agent's log, from the start of the run to its report.
pub struct RunWatch {
    console: ConsoleCapture,
    agent: AgentLog,
    started: Instant,
    deadline: Instant,
    /// Console bytes already scanned for the panic marker.
    scanned: u64,
    panic_at: Option<Instant>,
    /// The time limit of the current wait (see `next_wait`).
    limit: Instant,
}

impl RunWatch {
    /// A run that started at `started` (set-up included) and may last `timeout` (machines
    /// refuse more than [`crate::spec::MAX_TIMEOUT`]; a larger one here means the latest
    /// deadline the clock can hold, never a panic).
    pub fn new(console: ConsoleCapture, started: Instant, timeout: Duration) -> RunWatch {
        let deadline = saturating_add(started, timeout);
        RunWatch {
            console,
            agent: AgentLog::default(),
            started,
            deadline,
            scanned: 0,
            panic_at: None,
            limit: deadline,
        }
    }

    /// How long the machine may wait for its next event, or `Break` with the end of the run:
    /// a kernel that panicked and had its grace, or a deadline that passed (checked on every
    /// pass, so a guest that keeps sending events cannot outlive it). Also scans the console
    /// for a panic.
    pub fn next_wait(&mut self) -> ControlFlow<VmEnd, Duration> {
        let mut limit = match self.agent.cmd_done_at {
            Some(t) => self.deadline.min(t + SHUTDOWN_GRACE),
            None => self.deadline,
        };
        if let Some(t) = self.panic_at {
            if Instant::now() >= t + PANIC_GRACE {
                return ControlFlow::Break(VmEnd::Panicked);
            }
            limit = limit.min(t + PANIC_GRACE);
        }
        self.limit = limit;
        if self.panic_at.is_none() {
            self.scan_for_panic();
        }
        if let Some(end) = self.quiet() {
            return ControlFlow::Break(end);
        }
        let wait = limit
            .saturating_duration_since(Instant::now())
            .min(CONSOLE_POLL);
        ControlFlow::Continue(wait)
    }

    fn scan_for_panic(&mut self) {
        let rec = self.console.record();
        // Re-read a marker's length of old text so a marker split across polls is found.
        let from = self.scanned.saturating_sub(PANIC_MARKER.len() as u64);
        if rec.text_since(from).contains(PANIC_MARKER) {
            self.panic_at = Some(Instant::now());
        }
        self.scanned = rec.total_len();
    }

    /// Nothing arrived within the wait: the end of the run if its time is up (a hang, or no
    /// reboot after the command), else None (wait again; a panicking guest gets its grace).
    fn quiet(&self) -> Option<VmEnd> {
        if Instant::now() < self.limit || self.panic_at.is_some() {
            None
        } else if self.agent.cmd_done_at.is_some() {
            Some(VmEnd::NoRebootAfterCommand)
        } else {
            Some(VmEnd::Timeout)
        }
    }

    /// Take one agent event.
    pub fn agent(&mut self, ev: AgentEvent) {
        self.agent.event(ev, &self.console);
    }

    /// The run record, once the guest is stopped and the devices are collected.
    pub fn into_report(self, machine: &str, spec: &RunSpec, end: RunEnd) -> RunReport {
        let first = end.first_instruction;
        let since_first = |t: Option<Instant>| Some(t?.saturating_duration_since(first?));
        let mut a = self.agent;
        let dropped = a.dropped();
        a.errors.extend(dropped);
        let (console, console_line_ns) = {
            let rec = self.console.record();
            (rec.text(), rec.line_ns().to_vec())
        };
        RunReport {
            machine: machine.to_string(),
            end: end.end,
            cmd_status: a.cmd_status,
            agent_started: a.started_at.is_some(),
            agent_errors: a.errors,
            console,
            console_line_ns,
            console_at_cmd_done: a.console_at_cmd_done,
            timings: Timings {
                setup: first.map(|f| f - self.started).unwrap_or_default(),
                to_init: since_first(a.started_at),
                to_cmd_done: since_first(a.cmd_done_at),
                total: self.started.elapsed(),
            },
            vcpu_rips: end.vcpu_rips,
            notes: end.notes,
            quirks: end.quirks,
            cmdline: end.cmdline,
            step_times: a
                .step_at
                .iter()
                .map(|t| since_first(Some(*t)).unwrap_or_default())
                .collect(),
            step_ns: a.step_ns,
            steps: a.steps,
            records: RecordPaths::of(spec),
        }
    }
}

/// `t + d`, or the latest instant after `t` the clock can hold (`Instant + Duration` panics
/// on overflow).
fn saturating_add(t: Instant, mut d: Duration) -> Instant {
    loop {
        if let Some(later) = t.checked_add(d) {
            return later;
        }
        d /= 2;
    }
}

/// What the machine knows once the guest is stopped.
pub struct RunEnd {
    /// How the run ended.
    pub end: VmEnd,
    /// When the guest ran its first instruction, if it did.
    pub first_instruction: Option<Instant>,
    /// Where each vCPU was when stopped: (id, RIP), sorted.
    pub vcpu_rips: Vec<(u8, u64)>,
    /// Set-up and collection notes.
    pub notes: Vec<String>,
    /// The machine's platform work-arounds summary.
    pub quirks: String,
    /// The kernel command line the guest booted with.
    pub cmdline: String,
}

impl RecordPaths {
    /// Where `spec` asked the devices to write their records.
    pub fn of(spec: &RunSpec) -> RecordPaths {
        RecordPaths {
            journals: spec.disks.iter().map(|d| d.journal.clone()).collect(),
            kept_disks: spec.disks.iter().map(|d| d.keep.clone()).collect(),
            dma_log: spec.dma.as_ref().and_then(|d| d.log.clone()),
            console_log: spec.console_log.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::AgentEvent;
    use std::io::Write;

    fn spec() -> RunSpec {
        RunSpec {
            cpus: 1,
            timeout: Duration::from_secs(1),
            ..RunSpec::new("vmlinux")
        }
    }

    fn event(kind: AgentEventKind) -> AgentEvent {
        AgentEvent {
            kind,
            at: Instant::now(),
            at_ns: 42,
        }
    }

    /// A watch whose deadline has passed already.
    fn overdue() -> (RunWatch, devices::serial::ConsoleSink) {
        let (console, sink) = ConsoleCapture::open(&spec()).unwrap();
        let started = Instant::now() - Duration::from_secs(10);
        (
            RunWatch::new(console, started, Duration::from_secs(1)),
            sink,
        )
    }

    #[test]
    fn a_run_past_its_deadline_is_a_hang_or_a_missing_reboot() {
        let (mut w, _sink) = overdue();
        assert_eq!(w.next_wait(), ControlFlow::Break(VmEnd::Timeout));
        assert_eq!(w.quiet(), Some(VmEnd::Timeout));
        w.agent(event(AgentEventKind::CmdDone { status: 0 }));
        assert_eq!(
            w.next_wait(),
            ControlFlow::Break(VmEnd::NoRebootAfterCommand)
        );
    }

    #[test]
    fn a_flood_of_errors_and_steps_is_bounded_and_counted() {
        let (mut w, _sink) = overdue();
        for i in 0..(MAX_AGENT_ERRORS + 10) {
            w.agent(event(AgentEventKind::Error {
                errno: 0,
                message: format!("e{i}"),
            }));
        }
        for _ in 0..(MAX_STEP_REPORTS + 5) {
            w.agent(event(AgentEventKind::Step("step 1 sync ok".into())));
        }
        let end = RunEnd {
            end: VmEnd::Timeout,
            first_instruction: None,
            vcpu_rips: vec![],
            notes: vec![],
            quirks: String::new(),
            cmdline: String::new(),
        };
        let r = w.into_report("test", &spec(), end);
        assert_eq!(r.steps.len(), MAX_STEP_REPORTS);
        assert_eq!(r.agent_errors.len(), MAX_AGENT_ERRORS + 2);
        assert!(r.agent_errors[MAX_AGENT_ERRORS].starts_with("10 more agent errors"));
        assert!(r.agent_errors[MAX_AGENT_ERRORS + 1].starts_with("5 more step reports"));
    }

    #[test]
    fn a_guest_flooding_events_still_meets_its_deadline() {
        let (console, _sink) = ConsoleCapture::open(&spec()).unwrap();
        let mut w = RunWatch::new(console, Instant::now(), Duration::from_millis(50));
        let t0 = Instant::now();
        let end = loop {
            // An event on every pass: the machine never sees a quiet wait.
            match w.next_wait() {
                ControlFlow::Break(end) => break end,
                ControlFlow::Continue(_) => w.agent(event(AgentEventKind::Log("x".into()))),
            }
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "the deadline was never checked"
            );
        };
        assert_eq!(end, VmEnd::Timeout);
    }

    /// `started + timeout` used to panic for a timeout past what `Instant` holds.
    #[test]
    fn an_endless_timeout_saturates_instead_of_panicking() {
        let (console, _sink) = ConsoleCapture::open(&spec()).unwrap();
        let now = Instant::now();
        let mut w = RunWatch::new(console, now, Duration::MAX);
        assert!(w.deadline > now + Duration::from_secs(1 << 32));
        assert_eq!(w.next_wait(), ControlFlow::Continue(CONSOLE_POLL));
        w.agent(event(AgentEventKind::CmdDone { status: 0 }));
        assert!(w.next_wait().is_continue());
    }

    #[test]
    fn a_panic_gets_its_grace_even_past_the_deadline() {
        let (mut w, mut sink) = overdue();
        sink.write_all(b"[ 1.0] Kernel panic - not syncing: VFS\n")
            .unwrap();
        assert!(w.next_wait().is_continue());
        assert_eq!(w.quiet(), None, "the rest of the report may still come");
    }

    #[test]
    fn the_report_carries_the_agent_s_words() {
        let (mut w, mut sink) = overdue();
        w.agent(event(AgentEventKind::Started));
        w.agent(event(AgentEventKind::Step("step 1 sync ok".into())));
        w.agent(event(AgentEventKind::Step("bogus".into())));
        sink.write_all(b"out\n").unwrap();
        w.agent(event(AgentEventKind::CmdDone { status: 3 }));
        let end = RunEnd {
            end: VmEnd::Reset,
            first_instruction: Some(Instant::now()),
            vcpu_rips: vec![(0, 0xffff_ffff_8100_0000)],
            notes: vec![],
            quirks: String::new(),
            cmdline: "console=ttyS0".into(),
        };
        let r = w.into_report("test", &spec(), end);
        assert_eq!(r.machine, "test");
        assert!(r.agent_started);
        assert_eq!(r.cmd_status, Some(3));
        assert_eq!(r.console, "out\n");
        assert_eq!(r.console_at_cmd_done, Some(4));
        assert_eq!(r.steps.len(), 1);
        assert_eq!(r.step_ns, vec![42]);
        assert_eq!(r.agent_errors.len(), 1, "{:?}", r.agent_errors);
        assert!(r.agent_errors[0].contains("unreadable STEP report"));
    }
}
