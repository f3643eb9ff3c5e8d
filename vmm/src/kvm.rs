//! [`KvmMachine`]: the run, step by step (see `builder` for the set-up steps).

use crate::builder;
use crate::kick;
use crate::run_control;
use anyhow::Context;
use machine::watch::{RunEnd, RunWatch};
use machine::{Machine, MachineError, RunReport, RunSpec};
use std::time::Instant;

/// The machine's name in run records.
pub const NAME: &str = "kvm";

/// pinvm's own VMM on /dev/kvm (hardware KVM or kvm_pvm): virtio-mmio devices, the control
/// page for the agent, a 16550 console and an i8042 whose reset ends the run.
#[derive(Debug, Default, Clone, Copy)]
pub struct KvmMachine;

impl Machine for KvmMachine {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, spec: &RunSpec) -> Result<RunReport, MachineError> {
        builder::check(spec)?;
        kick::install().context("installing the vCPU kick signal handler")?;
        let started = Instant::now();
        let vm = builder::create_vm(spec)?;
        let (tx, rx) = run_control::channel();
        let board = builder::build_devices(&vm, spec, &tx)?;
        let mut notes = Vec::new();
        let vcpus = builder::create_vcpus(&vm, spec.cpus, &mut notes)?;
        let cmdline = builder::load(&vm, spec, &vcpus, &mut notes)?;
        let running = builder::start(&vm, vcpus, board.pio, board.mmio, &tx)?;
        // From here on only the devices and the vCPU threads hold senders.
        drop(tx);

        let mut watch = RunWatch::new(board.console, started, spec.timeout);
        let end = run_control::watch(&rx, &mut watch);
        let stopped = run_control::stop(running, &rx, &mut watch, &mut notes);
        board.collector.collect(&mut notes);
        let end = RunEnd {
            end,
            first_instruction: stopped.first_run,
            vcpu_rips: stopped.rips,
            notes,
            quirks: stopped.quirks,
            cmdline,
        };
        Ok(watch.into_report(NAME, spec, end))
    }
}
