//! The vCPU threads: each owns one `VcpuFd`, runs it, and routes its exits.

use crate::kick;
use crate::quirks::{self, QuirkCounts};
use devices::bus::Bus;
use kvm_ioctls::{VcpuExit, VcpuFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use vm_memory::GuestMemoryMmap;

/// Why a vCPU thread stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VcpuEnd {
    /// Asked to stop; RIP where it was (for hang reports).
    Stopped {
        /// RIP when it stopped (None if KVM_GET_REGS failed).
        rip: Option<u64>,
    },
    /// Triple fault or a guest-requested shutdown.
    Shutdown,
    /// KVM_EXIT_SYSTEM_EVENT of this type.
    SystemEvent(u32),
    /// Could not continue: entry failure, unhandled internal error, ioctl error.
    Failed(String),
}

/// Everything a vCPU thread shares with the rest of the VM.
#[derive(Clone)]
pub struct VcpuShared {
    /// Port I/O devices (serial, i8042).
    pub pio: Arc<Bus>,
    /// MMIO devices (control page, virtio-mmio transports).
    pub mmio: Arc<Bus>,
    /// Guest memory (for the kvm_pvm instruction completions).
    pub mem: Arc<GuestMemoryMmap>,
    /// Set by the run controller: leave the run loop at the next exit.
    pub stop: Arc<AtomicBool>,
    /// How often each kvm_pvm work-around ran.
    pub quirks: Arc<QuirkCounts>,
    /// Set by whichever vCPU enters the guest first.
    pub first_run: Arc<OnceLock<Instant>>,
}

/// Run `vcpu` until the guest stops it or `shared.stop` is set; report why with `done` (on
/// this thread, once).
pub fn run(mut vcpu: VcpuFd, shared: VcpuShared, done: impl FnOnce(VcpuEnd)) {
    kick::arm(&mut vcpu.get_kvm_run().immediate_exit);
    let end = run_loop(&mut vcpu, &shared);
    kick::disarm();
    done(end);
}

fn run_loop(vcpu: &mut VcpuFd, sh: &VcpuShared) -> VcpuEnd {
    loop {
        if sh.stop.load(Ordering::Acquire) {
            return VcpuEnd::Stopped {
                rip: vcpu.get_regs().ok().map(|r| r.rip),
            };
        }
        sh.first_run.get_or_init(Instant::now);
        let mut internal_error = false;
        match vcpu.run() {
            Ok(exit) => match exit {
                VcpuExit::IoIn(port, data) => {
                    sh.pio.read(u64::from(port), data);
                }
                VcpuExit::IoOut(port, data) => {
                    sh.pio.write(u64::from(port), data);
                }
                VcpuExit::MmioRead(addr, data) => {
                    sh.mmio.read(addr, data);
                }
                VcpuExit::MmioWrite(addr, data) => {
                    sh.mmio.write(addr, data);
                }
                VcpuExit::Hlt => {
                    // With the in-kernel LAPIC, HLT stays in KVM; an exit means no irqchip
                    // could wake us.
                    return VcpuEnd::Failed("vCPU halted with interrupts off".into());
                }
                VcpuExit::Shutdown => return VcpuEnd::Shutdown,
                VcpuExit::SystemEvent(kind, _) => return VcpuEnd::SystemEvent(kind),
                VcpuExit::FailEntry(reason, cpu) => {
                    return VcpuEnd::Failed(format!(
                        "KVM entry failed: hardware reason {reason:#x} on host CPU {cpu}"
                    ))
                }
                VcpuExit::InternalError => internal_error = true,
                other => {
                    return VcpuEnd::Failed(format!("unexpected vCPU exit: {other:?}"));
                }
            },
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                vcpu.set_kvm_immediate_exit(0);
            }
            Err(e) => return VcpuEnd::Failed(format!("KVM_RUN failed: {e}")),
        }
        if internal_error {
            if let Err(reason) = quirks::handle(vcpu, &sh.mem, &sh.quirks) {
                return VcpuEnd::Failed(reason.to_string());
            }
        }
    }
}
