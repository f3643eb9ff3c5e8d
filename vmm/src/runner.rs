//! Run control: build the machine, start the vCPUs, watch the guest, stop it, and report.
//!
//! The main thread owns the run: it waits for the guest agent's events, the i8042 reset, vCPU
//! ends, or the deadline. A hung guest is stopped with a signal + `immediate_exit` (see
//! `kick`), never with a vCPU ioctl from this thread.

use crate::arch::x86_64::layout;
use crate::quirks::QuirkCounts;
use crate::vcpu::{self, VcpuEnd, VcpuShared};
use crate::{host, kick, vm};
use anyhow::{Context, Result};
use devices::block::disk::CowDisk;
use devices::block::{Block, BlockConfig};
use devices::bus::{Bus, BusDevice};
use devices::control::{ControlEvent, ControlPage};
use devices::dmapin::{DmaPin, DmaPinConfig};
use devices::i8042::{ResetTrigger, I8042, I8042_BASE, I8042_LEN};
use devices::serial::{ConsoleRecord, ConsoleSink, Serial, COM1_BASE, COM1_IRQ, COM1_LEN};
use devices::virtio::mmio::{MmioTransport, MMIO_SLOT_SIZE, QUEUE_NOTIFY_OFFSET};
use devices::virtio::{cmdline_entry, GuestMem, VirtioDevice};
use kvm_ioctls::IoEventAddress;
use proto::agent::{parse_step, StepReport};
use proto::control::{ControlEventKind, PAGE_SIZE as CONTROL_PAGE_SIZE};
use proto::journal::JournalOptions;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vm_memory::GuestMemoryAtomic;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};
use vmm_sys_util::signal::Killable;

/// Console bytes kept for crash detection and reports.
const CONSOLE_RECORD_CAP: usize = 16 << 20;
/// After the command is done the agent syncs and reboots; give it this long.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// How often the console is checked for a panic, and how long the rest of the panic report
/// gets to arrive before the VM is stopped.
const CONSOLE_POLL: Duration = Duration::from_millis(250);
const PANIC_GRACE: Duration = Duration::from_secs(2);
const PANIC_MARKER: &str = "Kernel panic - not syncing";

/// A virtio-blk disk: served copy-on-write over `image`, which is never modified.
#[derive(Debug, Clone)]
pub struct DiskSpec {
    pub image: PathBuf,
    /// Record every write and flush here (docs/journal-format.md).
    pub journal: Option<PathBuf>,
    /// Also record the full data of every write in the journal.
    pub journal_data: bool,
    /// Save the disk as the guest left it here.
    pub keep: Option<PathBuf>,
    /// GET_ID answer (serial), at most 20 bytes.
    pub id: String,
}

#[derive(Debug, Clone)]
pub struct RunSpec {
    pub kernel: PathBuf,
    pub initrd: Option<Vec<u8>>,
    /// Extra command-line words, after pinvm's own.
    pub append: Vec<String>,
    pub cpus: u8,
    pub mem_mib: u64,
    pub timeout: Duration,
    /// Copy the console to our stdout.
    pub echo: bool,
    pub console_log: Option<PathBuf>,
    /// virtio-blk disks, in order: /dev/vda, /dev/vdb, ...
    pub disks: Vec<DiskSpec>,
    /// Attach the dmapin DMA device (after the disks); log its DMA writes here if set.
    pub dma: Option<DmaSpec>,
}

/// The fake DMA device (`devices::dmapin`): it writes stamped data into pages the guest driver
/// pinned and posted; its writeback schedule hooks the first disk's copies.
#[derive(Debug, Clone, Default)]
pub struct DmaSpec {
    pub log: Option<PathBuf>,
}

/// Guest-physical base and GSI of virtio-mmio slot `i`.
pub fn virtio_slot(i: usize) -> (u64, u32) {
    (
        layout::VIRTIO_MMIO_BASE + i as u64 * MMIO_SLOT_SIZE,
        VIRTIO_FIRST_GSI + i as u32,
    )
}

