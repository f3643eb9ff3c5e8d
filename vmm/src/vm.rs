//! Building a ready-to-run machine: KVM VM, memory, irqchip, PIT, boot structures, vCPUs.
//! Devices are created by the caller (they need the VmFd for irqfds) and passed in as buses.

use crate::arch::x86_64::{bootparams, cpu, layout, mptable};
use crate::loader::{self, LoadedKernel};
use anyhow::{bail, Context, Result};
use kvm_bindings::{
    kvm_pit_config, kvm_userspace_memory_region, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};
use std::path::Path;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

pub struct VmSpec<'a> {
    pub kernel: &'a Path,
    pub initrd: Option<&'a [u8]>,
    pub cmdline: &'a str,
    pub cpus: u8,
    pub mem_size: u64,
}

/// A VM with memory and an irqchip, before the kernel is loaded.
pub struct Vm {
    pub kvm: Kvm,
    pub fd: VmFd,
    pub mem: GuestMemoryMmap,
}

/// Notes about set-up steps that a host refused but the guest can live without.
pub type Notes = Vec<String>;

pub fn create(mem_size: u64) -> Result<Vm> {
    let kvm = Kvm::new().context("opening /dev/kvm")?;
    let api = kvm.get_api_version();
    if api != 12 {
        bail!("/dev/kvm speaks KVM API {api}, pinvm needs 12");
    }
    for (cap, name) in [
        (Cap::Irqchip, "IRQCHIP"),
        (Cap::Ioeventfd, "IOEVENTFD"),
        (Cap::Irqfd, "IRQFD"),
        (Cap::UserMemory, "USER_MEMORY"),
        (Cap::Pit2, "PIT2"),
    ] {
        if !kvm.check_extension(cap) {
            bail!("/dev/kvm lacks KVM_CAP_{name}");
        }
    }
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

/// Load kernel, initrd, command line, zero page, MP table and page tables into memory.
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
