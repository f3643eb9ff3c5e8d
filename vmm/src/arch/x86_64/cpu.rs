//! Per-vCPU boot state: registers, segments, paging, FPU, LAPIC LINT pins, CPUID and MSRs.
//! Everything here is computed as plain data first (unit-testable), then applied with ioctls
//! from the vCPU's own thread.

use super::gdt::{segment, BOOT_GDT_TABLE, CODE_INDEX, DATA_INDEX, TSS_INDEX};
use super::layout::{BOOT_GDT, BOOT_IDT, BOOT_STACK, PD, PDPT, PD_COUNT, PML4, ZERO_PAGE};
use kvm_bindings::{kvm_fpu, kvm_msr_entry, kvm_regs, kvm_sregs, CpuId, Msrs};

const X86_CR0_PE: u64 = 0x1;
const X86_CR0_PG: u64 = 0x8000_0000;
const X86_CR4_PAE: u64 = 0x20;
const EFER_LME: u64 = 0x100;
const EFER_LMA: u64 = 0x400;

/// Registers at the 64-bit entry: IF clear, stack set, `%rsi` = zero page.
pub fn boot_regs(entry: u64) -> kvm_regs {
    kvm_regs {
        rflags: 0x2,
        rip: entry,
        rsp: BOOT_STACK,
        rbp: BOOT_STACK,
        rsi: ZERO_PAGE,
        ..Default::default()
    }
}

/// The x87/SSE state at boot: FNINIT's control word, MXCSR's reset value.
pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    }
}

/// Long mode with paging on through the boot page tables, flat segments from the boot GDT.
pub fn boot_sregs(mut s: kvm_sregs) -> kvm_sregs {
    s.gdt.base = BOOT_GDT;
    s.gdt.limit = (std::mem::size_of_val(&BOOT_GDT_TABLE) - 1) as u16;
    s.idt.base = BOOT_IDT;
    s.idt.limit = 7;
    s.cs = segment(BOOT_GDT_TABLE[CODE_INDEX as usize], CODE_INDEX);
    let data = segment(BOOT_GDT_TABLE[DATA_INDEX as usize], DATA_INDEX);
    s.ds = data;
    s.es = data;
    s.fs = data;
    s.gs = data;
    s.ss = data;
    s.tr = segment(BOOT_GDT_TABLE[TSS_INDEX as usize], TSS_INDEX);
    s.cr3 = PML4;
    s.cr4 |= X86_CR4_PAE;
    s.cr0 |= X86_CR0_PE | X86_CR0_PG;
    s.efer |= EFER_LME | EFER_LMA;
    s
}

/// Identity map of the first 4 GiB with 2 MiB pages: `(guest address, u64 entry)` pairs.
pub fn boot_page_tables() -> Vec<(u64, u64)> {
    let mut w = vec![(PML4, PDPT | 0x3)];
    for d in 0..PD_COUNT {
        w.push((PDPT + d * 8, (PD + d * 0x1000) | 0x3));
        for i in 0..512u64 {
            let addr = ((d * 512 + i) << 21) | 0x83; // present, writable, 2 MiB page
            w.push((PD + d * 0x1000 + i * 8, addr));
        }
    }
    w
}

/// Set LVT0 to ExtINT and LVT1 to NMI in a LAPIC register page (virtual-wire mode, what the
/// MP table's local interrupt entries promise).
pub fn set_lint(regs: &mut [std::os::raw::c_char; 1024]) {
    for (off, mode) in [(0x350usize, 0x7u32), (0x360, 0x4)] {
        let mut b = [0u8; 4];
        for (i, x) in b.iter_mut().enumerate() {
            *x = regs[off + i] as u8;
        }
        let v = (u32::from_le_bytes(b) & !0x700) | (mode << 8);
        for (i, x) in v.to_le_bytes().iter().enumerate() {
            regs[off + i] = *x as std::os::raw::c_char;
        }
    }
}

/// Adjust the host-supported CPUID for vCPU `id` of `count`: APIC ids, topology, the
/// hypervisor bit. (kvm_pvm ignores KVM_SET_CPUID2; hardware KVM honours it.)
pub fn filter_cpuid(cpuid: &mut CpuId, id: u8, count: u8, tsc_deadline: bool) {
    for e in cpuid.as_mut_slice() {
        match e.function {
            0x1 => {
                e.ebx = (u32::from(id) << 24) | (8 << 8);
                if count > 1 {
                    e.ebx |= u32::from(count.next_power_of_two()) << 16;
                    e.edx |= 1 << 28; // HTT: more than one logical processor
                }
                e.ecx |= 1 << 31; // running under a hypervisor
                if tsc_deadline {
                    e.ecx |= 1 << 24;
                }
            }
            0x6 => e.ecx &= !(1 << 3), // no energy/performance bias MSR
            0xb | 0x1f => e.edx = u32::from(id),
            _ => {}
        }
    }
}

/// MSRs as Linux expects them at boot.
pub fn boot_msrs() -> Msrs {
    let e = |index: u32, data: u64| kvm_msr_entry {
        index,
        data,
        ..Default::default()
    };
    let entries = [
        e(0x174, 0),             // IA32_SYSENTER_CS
        e(0x175, 0),             // IA32_SYSENTER_ESP
        e(0x176, 0),             // IA32_SYSENTER_EIP
        e(0xc000_0081, 0),       // STAR
        e(0xc000_0082, 0),       // LSTAR
        e(0xc000_0083, 0),       // CSTAR
        e(0xc000_0084, 0),       // SYSCALL_MASK
        e(0xc000_0102, 0),       // KERNEL_GS_BASE
        e(0x10, 0),              // IA32_TSC
        e(0x1a0, 1),             // IA32_MISC_ENABLE: fast strings
        e(0x2ff, (1 << 11) | 6), // MTRRdefType: MTRRs on, default write-back
    ];
    Msrs::from_entries(&entries).expect("a fixed list of 11 MSRs fits a FAM wrapper")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tables_identity_map_4g() {
        let w = boot_page_tables();
        assert_eq!(w[0], (PML4, PDPT | 3));
        assert_eq!(w.len(), 1 + 4 * 513);
        // The entry mapping 3 GiB + 2 MiB.
        let idx = 1 + 3 * 513 + 1 + 1;
        assert_eq!(
            w[idx],
            (PD + 3 * 0x1000 + 8, ((3u64 << 30) + (2 << 20)) | 0x83)
        );
    }

    #[test]
    fn sregs_enter_long_mode() {
        let s = boot_sregs(kvm_sregs::default());
        assert_eq!(s.cr0 & (X86_CR0_PE | X86_CR0_PG), X86_CR0_PE | X86_CR0_PG);
        assert_eq!(s.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_eq!(
            (s.cr3, s.gdt.limit, s.cs.selector, s.ss.selector),
            (PML4, 31, 8, 16)
        );
    }

    #[test]
    fn lint_modes() {
        let mut regs = [0 as std::os::raw::c_char; 1024];
        regs[0x351] = 0x07; // garbage in the delivery-mode bits
        set_lint(&mut regs);
        assert_eq!(regs[0x351] as u8 & 0x7, 0x7);
        assert_eq!(regs[0x361] as u8 & 0x7, 0x4);
    }

    #[test]
    fn regs_point_at_zero_page() {
        let r = boot_regs(0x100_0000);
        assert_eq!(
            (r.rip, r.rsi, r.rsp, r.rflags),
            (0x100_0000, ZERO_PAGE, BOOT_STACK, 2)
        );
    }

    #[test]
    fn msr_list() {
        assert_eq!(boot_msrs().as_slice().len(), 11);
    }
}