/// Put `device` in virtio-mmio slot `slot`: an irqfd for its interrupt, one ioeventfd per queue
/// on QUEUE_NOTIFY (datamatch = queue index, so notifications never leave the kernel), and the
/// transport on the MMIO bus.
fn attach_virtio(
    vm: &kvm_ioctls::VmFd,
    mmio: &mut Bus,
    mem: &GuestMem,
    slot: usize,
    device: Box<dyn VirtioDevice>,
) -> Result<()> {
    let (base, gsi) = virtio_slot(slot);
    let irq = EventFd::new(EFD_NONBLOCK)?;
    vm.register_irqfd(&irq, gsi)
        .with_context(|| format!("KVM_IRQFD for virtio slot {slot}"))?;
    let mut notify = Vec::new();
    for q in 0..device.queue_max_sizes().len() as u32 {
        let e = EventFd::new(EFD_NONBLOCK)?;
        vm.register_ioevent(&e, &IoEventAddress::Mmio(base + QUEUE_NOTIFY_OFFSET), q)
            .with_context(|| format!("KVM_IOEVENTFD for virtio slot {slot} queue {q}"))?;
        notify.push(e);
    }
    let transport = MmioTransport::new(device, mem.clone(), irq, notify);
    mmio.insert(base, MMIO_SLOT_SIZE, Arc::new(Mutex::new(transport)))?;
    Ok(())
}

/// Legacy GSIs 5..=23 are free for virtio-mmio devices (0-4 are taken by PIT, i8042, cascade,
/// COM2 and COM1).
const VIRTIO_FIRST_GSI: u32 = 5;
const VIRTIO_LAST_GSI: u32 = 23;

/// How the VM ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmEnd {
    /// The guest pulsed the i8042 reset line (reboot, or panic with panic=1).
    Reset,
    /// Triple fault.
    Shutdown,
    SystemEvent(u32),
    /// The deadline passed.
    Timeout,
    /// The command finished but the guest did not reboot within the grace period.
    NoRebootAfterCommand,
    /// The kernel panicked; stopped without waiting for its (emulated, slow) reboot delay.
    Panicked,
    /// A vCPU could not go on (internal error, entry failure).
    VcpuFailed(String),
}

#[derive(Debug, Clone, Default)]
pub struct Timings {
    /// From the start of VM creation to the first KVM_RUN.
    pub setup: Duration,
    /// From the first KVM_RUN to the agent's first event.
    pub to_init: Option<Duration>,
    /// From the first KVM_RUN to CMD_DONE.
    pub to_cmd_done: Option<Duration>,
    /// From the start of VM creation to the end of the run.
    pub total: Duration,
}

#[derive(Debug, Clone)]
pub struct RunReport {
    pub end: VmEnd,
    pub cmd_status: Option<u32>,
    pub agent_started: bool,
    pub agent_errors: Vec<String>,
    pub console: String,
    /// Console length (bytes) when CMD_DONE arrived.
    pub console_at_cmd_done: Option<u64>,
    pub timings: Timings,
    /// RIP of each vCPU when it was stopped (hang reports).
    pub vcpu_rips: Vec<(u8, u64)>,
    pub notes: Vec<String>,
    pub quirks: String,
    pub cmdline: String,
    /// What the agent reported about its steps, in order.
    pub steps: Vec<StepReport>,
    /// When each report arrived, since the first KVM_RUN (same order as `steps`).
    pub step_times: Vec<Duration>,
    /// When each report arrived on CLOCK_MONOTONIC in ns, the clock of the block journal and
    /// the DMA log (same order as `steps`).
    pub step_ns: Vec<u64>,
}

enum Msg {
    Reset,
    Control(ControlEvent),
    Vcpu(u8, VcpuEnd),
}

/// Adapts the control page to the MMIO bus.
struct ControlBus(ControlPage);
impl BusDevice for ControlBus {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.0.read(offset, data)
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        self.0.write(offset, data)
    }
}

