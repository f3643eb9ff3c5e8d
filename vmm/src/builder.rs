//! Building and starting a KVM machine for one run, one step per function, in the order
//! [`crate::KvmMachine`] calls them:
//! 1. [`check`] the run description against what this machine can do;
//! 2. [`create_vm`]: open /dev/kvm, create the VM and its memory;
//! 3. [`build_devices`]: the console UART and the i8042 on port I/O, the control page and the
//!    virtio devices (built by `machine::device_set`) on MMIO, each wired to the run's channel;
//! 4. [`create_vcpus`] (before loading: on kvm_pvm the command line carries vCPU 0's TSC
//!    rate);
//! 5. [`load`]: the command line, the kernel, the initramfs and the boot structures, and every
//!    vCPU's boot registers;
//! 6. [`start`]: one thread per vCPU.
//!
//! Watching, stopping and collecting follow in `run_control` and `machine::device_set`.

use crate::arch::x86_64::layout;
use crate::quirks::QuirkCounts;
use crate::run_control::{RunMsg, Running};
use crate::slots::{self, MAX_VIRTIO_DEVICES};
use crate::vcpu::{self, VcpuShared};
use crate::vm::{self, Notes, Vm};
use crate::{host, NAME};
use anyhow::{Context, Result};
use devices::bus::Bus;
use devices::control::ControlPage;
use devices::i8042::{ResetTrigger, I8042, I8042_BASE, I8042_LEN};
use devices::serial::{ConsoleSink, Serial, COM1_BASE, COM1_IRQ, COM1_LEN};
use devices::virtio::GuestMem;
use kvm_ioctls::VcpuFd;
use machine::console::ConsoleCapture;
use machine::device_set::{Collector, DeviceSet};
use machine::{MachineError, RunSpec};
use proto::control::PAGE_SIZE as CONTROL_PAGE_SIZE;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, OnceLock};
use vm_memory::GuestMemoryAtomic;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// The run's devices on their buses, and what the run keeps of them.
pub struct Board {
    /// Port I/O: COM1 and the i8042.
    pub pio: Bus,
    /// MMIO: the control page and the virtio-mmio slots.
    pub mmio: Bus,
    /// The console capture the UART writes into.
    pub console: ConsoleCapture,
    /// The virtio devices' records, collected after the run.
    pub collector: Collector,
}

/// Refuse what this machine cannot run: vCPUs, memory or a timeout out of bounds
/// ([`RunSpec::check_bounds`]), or more virtio devices than it has slots.
pub fn check(spec: &RunSpec) -> Result<(), MachineError> {
    spec.check_bounds()?;
    if spec.virtio_devices() > MAX_VIRTIO_DEVICES {
        return Err(MachineError::Invalid(format!(
            "at most {MAX_VIRTIO_DEVICES} virtio devices"
        )));
    }
    Ok(())
}

/// Open /dev/kvm (a host without a usable one makes this machine unavailable) and create the
/// VM with `spec`'s memory.
pub fn create_vm(spec: &RunSpec) -> Result<Vm, MachineError> {
    let kvm = vm::open_kvm().map_err(|e| MachineError::Unavailable {
        machine: NAME,
        why: e.to_string(),
    })?;
    Ok(vm::create(kvm, mem_bytes(spec)?)?)
}

/// The guest's RAM in bytes (`check` bounds it; the multiplication is checked all the same).
fn mem_bytes(spec: &RunSpec) -> Result<u64, MachineError> {
    spec.mem_mib.checked_mul(1 << 20).ok_or_else(|| {
        MachineError::Invalid(format!("{} MiB of guest memory: too much", spec.mem_mib))
    })
}

