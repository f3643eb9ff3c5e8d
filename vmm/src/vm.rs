//! Building a ready-to-run machine: KVM VM, memory, irqchip, PIT, boot structures, vCPUs.
//! Devices are created by the caller (they need the VmFd for irqfds) and passed in as buses.
//! The order: [`open_kvm`], [`create`], [`create_vcpu`] for each vCPU, [`load_guest`], then
//! [`set_boot_state`] for each vCPU.

use crate::arch::x86_64::{bootparams, cpu, layout, mptable};
use crate::loader::{self, LoadedKernel};
use anyhow::{bail, Context, Result};
use kvm_bindings::{
    kvm_pit_config, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};
use std::path::Path;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

/// What [`load_guest`] puts into guest memory.
pub struct VmSpec<'a> {
    /// The kernel image (vmlinux or bzImage).
    pub kernel: &'a Path,
    /// The initramfs, if any.
    pub initrd: Option<&'a [u8]>,
    /// The whole kernel command line.
    pub cmdline: &'a str,
    /// Number of vCPUs (for the MP table).
    pub cpus: u8,
    /// Guest RAM in bytes.
    pub mem_size: u64,
}

/// A VM with memory and an irqchip, before the kernel is loaded.
pub struct Vm {
    /// The /dev/kvm handle (CPUID and capability queries).
    pub kvm: Kvm,
    /// The VM. Declared before `mem`: it drops first, while the memory it maps still exists.
    pub fd: VmFd,
    /// Guest RAM, registered with the VM slot by slot.
    pub mem: GuestMemoryMmap,
}

/// Notes about set-up steps that a host refused but the guest can live without.
pub type Notes = Vec<String>;

/// The KVM API version pinvm speaks (the only one Linux ever shipped).
pub const KVM_API_VERSION: i32 = 12;

/// Why this host's KVM cannot run pinvm's VMs.
#[derive(Debug, thiserror::Error)]
pub enum KvmUnavailable {
    /// /dev/kvm cannot be opened.
    #[error(
        "opening /dev/kvm: {0} (load kvm_intel or kvm_amd, and give this user read-write \
         access to /dev/kvm, usually through the kvm group)"
    )]
    Open(#[source] kvm_ioctls::Error),
    /// An API version other than 12.
    #[error("/dev/kvm speaks KVM API {0}, pinvm needs {KVM_API_VERSION}")]
    Api(i32),
    /// A capability the VMM relies on is missing.
    #[error("/dev/kvm lacks KVM_CAP_{0}")]
    Capability(&'static str),
}

/// Open /dev/kvm and check that it has the API version and capabilities [`create`] uses.
pub fn open_kvm() -> Result<Kvm, KvmUnavailable> {
    let kvm = Kvm::new().map_err(KvmUnavailable::Open)?;
    let api = kvm.get_api_version();
    if api != KVM_API_VERSION {
        return Err(KvmUnavailable::Api(api));
    }
    for (cap, name) in [
        (Cap::Irqchip, "IRQCHIP"),
        (Cap::Ioeventfd, "IOEVENTFD"),
        (Cap::Irqfd, "IRQFD"),
        (Cap::UserMemory, "USER_MEMORY"),
        (Cap::Pit2, "PIT2"),
    ] {
        if !kvm.check_extension(cap) {
            return Err(KvmUnavailable::Capability(name));
        }
    }
    Ok(kvm)
}

/// Create a VM on `kvm` with `mem_size` bytes of RAM (below and above the 32-bit MMIO gap,
/// see `layout::ram_regions`), the in-kernel irqchip (PIC, IOAPIC, LAPICs) and PIT, and KVM's
/// TSS. No vCPU yet, nothing loaded.
pub fn create(kvm: Kvm, mem_size: u64) -> Result<Vm> {
    let fd = kvm.create_vm().context("KVM_CREATE_VM")?;
    fd.set_tss_address(layout::KVM_TSS as usize)
        .context("KVM_SET_TSS_ADDR")?;
    let regions: Vec<(GuestAddress, usize)> = layout::ram_regions(mem_size)
        .into_iter()
        .map(|(s, l)| (GuestAddress(s), l as usize))
        .collect();
    let mem = GuestMemoryMmap::from_ranges(&regions).context("allocating guest memory")?;
    for (slot, region) in mem.iter().enumerate() {
        let host = mem
            .get_host_address(region.start_addr())
            .context("host address of guest memory")?;
        let r = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().0,
            memory_size: region.len(),
            userspace_addr: host as u64,
        };
        // SAFETY: `host` is the start of a live mmap of exactly `region.len()` bytes owned by
        // `mem`, which lives in the returned Vm together with (and is dropped after nothing
        // else refers to) the VmFd using it: Vm's fields drop in declaration order, fd first.
        unsafe { fd.set_user_memory_region(r) }.context("KVM_SET_USER_MEMORY_REGION")?;
    }
    fd.create_irq_chip().context("KVM_CREATE_IRQCHIP")?;
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    fd.create_pit2(pit).context("KVM_CREATE_PIT2")?;
    Ok(Vm { kvm, fd, mem })
}