pub fn run(spec: &RunSpec) -> Result<RunReport> {
    if spec.cpus == 0 {
        anyhow::bail!("--cpus must be at least 1");
    }
    let slots = spec.disks.len() + usize::from(spec.dma.is_some());
    if slots > (VIRTIO_LAST_GSI - VIRTIO_FIRST_GSI + 1) as usize {
        anyhow::bail!(
            "at most {} virtio devices",
            VIRTIO_LAST_GSI - VIRTIO_FIRST_GSI + 1
        );
    }
    let mut words: Vec<String> = (0..slots)
        .map(|i| {
            let (base, gsi) = virtio_slot(i);
            cmdline_entry(base, gsi)
        })
        .collect();
    words.extend(spec.append.iter().cloned());
    kick::install().context("installing the vCPU kick signal handler")?;
    let t0 = Instant::now();
    let mem_size = spec.mem_mib << 20;
    let machine = vm::create(mem_size)?;
    let (tx, rx) = channel::<Msg>();

    // Devices.
    let record = Arc::new(Mutex::new(ConsoleRecord::new(CONSOLE_RECORD_CAP)));
    let log = match &spec.console_log {
        Some(p) => Some(
            std::fs::File::create(p)
                .with_context(|| format!("creating console log {}", p.display()))?,
        ),
        None => None,
    };
    let serial_irq = EventFd::new(EFD_NONBLOCK)?;
    machine
        .fd
        .register_irqfd(&serial_irq, COM1_IRQ)
        .context("KVM_IRQFD for the serial port")?;
    let echo_gate = Arc::new(AtomicBool::new(false));
    let sink = ConsoleSink::new(spec.echo.then(|| echo_gate.clone()), log, record.clone());
    let serial = Serial::new(serial_irq, sink);
    let reset_tx = Mutex::new(tx.clone());
    let i8042 = I8042::new(ResetTrigger::new(move || {
        let _ = reset_tx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(Msg::Reset);
    }));
    let (ctl_tx, ctl_rx) = channel::<ControlEvent>();
    let fwd = tx.clone();
    std::thread::Builder::new()
        .name("pinvm-control".into())
        .spawn(move || {
            for ev in ctl_rx {
                if fwd.send(Msg::Control(ev)).is_err() {
                    break;
                }
            }
        })?;
    let mut pio = Bus::new();
    pio.insert(COM1_BASE, COM1_LEN, Arc::new(Mutex::new(serial)))?;
    pio.insert(I8042_BASE, I8042_LEN, Arc::new(Mutex::new(i8042)))?;
    let mut mmio = Bus::new();
    mmio.insert(
        layout::CONTROL_PAGE,
        CONTROL_PAGE_SIZE,
        Arc::new(Mutex::new(ControlBus(ControlPage::new(ctl_tx)))),
    )?;

    let guest_mem: GuestMem = GuestMemoryAtomic::new(machine.mem.clone());
    let dma = match &spec.dma {
        Some(d) => Some(DmaPin::new(DmaPinConfig {
            log: d.log.clone(),
            ..DmaPinConfig::default()
        })?),
        None => None,
    };
    let dma_handle = dma.as_ref().map(|d| d.handle());
    let mut disks = Vec::new();
    for (i, d) in spec.disks.iter().enumerate() {
        let cow = CowDisk::open(&d.image)
            .with_context(|| format!("opening disk image {}", d.image.display()))?;
        let journal = d.journal.as_ref().map(|p| {
            let opts = JournalOptions {
                record_data: d.journal_data,
                ..JournalOptions::default()
            };
            (p.clone(), opts)
        });
        let block = Block::new(
            cow,
            BlockConfig {
                id: d.id.clone(),
                journal,
                // The DMA device times its writeback races against the first disk's copies.
                observer: match (&dma_handle, i) {
                    (Some(h), 0) => Some(h.observer()),
                    _ => None,
                },
                ..BlockConfig::default()
            },
        )
        .with_context(|| format!("disk {}", d.image.display()))?;
        disks.push((block.handle(), d));
        attach_virtio(&machine.fd, &mut mmio, &guest_mem, i, Box::new(block))?;
    }
    if let Some(dev) = dma {
        attach_virtio(
            &machine.fd,
            &mut mmio,
            &guest_mem,
            spec.disks.len(),
            Box::new(dev),
        )?;
    }

    // Guest. The vCPUs come first: on kvm_pvm the command line carries vCPU 0's TSC rate.
    let mut notes = Vec::new();
    let mut vcpus = Vec::new();
    for id in 0..spec.cpus {
        vcpus.push(vm::create_vcpu(&machine, id, spec.cpus, &mut notes)?);
    }
    let pvm = host::is_kvm_pvm();
    let tsc_khz = match pvm.then(|| vcpus[0].get_tsc_khz()) {
        None => None,
        Some(Ok(k)) if k > 0 => Some(k),
        Some(r) => {
            notes.push(format!(
                "KVM_GET_TSC_KHZ gave {r:?}: the guest calibrates its TSC"
            ));
            None
        }
    };
    let cmdline =
        host::cmdline(layout::CONTROL_PAGE, pvm, tsc_khz, &words).map_err(anyhow::Error::msg)?;
    let kernel = vm::load_guest(
        &machine,
        &vm::VmSpec {
            kernel: &spec.kernel,
            initrd: spec.initrd.as_deref(),
            cmdline: &cmdline,
            cpus: spec.cpus,
            mem_size,
        },
    )?;
    for vcpu in &vcpus {
        vm::set_boot_state(vcpu, kernel.entry)?;
    }

    let shared = VcpuShared {
        pio: Arc::new(pio),
        mmio: Arc::new(mmio),
        mem: Arc::new(machine.mem.clone()),
        stop: Arc::new(AtomicBool::new(false)),
        quirks: Arc::new(QuirkCounts::default()),
        first_run: Arc::new(OnceLock::new()),
    };
    let (vtx, vrx) = channel::<(u8, VcpuEnd)>();
    let fwd = tx.clone();
    std::thread::Builder::new()
        .name("pinvm-vcpu-ends".into())
        .spawn(move || {
            for (id, end) in vrx {
                if fwd.send(Msg::Vcpu(id, end)).is_err() {
                    break;
                }
            }
        })?;
    drop(tx);
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    for (id, fd) in vcpus.into_iter().enumerate() {
        let sh = shared.clone();
        let done = vtx.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("pinvm-vcpu{id}"))
                .spawn(move || vcpu::run(id as u8, fd, sh, done))?,
        );
    }
    drop(vtx);

    // Watch.
    let deadline = t0 + spec.timeout;
    let mut w = Watch {
        echo_gate,
        ..Default::default()
    };
    let mut scanned = 0u64;
    let mut panic_at: Option<Instant> = None;
    let end = loop {
        let mut limit = match w.cmd_done_at {
            Some(t) => deadline.min(t + SHUTDOWN_GRACE),
            None => deadline,
        };
        if let Some(t) = panic_at {
            if Instant::now() >= t + PANIC_GRACE {
                break VmEnd::Panicked;
            }
            limit = limit.min(t + PANIC_GRACE);
        }
        let wait = limit
            .saturating_duration_since(Instant::now())
            .min(CONSOLE_POLL);
        if panic_at.is_none() {
            let rec = record.lock().unwrap_or_else(|p| p.into_inner());
            // Re-read a marker's length of old text so a marker split across polls is found.
            let from = scanned.saturating_sub(PANIC_MARKER.len() as u64);
            if rec.text_since(from).contains(PANIC_MARKER) {
                panic_at = Some(Instant::now());
            }
            scanned = rec.total_len();
        }
        match rx.recv_timeout(wait) {
            Ok(Msg::Reset) => break VmEnd::Reset,
            Ok(Msg::Control(ev)) => w.control(ev, &record),
            Ok(Msg::Vcpu(_, VcpuEnd::Shutdown)) => break VmEnd::Shutdown,
            Ok(Msg::Vcpu(_, VcpuEnd::SystemEvent(k))) => break VmEnd::SystemEvent(k),
            Ok(Msg::Vcpu(id, VcpuEnd::Failed(why))) => {
                break VmEnd::VcpuFailed(format!("vCPU {id}: {why}"))
            }
            Ok(Msg::Vcpu(id, VcpuEnd::Stopped { .. })) => {
                break VmEnd::VcpuFailed(format!("vCPU {id} stopped unexpectedly"))
            }
            Err(RecvTimeoutError::Timeout) if Instant::now() < limit => continue,
            Err(RecvTimeoutError::Timeout) if panic_at.is_some() => continue,
            Err(RecvTimeoutError::Timeout) if w.cmd_done_at.is_some() => {
                break VmEnd::NoRebootAfterCommand
            }
            Err(RecvTimeoutError::Timeout) => break VmEnd::Timeout,
            Err(RecvTimeoutError::Disconnected) => {
                break VmEnd::VcpuFailed("all vCPU threads vanished".into())
            }
        }
    };

    // Stop every vCPU and collect where they were.
    shared.stop.store(true, Ordering::Release);
    let mut rips = Vec::new();
    let stop_deadline = Instant::now() + Duration::from_secs(5);
    while threads.iter().any(|t| !t.is_finished()) && Instant::now() < stop_deadline {
        for t in threads.iter().filter(|t| !t.is_finished()) {
            let _ = t.kill(kick::kick_signal());
        }
        while let Ok(msg) = rx.recv_timeout(Duration::from_millis(20)) {
            match msg {
                Msg::Vcpu(id, VcpuEnd::Stopped { rip: Some(rip) }) => rips.push((id, rip)),
                Msg::Control(ev) => w.control(ev, &record),
                _ => {}
            }
        }
    }
    if threads.iter().any(|t| !t.is_finished()) {
        notes.push("a vCPU thread did not stop within 5 s".into());
    } else {
        for t in threads {
            let _ = t.join();
        }
    }
    while let Ok(msg) = rx.try_recv() {
        match msg {
            Msg::Vcpu(id, VcpuEnd::Stopped { rip: Some(rip) }) => rips.push((id, rip)),
            Msg::Control(ev) => w.control(ev, &record),
            _ => {}
        }
    }
    rips.sort();
    if let Some(h) = &dma_handle {
        if let Err(e) = h.flush() {
            notes.push(format!("flushing the DMA log: {e}"));
        }
    }
    for (handle, d) in &disks {
        if let Err(e) = handle.flush() {
            notes.push(format!("flushing disk {}: {e}", d.image.display()));
        }
        if let Some(keep) = &d.keep {
            handle
                .save_as(keep)
                .with_context(|| format!("--keep-disk {}", keep.display()))?;
        }
    }

    let first_run = shared.first_run.get().copied();
    let since_run = |t: Option<Instant>| Some(t?.saturating_duration_since(first_run?));
    let console = record.lock().unwrap_or_else(|p| p.into_inner()).text();
    Ok(RunReport {
        end,
        cmd_status: w.cmd_status,
        agent_started: w.agent_started_at.is_some(),
        agent_errors: w.agent_errors,
        console,
        console_at_cmd_done: w.console_at_cmd_done,
        timings: Timings {
            setup: first_run.map(|f| f - t0).unwrap_or_default(),
            to_init: since_run(w.agent_started_at),
            to_cmd_done: since_run(w.cmd_done_at),
            total: t0.elapsed(),
        },
        vcpu_rips: rips,
        notes,
        quirks: shared.quirks.summary(),
        cmdline,
        step_times: w
            .step_at
            .iter()
            .map(|t| {
                first_run
                    .map(|f| t.saturating_duration_since(f))
                    .unwrap_or_default()
            })
            .collect(),
        step_ns: w.step_ns,
        steps: w.steps,
    })
}

