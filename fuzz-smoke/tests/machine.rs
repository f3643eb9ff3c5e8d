//! Fuzz target of the agent channel as the host sees it: control-page register writes (the
//! VMM's device) and serial frames (QEMU's channel) become agent events, which the run's
//! watch takes (STEP messages parsed, errors kept, CMD_DONE closing the echo) and turns into
//! the run record. Invariants: no panic, one event per EVENT write or frame, the record's
//! agent errors and steps within their caps, a `next_wait` that always answers.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use devices::control::ControlPage;
use fuzz_smoke::{fuzz, mutated};
use machine::agent::AgentEvent;
use machine::console::ConsoleCapture;
use machine::watch::{RunEnd, RunWatch, MAX_AGENT_ERRORS, MAX_STEP_REPORTS};
use machine::{RunSpec, VmEnd};
use proptest::prelude::*;
use proto::control::serial::{self, Decoder};
use proto::control::{mailbox_words, reg};

/// What the agent (or a hostile guest) does on its channel.
#[derive(Clone, Debug)]
enum Op {
    /// Write `message` into the mailbox and LEN, then STATUS and EVENT.
    Event {
        code: u32,
        status: u32,
        message: String,
    },
    /// One raw register write.
    Write { offset: u64, width: u8, value: u32 },
    /// Serial bytes (frames, near-frames, garbage).
    Serial(Vec<u8>),
}

fn message() -> impl Strategy<Value = String> {
    prop_oneof![
        (any::<u32>(), "[a-z]{1,8}", "[a-z]+=[0-9]{1,20}")
            .prop_map(|(i, op, d)| format!("step {i} {op} ok {d}")),
        (0u32..4, any::<i32>(), ".{0,20}").prop_map(|(i, e, m)| format!("step {i} x err {e} {m}")),
        (any::<u32>(), any::<u64>(), any::<u64>()).prop_map(|(i, l, n)| {
            format!("extent {i} logical={l} physical={l} length={n} flags=0x1")
        }),
        ".{0,64}",
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let code = prop_oneof![8 => 1u32..8, 1 => any::<u32>()];
    let offset = prop_oneof![
        3 => (0u64..6).prop_map(|r| r * 4),
        2 => (0u64..0x200).prop_map(|w| reg::MAILBOX + 4 * w),
        1 => 0u64..0x1100,
    ];
    let width = prop_oneof![8 => Just(4u8), 1 => Just(1), 1 => Just(8)];
    let frame = (code.clone(), any::<u32>(), message())
        .prop_map(|(c, s, m)| serial::encode(c, s, &m).into_bytes());
    prop_oneof![
        4 => (code, any::<u32>(), message())
            .prop_map(|(code, status, message)| Op::Event { code, status, message }),
        2 => (offset, width, any::<u32>()).prop_map(|(offset, width, value)| Op::Write { offset, width, value }),
        2 => mutated(frame).prop_map(Op::Serial),
    ]
}

fn spec() -> RunSpec {
    RunSpec {
        kernel: "vmlinux".into(),
        initrd: None,
        append: Vec::new(),
        cpus: 1,
        mem_mib: 64,
        timeout: Duration::from_secs(60),
        echo: false,
        console_log: None,
        disks: Vec::new(),
        dma: None,
    }
}

#[test]
fn agent_channel() {
    fuzz(
        "agent_channel",
        proptest::collection::vec(op(), 0..40),
        |ops| {
            let spec = spec();
            let (console, _sink) = ConsoleCapture::open(&spec).expect("console capture");
            let started = Instant::now();
            let mut watch = RunWatch::new(console, started, spec.timeout);
            let events: Arc<Mutex<Vec<AgentEvent>>> = Arc::default();
            let sink = events.clone();
            let mut page =
                ControlPage::with_sink(move |ev| sink.lock().expect("events").push(ev.into()));
            let mut decoder = Decoder::default();
            let (mut expected, mut delivered) = (0usize, 0usize);
            for op in &ops {
                match op {
                    Op::Event {
                        code,
                        status,
                        message,
                    } => {
                        let (len, words) = mailbox_words(message);
                        for (i, w) in words.iter().enumerate() {
                            page.write(reg::MAILBOX + 4 * i as u64, &w.to_le_bytes());
                        }
                        page.write(reg::LEN, &len.to_le_bytes());
                        page.write(reg::STATUS, &status.to_le_bytes());
                        page.write(reg::EVENT, &code.to_le_bytes());
                        expected += 1;
                    }
                    Op::Write {
                        offset,
                        width,
                        value,
                    } => {
                        let b = u64::from(*value).to_le_bytes();
                        page.write(*offset, &b[..usize::from(*width)]);
                        if *offset == reg::EVENT && *width == 4 {
                            expected += 1;
                        }
                    }
                    Op::Serial(bytes) => {
                        let got = decoder.feed(bytes);
                        for f in got.frames {
                            let ev = devices::control::ControlEvent {
                                kind: proto::control::ControlEventKind::from_code(f.code),
                                status: f.status,
                                message: String::from_utf8_lossy(&f.message).into_owned(),
                                at: Instant::now(),
                                at_ns: devices::clock::monotonic_ns(),
                            };
                            events.lock().expect("events").push(ev.into());
                            expected += 1;
                        }
                    }
                }
                for ev in events.lock().expect("events").drain(..) {
                    delivered += 1;
                    watch.agent(ev);
                }
                prop_assert_eq!(delivered, expected, "one event per EVENT write or frame");
                prop_assert!(watch.next_wait().is_continue(), "the run is not over");
            }
            let end = RunEnd {
                end: VmEnd::Reset,
                first_instruction: Some(started),
                vcpu_rips: Vec::new(),
                notes: Vec::new(),
                quirks: String::new(),
                cmdline: String::new(),
            };
            let report = watch.into_report("fuzz", &spec, end);
            prop_assert!(report.agent_errors.len() <= MAX_AGENT_ERRORS + 2);
            prop_assert!(report.steps.len() <= MAX_STEP_REPORTS.min(expected));
            prop_assert_eq!(report.steps.len(), report.step_ns.len());
            Ok(())
        },
    );
}