/// Every device of the run on its bus: COM1 (the console) and the i8042 (its reset ends the
/// run) on port I/O; the control page (the agent's events) and the virtio devices on MMIO.
/// Devices report into `tx` from the vCPU thread that touched them.
pub fn build_devices(vm: &Vm, spec: &RunSpec, tx: &SyncSender<RunMsg>) -> Result<Board> {
    let (console, sink) = ConsoleCapture::open(spec)?;
    let pio = legacy_devices(vm, sink, tx)?;
    let mut mmio = Bus::new();
    mmio.insert(
        layout::CONTROL_PAGE,
        CONTROL_PAGE_SIZE,
        Arc::new(Mutex::new(control_page(tx))),
    )?;
    let collector = virtio_devices(vm, &mut mmio, spec)?;
    Ok(Board {
        pio,
        mmio,
        console,
        collector,
    })
}

/// The control page, sending each agent event into the run's bounded channel from the vCPU
/// thread that wrote EVENT: while the queue is full that thread waits (the guest is slowed
/// down); once the run is over and the receiver gone, events are dropped.
pub(crate) fn control_page(tx: &SyncSender<RunMsg>) -> ControlPage {
    let agent = tx.clone();
    ControlPage::with_sink(move |ev| {
        let _ = agent.send(RunMsg::Agent(ev.into()));
    })
}

/// COM1 writing into `sink` and raising IRQ 4 through an irqfd, and the i8042 whose reset
/// pulse is [`RunMsg::Reset`].
fn legacy_devices(vm: &Vm, sink: ConsoleSink, tx: &SyncSender<RunMsg>) -> Result<Bus> {
    let serial_irq = EventFd::new(EFD_NONBLOCK)?;
    vm.fd
        .register_irqfd(&serial_irq, COM1_IRQ)
        .context("KVM_IRQFD for the serial port")?;
    let serial = Serial::new(serial_irq, sink);
    let reset = tx.clone();
    let i8042 = I8042::new(ResetTrigger::new(move || {
        let _ = reset.send(RunMsg::Reset);
    }));
    let mut pio = Bus::new();
    pio.insert(COM1_BASE, COM1_LEN, Arc::new(Mutex::new(serial)))?;
    pio.insert(I8042_BASE, I8042_LEN, Arc::new(Mutex::new(i8042)))?;
    Ok(pio)
}

/// The run's disks and DMA device, one virtio-mmio slot each, in `spec` order.
fn virtio_devices(vm: &Vm, mmio: &mut Bus, spec: &RunSpec) -> Result<Collector> {
    let guest_mem: GuestMem = GuestMemoryAtomic::new(vm.mem.clone());
    let (devices, collector) = DeviceSet::build(spec)?.into_virtio();
    for (slot, device) in devices.into_iter().enumerate() {
        slots::attach_virtio(&vm.fd, mmio, &guest_mem, slot, device)?;
    }
    Ok(collector)
}

/// Create the vCPUs with their CPUID, MSRs and LAPIC (registers come with [`load`]).
pub fn create_vcpus(vm: &Vm, cpus: u8, notes: &mut Notes) -> Result<Vec<VcpuFd>> {
    (0..cpus)
        .map(|id| vm::create_vcpu(vm, id, cpus, notes))
        .collect()
}

/// Build the guest command line (pinvm's words, kvm_pvm's, the virtio slots, then
/// `spec.append`), load the kernel, initramfs and boot structures, and give every vCPU its
/// 64-bit boot registers. Returns the command line.
pub fn load(
    vm: &Vm,
    spec: &RunSpec,
    vcpus: &[VcpuFd],
    notes: &mut Notes,
) -> Result<String, MachineError> {
    let mut words = slots::cmdline_words(spec.virtio_devices());
    words.extend(spec.append.iter().cloned());
    let pvm = host::is_kvm_pvm();
    let tsc_khz = if pvm {
        guest_tsc_khz(&vcpus[0], notes)
    } else {
        None
    };
    let cmdline = host::cmdline(layout::CONTROL_PAGE, pvm, tsc_khz, &words)
        .map_err(|e| MachineError::Invalid(e.to_string()))?;
    let kernel = vm::load_guest(
        vm,
        &vm::VmSpec {
            kernel: &spec.kernel,
            initrd: spec.initrd.as_deref(),
            cmdline: &cmdline,
            cpus: spec.cpus,
            mem_size: mem_bytes(spec)?,
        },
    )?;
    for vcpu in vcpus {
        vm::set_boot_state(vcpu, kernel.entry)?;
    }
    Ok(cmdline)
}

