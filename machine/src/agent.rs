//! The guest agent's events, independent of the channel that carried them: the control page
//! under our VMM, a serial port under other machines (docs/control-protocol.md). The host
//! timestamps each event on arrival.

use devices::control::ControlEvent;
use proto::control::ControlEventKind;
use std::time::Instant;

/// Agent events (and the other run messages) queued between the threads that receive them
/// (a vCPU thread writing the control page, the serial reader under QEMU) and the run loop,
/// on every machine. A guest that floods its channel is slowed down, never given more host
/// memory: the sender blocks until the run loop takes an event. The run loop takes events on
/// every pass and while it stops the guest, so a blocked sender never holds the teardown.
pub const EVENT_QUEUE: usize = 256;

/// One event from the guest agent, timestamped on arrival.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentEvent {
    /// What the agent reported.
    pub kind: AgentEventKind,
    /// When the event reached the host.
    pub at: Instant,
    /// The same moment on CLOCK_MONOTONIC in ns: the clock of the block journal and the DMA
    /// log, so step results can be ordered against disk writes and DMA.
    pub at_ns: u64,
}

/// What the agent reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentEventKind {
    /// `/init` started (marks "time to guest init").
    Started,
    /// The command was spawned.
    CmdStarted,
    /// The command ended with this shell-style status (exit code or 128+signal).
    CmdDone {
        /// The command's status.
        status: u32,
    },
    /// The agent hit an error.
    Error {
        /// An errno, or 0.
        errno: u32,
        /// What went wrong.
        message: String,
    },
    /// A line for the host's log.
    Log(String),
    /// One STEP line: the outcome of a workload step, or one FIEMAP extent of a step
    /// (`devices::agent_msg::parse_step` reads it).
    Step(String),
    /// An event code this host does not know.
    Unknown(u32),
}

impl From<ControlEvent> for AgentEvent {
    fn from(ev: ControlEvent) -> Self {
        let kind = match ev.kind {
            ControlEventKind::AgentStarted => AgentEventKind::Started,
            ControlEventKind::CmdStarted => AgentEventKind::CmdStarted,
            ControlEventKind::CmdDone => AgentEventKind::CmdDone { status: ev.status },
            ControlEventKind::AgentError => AgentEventKind::Error {
                errno: ev.status,
                message: ev.message,
            },
            ControlEventKind::Log => AgentEventKind::Log(ev.message),
            ControlEventKind::Step => AgentEventKind::Step(ev.message),
            ControlEventKind::Unknown(c) => AgentEventKind::Unknown(c),
        };
        AgentEvent {
            kind,
            at: ev.at,
            at_ns: ev.at_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(kind: ControlEventKind, status: u32, message: &str) -> ControlEvent {
        ControlEvent {
            kind,
            status,
            message: message.into(),
            at: Instant::now(),
            at_ns: 7,
        }
    }

    #[test]
    fn control_page_events_map_one_to_one() {
        let cases = [
            (
                control(ControlEventKind::AgentStarted, 0, ""),
                AgentEventKind::Started,
            ),
            (
                control(ControlEventKind::CmdDone, 3, ""),
                AgentEventKind::CmdDone { status: 3 },
            ),
            (
                control(ControlEventKind::AgentError, 2, "no such file"),
                AgentEventKind::Error {
                    errno: 2,
                    message: "no such file".into(),
                },
            ),
            (
                control(ControlEventKind::Step, 0, "step 1 sync ok"),
                AgentEventKind::Step("step 1 sync ok".into()),
            ),
            (
                control(ControlEventKind::Unknown(99), 0, ""),
                AgentEventKind::Unknown(99),
            ),
        ];
        for (ev, want) in cases {
            let at = ev.at;
            let got = AgentEvent::from(ev);
            assert_eq!((got.kind, got.at, got.at_ns), (want, at, 7));
        }
    }
}
