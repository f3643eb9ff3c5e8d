//! Guest-physical memory layout (the usual direct-boot layout, as in Firecracker).

/// Boot GDT (4 entries).
pub const BOOT_GDT: u64 = 0x500;
/// A zero IDT.
pub const BOOT_IDT: u64 = 0x520;
/// `boot_params`, the "zero page"; `%rsi` points here at entry.
pub const ZERO_PAGE: u64 = 0x7000;
/// Initial stack pointer.
pub const BOOT_STACK: u64 = 0x8ff0;
/// Boot page tables: PML4, PDPT, then four page directories (identity map of 0-4 GiB).
pub const PML4: u64 = 0x9000;
/// The page-directory-pointer table.
pub const PDPT: u64 = 0xa000;
/// The first of the page directories (2 MiB pages).
pub const PD: u64 = 0xb000;
/// How many page directories (one per GiB).
pub const PD_COUNT: u64 = 4;
/// Kernel command line.
pub const CMDLINE: u64 = 0x20000;
/// Its size limit including the NUL (x86 COMMAND_LINE_SIZE).
pub const CMDLINE_MAX: usize = 2048;
/// MP floating pointer + configuration table, in the last KiB of base memory.
pub const MPTABLE: u64 = 0x9fc00;
/// End of conventional memory; [MPTABLE, HIMEM) is not RAM in the e820 map.
pub const EBDA_END: u64 = 0x10_0000;
/// Start of high memory: where bzImage payloads load and e820 RAM resumes.
pub const HIMEM: u64 = 0x10_0000;
/// The 32-bit MMIO window below 4 GiB: RAM stops here, devices live here.
pub const MMIO_GAP_START: u64 = 0xc000_0000;
/// The end of the MMIO window: RAM resumes at 4 GiB.
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
/// pinvm's own devices: the control page first, then 4 KiB virtio-mmio slots.
pub const CONTROL_PAGE: u64 = 0xd000_0000;
/// The first virtio-mmio slot.
pub const VIRTIO_MMIO_BASE: u64 = 0xd000_1000;
/// KVM's TSS (3 pages), just below the BIOS area.
pub const KVM_TSS: u64 = 0xfffb_d000;
/// KVM's identity-map page, below its TSS.
pub const KVM_IDENTITY_MAP: u64 = 0xfffb_c000;

// The fixed boot areas must not overlap: checked at compile time.
const _: () = {
    assert!(BOOT_IDT + 8 <= ZERO_PAGE);
    assert!(ZERO_PAGE + 0x1000 <= BOOT_STACK + 0x10);
    assert!(BOOT_STACK < PML4 && PML4 < PDPT && PDPT < PD);
    assert!(PD + PD_COUNT * 0x1000 <= CMDLINE);
    assert!(CMDLINE + CMDLINE_MAX as u64 <= MPTABLE);
    assert!(CONTROL_PAGE >= MMIO_GAP_START && VIRTIO_MMIO_BASE > CONTROL_PAGE);
};

/// RAM regions `(start, size)` for `mem_size` bytes of guest RAM, split around the MMIO gap.
pub fn ram_regions(mem_size: u64) -> Vec<(u64, u64)> {
    if mem_size <= MMIO_GAP_START {
        vec![(0, mem_size)]
    } else {
        vec![
            (0, MMIO_GAP_START),
            (MMIO_GAP_END, mem_size - MMIO_GAP_START),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_split_around_gap() {
        assert_eq!(ram_regions(256 << 20), vec![(0, 256 << 20)]);
        assert_eq!(ram_regions(MMIO_GAP_START), vec![(0, MMIO_GAP_START)]);
        assert_eq!(
            ram_regions(4 << 30),
            vec![
                (0, MMIO_GAP_START),
                (MMIO_GAP_END, (4 << 30) - MMIO_GAP_START)
            ]
        );
    }
}