/// The TSC rate to tell a kvm_pvm guest (it cannot calibrate against the emulated PIT); None
/// (with a note) when KVM does not know it.
fn guest_tsc_khz(vcpu: &VcpuFd, notes: &mut Notes) -> Option<u32> {
    match vcpu.get_tsc_khz() {
        Ok(k) if k > 0 => Some(k),
        r => {
            notes.push(format!(
                "KVM_GET_TSC_KHZ gave {r:?}: the guest calibrates its TSC"
            ));
            None
        }
    }
}

/// Start one thread per vCPU running the guest; each reports its end into `tx`.
pub fn start(
    vm: &Vm,
    vcpus: Vec<VcpuFd>,
    pio: Bus,
    mmio: Bus,
    tx: &SyncSender<RunMsg>,
) -> Result<Running> {
    let shared = VcpuShared {
        pio: Arc::new(pio),
        mmio: Arc::new(mmio),
        mem: Arc::new(vm.mem.clone()),
        stop: Arc::new(AtomicBool::new(false)),
        quirks: Arc::new(QuirkCounts::default()),
        first_run: Arc::new(OnceLock::new()),
    };
    let mut threads = Vec::new();
    for (id, fd) in vcpus.into_iter().enumerate() {
        let id = id as u8;
        let sh = shared.clone();
        let done = tx.clone();
        let report = move |end| {
            let _ = done.send(RunMsg::Vcpu(id, end));
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("pinvm-vcpu{id}"))
                .spawn(move || vcpu::run(fd, sh, report))?,
        );
    }
    Ok(Running { threads, shared })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_control;
    use machine::agent::EVENT_QUEUE;
    use proto::control::reg;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    fn spec() -> RunSpec {
        RunSpec::new("vmlinux")
    }

    /// `mem_mib << 20` used to wrap for a huge `mem_mib` (and 255 vCPUs went to KVM); the
    /// check refuses both before any KVM call, saying what to pass.
    #[test]
    fn absurd_memory_and_vcpus_are_refused_before_kvm() {
        check(&spec()).unwrap();
        for (s, want) in [
            (
                RunSpec {
                    mem_mib: 1 << 44,
                    ..spec()
                },
                "--mem",
            ),
            (
                RunSpec {
                    mem_mib: u64::MAX,
                    ..spec()
                },
                "--mem",
            ),
            (
                RunSpec {
                    cpus: 200,
                    ..spec()
                },
                "--cpus",
            ),
            (RunSpec { cpus: 0, ..spec() }, "--cpus"),
        ] {
            match check(&s) {
                Err(MachineError::Invalid(m)) => assert!(m.contains(want), "{m}"),
                r => panic!("{} MiB, {} vCPUs: {r:?}", s.mem_mib, s.cpus),
            }
        }
    }

    /// A guest writing EVENT in a loop used to grow the run's channel without bound; now its
    /// vCPU thread waits once [`EVENT_QUEUE`] events are queued, and every event still
    /// arrives once the controller takes them.
    #[test]
    fn a_flooding_control_page_waits_for_the_controller_and_loses_nothing() {
        const N: usize = 10 * EVENT_QUEUE;
        let (tx, rx) = run_control::channel();
        let mut page = control_page(&tx);
        drop(tx);
        let sent = Arc::new(AtomicUsize::new(0));
        let flood = std::thread::spawn({
            let sent = sent.clone();
            move || {
                for _ in 0..N {
                    page.write(reg::EVENT, &5u32.to_le_bytes()); // LOG
                    sent.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            sent.load(Ordering::SeqCst),
            EVENT_QUEUE,
            "the queue holds at most {EVENT_QUEUE} events; the writer waits for the rest"
        );
        let got = rx.iter().filter(|m| matches!(m, RunMsg::Agent(_))).count();
        flood.join().unwrap();
        assert_eq!(got, N);
    }
}