/// What the agent has told us so far.
#[derive(Default)]
struct Watch {
    /// Open while the command runs (see `ConsoleSink`).
    echo_gate: Arc<AtomicBool>,
    agent_started_at: Option<Instant>,
    cmd_done_at: Option<Instant>,
    cmd_status: Option<u32>,
    console_at_cmd_done: Option<u64>,
    agent_errors: Vec<String>,
    steps: Vec<StepReport>,
    step_at: Vec<Instant>,
    step_ns: Vec<u64>,
}

impl Watch {
    fn control(&mut self, ev: ControlEvent, record: &Mutex<ConsoleRecord>) {
        match ev.kind {
            ControlEventKind::AgentStarted => {
                self.agent_started_at.get_or_insert(ev.at);
                self.echo_gate.store(true, Ordering::Relaxed);
            }
            ControlEventKind::CmdDone if self.cmd_done_at.is_none() => {
                self.echo_gate.store(false, Ordering::Relaxed);
                self.cmd_done_at = Some(ev.at);
                self.cmd_status = Some(ev.status);
                self.console_at_cmd_done =
                    Some(record.lock().unwrap_or_else(|p| p.into_inner()).total_len());
            }
            ControlEventKind::AgentError => self.agent_errors.push(ev.message),
            ControlEventKind::Step => match parse_step(&ev.message) {
                Ok(r) => {
                    self.steps.push(r);
                    self.step_at.push(ev.at);
                    self.step_ns.push(ev.at_ns);
                }
                Err(e) => self
                    .agent_errors
                    .push(format!("unreadable STEP report {:?}: {e}", ev.message)),
            },
            _ => {}
        }
    }
}
