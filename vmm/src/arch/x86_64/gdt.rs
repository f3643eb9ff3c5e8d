//! The boot GDT and the KVM segment descriptors derived from it.

use kvm_bindings::kvm_segment;

/// Flat 64-bit code, flat data, and a TSS descriptor (index 0 is the null descriptor).
pub const BOOT_GDT_TABLE: [u64; 4] = [
    gdt_entry(0, 0, 0),
    gdt_entry(0xa09b, 0, 0xfffff),
    gdt_entry(0xc093, 0, 0xfffff),
    gdt_entry(0x808b, 0, 0xfffff),
];
/// GDT index of the code segment.
pub const CODE_INDEX: u16 = 1;
/// GDT index of the data segment.
pub const DATA_INDEX: u16 = 2;
/// GDT index of the TSS.
pub const TSS_INDEX: u16 = 3;

/// Pack a descriptor: `flags` holds the access byte (bits 0-7) and the flags nibble (bits 12-15).
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let base = base as u64;
    let limit = limit as u64;
    let flags = flags as u64;
    ((base & 0xff00_0000) << 32)
        | ((flags & 0xf0ff) << 40)
        | ((limit & 0x000f_0000) << 32)
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0xffff)
}

/// The KVM view of descriptor `index` holding `entry`.
pub fn segment(entry: u64, index: u16) -> kvm_segment {
    let g = ((entry >> 55) & 1) as u8;
    let raw_limit = ((entry & 0xffff) | ((entry >> 32) & 0xf_0000)) as u32;
    let present = ((entry >> 47) & 1) as u8;
    kvm_segment {
        base: ((entry >> 16) & 0xff_ffff) | ((entry >> 32) & 0xff00_0000),
        limit: if g == 1 {
            (raw_limit << 12) | 0xfff
        } else {
            raw_limit
        },
        selector: index * 8,
        type_: ((entry >> 40) & 0xf) as u8,
        present,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g,
        avl: ((entry >> 52) & 1) as u8,
        unusable: u8::from(present == 0),
        padding: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_segment_is_flat_64bit() {
        let cs = segment(BOOT_GDT_TABLE[CODE_INDEX as usize], CODE_INDEX);
        assert_eq!(cs.selector, 0x08);
        assert_eq!((cs.base, cs.limit), (0, 0xffff_ffff));
        assert_eq!(
            (cs.l, cs.db, cs.g, cs.present, cs.s, cs.dpl),
            (1, 0, 1, 1, 1, 0)
        );
        assert_eq!(cs.type_, 0xb);
    }

    #[test]
    fn data_and_tss() {
        let ds = segment(BOOT_GDT_TABLE[DATA_INDEX as usize], DATA_INDEX);
        assert_eq!((ds.selector, ds.type_, ds.db, ds.l), (0x10, 0x3, 1, 0));
        let tr = segment(BOOT_GDT_TABLE[TSS_INDEX as usize], TSS_INDEX);
        assert_eq!(
            (tr.selector, tr.type_, tr.s, tr.unusable),
            (0x18, 0xb, 0, 0)
        );
        let null = segment(0, 0);
        assert_eq!(null.unusable, 1);
    }

    #[test]
    fn entry_packing_roundtrips_base_and_limit() {
        let e = gdt_entry(0x0093, 0x1234_5678, 0xabcde);
        let s = segment(e, 5);
        assert_eq!((s.base, s.limit, s.selector), (0x1234_5678, 0xabcde, 40));
    }
}