/// Load kernel, initrd, command line, zero page, MP table, boot GDT/IDT and page tables into
/// guest memory. Returns where the kernel went (its entry point for [`set_boot_state`]).
pub fn load_guest(vm: &Vm, spec: &VmSpec) -> Result<LoadedKernel> {
    let mem = &vm.mem;
    let kernel = loader::load(mem, spec.kernel)?;
    let cmdline = spec.cmdline.as_bytes();
    if cmdline.len() >= layout::CMDLINE_MAX {
        bail!(
            "kernel command line is {} bytes; the x86 limit is {} including the NUL",
            cmdline.len(),
            layout::CMDLINE_MAX
        );
    }
    if cmdline.contains(&0) {
        bail!("kernel command line contains a NUL byte");
    }
    mem.write_slice(cmdline, GuestAddress(layout::CMDLINE))?;
    mem.write_obj(0u8, GuestAddress(layout::CMDLINE + cmdline.len() as u64))?;

    let initrd = match spec.initrd {
        None => None,
        Some(bytes) => {
            let max = kernel
                .header
                .map(|h| u64::from(h.initrd_addr_max))
                .filter(|m| *m != 0)
                .unwrap_or(0x7fff_ffff);
            let addr = bootparams::initrd_address(spec.mem_size, bytes.len() as u64, max)
                .filter(|a| *a >= kernel.end)
                .with_context(|| {
                    format!(
                        "initramfs of {} bytes does not fit in {} MiB of guest RAM above the kernel",
                        bytes.len(),
                        spec.mem_size >> 20
                    )
                })?;
            mem.write_slice(bytes, GuestAddress(addr))?;
            Some((addr, bytes.len() as u32))
        }
    };

    let params = bootparams::build(&bootparams::BootParamsSpec {
        mem_size: spec.mem_size,
        header: kernel.header,
        cmdline_len_with_nul: cmdline.len() as u32 + 1,
        initrd,
    })?;
    mem.write_obj(params, GuestAddress(layout::ZERO_PAGE))?;
    mem.write_slice(&mptable::build(spec.cpus)?, GuestAddress(layout::MPTABLE))?;
    for (i, e) in crate::arch::x86_64::gdt::BOOT_GDT_TABLE.iter().enumerate() {
        mem.write_obj(*e, GuestAddress(layout::BOOT_GDT + i as u64 * 8))?;
    }
    mem.write_obj(0u64, GuestAddress(layout::BOOT_IDT))?;
    for (addr, entry) in cpu::boot_page_tables() {
        mem.write_obj(entry, GuestAddress(addr))?;
    }
    Ok(kernel)
}

/// Create vCPU `id` of `count` with its CPUID, MSRs and local APIC; [`set_boot_state`] gives
/// it its registers once the kernel's entry point is known.
pub fn create_vcpu(vm: &Vm, id: u8, count: u8, notes: &mut Notes) -> Result<VcpuFd> {
    let vcpu = vm
        .fd
        .create_vcpu(u64::from(id))
        .with_context(|| format!("KVM_CREATE_VCPU {id}"))?;
    let mut cpuid = vm
        .kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .context("KVM_GET_SUPPORTED_CPUID")?;
    let tsc_deadline = vm.kvm.check_extension(Cap::TscDeadlineTimer);
    cpu::filter_cpuid(&mut cpuid, id, count, tsc_deadline);
    vcpu.set_cpuid2(&cpuid).context("KVM_SET_CPUID2")?;

    let msrs = cpu::boot_msrs();
    let set = vcpu.set_msrs(&msrs).context("KVM_SET_MSRS")?;
    if set < msrs.as_slice().len() && id == 0 {
        // KVM stops at the first MSR it refuses; none of these is essential to boot.
        notes.push(format!(
            "KVM accepted {set} of {} boot MSRs (refused {:#x})",
            msrs.as_slice().len(),
            msrs.as_slice()[set].index
        ));
    }
    let mut lapic = vcpu.get_lapic().context("KVM_GET_LAPIC")?;
    cpu::set_lint(&mut lapic.regs);
    vcpu.set_lapic(&lapic).context("KVM_SET_LAPIC")?;
    Ok(vcpu)
}

/// Registers for a 64-bit entry at `entry` (long mode, boot GDT and page tables).
pub fn set_boot_state(vcpu: &VcpuFd, entry: u64) -> Result<()> {
    vcpu.set_regs(&cpu::boot_regs(entry))
        .context("KVM_SET_REGS")?;
    vcpu.set_fpu(&cpu::boot_fpu()).context("KVM_SET_FPU")?;
    let sregs = vcpu.get_sregs().context("KVM_GET_SREGS")?;
    vcpu.set_sregs(&cpu::boot_sregs(sregs))
        .context("KVM_SET_SREGS")?;
    Ok(())
}
