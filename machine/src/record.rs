//! The run record: what happened to one guest, as any machine reports it.

use proto::agent::StepReport;
use std::path::PathBuf;
use std::time::Duration;

/// How the guest's run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmEnd {
    /// The guest pulsed the i8042 reset line (reboot, or panic with panic=1).
    Reset,
    /// Triple fault.
    Shutdown,
    /// The guest requested a system event of this type (KVM_EXIT_SYSTEM_EVENT).
    SystemEvent(u32),
    /// The deadline passed.
    Timeout,
    /// The command finished but the guest did not reboot within the grace period.
    NoRebootAfterCommand,
    /// The kernel panicked; stopped without waiting for its (emulated, slow) reboot delay.
    Panicked,
    /// A vCPU could not go on (internal error, entry failure): the kernel could not be booted.
    VcpuFailed(String),
}

/// Where a run spent its time.
#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// From the start of the run (machine set-up) to the guest's first instruction.
    pub setup: Duration,
    /// From the guest's first instruction to the agent's first event.
    pub to_init: Option<Duration>,
    /// From the guest's first instruction to CMD_DONE.
    pub to_cmd_done: Option<Duration>,
    /// From the start of the run to its end (devices collected).
    pub total: Duration,
}

/// Where the run's device records were written (as the [`crate::RunSpec`] asked), for the
/// analysis that reads them.
#[derive(Debug, Clone, Default)]
pub struct RecordPaths {
    /// Each disk's write journal, in disk order (None: that disk kept none).
    pub journals: Vec<Option<PathBuf>>,
    /// Each disk as the guest left it (`DiskSpec::keep`), in disk order.
    pub kept_disks: Vec<Option<PathBuf>>,
    /// The DMA device's log.
    pub dma_log: Option<PathBuf>,
    /// The whole console.
    pub console_log: Option<PathBuf>,
}

/// The run record: everything a machine observed about one guest run. Judging it
/// ([`crate::outcome::judge`]) and the oracle need nothing else.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Which machine ran the guest ([`crate::Machine::name`]), e.g. `"kvm"`.
    pub machine: String,
    /// How the run ended.
    pub end: VmEnd,
    /// The command's shell-style status (exit code or 128+signal), if CMD_DONE arrived.
    pub cmd_status: Option<u32>,
    /// Whether the agent (/init) reported that it started.
    pub agent_started: bool,
    /// What the agent reported as errors, in order.
    pub agent_errors: Vec<String>,
    /// The console as captured (at most the record's cap, the latest bytes).
    pub console: String,
    /// When each console line's first byte arrived (CLOCK_MONOTONIC ns), line 0 first, as
    /// in the console log (`devices::serial::ConsoleRecord::line_ns`).
    pub console_line_ns: Vec<u64>,
    /// Console length (bytes) when CMD_DONE arrived.
    pub console_at_cmd_done: Option<u64>,
    /// Where the run spent its time.
    pub timings: Timings,
    /// Where each vCPU was when it was stopped: (vCPU id, RIP), sorted (hang reports).
    pub vcpu_rips: Vec<(u8, u64)>,
    /// Set-up steps the host refused but the guest could live without, and collection
    /// problems.
    pub notes: Vec<String>,
    /// The machine's platform work-arounds and how often each ran (on KVM: the kvm_pvm
    /// instruction completions).
    pub quirks: String,
    /// The kernel command line the guest booted with.
    pub cmdline: String,
    /// What the agent reported about its steps, in order.
    pub steps: Vec<StepReport>,
    /// When each report arrived, since the guest's first instruction (same order as `steps`).
    pub step_times: Vec<Duration>,
    /// When each report arrived on CLOCK_MONOTONIC in ns, the clock of the block journal and
    /// the DMA log (same order as `steps`).
    pub step_ns: Vec<u64>,
    /// Where the devices' records are.
    pub records: RecordPaths,
}
